"""Nothing computed twice: what a run measures on its base model before
training (the held-out answers, the general probe's "before", the standard
benchmarks' "before") depends only on that model and what it is asked, so a
class training on the same data, or a sweep, computes it once.

Each measurement is kept under a key: a hash of every input it depends on (the
model's files, the prompts as rendered, so the template and the system prompt
too, the generation settings, the device and precision it ran in, the code's
version of it). Any change of an input is a new key; nothing is ever
invalidated in place. Kept in memory for the runs of one process and on disk
(runs/.reuse/<key>.json) for the next process. A run that reuses one records
the key beside what it reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable

from .folders import write_json

REUSE_DIR = ".reuse"
# Part of every key: a change to how answers are generated or scored makes the
# stored ones stale. Raise it with such a change.
VERSION = 1
WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin")


def model_fingerprint(location: str) -> str:
    """What identifies a model's weights without reading them: for a folder or a file, each
    weight and config file's name, size and modification time; for a hub id, the id."""
    path = Path(location)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and (p.suffix in WEIGHT_SUFFIXES
                                                                       or p.name == "config.json"))
    else:
        return f"hub:{location}"
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)


def key_of(kind: str, **inputs: Any) -> str:
    """The key of a measurement: `kind` and every input, hashed (inputs must be JSON)."""
    text = json.dumps({"kind": kind, "version": VERSION, **inputs}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:24]}"


def reuse_for(root: Path) -> "Reused | None":
    """The store for the runs under `root` (root/.reuse), or None with FINETUNE_REUSE=off (every
    run computes its own: how bench.workshop measures what reuse saves)."""
    if os.environ.get("FINETUNE_REUSE", "").lower() in ("off", "0", "false", "no"):
        return None
    return Reused(Path(root) / REUSE_DIR)


class Reused:
    """Measurements by key, in memory and under `folder` on disk. `get(key, compute)` gives
    (value, reused): a value computed here or earlier, and whether it was reused."""

    def __init__(self, folder: Path | None):
        self.folder = Path(folder) if folder is not None else None
        self._memory: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str, compute: Callable[[], Any], encode=lambda v: v, decode=lambda v: v) -> tuple[Any, bool]:
        """`encode`/`decode` turn the value into JSON and back for the disk."""
        with self._lock:
            if key in self._memory:
                return self._memory[key], True
        stored = self._read(key)
        if stored is not None:
            value = decode(stored)
            with self._lock:
                self._memory[key] = value
            return value, True
        value = compute()
        if value is not None:
            with self._lock:
                self._memory[key] = value
            self._write(key, encode(value))
        return value, False

    def _path(self, key: str) -> Path | None:
        return self.folder / f"{key}.json" if self.folder is not None else None

    def _read(self, key: str):
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))["value"] if path is not None else None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or damaged: computed again

    def _write(self, key: str, value) -> None:
        path = self._path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, {"key": key, "value": value})
        except (OSError, TypeError, ValueError):
            pass  # a full disk or an unexpected value costs the reuse, never the run
