"""Comparing runs: which settings differ, a table of outcomes, overlaid curves,
and a verdict in plain words that answers the tutorial's exercise ("fine-tune
with learning rates 1e-5, 2e-5 and 5e-5: which converges fastest without
overfitting?") from the numbers the runs logged.

Everything here reads RunRecords (runs/records.py) and the curve facts of diagnose/curves.py,
so "converged" and "overfit" mean the same as on every other screen.
"""

from __future__ import annotations

import html
import json
import time

import pandas as pd
import plotly.graph_objects as go

from ..diagnose import curves
from ..evaluate.metrics import HEADLINE, METRICS, aligned_after_scores
from ..evaluate.significance import MIN_PAIRS, TOO_FEW, UNCHANGED, Difference, paired_difference
from ..runs.outputs import read_validation_losses
from ..runs.records import RunRecord, display_name
from ..train.config import fields

# Legend names for the settings a sweep usually varies; other settings use their field name.
SHORT_NAMES = {"learning_rate": "lr", "batch_size": "batch", "epochs": "epochs", "warmup_ratio": "warmup",
               "weight_decay": "wd", "lora_r": "r"}
# A legend entry naming more settings than this no longer reads; the table shows them all.
LABEL_SETTINGS_MAX = 3
# Shown in the table as their own columns, so not repeated among the differing settings.
FIXED_COLUMNS = ("model", "data")
# Runs that ended this way are not judged: their curves stop where something broke.
NOT_JUDGED = ("failed", "cancelled", "unreadable")
# Distinguishable on white and for the common colour-vision deficiencies (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")
MARKERS_UP_TO = 60  # beyond this many points markers only clutter a line
NOTE_CHARS = 200  # a table cell, not a traceback: the full error is on the run's own page
METRIC_NAMES = {"eval_loss": "validation loss", "loss": "training loss"}
DEFAULTS = {f.name: f.default for f in fields()}
VERSUS_BEST = "held-out vs best (95% interval)"


# --------------------------------------------------------------------------- settings and labels


def _readable(records) -> list[RunRecord]:
    return [r for r in records if not r.unreadable]


def setting_value(record: RunRecord, name: str):
    """A setting as the run used it; a field missing from an older config.json
    reads as the current default, so it does not count as a difference."""
    return record.config.get(name, DEFAULTS.get(name))


def differing_settings(records) -> list[str]:
    """TrainConfig field names (in field order) whose values differ between the readable runs."""
    runs = _readable(records)
    if len(runs) < 2:
        return []
    return [name for name in DEFAULTS
            if len({json.dumps(setting_value(r, name), sort_keys=True, default=str) for r in runs}) > 1]


def display_value(record: RunRecord, name: str) -> str:
    """A setting for people: the dataset by its name (never a server path), numbers short."""
    if name == "data":
        return record.data_name or display_name(setting_value(record, name)) or "?"
    if name == "model":
        return display_name(setting_value(record, name)) or "?"
    value = setting_value(record, name)
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting_label(name: str, value) -> str:
    """How a legend names one setting's value: lr=5e-05, batch=16."""
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{SHORT_NAMES.get(name, name)}={shown}"


def run_label(record: RunRecord, differing) -> str:
    """The legend name: run.json's label, else the differing settings' values (lr=5e-05), else the id."""
    if record.label or record.unreadable:  # an unreadable run's settings are unknown: its id names it
        return record.label or record.id
    named = [f"{SHORT_NAMES.get(n, n)}={display_value(record, n)}" for n in list(differing)[:LABEL_SETTINGS_MAX]]
    return ", ".join(named) or record.id


def run_labels(records) -> dict[str, str]:
    """run id -> a legend name unique among these runs (the id is added to a repeated one).
    A setting whose values read the same (two uploads of one file) names nothing."""
    runs = _readable(records)
    shown = [n for n in differing_settings(records) if len({display_value(r, n) for r in runs}) > 1]
    shown.sort(key=lambda name: name in FIXED_COLUMNS)  # the swept setting leads; model and data follow
    labels = {r.id: run_label(r, shown) for r in records}
    counts = {label: list(labels.values()).count(label) for label in labels.values()}
    return {rid: f"{label} ({rid})" if counts[label] > 1 else label for rid, label in labels.items()}


