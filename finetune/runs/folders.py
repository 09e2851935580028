"""Where runs and sweeps live under a root, and how their JSON files are read
and written: the storage that records.py (runs) and sweep_records.py (sweeps)
both stand on.

A run folder is `<root>/<run-id>/` or, inside a sweep, `<root>/<sweep-id>/<run-id>/`;
a sweep folder holds sweep.json. Ids are names, never paths. Files are written
atomically and read without ever raising: a missing file reads as None, a
corrupt one as CORRUPT.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

RUN_FILE, SWEEP_FILE = "run.json", "sweep.json"
CONFIG_FILE, SUMMARY_FILE = "config.json", "summary.json"
METRICS_FILE, COMPARISON_FILE = "metrics.jsonl", "comparison.json"
# Any of these makes a folder a run folder (a half-written one if config.json is
# missing); a folder with none of them is something else and is not listed.
RUN_MARKERS = (RUN_FILE, CONFIG_FILE, SUMMARY_FILE, METRICS_FILE, COMPARISON_FILE, "model")

# A run id is a name, never a path: letters, digits, '.', '_', '-', starting with
# a letter or digit (so never '.', '..' or a hidden folder), no separators.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

CORRUPT = object()  # what read_json gives for a file that exists but is not valid JSON


def read_json(path: Path):
    """The parsed file, None when missing, CORRUPT when unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return CORRUPT


def read_metrics(folder: str | Path) -> list[dict]:
    """metrics.jsonl as dicts, skipping a line cut short by a kill (or any bad line)."""
    try:
        lines = (Path(folder) / METRICS_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("step"), (int, float)):
            entries.append(entry)
    return entries


def read_json_object(path: Path) -> dict:
    """A JSON object file; {} when missing, unreadable or not an object."""
    data = read_json(path)
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data) -> None:
    """A JSON file written atomically (write_atomically)."""
    write_atomically(path, json.dumps(data, indent=2, ensure_ascii=False))


def write_atomically(path: Path, text: str) -> None:
    """Temp file + os.replace: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def text(value) -> str | None:
    """A non-empty string from a record's field, else None."""
    return value if isinstance(value, str) and value else None


def number(value) -> float | None:
    """A number from a record's field (never a bool), else None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def mtime(folder: Path) -> float | None:
    """When a run without a record began: its config.json was written at the start."""
    for path in (folder / CONFIG_FILE, folder):
        try:
            return path.stat().st_mtime
        except OSError:
            continue
    return None


def valid_id(name) -> bool:
    return isinstance(name, str) and RUN_ID_PATTERN.fullmatch(name) is not None


def children(folder: Path) -> list[Path]:
    """The sub-folders whose names are valid ids, sorted. A hidden folder is never one: a run
    being deleted is first renamed `.deleting-<id>` (disk.py), so half a run is never listed."""
    try:
        return sorted(p for p in folder.iterdir() if valid_id(p.name) and p.is_dir())
    except OSError:
        return []


def is_sweep(folder: Path) -> bool:
    return (folder / SWEEP_FILE).is_file()


def is_run(folder: Path) -> bool:
    return not is_sweep(folder) and any((folder / marker).exists() for marker in RUN_MARKERS)


def run_folders(root: Path) -> list[Path]:
    """Run folders in root and, one level down, inside sweep folders (only there:
    a run's own model/ folder holds a config.json too)."""
    found = []
    for child in children(root):
        if is_sweep(child):
            found.extend(p for p in children(child) if is_run(p))
        elif is_run(child):
            found.append(child)
    return found


def find_run(root: Path, run_id) -> Path | None:
    """The folder of run `run_id` in root or in one of its sweeps; None for anything else."""
    if not valid_id(run_id):
        return None
    for folder in [root / run_id] + [sweep / run_id for sweep in children(root) if is_sweep(sweep)]:
        if folder.is_dir() and is_run(folder):
            return folder
    return None


def visible(record, owner: str | None) -> bool:
    """Whether a run or sweep record shows to `owner` (None: to everyone)."""
    return owner is None or record.owner == owner


def newest_first(records: list) -> list:
    return sorted(records, key=lambda r: (r.created_at or 0.0, r.id), reverse=True)
