"""Lessons: the tutorial's exercises as plain files an instructor edits, and the
answers to their questions computed from the student's own runs.

A lesson is one Markdown file under assets/lessons/, read in file-name order:

    ---
    title: Before and after on ten held-out prompts
    presets: quick-demo
    tab: compare
    answer: before_after
    button: Load the quick demo
    ---
    The explanation (Markdown), as long as it needs to be.

    ## What to look at
    - ...

    ## Question
    One question; the app answers it from the student's latest run.

The front matter is `key: value` lines, nothing nested, so an instructor needs
neither Python nor YAML rules. `presets` is a comma-separated list of preset
names (the first is the button's default); `answer` names one of ANSWERS, the
function that turns the student's runs into the answer. No gradio here: the
app's Lessons tab only renders what this module returns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .. import ASSETS
from ..evaluate.metrics import CHANGED_FORM, MIXED, readings, score_changes
from ..evaluate.significance import BETTER, NO_VERDICT, WORSE
from ..runs.records import RunRecord

LESSONS_DIR = ASSETS / "lessons"
REQUIRED = ("title", "tab", "answer")
OPTIONAL = ("presets", "button")
LOOK_HEADING = "what to look at"
QUESTION_HEADING = "question"
FENCE = "---"
GIB = 2**30
# Runs still moving: their numbers are not an answer yet.
UNFINISHED = ("queued", "loading", "baseline", "training", "finishing")


class LessonError(ValueError):
    """A lesson file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Lesson:
    slug: str  # the file name without its suffix, e.g. "02-before-after"
    title: str
    presets: tuple[str, ...]
    tab: str  # the app tab the button opens
    answer: str  # a key of ANSWERS
    button: str
    explanation: str
    look_at: str
    question: str
    path: Path


# --------------------------------------------------------------------------- reading


def load_lessons(folder: str | Path = LESSONS_DIR, tabs: Iterable[str] | None = None) -> list[Lesson]:
    """Every *.md lesson in `folder`, in file-name order. `tabs`: the tab ids the
    app has; a lesson naming another is refused. Raises LessonError naming the file."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [parse_lesson(path, tabs) for path in sorted(folder.glob("*.md"))]


def parse_lesson(path: str | Path, tabs: Iterable[str] | None = None) -> Lesson:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LessonError(f"{path.name}: cannot read it ({err})") from None
    meta, body = _split_front_matter(path.name, text)
    sections = _sections(body)
    lesson = Lesson(
        slug=path.stem, title=meta["title"], presets=_names(meta.get("presets", "")), tab=meta["tab"],
        answer=meta["answer"], button=meta.get("button") or _default_button(meta),
        explanation=sections[""], look_at=sections.get(LOOK_HEADING, ""),
        question=sections.get(QUESTION_HEADING, ""), path=path)
    _validate(lesson, tabs)
    return lesson


def _split_front_matter(name: str, text: str) -> tuple[dict[str, str], str]:
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != FENCE:
        raise LessonError(f"{name}: must start with a '---' line, then 'key: value' lines, then '---'")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == FENCE)
    except StopIteration:
        raise LessonError(f"{name}: the front matter has no closing '---' line") from None
    meta = {}
    for number, line in enumerate(lines[1:end], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep or not key:
            raise LessonError(f"{name}, line {number}: expected 'key: value', got {line.strip()!r}")
        if key not in REQUIRED + OPTIONAL:
            raise LessonError(f"{name}, line {number}: unknown key {key!r}; "
                              f"known keys: {', '.join(REQUIRED + OPTIONAL)}")
        meta[key] = value.strip()
    missing = [k for k in REQUIRED if not meta.get(k)]
    if missing:
        raise LessonError(f"{name}: the front matter lacks {', '.join(missing)}")
    return meta, "\n".join(lines[end + 1:])


def _sections(body: str) -> dict[str, str]:
    """The text before the first '## ' heading under "", then each section by its lower-case heading."""
    found, current, lines = {}, "", []
    for line in body.splitlines():
        heading = re.match(r"^##\s+(.*?)\s*$", line)
        if heading:
            found[current] = "\n".join(lines).strip()
            current, lines = heading.group(1).strip().lower().rstrip("?:"), []
        else:
            lines.append(line)
    found[current] = "\n".join(lines).strip()
    return found


def _names(value: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in value.split(",") if n.strip())


def _default_button(meta: dict) -> str:
    return "Load this lesson's settings" if meta.get("presets") else "Open the lesson's tab"


def _validate(lesson: Lesson, tabs: Iterable[str] | None) -> None:
    name = lesson.path.name
    if lesson.answer not in ANSWERS:
        raise LessonError(f"{name}: answer {lesson.answer!r} is not one of {', '.join(ANSWERS)}")
    tabs = tuple(tabs) if tabs is not None else None
    if tabs is not None and lesson.tab not in tabs:
        raise LessonError(f"{name}: tab {lesson.tab!r} is not one of the app's tabs ({', '.join(tabs)})")
    if not lesson.explanation:
        raise LessonError(f"{name}: write the explanation after the front matter")
    if not lesson.question:
        raise LessonError(f"{name}: add a '## Question' section")


def missing_presets(lesson: Lesson, known: Iterable[str]) -> list[str]:
    """The lesson's presets this version of the engine does not have."""
    known = set(known)
    return [p for p in lesson.presets if p not in known]


