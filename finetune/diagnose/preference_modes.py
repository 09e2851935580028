"""The failure modes of a preference run (DPO, KTO): likelihood displacement,
margin runaway, length exploitation and no preference learned. They read the
signals TRL logs (rewards/chosen, rewards/margins, logps/chosen, and on the
validation pairs eval_rewards/accuracies: train/objectives.py), the held-out
answers, and the preference evidence of unseen pairs (evaluate/preference.py).
They apply to preference objectives only (modes.detectors_for): a supervised
run never shows them, not even as "not enough data".

TRL's rewards are beta x the log-probability ratio of a whole reply to the
starting (reference) model, so reward / beta is how far, in nats, the model
moved that reply's log-probability from where it started: the detectors read
drift in those nats, whatever beta the run used.
"""

from __future__ import annotations

import math

from ..data.text import normalise_answer
from ..evaluate.metrics import LENGTH_CHANGE, PREFERENCE, UNITS
from ..evaluate.preference import preferred_difference
from ..evaluate.significance import BETTER
from .answer_modes import mode_collapse
from .base import FOUND, FailureMode, Finding, RunFacts, fewer_epochs, higher_lr, lower_lr_advice, lr, mean, sentence
from .curve_modes import _logged, _warmup_end
from .curves import series

# --- shared
# Quarters of the logged steps are compared; below eight steps a quarter is one
# noisy batch (each logged step is a different batch of pairs).
MIN_POINTS = 8
# beta as the advice moves it: roughly threefold rungs, 0.1 being the usual start
# (train/config.py: 0.01-0.5 recommended).
BETA_LADDER = (0.01, 0.03, 0.1, 0.3, 0.5)

# --- likelihood displacement
# The chosen reply's log-probability fell at least ln 2 below the starting model's:
# it became less than half as likely, while the margin says the preference was learned.
DISPLACEMENT_NATS = math.log(2)
# ...and the margin did grow, by at least half a nat of log-ratio (the chosen reply
# 1.6x likelier against the rejected one than at the start): below it nothing was learned
# that could be displacing anything, and no_preference_learned speaks instead.
MARGIN_GROWTH_NATS = 0.5

# --- margin runaway
# 50 nats of log-ratio: the chosen reply e^50 times likelier against the rejected one
# than under the starting model. No preference between two replies needs that much:
# the healthy tiny run of tests/fixtures (dpo-healthy) changed its replies' format
# with 25 nats, the runaway one (beta 0.01, learning rate 5e-3) passed 250 and its
# answers collapsed; the default model at learning rate 5e-5 (dpo-length) reached 94
# while its answers filled with padding. In reward units it is a margin of 5 at beta
# 0.1 (DPO's sigmoid loss under 0.01), where the loss has long stopped asking for more.
DRIFT_NATS = 50.0

# --- length exploitation
# Fewer answers than this cannot show a length habit.
MIN_ANSWERS = 4
# Answers a fifth longer than the chosen replies they are scored against (the lab's
# "changed length", metrics.LENGTH_CHANGE: less is the spread of greedy answers)...
LENGTH_RATIO = 1 + LENGTH_CHANGE
# ...and a fifth longer than the base model's: the training made them longer, they did not
# start that way. The default model trained on verbose chosen replies (tests/fixtures/dpo-length)
# went from 8 to 37 words against chosen replies of 27: padding ("a topic that requires a bit
# of explanation"), not the replies it was shown.
LENGTH_GROWTH = LENGTH_CHANGE

# --- no preference learned
# Evaluations past warmup needed before the validation accuracy is judged, and how
# many of the last ones are averaged: early evaluations of a slow run are still at chance.
MIN_EVALS = 3
LAST_EVALS = 2
# TRL's preference accuracy counts a pair when its chosen reward is strictly higher:
# 0 at the first step (every reward is 0), 0.5 for a coin. The tiny runs of
# tests/fixtures that learn end far above 0.6 (dpo-healthy 100%, dpo-displacement 88%);
# the swapped pairs of dpo-no-preference end at 25%. 0.6 is also a coin's share plus
# one standard error on 25 validation pairs.
CHANCE_ACCURACY = 0.6
# Held-out pairs fewer than this cannot show a share that did not rise.
MIN_PAIRS = 8
# A base model that prefers the chosen reply on 90% of unseen pairs has no room to show a rise.
CEILING = 0.9

