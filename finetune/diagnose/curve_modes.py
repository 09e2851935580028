"""The failure modes that show in the logged loss curves: divergence,
overfitting and no learning. They read only the history and the settings, so
they also run live while the run trains (diagnose.LIVE).
"""

from __future__ import annotations

import math
import re
import statistics
from typing import NamedTuple

from ..train.config import field_by_name, recommended_range
from .base import FailureMode, Finding, RunFacts, change, fewer_epochs, higher_lr, lower_lr_advice, lr, mean, sentence
from .curves import OVERFIT_MARGIN, best, overfit_onset, series

# --- divergence
# A logged loss this many times the median of the losses just before it is a
# blow-up: batch-to-batch noise in fine-tuning stays well under 1.5x.
SPIKE_FACTOR = 3.0
# The running median looks back this many logged steps: long enough that one
# odd batch does not move it, short enough to follow a falling curve.
SPIKE_WINDOW = 20
# A median of fewer losses than this is too noisy to measure a spike against.
SPIKE_CONTEXT = 5
# Below half a nat a 3x jump is the noise of a near-zero loss (a model that
# has memorised its batches), not an unstable run.
SPIKE_MIN_RISE = 0.5
# Averaged over a quarter of the run, batch noise shrinks to a few percent: a
# last quarter 10% above the first quarter (after warmup) is a real upward trend.
RISE_MARGIN = 0.10
# Quarters of fewer than three losses are single noisy batches, not a trend.
TREND_MIN_POINTS = 12

# --- overfitting
# Validation loss 1.5x the training loss: the model fits the examples it
# trained on far better than unseen ones (a healthy run stays within ~20%).
GAP_RATIO = 1.5
# ...and the ratio grew by this much since the first evaluation, so it is a
# widening gap and not a fixed difference between the two splits.
GAP_GROWTH = 0.2
# A widening needs a start, a middle and an end to be a trend.
GAP_MIN_EVALS = 3
# A rise must also be this many nats: near zero, a 5% rise is noise. quick-demo's
# validation loss wobbled between 0.033 and 0.043 over its last five evaluations
# at a flat training loss (~0.01 nats from one evaluation to the next); twice
# that is a rise.
OVERFIT_MIN_RISE = 0.02
# ...and a gap must be this many nats: 0.1 nats is 10% less probability on each
# unseen token than on a seen one. Below it a large ratio is two tiny losses
# (quick-demo ended at 0.039 against 0.005: 8x, but 0.034 nats).
GAP_MIN_NATS = 0.1
# Early stopping after two evaluations without improvement: one evaluation
# can wobble by chance (see OVERFIT_MARGIN), two in a row rarely do.
SUGGESTED_PATIENCE = 2

# --- no learning
# Judge the first half of the logged steps: a learning run drops most of its
# loss in its first epoch, so a curve still flat halfway will not recover,
# while judging earlier would catch slow but healthy starts.
JUDGED_SHARE = 0.5
# A relative drop under 5% is within batch noise; a model learning new data
# typically loses 20% or more of its loss in the first half of its run.
MIN_RELATIVE_DROP = 0.05
# The start and the end of the window are each the mean of this many losses,
# so one lucky batch does not count as learning.
EDGE_POINTS = 3
# Steps after warmup the window must hold: during warmup the learning rate is
# near zero and every run looks flat.
MIN_POST_WARMUP = 5
# A loss this low (about 90% probability on each target token) leaves nothing
# to learn: a flat curve there is a model that already knows the data.
ALREADY_LEARNED_LOSS = 0.1

# The engine's halt message: "the training loss became nan at step 4; ...".
NONFINITE_IN_ERROR = re.compile(r"(?:(the [\w ]*?loss) )?became (nan|-?inf)\b(?: at step (\d+))?", re.IGNORECASE)


DIVERGENCE = FailureMode("divergence", "Divergence",
                         "Training became unstable: the loss blew up instead of falling, usually from too high a "
                         "learning rate.")
OVERFITTING = FailureMode("overfitting", "Overfitting",
                          "The model learns its training examples by heart: validation loss rises or pulls away "
                          "while training loss keeps falling.")
