"""A judge model's pairwise preference between the tuned and the base model's
answers to the held-out prompts.

Each prompt is judged twice, the tuned answer shown first (as A) and then
second (as B), because judges favour a position: a prompt is a win only when
the tuned answer is preferred in both orders, a loss when the base answer is,
and a tie otherwise (a judge that always picks A gives ties, never wins). The
preference is read from the judge's next-token probabilities of the two labels
after its own chat template's assistant turn starts, not parsed from free text.
Identical answers are ties without asking. A judge whose picks followed the
position (position consistency under MIN_POSITION_CONSISTENCY) or that did not
answer in the format (label mass under MIN_LABEL_MASS) could not judge, and its
record says so with those numbers instead of a win rate and an interval.

    result = judge_answers(judge, judge_tokenizer, questions, references, base_answers, tuned_answers)
    record = judge_record(result, "SmolLM2-135M-Instruct", judge_is_base=True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..sources.models import ModelSource, resolve
from .ask import render_question
from .generate import autocast, left_padded_batches
from .significance import (
    BETTER,
    CONFIDENCE,
    NO_VERDICT,
    TOO_FEW,
    UNCHANGED,
    WORSE,
    Difference,
    paired_difference,
    share_difference,
)

OFF, BASE = "off", "base"  # the judge setting's two words; anything else names a model
LABELS = ("A", "B")
# Judge prompts per forward pass: each is two answers long (up to twice max_new_tokens).
JUDGE_BATCH = 4
# The reference is shown: every held-out prompt has one, and MT-Bench's
# "reference-guided" pairwise prompt shows it too for questions with one right
# answer; without it a small judge has only the answers' style to go on.
JUDGE_PROMPT = (
    "Two assistants answered the same request. Decide which answer is better: correct (a reference answer is "
    "given), complete and in the form the request asks for.\n\n"
    "[Request]\n{question}\n\n[Reference answer]\n{reference}\n\n"
    "[Answer A]\n{a}\n\n[Answer B]\n{b}\n\n"
    "Which answer is better? Reply with one letter: A or B."
)
OWN_ANSWERS_BIAS = "a model tends to prefer its own answers; a small judge is weak"
SMALL_JUDGE_CAVEAT = "a small judge is weak: read its verdict beside the scores, not instead of them"
WIN, TIE, LOSS = "win", "tie", "loss"
POINTS = {WIN: 1.0, TIE: 0.5, LOSS: 0.0}


def judge_source(spec: str, base: ModelSource, allowed_roots=None) -> ModelSource | None:
    """The judge a run's setting names: None when off, the run's base model for
    'base', else the model spec resolved like the run's own model (a local
    folder only under `allowed_roots` in a public deployment). Nothing loads here."""
    spec = (spec or "").strip()
    if spec == OFF:
        return None
    return base if spec == BASE else resolve(spec, allowed_roots)


def is_base(judge: ModelSource, base: ModelSource) -> bool:
    """The judge is the base model itself, named 'base' or by its own spec."""
    return (judge.kind, judge.location) == (base.kind, base.location)


@dataclass(frozen=True)
class Verdict:
    """One prompt judged in both orders: the probability that the judge prefers
    the tuned answer when it is shown first, and when it is shown second
    (None for both when the answers are identical)."""

    tuned_first: float | None
    tuned_second: float | None

    @property
    def outcome(self) -> str:
        if self.tuned_first is None or self.tuned_second is None:
            return TIE
        if self.tuned_first > 0.5 and self.tuned_second > 0.5:
            return WIN
        if self.tuned_first < 0.5 and self.tuned_second < 0.5:
            return LOSS
        return TIE

    @property
    def asked(self) -> bool:
        return self.tuned_first is not None and self.tuned_second is not None

    @property
    def consistent(self) -> bool:
        """Both orders picked the same answer (whichever it was)."""
        return self.outcome != TIE


@dataclass(frozen=True)
class JudgeResult:
    verdicts: tuple[Verdict, ...]
    label_mass: float | None  # mean share of the judge's next-token probability on the labels (format understood?)

    def count(self, outcome: str) -> int:
        return sum(1 for v in self.verdicts if v.outcome == outcome)

    @property
    def scores(self) -> list[float]:
        return [POINTS[v.outcome] for v in self.verdicts]


def judge_prompts(tokenizer, questions: Sequence[str], references: Sequence[str], first: Sequence[str],
                  second: Sequence[str]) -> list[str]:
    """Each comparison as one user turn of the judge's chat template (or the
    Alpaca prompt for a judge without one), ready for the label to follow."""
    return [render_question(tokenizer, JUDGE_PROMPT.format(question=q, reference=r, a=a, b=b))
            for q, r, a, b in zip(questions, references, first, second)]


def label_ids(tokenizer) -> tuple[list[int], list[int]]:
    """The token of each label as the judge would write it: "A" right after its
    template's turn marker, or " A" after a space (each where it is one token)."""
    ids = []
    for label in LABELS:
        encoded = [tokenizer.encode(text, add_special_tokens=False) for text in (label, " " + label)]
        ids.append(sorted({e[0] for e in encoded if len(e) == 1} or {encoded[0][0]}))
    if set(ids[0]) & set(ids[1]):
        raise ValueError("the judge's tokenizer cannot tell the labels A and B apart")
    return ids[0], ids[1]


