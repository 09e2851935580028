"""A finished run's models to chat with: its base model, its trained model (the
best checkpoint or the final one, as continuing.continue_model gives it: a LoRA
run's best adapters merged once) and that trained model as a GGUF file read by
llama.cpp (llama-cpp-python, where installed).

Finished runs keep no model in memory for long: HeldModels loads a model when a
conversation first needs it and lets it go after an idle while, or when room is
needed for another.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..evaluate.chat import render_conversation, stream_answer, stream_gguf
from ..evaluate.sampling import Sampling
from ..runs.records import read_config
from ..sources import models
from ..train import device
from .continuing import continue_model
from .gguf import export_gguf

# Long enough for a person to read an answer and type the next message; a model of
# a finished run then goes back (the default model holds ~0.5 GB in fp32).
IDLE_SECONDS = 300.0
# A conversation needs two models (three with the GGUF); a fourth evicts the least recently used.
MOST_HELD = 3


@dataclass
class Loaded:
    """One model ready to answer: a transformers model, or a llama.cpp Llama (`gguf`)
    with the scratch folder of its GGUF file. `tokenizer` is the transformers one
    either way: it renders the conversation with the run's template."""

    model: object
    tokenizer: object
    label: str = ""
    gguf: bool = False
    scratch: Path | None = None
    autocast_dtype: object = None

    def answer(self, messages: list[dict], template: str, sampling: Sampling, stop=None,
               max_time: float | None = None) -> Iterator[str]:
        """The answer to `messages` so far, each time it grows (evaluate.chat's streams)."""
        prompt = render_conversation(self.tokenizer, messages, template)
        if self.gguf:
            return stream_gguf(self.model, prompt, sampling, stop, max_time)
        return stream_answer(self.model, self.tokenizer, prompt, sampling, stop, max_time, self.autocast_dtype)

    def close(self) -> None:
        if self.gguf:  # llama.cpp frees its memory and unmaps the file
            self.model.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


@dataclass(frozen=True)
class RunModels:
    """Where a run's models are: its base (a model source) and its trained model folder."""

    base: models.ModelSource
    trained: Path
    which: str  # "best" or "final": which the trained folder is
    template: str  # the template and system prompt the run trained with
    system_prompt: str


def run_models(folder: str | Path, which: str = "best", resolve: Callable = models.resolve) -> RunModels:
    """A finished run's base and trained model. `which` "best" for a run that kept no
    best checkpoint gives the final model (and says so); ExportError when it has neither.
    `resolve` turns the base's spec into a source (the app passes its allowed folders)."""
    config = read_config(folder)  # a local base is recorded relative to the run folder
    trained, used = continue_model(folder, which)
    return RunModels(resolve(config.get("model", "")), trained, used,
                     config.get("resolved", {}).get("template", "auto"), config.get("system_prompt", ""))


def load_transformers(source: models.ModelSource, token: str | None = None, label: str = "") -> Loaded:
    hardware = device.detect("auto")
    model, tokenizer = models.load(source, token=token, progress=lambda text: None)
    return Loaded(model.to(hardware.device).eval(), tokenizer, label or source.label,
                  autocast_dtype=hardware.autocast_dtype)


def gguf_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def load_gguf(model_dir: str | Path, label: str = "") -> Loaded:
    """The model folder exported as an f16 GGUF file (the Export tab's gguf-f16) into a
    scratch folder, read by llama.cpp; the file goes when the model is let go."""
    if not gguf_available():
        raise models.ModelError("llama-cpp-python is not installed here, so a GGUF file cannot answer "
                                "(pip install llama-cpp-python builds it)")
    from llama_cpp import Llama

    tokenizer = models.load_tokenizer(models.ModelSource("local", str(model_dir), ""), progress=lambda text: None)
    scratch = Path(tempfile.mkdtemp(prefix="finetune-chat-gguf-"))
    try:
        path = export_gguf(model_dir, scratch / "model-f16.gguf", "f16")
        with models.BUILD_LOCK:  # one model build at a time in a process
            llm = Llama(model_path=str(path), n_ctx=0, verbose=False)  # n_ctx 0: the model's own context
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return Loaded(llm, tokenizer, label or f"{Path(model_dir).name} (GGUF f16, llama.cpp)", gguf=True,
                  scratch=scratch)


class HeldModels:
    """Models by key, loaded on first use and let go after `idle_seconds` unused (a
    timer thread checks), or when more than `most` are held; never one in use."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS, most: int = MOST_HELD):
        self.idle_seconds, self.most = idle_seconds, most
        self._held: dict[tuple, list] = {}  # key -> [model, last used, answers in progress]
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None

    @contextmanager
    def use(self, key: tuple, load: Callable[[], Loaded]) -> Iterator[Loaded]:
        """The model under `key` (loaded by `load()` when not held), held while in use."""
        with self._lock:  # loads are one at a time anyway (models.BUILD_LOCK)
            if key not in self._held:
                self._drop(self._oldest(len(self._held) + 1 - self.most))
                self._held[key] = [load(), time.monotonic(), 0]
            entry = self._held[key]
            entry[2] += 1
        try:
            yield entry[0]
        finally:
            with self._lock:
                entry[1], entry[2] = time.monotonic(), entry[2] - 1
                self._arm(self.idle_seconds)

    def held(self) -> list[tuple]:
        with self._lock:
            return list(self._held)

    def release_all(self) -> None:
        with self._lock:
            self._drop(self._oldest(len(self._held)))

    def release_idle(self) -> None:
        with self._lock:
            self._timer = None
            now = time.monotonic()
            self._drop([k for k, (_, used, busy) in self._held.items() if not busy and now - used >= self.idle_seconds])
            if self._held:  # check again when the next one falls idle
                self._arm(max(min(used for _, used, _ in self._held.values()) + self.idle_seconds - now, 1.0))

    def _oldest(self, count: int) -> list[tuple]:
        idle = sorted((k for k, entry in self._held.items() if not entry[2]), key=lambda k: self._held[k][1])
        return idle[:max(count, 0)]

    def _drop(self, keys: list) -> None:
        for key in keys:
            self._held.pop(key)[0].close()
        if keys:
            device.release_memory()  # give the freed memory back to the system (glibc's heap keeps it otherwise)

    def _arm(self, delay: float) -> None:
        if self._timer is None:
            self._timer = threading.Timer(delay, self.release_idle)
            self._timer.daemon = True
            self._timer.start()