NO_LEARNING = FailureMode("no_learning", "Not learning",
                          "The training loss is not falling: the updates are too small or reach no trained tokens.")


# ---------------------------------------------------------------- small helpers

def _range(name: str, method: str) -> tuple[float, float] | None:
    return recommended_range(field_by_name(name), method)


def _logged(history) -> list[dict]:
    """The entries with a numeric step: a half-written line never reaches a detector."""
    return [h for h in history or [] if isinstance(h, dict)
            and isinstance(h.get("step"), (int, float)) and not isinstance(h.get("step"), bool)]


def _epoch_at(history: list[dict], step: int) -> float | None:
    epochs = [h["epoch"] for h in history if h["step"] == step and isinstance(h.get("epoch"), (int, float))]
    return float(epochs[0]) if epochs else None


def _warmup_end(history: list[dict], config: dict) -> int:
    """The step where warmup ended: the first step at the peak logged learning
    rate, or warmup_ratio x max_steps when no learning rate was logged."""
    rates = series(history, "learning_rate")
    if rates:
        return min(rates, key=lambda p: (-p[1], p[0]))[0]
    ratio, steps = config.get("warmup_ratio") or 0, config.get("max_steps") or 0
    return math.ceil(ratio * steps)


def _loss_near(training: list[tuple[int, float]], step: int) -> float | None:
    """The mean of the last EDGE_POINTS training losses logged at or before `step`."""
    before = [value for s, value in training if s <= step][-EDGE_POINTS:]
    return mean(before) if before else None


# ----------------------------------------------------------------- divergence

def _nonfinite(record: RunFacts) -> tuple[str, int | None] | None:
    """("the training loss became nan", step) when the run halted on a non-finite
    loss, read from its error text: such a loss never reaches the history."""
    found = NONFINITE_IN_ERROR.search(record.error or "")
    if found:
        subject, what, step = found.groups()
        step = int(step) if step else record.nonfinite_step
        return f"{subject or 'the loss'} became {what.lower()}", step
    if record.nonfinite_step is not None:
        return "the training loss became non-finite", record.nonfinite_step
    return None


def _first_spike(losses: list[tuple[int, float]]) -> tuple[int, float, float] | None:
    """(step, loss, running median) of the first loss SPIKE_FACTOR x above the median before it."""
    for i in range(SPIKE_CONTEXT, len(losses)):
        median = statistics.median(value for _, value in losses[max(0, i - SPIKE_WINDOW):i])
        step, value = losses[i]
        if value > SPIKE_FACTOR * median and value - median >= SPIKE_MIN_RISE:
            return step, value, median
    return None


class Trend(NamedTuple):
    text: str  # the first and last quarter means, for the evidence
    rising: bool
    lowest: tuple[int, float]  # (step, loss) at the bottom before the last quarter


def _trend(points: list[tuple[int, float]], where: str = "after warmup") -> Trend | None:
    """The last quarter of the losses against the first, or None when too few for a trend."""
    if len(points) < TREND_MIN_POINTS:
        return None
    size = len(points) // 4
    head, tail = points[:size], points[-size:]
    first, last = mean(v for _, v in head), mean(v for _, v in tail)
    text = (f"mean of the first quarter {where} (steps {head[0][0]}-{head[-1][0]}) {first:.3f}, of the last "
            f"quarter (steps {tail[0][0]}-{tail[-1][0]}) {last:.3f}{change(last, first)}")
    return Trend(text, last > first * (1 + RISE_MARGIN), min(points[:-size], key=lambda p: p[1]))


def _divergence_advice(config: dict) -> str:
    parts = [lower_lr_advice(config)]
    warmup, warmup_range = config.get("warmup_ratio"), _range("warmup_ratio", config.get("method", "full"))
    if warmup is not None and warmup_range and warmup < warmup_range[1]:
        parts.append(f"raise warmup_ratio from {warmup:g} to {warmup_range[1]:g}")
    clip = config.get("max_grad_norm")
    if clip is not None:
        parts.append(f"keep gradient clipping on (max_grad_norm {clip:g})" if clip > 0
                     else "turn gradient clipping back on (max_grad_norm 1.0)")
    return sentence(parts)


