"""Runs as records in storage: what a run folder says about the run, read back
the same way by the app, the command line and the API.

A run folder `<root>/<run-id>/` holds the files of outputs.py plus `run.json`,
the run's record, written when the run is created (queued) and rewritten at
each status change:

    {"id", "status", "owner", "created_at", "started_at", "finished_at",
     "pid", "pid_start", "host", "sweep", "label", "message", "error", "data_name",
     "data_path", "earlier_seconds", "parent", "weights_removed"}

Times are Unix seconds; `earlier_seconds` is how long a resumed run trained
before its latest resume (its duration counts them). `parent` is the run this
one continues from, `{"run_id", "which"}` ("best" or "final"), or null: a run
whose model is another run's saved model (its best/, its model/, or its best
LoRA adapters merged into best-merged/) names that run, whoever started it
(the app's "Continue from this run", or `train --model runs/<id>/best`).
`weights_removed` is `{"at", "after_hours"}` once a public server's retention removed
the run's weights and checkpoints (disk.py), else null.

No file of a run holds an absolute path, so a folder copied to another machine
reads the same there: `data_name` (and config.json's `data`) is the dataset's
name for people; `data_path`, the data file relative to the run folder (for
resuming; None for a hub dataset), and config.json's `model`, a local model
folder relative to the run folder (portable.py). read_config() turns them back into paths. `owner` is owner_hash(key) or "local", never a key.
`pid`, `pid_start` and `host` name the process that holds the run (the server
that queued it, then the one training it), so a reader can tell a live run
from one whose process died (status.py). A sweep folder
`<root>/<sweep-id>/sweep.json` (sweep_records.py) lists its member runs, which
live in the sweep folder or alongside in root.

Readers never crash on a bad folder: a corrupt or half-written run is listed
with status "unreadable" and the reason.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..train.config import load_json
from .folders import (
    COMPARISON_FILE,
    CONFIG_FILE,
    CORRUPT,
    RUN_FILE,
    SUMMARY_FILE,
    find_run,
    is_run,
    is_sweep,
    mtime,
    newest_first,
    number,
    read_json,
    read_metrics,
    run_folders,
    text,
    valid_id,
    visible,
    write_json,
)
from .portable import display_name, from_run_folder, usable_paths
from .status import (
    ACTIVE,
    FINAL,
    ORPHAN_MESSAGES,
    STATUSES,
    orphan_status,
    orphaned,
    this_process,
)

UNREADABLE = "unreadable"  # listed status of a folder whose files cannot be read
LOCAL_OWNER = "local"  # the one owner of a single-user install

RECORD_FIELDS = ("id", "status", "owner", "created_at", "started_at", "finished_at", "pid", "pid_start",
                 "host", "sweep", "label", "message", "error", "data_name", "data_path", "earlier_seconds", "parent",
                 "weights_removed")
# The folders of a run that hold a model another run can start from, and which of its
# models each is: the best checkpoint, the final model, and a LoRA run's best adapters
# merged over its base (export/continuing.py writes it: best/ alone is no model).
MERGED_BEST_DIR = "best-merged"
MODEL_FOLDERS = {"best": "best", MERGED_BEST_DIR: "best", "model": "final"}

NO_SUCH_RUN = "no such run"


class NoSuchRun(LookupError):
    """Unknown id, someone else's run, or an id that is not a name: one message for all,
    so a caller cannot probe which runs exist."""


# --------------------------------------------------------------------------- writing


def owner_hash(key: str) -> str:
    """What a record stores for an owner key: a listing never reveals keys."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def write_record(folder: str | Path, **fields: Any) -> dict:
    """Create (or replace) run.json. Unset fields get defaults: id from the folder
    name, status "queued", owner "local", created now by this process on this host;
    `parent` the run whose model config.json names (parent_of), when it is one."""
    folder = Path(folder)
    record = _new_record(folder) | {"parent": parent_of(read_config(folder).get("model"))} | _checked(fields)
    write_json(folder / RUN_FILE, record)
    return record


def parent_of(model) -> dict | None:
    """{"run_id", "which"} when `model` (a path) is a run's saved model: best/ or best-merged/
    ("best"), model/ ("final") directly inside a run folder; None for anything else."""
    if not isinstance(model, str) or not model:
        return None
    path = Path(model).expanduser()
    which = MODEL_FOLDERS.get(path.name)
    if which is None or not path.is_dir() or not is_run(path.parent):
        return None
    return {"run_id": path.parent.name, "which": which}


