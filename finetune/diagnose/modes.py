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
Finding they return and the RunFacts they read, is in base.py. A preference
run (DPO, KTO) is also checked by preference_modes.py (likelihood
displacement, margin runaway, length exploitation, no preference learned);
a supervised run is not, so its diagnoses read as they always did.
"""

from __future__ import annotations

from typing import Any, Callable

from .answer_modes import FORGETTING, MEMORISATION, MODE_COLLAPSE, forgetting, memorisation, mode_collapse
from .base import Finding, RunFacts
from .curve_modes import DIVERGENCE, NO_LEARNING, OVERFITTING, divergence, no_learning, overfitting
from .preference_modes import (
    LENGTH_EXPLOITATION,
    LIKELIHOOD_DISPLACEMENT,
    MARGIN_RUNAWAY,
    NO_PREFERENCE_LEARNED,
    length_exploitation,
    likelihood_displacement,
    margin_runaway,
    no_preference_learned,
)

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
# A preference run's own (preference_modes.py), checked after the others for the objectives
# that log TRL's rewards; those that read only the history also run live.
PREFERENCE_DETECTORS: dict[str, Callable[[RunFacts], Finding]] = {
    LIKELIHOOD_DISPLACEMENT.name: likelihood_displacement,
    MARGIN_RUNAWAY.name: margin_runaway,
    LENGTH_EXPLOITATION.name: length_exploitation,
    NO_PREFERENCE_LEARNED.name: no_preference_learned,
}
PREFERENCE_LIVE = (LIKELIHOOD_DISPLACEMENT.name, MARGIN_RUNAWAY.name, NO_PREFERENCE_LEARNED.name)
PREFERENCE_OBJECTIVES = ("dpo", "kto")


def detectors_for(config) -> dict[str, Callable[[RunFacts], Finding]]:
    """The detectors that apply to a run: every run's, and a preference run's own."""
    if _settings(config).get("objective") in PREFERENCE_OBJECTIVES:
        return {**DETECTORS, **PREFERENCE_DETECTORS}
    return dict(DETECTORS)


def live_for(config) -> tuple[str, ...]:
    """The names of the detectors that run live for this run's objective."""
    return LIVE + (PREFERENCE_LIVE if _settings(config).get("objective") in PREFERENCE_OBJECTIVES else ())


def _settings(config) -> dict[str, Any]:
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return dict(config or {})


def diagnose_live(history, config, error: str | None = None, nonfinite_step: int | None = None) -> list[Finding]:
    """The findings that the logged history already supports, while the run trains."""
    record = RunFacts(list(history or []), _settings(config), error=error, nonfinite_step=nonfinite_step)
    detectors = detectors_for(config)
    return [detectors[name](record) for name in live_for(config)]


def diagnose_final(history, config, comparison, probe, train_responses, error: str | None = None,
                   status: str = "completed", nonfinite_step: int | None = None,
                   preference: dict | None = None) -> list[Finding]:
    """Every detector that applies, on the finished (or stopped, or failed) run's record."""
    record = RunFacts(list(history or []), _settings(config), list(comparison or []), probe,
                       list(train_responses or []), error, nonfinite_step, status, preference)
    return [detector(record) for detector in detectors_for(config).values()]
