"""What every failure-mode detector shares: the statuses, the Finding it
returns, the RunFacts it reads, and the small helpers that word its evidence
and its advice in the run's own numbers ("lower the learning rate from 5e-05
to 2e-05").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

FOUND, CLEAR, UNKNOWN = "found", "clear", "unknown"

# Learning rates people recognise; advice moves one rung up or down.
LR_LADDER = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3)


@dataclass(frozen=True)
class Finding:
    name: str  # stable id: "divergence", "overfitting", ...
    title: str  # short words for a badge
    status: str  # FOUND | CLEAR | UNKNOWN
    evidence: str  # the numbers looked at, with the step
    explanation: str  # what this failure is, in one line
    advice: str  # the mitigation for this run's settings ("" when clear)
    step: int | None = None
    # The score categories (summary.json's "scores" keys) this finding shows got
    # worse, each with what was measured there: a category found degraded is never
    # called better (evaluate.metrics.Reading).
    degraded: dict[str, str] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FailureMode:
    name: str
    title: str
    explanation: str

    def found(self, evidence: str, advice: str, step: int | None = None,
              degraded: dict[str, str] | None = None) -> Finding:
        return Finding(self.name, self.title, FOUND, evidence, self.explanation, advice, step, dict(degraded or {}))

    def clear(self, evidence: str, step: int | None = None) -> Finding:
        return Finding(self.name, self.title, CLEAR, evidence, self.explanation, "", step)

    def unknown(self, why: str, advice: str = "") -> Finding:
        return Finding(self.name, self.title, UNKNOWN, f"not enough data to judge: {why}", self.explanation, advice)


@dataclass(frozen=True)
class RunFacts:
    """Everything a detector may read; final-only parts stay empty while training runs."""

    history: list[dict]
    config: dict[str, Any]
    comparison: list[dict] = field(default_factory=list)
    probe: dict | None = None
    train_responses: list[str] = field(default_factory=list)
    error: str | None = None
    nonfinite_step: int | None = None
    status: str = "running"
    # A preference run's evidence on unseen pairs (evaluate/preference.py's record, preference.json).
    preference: dict | None = None


# ---------------------------------------------------------------- small helpers

def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def change(new: float, old: float) -> str:
    """The relative change as " (+12%)", or "" when there is no base to compare with."""
    return f" ({(new / old - 1) * 100:+.0f}%)" if old > 0 else ""


def lr(value: float) -> str:
    """5e-05, 2e-04, 1.5e-05: the way Python prints small learning rates."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{exponent}"


def _lower_lr(value: float) -> float:
    lower = [rung for rung in LR_LADDER if rung < value * (1 - 1e-9)]
    return lower[-1] if lower else value / 2


def higher_lr(value: float) -> float:
    higher = [rung for rung in LR_LADDER if rung > value * (1 + 1e-9)]
    return higher[0] if higher else value * 2


def sentence(parts) -> str:
    parts = [p for p in parts if p]
    return (parts[0][0].upper() + "; ".join(parts)[1:] + ".") if parts else ""


def fewer_epochs(config: dict, epoch: float | None = None, step: int | None = None) -> str:
    """Shorter training: stop where the trouble began when that is known."""
    epochs, max_steps = config.get("epochs") or 0, config.get("max_steps") or 0
    if max_steps and step and step < max_steps:
        return f"stop earlier: max_steps {max_steps} -> {step}"
    if max_steps:  # the run stops at max_steps, usually before its epochs are done
        return f"train fewer steps: max_steps {max_steps} -> {max(1, max_steps // 2)}"
    if epochs > 1:
        target = min(epochs - 1, max(1, math.ceil(epoch))) if epoch else epochs - 1
        return f"train fewer epochs: {epochs} -> {target}"
    return f"stop earlier: set max_steps to {step}" if step else ""


def lower_lr_advice(config: dict) -> str:
    rate = config.get("learning_rate")
    return f"lower the learning rate from {lr(rate)} to {lr(_lower_lr(rate))}" if rate else "lower the learning rate"