LIKELIHOOD_DISPLACEMENT = FailureMode(
    "likelihood_displacement", "Likelihood displacement",
    "The margin grew by pushing both replies down: the chosen replies became less likely than before training, "
    "and the probability went to other replies than the chosen ones.")
MARGIN_RUNAWAY = FailureMode(
    "margin_runaway", "Margin runaway",
    "The reward margin keeps growing after the pairs are separated: the model drifts away from the starting "
    "model without bound, which ends in degenerate answers.")
LENGTH_EXPLOITATION = FailureMode(
    "length_exploitation", "Length exploitation",
    "The model learned that longer is preferred: its answers grew longer than the chosen replies it should match.")
NO_PREFERENCE_LEARNED = FailureMode(
    "no_preference_learned", "No preference learned",
    "The model does not prefer the chosen replies more than before training: the preference accuracy stays at "
    "chance.")


# ---------------------------------------------------------------- small helpers

def _beta(config: dict) -> float:
    beta = config.get("beta")
    return float(beta) if isinstance(beta, (int, float)) and beta > 0 else 0.1


def _quarters(points: list[tuple[int, float]]) -> list[list[tuple[int, float]]]:
    """The points in four consecutive runs of equal size (the first takes any remainder)."""
    size = len(points) // 4
    return [points[:len(points) - 3 * size]] + [points[len(points) - (3 - i) * size:][:size] for i in range(3)]


def _mean_of(points) -> float:
    return mean(v for _, v in points)


def _span(points) -> str:
    return f"steps {points[0][0]}-{points[-1][0]}"


def _first_step_below(points: list[tuple[int, float]], limit: float, window: int = 3) -> int | None:
    """The first step where the mean of the last `window` values (one batch is noise) is at or below `limit`."""
    for i in range(window - 1, len(points)):
        if _mean_of(points[i - window + 1:i + 1]) <= limit:
            return points[i][0]
    return None


def _first_step_at_or_above(points: list[tuple[int, float]], limit: float) -> int | None:
    return _first_step_below([(s, -v) for s, v in points], -limit)


def _beta_rung(beta: float, up: bool) -> float | None:
    rungs = [b for b in BETA_LADDER if (b > beta * (1 + 1e-9) if up else b < beta * (1 - 1e-9))]
    return (rungs[0] if up else rungs[-1]) if rungs else None


def _raise_beta(config: dict) -> str:
    beta = _beta(config)
    target = _beta_rung(beta, up=True)
    return f"raise beta from {beta:g} to {target:g} (it keeps the model nearer the starting one)" if target else ""


def _nats(value: float) -> str:
    return f"{value:+.1f} nats"


def _training_signals(record: RunFacts, *keys: str) -> tuple[list[list[tuple[int, float]]], str | None]:
    """Each key's logged series on the training batches, and why they cannot be judged (or None)."""
    history = _logged(record.history)
    found = [series(history, key) for key in keys]
    shortest = min(len(points) for points in found)
    if shortest < MIN_POINTS:
        return found, (f"{shortest} training step(s) logged with {' and '.join(keys)}; judging a trend needs "
                       f"{MIN_POINTS}")
    return found, None


# ---------------------------------------------------------------- likelihood displacement