# --------------------------------------------------------------------------- answers
# Each answer function takes the student's runs (RunRecords, newest first, as
# records.list_runs gives them) and what else the lesson needs, and returns
# Markdown built from those numbers only.


def _finished(runs: list[RunRecord]) -> list[RunRecord]:
    return [r for r in runs if not r.unreadable and r.status not in UNFINISHED]


def _name(record: RunRecord) -> str:
    return f"run `{record.label or record.id}`"


def _still_running(runs: list[RunRecord]) -> str:
    moving = [r for r in runs if r.status in UNFINISHED]
    if not moving:
        return ""
    return (f" ({len(moving)} of your runs still waiting or training: the answer updates when "
            f"{'it ends' if len(moving) == 1 else 'they end'}.)")


def before_after_answer(runs: list[RunRecord]) -> str:
    """Held-out exact (and normalised) match before -> after, from the newest run
    that has both, and whether the change is bigger than the noise: the 95%
    interval of the headline metric's change, for all prompts and the task's."""
    for record in _finished(runs):
        entry = ((record.summary or {}).get("scores") or {}).get("all") or {}
        if "before_exact" in entry and "after_exact" in entry:
            task = ((record.summary or {}).get("scores") or {}).get("task")
            text = (f"In your {_name(record)}, {entry['prompts']} held-out prompts: exact match "
                    f"**{entry['before_exact']:.0%} before → {entry['after_exact']:.0%} after** (normalised "
                    f"{entry.get('before_normalised', 0):.0%} → {entry.get('after_normalised', 0):.0%}).")
            if task and task is not entry and "after_exact" in task:
                text += (f" On the task prompts alone: {task['before_exact']:.0%} → {task['after_exact']:.0%}.")
            return text + _noise_answer(record) + _still_running(runs)
    return "No finished run with before and after scores yet: press the button, then **Start training**." \
        + _still_running(runs)


def _noise_answer(record: RunRecord) -> str:
    """Is the change bigger than the noise? The reading of summary.json's "changes"
    (evaluate.metrics.readings, as every screen says it), or, for a run written
    before it had them, of its comparison rows."""
    changes = (record.summary or {}).get("changes")
    if not isinstance(changes, dict):
        changes = score_changes(record.comparison or [])
    found = {category: reading for category, reading in readings(changes).items() if category in ("all", "task")}
    if not found:
        return " (This run has no per-prompt scores to measure the noise with.)"
    scores = (record.summary or {}).get("scores") or {}
    lines = ["\n\n**Bigger than the noise?** Each change on its headline metric, with its 95% interval:"]
    lines += [f"- {reading.line((scores.get(category) or {}).get('prompts'))}" for category, reading in found.items()]
    main = found.get("task") or found["all"]
    if main.verdict == BETTER:
        lines.append("\nYes: the interval leaves out zero, so this improvement is more than luck on these prompts.")
    elif main.verdict == WORSE:
        lines.append("\nIt got worse, by more than the noise: the whole interval is below zero.")
    elif main.verdict == CHANGED_FORM:
        lines.append("\nNot simply better: some scores rose and others fell by more than the noise, so the answers "
                     "changed form. Read the answers themselves on the Compare tab.")
    elif main.verdict == MIXED:
        lines.append("\nNot clearly: the score rose by more than the noise, but a failure-mode check found these "
                     "prompts degraded (see the diagnoses).")
    elif main.verdict == NO_VERDICT:
        lines.append("\nThis measure cannot tell: every prompt changed by the same amount, so there is no spread to "
                     "measure the noise with.")
    else:
        lines.append(f"\nNot measurably: the interval includes zero, so with {main.difference.n} prompts this change "
                     "could be luck. More held-out prompts (the *Held out* setting) narrow the interval.")
    return "\n".join(lines)