def divergence(record: RunFacts) -> Finding:
    history = _logged(record.history)
    blowup = _nonfinite(record)
    if blowup:
        what, step = blowup
        where = f" at step {step}" if step is not None else ""
        return DIVERGENCE.found(f"{what}{where}; the run was halted",
                                _divergence_advice(record.config), step)
    losses = series(history, "loss")
    if len(losses) <= SPIKE_CONTEXT:
        return DIVERGENCE.unknown(f"{len(losses)} training loss(es) logged; at least {SPIKE_CONTEXT + 1} "
                                  "needed to tell a spike from noise")
    spike = _first_spike(losses)
    if spike:
        step, value, median = spike
        return DIVERGENCE.found(f"the training loss jumped to {value:.3f} at step {step}, {value / median:.1f}x "
                                f"its running median of {median:.3f}", _divergence_advice(record.config), step)
    # A run that is mostly warmup (a short run, or a long warmup) is judged whole:
    # a loss that climbs while the learning rate ramps up is the classic blow-up,
    # and it can climb too steadily for any one step to be a spike.
    trend = _trend([p for p in losses if p[0] > _warmup_end(history, record.config)]) \
        or _trend(losses, "of the run")
    looked = f"{len(losses)} training losses, none above {SPIKE_FACTOR:g}x its running median"
    if trend is None:
        return DIVERGENCE.clear(f"{looked}; too few to judge a trend")
    if trend.rising:
        step, low = trend.lowest
        return DIVERGENCE.found(f"the training loss is rising: {trend.text}; lowest {low:.3f} at step {step}",
                                _divergence_advice(record.config), step)
    return DIVERGENCE.clear(f"{looked}; {trend.text}")


# ----------------------------------------------------------------- overfitting

def _widening_gap(validation, training) -> tuple[int, float, float] | None:
    """(step, ratio, first ratio) where validation/training loss first reached
    GAP_RATIO, when the ratio also grew by GAP_GROWTH since the first evaluation."""
    ratios = []
    for step, value in validation:
        train = _loss_near(training, step)
        if train and train > 0:
            ratios.append((step, value / train))
    if len(ratios) < GAP_MIN_EVALS or ratios[-1][1] - ratios[0][1] < GAP_GROWTH:
        return None
    last_step, last_value = validation[-1]
    near = _loss_near(training, last_step)
    if near is None or last_value - near < GAP_MIN_NATS:
        return None
    crossed = [(step, ratio) for step, ratio in ratios if ratio >= GAP_RATIO]
    if not crossed or ratios[-1][1] < GAP_RATIO:
        return None
    return crossed[0][0], ratios[-1][1], ratios[0][1]


def _overfitting_advice(config: dict, history: list[dict], step: int) -> str:
    parts = []
    if not config.get("early_stopping_patience"):
        parts.append(f"turn on early stopping with patience {SUGGESTED_PATIENCE}")
    parts.append(fewer_epochs(config, _epoch_at(history, step), step))
    parts.append("use more training data")
    decay, decay_range = config.get("weight_decay"), _range("weight_decay", config.get("method", "full"))
    if decay is not None and decay_range and decay < decay_range[1]:
        parts.append(f"raise weight_decay from {decay:g} to {min(decay + 0.1, decay_range[1]):g}")
    return sentence(parts)


def _no_validation(config: dict) -> Finding:
    if config.get("validation_fraction") == 0:
        return OVERFITTING.unknown("no validation loss is logged because validation_fraction is 0",
                                   "Set validation_fraction to 0.05 to watch for overfitting.")
    return OVERFITTING.unknown("no validation loss has been logged yet")


