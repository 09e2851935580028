"""The failure modes of fine-tuning, named as they happen.

Each detector is a pure function over a run's record (its logged history,
settings, held-out comparison, general-capability probe and training
responses) that returns one Finding: "found", "clear" (with the numbers it
looked at) or "unknown" (not enough data to judge, and why). The live screen
runs the detectors that need only the history; the end of a run runs them all.
The UI and the CLI only render findings.

The mitigations follow the tutorial this lab teaches, made concrete for the
run's own settings ("lower the learning rate from 5e-05 to 2e-05").
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from typing import Any, Callable, NamedTuple

from .config import field_by_name, recommended_range
from .curves import OVERFIT_MARGIN, best, overfit_onset, series
from .metrics import METRICS, normalise_answer

FOUND, CLEAR, UNKNOWN = "found", "clear", "unknown"

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

# --- mode collapse
# Fewer prompts than this cannot show "the same answer to different prompts".
MIN_PROMPTS = 4
# Half the prompts or more sharing an answer with another prompt is collapse
# when the references differ.
MAX_DISTINCT_SHARE = 0.5
# Mean pairwise similarity (difflib ratio over words, 0..1) at which answers are
# variations of one text; varied free-form answers sit well below 0.5.
MAX_SIMILARITY = 0.8
# ...and more alike than the references by this much: a templated task ("The
# date is ...") has alike references, and answers that follow them are right.
SIMILARITY_MARGIN = 0.15
# Answers that contain their own reference differ where it matters: when half
# or more do, alike wording is a template around right answers, not collapse.
MAX_RESPONSIVE_SHARE = 0.5
# Pairwise similarity is quadratic: 30 answers (435 pairs) measure it within a
# few points and keep 500 prompts under a second.
SIMILARITY_SAMPLE = 30
# Words of each answer compared (difflib over words, not characters, which is
# 20x faster); the start of an answer shows its mode.
SIMILARITY_WORDS = 60

# --- forgetting
# The probe's share is read from this metric: general answers are free-form
# sentences, so "the reference appears in the answer" is what can move;
# exact matches are near zero before and after.
PROBE_METRIC = "contains"
# Ten points on a probe of 20-50 prompts is several answers gone wrong, not
# one answer that flipped by chance.
SCORE_DROP = 0.10
# Perplexity on reference answers up 10%: the model finds ordinary text
# clearly less likely than before.
PERPLEXITY_RISE = 0.10
# Held-out "general" prompts counted only from this many: below five, one
# changed answer moves the share by 20 points or more.
MIN_GENERAL_PROMPTS = 5

# --- memorisation
# Shorter training responses ("Yes", "Paris", a label) recur across prompts
# by right, so only a copy of five words or more counts as memorised.
MIN_COPY_WORDS = 5

# Learning rates people recognise; advice moves one rung up or down.
LR_LADDER = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3)

# The engine's halt message: "the training loss became nan at step 4; ...".
NONFINITE_IN_ERROR = re.compile(r"(?:(the [\w ]*?loss) )?became (nan|-?inf)\b(?: at step (\d+))?", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    name: str  # stable id: "divergence", "overfitting", ...
    title: str  # short words for a badge
    status: str  # FOUND | CLEAR | UNKNOWN
    evidence: str  # the numbers looked at, with the step
    explanation: str  # what this failure is, in one line
    advice: str  # the mitigation for this run's settings ("" when clear)
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FailureMode:
    name: str
    title: str
    explanation: str

    def found(self, evidence: str, advice: str, step: int | None = None) -> Finding:
        return Finding(self.name, self.title, FOUND, evidence, self.explanation, advice, step)

    def clear(self, evidence: str, step: int | None = None) -> Finding:
        return Finding(self.name, self.title, CLEAR, evidence, self.explanation, "", step)

    def unknown(self, why: str, advice: str = "") -> Finding:
        return Finding(self.name, self.title, UNKNOWN, f"not enough data to judge: {why}", self.explanation, advice)


DIVERGENCE = FailureMode("divergence", "Divergence",
                         "Training became unstable: the loss blew up instead of falling, usually from too high a "
                         "learning rate.")
OVERFITTING = FailureMode("overfitting", "Overfitting",
                          "The model learns its training examples by heart: validation loss rises or pulls away "
                          "while training loss keeps falling.")
NO_LEARNING = FailureMode("no_learning", "Not learning",
                          "The training loss is not falling: the updates are too small or reach no trained tokens.")
MODE_COLLAPSE = FailureMode("mode_collapse", "Mode collapse",
                            "The model gives nearly the same answer whatever it is asked.")
FORGETTING = FailureMode("forgetting", "Forgetting",
                         "Catastrophic forgetting (the alignment tax): fine-tuning improved the task but degraded "
                         "general abilities.")
MEMORISATION = FailureMode("memorisation", "Memorisation",
                           "The model repeats training answers word for word on new prompts instead of answering "
                           "them.")


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


# ---------------------------------------------------------------- small helpers

def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _change(new: float, old: float) -> str:
    """The relative change as " (+12%)", or "" when there is no base to compare with."""
    return f" ({(new / old - 1) * 100:+.0f}%)" if old > 0 else ""


def _number(value) -> float | None:
    """A finite number, or None for anything else (a missing score, NaN, text)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _lr(value: float) -> str:
    """5e-05, 2e-04, 1.5e-05: the way Python prints small learning rates."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{exponent}"


def _lower_lr(value: float) -> float:
    lower = [rung for rung in LR_LADDER if rung < value * (1 - 1e-9)]
    return lower[-1] if lower else value / 2


def _higher_lr(value: float) -> float:
    higher = [rung for rung in LR_LADDER if rung > value * (1 + 1e-9)]
    return higher[0] if higher else value * 2


def _range(name: str, method: str) -> tuple[float, float] | None:
    return recommended_range(field_by_name(name), method)


def _sentence(parts) -> str:
    parts = [p for p in parts if p]
    return (parts[0][0].upper() + "; ".join(parts)[1:] + ".") if parts else ""


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def _quote(text: str, limit: int = 60) -> str:
    return f'"{text if len(text) <= limit else text[:limit - 3] + "..."}"'


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
    return _mean(before) if before else None


def _fewer_epochs(config: dict, epoch: float | None = None, step: int | None = None) -> str:
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


def _lower_lr_advice(config: dict) -> str:
    rate = config.get("learning_rate")
    return f"lower the learning rate from {_lr(rate)} to {_lr(_lower_lr(rate))}" if rate else "lower the learning rate"


def _missing_answers(rows: int, answered: int, status: str) -> str:
    if not rows:
        return "no held-out prompts were compared (held_out is 0 or the comparison has not run)"
    if not answered and status != "completed":
        return f"the run {status} before the answers after training were generated"
    return f"only {answered} of {rows} held-out prompts have an answer after training; at least {MIN_PROMPTS} needed"


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
    first, last = _mean(v for _, v in head), _mean(v for _, v in tail)
    text = (f"mean of the first quarter {where} (steps {head[0][0]}-{head[-1][0]}) {first:.3f}, of the last "
            f"quarter (steps {tail[0][0]}-{tail[-1][0]}) {last:.3f}{_change(last, first)}")
    return Trend(text, last > first * (1 + RISE_MARGIN), min(points[:-size], key=lambda p: p[1]))


def _divergence_advice(config: dict) -> str:
    parts = [_lower_lr_advice(config)]
    warmup, warmup_range = config.get("warmup_ratio"), _range("warmup_ratio", config.get("method", "full"))
    if warmup is not None and warmup_range and warmup < warmup_range[1]:
        parts.append(f"raise warmup_ratio from {warmup:g} to {warmup_range[1]:g}")
    clip = config.get("max_grad_norm")
    if clip is not None:
        parts.append(f"keep gradient clipping on (max_grad_norm {clip:g})" if clip > 0
                     else "turn gradient clipping back on (max_grad_norm 1.0)")
    return _sentence(parts)


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
    parts.append(_fewer_epochs(config, _epoch_at(history, step), step))
    parts.append("use more training data")
    decay, decay_range = config.get("weight_decay"), _range("weight_decay", config.get("method", "full"))
    if decay is not None and decay_range and decay < decay_range[1]:
        parts.append(f"raise weight_decay from {decay:g} to {min(decay + 0.1, decay_range[1]):g}")
    return _sentence(parts)


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
            f"{last_step}{_change(last_value, best_value)} while the training loss fell from "
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
        target = min(max(_higher_lr(rate), low), high)
        wants = f" (LoRA trains few weights and wants {_lr(low)} to {_lr(high)})" if method == "lora" else ""
        parts.append(f"raise the learning rate from {_lr(rate)} to {_lr(target)}{wants}")
    elif rate and rate > high * (1 + 1e-9):
        parts.append(f"the learning rate {_lr(rate)} is already above the recommended range for {method} "
                     f"({_lr(low)} to {_lr(high)})")
    elif rate:
        parts.append(f"the learning rate {_lr(rate)} is already the top of the recommended range for {method}")
    parts.append("check that the response tokens are trained: a prompt template that does not match the data "
                 "can leave no response tokens in the loss")
    return _sentence(parts)


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
    start = _mean(v for _, v in window[:EDGE_POINTS])
    end = _mean(v for _, v in window[-EDGE_POINTS:])
    drop = (start - end) / start if start > 0 else 0.0
    evidence = (f"training loss {start:.3f} -> {end:.3f}{_change(end, start)} from step {window[0][0]} to step "
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


# ----------------------------------------------------------------- mode collapse

class Diversity(NamedTuple):
    distinct: int  # different texts once normalised
    share: float  # distinct / all
    similarity: float  # mean pairwise difflib ratio over words, on a bounded sample


def _sample(texts: list[str], size: int) -> list[str]:
    """At most `size` texts, evenly spread (deterministic, so a rerun shows the same number)."""
    if len(texts) <= size:
        return texts
    return [texts[i * len(texts) // size] for i in range(size)]


def _diversity(texts: list[str]) -> Diversity:
    distinct = len(set(texts))
    sample = [t.split()[:SIMILARITY_WORDS] for t in _sample(texts, SIMILARITY_SAMPLE)]
    pairs = [SequenceMatcher(None, a, b, autojunk=False).ratio() for i, a in enumerate(sample) for b in sample[i + 1:]]
    return Diversity(distinct, distinct / len(texts), _mean(pairs) if pairs else 0.0)


def _collapsed(answers: Diversity, references: Diversity) -> bool:
    """Answers that repeat, or are far more alike than the references they should match."""
    return answers.share <= MAX_DISTINCT_SHARE or (
        answers.similarity >= MAX_SIMILARITY and answers.similarity >= references.similarity + SIMILARITY_MARGIN)


def mode_collapse(record: RunFacts) -> Finding:
    rows = [r for r in record.comparison or [] if isinstance(r, dict)]
    answered = [r for r in rows if _text(r.get("after"))]
    if len(answered) < MIN_PROMPTS:
        return MODE_COLLAPSE.unknown(_missing_answers(len(rows), len(answered), record.status))
    answers = _diversity([normalise_answer(r["after"]) for r in answered])
    references = _diversity([normalise_answer(_text(r.get("reference"))) for r in answered])
    if references.share <= MAX_DISTINCT_SHARE:
        return MODE_COLLAPSE.unknown(f"the references themselves repeat ({references.distinct} distinct of "
                                     f"{len(answered)}), so repeated answers are expected")
    responsive = sum(METRICS["contains"].score(r["after"], _text(r.get("reference"))) for r in answered)
    evidence = (f"{answers.distinct} distinct answers to {len(answered)} prompts (references: "
                f"{references.distinct}); mean pairwise similarity {answers.similarity:.2f} (references "
                f"{references.similarity:.2f}); {responsive:.0f} contain their reference")
    if not _collapsed(answers, references) or responsive / len(answered) >= MAX_RESPONSIVE_SHARE:
        return MODE_COLLAPSE.clear(evidence)
    common, count = Counter(_text(r["after"]) for r in answered).most_common(1)[0]
    advice = _sentence([_lower_lr_advice(record.config), _fewer_epochs(record.config),
                        "train on more diverse prompts and responses"])
    example = f"{_quote(common)} was the answer {count} times" if count > 1 else f"e.g. {_quote(common)}"
    return MODE_COLLAPSE.found(f"{evidence}; {example}", advice)


# ----------------------------------------------------------------- forgetting

class Signal(NamedTuple):
    text: str  # what was measured, for the evidence
    fired: bool


def _probe_signals(probe: dict | None) -> tuple[list[Signal], str]:
    """The probe's score and perplexity signals, and why there are none."""
    if not isinstance(probe, dict):
        return [], "the general-capability probe is off"
    signals = []
    before, after = probe.get("before") or {}, probe.get("after") or {}
    metric = next((m for m in (PROBE_METRIC, "normalised")
                   if _number(before.get(m)) is not None and _number(after.get(m)) is not None), None)
    if metric:
        b, a = _number(before[metric]), _number(after[metric])
        signals.append(Signal(f"general probe ({metric}, {probe.get('prompts', '?')} prompts): {b:.0%} -> {a:.0%} "
                              f"({(a - b) * 100:+.0f} points)", b - a >= SCORE_DROP - 1e-9))
    pb, pa = _number(probe.get("perplexity_before")), _number(probe.get("perplexity_after"))
    if pb and pa is not None:
        signals.append(Signal(f"reference perplexity {pb:.1f} -> {pa:.1f}{_change(pa, pb)}",
                              pa >= pb * (1 + PERPLEXITY_RISE)))
    return signals, "the general probe has no after-training scores yet"