def sweep_answer(runs: list[RunRecord], verdict: Callable[[list[RunRecord]], dict]) -> str:
    """The verdict of the newest sweep (experiments.verdict, passed in by the caller)."""
    newest = next((r.sweep for r in runs if r.sweep and not r.unreadable), None)
    if newest is None:
        return "No sweep yet: press the button, then **Run the learning-rate exercise** on the Experiments tab."
    members = [r for r in runs if r.sweep == newest]
    moving = [r for r in members if r.status in UNFINISHED]
    if moving:
        return (f"Your sweep `{newest}` is still going: {len(members) - len(moving)} of {len(members)} runs "
                "done. The verdict appears when all have finished.")
    return f"From your sweep `{newest}` ({len(members)} runs): {verdict(members)['text']}"


def diagnoses_answer(runs: list[RunRecord]) -> str:
    """The failures the detectors FOUND in the newest finished run, with their evidence and advice."""
    finished = _finished(runs)
    if not finished:
        return "No finished run yet: run a fail-* preset first, then come back." + _still_running(runs)
    record = finished[0]
    findings = [d for d in (record.summary or {}).get("diagnoses") or () if isinstance(d, dict)]
    if not findings:
        return (f"Your {_name(record)} has no diagnoses recorded: run a fail-* preset first (this version "
                "of the app may not diagnose runs yet).") + _still_running(runs)
    found = [d for d in findings if d.get("status") == "FOUND"]
    if not found:
        checked = ", ".join(d.get("title") or d.get("name", "?") for d in findings)
        return f"Your {_name(record)}: no failure found (checked: {checked})." + _still_running(runs)
    lines = [f"Your {_name(record)} shows {len(found)} failure{'s' * (len(found) > 1)}:"]
    for d in found:
        lines.append(f"- **{d.get('title') or d.get('name')}**: {d.get('evidence', '')}"
                     + (f" *Mitigation:* {d['advice']}" if d.get("advice") else ""))
    return "\n".join(lines) + _still_running(runs)


# summary.json's "changes" category for a preference run's likelihood evidence (evaluate/preference.py).
PREFERENCE = "preference"


def _objective(record: RunRecord) -> str:
    return str((record.config or {}).get("objective") or "sft")


def preference_answer(runs: list[RunRecord]) -> str:
    """What the newest finished preference run changed and what it cost, from its own
    summary.json: the held-out preference accuracy before -> after with its interval
    (changes.preference), the general probe's reading (the alignment tax) and the held-out
    answers' readings; the run it continued from, named from its record."""
    record = next((r for r in _finished(runs) if _objective(r) != "sft"), None)
    if record is None:
        return ("No finished preference run yet: train the supervised run first, then press **Continue from this "
                "run** on the Compare tab, pick the `dpo-demo` preset and press **Start training**."
                + _still_running(runs))
    summary = record.summary or {}
    found = readings(summary.get("changes"))
    scores = summary.get("scores") or {}
    lines = [_preference_heading(record, runs)]
    lines.append(_preference_change(found.get(PREFERENCE), scores.get(PREFERENCE)))
    lines.append(_alignment_tax(found.get("general_probe"), scores.get("general_probe")))
    answers = [f"- {reading.line((scores.get(c) or {}).get('prompts'))}" for c, reading in found.items()
               if c in ("task", "general")]
    if answers:
        lines.append("**The held-out answers** (scored against the chosen reply):\n" + "\n".join(answers))
    return "\n\n".join(lines) + _still_running(runs)


def _preference_heading(record: RunRecord, runs: list[RunRecord]) -> str:
    config = record.config or {}
    settings = f"{_objective(record).upper()}, beta {config.get('beta', '?')}"
    if _objective(record) == "dpo":
        settings += f", loss {config.get('dpo_loss', 'sigmoid')}"
    settings += f", learning rate {config.get('learning_rate', '?')}"
    parent = record.parent
    if parent is None:
        return f"Your preference {_name(record)} ({settings}) started from the base model, not from a supervised run."
    known = next((r for r in runs if r.id == parent["run_id"]), None)
    which = "best checkpoint" if parent["which"] == "best" else "final model"
    shown = _name(known) if known is not None else f"run `{parent['run_id']}` (not among your runs now)"
    return f"Your preference {_name(record)} ({settings}) continued from the {which} of your {shown}."


