"""Prepare, on this machine, what bench/gpu.sh needs on a GPU machine that
has no network and no copy of ../shared: run it here, then carry the folder.

    .venv/bin/python -m bench.carry        # writes bench/carry/ (ignored by git)

It holds the default model's config and tokenizer (no weights: the GPU run
trains its shape from random weights, as the design notes' reference figures
did; the weights would exceed what a run may carry), the alpaca_1k data, and
the wheels of the pure-Python packages the engine needs that the GPU image
lacks (datasets and its own small dependencies).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bench import folder_bytes
from finetune.sources import models

HERE = Path(__file__).resolve().parent
CARRY = HERE / "carry"
DATA = HERE.parents[1] / "shared" / "data" / "alpaca_1k.json"
# Pure-Python wheels missing from the GPU image (its package list is in the device notes).
WHEELS = ("datasets>=3.0", "dill", "multiprocess")
GPU_PYTHON = "3.12"  # the GPU image's python3 (multiprocess ships one wheel per Python version)
TOKENIZER_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                   "chat_template.jinja", "special_tokens_map.json")


def main() -> int:
    CARRY.mkdir(exist_ok=True)
    shape = CARRY / "smollm2"
    shape.mkdir(exist_ok=True)
    source = Path(models.ensure_default_model(progress=lambda text: print(text, file=sys.stderr)))
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, shape / name)
    shutil.copy2(DATA, CARRY / DATA.name)
    wheels = CARRY / "wheels"
    wheels.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                    "--python-version", GPU_PYTHON, "--dest", str(wheels), *WHEELS], check=True)
    size = folder_bytes(CARRY)
    print(f"{CARRY}: {size / 2**20:.1f} MiB; carry it as bench/carry")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
