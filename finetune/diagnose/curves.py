"""Facts read off a run's logged history (the dicts of metrics.jsonl): the
best validation loss and its step, when a run converged, and where it began
to overfit. The experiments verdict and the failure-mode detectors both read
them here; whether a run overfit at all is the overfitting detector's call
(curve_modes.overfitting), which the verdict asks too, so "overfit" means the
same thing on every screen.
"""

from __future__ import annotations

import math

# Validation loss this far above its own minimum counts as a real rise, not
# evaluation noise: on the few dozen validation examples of a small dataset the
# loss wobbles by 1-3% between evaluations.
OVERFIT_MARGIN = 0.05
# A run has converged once its validation loss is within this share of the best
# it ever reaches; "fastest" is the fewest steps to get there.
CONVERGED_WITHIN = 0.05


def series(history, key: str) -> list[tuple[int, float]]:
    """(step, value) for every finite logged `key` ("loss", "eval_loss", ...), in step order."""
    points = [(int(h["step"]), float(h[key])) for h in history
              if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]
    return sorted(points, key=lambda p: p[0])


def best(history, key: str = "eval_loss") -> tuple[int, float] | None:
    """The (step, value) of the lowest logged `key`; the first such step on a tie."""
    points = series(history, key)
    return min(points, key=lambda p: (p[1], p[0])) if points else None


def converged_at(history, key: str = "eval_loss", within: float = CONVERGED_WITHIN) -> int | None:
    """The first step whose value is within `within` of the run's best."""
    found = best(history, key)
    if found is None:
        return None
    limit = found[1] * (1 + within) if found[1] >= 0 else found[1] * (1 - within)
    return next(step for step, value in series(history, key) if value <= limit)


def overfit_onset(history, margin: float = OVERFIT_MARGIN) -> int | None:
    """The step where overfitting began, or None.

    A run overfits when its last validation loss is `margin` or more above the
    validation minimum while the training loss kept falling after that minimum
    (training loss after the minimum below the training loss at it). The onset
    is the step of the validation minimum: from there on, training helps the
    training set only."""
    validation = series(history, "eval_loss")
    found = best(history, "eval_loss")
    if found is None or len(validation) < 2:
        return None
    best_step, best_value = found
    if validation[-1][1] < best_value * (1 + margin):
        return None
    training = series(history, "loss")
    at_best = [v for s, v in training if s <= best_step][-3:]
    after = [v for s, v in training if s > best_step][-3:]
    if not at_best or not after:
        return None
    return best_step if sum(after) / len(after) < sum(at_best) / len(at_best) else None
