"""Sweeps as records in storage: a sweep folder `<root>/<sweep-id>/sweep.json`
lists its member runs (which live in the sweep folder or alongside in root),
the setting and values swept, and the verdict once every run has finished.
Read back the same way by the app, the command line and the API; running a
sweep is experiments/sweep.py and experiments/scheduler.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .folders import (
    SWEEP_FILE,
    children,
    find_run,
    is_sweep,
    mtime,
    newest_first,
    number,
    read_json,
    text,
    valid_id,
    visible,
    write_json,
)
from .records import LOCAL_OWNER, NoSuchRun, RunRecord, load_record

SWEEP_FIELDS = ("id", "kind", "setting", "values", "runs", "created_at", "owner", "verdict")
NO_SUCH_SWEEP = "no such sweep"


def write_sweep(folder: str | Path, **fields: Any) -> dict:
    """Create or update sweep.json (same atomic write as run.json)."""
    folder = Path(folder)
    unknown = sorted(set(fields) - set(SWEEP_FIELDS))
    if unknown:
        raise ValueError(f"unknown sweep fields: {', '.join(unknown)}")
    sweep = read_json(folder / SWEEP_FILE)
    if not isinstance(sweep, dict):
        sweep = {name: None for name in SWEEP_FIELDS} | {
            "id": folder.name, "kind": "sweep", "runs": [], "values": [], "created_at": time.time(),
            "owner": LOCAL_OWNER}
    sweep.update(fields)
    write_json(folder / SWEEP_FILE, sweep)
    return sweep


@dataclass(frozen=True)
class Sweep:
    """A sweep's record and the member runs found by id (missing ones are left out)."""

    id: str
    folder: Path
    setting: str | None
    values: list
    run_ids: list[str]
    runs: list[RunRecord]
    created_at: float | None
    owner: str | None
    verdict: dict | None
    unreadable: str | None = None


def load_sweep(root: Path, folder: Path) -> Sweep:
    data = read_json(folder / SWEEP_FILE)
    problem = None if isinstance(data, dict) else f"{SWEEP_FILE} is not a valid JSON object"
    data = data if isinstance(data, dict) else {}
    run_ids = [r for r in data.get("runs") or [] if valid_id(r)] if isinstance(data.get("runs"), list) else []
    runs = [load_record(path) for path in (find_run(root, r) for r in run_ids) if path is not None]
    return Sweep(id=folder.name, folder=folder, setting=text(data.get("setting")),
                 values=data.get("values") if isinstance(data.get("values"), list) else [], run_ids=run_ids,
                 runs=newest_first(runs), created_at=number(data.get("created_at")) or mtime(folder),
                 owner=text(data.get("owner")), verdict=data.get("verdict") if isinstance(data.get("verdict"), dict)
                 else None, unreadable=problem)


def read_sweep(root: str | Path, sweep_id: str, owner: str | None = None) -> Sweep:
    """One sweep by id, or NoSuchRun("no such sweep") on the same terms as read_run."""
    root = Path(root)
    folder = root / sweep_id if valid_id(sweep_id) else None
    sweep = load_sweep(root, folder) if folder is not None and is_sweep(folder) else None
    if sweep is None or (owner is not None and sweep.owner != owner):
        raise NoSuchRun(NO_SUCH_SWEEP)
    if owner is not None:  # a member run of someone else never shows, even if listed
        sweep = replace(sweep, runs=[r for r in sweep.runs if visible(r, owner)])
    return sweep


def list_sweeps(root: str | Path, owner: str | None = None) -> list[Sweep]:
    """Every sweep under root, newest first; with an owner hash, only that owner's."""
    root = Path(root)
    sweeps = [load_sweep(root, folder) for folder in children(root) if is_sweep(folder)]
    sweeps = [s for s in sweeps if owner is None or s.owner == owner]
    return sorted(sweeps, key=lambda s: (s.created_at or 0.0, s.id), reverse=True)
