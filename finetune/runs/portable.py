"""Why a run folder can be copied to another machine: no file of a run holds an
absolute path. A local data file or model folder is recorded relative to the run
folder (to_run_folder) and read back as a path from here (from_run_folder,
usable_paths); people see a file's own name, never a server's path (display_name).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..sources.files import looks_like_path
from ..sources.models import DEFAULT_SPEC

# Suffixes of the data files the loader reads: such a value is a file, not a hub id.
DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv", ".parquet", ".txt", ".gz")


def display_name(value) -> str | None:
    """A name for people from a data or model setting: a file or folder's own name,
    never its server path; a hub id ("owner/name") as it is."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("\\", "/")
    is_path = text.startswith(("/", ".", "~")) or text.count("/") > 1 or text.lower().endswith(DATA_SUFFIXES)
    return (Path(text).name or text) if is_path else text


def to_run_folder(folder: Path, spec: str) -> str:
    """A data or model setting as the run's files record it: a local path
    relative to `folder` (never a server's absolute path; the folder may
    move together with its data), anything else (a hub id, 'default') as it is."""
    if not isinstance(spec, str) or not spec or spec == DEFAULT_SPEC or not looks_like_path(spec):
        return spec
    try:
        relative = os.path.relpath(os.path.abspath(os.path.expanduser(spec)), os.path.abspath(folder))
    except ValueError:  # another drive (Windows): no relative path exists
        return Path(spec).name
    return Path(relative).as_posix()


def from_run_folder(folder: Path, spec) -> Path | None:
    """A path a run's files hold relative to its folder, as a path from here; None
    when `spec` is not such a path (a hub id, 'default') or nothing is there."""
    if not isinstance(spec, str) or not spec or Path(spec).expanduser().is_absolute():
        return None
    candidate = Path(os.path.normpath(Path(folder).absolute() / spec))
    return candidate if candidate.exists() else None


def usable_paths(config: dict, record: dict, folder: Path) -> dict:
    """config.json's `model` (a local folder relative to the run folder) and run.json's
    `data_path` (in place of config.json's `data`, a name) as paths from here.
    What does not resolve from the folder is left as config.json has it (an
    older run's config.json holds its paths as they were given)."""
    found = dict(config)
    for name, spec in (("model", config.get("model")), ("data", record.get("data_path"))):
        path = from_run_folder(folder, spec)
        if path is not None:
            found[name] = str(path)
    return found
