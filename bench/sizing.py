"""Which fine-tuning method fits which GPU: the memory estimator's peak for
0.5B-8B models at 2048 tokens per example, printed as the README's table.

    python -m bench.sizing            # Markdown table
    python -m bench.sizing --json F   # also the numbers

The shapes are the published configs' (read here, not downloaded); a row is
one micro-batch of `--batch` examples of 2048 tokens, in bf16 autocast. These
are estimates (finetune/memory/estimate.py states its assumptions), not measurements.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from finetune.memory import estimate as memory
from finetune.memory import model_shape

SHAPES = {
    "0.5B (Qwen2.5-0.5B)": model_shape.make_shape(layers=24, hidden=896, intermediate=4864, vocab=151936, heads=14,
                                                  kv_heads=2, tied_embeddings=True, name="Qwen2.5-0.5B"),
    "1B (Llama-3.2-1B)": model_shape.make_shape(layers=16, hidden=2048, intermediate=8192, vocab=128256, heads=32,
                                                kv_heads=8, tied_embeddings=True, name="Llama-3.2-1B"),
    "3B (Llama-3.2-3B)": model_shape.make_shape(layers=28, hidden=3072, intermediate=8192, vocab=128256, heads=24,
                                                kv_heads=8, tied_embeddings=True, name="Llama-3.2-3B"),
    "7B (Llama-2-7B)": model_shape.LLAMA2_7B,
    "8B (Llama-3.1-8B)": model_shape.make_shape(layers=32, hidden=4096, intermediate=14336, vocab=128256, heads=32,
                                                kv_heads=8, tied_embeddings=False, name="Llama-3.1-8B"),
}
# (label, the engine's settings): what `python -m finetune train` flags choose.
METHODS = {
    "full, fp32 weights, AdamW": dict(method="full", weights="fp32", optimizer="adamw"),
    "full, bf16 weights, 8-bit AdamW, checkpointing": dict(method="full", weights="bf16", optimizer="adamw_8bit",
                                                           gradient_checkpointing=True),
    "LoRA r=16, bf16 base, checkpointing": dict(method="lora", weights="bf16", gradient_checkpointing=True),
    "QLoRA r=16, checkpointing": dict(method="qlora", weights="bf16", gradient_checkpointing=True),
}
GPUS = (("T4", 16), ("24 GB", 24), ("A100 40", 40), ("H100 80", 80), ("H200", 141))
# Leave room for fragmentation and the CUDA context the estimate's overhead may undercount.
HEADROOM = 0.9


def peaks(batch: int, length: int) -> dict[str, dict[str, float]]:
    return {model: {label: memory.estimate(shape, autocast="bf16", batch_size=batch, seq_len=length,
                                           **settings).peak_bytes / memory.GIB
                    for label, settings in METHODS.items()}
            for model, shape in SHAPES.items()}


def smallest_gpu(gib: float) -> str:
    return next((name for name, size in GPUS if gib <= size * HEADROOM), "several GPUs (FSDP)")


def table(results: dict[str, dict[str, float]], batch: int, length: int) -> str:
    lines = [f"Estimated peak GiB, one micro-batch of {batch} x {length} tokens, bf16 autocast "
             f"(smallest GPU with {1 - HEADROOM:.0%} headroom):", "",
             "| model | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for model, row in results.items():
        cells = [f"{gib:.0f} GiB: {smallest_gpu(gib)}" for gib in row.values()]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--length", type=int, default=2048)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    results = peaks(args.batch, args.length)
    print(table(results, args.batch, args.length))
    if args.json:
        Path(args.json).write_text(json.dumps({"batch": args.batch, "length": args.length, "peak_gib": results},
                                              indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
