"""Is a run's before -> after change bigger than the noise: the change of each
category's held-out score with its 95% interval, as a table cell and as
sentences (finetune.evaluate.metrics.score_changes items). Pure functions of
plain values."""

from __future__ import annotations

from finetune.evaluate.metrics import HEADLINE, METRICS, headline_differences, where
from finetune.evaluate.significance import Difference

WAITING = "…"


def change_cell(found: dict | None) -> str:
    """One category's change on the headline metric: "+50 points, 95% interval +25 to +66"."""
    diff = Difference.from_dict(found)
    return diff.numbers() if diff else WAITING


def change_sentences(changes: dict, name: str = HEADLINE) -> str:
    """A Markdown list: each category's change in words ("better on the task prompts:
    +50 points, 95% interval +25 to +66 (exact test p = 0.002)"), then what the interval means."""
    lines = [f"- **{category}**: {diff.sentence(where(category))}"
             for category, diff in headline_differences(changes, name).items()]
    if not lines:
        return ""
    label = METRICS[name].label if name in METRICS else name
    return "\n".join([f"Is the change in *{label}* match bigger than the noise?", "", *lines, "",
                      "A change counts as better or worse only when its 95% interval leaves out zero: on a few "
                      "dozen prompts, a gain of ten points can be luck."])