@torch.no_grad()
def preferences(model, tokenizer, prompts: list[str], batch_size: int = JUDGE_BATCH,
                autocast_dtype: torch.dtype | None = None) -> list[tuple[float, float]]:
    """For each prompt, (P(A) / (P(A) + P(B)), P(A) + P(B)) from the next token's
    distribution: the preference for A, and how much of the judge's probability
    the two labels hold at all."""
    ids_a, ids_b = label_ids(tokenizer)
    found = []
    for batch in left_padded_batches(model, tokenizer, prompts, batch_size):
        # Left padding shifts positions unless they are given: count them from each prompt's first token.
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        with autocast(model, autocast_dtype):
            logits = model(**batch, position_ids=positions).logits[:, -1]
        probs = torch.softmax(logits.float(), dim=-1)
        p_a, p_b = probs[:, ids_a].sum(-1), probs[:, ids_b].sum(-1)
        # Both labels can underflow to 0 for a judge that ignores the format: no preference then.
        found += [(float(a / (a + b)) if a + b > 0 else 0.5, float(a + b)) for a, b in zip(p_a, p_b)]
    return found


def judge_answers(model, tokenizer, questions: Sequence[str], references: Sequence[str],
                  base_answers: Sequence[str], tuned_answers: Sequence[str], *,
                  autocast_dtype: torch.dtype | None = None, batch_size: int = JUDGE_BATCH) -> JudgeResult:
    """Judge each prompt in both orders (tuned as A, then tuned as B)."""
    if not len(questions) == len(references) == len(base_answers) == len(tuned_answers):
        raise ValueError("the judge needs one question, reference, base and tuned answer per prompt")
    asked = [i for i, (b, t) in enumerate(zip(base_answers, tuned_answers)) if b.strip() != t.strip()]
    q, r = [questions[i] for i in asked], [references[i] for i in asked]
    base, tuned = [base_answers[i] for i in asked], [tuned_answers[i] for i in asked]
    prompts = judge_prompts(tokenizer, q, r, tuned, base) + judge_prompts(tokenizer, q, r, base, tuned)
    found = preferences(model, tokenizer, prompts, batch_size, autocast_dtype)
    first, second = found[:len(asked)], found[len(asked):]
    # Shown second, the tuned answer is B: the judge prefers it with probability 1 - P(A).
    judged = {i: Verdict(first[k][0], 1.0 - second[k][0]) for k, i in enumerate(asked)}
    verdicts = tuple(judged.get(i, Verdict(None, None)) for i in range(len(questions)))
    mass = sum(m for _, m in found) / len(found) if found else None
    return JudgeResult(verdicts, mass)


def judge_record(result: JudgeResult, judge_label: str, judge_is_base: bool) -> dict:
    """What a run's summary keeps (its scores' "judge" entry).

    The interval: each prompt scores 1 (win), 0.5 (tie) or 0 (loss), and
    significance.paired_difference compares those scores with 0.5 on every
    prompt (no preference): a paired bootstrap of the mean preference. Ties stay
    in as evidence of no difference; a sign test would drop them and rate 2 wins
    out of 2 decided prompts (with 18 ties) as strong as 2 wins out of 2 prompts.
    When every prompt was won (or every one lost), the bootstrap has no spread to
    resample; the count decides then, by the exact binomial test and Wilson's
    interval (significance.share_difference), never by an interval of zero width.

    A judge that could not judge (could_not_judge: its picks followed the
    position, or it did not answer in the format) keeps its counts and numbers
    but no win rate, interval or difference: they would read as a measurement."""
    n = len(result.verdicts)
    wins, ties, losses = result.count(WIN), result.count(TIE), result.count(LOSS)
    difference = paired_difference([0.5] * n, result.scores)
    if difference.no_spread and wins + losses == n:
        difference = share_difference(wins, n)
    asked = [v for v in result.verdicts if v.asked]
    caveat = OWN_ANSWERS_BIAS if judge_is_base else SMALL_JUDGE_CAVEAT
    record = {
        "judge": judge_label, "judge_is_base": judge_is_base, "prompts": n,
        "wins": wins, "ties": ties, "losses": losses, "identical_answers": n - len(asked),
        "win_rate": _share(difference.after), "interval": None,
        "position_consistency": _share(sum(v.consistent for v in asked) / len(asked)) if asked else None,
        "label_mass": _share(result.label_mass) if result.label_mass is not None else None,
        "difference": difference.to_dict(judged_by(judge_label)), "caveat": caveat,
    }
    if n >= 2:
        record["interval"] = [_share(difference.low + 0.5), _share(difference.high + 0.5)]
    if could_not_judge(record):
        record.update(win_rate=None, interval=None, difference=None)
    record["verdict"] = judge_verdict(record)
    record["sentence"] = judge_sentence(record)
    return record


