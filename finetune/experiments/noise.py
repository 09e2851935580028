"""Is a run's lead bigger than the noise? The verdict's winner against the
runner-up on the validation loss, and every run against the best on the
held-out answers, each paired over the same items with a 95% interval.
"""

from __future__ import annotations

from ..evaluate.metrics import HEADLINE, METRICS, aligned_after_scores
from ..evaluate.significance import MIN_PAIRS, NO_VERDICT, TOO_FEW, UNCHANGED, Difference, paired_difference
from ..runs.outputs import read_validation_losses
from ..runs.records import RunRecord
from .labels import (
    NOT_JUDGED,
    quoted,
    readable,
    run_labels,
)

# A winner is only a winner when its lead is bigger than the noise: with 30
# validation examples or 20 held-out prompts, a small lead can be luck. Two
# measures, each paired over the same items so that what the items have in
# common (some are simply harder) cancels out:
#
# - The validation loss, which the verdict ranks by. Its noise comes from which
#   examples landed in the validation set, so it is measured on the examples:
#   each run stores every validation example's loss under its final model
#   (runs/validation_losses.py), and the paired bootstrap of the per-example
#   differences gives the spread of the gap. The verdict ranks by each run's
#   lowest validation loss (its best step), which has no per-example losses; the
#   spread of a gap over the same examples hardly moves between steps, so the
#   interval takes its width from the final models and is centred on the gap
#   between the lowest losses the verdict names. This is the fairest measure of
#   the two: it is the ranked quantity itself, over the most items (every
#   validation example, not 10-50 prompts), with per-example losses that vary
#   smoothly rather than right/wrong.
# - The held-out answers, paired by prompt (the runs of a sweep share data,
#   split and seed, so they answered the same prompts): each run's score against
#   the best run's, for what the runs were trained to do. Reported beside the
#   loss verdict, never mixed into it: a lower loss need not mean better answers.


def loss_margin(records: dict[str, RunRecord], facts: dict, lowest: dict | None) -> dict | None:
    """How far the lowest validation loss is below the runner-up's, with a 95%
    interval for that gap; `tie` is True when the interval reaches zero, None
    when the runs stored no per-example losses for the same examples, or when
    every shared example's loss differs by the same amount (no spread: `examples`
    says how many, and no interval is given)."""
    if lowest is None or len(facts) < 2:
        return None
    winner = lowest["label"]
    runner = min((n for n in facts if n != winner), key=lambda n: (facts[n]["best_value"], facts[n]["best_step"]))
    gap = facts[runner]["best_value"] - facts[winner]["best_value"]
    found = {"winner": winner, "runner_up": runner, "runner_up_value": facts[runner]["best_value"], "gap": gap,
             "examples": 0, "low": None, "high": None, "tie": None}
    mine, theirs = read_validation_losses(records[winner].folder), read_validation_losses(records[runner].folder)
    shared = [example for example in mine if example in theirs]
    if len(shared) < MIN_PAIRS:
        return found
    final = paired_difference([mine[e] for e in shared], [theirs[e] for e in shared])
    if final.verdict == NO_VERDICT:
        return {**found, "examples": len(shared)}
    low, high = gap - (final.change - final.low), gap + (final.high - final.change)
    return {**found, "examples": len(shared), "low": low, "high": high, "tie": low <= 0}


def margin_sentence(margin: dict) -> str:
    runner, gap = quoted(margin["runner_up"]), margin["gap"]
    if margin["tie"] is None and margin["examples"]:
        return (f"Whether that lead of {gap:.4f} over {runner} ({margin['runner_up_value']:.4f}) is bigger than the "
                f"noise cannot be told: the losses of the {margin['examples']} validation examples both runs scored "
                "differ by the same amount on every example, so there is no spread to measure the noise with.")
    if margin["tie"] is None:
        return (f"Whether that lead of {gap:.4f} over {runner} ({margin['runner_up_value']:.4f}) is bigger than the "
                "noise cannot be told: the two runs stored no per-example validation losses for the same examples.")
    interval = (f"95% interval {margin['low']:+.4f} to {margin['high']:+.4f}, from the losses of the "
                f"{margin['examples']} validation examples both runs scored")
    if margin["tie"]:
        return (f"That is a tie with {runner} ({margin['runner_up_value']:.4f}): the gap of {gap:.4f} is within "
                f"the noise ({interval}).")
    return f"It beats the runner-up, {runner} ({margin['runner_up_value']:.4f}), by {gap:.4f}, more than the noise " \
           f"({interval})."


