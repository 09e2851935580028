"""The failure-mode detectors (modes.py) run inside a run: live after each
logged entry, and once at the end, for every outcome (completed, stopped,
failed). A detector is a diagnostic, never a reason for a run to fail: each
one runs on its own, and one that raises becomes an "unknown" finding that
says so, while the others still report.
"""

from __future__ import annotations

import time
from typing import Callable

from .base import FOUND, UNKNOWN, Finding, RunFacts
from .modes import detectors_for, live_for

# The live detectors rerun at most this often: each pass reads the whole
# history, and the screen polls every 1-2 s, so more often shows nothing new
# and costs a long run quadratic time.
LIVE_INTERVAL_S = 2.0


def _run_detector(name: str, record: RunFacts) -> Finding:
    try:
        return detectors_for(record.config)[name](record)
    except Exception as err:  # noqa: BLE001 -- a detector's bug must never end the run it watches
        return Finding(name, name.replace("_", " ").capitalize(), UNKNOWN,
                       f"not enough data to judge: the detector failed ({type(err).__name__}: {err})", "", "")


def _settings(config) -> dict:
    return config.to_dict() if hasattr(config, "to_dict") else dict(config or {})


def live(history, config, error: str | None = None) -> tuple[dict, ...]:
    """The findings the logged history supports so far, as Finding.to_dict() items."""
    record = RunFacts(list(history or []), _settings(config), error=error)
    return tuple(_run_detector(name, record).to_dict() for name in live_for(record.config))


def final(history, config, comparison=(), probe: dict | None = None, train_responses=(), status: str = "completed",
          error: str | None = None, nonfinite_step: int | None = None,
          preference: dict | None = None) -> tuple[dict, ...]:
    """Every detector that applies, on the finished run's record (a stopped or failed run
    has less to judge from; its detectors say "not enough data to judge"); `preference`:
    a preference run's evidence on unseen pairs (evaluate/preference.py's record)."""
    record = RunFacts(list(history or []), _settings(config), list(comparison or []), probe,
                      list(train_responses or []), error, nonfinite_step, status, preference)
    return tuple(_run_detector(name, record).to_dict() for name in detectors_for(record.config))


class LiveDiagnoses:
    """Wraps a run's `record(entry)`: records, then republishes the live
    findings at most every LIVE_INTERVAL_S (and always after an evaluation,
    which is when overfitting can change)."""

    def __init__(self, record: Callable[[dict], None], publish: Callable[..., None], config, history=(),
                 clock: Callable[[], float] = time.monotonic):
        self._record, self._publish, self._config = record, publish, config
        self._history = list(history)
        self._clock = clock
        self._last: float | None = None

    def __call__(self, entry: dict) -> None:
        self._record(entry)
        self._history.append(entry)
        now = self._clock()
        if "eval_loss" in entry or self._last is None or now - self._last >= LIVE_INTERVAL_S:
            self._last = now
            self._publish(diagnoses=live(self._history, self._config))


def found(diagnoses) -> list[dict]:
    return [d for d in diagnoses or () if isinstance(d, dict) and d.get("status") == FOUND]


def degraded(diagnoses) -> dict[str, list[str]]:
    """For each score category a found failure shows got worse, what was found there,
    in words ({"general_probe": ["forgetting was found: general probe (contains, 45
    prompts): 58% -> 22% (-36 points)"]}): what evaluate.metrics.score_changes needs
    so that no verdict calls that category better."""
    found_in: dict[str, list[str]] = {}
    for d in found(diagnoses):
        where = d.get("degraded")
        for category, text in (where.items() if isinstance(where, dict) else ()):
            title = str(d.get("title") or d.get("name") or "a failure").lower()
            found_in.setdefault(str(category), []).append(f"{title} was found: {text}")
    return found_in


def found_lines(diagnoses) -> list[str]:
    """The FOUND findings for a terminal: name, evidence and advice, one block each."""
    lines = []
    for d in found(diagnoses):
        step = f" (step {d['step']})" if d.get("step") is not None else ""
        lines += [f"found: {d.get('title') or d.get('name')}{step}: {d.get('explanation', '')}",
                  f"  evidence: {d.get('evidence', '')}"]
        if d.get("advice"):
            lines.append(f"  advice: {d['advice']}")
    return lines