def _general_rows_signal(rows: list[dict]) -> Signal | None:
    """The held-out prompts marked "general", scored before and after."""
    scored = [r for r in rows or [] if isinstance(r, dict) and r.get("category") == "general"
              and isinstance(r.get("before_score"), dict) and isinstance(r.get("after_score"), dict)
              and _number(r["before_score"].get(PROBE_METRIC)) is not None
              and _number(r["after_score"].get(PROBE_METRIC)) is not None]
    if len(scored) < MIN_GENERAL_PROMPTS:
        return None
    b = _mean(r["before_score"][PROBE_METRIC] for r in scored)
    a = _mean(r["after_score"][PROBE_METRIC] for r in scored)
    return Signal(f"general held-out prompts ({PROBE_METRIC}, {len(scored)}): {b:.0%} -> {a:.0%} "
                  f"({(a - b) * 100:+.0f} points)", b - a >= SCORE_DROP - 1e-9)


def _forgetting_advice(config: dict) -> str:
    parts = []
    if config.get("method", "full") != "lora":
        parts.append("use LoRA (method lora) to change fewer weights")
    parts += [_lower_lr_advice(config), _fewer_epochs(config),
              "mix some general instruction data in with the task data"]
    return _sentence(parts)


def forgetting(record: RunFacts) -> Finding:
    signals, why = _probe_signals(record.probe)
    general = _general_rows_signal(record.comparison)
    if general:
        signals.append(general)
    if not signals:
        return FORGETTING.unknown(f"{why} and fewer than {MIN_GENERAL_PROMPTS} held-out prompts of category "
                                  "'general' were scored before and after",
                                  "" if record.probe else "Switch on the general-capability probe.")
    evidence = "; ".join(s.text for s in signals)
    if any(s.fired for s in signals):
        return FORGETTING.found(f"{evidence} (a drop of {SCORE_DROP * 100:.0f} points or a perplexity rise of "
                                f"{PERPLEXITY_RISE:.0%} counts)", _forgetting_advice(record.config))
    return FORGETTING.clear(evidence)


