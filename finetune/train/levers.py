"""The memory levers of a run, turned into what the libraries take: the dtype
and quantization the base model loads with, the Trainer's optimizer name,
whether gradient checkpointing is on (and why), and the attention kernel.

Each is a small function of the config and the hardware, so the decisions are
tested on a CPU even where the code path they choose needs a GPU.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import TrainConfig
from .device import Hardware

# Checkpointing 'auto' turns on above this share of the free memory: the
# estimate is rough, and allocator fragmentation needs headroom.
CHECKPOINTING_THRESHOLD = 0.85


def weights_dtype(config: TrainConfig, hardware: Hardware) -> torch.dtype:
    """The dtype the base model's weights load in."""
    if config.method == "qlora":
        return qlora_compute_dtype(hardware)  # of the layers left unquantized (norms, embeddings)
    return torch.bfloat16 if config.weights == "bf16" else torch.float32


def qlora_compute_dtype(hardware: Hardware) -> torch.dtype:
    return torch.bfloat16 if hardware.has_bf16 else torch.float16


def quantization_config(config: TrainConfig, hardware: Hardware):
    """QLoRA's 4-bit NF4 base with double quantization (the QLoRA paper's recipe), or None."""
    if config.method != "qlora":
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=qlora_compute_dtype(hardware))


def optimizer_name(config: TrainConfig) -> str:
    """The Trainer's `optim` for this config."""
    if config.optimizer == "adamw_8bit":
        return "adamw_bnb_8bit"
    if config.weights == "bf16" and config.method == "full":
        # torch's AdamW keeps its states in the weights' dtype; bitsandbytes keeps fp32 states for bf16 weights.
        return "paged_adamw_32bit"
    return "adamw_torch_fused"  # fused on CPU too (torch>=2.4): one kernel instead of a loop per tensor


# --- gradient checkpointing


@dataclass(frozen=True)
class Checkpointing:
    on: bool
    reason: str


def checkpointing(config: TrainConfig, estimated_peak: int | None, free: int | None) -> Checkpointing:
    """'on' and 'off' as set; 'auto' on when the estimated peak exceeds about
    85% of the memory free for training."""
    if config.gradient_checkpointing != "auto":
        return Checkpointing(config.gradient_checkpointing == "on", f"gradient checkpointing {config.gradient_checkpointing}")
    if not estimated_peak or not free:
        return Checkpointing(False, "gradient checkpointing off (the free memory is unknown)")
    share = estimated_peak / free
    verdict = "on" if share > CHECKPOINTING_THRESHOLD else "off"
    return Checkpointing(verdict == "on", f"gradient checkpointing {verdict}: the estimated peak is {share:.0%} "
                                          f"of the {free / 2**30:.1f} GiB free")


def estimated_peak(model, config: TrainConfig, hardware: Hardware) -> int | None:
    """Bytes a training step needs at its peak without checkpointing, from the
    memory estimator (finetune/memory/estimate.py), for the micro-batch at its longest; None for
    a model whose shape it cannot read."""
    found = run_estimate(model, config, hardware, gradient_checkpointing=False)
    return int(found.peak_bytes) if found else None


def run_estimate(model, config: TrainConfig, hardware: Hardware, gradient_checkpointing: bool,
                 tokens_per_example: int | None = None, response_fraction: float = 1.0, name: str | None = None):
    """The memory estimate (memory.Estimate) for this run's settings on this
    model: `tokens_per_example` defaults to max_length (the worst case); a
    packed run passes its mean example length, the tokens a micro-batch really
    holds, and a preference run its longest sequence (pair_lengths); `name`,
    the model as people know it (else its config's). None for a model whose
    shape the estimator cannot read."""
    from ..memory import model_shape

    try:
        shape = model_shape.shape_from_config(model.config, name)
        return settings_estimate(shape, config, hardware.precision, hardware.device, gradient_checkpointing,
                                 tokens_per_example, response_fraction)
    except model_shape.EstimateError:
        return None


def settings_estimate(shape, config: TrainConfig, autocast: str, device: str, gradient_checkpointing: bool,
                      tokens_per_example: int | None = None, response_fraction: float = 1.0):
    """The memory estimate for a run of `config` on a model of `shape` (memory.ModelShape):
    the one place a config's settings become the estimator's arguments, so the run, the
    Hyperparameters tab and the lessons count the same terms (a preference run's second
    sequence, its reference model and TRL's output layer included)."""
    from ..memory import estimate as memory

    return memory.estimate(
        shape, method=config.method, weights=config.weights, autocast=autocast, optimizer=config.optimizer,
        batch_size=config.batch_size, seq_len=tokens_per_example or config.max_length,
        gradient_checkpointing=gradient_checkpointing, lora_r=config.lora_r, lora_dropout=config.lora_dropout,
        grad_accum=config.grad_accum, response_fraction=response_fraction, objective=config.objective,
        precompute_ref=config.precompute_ref, device=device)


def pair_lengths(pairs, max_length: int) -> tuple[int, float]:
    """(tokens of the longest sequence, the replies' share of the tokens) of preference
    examples ((Example, EncodedPair) as data.PreparedData holds them): TRL pads every
    sequence of a batch (DPO: each chosen and each rejected reply after its prompt) to the
    batch's longest, cut at max_length, so the longest one sizes a micro-batch."""
    longest = max((encoded.longest for _, encoded in pairs), default=max_length)
    replies = sum(len(encoded.chosen_ids) + len(encoded.rejected_ids) for _, encoded in pairs)
    tokens = sum(encoded.tokens for _, encoded in pairs)
    return min(longest, max_length), min(max(replies / max(tokens, 1), 0.01), 1.0)  # the estimator refuses 0


def free_memory(hardware: Hardware, model=None) -> int | None:
    """Bytes free for training on the device, counting what `model` already holds there."""
    held = sum(p.numel() * p.element_size() for p in model.parameters()
               if p.device.type == hardware.device) if model is not None else 0
    if hardware.device == "cuda":
        return torch.cuda.mem_get_info(hardware.index)[0] + held
    if hardware.device == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.current_allocated_memory()) + held
    available = _meminfo_available()
    return available + held if available is not None else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# --- attention over packed rows

VARLEN_ATTENTION = "flash_attention_2"


def attention_implementation(hardware: Hardware) -> str:
    """FlashAttention's varlen kernel where it is installed on a CUDA GPU: packed
    examples go in one row with their boundaries (no [T, T] mask at all).
    Elsewhere SDPA with a block-diagonal mask, which matched unpacked logits to 2e-7."""
    if hardware.device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return VARLEN_ATTENTION
    return "sdpa"


def uses_varlen_attention(model) -> bool:
    return getattr(getattr(model, "config", None), "_attn_implementation", None) == VARLEN_ATTENTION
