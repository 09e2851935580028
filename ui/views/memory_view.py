"""The Hyperparameters tab's memory estimate: the engine's arithmetic
(finetune.memory.estimate) for the current settings and model, shown term by term.

The model's shape is read from its config only (never its weights) and kept
per model spec, so moving a slider redoes the arithmetic, not the read. A
model whose shape cannot be read gets one line saying why."""

from __future__ import annotations

import threading
from html import escape

from finetune.memory import estimate as memory
from finetune.memory import model_shape
from finetune.train.config import TrainConfig
from finetune.train.device import Hardware
from finetune.train.levers import CHECKPOINTING_THRESHOLD
from ui.views.badges import arithmetic_html

WAITING = ("<div class='lab-memory lab-muted'>Press <b>Estimate memory</b> to see the peak memory these settings "
           "need, term by term.</div>")


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class Shapes:
    """Model shapes by spec, read once each; a spec that cannot be read keeps its one-line reason."""

    def __init__(self, read):
        self._read = read  # spec -> ModelShape, raising with a readable message
        self._known: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, spec: str, retry: bool = False) -> model_shape.ModelShape:
        """`retry`: read again a spec that failed before (the user asked again; a folder may be fixed now)."""
        with self._lock:
            if spec not in self._known or (retry and isinstance(self._known[spec], Exception)):
                try:
                    self._known[spec] = self._read(spec)
                except Exception as err:  # any failure is one line for the user, never a traceback
                    self._known[spec] = model_shape.EstimateError(first_line(err))
            found = self._known[spec]
        if isinstance(found, Exception):
            raise found
        return found


def estimate_for(config: TrainConfig, shape: model_shape.ModelShape, hardware: Hardware,
                 checkpointing: bool | None = None) -> memory.Estimate:
    """The engine's estimate for a run of `config` (finetune.train.levers.estimated_peak's
    arguments): each micro-batch at its longest, max_length tokens per example."""
    on = config.gradient_checkpointing == "on" if checkpointing is None else checkpointing
    return memory.estimate(shape, method=config.method, weights=config.weights, autocast=hardware.precision,
                           optimizer=config.optimizer, batch_size=config.batch_size, seq_len=config.max_length,
                           gradient_checkpointing=on, lora_r=config.lora_r, lora_dropout=config.lora_dropout,
                           grad_accum=config.grad_accum)


def _gib(n: float) -> str:
    return f"{n / memory.GIB:.2f} GiB"


def breakdown_html(config: TrainConfig, shape: model_shape.ModelShape, hardware: Hardware) -> str:
    """The headline peak, the checkpointing note, and the arithmetic as a fixed-width table."""
    e = estimate_for(config, shape, hardware)
    lines = [f"<b>Estimated peak memory: {_gib(e.peak_bytes)}</b> on {escape(hardware.describe())}"]
    if config.gradient_checkpointing == "auto":
        other = estimate_for(config, shape, hardware, checkpointing=True)
        lines.append(f"Gradient checkpointing <i>auto</i>: this is the peak without it; the run turns it on when "
                     f"this peak exceeds {CHECKPOINTING_THRESHOLD:.0%} of the free memory, and then needs "
                     f"{_gib(other.peak_bytes)}.")
    return f"<div class='lab-memory'>{'<br>'.join(lines)}{arithmetic_html(memory.format_breakdown(e))}</div>"


def memory_html(config_or_error, shapes: Shapes, spec: str, hardware: Hardware, retry: bool = False) -> str:
    """What the tab shows: the breakdown, or one line on why there is none."""
    if isinstance(config_or_error, str):
        return f"<div class='lab-warning'>Cannot estimate memory: {escape(config_or_error)}</div>"
    try:
        shape = shapes.get(spec, retry)
    except Exception as err:
        return (f"<div class='lab-warning'>Cannot estimate memory: the shape of the model {escape(spec)!r} cannot "
                f"be read ({escape(first_line(err))}).</div>")
    try:
        return breakdown_html(config_or_error, shape, hardware)
    except Exception as err:  # e.g. an EstimateError for settings the arithmetic refuses
        return f"<div class='lab-warning'>Cannot estimate memory: {escape(first_line(err))}</div>"