def overfitting(record: RunFacts) -> Finding:
    history = _logged(record.history)
    validation, training = series(history, "eval_loss"), series(history, "loss")
    if not validation:
        return _no_validation(record.config)
    if len(validation) < 2:
        step, value = validation[0]
        return OVERFITTING.unknown(f"one validation loss so far ({value:.3f} at step {step}); a rise needs two")
    if not training:
        return OVERFITTING.unknown("no training loss has been logged")
    best_step, best_value = best(history, "eval_loss")
    last_step, last_value = validation[-1]
    onset = overfit_onset(history)
    if onset is not None and last_value - best_value >= OVERFIT_MIN_RISE:
        return OVERFITTING.found(
            f"validation loss rose from {best_value:.3f} at step {best_step} to {last_value:.3f} at step "
            f"{last_step}{change(last_value, best_value)} while the training loss fell from "
            f"{_loss_near(training, best_step):.3f} to {_loss_near(training, last_step):.3f}",
            _overfitting_advice(record.config, history, onset), onset)
    gap = _widening_gap(validation, training)
    if gap:
        step, ratio, first_ratio = gap
        return OVERFITTING.found(
            f"the validation loss pulled away from the training loss: {first_ratio:.2f}x it at the first "
            f"evaluation, {GAP_RATIO:g}x or more from step {step}, {ratio:.2f}x at step {last_step}",
            _overfitting_advice(record.config, history, step), step)
    return OVERFITTING.clear(
        f"validation loss {validation[0][1]:.3f} -> {last_value:.3f} over {len(validation)} evaluations (best "
        f"{best_value:.3f} at step {best_step}; a rise of {OVERFIT_MARGIN:.0%} and {OVERFIT_MIN_RISE:g} nats over "
        f"the best would count), "
        f"training loss {training[0][1]:.3f} -> {training[-1][1]:.3f}")


# ----------------------------------------------------------------- no learning

def _no_learning_advice(config: dict) -> str:
    method, rate = config.get("method", "full"), config.get("learning_rate")
    low, high = _range("learning_rate", method) or (0.0, math.inf)
    parts = []
    if rate and rate < high * (1 - 1e-9):
        target = min(max(higher_lr(rate), low), high)
        wants = f" (LoRA trains few weights and wants {lr(low)} to {lr(high)})" if method == "lora" else ""
        parts.append(f"raise the learning rate from {lr(rate)} to {lr(target)}{wants}")
    elif rate and rate > high * (1 + 1e-9):
        parts.append(f"the learning rate {lr(rate)} is already above the recommended range for {method} "
                     f"({lr(low)} to {lr(high)})")
    elif rate:
        parts.append(f"the learning rate {lr(rate)} is already the top of the recommended range for {method}")
    parts.append("check that the response tokens are trained: a prompt template that does not match the data "
                 "can leave no response tokens in the loss")
    return sentence(parts)


def no_learning(record: RunFacts) -> Finding:
    history = _logged(record.history)
    losses = series(history, "loss")
    window = losses[:math.ceil(len(losses) * JUDGED_SHARE)]
    warmed = _warmup_end(history, record.config)
    after_warmup = [p for p in window if p[0] > warmed]
    if len(after_warmup) < MIN_POST_WARMUP:
        return NO_LEARNING.unknown(
            f"{len(losses)} training loss(es) logged; judging needs {MIN_POST_WARMUP} steps past warmup "
            f"(step {warmed}) within the first {JUDGED_SHARE:.0%} of them")
    start = mean(v for _, v in window[:EDGE_POINTS])
    end = mean(v for _, v in window[-EDGE_POINTS:])
    drop = (start - end) / start if start > 0 else 0.0
    evidence = (f"training loss {start:.3f} -> {end:.3f}{change(end, start)} from step {window[0][0]} to step "
                f"{window[-1][0]}, the first {JUDGED_SHARE:.0%} of the logged steps")
    if start < ALREADY_LEARNED_LOSS:
        return NO_LEARNING.clear(f"{evidence}; it started below {ALREADY_LEARNED_LOSS:g}: the model already "
                                 "knows this data")
    if end > start * (1 + RISE_MARGIN):
        # A loss that climbs is not a flat one: the divergence check names it, with its own advice.
        return NO_LEARNING.clear(f"{evidence}: rising, not flat (see divergence)")
    if drop < MIN_RELATIVE_DROP:
        return NO_LEARNING.found(f"{evidence}: under the {MIN_RELATIVE_DROP:.0%} drop of a learning run",
                                 _no_learning_advice(record.config), window[-1][0])
    return NO_LEARNING.clear(evidence)