def settings_diff(records) -> list[dict]:
    """One row per differing setting: {"setting": name, <run label>: value, ...}."""
    labels = run_labels(records)
    runs = _readable(records)
    return [{"setting": name, **{labels[r.id]: display_value(r, name) for r in runs}}
            for name in differing_settings(records)]


# --------------------------------------------------------------------------- the table


def runs_rows(records, versus_best: bool = False) -> list[dict]:
    """The comparison table as JSON-ready rows, one per run, in the order given.
    `versus_best` (runs chosen to be compared, not a listing of everything) adds
    each run's held-out score against the best run's, with its interval."""
    differing = [n for n in differing_settings(records) if n not in FIXED_COLUMNS]
    labels = run_labels(records)
    rows = [_row(r, labels[r.id], differing) for r in records]
    if versus_best:
        cells = _versus_best_cells(held_out_comparison(records))
        for record, row in zip(records, rows):
            row[VERSUS_BEST] = cells.get(record.id, "")
    return rows


def runs_table(records, versus_best: bool = False) -> pd.DataFrame:
    rows = runs_rows(records, versus_best)
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else ["run", "status"])


def _row(record: RunRecord, label: str, differing: list[str]) -> dict:
    summary = record.summary or {}
    history = [] if record.unreadable else record.history
    best = curves.best(history, "eval_loss")
    row = {"run": record.id, "label": label, "time": _when(record.created_at),
           "model": _model_name(record), "data": display_value(record, "data")}
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
    result["lowest_margin"] = _loss_margin(by_label, facts, result["lowest"]) if metric == "eval_loss" else None
    result["held_out"] = held_out_comparison(judged, labels=labels)
    result["left_out"] = left_out
    result["text"] = _verdict_text(result, facts, left_out, _steps_comparable(judged))
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
            "overfit_at": curves.overfit_onset(record.history) if metric == "eval_loss" else None}


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
    sentences.append(f"Lowest {name}: {_quoted(low['label'])}, {low['value']:.4f} at step {low['step']}.")
    if result.get("lowest_margin"):
        sentences.append(_margin_sentence(result["lowest_margin"]))
    sentences.append(f"Fastest to converge (within {curves.CONVERGED_WITHIN:.0%} of its own best {name}): "
                     f"{_quoted(fast['label'])}, by step {fast['step']}.")
    if metric == "eval_loss":
        sentences.append(_overfit_sentence(result["overfit"]))
    sentences.append(_answer(result, len(facts)))
    if not comparable:
        sentences.append("Careful: these runs put different numbers of examples in a step, so steps are not "
                         "equal amounts of training.")
    if result.get("held_out"):
        sentences.append(held_out_sentence(result["held_out"]))
    return " ".join(sentences)


def _overfit_sentence(overfit: dict) -> str:
    if not overfit:
        return (f"No run overfit (none ended {curves.OVERFIT_MARGIN:.0%} or more above its lowest "
                "validation loss while its training loss kept falling).")
    named = ", ".join(f"{_quoted(label)} from step {step}" for label, step in overfit.items())
    return (f"Overfit: {named} (validation loss ended {curves.OVERFIT_MARGIN:.0%} or more above its minimum "
            "while training loss kept falling).")


def _answer(result: dict, judged: int) -> str:
    if judged < 2:
        return "Only one run to judge: compare two or more (for example learning rates 1e-5, 2e-5 and 5e-5)."
    if result["metric"] == "loss":
        return f"By training loss alone, {_quoted(result['fastest']['label'])} converges fastest."
    steady = result["fastest_without_overfitting"]
    if steady is None:
        return (f"Every run overfit; {_quoted(result['lowest']['label'])} reached the lowest validation loss "
                "before it did.")
    return f"Answer: {_quoted(steady['label'])} converges fastest without overfitting (by step {steady['step']})."


def _left_out_sentences(left_out: dict) -> list[str]:
    if not left_out:
        return []
    return ["Not judged: " + ", ".join(f"{_quoted(label)} ({why})" for label, why in left_out.items()) + "."]


def _quoted(label: str) -> str:
    """A label naming several settings holds commas: quote it so the sentence still reads."""
    return f'"{label}"' if "," in label else label