def _preference_change(reading, entry) -> str:
    if reading is None:
        return ("**Preference on pairs it never trained on:** this run has no such measure in its summary.json "
                "(`changes.preference`): it was trained before the lab measured it, or its data had no held-out "
                "or validation pairs to measure it on.")
    text = f"**Preference on pairs it never trained on:** {reading.line((entry or {}).get('pairs'))}."
    if reading.verdict == BETTER:
        return text + " The interval leaves out zero: the run learned to prefer the chosen replies."
    if reading.verdict == WORSE:
        return text + " It prefers the chosen replies less often than before, by more than the noise."
    if reading.verdict == MIXED:
        return text + " It learned the preference, but something degraded on the way (above)."
    return text + " Not measurably: the interval includes zero, so the preference may not have been learned."


def _alignment_tax(reading, entry) -> str:
    if reading is None:
        return ("**The alignment tax:** this run did not answer the general probe (`general_probe` off), so what "
                "it cost elsewhere is not measured.")
    entry = entry if isinstance(entry, dict) else {}
    text = ("**The alignment tax** (the general probe, questions it never trained on): "
            + reading.line(entry.get("prompts")))
    before, after = entry.get("perplexity_before"), entry.get("perplexity_after")
    if isinstance(before, (int, float)) and isinstance(after, (int, float)):
        text += f"; the general reference text's perplexity {before:.1f} → {after:.1f}"
    text += "."
    if reading.verdict == WORSE:
        return text + " That is the cost: general answers got worse by more than the noise."
    if reading.verdict == BETTER:
        return text + " No cost here: the general answers got better."
    return text + " No cost measurable on these questions."


def memory_answer(runs: list[RunRecord], tutorial_bytes: float, yours: tuple[str, float] | None) -> str:
    """The tutorial's 7B total beside the student's settings' estimate, and the
    newest run's estimate beside its measured peak when the run recorded them.
    `yours`: (a description of the student's settings, estimated peak bytes), or None."""
    lines = [f"The tutorial's 7B exercise: **{tutorial_bytes / GIB:.1f} GiB** (every term at once)."]
    if yours is not None:
        what, peak = yours
        ratio = (f"{tutorial_bytes / peak:.0f}× less" if peak < tutorial_bytes
                 else f"{peak / tutorial_bytes:.1f}× more")
        lines.append(f"Your settings ({what}): **{peak / GIB:.2f} GiB** estimated peak, {ratio}.")
    measured = next((r for r in _finished(runs) if ((r.summary or {}).get("memory") or {}).get("peak_bytes")), None)
    if measured is not None:
        memory = measured.summary["memory"]
        line = f"Your {_name(measured)} measured a peak of **{memory['peak_bytes'] / GIB:.2f} GiB**"
        if memory.get("estimate_bytes"):
            share = memory["peak_bytes"] / memory["estimate_bytes"]
            line += f" against an estimate of {memory['estimate_bytes'] / GIB:.2f} GiB ({share:.0%} of it)"
        lines.append(line + (f" ({memory['peak_kind']})." if memory.get("peak_kind") else "."))
    else:
        lines.append("Train a run to see its measured peak beside the estimate.")
    return "\n\n".join(lines)


def settings_estimate(config, shape, autocast: str, device: str | None = None) -> tuple[str, float]:
    """The estimated peak of a run with these settings (TrainConfig) on a model of
    this shape (model_shape.ModelShape), and the settings in words: the engine's own
    arithmetic for them (train.levers.settings_estimate: a preference run's second
    sequence and reference model included). Checkpointing 'auto' counts as off: the
    engine turns it on only when memory runs short. `device`: where it would train
    (default: where the engine would put it on this machine)."""
    from ..train import levers
    from ..train.device import detect

    checkpointing = config.gradient_checkpointing == "on"
    result = levers.settings_estimate(shape, config, autocast, device or detect(config.precision).device,
                                      checkpointing)
    objective = "" if config.objective == "sft" else f", {config.objective.upper()}"
    what = (f"{shape.name}, {config.method}{objective}, batch {config.batch_size} x {config.max_length} tokens, "
            f"{autocast} autocast, checkpointing {'on' if checkpointing else 'off'}")
    return what, result.peak_bytes


ANSWERS = {
    "memory": memory_answer,
    "before_after": before_after_answer,
    "sweep": sweep_answer,
    "diagnoses": diagnoses_answer,
    "preference": preference_answer,
}
