"""A person's own data, collected while chatting with a run's models: the
preference pairs they marked (pairs.jsonl: `prompt` as messages, `chosen` and
`rejected` each an assistant message, read as format "preference") and the
answers they edited into the ones wanted (sft.jsonl: `messages`, read as format
"messages"). Each record also has an `id`, so marking a turn again replaces its
record instead of adding a second one.

The files live in the runs folder under `.chat-data/<owner>/`: the owner is the
one a run records (a hash of the owner key in public mode), so only that person
reaches them; the folder's name starts with a dot, so no run listing reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path

FOLDER = ".chat-data"
KINDS = {"pairs": "pairs.jsonl", "sft": "sft.jsonl"}
# Records per file: a person's marks and edits, far more than a chat session makes; a
# client scripting the API cannot fill the server's disk.
MAX_RECORDS = 5_000
SAFE_OWNER = re.compile(r"[A-Za-z0-9_-]{1,128}")
_WRITING = threading.Lock()  # one writer at a time: each write reads the file and replaces it whole


class CollectedData:
    def __init__(self, runs_root: str | Path, owner: str):
        name = owner if SAFE_OWNER.fullmatch(owner or "") else hashlib.sha256(str(owner).encode()).hexdigest()
        self.folder = Path(runs_root) / FOLDER / name

    def path(self, kind: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
        return self.folder / KINDS[kind]

    def records(self, kind: str) -> list[dict]:
        """The file's records (a line that is not a JSON object, left by hand, is skipped)."""
        try:
            lines = self.path(kind).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        found = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                found.append(record)
        return found

    def put(self, kind: str, key: str, record: dict | None) -> int:
        """Save `record` under `key`, replacing one saved under it before (None: remove
        it); returns how many records the file holds. ValueError when it is full."""
        with _WRITING:
            found = self.records(kind)
            kept = [r for r in found if r.get("id") != key]
            if record is None and len(kept) == len(found):
                return len(kept)  # nothing to remove: the file stays as it is (or absent)
            if record is not None:
                if len(kept) >= MAX_RECORDS:
                    raise ValueError(f"your {KINDS[kind]} holds {MAX_RECORDS:,} records, the most it may; train on "
                                     "it, or remove some")
                kept.append({"id": key, **record})
            self._write(self.path(kind), kept)
            return len(kept)

    def counts(self) -> dict[str, int]:
        return {kind: len(self.records(kind)) for kind in KINDS}

    def available(self) -> dict[str, Path]:
        """The files that hold at least one record, by kind."""
        return {kind: self.path(kind) for kind, n in self.counts().items() if n}

    @staticmethod
    def _write(path: Path, records: list[dict]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        os.replace(partial, path)  # a reader never sees half a file