# --------------------------------------------------------------------------- within the noise?
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


def _loss_margin(records: dict[str, RunRecord], facts: dict, lowest: dict | None) -> dict | None:
    """How far the lowest validation loss is below the runner-up's, with a 95%
    interval for that gap; `tie` is True when the interval reaches zero, None
    when the runs stored no per-example losses for the same examples."""
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
    low, high = gap - (final.change - final.low), gap + (final.high - final.change)
    return {**found, "examples": len(shared), "low": low, "high": high, "tie": low <= 0}


def _margin_sentence(margin: dict) -> str:
    runner, gap = _quoted(margin["runner_up"]), margin["gap"]
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
    judged = [r for r in _readable(records) if r.status not in NOT_JUDGED]
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
            "tie": None if against == TOO_FEW else against == UNCHANGED, "runs": runs}


def held_out_sentence(found: dict) -> str:
    """The held-out comparison in words: the best run, each other run against it, and whether it is a tie."""
    metric = METRICS[found["metric"]].label if found["metric"] in METRICS else found["metric"]
    parts = [f"best {_quoted(found['best'])} at {found['runs'][found['best']]['score']:.0%}"]
    for label, entry in found["runs"].items():
        if "versus_best" in entry:
            diff = Difference.from_dict(entry["versus_best"])
            where = "within the noise" if diff.verdict == UNCHANGED else \
                "too few prompts to tell" if diff.verdict == TOO_FEW else "behind, by more than the noise"
            parts.append(f"{_quoted(label)} {entry['score']:.0%} ({diff.numbers()}: {where})")
    text = (f"Held-out answers after training ({metric} match, on the {found['prompts']} prompts every run "
            f"answered): " + "; ".join(parts) + ".")
    best, runner = _quoted(found["best"]), _quoted(found["runner_up"])
    if found["tie"] is None:
        return text + f" Too few shared prompts to tell {best} from {runner}."
    if found["tie"]:
        return text + f" On these answers {best} and {runner} are a tie: the difference is within the noise."
    return text + f" On these answers {best} is ahead of every other run by more than the noise."


def _versus_best_cells(found: dict | None) -> dict[str, str]:
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


# --------------------------------------------------------------------------- overlaid curves


def overlay_figures(records) -> dict[str, go.Figure]:
    """{"loss", "eval_loss", "learning_rate"}: each run's curve in its own colour,
    the legend naming it by the setting that differs."""
    labels = run_labels(records)
    runs = _readable(records)
    plots = {"loss": ("Training loss", "loss", "loss"), "eval_loss": ("Validation loss", "eval_loss", "loss"),
             "learning_rate": ("Learning rate", "learning_rate", "learning rate")}
    figures = {}
    for name, (title, key, y_title) in plots.items():
        fig = _figure(title, y_title)
        for index, record in enumerate(runs):
            points = curves.series(record.history, key)
            if points:
                fig.add_trace(_trace(points, labels[record.id], PALETTE[index % len(PALETTE)],
                                     always_markers=key == "eval_loss"))
        if not fig.data:
            placeholder(fig, f"no run has logged a {title.lower()} yet")
        elif key == "learning_rate":
            fig.update_yaxes(exponentformat="e", rangemode="tozero")
        figures[name] = fig
    return figures


def _figure(title: str, y_title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title=dict(text=title, x=0.02, font=dict(size=15)), template="plotly_white", height=340,
        margin=dict(l=55, r=15, t=45, b=45), xaxis_title="optimizer step", yaxis_title=y_title,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1), hovermode="x unified",
    )
    return fig


def _trace(points, label: str, color: str, always_markers: bool) -> go.Scatter:
    xs, ys = zip(*points)
    mode = "lines+markers" if always_markers or len(xs) <= MARKERS_UP_TO else "lines"
    # plotly renders a few HTML tags in names: escape, so a data name shows as typed.
    return go.Scatter(x=list(xs), y=list(ys), name=html.escape(label), mode=mode,
                      line=dict(color=color, width=2), marker=dict(size=7 if len(xs) <= 2 else 5))


def placeholder(fig: go.Figure, text: str) -> go.Figure:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font=dict(size=14, color="#64748b"))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig
