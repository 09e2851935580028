"""One story per run: every statement a run makes (each category's verdict, the
failure-mode diagnoses, the judge, the standard benchmarks), on every surface
that states it (summary.json, the command line, the Compare tab, the Lessons
answer, the model card), checked against the others. contradictions() gives
the reasons two statements disagree, for a test's failure message; [] is one
story. sweep_contradictions() does the same for a comparison of runs.

write_run() turns a recorded run (tests/fixtures/*.json) into the run folder it
left, with summary.json written by today's code and today's detectors, so the
check reads what a run would say now.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

from finetune.diagnose.base import FOUND, RunFacts
from finetune.diagnose.curve_modes import overfitting
from finetune.diagnose.findings import degraded
from finetune.diagnose.modes import diagnose_final
from finetune.evaluate.judge import MIN_LABEL_MASS, MIN_POSITION_CONSISTENCY, judge_sentence, judge_verdict
from finetune.evaluate import preference as preference_evidence
from finetune.evaluate.metrics import METRICS, PREFERENCE, WHERE, change_lines, metrics_for, readings, summarise_scores
from finetune.evaluate.probe import scores_entry
from finetune.evaluate.significance import BETTER, NO_VERDICT, TOO_FEW, WORSE, Difference
from finetune.runs.outputs import PREFERENCE_FILE, PROBE_FILE, RunFolder
from finetune.runs.records import load_record, write_record

# How a verdict opens its sentence about a category's prompts ("better on the task prompts: ...").
VERDICT_OPENINGS = ("better", "worse", "no measurable change", "no verdict", "the answers changed form", "mixed",
                    "too few prompts to tell")
# The forgetting check's evidence about a category: metric, before and after.
FORGETTING_SIGNALS = {
    "general_probe": re.compile(r"general probe \(([\w -]+), \d+ prompts\): (\d+)% -> (\d+)%"),
    "general": re.compile(r"general held-out prompts \(([\w -]+), \d+\): (\d+)% -> (\d+)%"),
}


# --------------------------------------------------------------------------- a recorded run, as its folder


def write_run(fixture: dict, folder: Path, train_responses=()) -> Path:
    """The run folder a recorded run left, with summary.json as today's code writes it
    (RunFolder.write_summary) and today's detectors' diagnoses."""
    from finetune.runs.run import Snapshot

    run = RunFolder(folder)
    run.root.mkdir(parents=True)
    config, history, comparison = fixture["config"], fixture["history"], fixture["comparison"]
    run.write_json("config.json", {**config, "data": "demo.jsonl",
                                   "resolved": {"model": fixture.get("model"), "template": "chat"}})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    run.write_json("comparison.json", comparison)
    scores = summarise_scores(comparison)
    probe = fixture.get("probe")
    if probe:
        run.write_json(PROBE_FILE, probe)
        scores["general_probe"] = scores_entry(probe)
    preference = fixture.get("preference")  # a preference run's evidence on unseen pairs
    if preference:
        run.write_json(PREFERENCE_FILE, preference)
        scores[PREFERENCE] = preference_evidence.scores_entry(preference)
    scores.update(fixture.get("evidence") or {})
    found = diagnose_final(history, config, comparison, probe, list(train_responses), fixture.get("error"),
                           fixture.get("status") or "completed", preference=preference)
    steps = [h["step"] for h in history if "step" in h]
    snapshot = Snapshot(run_id=folder.name, status=fixture.get("status") or "completed", history=tuple(history),
                        comparison=tuple(comparison), scores=scores, model=fixture.get("model") or "",
                        diagnoses=tuple(f.to_dict() for f in found), step=max(steps, default=0),
                        error=fixture.get("error"))
    run.write_summary(snapshot, config, "demo.jsonl")
    write_record(folder, status=snapshot.status, created_at=1.0, label=folder.name)
    return folder


# --------------------------------------------------------------------------- what each surface says


def surfaces(folder: Path) -> dict[str, str]:
    """What the command line prints at the end of the run, the Compare tab shows
    for it, the Lessons tab answers from it and its model card says."""
    from finetune.cli.main import print_changes, print_evidence
    from finetune.experiments import lessons
    from finetune.export.bundle import model_card
    from finetune.runs.run import Snapshot
    from ui.tabs import compare_tab
    from ui.views import badges, evidence_views

    summary = json.loads((folder / "summary.json").read_text())
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        print_changes(folder)
        print_evidence(summary.get("scores") or {})
    record = load_record(folder)
    snap = Snapshot.from_record(record)
    compare = "\n".join([badges.diagnoses_html(snap.diagnoses, final=True),
                         compare_tab.scores_markdown(list(snap.comparison), snap), evidence_views.run_evidence(snap)])
    return {"command line": printed.getvalue(), "Compare tab": compare,
            "Lessons answer": lessons.before_after_answer([record]), "model card": model_card(folder)}


# --------------------------------------------------------------------------- the check


def contradictions(folder: Path) -> list[str]:
    """Every pair of a run's statements that disagree, each with its reason."""
    summary = json.loads((folder / "summary.json").read_text())
    changes, scores = summary.get("changes") or {}, summary.get("scores") or {}
    diagnoses = summary.get("diagnoses") or []
    read = readings(changes)
    reasons = []
    worse_in = degraded(diagnoses)
    for category, reading in read.items():
        said = f"{category} reads {reading.sentence!r}"
        if reading.verdict == BETTER and category in worse_in:
            reasons.append(f"{said}: better, while {'; '.join(worse_in[category])}")
        verdicts = {name: Difference.from_dict(changes[category].get(name)) for name in metrics_for(category)}
        opposite = {BETTER: WORSE, WORSE: BETTER}.get(reading.verdict)
        against = [name for name, diff in verdicts.items() if diff is not None and diff.verdict == opposite]
        if against:
            reasons.append(f"{said}: {reading.verdict}, while {', '.join(against)} moved the other way beyond the "
                           "noise")
        stored = (changes[category].get("reading") or {}).get("sentence")
        if stored != reading.sentence:
            reasons.append(f"{category}: summary.json says {stored!r}, the reader {reading.sentence!r}")
        if _zero_width(reading.difference):
            reasons.append(f"{said}: a verdict from an interval of zero width")
    reasons += _diagnoses_against_readings(diagnoses, read)
    reasons += _preference_against_reading(diagnoses, read.get(PREFERENCE))
    reasons += _evidence(scores)
    reasons += _surfaces(folder, changes, scores, read)
    return reasons


