"""The general-capability probe: a small bundled set of short-answer general
questions, and a general reference text, that every run measures before and
after training. A fine-tuned model should improve on its own task without
losing what it knew: fewer probe answers right, or a reference text that became
more surprising (higher perplexity), is forgetting showing.

    probe = load_probe()
    prompts = probe_prompts(probe, renderer)          # rendered as training rendered prompts
    scores = probe_scores(generate(model, tokenizer, prompts, PROBE_NEW_TOKENS), probe)
    ppl = reference_perplexity(model, tokenizer, probe.reference)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import ASSETS
from ..data.formats import Example
from ..data.render import Renderer
from .metrics import score

PROBE_DIR = ASSETS / "probe"
QUESTIONS_FILE = "general.jsonl"
REFERENCE_FILE = "reference.txt"
# The answers are a word or a number; the default model states them in a short
# sentence ("The capital of France is Paris."), which fits in 24 tokens.
PROBE_NEW_TOKENS = 24
# Tokens per forward pass when measuring perplexity: bounds memory, and fits
# every model's context (the bundled text is ~500 tokens).
PERPLEXITY_WINDOW = 512


class ProbeError(ValueError):
    """The probe files are missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class Probe:
    questions: tuple[str, ...]
    answers: tuple[str, ...]
    topics: tuple[str, ...]
    reference: str  # general text whose perplexity is measured

    def __len__(self) -> int:
        return len(self.questions)


def load_probe(root: Path | str = PROBE_DIR) -> Probe:
    root = Path(root)
    items = _read_questions(root / QUESTIONS_FILE)
    reference_path = root / REFERENCE_FILE
    if not reference_path.is_file():
        raise ProbeError(f"{reference_path}: the probe's reference text is missing")
    reference = reference_path.read_text(encoding="utf-8").strip()
    if not reference:
        raise ProbeError(f"{reference_path}: the probe's reference text is empty")
    return Probe(*(tuple(column) for column in zip(*items)), reference=reference)


def _read_questions(path: Path) -> list[tuple[str, str, str]]:
    """(question, answer, topic) per non-blank line of a JSON-lines file."""
    if not path.is_file():
        raise ProbeError(f"{path}: the probe's questions are missing")
    items, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ProbeError(f"{path}, line {number}: not JSON ({err.msg})") from None
        question, answer, topic = (_text(record, key) for key in ("question", "answer", "topic"))
        if not question or not answer:
            raise ProbeError(f"{path}, line {number}: expected an object with a non-empty \"question\" and "
                             "\"answer\" (and a \"topic\")")
        if question in seen:
            raise ProbeError(f"{path}, line {number}: the question {question!r} is asked twice")
        seen.add(question)
        items.append((question, answer, topic))
    if not items:
        raise ProbeError(f"{path}: no questions")
    return items


def _text(record, key: str) -> str:
    """A record's text field, stripped; "" when missing or not text."""
    value = record.get(key) if isinstance(record, dict) else None
    return value.strip() if isinstance(value, str) else ""


def probe_prompts(probe: Probe, renderer: Renderer) -> list[str]:
    """Each question as one user turn, rendered the way training rendered its
    prompts (same template and system prompt), so before and after are fair."""
    return [renderer.prompt(Example(messages=({"role": "user", "content": q}, {"role": "assistant", "content": ""})))
            for q in probe.questions]


def probe_scores(answers: list[str | None], probe: Probe) -> dict[str, float]:
    """The share of questions answered right, per metric ("normalised",
    "contains", ...); a missing answer (None) counts as wrong."""
    if len(answers) != len(probe):
        raise ValueError(f"{len(answers)} answers for {len(probe)} probe questions")
    per_answer = [score(answer, reference) for answer, reference in zip(answers, probe.answers)]
    return {metric: round(sum(s[metric] for s in per_answer) / len(per_answer), 4) for metric in per_answer[0]}


@torch.no_grad()
def reference_perplexity(model, tokenizer, text: str, max_tokens: int = PERPLEXITY_WINDOW,
                         autocast_dtype: torch.dtype | None = None) -> float:
    """exp(mean negative log-likelihood per token) of `text`. A text longer than
    `max_tokens` is read in consecutive windows that overlap by one token, so
    every token but the first is predicted exactly once (with less context at
    a window's start)."""
    if max_tokens < 2:
        raise ValueError("max_tokens must be at least 2: a window predicts its tokens after the first")
    # No special tokens: the score is about the text itself, and the same before and after.
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    if len(ids) < 2:
        raise ValueError("the reference text needs at least two tokens to measure perplexity")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_nll, predicted = 0.0, 0
    try:
        for start in range(0, len(ids) - 1, max_tokens - 1):
            window = ids[start:start + max_tokens].unsqueeze(0).to(device)
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                logits = model(input_ids=window).logits
            targets = window[0, 1:]
            total_nll += torch.nn.functional.cross_entropy(logits[0, :-1].float(), targets, reduction="sum").item()
            predicted += len(targets)
    finally:
        model.train(was_training)
    return math.exp(total_nll / predicted)


@dataclass(frozen=True)
class ProbeSide:
    """The probe measured on one model: its answers, their scores, the reference text's perplexity."""

    answers: tuple[str, ...]
    scores: dict[str, float]
    perplexity: float


def measure(model, tokenizer, probe: Probe, renderer: Renderer, max_new_tokens: int,
            autocast_dtype: torch.dtype | None = None) -> ProbeSide:
    """Answer the probe greedily and read the reference text. Answers are cut at
    PROBE_NEW_TOKENS even when the run's held-out prompts get more: the
    questions want a word, and this keeps the probe's cost fixed."""
    from .generate import generate

    answers = generate(model, tokenizer, probe_prompts(probe, renderer), min(max_new_tokens, PROBE_NEW_TOKENS),
                       autocast_dtype=autocast_dtype)
    return ProbeSide(tuple(answers), probe_scores(answers, probe),
                     reference_perplexity(model, tokenizer, probe.reference, autocast_dtype=autocast_dtype))


def probe_record(probe: Probe, before: ProbeSide | None, after: ProbeSide | None) -> dict:
    """What diagnose.answer_modes.forgetting reads: shares per metric before and after, and the perplexities."""
    return {
        "prompts": len(probe),
        "before": dict(before.scores) if before else {}, "after": dict(after.scores) if after else {},
        "perplexity_before": round(before.perplexity, 4) if before else None,
        "perplexity_after": round(after.perplexity, 4) if after else None,
    }


def scores_entry(record: dict) -> dict:
    """The probe as one more row of a run's scores (beside "all", "task", ...),
    in the same before_<metric>/after_<metric> keys, plus the perplexities."""
    entry = {"prompts": record["prompts"]}
    for side in ("before", "after"):
        entry.update({f"{side}_{metric}": value for metric, value in record[side].items()})
    entry.update(perplexity_before=record["perplexity_before"], perplexity_after=record["perplexity_after"])
    return entry


def answers_table(probe: Probe, before: ProbeSide | None, after: ProbeSide | None) -> list[dict]:
    """probe.json: each question with its reference and the two answers, to see what was forgotten."""
    return [{"question": q, "reference": a, "topic": t,
             "before": before.answers[i] if before else None, "after": after.answers[i] if after else None}
            for i, (q, a, t) in enumerate(zip(probe.questions, probe.answers, probe.topics))]