def run_holding(root: str | Path, path: str | Path) -> str | None:
    """The id of the run folder under `root` (or in one of its sweeps) that holds `path`;
    None when no run folder of root holds it."""
    root = Path(root).resolve()
    try:
        parts = Path(path).expanduser().resolve().relative_to(root).parts
    except (ValueError, OSError):
        return None
    if len(parts) > 1 and is_sweep(root / parts[0]):
        root, parts = root / parts[0], parts[1:]
    return parts[0] if parts and valid_id(parts[0]) and is_run(root / parts[0]) else None


def update_record(folder: str | Path, **changes: Any) -> dict:
    """Change some fields of run.json. Moving to a running status fills started_at,
    to a final one finished_at, unless given or already set.

    Read-modify-write: each record has one writer at a time (the run's own
    object, under its lock; a sweep's scheduler), so no change is lost."""
    folder = Path(folder)
    changes = _checked(changes)
    record = read_json(folder / RUN_FILE)
    if not isinstance(record, dict):  # missing or corrupt: start over from the defaults
        record = _new_record(folder)
    record.update(_timestamps(record, changes))
    record.update(changes)
    write_json(folder / RUN_FILE, record)
    return record


def _new_record(folder: Path) -> dict:
    return {name: None for name in RECORD_FIELDS} | {
        "id": folder.name, "status": "queued", "owner": LOCAL_OWNER, "created_at": time.time(), **this_process()}


def _checked(fields: dict) -> dict:
    unknown = sorted(set(fields) - set(RECORD_FIELDS))
    if unknown:
        raise ValueError(f"unknown run record fields: {', '.join(unknown)}")
    if "status" in fields and fields["status"] not in STATUSES:
        raise ValueError(f"unknown run status {fields['status']!r}; one of {', '.join(STATUSES)}")
    return fields


def _timestamps(record: dict, changes: dict) -> dict:
    status, now, filled = changes.get("status"), time.time(), {}
    if status in ACTIVE and status != "queued" and "started_at" not in changes and not record.get("started_at"):
        filled["started_at"] = now
    if status in FINAL and "finished_at" not in changes and not record.get("finished_at"):
        filled["finished_at"] = now
    return filled


def mark_orphans(root: str | Path) -> list[str]:
    """Rewrite the run.json of every run whose process is gone (call at server start).
    Returns the ids changed."""
    changed = []
    for folder in run_folders(Path(root)):
        record = read_json(folder / RUN_FILE)
        if not isinstance(record, dict) or not orphaned(record):
            continue
        status = orphan_status(record["status"])
        record.update(status=status, message=ORPHAN_MESSAGES[status])
        write_json(folder / RUN_FILE, record)
        changed.append(folder.name)
    return changed


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RunRecord:
    """One run as its folder says it is. `status` is the effective status: a run
    whose process died reads "interrupted" (or "cancelled" if still queued), never
    running or finished. `history` and `comparison` are read on first use."""

    id: str
    folder: Path
    status: str
    owner: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    sweep: str | None = None
    label: str | None = None
    data_name: str | None = None
    message: str = ""
    error: str | None = None
    pid: int | None = None
    host: str | None = None
    data_path: str | None = None  # the data file, relative to the folder (None for a hub dataset)
    earlier_seconds: float = 0.0  # trained before the latest resume
    parent: dict | None = None  # the run this one continues from: {"run_id", "which"}
    weights_removed: dict | None = None  # {"at", "after_hours"}: retention removed its weights (disk.py)
    config: dict = field(default_factory=dict, repr=False, compare=False)
    summary: dict | None = field(default=None, repr=False, compare=False)
    unreadable: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    @cached_property
    def history(self) -> list[dict]:
        return read_metrics(self.folder)

    @cached_property
    def comparison(self) -> list | None:
        rows = read_json(self.folder / COMPARISON_FILE)
        return rows if isinstance(rows, list) else None


def load_record(folder: str | Path) -> RunRecord:
    """Read one run folder; never raises for bad files."""
    folder = Path(folder)
    record, config = read_json(folder / RUN_FILE), read_json(folder / CONFIG_FILE)
    summary = read_json(folder / SUMMARY_FILE)
    summary = summary if isinstance(summary, dict) else None
    problem = _problem(record, config)
    record = record if isinstance(record, dict) else {}
    # The model as one path from here: one local model reads as one, whichever folder its runs live in.
    config = usable_paths(config, {}, folder) if isinstance(config, dict) else {}
    status = UNREADABLE if problem else _effective_status(record, summary)
    return RunRecord(
        id=folder.name, folder=folder, status=status, owner=_owner(record, problem),
        created_at=number(record.get("created_at")) or mtime(folder),
        started_at=number(record.get("started_at")), finished_at=number(record.get("finished_at")),
        sweep=text(record.get("sweep")), label=text(record.get("label")),
        data_name=display_name(record.get("data_name")) or _data_name(config),
        message=problem or _message(record, summary, status),
        error=text(record.get("error")) or _summary_error(summary),
        pid=record.get("pid") if isinstance(record.get("pid"), int) else None, host=text(record.get("host")),
        data_path=text(record.get("data_path")), earlier_seconds=number(record.get("earlier_seconds")) or 0.0,
        parent=_parent(record.get("parent")), weights_removed=_removed(record.get("weights_removed")),
        config=config, summary=summary, unreadable=problem,
    )


def _parent(value) -> dict | None:
    """run.json's parent as written ({"run_id", "which"}), or None for anything else."""
    if isinstance(value, dict) and isinstance(value.get("run_id"), str) and value.get("which") in ("best", "final"):
        return {"run_id": value["run_id"], "which": value["which"]}
    return None


def _removed(value) -> dict | None:
    """run.json's weights_removed as disk.py writes it, or None for anything else."""
    if isinstance(value, dict) and all(isinstance(value.get(k), (int, float)) for k in ("at", "after_hours")):
        return {"at": float(value["at"]), "after_hours": float(value["after_hours"])}
    return None


def _owner(record: dict, problem: str | None) -> str | None:
    """A folder without run.json was written by the command line: the local owner's.
    One whose run.json cannot be read belongs to nobody we can name."""
    if record:
        return text(record.get("owner")) or LOCAL_OWNER
    return None if problem and problem.startswith(RUN_FILE) else LOCAL_OWNER


def _problem(record, config) -> str | None:
    """Why the folder cannot be read as a run, or None."""
    if record is CORRUPT:
        return f"{RUN_FILE} is not valid JSON"
    if record is not None and not isinstance(record, dict):
        return f"{RUN_FILE} is not a JSON object"
    if isinstance(record, dict) and record.get("status") not in STATUSES:
        return f"{RUN_FILE} has an unknown status {str(record.get('status'))[:40]!r}"
    if config is CORRUPT:
        return f"{CONFIG_FILE} is not valid JSON"
    if config is None:
        return f"{CONFIG_FILE} is missing (the run was never fully written)"
    if not isinstance(config, dict):
        return f"{CONFIG_FILE} is not a JSON object"
    return None


def _effective_status(record: dict, summary: dict | None) -> str:
    if not record:  # written by the command line before run.json existed
        status = summary.get("status") if summary else None
        return status if status in FINAL else "interrupted"
    return orphan_status(record["status"]) if orphaned(record) else record["status"]


def _message(record: dict, summary: dict | None, status: str) -> str:
    if record and status != record.get("status"):
        return ORPHAN_MESSAGES[status]
    if not record and not summary:
        return "no summary: the run ended before it finished"
    return text(record.get("message")) or ""


def _summary_error(summary: dict | None) -> str | None:
    return text(summary.get("error")) if summary else None


def _data_name(config: dict) -> str | None:
    return display_name(config.get("data"))


def read_config(folder: str | Path) -> dict:
    """A run's config.json with its data file and model folder as paths usable from
    here ({} when missing or unreadable): what resuming it, or asking its base model
    a question, needs."""
    folder = Path(folder)
    config, record = read_json(folder / CONFIG_FILE), read_json(folder / RUN_FILE)
    if not isinstance(config, dict):
        return {}
    return usable_paths(config, record if isinstance(record, dict) else {}, folder)


def load_settings(path: str | Path) -> dict:
    """Settings from a JSON file (train.config.load_json); a run's own config.json
    (run.json beside it) gives its data file and model folder as paths from here,
    so `train --config runs/<id>/config.json` starts the same run again."""
    values, folder = load_json(path), Path(path).parent
    record = read_json(folder / RUN_FILE) if Path(path).name == CONFIG_FILE else None
    return usable_paths(values, record, folder) if isinstance(record, dict) else values


# --------------------------------------------------------------------------- listing


def list_runs(root: str | Path, owner: str | None = None) -> list[RunRecord]:
    """Every run under root, newest first; with an owner hash, only that owner's."""
    records = [load_record(folder) for folder in run_folders(Path(root))]
    return newest_first([r for r in records if visible(r, owner)])


def read_run(root: str | Path, run_id: str, owner: str | None = None) -> RunRecord:
    """One run by id, or NoSuchRun: the same for an unknown id, another owner's run
    and an id that is not a name."""
    folder = find_run(Path(root), run_id)
    record = load_record(folder) if folder else None
    if record is None or not visible(record, owner):
        raise NoSuchRun(NO_SUCH_RUN)
    return record