def _zero_width(diff: Difference | None) -> bool:
    return diff is not None and diff.n >= 2 and diff.low == diff.high and diff.verdict not in (NO_VERDICT, TOO_FEW)


def _diagnoses_against_readings(diagnoses, read) -> list[str]:
    """A found failure's numbers for a category and that category's verdict read the same metric, the same way."""
    reasons = []
    for d in (d for d in diagnoses if isinstance(d, dict) and d.get("status") == FOUND):
        for category, pattern in FORGETTING_SIGNALS.items():
            reading = read.get(category)
            for metric, before, after in pattern.findall(d.get("evidence", "")):
                if reading is None:
                    continue
                diff = reading.difference
                if metric != METRICS[reading.metric].label or (round(100 * diff.before), round(100 * diff.after)) \
                        != (int(before), int(after)):
                    reasons.append(f"{d.get('title')} reads {category} on {metric} ({before}% -> {after}%), its "
                                   f"verdict on {METRICS[reading.metric].label} ({diff.before:.0%} → "
                                   f"{diff.after:.0%}): {reading.sentence!r}")
    return reasons


def _preference_against_reading(diagnoses, reading) -> list[str]:
    """"No preference learned" found while the preference evidence reads better, or reading the
    unseen pairs' share otherwise than the preference evidence does."""
    found = next((d for d in diagnoses if isinstance(d, dict) and d.get("name") == "no_preference_learned"), None)
    if found is None or reading is None:
        return []
    reasons = []
    if found.get("status") == FOUND and reading.verdict == BETTER:
        reasons.append(f"no preference learned was found ({found.get('evidence')!r}) while the preference evidence "
                       f"reads {reading.sentence!r}")
    diff = reading.difference
    shares = re.findall(r"chosen reply on (\d+)% -> (\d+)% of (\d+) pairs", found.get("evidence", ""))
    for before, after, n in shares:
        if (int(before), int(after), int(n)) != (round(100 * diff.before), round(100 * diff.after), diff.n):
            reasons.append(f"no preference learned reads the unseen pairs as {before}% -> {after}% of {n}, the "
                           f"preference evidence as {diff.before:.0%} → {diff.after:.0%} of {diff.n}")
    return reasons


