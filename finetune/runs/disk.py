"""The disk runs leave behind: what each uses, deleting runs, and on a public
server the rules that keep a class from filling it (a retention period for
weights and checkpoints, a quota per person).

A default run leaves about 530 MB and a stopped one 1.5 GB more of checkpoints;
thirty students fill tens of GB, and a full disk fails every run after it. So:

- a run is deleted whole or not at all: its folder is first renamed to a hidden
  name in the same parent (which no listing reads: folders.valid_id refuses a
  leading dot), then removed; a crash between the two leaves only a hidden
  folder, which clean_half_deleted() removes at the next start;
- runs that are queued or training are never deleted (cancel or stop them first);
- retention removes only what is heavy (WEIGHT_FOLDERS): the record, metrics,
  comparison and summary stay, and run.json's `weights_removed` says when and why;
- the quota counts a person's run folders as `du` does: each file once, even when
  best/ shares its weights with model/ (saving.store_best_once).

Where the policy comes from: public mode turns retention and the quota on
(FINETUNE_KEEP_HOURS, FINETUNE_RUN_QUOTA_MB; 0 turns either off); locally one
person owns the disk and neither applies. The clock is injectable for tests.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import records, sweep_records
from .folders import RUN_FILE, SWEEP_FILE, children, is_sweep, read_json
from .status import ACTIVE, FINAL

MB = 1_000_000  # disk sizes are shown in MB (10^6 bytes), as `du --si` and file managers show them
TRASH_PREFIX = ".deleting-"  # a folder being removed; never listed, removed at the next start
# What retention removes: every copy of a run's weights (final, best, merged best, adapters,
# Trainer checkpoints, a Hub upload laid out, exported zips), nothing it was measured by.
WEIGHT_FOLDERS = ("model", "best", ".best-replaced", records.MERGED_BEST_DIR, "adapter", "checkpoints", "hub",
                  "export")
PUBLIC_QUOTA_MB = 2500  # a stopped default run (530 MB + 1.5 GB of checkpoints), or four finished ones
PUBLIC_KEEP_HOURS = 24.0  # a lesson and the evening after it: time to export what a student wants to keep
EXPIRE_EVERY_S = 600.0  # how often a listing looks for weights past retention (a start always looks)


class CannotDelete(ValueError):
    """A run that may not be deleted now (queued or training); one line saying what to do."""


# --------------------------------------------------------------------------- sizes


def folder_bytes(folder: str | Path) -> int:
    """The bytes a folder holds, each file once however many hard links it has
    (as `du` counts): best/ linked to model/ counts once. 0 for a missing folder."""
    seen, total, stack = set(), 0, [Path(folder)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    if (info.st_dev, info.st_ino) not in seen:
                        seen.add((info.st_dev, info.st_ino))
                        total += info.st_size
            except OSError:
                continue  # removed while counted
    return total


def megabytes(count: int) -> float:
    return round(count / MB, 1)


def mb_text(count: int) -> str:
    return f"{count / MB:,.0f} MB"


# --------------------------------------------------------------------------- removing, atomically


def move_aside(path: Path) -> Path | None:
    """Rename `path` to a hidden name in its own folder (one rename: atomic); None when it is gone."""
    trash = path.with_name(f"{TRASH_PREFIX}{path.name}-{secrets.token_hex(3)}")
    try:
        path.rename(trash)
    except FileNotFoundError:
        return None
    return trash


def empty(trash: list[Path]) -> None:
    for path in trash:
        shutil.rmtree(path, ignore_errors=True)


def clean_half_deleted(root: str | Path) -> int:
    """Remove what a crash left half-deleted: hidden TRASH_PREFIX folders in root, in its
    sweeps, and in their runs (retention's). Returns how many were removed."""
    root, found = Path(root), []
    for folder in [root, *children(root)]:
        inside = children(folder) if is_sweep(folder) else []
        for parent in [folder, *inside]:
            found += [p for p in _hidden(parent) if p.name.startswith(TRASH_PREFIX)]
    empty(found)
    return len(found)


def _hidden(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.name.startswith(".") and p.is_dir()]
    except OSError:
        return []


# --------------------------------------------------------------------------- deleting runs


@dataclass
class Deleting:
    """Runs moved aside (no longer listed), to be removed by finish(), outside any lock."""

    ids: list[str] = field(default_factory=list)
    freed: int = 0
    sweeps: list[Path] = field(default_factory=list)  # sweep folders whose member list changed
    trash: list[Path] = field(default_factory=list)

    def finish(self) -> dict:
        empty(self.trash)
        return {"deleted": self.ids, "freed_mb": megabytes(self.freed)}


def start_deleting(root: str | Path, run_ids, owner: str | None, busy: dict[str, str],
                   used_by: dict[str, str] | None = None) -> Deleting:
    """Check every run first (all are deleted or none), then move each aside. `owner`:
    only that owner's runs (None: every run, locally); `busy`: run id -> status of the
    runs this server has waiting or training; `used_by`: run id -> the run waiting or
    training whose model it holds (continued from it). NoSuchRun for a run that is not
    the owner's; CannotDelete for one that is queued or training, or whose model is in use."""
    root = Path(root)
    if not isinstance(run_ids, (list, tuple)) or not run_ids or not all(isinstance(r, str) for r in run_ids):
        raise ValueError("run_ids: give a list of one or more run ids")
    wanted = [records.read_run(root, run_id, owner) for run_id in dict.fromkeys(run_ids)]
    for record in wanted:
        _check_deletable(record, busy.get(record.id), (used_by or {}).get(record.id))
    done = Deleting()
    for record in wanted:
        size = folder_bytes(record.folder)
        trash = move_aside(record.folder)
        if trash is None:
            continue
        done.ids.append(record.id)
        done.freed += size
        done.trash.append(trash)
        if record.sweep:
            _leave_sweep(root, record, done)
    return done


def _check_deletable(record, live_status: str | None, used_by: str | None = None) -> None:
    status = live_status or record.status
    if status in ACTIVE:
        what = "cancel it first" if status == "queued" else "stop it first, and delete it once it has stopped"
        raise CannotDelete(f"run {record.id} is {status}: {what}")
    if used_by:  # its best/ or model/ is the model that run loads, and merges its adapters over at the end
        raise CannotDelete(f"run {record.id} holds the model of {used_by}: delete it once that run has ended")


def _leave_sweep(root: Path, record, done: Deleting) -> None:
    """The sweep no longer lists the run; a sweep left with no run goes too."""
    folder = root / record.sweep
    data = read_json(folder / SWEEP_FILE)
    if not isinstance(data, dict):
        return
    left = [r for r in data.get("runs") or [] if r != record.id]
    sweep_records.write_sweep(folder, runs=left)
    if left:
        done.sweeps.append(folder)
        return
    trash = move_aside(folder)
    if trash is not None:
        done.trash.append(trash)
        done.sweeps = [s for s in done.sweeps if s != folder]


# --------------------------------------------------------------------------- retention


def weights_on_disk(folder: Path) -> list[Path]:
    return [folder / name for name in WEIGHT_FOLDERS if (folder / name).exists()]


def past_retention(root: str | Path, keep_seconds: float, now: float) -> list:
    """The runs that ended more than `keep_seconds` before `now` and still hold weights or
    checkpoints (an active run is never one: only a finished status counts)."""
    found = []
    for record in records.list_runs(Path(root)):
        ended = record.finished_at or record.created_at
        if record.status in FINAL and ended is not None and now - ended > keep_seconds \
                and weights_on_disk(record.folder):
            found.append(record)
    return found


def remove_weights(record, now: float, keep_seconds: float) -> list[Path]:
    """Note in run.json that the run's weights go, then move them aside; returns the trash to
    empty. The note comes first, so a crash leaves a note and weights that the next pass
    removes, never weights gone without a word."""
    records.update_record(record.folder, weights_removed={"at": now, "after_hours": keep_seconds / 3600})
    return [trash for trash in map(move_aside, weights_on_disk(record.folder)) if trash is not None]


def removed_note(folder: str | Path) -> str | None:
    """One line when retention removed this run's weights: when, and how to keep a model; else None."""
    record = read_json(Path(folder) / RUN_FILE)
    removed = record.get("weights_removed") if isinstance(record, dict) else None
    if not isinstance(removed, dict):
        return None
    hours = removed.get("after_hours")
    after = f"{_hours(hours)} after it ended" if isinstance(hours, (int, float)) else "after it ended"
    return (f"the weights and checkpoints of run {Path(folder).name} were removed {after}: this public server keeps "
            "them only for a while, so its disk does not fill (its record, metrics and comparison stay); to keep a "
            "model, export it or push it to the Hub soon after its run ends, or run the lab on your own machine")


def _hours(hours: float) -> str:
    return f"{hours:g} hour{'s' * (hours != 1)}"


# --------------------------------------------------------------------------- quota


def usage(found: list) -> list[tuple[object, int]]:
    """(record, bytes) of each run, biggest first."""
    return sorted(((r, folder_bytes(r.folder)) for r in found), key=lambda pair: -pair[1])


def quota_refusal(found: list, quota: int) -> str | None:
    """One line when the runs in `found` (one person's) use more than `quota` bytes: how much,
    and which runs to delete (the biggest ended ones, until the rest fits); else None."""
    sized = usage(found)
    used = sum(size for _, size in sized)
    if used <= quota:
        return None
    names, freed = [], 0
    for record, size in sized:
        if record.status in FINAL and used - freed > quota:
            names.append(f"{record.id} ({mb_text(size)})")
            freed += size
    which = f": {', '.join(names)}" if names else ""
    return (f"your runs use {mb_text(used)} of this server's disk, over the {mb_text(quota)} each person may keep; "
            f"delete runs you no longer need (Experiments tab){which}")


# --------------------------------------------------------------------------- free space


def space_refusal(needed: int, free: int, pending: int = 0) -> str | None:
    """One line when `free` bytes cannot hold the `needed` bytes of the run asked for beside the
    `pending` bytes the runs already waiting or training have yet to write; else None."""
    if needed + pending <= free:
        return None
    beside = f", beside the {mb_text(pending)} the runs waiting or training will write," if pending else ""
    return (f"not enough disk for this run: its model, best checkpoint and checkpoints need about "
            f"{mb_text(needed)}{beside} and {mb_text(free)} are free; delete runs you no longer need "
            "(Experiments tab) or free some space")


# --------------------------------------------------------------------------- the policy


def _env_number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if math.isfinite(value) and value >= 0 else default


@dataclass
class DiskPolicy:
    """What this server allows: `quota_mb` per person and `keep_hours` of weights (None: no limit),
    checked on `clock`'s time; `free_bytes(root)` is the free space (a test gives a small disk)."""

    quota_mb: float | None = None
    keep_hours: float | None = None
    clock: Callable[[], float] = time.time
    free_bytes: Callable[[Path], int] = field(default=lambda root: shutil.disk_usage(root).free)
    _expired_at: float | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, public: bool) -> "DiskPolicy":
        if not public:
            return cls()
        quota = _env_number("FINETUNE_RUN_QUOTA_MB", PUBLIC_QUOTA_MB)
        hours = _env_number("FINETUNE_KEEP_HOURS", PUBLIC_KEEP_HOURS)
        return cls(quota_mb=quota or None, keep_hours=hours or None)

    def due(self, force: bool) -> bool:
        """Whether retention should look now: always when forced (a start), else every EXPIRE_EVERY_S."""
        if not self.keep_hours:
            return False
        now = self.clock()
        if force or self._expired_at is None or now - self._expired_at >= EXPIRE_EVERY_S:
            self._expired_at = now
            return True
        return False

    def past_retention(self, root: Path) -> list:
        return past_retention(root, self.keep_hours * 3600, self.clock())

    def remove_weights(self, record) -> list[Path]:
        return remove_weights(record, self.clock(), self.keep_hours * 3600)

    def refusal(self, root: Path, needed: int | None, mine: list, pending: int = 0) -> str | None:
        """Why a start must wait, in one line: the person's runs (`mine`) over their quota, then
        the free space for `needed` bytes beside `pending` (None: the run's outputs could not be
        estimated, and it is not refused for that); else None."""
        if self.quota_mb:
            over = quota_refusal(mine, int(self.quota_mb * MB))
            if over:
                return over
        if needed is None:
            return None
        return space_refusal(needed, self.free_bytes(root), pending)
