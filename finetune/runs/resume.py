"""Resuming a run: in its own folder and record, from its last complete
checkpoint, with the settings its config.json recorded. What can be resumed,
and why not, said in one line.

A run stopped with Stop saves a checkpoint where it stopped. A run interrupted
(its process died) or failed has checkpoints only if `save_steps` was set: one
every save_steps steps, the last two kept.
"""

from __future__ import annotations

from pathlib import Path

from ..train import config as cfg
from . import records
from .outputs import RunFolder
from .portable import from_run_folder

RESUMABLE = ("stopped", "interrupted")
# The words of a failure that leaves a run resumable (worker.explain_failure: a full disk during a save).
CHECKPOINT_KEPT = "the last complete checkpoint is kept"
WHY_NO_CHECKPOINT = ("a run stopped with Stop saves one; an interrupted or failed run has them only if "
                     "save_steps was set")


class CannotResume(ValueError):
    """Why a run cannot be resumed, in one line; nothing was changed."""


def offered(status: str, error: str | None) -> bool:
    """Whether a run that ended this way can continue: stopped, interrupted, or
    failed in a way that kept its checkpoint (a failure of its settings would
    fail again with the same settings)."""
    return status in RESUMABLE or (status == "failed" and CHECKPOINT_KEPT in (error or ""))


def checkpoint_step(folder: str | Path) -> int | None:
    """The step of the run's last complete checkpoint, or None."""
    from ..train.trainer import checkpoint_step, last_complete_checkpoint  # transformers: imported when a run is looked at

    found = last_complete_checkpoint(RunFolder(Path(folder)).checkpoints_dir)
    return checkpoint_step(found) if found else None


def refusal(record: records.RunRecord) -> str | None:
    """Why this run cannot be resumed now, or None when it can."""
    if not offered(record.status, record.error):
        return (f"run {record.id} is {record.status}: only a stopped or interrupted run, or one that failed "
                "keeping its checkpoint, can be resumed")
    if checkpoint_step(record.folder) is None:
        return f"run {record.id} has no complete checkpoint to resume from: {WHY_NO_CHECKPOINT}"
    return None


def settings(record: records.RunRecord) -> cfg.Checked:
    """The settings the run trained with, its data file and model folder found
    from its folder; CannotResume when one of them is gone (a folder that moved
    without its data)."""
    config = records.read_config(record.folder)
    if not config:
        raise CannotResume(f"run {record.id}: its config.json cannot be read")
    if record.data_path and from_run_folder(record.folder, record.data_path) is None:
        raise CannotResume(f"the data file {record.data_name or record.data_path} is gone (it was at "
                           f"{record.data_path} from the run folder; was the folder moved?): put it back to resume")
    model = config.get("model")
    if isinstance(model, str) and model.startswith(("./", "../")):  # still relative: it did not resolve
        raise CannotResume(f"the model folder {Path(model).name} is gone (it was at {model} from the run folder; "
                           "was the folder moved?): put it back to resume")
    config.pop("resolved", None)
    try:  # the run was accepted with these values once: out-of-range ones were allowed then
        return cfg.build(config, allow_out_of_range=True)
    except cfg.ConfigError as err:
        raise CannotResume(f"run {record.id}: its settings are refused now: {err}") from None


def trained_seconds(folder: str | Path) -> float:
    """How long the run has trained so far, over all its sessions: its summary's
    duration when the last session ended cleanly; else the earlier sessions plus
    the last one up to its last logged step (a killed process writes no summary)."""
    record = records.load_record(folder)
    duration = (record.summary or {}).get("duration_seconds")
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        return float(duration)
    times = [h["time"] for h in record.history if isinstance(h.get("time"), (int, float))]
    session = max(times) - record.started_at if times and record.started_at else 0.0
    return record.earlier_seconds + max(session, 0.0)
