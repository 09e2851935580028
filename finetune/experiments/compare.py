"""Comparing runs: a table of outcomes and a verdict in plain words that
answers the tutorial's exercise ("fine-tune with learning rates 1e-5, 2e-5 and
5e-5: which converges fastest without overfitting?") from the numbers the runs
logged.

Everything here reads RunRecords (runs/records.py), the curve facts of diagnose/curves.py
and each run's own overfitting check (diagnose/curve_modes.py), so "converged" and
"overfit" mean the same as on every other screen. How runs
are named is labels.py, whether a lead beats the noise noise.py, the overlaid
curves figures.py.
"""

from __future__ import annotations

import time

import pandas as pd

from ..diagnose import curves
from ..diagnose.base import FOUND, RunFacts
from ..diagnose.curve_modes import GAP_RATIO, OVERFIT_MIN_RISE, overfitting
from ..runs.portable import display_name
from ..runs.records import RunRecord
from .labels import (
    FIXED_COLUMNS,
    NOT_JUDGED,
    differing_settings,
    display_value,
    objective_caution,
    quoted,
    run_labels,
    setting_value,
)
from .noise import held_out_comparison, held_out_sentence, loss_margin, margin_sentence, versus_best_cells

NOTE_CHARS = 200  # a table cell, not a traceback: the full error is on the run's own page
CHAIN_MAX = 20  # runs named in one "from" cell: a chain is a few runs long; a loop in copied folders stops here
METRIC_NAMES = {"eval_loss": "validation loss", "loss": "training loss"}
VERSUS_BEST = "held-out vs best (95% interval)"


# --------------------------------------------------------------------------- the table


def runs_rows(records, versus_best: bool = False, held_out: dict | None = None) -> list[dict]:
    """The comparison table as JSON-ready rows, one per run, in the order given.
    `versus_best` (runs chosen to be compared, not a listing of everything) adds
    each run's held-out score against the best run's, with its interval; pass the
    verdict's `held_out` when there is one, so the intervals are not worked out twice."""
    differing = [n for n in differing_settings(records) if n not in FIXED_COLUMNS]
    labels = run_labels(records)
    by_id = {r.id: r for r in records}
    rows = [_row(r, labels[r.id], differing, chain(r, by_id)) for r in records]
    if versus_best or held_out is not None:
        cells = versus_best_cells(held_out if held_out is not None else held_out_comparison(records))
        for record, row in zip(records, rows):
            row[VERSUS_BEST] = cells.get(record.id, "")
    return rows


def runs_table(records, versus_best: bool = False, held_out: dict | None = None) -> pd.DataFrame:
    rows = runs_rows(records, versus_best, held_out)
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else ["run", "status"])


def chain(record: RunRecord, by_id: dict[str, RunRecord]) -> str:
    """The runs `record` continues from, oldest first, each with the model taken from it:
    "A (final) → B (best)" is a run continued from B's best checkpoint, B from A's final
    model; the chain goes back as far as `by_id` (the runs listed) knows it. '' for none."""
    links, seen, current = [], {record.id}, record
    while current is not None and current.parent and len(links) < CHAIN_MAX:
        parent = current.parent
        links.append(f"{parent['run_id']} ({parent['which']})")
        current = by_id.get(parent["run_id"])
        if current is not None and current.id in seen:
            break
        seen.add(parent["run_id"])
    return " → ".join(reversed(links))


def _row(record: RunRecord, label: str, differing: list[str], parents: str = "") -> dict:
    summary = record.summary or {}
    history = [] if record.unreadable else record.history
    best = curves.best(history, "eval_loss")
    row = {"run": record.id, "label": label, "time": _when(record.created_at),
           "model": _model_name(record), "from": parents, "data": display_value(record, "data")}
    row.update({name: display_value(record, name) for name in differing})
    row.update({
        "status": record.status,
        "steps": _first_number(summary.get("steps"), history[-1]["step"] if history else None),
        "final train loss": _rounded(_first_number(summary.get("final_train_loss"), _last(history, "loss"))),
        "best val loss": _rounded(best[1]) if best else None,
        "best val step": best[0] if best else None,
        "held-out (before → after)": _held_out(summary),
        "duration (s)": _rounded(_duration(record, summary), 1),
        "note": _note(record),
    })
    return row