def _displacement_advice(config: dict) -> str:
    parts = []
    if config.get("objective") == "dpo" and config.get("dpo_loss") != "apo_zero":
        parts.append(f"use dpo_loss apo_zero instead of {config.get('dpo_loss') or 'sigmoid'} (it raises the chosen "
                     "replies' likelihood rather than only the margin)")
    if config.get("objective") == "kto":
        weight = config.get("desirable_weight") or 1.0
        parts.append(f"raise desirable_weight from {weight:g} to {weight * 4 / 3:.2g}")
    parts += [lower_lr_advice(config), _raise_beta(config),
              "start from a supervised run on the chosen replies (Continue from this run), and check the pairs: "
              "chosen and rejected replies that are nearly alike push both down"]
    return sentence(parts)


def likelihood_displacement(record: RunFacts) -> Finding:
    (chosen, margins, logps), why = _training_signals(record, "rewards/chosen", "rewards/margins", "logps/chosen")
    if why:
        return LIKELIHOOD_DISPLACEMENT.unknown(why)
    beta = _beta(record.config)
    first, *_, last = _quarters(chosen)
    margin_first, *_, margin_last = _quarters(margins)
    moved = _mean_of(last) / beta  # the chosen replies' log-probability against the starting model, in nats
    grew = (_mean_of(margin_last) - max(_mean_of(margin_first), 0.0)) / beta
    logp_first, *_, logp_last = _quarters(logps)
    evidence = (f"the chosen replies' log-probability against the starting model {_nats(_mean_of(first) / beta)} "
                f"({_span(first)}) -> {_nats(moved)} ({_span(last)}) (rewards/chosen {_mean_of(last):.3f} at beta "
                f"{beta:g}); logps/chosen {_mean_of(logp_first):.1f} -> {_mean_of(logp_last):.1f}; the margin "
                f"{_mean_of(margin_first):.3f} -> {_mean_of(margin_last):.3f} ({_nats(grew)} of log-ratio)")
    eval_logps = series(_logged(record.history), "eval_logps/chosen")
    if len(eval_logps) >= 2:
        evidence += (f"; on the validation pairs logps/chosen {eval_logps[0][1]:.1f} (step {eval_logps[0][0]}) -> "
                     f"{eval_logps[-1][1]:.1f} (step {eval_logps[-1][0]})")
    if moved <= -DISPLACEMENT_NATS and grew >= MARGIN_GROWTH_NATS:
        step = _first_step_below([(s, v / beta) for s, v in chosen], -DISPLACEMENT_NATS)
        # The preference evidence is not simply better when it was won by making the chosen replies less likely.
        fell = f"the chosen replies' log-probability fell {-moved:.1f} nats below the starting model's"
        return LIKELIHOOD_DISPLACEMENT.found(
            f"{evidence}: the chosen replies became less than half as likely while the margin grew",
            _displacement_advice(record.config), step, degraded={PREFERENCE: f"{fell} while the margin grew"})
    return LIKELIHOOD_DISPLACEMENT.clear(
        f"{evidence} (a fall of {DISPLACEMENT_NATS:.2f} nats while the margin grows by {MARGIN_GROWTH_NATS:g} "
        "nats counts)")


# ---------------------------------------------------------------- margin runaway

def _runaway_advice(config: dict, step: int | None) -> str:
    parts = []
    if config.get("objective") == "dpo" and config.get("dpo_loss") != "ipo":
        parts.append(f"use dpo_loss ipo instead of {config.get('dpo_loss') or 'sigmoid'} (it aims the margin at a "
                     "fixed size instead of growing it without bound)")
    parts += [_raise_beta(config), lower_lr_advice(config), fewer_epochs(config, step=step)]
    return sentence(parts)


