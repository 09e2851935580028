"""What keeping the best checkpoint costs on the default model: seconds per save
and megabytes on disk, for full fine-tuning and for LoRA, and the merge a LoRA
run's best checkpoint needs at export. Prints figures; asserts nothing.

    .venv/bin/python -m bench.best_checkpoint [--repeat 5]

Each save is the one a run makes at an evaluation that improves (the
BestCheckpoint callback with the worker's saver): the trained weights copied in
the base model's dtype (bf16 for SmolLM2) and written with the tokenizer into a
temporary folder that then replaces best/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench import folder_bytes
from finetune.export.checkpoint import merge_adapters
from finetune.runs.saving import trained_weights, write_model
from finetune.sources import models
from finetune.train.config import TrainConfig
from finetune.train.trainer import replace_folder, with_lora


def timed_saves(model, tokenizer, dtype, folder: Path, repeat: int) -> tuple[list[float], int]:
    """Seconds per save after one untimed save (a freshly loaded model's weights may still be mapped from its
    file; a training run's are in memory), and the folder's size."""
    seconds = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        replace_folder(folder, lambda tmp: write_model(model, tokenizer, tmp, state_dict=trained_weights(model, dtype)))
        seconds.append(time.perf_counter() - start)
    return seconds[1:], folder_bytes(folder)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    source = models.resolve("default")
    dtype = models.saved_dtype(source)
    model, tokenizer = models.load(source, progress=lambda text: print(text, file=sys.stderr))  # fp32, as trained
    results = {"model": source.label, "saved_dtype": str(dtype), "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as scratch:
        run = Path(scratch)
        (run / "config.json").write_text(json.dumps({"model": "default"}))
        seconds, size = timed_saves(model, tokenizer, dtype, run / "best", args.repeat)
        results["full"] = {"seconds_median": round(statistics.median(seconds), 2), "seconds": [round(s, 2) for s in
                           seconds], "disk_mb": round(size / 1e6, 1)}
        lora = with_lora(model, TrainConfig())
        seconds, size = timed_saves(lora, tokenizer, dtype, run / "best", args.repeat)
        results["lora_r16"] = {"seconds_median": round(statistics.median(seconds), 2),
                               "seconds": [round(s, 2) for s in seconds], "disk_mb": round(size / 1e6, 1)}
        start = time.perf_counter()
        merge_adapters(run / "best", run, run / "merged")
        results["lora_merge_at_export_seconds"] = round(time.perf_counter() - start, 2)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