# ----------------------------------------------------------------- memorisation

def memorisation(record: RunFacts) -> Finding:
    training = Counter(_text(r) for r in record.train_responses or [] if len(_text(r).split()) >= MIN_COPY_WORDS)
    rows = [r for r in record.comparison or [] if isinstance(r, dict)]
    answered = [r for r in rows if _text(r.get("after"))]
    if not record.train_responses:
        return MEMORISATION.unknown("the training responses were not given")
    if not answered:
        return MEMORISATION.unknown(_missing_answers(len(rows), 0, record.status))
    copies = [r for r in answered
              if _text(r["after"]) in training and _text(r.get("reference")) != _text(r["after"])]
    looked = (f"{len(answered)} held-out answers against {len(training)} training responses of "
              f"{MIN_COPY_WORDS}+ words")
    if not copies:
        return MEMORISATION.clear(f"no held-out answer copies a training response ({looked})")
    example = copies[0]
    repeated = sum(1 for count in training.values() if count > 1)
    advice = _sentence(["train on more varied data", _fewer_epochs(record.config),
                        f"deduplicate the training responses ({repeated} appear more than once)" if repeated
                        else "deduplicate near-identical training examples"])
    return MEMORISATION.found(
        f"{len(copies)} of {len(answered)} held-out answers copy a training response word for word, e.g. "
        f"{_quote(_text(example.get('prompt')))} got {_quote(_text(example['after']))} (reference: "
        f"{_quote(_text(example.get('reference')))})", advice)


# ----------------------------------------------------------------- the registry

# Adding a detector: write it above and add it here (and to LIVE if it needs only the history).
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
