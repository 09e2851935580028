"""The failure modes of fine-tuning, named as they happen.

Each detector is a pure function over a run's record (its logged history,
settings, held-out comparison, general-capability probe and training
responses) that returns one Finding: "found", "clear" (with the numbers it
looked at) or "unknown" (not enough data to judge, and why). The live screen
runs the detectors that need only the history; the end of a run runs them all.
The UI and the CLI only render findings.

The mitigations follow the tutorial this lab teaches, made concrete for the
run's own settings ("lower the learning rate from 5e-05 to 2e-05").

The detectors live by what they read: curve_modes.py (the loss curves:
divergence, overfitting, no learning) and answer_modes.py (the answers and
the probe: mode collapse, forgetting, memorisation); what they share, the
Finding they return and the RunFacts they read, is in base.py.
"""

from __future__ import annotations

from typing import Any, Callable

from .answer_modes import FORGETTING, MEMORISATION, MODE_COLLAPSE, forgetting, memorisation, mode_collapse
from .base import Finding, RunFacts
from .curve_modes import DIVERGENCE, NO_LEARNING, OVERFITTING, divergence, no_learning, overfitting

# ----------------------------------------------------------------- the registry

# Adding a detector: write it in curve_modes.py or answer_modes.py and add
# it here (and to LIVE if it needs only the history).
DETECTORS: dict[str, Callable[[RunFacts], Finding]] = {
    DIVERGENCE.name: divergence,
    OVERFITTING.name: overfitting,
    NO_LEARNING.name: no_learning,
    MODE_COLLAPSE.name: mode_collapse,
    FORGETTING.name: forgetting,
    MEMORISATION.name: memorisation,
}
# The detectors that read only what is logged during training.
LIVE = (DIVERGENCE.name, OVERFITTING.name, NO_LEARNING.name)


def _settings(config) -> dict[str, Any]:
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return dict(config or {})


def diagnose_live(history, config, error: str | None = None, nonfinite_step: int | None = None) -> list[Finding]:
    """The findings that the logged history already supports, while the run trains."""
    record = RunFacts(list(history or []), _settings(config), error=error, nonfinite_step=nonfinite_step)
    return [DETECTORS[name](record) for name in LIVE]


def diagnose_final(history, config, comparison, probe, train_responses, error: str | None = None,
                   status: str = "completed", nonfinite_step: int | None = None) -> list[Finding]:
    """Every detector, on the finished (or stopped, or failed) run's record."""
    record = RunFacts(list(history or []), _settings(config), list(comparison or []), probe,
                       list(train_responses or []), error, nonfinite_step, status)
    return [detector(record) for detector in DETECTORS.values()]
