"""What one app instance remembers between requests: where runs go, the latest
run (so a refreshed page or a second tab re-attaches to it), and a few loaded
objects worth keeping (tokenizers, the base model for free-text comparison).

One Lab is made by build_app(); nothing here is module-level state. Which run
may train is decided by the engine's process-wide slot, not here.
"""

from __future__ import annotations

import secrets
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import gradio as gr

from finetune import models
from finetune.files import SUFFIXES, Limits
from finetune.hub_token import redact
from finetune.run import TrainingRun, active_run

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS = REPO_ROOT / "assets"
DEMO_DATASET = "demo/demo.jsonl"


def user_error(err: BaseException | str, token: str | None = None) -> gr.Error:
    """An engine error as a toast for the user; a typed-in token never reaches it."""
    return gr.Error(redact(str(err), token), print_exception=False)


def bundled_datasets(root: Path = ASSETS) -> dict[str, Path]:
    """Dataset files shipped under assets/, by their path relative to it."""
    if not root.is_dir():
        return {}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    return {p.relative_to(root).as_posix(): p for p in files}


class Lab:
    def __init__(self, default_model: str, output_root: Path, allowed_model_roots: tuple[Path, ...] | None,
                 limits: Limits, assets: Path = ASSETS):
        self.default_model = default_model
        self.output_root = Path(output_root)
        self.allowed_model_roots = allowed_model_roots
        self.limits = limits
        self.bundled = bundled_datasets(assets)
        self._lock = threading.Lock()
        self._latest: TrainingRun | None = None
        self._tokenizers: dict[str, object] = {}
        self._tokenizer_lock = threading.Lock()  # a fast tokenizer is not safe to share between threads
        self._base: tuple[str, object, object] | None = None  # (location, model, tokenizer)
        self._base_lock = threading.Lock()

    @property
    def default_dataset(self) -> str | None:
        if DEMO_DATASET in self.bundled:
            return DEMO_DATASET
        return next(iter(self.bundled), None)

    # --- runs
    def latest_run(self) -> TrainingRun | None:
        """The run a page should show: the one training now, else the last one started here."""
        with self._lock:
            return active_run() or self._latest

    def remember(self, run: TrainingRun) -> None:
        with self._lock:
            self._latest = run

    def new_output_dir(self) -> Path:
        # The random suffix keeps two starts in the same second apart.
        return self.output_root / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"

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

    @contextmanager
    def base_model(self, source: models.ModelSource, token: str | None, device: str):
        """The untrained model for free-text comparison, loaded on first use and kept (one at a time)."""
        with self._base_lock:
            if self._base is None or self._base[0] != source.location:
                self._base = None  # free the old one before loading another
                model, tokenizer = models.load(source, token=token)
                self._base = (source.location, model.to(device), tokenizer)
            yield self._base[1], self._base[2]

    def release_base_model(self) -> None:
        with self._base_lock:
            self._base = None