def _share(value: float) -> float | None:
    return round(value, 4) if value == value else None  # NaN (no prompts) becomes None


# ------------------------------------------------------------------ reading a judge's record

# Below half, where the answers were shown decided more of the judge's picks
# than what they said: its wins and losses would be the prompts on which the
# position happened to favour one model, not a preference.
MIN_POSITION_CONSISTENCY = 0.5
# Less than a quarter of the judge's next-token probability on "A" or "B": it
# means to reply with something else (an explanation, a refusal), and the ratio
# of two unlikely tokens is no choice it would state. (SmolLM2-135M-Instruct, as
# its own judge on quick-demo, put 49% there.)
MIN_LABEL_MASS = 0.25
VERDICTS = {BETTER: "the judge prefers the tuned model", WORSE: "the judge prefers the base model",
            UNCHANGED: "no clear preference", TOO_FEW: "too few prompts to tell"}


def judged_by(judge_label: str) -> str:
    """How a difference sentence names the judge ("better as judged by X: +10 points ...")."""
    return f"as judged by {judge_label}"


def could_not_judge(record: dict) -> list[str]:
    """Why a judge's picks are no preference, in its record's numbers ([] when they are one):
    read from the record, so a run judged before this rule reads the same."""
    reasons = []
    prompts, identical = record.get("prompts") or 0, record.get("identical_answers") or 0
    consistency, mass = record.get("position_consistency"), record.get("label_mass")
    if prompts and identical >= prompts:
        reasons.append(f"the two models gave the same answer to all {prompts} prompts, so there was nothing to judge")
    if isinstance(consistency, (int, float)) and consistency < MIN_POSITION_CONSISTENCY:
        asked = prompts - identical
        reasons.append(f"it picked the same answer in both orders on {round(consistency * asked)} of the {asked} "
                       f"prompts it was asked (position consistency {consistency:.0%}, under the "
                       f"{MIN_POSITION_CONSISTENCY:.0%} needed): where an answer was shown decided its picks, "
                       "not what the answer said")
    if isinstance(mass, (int, float)) and mass < MIN_LABEL_MASS:
        reasons.append(f"only {mass:.0%} of its next-token probability went to the labels A and B (at least "
                       f"{MIN_LABEL_MASS:.0%} needed): it did not answer in the format")
    return reasons


def judge_verdict(record: dict) -> str:
    """The judge's verdict from its record: NO_VERDICT when it could not judge or its
    bootstrap had no spread, else the difference's (better: the tuned model preferred)."""
    if could_not_judge(record):
        return NO_VERDICT
    difference = Difference.from_dict(record.get("difference"))
    return difference.verdict if difference else NO_VERDICT


def judge_sentence(record: dict) -> str:
    """One line for people, from the record's numbers: the verdict (or why there is
    none), the win rate with its interval, the counts and the caveat. The one reader
    of a judge's record: the command line, the Compare tab and summary.json say this."""
    counts = f"{record.get('wins', 0)} wins, {record.get('ties', 0)} ties, {record.get('losses', 0)} losses for " \
             f"the tuned model over {record.get('prompts', 0)} prompts"
    judged = f"judged by {record.get('judge', '?')}: {record.get('caveat', '')}"
    reasons = could_not_judge(record)
    if reasons:
        return f"the judge could not judge ({NO_VERDICT}): {'; and '.join(reasons)}. {counts}; {judged}"
    verdict = judge_verdict(record)
    if verdict == NO_VERDICT:
        return (f"{NO_VERDICT} from the judge: every prompt came out the same ({counts}), so a bootstrap has no "
                f"spread to measure how sure that is; {judged}")
    interval = record.get("interval")
    if verdict == TOO_FEW or not interval:
        return f"{VERDICTS[verdict]} ({counts}; {judged})"
    low, high = interval
    confidence = (record.get("difference") or {}).get("confidence", CONFIDENCE)
    return (f"{VERDICTS[verdict]}: tuned answer preferred {record['win_rate']:.0%} (ties count half), "
            f"{confidence:.0%} interval {low:.0%} to {high:.0%}; {counts}; {judged}")
