"""A finished run's model as the base of the next run ("Continue from this run"):
DPO usually starts from a supervised run. The next run's `model` setting is a
folder of the earlier run, and its record names that run as its parent
(runs/records.py parent_of reads it off the folder):

    best/          the best checkpoint of a full fine-tuning run
    model/         the final model (a LoRA run's is merged already)
    best-merged/   a LoRA or QLoRA run's best adapters merged over its base, written
                   here once (checkpoint.merge_adapters, as an export does) and kept in
                   the run folder for every run that continues from it; rewritten if
                   the run is resumed and keeps a later best

Nothing here changes the run's own files: best/ and model/ stay as they were.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..runs.outputs import BEST_INFO, RunFolder
from ..runs.records import MERGED_BEST_DIR
from ..train.trainer import replace_folder
from .checkpoint import ADAPTER_CONFIG, WHICH, ExportError, has_final_model, merge_adapters, no_best_message


def continue_model(folder: str | Path, which: str, progress=lambda text: None) -> tuple[Path, str]:
    """(the folder of the run's model to start the next run from, which one it is). `which`
    "best" for a run that kept no best checkpoint gives its final model; ExportError, in one
    line, when the run has neither."""
    if which not in WHICH:
        raise ExportError(f"which: {which!r} is not one of {', '.join(WHICH)}")
    run = RunFolder(Path(folder))
    best = run.best() if which == "best" else None
    if best is not None:
        return _best_model(run, best, progress), "best"
    if has_final_model(folder):
        return run.model_dir, "final"
    if which == "best":
        raise ExportError(f"{no_best_message(folder)}; it has no final model either (it ended before saving one)")
    raise ExportError(f"{run.root.name} has no final model (it ended before saving one); continue from its best "
                      "checkpoint instead")


def _best_model(run: RunFolder, best: dict, progress) -> Path:
    """best/ itself, or for adapters the merged model in best-merged/ (merged again when
    best/ has moved on since: best.json's step is kept beside the merged weights)."""
    kept = run.root / best["folder"]
    if not (kept / ADAPTER_CONFIG).is_file():
        return kept
    merged = run.root / MERGED_BEST_DIR
    if _merged_step(merged) == best["step"]:
        return merged

    def write(target: Path) -> None:
        merge_adapters(kept, run.root, target, progress)
        shutil.copy2(kept / BEST_INFO, target / BEST_INFO)

    replace_folder(merged, write)
    return merged


def _merged_step(merged: Path) -> int | None:
    try:
        return int(json.loads((merged / BEST_INFO).read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
