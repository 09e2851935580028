"""Is a run's before -> after change bigger than the noise: each category's
reading (finetune.evaluate.metrics.readings, what the command line, the Lessons
answer and the model card say too), as a table cell and as sentences. Pure
functions of plain values."""

from __future__ import annotations

from finetune.evaluate.metrics import METRICS, Reading, change_lines

WAITING = "…"


def change_cell(reading: Reading | None) -> str:
    """One category's change on its headline metric: "normalised: +50 points, 95% interval +25 to +66"."""
    return f"{METRICS[reading.metric].label}: {reading.difference.numbers()}" if reading else WAITING


def change_sentences(changes: dict, scores: dict | None = None) -> str:
    """A Markdown list: each category's reading in words ("task (20 prompts), normalised
    0% → 80%: better on the task prompts: +80 points, 95% interval +53 to +92 (exact test
    p = 0.002)"), then what the interval means. `scores` adds the prompt counts."""
    lines = [f"- {line}" for line in change_lines(changes, scores)]
    if not lines:
        return ""
    return "\n".join(["Is each change bigger than the noise? Each category is read on its headline metric: "
                      "*normalised* for the data's own prompts, whose reference is the answer itself; *contains* "
                      "for open general questions, whose reference is a fact the answer should state.", "", *lines,
                      "", "A change counts as better or worse only when its 95% interval leaves out zero: on a few "
                      "dozen prompts, a gain of ten points can be luck. When some scores rise and others fall by "
                      "more than the noise, the answers changed form, and that is the verdict."])
