"""How an answer scores against its reference (the one list of metrics), and
the held-out comparison: each prompt's reference, its answers before and after
training, and their scores.

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


def summarise_scores(rows: list[dict]) -> dict:
    """Share of prompts matched, per category ("all" plus e.g. "task", "general")."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups["all"].append(row)
        if row["category"]:
            groups[row["category"]].append(row)
    result = {}
    for name, members in groups.items():
        entry = {"prompts": len(members)}
        for side in ("before", "after"):
            scored = [m[f"{side}_score"] for m in members if m[f"{side}_score"] is not None]
            if scored:
                for metric in METRICS:
                    entry[f"{side}_{metric}"] = round(sum(s.get(metric, 0.0) for s in scored) / len(scored), 4)
        result[name] = entry
    return result