def _note(record: RunRecord) -> str:
    """Why a run did not finish normally, in its own words."""
    if record.unreadable:
        return record.unreadable
    if record.status not in ("failed", "interrupted", "cancelled"):
        return ""
    lines = (record.error or record.message or "").strip().splitlines()
    return lines[0][:NOTE_CHARS] if lines else ""


def _model_name(record: RunRecord) -> str:
    if record.parent:  # another run's folder: named by that run, not by "best" or "model"
        return f"{record.parent['run_id']}/{'model' if record.parent['which'] == 'final' else 'best'}"
    resolved = record.config.get("resolved")
    resolved = resolved.get("model") if isinstance(resolved, dict) else None
    summary_model = (record.summary or {}).get("model")
    return display_name(resolved) or display_name(summary_model) or display_value(record, "model")


def _held_out(summary: dict) -> str:
    """Share of held-out prompts answered right (normalised match), before -> after training."""
    scores = summary.get("scores")
    entry = scores.get("all") if isinstance(scores, dict) else None
    if not isinstance(entry, dict):
        return ""
    before, after = entry.get("before_normalised"), entry.get("after_normalised")
    return f"{_percent(before)} → {_percent(after)}"


def _percent(share) -> str:
    return f"{share:.0%}" if isinstance(share, (int, float)) and not isinstance(share, bool) else "–"


def _duration(record: RunRecord, summary: dict):
    seconds = summary.get("duration_seconds")
    if isinstance(seconds, (int, float)):
        return seconds
    if record.started_at and record.finished_at:
        return record.finished_at - record.started_at
    return None


def _when(stamp) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else ""


def _last(history, key):
    points = curves.series(history, key)
    return points[-1][1] if points else None


def _first_number(*values):
    return next((v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)), None)


def _rounded(value, digits: int = 4):
    return round(value, digits) if isinstance(value, (int, float)) else None


# --------------------------------------------------------------------------- the verdict


def verdict(records) -> dict:
    """Which run reached the lowest validation loss, which converged fastest, which
    overfit, and so which converges fastest without overfitting: structured fields
    plus `text`, the same answer in plain words."""
    labels = run_labels(records)
    judged, left_out = _judged(records, labels)
    metric = "eval_loss" if any(curves.series(r.history, "eval_loss") for r in judged) else "loss"
    facts = {}
    for record in judged:
        found = _facts(record, metric)
        if found is None:
            left_out[labels[record.id]] = f"logged no {METRIC_NAMES[metric]}"
        else:
            facts[labels[record.id]] = found
    result = _decide(facts, metric if facts else None)
    by_label = {labels[r.id]: r for r in judged}
    result["lowest_margin"] = loss_margin(by_label, facts, result["lowest"]) if metric == "eval_loss" else None
    result["held_out"] = held_out_comparison(judged, labels=labels)
    result["left_out"] = left_out
    result["text"] = _verdict_text(result, facts, left_out, _steps_comparable(judged))
    caution = objective_caution(judged) if facts else None  # losses of different objectives or betas
    if caution:
        result["text"] += " " + caution
    return result


def _judged(records, labels) -> tuple[list[RunRecord], dict[str, str]]:
    judged, left_out = [], {}
    for record in records:
        if record.status in NOT_JUDGED:
            left_out[labels[record.id]] = record.unreadable or record.status
        else:
            judged.append(record)
    return judged, left_out


def _facts(record: RunRecord, metric: str) -> dict | None:
    best = curves.best(record.history, metric)
    if best is None:
        return None
    return {"run": record.id, "best_step": best[0], "best_value": best[1],
            "converged_at": curves.converged_at(record.history, metric),
            "overfit_at": _overfit_at(record) if metric == "eval_loss" else None}


def _overfit_at(record: RunRecord) -> int | None:
    """Where the run's own overfitting check (diagnose.curve_modes.overfitting) found
    it began, or None: the verdict never says a run overfit that its diagnosis calls
    clear, nor the other way round."""
    found = overfitting(RunFacts(list(record.history), dict(record.config or {})))
    return found.step if found.status == FOUND else None


