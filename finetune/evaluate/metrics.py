"""How an answer scores against its reference (the one list of metrics), and
the held-out comparison: each prompt's reference, its answers before and after
training, their scores, and per category the change before -> after with its
95% interval (significance.py), so no screen shows a change without its noise.

The Compare tab, comparison.json, summary.json and the model card all iterate
METRICS, so adding a metric is one entry here. Each scorer maps (answer,
reference) to a number from 0 to 1; a share over many prompts is their mean.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from ..data.dataset import HeldOutPrompt
from ..data.text import normalise_answer
from .significance import Difference, paired_difference


def _exact(answer: str, reference: str) -> float:
    return float(answer.strip() == reference.strip())


def _normalised(answer: str, reference: str) -> float:
    return float(normalise_answer(answer) == normalise_answer(reference))


def _contains(answer: str, reference: str) -> float:
    wanted = normalise_answer(reference)
    return float(bool(wanted) and f" {wanted} " in f" {normalise_answer(answer)} ")


class _WordTokenizer:
    """rouge-score's own tokenizer keeps only [a-z0-9] and so scores any
    non-Latin answer 0; this one splits the normalised text on spaces, so
    "Paris." and "paris" are one token and accented or CJK words count."""

    @staticmethod
    def tokenize(text: str) -> list[str]:
        return normalise_answer(text).split()


def _rouge(kind: str, answer: str, reference: str) -> float:
    # Imported here: rouge-score pulls in nltk (~1 s), which a run that never scores should not pay.
    from rouge_score.rouge_scorer import RougeScorer

    if not _WordTokenizer.tokenize(answer) and not _WordTokenizer.tokenize(reference):
        return 1.0  # two empty texts agree (rouge-score would say 0)
    return float(RougeScorer([kind], tokenizer=_WordTokenizer()).score(reference, answer)[kind].fmeasure)


def _token_f1(answer: str, reference: str) -> float:
    # ROUGE-1's F-measure is the unigram-overlap F1 over word counts (SQuAD's token F1, articles kept).
    return _rouge("rouge1", answer, reference)


def _rouge_l(answer: str, reference: str) -> float:
    return _rouge("rougeL", answer, reference)


def _bleu(answer: str, reference: str) -> float:
    import sacrebleu

    # Sentence BLEU (sacrebleu's defaults: 13a tokens, exponential smoothing,
    # effective order so a one-word answer is not zero by having no 4-grams), scaled to 0..1.
    if not answer.strip() or not reference.strip():  # sacrebleu has no n-grams to count
        return float(answer.strip() == reference.strip())
    return min(sacrebleu.sentence_bleu(answer, [reference]).score / 100, 1.0)


@dataclass(frozen=True)
class Metric:
    name: str  # the key in comparison.json and summary.json
    label: str  # for people
    help: str
    score: Callable[[str, str], float]


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("exact", "exact", "the answer is the reference, character for character (outer spaces aside)", _exact),
    Metric("normalised", "normalised", "equal once case, punctuation and spacing are ignored", _normalised),
    Metric("contains", "contains", "the reference appears in the answer as whole words", _contains),
    Metric("token_f1", "token F1", "harmonic mean of the shares of answer and reference words they have in common "
           "(case and punctuation ignored; rouge-score's ROUGE-1 F)", _token_f1),
    Metric("rouge_l", "ROUGE-L", "F-measure of the longest run of words answer and reference share in order "
           "(rouge-score)", _rouge_l),
    Metric("bleu", "BLEU", "sentence BLEU: shared 1- to 4-word sequences with a brevity penalty (sacrebleu), "
           "from 0 to 1", _bleu),
)}


def score(answer: str | None, reference: str) -> dict[str, float]:
    """Every metric for one answer; a missing answer scores 0 on all."""
    if answer is None:
        return {name: 0.0 for name in METRICS}
    return {name: metric.score(answer, reference) for name, metric in METRICS.items()}


def comparison_rows(held_out: list[HeldOutPrompt], before: list[str] | None, after: list[str] | None) -> list[dict]:
    rows = []
    for i, item in enumerate(held_out):
        b = before[i] if before else None
        a = after[i] if after else None
        rows.append({
            "prompt": item.question, "reference": item.reference, "category": item.category, "task": item.task,
            "before": b, "after": a, "before_score": score(b, item.reference) if before else None,
            "after_score": score(a, item.reference) if after else None,
        })
    return rows


def with_scores(row: dict) -> dict:
    """A row of "before", "after" and "reference" with each side's scores added
    (None for a side not answered): the general probe's answers get the same
    per-prompt scores as the held-out comparison."""
    return {**row, **{f"{side}_score": score(row[side], row["reference"]) if row.get(side) is not None else None
                      for side in ("before", "after")}}


def _groups(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows per category: "all", then each category in order of appearance ("task", "general")."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups["all"].append(row)
        if row.get("category"):
            groups[row["category"]].append(row)
    return groups


def summarise_scores(rows: list[dict]) -> dict:
    """Share of prompts matched, per category ("all" plus e.g. "task", "general")."""
    result = {}
    for name, members in _groups(rows).items():
        entry = {"prompts": len(members)}
        for side in ("before", "after"):
            scored = [m[f"{side}_score"] for m in members if m[f"{side}_score"] is not None]
            if scored:
                for metric in METRICS:
                    entry[f"{side}_{metric}"] = round(sum(s.get(metric, 0.0) for s in scored) / len(scored), 4)
        result[name] = entry
    return result


# --------------------------------------------------------------------------- is the change bigger than the noise?

# The metric named first wherever a before -> after change is put in one line
# (the command line, the lessons, compare-runs): a match once case and
# punctuation are ignored, the one the demo tasks ask for.
HEADLINE = "normalised"
# How a sentence names a category's prompts ("better on the task prompts: ...").
WHERE = {"all": "on all held-out prompts", "task": "on the task prompts", "general": "on the general prompts",
         "general_probe": "on the general-knowledge probe"}


def where(category: str) -> str:
    return WHERE.get(category, f"on the {category} prompts")


def metric_changes(rows: list[dict], category: str = "all", names=None) -> dict[str, dict]:
    """Per metric (all of METRICS, or `names`): the paired change before -> after
    over the rows scored on both sides, with its 95% interval and sentence
    (significance.Difference.to_dict())."""
    paired = [r for r in rows if r.get("before_score") is not None and r.get("after_score") is not None]
    return {name: paired_difference([r["before_score"].get(name, 0.0) for r in paired],
                                    [r["after_score"].get(name, 0.0) for r in paired]).to_dict(where(category))
            for name in (names or METRICS)}


def score_changes(rows: list[dict], names=None) -> dict[str, dict]:
    """metric_changes() per category of summarise_scores(), for the categories
    whose prompts were answered before and after."""
    return {name: metric_changes(members, name, names) for name, members in _groups(rows).items()
            if any(m.get("before_score") is not None and m.get("after_score") is not None for m in members)}


def headline_differences(changes, name: str = HEADLINE) -> dict[str, Difference]:
    """Each category's Difference on metric `name`, read from score_changes()'s dict
    (summary.json's "changes"); categories with none, or a damaged one, are left out."""
    if not isinstance(changes, dict):
        return {}
    found = {category: Difference.from_dict(per_metric.get(name) if isinstance(per_metric, dict) else None)
             for category, per_metric in changes.items()}
    return {category: diff for category, diff in found.items() if diff is not None}


def change_lines(changes: dict, scores: dict | None = None, name: str = HEADLINE) -> list[str]:
    """One line per category for people, on metric `name`: "task (20 prompts), normalised
    10% -> 60%: better on the task prompts: +50 points, 95% interval +28 to +66 ...".
    `changes` as score_changes() gives it (summary.json's "changes"); `scores`
    (summary.json's "scores") adds the prompt counts."""
    lines = []
    for category, diff in headline_differences(changes, name).items():
        entry = (scores or {}).get(category)
        count = entry.get("prompts", diff.n) if isinstance(entry, dict) else diff.n
        shares = f"{diff.before:.0%} → {diff.after:.0%}: " if diff.n else ""
        lines.append(f"{category} ({count} prompts), {METRICS[name].label} {shares}{diff.sentence(where(category))}")
    return lines


def aligned_after_scores(rows_by_run: dict[str, list[dict]], name: str = HEADLINE) -> dict[str, list[float]]:
    """Each run's after-training score on metric `name` for the held-out prompts
    every run answered, in one order, so item i of every list is the same
    prompt: what pairs two runs' scores. A prompt is known by its question and
    reference (and, asked twice, by which time); runs with none in common give {}."""
    keyed = {run: _after_by_prompt(rows, name) for run, rows in rows_by_run.items()}
    keyed = {run: scores for run, scores in keyed.items() if scores}
    if not keyed:
        return {}
    first = next(iter(keyed.values()))
    shared = [key for key in first if all(key in scores for scores in keyed.values())]
    return {run: [scores[key] for key in shared] for run, scores in keyed.items()} if shared else {}


def _after_by_prompt(rows: list[dict], name: str) -> dict[tuple, float]:
    found, seen = {}, defaultdict(int)
    for row in rows or ():
        if not isinstance(row, dict) or not isinstance(row.get("after_score"), dict):
            continue
        key = (row.get("prompt"), row.get("reference"))
        seen[key] += 1
        found[(*key, seen[key])] = float(row["after_score"].get(name, 0.0))
    return found