def held_out_comparison(records, name: str = HEADLINE, labels: dict[str, str] | None = None) -> dict | None:
    """For the finished runs that answered the same held-out prompts (two or
    more): each run's after-training score on metric `name` over the prompts
    all of them answered, and its difference against the best run's, paired by
    prompt, with a 95% interval. `tie` says the runner-up is within the noise of
    the best (None: too few prompts to tell). None when fewer than two runs share prompts.
    `labels`: run id -> name, when the caller names the runs among more of them."""
    labels = labels or run_labels(records)
    judged = [r for r in readable(records) if r.status not in NOT_JUDGED]
    aligned = aligned_after_scores({labels[r.id]: r.comparison for r in judged}, name)
    if len(aligned) < 2:
        return None
    ids = {labels[r.id]: r.id for r in judged}
    means = {label: sum(scores) / len(scores) for label, scores in aligned.items()}
    order = sorted(aligned, key=lambda label: -means[label])  # stable: an equal score keeps the given order
    best, runner = order[0], order[1]
    runs = {}
    for label in order:
        runs[label] = {"run": ids[label], "score": means[label]}
        if label != best:
            against_best = paired_difference(aligned[best], aligned[label])  # change: this run's score - the best's
            runs[label]["versus_best"] = against_best.to_dict("against the best run")
    against = runs[runner]["versus_best"]["verdict"]
    return {"metric": name, "prompts": len(aligned[best]), "best": best, "runner_up": runner,
            "tie": None if against in (TOO_FEW, NO_VERDICT) else against == UNCHANGED, "runs": runs}


def held_out_sentence(found: dict) -> str:
    """The held-out comparison in words: the best run, each other run against it, and whether it is a tie."""
    metric = METRICS[found["metric"]].label if found["metric"] in METRICS else found["metric"]
    parts = [f"best {quoted(found['best'])} at {found['runs'][found['best']]['score']:.0%}"]
    for label, entry in found["runs"].items():
        if "versus_best" in entry:
            diff = Difference.from_dict(entry["versus_best"])
            where = {UNCHANGED: "within the noise", TOO_FEW: "too few prompts to tell",
                     NO_VERDICT: "no verdict: every prompt differs by the same amount"}.get(
                diff.verdict, "behind, by more than the noise")
            parts.append(f"{quoted(label)} {entry['score']:.0%} ({diff.numbers()}: {where})")
    text = (f"Held-out answers after training ({metric} match, on the {found['prompts']} prompts every run "
            f"answered): " + "; ".join(parts) + ".")
    best, runner = quoted(found["best"]), quoted(found["runner_up"])
    if found["tie"] is None:
        against = Difference.from_dict(found["runs"][found["runner_up"]].get("versus_best"))
        if against is not None and against.verdict == NO_VERDICT:
            return text + f" No verdict between {best} and {runner}: every prompt differs by the same amount."
        return text + f" Too few shared prompts to tell {best} from {runner}."
    if found["tie"]:
        return text + f" On these answers {best} and {runner} are a tie: the difference is within the noise."
    return text + f" On these answers {best} is ahead of every other run by more than the noise."


def versus_best_cells(found: dict | None) -> dict[str, str]:
    """run id -> the table cell: "best" for the best run, else its difference and interval."""
    if not found:
        return {}
    cells = {}
    for entry in found["runs"].values():
        if "versus_best" not in entry:
            cells[entry["run"]] = f"best ({entry['score']:.0%})"
        else:
            diff = Difference.from_dict(entry["versus_best"])
            cells[entry["run"]] = diff.numbers() + (", within the noise" if diff.verdict == UNCHANGED else "")
    return cells