def _decide(facts: dict, metric: str | None) -> dict:
    def pick(names, key):
        return min(names, key=key) if names else None

    # Ties on steps go to the run with the lower loss: it settled as fast, and lower.
    by_speed = lambda name: (facts[name]["converged_at"], facts[name]["best_value"])  # noqa: E731
    lowest = pick(list(facts), lambda name: (facts[name]["best_value"], facts[name]["best_step"]))
    fastest = pick(list(facts), by_speed)
    overfit = {name: f["overfit_at"] for name, f in facts.items() if f["overfit_at"] is not None}
    steady = pick([name for name in facts if name not in overfit], by_speed)
    return {
        "metric": metric,
        "lowest": _named(facts, lowest, value=True),
        "fastest": _named(facts, fastest),
        "fastest_without_overfitting": _named(facts, steady) if metric == "eval_loss" else None,
        "overfit": overfit,
        "runs": facts,
    }


def _named(facts: dict, name: str | None, value: bool = False) -> dict | None:
    if name is None:
        return None
    found = facts[name]
    if value:
        return {"label": name, "run": found["run"], "value": found["best_value"], "step": found["best_step"]}
    return {"label": name, "run": found["run"], "step": found["converged_at"]}


def _steps_comparable(records) -> bool:
    """Steps compare runs only when each step sees as many examples."""
    sizes = {setting_value(r, "batch_size") * setting_value(r, "grad_accum") for r in records
             if isinstance(setting_value(r, "batch_size"), int) and isinstance(setting_value(r, "grad_accum"), int)}
    return len(sizes) <= 1


def _verdict_text(result: dict, facts: dict, left_out: dict, comparable: bool) -> str:
    sentences = _left_out_sentences(left_out)
    metric = result["metric"]
    if metric is None:
        return " ".join(["Cannot judge yet: no run has logged a loss."] + sentences)
    name = METRIC_NAMES[metric]
    if metric == "loss":
        sentences.insert(0, "No run logged a validation loss, so this verdict uses training loss, which cannot "
                            "show overfitting (set a validation share to judge that).")
    low, fast = result["lowest"], result["fastest"]
    sentences.append(f"Lowest {name}: {quoted(low['label'])}, {low['value']:.4f} at step {low['step']}.")
    if result.get("lowest_margin"):
        sentences.append(margin_sentence(result["lowest_margin"]))
    sentences.append(f"Fastest to converge (within {curves.CONVERGED_WITHIN:.0%} of its own best {name}): "
                     f"{quoted(fast['label'])}, by step {fast['step']}.")
    if metric == "eval_loss":
        sentences.append(_overfit_sentence(result["overfit"]))
    sentences.append(_answer(result, len(facts)))
    if not comparable:
        sentences.append("Careful: these runs put different numbers of examples in a step, so steps are not "
                         "equal amounts of training.")
    if result.get("held_out"):
        sentences.append(held_out_sentence(result["held_out"]))
    return " ".join(sentences)


OVERFIT_RULE = (f"a validation loss that ended {curves.OVERFIT_MARGIN:.0%} and {OVERFIT_MIN_RISE:g} nats or more "
                f"above its minimum while the training loss kept falling, or that pulled away to {GAP_RATIO:g}x "
                "the training loss")


def _overfit_sentence(overfit: dict) -> str:
    if not overfit:
        return f"No run overfit (the overfitting check found none: {OVERFIT_RULE})."
    named = ", ".join(f"{quoted(label)} from step {step}" for label, step in overfit.items())
    return f"Overfit: {named} (as each run's overfitting check found: {OVERFIT_RULE})."


def _answer(result: dict, judged: int) -> str:
    if judged < 2:
        return "Only one run to judge: compare two or more (for example learning rates 1e-5, 2e-5 and 5e-5)."
    if result["metric"] == "loss":
        return f"By training loss alone, {quoted(result['fastest']['label'])} converges fastest."
    steady = result["fastest_without_overfitting"]
    if steady is None:
        return (f"Every run overfit; {quoted(result['lowest']['label'])} reached the lowest validation loss "
                "before it did.")
    return f"Answer: {quoted(steady['label'])} converges fastest without overfitting (by step {steady['step']})."


def _left_out_sentences(left_out: dict) -> list[str]:
    if not left_out:
        return []
    return ["Not judged: " + ", ".join(f"{quoted(label)} ({why})" for label, why in left_out.items()) + "."]


