"""What the Compare tab shows of a run's standard benchmarks and judge: the
scores' "benchmarks" entry (finetune.evaluate.benchmarks.benchmarks_record) as
a table with each change's interval, and the "judge" entry
(finetune.evaluate.judge.judge_record) as its verdict in words (judge_sentence,
as the command line and the model card say it: a judge that could not judge
says so), its position consistency and caveat.
Pure functions of plain values; text from a run is escaped."""

from __future__ import annotations

from html import escape

from finetune.evaluate.judge import judge_sentence
from finetune.evaluate.significance import Difference, points
from finetune.runs.status import ACTIVE

TITLE = "### Standard benchmarks and judge"
HOW_TO = ("Turn on **Benchmarks** (three bundled 100-item standard tasks) or pick a **Judge** on the "
          "Hyperparameters tab, under *Evaluation and run control*: the next run is scored before and after "
          "training, each change with its interval.")


def _cell(value) -> str:
    """Run text in a Markdown table cell: no HTML, no column breaks."""
    return escape(str(value), quote=False).replace("|", "\\|").replace("\n", " ")


def _share(value) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "n/a"


def run_evidence(snap) -> str:
    """The section for a run's snapshot (None: no run picked)."""
    return evidence_markdown(snap.scores, snap.status) if snap is not None else evidence_markdown(None)


def evidence_markdown(scores: dict | None, status: str | None = None) -> str:
    """The section for one run's scores (None: no run picked); `status` is the run's
    (benchmarks and judge arrive with the final scores, when the run ends)."""
    scores = scores or {}
    benchmarks, judged = scores.get("benchmarks"), scores.get("judge")
    if not benchmarks and not judged:
        if status in ACTIVE:
            return f"{TITLE}\nIf this run scores benchmarks or has a judge, the results appear here when it ends."
        return f"{TITLE}\n{HOW_TO}"
    lines = [TITLE]
    if benchmarks:
        lines += benchmarks_lines(benchmarks)
    if judged:
        lines += judge_lines(judged)
    return "\n".join(lines)


def benchmarks_lines(benchmarks: dict) -> list[str]:
    lines = [f"**Benchmarks:** {_cell(benchmarks['error'])}", ""] if "error" in benchmarks else []
    tasks = {task: entry for task, entry in benchmarks.items() if isinstance(entry, dict)}
    if not tasks:
        return lines
    lines += ["Accuracy of the base model (*before*) and the trained one (*after*) on the same items, zero-shot as "
              "lm-evaluation-harness scores them; a change is *better* or *worse* only when its 95% interval "
              "excludes zero.", "",
              "| benchmark | items | before | after | change, points (95% interval) | verdict |",
              "|---|---|---|---|---|---|"]
    for task, entry in tasks.items():
        diff = Difference.from_dict(entry.get("difference"))  # None when missing or damaged
        change = f"{points(diff.change)} ({points(diff.low)} to {points(diff.high)})" if diff else "n/a"
        cells = [_cell(entry.get("label") or task), str(entry.get("items", "")), _share(entry.get("before")),
                 _share(entry.get("after")), change, _cell(diff.verdict if diff else "n/a")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def judge_lines(judged: dict) -> list[str]:
    if "error" in judged:
        return [f"**Judge:** {_cell(judged['error'])}"]
    consistency, mass = judged.get("position_consistency"), judged.get("label_mass")
    return [
        f"**Judge** ({_cell(judged.get('judge', ''))}), each held-out prompt judged twice with the answers swapped: "
        f"{_cell(judge_sentence(judged))}.",
        "",
        f"Position consistency {_share(consistency)} (the same answer picked in both orders; a judge that favours "
        f"a position gives ties), {_share(mass)} of its next-token probability on the labels A and B.",
    ]
