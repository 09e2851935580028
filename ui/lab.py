"""What one app instance knows between requests: the scheduler (the trainer,
its queue and who owns which run), where uploads live, and a few loaded
objects worth keeping (tokenizers).

One Lab is made by build_app(); nothing here is module-level state. Each
request names its caller by an owner key (kept in the browser, or given by an
API client; else the client's session): in public mode every read and action
is checked against it by the scheduler.
"""

from __future__ import annotations

import secrets
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from finetune import ASSETS
from finetune.experiments.scheduler import Scheduler
from finetune.runs.records import NoSuchRun
from finetune.runs.run import Snapshot, TrainingRun
from finetune.sources import models
from finetune.sources.files import SUFFIXES, Limits
from finetune.sources.hub_token import redact

_TOP = Path(__file__).resolve().parent.parent
# The checkout the app runs from (app.py and assets/ beside ui/), or None when the lab
# is installed as a package: its assets are then inside the package (finetune.ASSETS).
REPO_ROOT: Path | None = _TOP if (_TOP / "app.py").is_file() and ASSETS == _TOP / "assets" else None
DEMO_DATASET = "demo/demo.jsonl"
# Public mode: a claimed upload is deleted after an hour unused (as Gradio deletes its
# cache), so a public server's disk does not fill. Runs carry their prepared data; only
# a sweep over a data setting reads the file again, when each run starts.
UPLOAD_KEEP_SECONDS = 3600


def user_error(err: BaseException | str, token: str | None = None) -> gr.Error:
    """An engine error as a toast for the user; a typed-in token never reaches it."""
    return gr.Error(redact(str(err), token), print_exception=False)


def bundled_datasets(root: Path = ASSETS) -> dict[str, Path]:
    """Dataset files shipped under assets/, by their path relative to it."""
    if not root.is_dir():
        return {}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    return {p.relative_to(root).as_posix(): p for p in files}


MIN_KEY_CHARS = 16  # an owner key is a secret: a short one could be guessed


@dataclass(frozen=True)
class Shown:
    """A run as a page shows it: its snapshot (live, or read back from its folder)."""

    snapshot: Snapshot
    folder: Path
    live: TrainingRun | None = None

    @property
    def stop_requested(self) -> bool:
        return bool(self.live and self.live.stop_requested)


class Lab:
    def __init__(self, default_model: str, output_root: Path, allowed_model_roots: tuple[Path, ...] | None,
                 limits: Limits, assets: Path = ASSETS, public: bool = False, run_callbacks: tuple = ()):
        self.default_model = default_model
        self.output_root = Path(output_root)
        self.allowed_model_roots = allowed_model_roots
        self.limits = limits
        self.public = public
        self.bundled = bundled_datasets(assets)
        self.scheduler = Scheduler(self.output_root, public=public, callbacks=run_callbacks)
        self._tokenizers: dict[str, object] = {}
        self._tokenizer_lock = threading.Lock()  # a fast tokenizer is not safe to share between threads
        self._uploads: dict[tuple[str, str], Path] = {}  # (owner, upload path) -> the owner's private copy
        self._uploads_lock = threading.Lock()

    @property
    def default_dataset(self) -> str | None:
        if DEMO_DATASET in self.bundled:
            return DEMO_DATASET
        return next(iter(self.bundled), None)

    # --- owners
    def owner(self, key: str | None, request: gr.Request | None) -> str:
        """The caller's owner id: the key the browser keeps (or an API client gives),
        else this client's session."""
        key = (key or "").strip()
        if key and len(key) < MIN_KEY_CHARS:
            raise user_error(f"an owner key must be at least {MIN_KEY_CHARS} characters (it is a secret)")
        session = getattr(request, "session_hash", None) or ""
        return self.scheduler.owner(key or (f"session:{session}" if session else ""))

    # --- runs
    def run(self, owner: str, run_id: str | None = None) -> Shown | None:
        """The caller's run `run_id`, or their latest when none is named. Someone
        else's run id is answered like a missing one."""
        if run_id:
            try:
                live = self.scheduler.live(run_id, owner)
                return Shown(live.snapshot(), live.folder.root, live)
            except NoSuchRun:
                record = self.scheduler.record(run_id, owner)
                return Shown(Snapshot.from_record(record), record.folder)
        live = self.scheduler.latest(owner)
        if live is not None:
            return Shown(live.snapshot(), live.folder.root, live)
        mine = [r for r in self.scheduler.list(owner) if not r.unreadable]
        return Shown(Snapshot.from_record(mine[0]), mine[0].folder) if mine else None

    # --- uploads
    def claim_upload(self, path: str, owner: str) -> Path:
        """An uploaded file, usable by the session that uploaded it only. In public
        mode the first caller moves it out of Gradio's cache (which serves any file
        it holds to whoever has the path) into a folder of its own; another caller
        with the same path finds nothing."""
        if not self.public:
            return Path(path)
        with self._uploads_lock:
            self._forget_old_uploads()
            kept = self._uploads.get((owner, path))
            if kept is not None:
                # Gradio names an upload by its content: the same path again is the same
                # file uploaded again, which must not linger in the served cache either.
                Path(path).unlink(missing_ok=True)
                kept.touch()  # used again: the hour starts again
                return kept
            source = Path(path)
            if not source.is_file():
                raise user_error(f"{source.name}: no such file; upload it again")
            target = self.output_root / ".uploads" / owner / f"{secrets.token_hex(4)}-{source.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, target)
            self._uploads[(owner, path)] = target
            return target

    def _forget_old_uploads(self) -> None:
        """Delete claimed uploads older than UPLOAD_KEEP_SECONDS (a public server must
        not fill its disk; a run keeps its prepared data in memory, not the file)."""
        cutoff = time.time() - UPLOAD_KEEP_SECONDS
        for key, kept in list(self._uploads.items()):
            if not kept.is_file() or kept.stat().st_mtime < cutoff:
                kept.unlink(missing_ok=True)
                del self._uploads[key]

    # --- models
    def resolve(self, spec: str) -> models.ModelSource:
        return models.resolve(spec or self.default_model, self.allowed_model_roots)

    @contextmanager
    def tokenizer(self, spec: str, token: str | None):
        """A cached tokenizer for the spec, held exclusively while in use."""
        source = self.resolve(spec)
        with self._tokenizer_lock:
            if source.location not in self._tokenizers:
                self._tokenizers[source.location] = models.load_tokenizer(source, token=token)
            yield self._tokenizers[source.location]
