"""The tutorial's memory exercise: how much a 7B model needs for full
fine-tuning, term by term, with and without gradient checkpointing.

    >>> print(tutorial_text())   # the tutorial's 7B question
"""

from __future__ import annotations

from .estimate import Estimate, estimate, format_breakdown, format_gib
from .model_shape import LLAMA2_7B


def tutorial_7b(gradient_checkpointing: bool = True) -> Estimate:
    """The tutorial's exercise: a 7B model (Llama-2-7B's shape), fp16 mixed
    precision with AdamW, gradient checkpointing, sequence 2048, batch 4."""
    return estimate(LLAMA2_7B, method="full", recipe="classic-mixed", weights="fp16", autocast="fp16",
                    optimizer="adamw", batch_size=4, seq_len=2048, gradient_checkpointing=gradient_checkpointing)


def tutorial_text() -> str:
    """The tutorial's answer, with and without checkpointing for contrast."""
    with_ckpt, without = tutorial_7b(True), tutorial_7b(False)
    return (format_breakdown(with_ckpt) + "\n\nWithout gradient checkpointing the activations would be "
            f"{format_gib(without.bytes_of('activations'))} instead of "
            f"{format_gib(with_ckpt.bytes_of('activations'))}: "
            f"a total of {format_gib(without.total_bytes)}.")