def _evidence(scores: dict) -> list[str]:
    """The judge's verdict against its own numbers; no benchmark or judge verdict from an interval of zero width."""
    reasons = []
    for task, entry in (scores.get("benchmarks") or {}).items():
        if isinstance(entry, dict) and _zero_width(Difference.from_dict(entry.get("difference"))):
            reasons.append(f"benchmark {task}: {entry.get('sentence')!r} is a verdict from an interval of zero width")
    judged = scores.get("judge")
    if not isinstance(judged, dict) or "error" in judged:
        return reasons
    verdict, sentence = judge_verdict(judged), judge_sentence(judged)
    consistency, mass = judged.get("position_consistency"), judged.get("label_mass")
    unable = (consistency is not None and consistency < MIN_POSITION_CONSISTENCY) or (
        mass is not None and mass < MIN_LABEL_MASS)
    if unable and verdict != NO_VERDICT:
        reasons.append(f"the judge's position consistency {consistency} and label mass {mass} say it could not "
                       f"judge, but its verdict is {verdict!r}: {sentence!r}")
    interval = judged.get("interval")
    if verdict != NO_VERDICT and interval and interval[0] == interval[1]:
        reasons.append(f"the judge's verdict {verdict!r} comes with an interval of zero width: {sentence!r}")
    if _zero_width(Difference.from_dict(judged.get("difference"))) and verdict != NO_VERDICT:
        reasons.append(f"the judge's difference {judged['difference'].get('sentence')!r} has an interval of zero "
                       "width")
    if judged.get("verdict") not in (None, verdict):
        reasons.append(f"summary.json gives the judge the verdict {judged['verdict']!r}, its reader {verdict!r}")
    return reasons


def _surfaces(folder: Path, changes: dict, scores: dict, read) -> list[str]:
    """Each surface says each category's reading as the reader words it, and nothing else about it."""
    reasons = []
    shown = surfaces(folder)
    lines = dict(zip(read, change_lines(changes, scores)))
    expected = {"command line": list(read), "model card": list(read), "Compare tab": list(read),
                "Lessons answer": [c for c in read if c in ("all", "task")]}
    for surface, categories in expected.items():
        text = shown[surface]
        for category in categories:
            if lines[category] not in text:
                reasons.append(f"the {surface} does not say {lines[category]!r}")
        for category, reading in read.items():
            place = WHERE.get(category, f"on the {category} prompts")
            for opening in re.findall(rf"({'|'.join(VERDICT_OPENINGS)}) {re.escape(place)}\b", text):
                if not reading.sentence.startswith(f"{opening} {place}"):
                    reasons.append(f"the {surface} says {opening!r} {place}, the reading {reading.sentence!r}")
    judged = scores.get("judge")
    if isinstance(judged, dict) and "error" not in judged:
        for surface in ("command line", "Compare tab", "model card"):
            if judge_sentence(judged) not in shown[surface]:
                reasons.append(f"the {surface} does not give the judge's verdict {judge_sentence(judged)!r}")
    return reasons


# --------------------------------------------------------------------------- runs compared


def sweep_contradictions(records) -> list[str]:
    """A comparison of runs (experiments.verdict) against each run's own overfitting
    diagnosis, and against itself; and each run's own story."""
    from finetune.experiments.compare import verdict
    from finetune.experiments.labels import run_labels

    found = verdict(records)
    text, overfit = found["text"], found["overfit"]
    labels = run_labels(records)
    reasons = []
    for record in records:
        label = labels[record.id]
        own = next((d for d in (record.summary or {}).get("diagnoses") or () if d.get("name") == "overfitting"),
                   None) or overfitting(RunFacts(list(record.history), dict(record.config or {}))).to_dict()
        if found["metric"] == "eval_loss" and (label in overfit) != (own["status"] == FOUND):
            reasons.append(f"the verdict {'names' if label in overfit else 'does not name'} {label} as overfit "
                           f"({text!r}), its own diagnosis is {own['status']}: {own['evidence']!r}")
        if (record.folder / "summary.json").is_file() and "changes" in (record.summary or {}):
            reasons += [f"{label}: {reason}" for reason in contradictions(record.folder)]
    steady = found.get("fastest_without_overfitting")
    if steady and steady["label"] in overfit:
        reasons.append(f"{steady['label']} is named fastest without overfitting and as overfit: {text!r}")
    if overfit and "No run overfit" in text:
        reasons.append(f"the verdict says no run overfit, and names {', '.join(overfit)}: {text!r}")
    margin = found.get("lowest_margin") or {}
    if margin.get("tie") is not None and (margin["tie"] != (margin["low"] <= 0)):
        reasons.append(f"the lead's interval {margin['low']} to {margin['high']} and its tie={margin['tie']} disagree")
    return reasons