def margin_runaway(record: RunFacts) -> Finding:
    (margins,), why = _training_signals(record, "rewards/margins")
    if why:
        return MARGIN_RUNAWAY.unknown(why)
    beta = _beta(record.config)
    first, _, third, last = _quarters(margins)
    end, before_end = _mean_of(last), _mean_of(third)
    # Still growing at the end (a decaying learning rate slows any margin; one that fell back is not running away).
    growing = end > 0 and end >= before_end
    evidence = (f"the margin {_mean_of(first):.3f} ({_span(first)}) -> {before_end:.3f} ({_span(third)}) -> "
                f"{end:.3f} ({_span(last)}): {end / beta:.1f} nats of log-ratio from the starting model at beta "
                f"{beta:g}")
    if end / beta < DRIFT_NATS or not growing:
        return MARGIN_RUNAWAY.clear(f"{evidence}, {'still growing' if growing else 'not growing'} (a margin still "
                                    f"growing past {DRIFT_NATS:g} nats counts)")
    step = _first_step_at_or_above([(s, v / beta) for s, v in margins], DRIFT_NATS) or last[0][0]
    evidence += f", still growing: past {DRIFT_NATS:g} nats from step {step}, far more than separating the pairs needs"
    collapsed = mode_collapse(record) if record.comparison else None
    if collapsed is not None and collapsed.status == FOUND:
        evidence += f"; and the answers degenerated: {collapsed.evidence}"
    # A preference won by drifting this far is not simply better: the answers pay for it.
    drifted = f"the margin reached {end / beta:.0f} nats of log-ratio from the starting model, still growing"
    return MARGIN_RUNAWAY.found(evidence, _runaway_advice(record.config, step), step, degraded={PREFERENCE: drifted})


# ---------------------------------------------------------------- length exploitation

def _words(text) -> int:
    return len(normalise_answer(text).split()) if isinstance(text, str) else 0


def _length_advice(config: dict, bias: str) -> str:
    parts = []
    if config.get("objective") == "dpo" and config.get("dpo_loss") != "sigmoid_norm":
        parts.append(f"use dpo_loss sigmoid_norm instead of {config.get('dpo_loss') or 'sigmoid'} (it normalises "
                     "the log-probabilities by length)")
    parts += [bias, _raise_beta(config), fewer_epochs(config)]
    return sentence(parts)


def length_exploitation(record: RunFacts) -> Finding:
    rows = [r for r in record.comparison or [] if isinstance(r, dict)
            and isinstance(r.get("after"), str) and isinstance(r.get("before"), str)]
    if len(rows) < MIN_ANSWERS:
        return LENGTH_EXPLOITATION.unknown(
            f"{len(rows)} held-out prompts answered before and after training; at least {MIN_ANSWERS} needed")
    after, before = mean(_words(r["after"]) for r in rows), mean(_words(r["before"]) for r in rows)
    chosen = mean(_words(r.get("reference")) for r in rows)
    evidence = (f"held-out answers {before:.0f} -> {after:.0f} words on average; the chosen replies "
                f"{chosen:.0f} words")
    pairs = [r for r in rows if isinstance(r.get("rejected"), str)]
    bias = ""
    if pairs:
        longer = sum(_words(r["reference"]) > _words(r["rejected"]) for r in pairs)
        evidence += (f", the rejected ones {mean(_words(r['rejected']) for r in pairs):.0f} (the chosen reply is "
                     f"the longer in {longer} of {len(pairs)} pairs)")
        if longer > len(pairs) / 2:
            bias = (f"balance the pairs' lengths: the chosen reply is the longer in {longer} of {len(pairs)} held-out "
                    "pairs, so length alone predicts the preference")
    if chosen > 0 and after >= LENGTH_RATIO * chosen and after >= (1 + LENGTH_GROWTH) * before:
        text = f"answers {after / chosen:.1f}x the chosen replies' length, {before:.0f} -> {after:.0f} words"
        return LENGTH_EXPLOITATION.found(
            f"{evidence}: the answers grew {after / max(before, 1):.1f}x and are {after / chosen:.1f}x the chosen "
            "replies' length", _length_advice(record.config, bias), degraded={PREFERENCE: f"{text}"})
    return LENGTH_EXPLOITATION.clear(
        f"{evidence} (answers {LENGTH_RATIO:g}x the chosen replies' length and {LENGTH_GROWTH:.0%} longer than "
        "before would count)")


# ---------------------------------------------------------------- no preference learned

