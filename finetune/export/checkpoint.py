"""Which of a run's models leaves the lab: the final one (model/) or the one
kept at the lowest validation loss (best/, written by train.trainer.BestCheckpoint).

A LoRA run's best/ holds its adapters only; they are merged here over the
base model loaded in its own dtype (as the final model was saved), so what is
exported is always a plain model folder that `from_pretrained` loads.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..runs.outputs import RunFolder
from ..runs.records import read_config
from ..sources import models

WHICH = ("best", "final")
ADAPTER_CONFIG = "adapter_config.json"  # what peft's save_pretrained writes beside the adapter weights


class ExportError(ValueError):
    """The run has nothing to export; the message says why."""


def default_which(folder: str | Path) -> str:
    """The best checkpoint when the run kept one, else the final model."""
    return "best" if RunFolder(Path(folder)).best() else "final"


def has_final_model(folder: str | Path) -> bool:
    model_dir = RunFolder(Path(folder)).model_dir
    return model_dir.is_dir() and any(model_dir.glob("*.safetensors"))


def no_best_message(folder: str | Path) -> str:
    return (f"{Path(folder).name} kept no best checkpoint (keep_best was off, or the run had no validation split "
            "or no evaluation yet); export the final model instead")


@contextmanager
def model_folder(folder: str | Path, which: str, progress=lambda text: None) -> Iterator[Path]:
    """The folder whose files are the exported model: model/, best/, or (for
    best LoRA adapters) a temporary folder of the merged model, removed after."""
    if which not in WHICH:
        raise ExportError(f"which: {which!r} is not one of {', '.join(WHICH)}")
    run = RunFolder(Path(folder))
    if which == "final":
        yield run.model_dir
        return
    best = run.best()
    if best is None:
        raise ExportError(no_best_message(folder))
    kept = run.root / best["folder"]
    if not (kept / ADAPTER_CONFIG).is_file():
        yield kept
        return
    with tempfile.TemporaryDirectory(prefix=".merged-", dir=run.root) as scratch:
        merge_adapters(kept, run.root, Path(scratch), progress)
        yield Path(scratch)


def merge_adapters(adapters: Path, run_root: Path, target: Path, progress=lambda text: None) -> None:
    """The base model in its own dtype with the adapters merged in, saved with the run's tokenizer."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    try:
        spec = read_config(run_root)["model"]  # a local base is recorded relative to the run folder
        source = models.resolve(spec)
        progress(f"merging the best checkpoint's adapters into {source.label}")
        base, _ = models.load(source, dtype=models.saved_dtype(source), progress=progress)
    except (OSError, ValueError, KeyError) as err:
        raise ExportError(f"the best checkpoint holds LoRA adapters, and the base model to merge them into "
                          f"cannot be loaded: {err}") from None
    merged = PeftModel.from_pretrained(base, adapters).merge_and_unload()
    merged.save_pretrained(target, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapters).save_pretrained(target)


def checkpoint_summary(folder: str | Path, which: str, summary: dict | None = None) -> str:
    """One line for the model card: which weights these are, at which step, with which validation loss
    (the best checkpoint's as best.json records it: an interrupted run has no summary)."""
    best = RunFolder(Path(folder)).best() if which == "best" else None
    summary = _summary(folder) if summary is None else summary
    if best:
        return f"best: step {best['step']}, validation loss {_loss(best['eval_loss'])}"
    steps = summary.get("steps")
    return f"final: step {steps if steps is not None else '?'}, last validation loss " \
           f"{_loss(summary.get('final_validation_loss'))}"


def _loss(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "n/a"


def _summary(folder: str | Path) -> dict:
    try:
        found = json.loads((Path(folder) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
