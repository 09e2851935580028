"""What a run will leave on disk, estimated before it starts from the model's
parameter count (memory/model_shape.py reads it from the model's config, no
weights loaded), so a start that cannot fit is refused at once instead of
failing an hour later at its first save.

    final model  model/: every weight in the base model's dtype (LoRA and QLoRA
                 runs save the merged model too), plus adapter/ for them
    best         best/: the same again (LoRA: the adapters), when keep_best can
                 measure; counted even though a best at the final step is stored
                 once (saving.store_best_once): which step is best is known only
                 at the end
    checkpoints  with save_steps on, the two the Trainer keeps (save_total_limit=2),
                 each the trained weights in their training dtype and AdamW's two
                 states per trained weight (a stop's single checkpoint is left out:
                 a stop is the person's choice, and fails with a clear line if the disk is full)
    margin       one more copy of the largest folder (a new best is written before
                 the old one goes), and MARGIN of the rest for the tokenizer, metrics, logs
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..memory import model_shape
from ..sources import models

MARGIN = 0.10  # tokenizer, metrics, comparison, TensorBoard logs, and what the arithmetic leaves out
CHECKPOINTS_KEPT = 2  # the Trainer's save_total_limit (train/arguments.py)
OPTIMIZER_STATE_BYTES = {"adamw": 8, "adamw_8bit": 2}  # AdamW's two states per trained weight
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
PUBLISHED_DTYPE_BYTES = 2  # a hub model whose config cannot be read here: most are published in bf16 or fp16


def estimate_bytes(config) -> int | None:
    """The bytes a run with these settings (a TrainConfig) will write; None when the model's
    shape cannot be read (the start is then not refused for want of an estimate)."""
    try:
        parameters, lora = _parameters(config.model, config.lora_r)
    except (model_shape.EstimateError, OSError, ValueError):
        return None
    saved = _saved_dtype_bytes(config.model)
    adapters = config.method in ("lora", "qlora")
    final = parameters * saved + (lora * saved if adapters else 0)
    best = (lora if adapters else parameters) * saved if _keeps_best(config) else 0
    trained = lora if adapters else parameters
    weights = 2 if config.weights == "bf16" and not adapters else 4
    checkpoint = trained * (weights + OPTIMIZER_STATE_BYTES.get(config.optimizer, 8))
    checkpoints = CHECKPOINTS_KEPT * checkpoint if config.save_steps else 0
    largest = max(parameters * saved, best, checkpoint if config.save_steps else 0)
    return int((final + best + checkpoints) * (1 + MARGIN) + largest)


def _keeps_best(config) -> bool:
    """Whether the run will keep a best checkpoint: asked for and with a validation split to measure it."""
    return config.keep_best == "eval_loss" and config.validation_fraction > 0


@lru_cache(maxsize=64)
def _parameters(spec: str, lora_r: int) -> tuple[int, int]:
    """(parameters, LoRA adapter parameters at rank lora_r): read once per model, for every start after."""
    shape = model_shape.shape_from_spec(spec)
    return shape.parameters, shape.lora_parameters(lora_r)


@lru_cache(maxsize=64)
def _saved_dtype_bytes(spec: str) -> int:
    """Bytes per weight of the base model's published dtype, which the run saves in (models.saved_dtype),
    read from a local config without resolving the model (resolving the default converts it)."""
    if spec == models.DEFAULT_SPEC:
        return DTYPE_BYTES[models.DEFAULT_DTYPE]
    try:
        found = json.loads((Path(spec).expanduser() / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return PUBLISHED_DTYPE_BYTES
    name = str(found.get("dtype") or found.get("torch_dtype") or "float32").removeprefix("torch.")
    return DTYPE_BYTES.get(name, 4)