def _no_preference_advice(config: dict, fits_training: bool) -> str:
    """Pairs the model learns to separate in training but not on unseen ones hold no consistent
    preference (swapped or arbitrary labels): more learning rate would only fit them harder."""
    check = ("check the pairs: chosen and rejected replies that barely differ, or are sometimes swapped, teach no "
             "preference")
    if fits_training:
        return sentence([f"{check}: the training pairs were learned (their accuracy rose) but nothing carried over "
                         "to the validation pairs", fewer_epochs(config)])
    rate = config.get("learning_rate")
    parts = [f"raise the learning rate from {lr(rate)} to {lr(higher_lr(rate))}" if rate else
             "raise the learning rate"]
    steps = config.get("max_steps") or 0
    if steps:
        parts.append(f"train more steps: max_steps {steps} -> {steps * 2}")
    return sentence([*parts, check])


def _fits_training(history: list[dict]) -> bool:
    """The training batches' preference accuracy ended above chance (its last quarter's mean)."""
    points = series(history, "rewards/accuracies")
    return len(points) >= MIN_POINTS and _mean_of(_quarters(points)[-1]) > CHANCE_ACCURACY


def _held_out_signal(record: RunFacts) -> tuple[str, bool, bool] | None:
    """(evidence, not rising, better beyond the noise) from the unseen pairs measured before and after."""
    diff = preferred_difference(record.preference) if isinstance(record.preference, dict) else None
    if diff is None or diff.n < MIN_PAIRS:
        return None
    text = (f"the model preferred the chosen reply on {diff.before:.0%} -> {diff.after:.0%} of {diff.n} "
            f"{UNITS[PREFERENCE]} never trained on ({diff.verdict}: {diff.numbers()})")
    return text, diff.after <= diff.before and diff.before < CEILING, diff.verdict == BETTER


def no_preference_learned(record: RunFacts) -> Finding:
    history = _logged(record.history)
    warmed = _warmup_end(history, record.config)
    accuracies = [p for p in series(history, "eval_rewards/accuracies") if p[0] > warmed]
    held_out = _held_out_signal(record)
    parts, chance = [], None
    if len(accuracies) >= MIN_EVALS:
        last = accuracies[-LAST_EVALS:]
        chance = _mean_of(last) <= CHANCE_ACCURACY
        parts.append(f"validation preference accuracy {accuracies[0][1]:.0%} (step {accuracies[0][0]}) -> "
                     f"{_mean_of(last):.0%} over the last {len(last)} evaluations ({_span(last)})")
    if held_out:
        parts.append(held_out[0])
    if not parts:
        return NO_PREFERENCE_LEARNED.unknown(
            f"{len(accuracies)} evaluation(s) of the preference accuracy past warmup (step {warmed}), "
            f"{MIN_EVALS} needed; and no unseen pairs were measured before and after training")
    evidence = "; ".join(parts)
    if held_out is not None and held_out[2]:
        return NO_PREFERENCE_LEARNED.clear(f"{evidence}: the unseen pairs show the preference learned")
    step = accuracies[-1][0] if accuracies else None
    advice = _no_preference_advice(record.config, _fits_training(history))
    if chance:
        return NO_PREFERENCE_LEARNED.found(
            f"{evidence}: at chance (a validation accuracy at or under {CHANCE_ACCURACY:.0%} counts)", advice, step)
    if chance is None and held_out is not None and held_out[1]:  # no validation accuracy (KTO): the unseen pairs decide
        return NO_PREFERENCE_LEARNED.found(f"{evidence}: the share did not rise", advice, step)
    if held_out is not None and held_out[1]:
        # Separated against the starting model, yet no likelier than the rejected reply on its own:
        # the start's lean was stronger than what training moved. Said, not found: the run learned.
        evidence += (": the validation pairs were separated against the starting model, but on unseen pairs the "
                     "chosen reply is no more often the likelier per token than before")
    return NO_PREFERENCE_LEARNED.clear(evidence)
