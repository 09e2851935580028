"""What each export of the default model costs: seconds and bytes for the zip
of the merged model, the LoRA adapters alone, the GGUF files (f16, bf16,
q8_0) and the Hub upload's layout, measured on a run folder holding the
bundled SmolLM2-135M-Instruct as a finished run would (bf16 weights; adapters
of rank 16 on every linear layer, as `--method lora` trains them).

    python -m bench.exports [--json bench/results/exports-<machine>.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from bench import folder_bytes
from finetune.export.bundle import export_run
from finetune.export.hub import prepare_upload
from finetune.sources import models
from finetune.train.config import TrainConfig


def fake_run(root: Path) -> Path:
    """A finished LoRA run of the default model: model/ in bf16, adapter/ of rank 16."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetune.runs.saving import save_adapter, save_model
    from finetune.train.trainer import with_lora

    source = models.ensure_default_model()
    folder = root / "run"
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(source)
    config = TrainConfig(method="lora")
    save_adapter(with_lora(model, config), tokenizer, folder / "adapter", torch.bfloat16,
                 models.DEFAULT_HUB_ID)
    save_model(AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32), tokenizer, folder / "model",
               dtype=torch.bfloat16)
    (folder / "config.json").write_text(json.dumps({**config.to_dict(), "data": "demo.jsonl"}))
    (folder / "metrics.jsonl").write_text('{"step": 1, "loss": 1.5}\n{"step": 2, "loss": 1.2}\n')
    return folder


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def measure(folder: Path) -> dict:
    results = {}
    for fmt in ("merged", "adapter", "gguf-f16", "gguf-bf16", "gguf-q8_0"):
        seconds, path = timed(lambda: export_run(folder, which="final", fmt=fmt))
        results[f"zip {fmt}"] = {"seconds": round(seconds, 1), "mib": round(path.stat().st_size / 2**20, 1)}
    seconds, upload = timed(lambda: prepare_upload(folder, gguf="q8_0"))
    size = folder_bytes(upload)
    results["hub layout (merged + q8_0 GGUF + card)"] = {"seconds": round(seconds, 1), "mib": round(size / 2**20, 1)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-exports-"))
    try:
        results = measure(fake_run(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("| export | seconds | MiB |\n|---|---:|---:|")
    for name, entry in results.items():
        print(f"| {name} | {entry['seconds']} | {entry['mib']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": models.DEFAULT_NAME, "results": results}, indent=2))


if __name__ == "__main__":
    main()
