"""The failure modes that show in what the trained model answers: mode
collapse and memorisation (in its answers to the held-out prompts) and
forgetting (in the general-capability probe). They need the end of the run.
"""

from __future__ import annotations

import math
from collections import Counter
from difflib import SequenceMatcher
from typing import NamedTuple

from ..data.text import normalise_answer
from ..evaluate.metrics import METRICS, headline
from .base import FailureMode, Finding, RunFacts, change, fewer_epochs, lower_lr_advice, mean, sentence

# --- mode collapse
# Fewer prompts than this cannot show "the same answer to different prompts".
MIN_PROMPTS = 4
# Half the prompts or more sharing an answer with another prompt is collapse
# when the references differ.
MAX_DISTINCT_SHARE = 0.5
# Mean pairwise similarity (difflib ratio over words, 0..1) at which answers are
# variations of one text; varied free-form answers sit well below 0.5.
MAX_SIMILARITY = 0.8
# ...and more alike than the references by this much: a templated task ("The
# date is ...") has alike references, and answers that follow them are right.
SIMILARITY_MARGIN = 0.15
# Answers that contain their own reference differ where it matters: when half
# or more do, alike wording is a template around right answers, not collapse.
MAX_RESPONSIVE_SHARE = 0.5
# Pairwise similarity is quadratic: 30 answers (435 pairs) measure it within a
# few points and keep 500 prompts under a second.
SIMILARITY_SAMPLE = 30
# Words of each answer compared (difflib over words, not characters, which is
# 20x faster); the start of an answer shows its mode.
SIMILARITY_WORDS = 60

# --- forgetting
# The probe's share is read from its headline metric, the one its verdict reads
# (evaluate.metrics.headline: "contains"): general answers are free-form
# sentences, so "the reference appears in the answer" is what can move; exact
# matches are near zero before training.
PROBE_METRIC = headline("general_probe")
# ...and the held-out prompts of category "general" from theirs.
GENERAL_METRIC = headline("general")
# Ten points on a probe of 20-50 prompts is several answers gone wrong, not
# one answer that flipped by chance.
SCORE_DROP = 0.10
# Perplexity on reference answers up 10%: the model finds ordinary text
# clearly less likely than before.
PERPLEXITY_RISE = 0.10
# Held-out "general" prompts counted only from this many: below five, one
# changed answer moves the share by 20 points or more.
MIN_GENERAL_PROMPTS = 5

# --- memorisation
# Shorter training responses ("Yes", "Paris", a label) recur across prompts
# by right, so only a copy of five words or more counts as memorised.
MIN_COPY_WORDS = 5


MODE_COLLAPSE = FailureMode("mode_collapse", "Mode collapse",
                            "The model gives nearly the same answer whatever it is asked.")
FORGETTING = FailureMode("forgetting", "Forgetting",
                         "Catastrophic forgetting (the alignment tax): fine-tuning improved the task but degraded "
                         "general abilities.")
MEMORISATION = FailureMode("memorisation", "Memorisation",
                           "The model repeats training answers word for word on new prompts instead of answering "
                           "them.")


# ---------------------------------------------------------------- small helpers

def _number(value) -> float | None:
    """A finite number, or None for anything else (a missing score, NaN, text)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def _quote(text: str, limit: int = 60) -> str:
    return f'"{text if len(text) <= limit else text[:limit - 3] + "..."}"'


def _missing_answers(rows: int, answered: int, status: str) -> str:
    if not rows:
        return "no held-out prompts were compared (held_out is 0 or the comparison has not run)"
    if not answered and status != "completed":
        return f"the run {status} before the answers after training were generated"
    return f"only {answered} of {rows} held-out prompts have an answer after training; at least {MIN_PROMPTS} needed"


# ----------------------------------------------------------------- mode collapse

class Diversity(NamedTuple):
    distinct: int  # different texts once normalised
    share: float  # distinct / all
    similarity: float  # mean pairwise difflib ratio over words, on a bounded sample


def _sample(texts: list[str], size: int) -> list[str]:
    """At most `size` texts, evenly spread (deterministic, so a rerun shows the same number)."""
    if len(texts) <= size:
        return texts
    return [texts[i * len(texts) // size] for i in range(size)]


def _diversity(texts: list[str]) -> Diversity:
    distinct = len(set(texts))
    sample = [t.split()[:SIMILARITY_WORDS] for t in _sample(texts, SIMILARITY_SAMPLE)]
    pairs = [SequenceMatcher(None, a, b, autojunk=False).ratio() for i, a in enumerate(sample) for b in sample[i + 1:]]
    return Diversity(distinct, distinct / len(texts), mean(pairs) if pairs else 0.0)


def _collapsed(answers: Diversity, references: Diversity) -> bool:
    """Answers that repeat, or are far more alike than the references they should match."""
    return answers.share <= MAX_DISTINCT_SHARE or (
        answers.similarity >= MAX_SIMILARITY and answers.similarity >= references.similarity + SIMILARITY_MARGIN)


def mode_collapse(record: RunFacts) -> Finding:
    rows = [r for r in record.comparison or [] if isinstance(r, dict)]
    answered = [r for r in rows if _text(r.get("after"))]
    if len(answered) < MIN_PROMPTS:
        return MODE_COLLAPSE.unknown(_missing_answers(len(rows), len(answered), record.status))
    answers = _diversity([normalise_answer(r["after"]) for r in answered])
    references = _diversity([normalise_answer(_text(r.get("reference"))) for r in answered])
    if references.share <= MAX_DISTINCT_SHARE:
        return MODE_COLLAPSE.unknown(f"the references themselves repeat ({references.distinct} distinct of "
                                     f"{len(answered)}), so repeated answers are expected")
    responsive = sum(METRICS["contains"].score(r["after"], _text(r.get("reference"))) for r in answered)
    evidence = (f"{answers.distinct} distinct answers to {len(answered)} prompts (references: "
                f"{references.distinct}); mean pairwise similarity {answers.similarity:.2f} (references "
                f"{references.similarity:.2f}); {responsive:.0f} contain their reference")
    if not _collapsed(answers, references) or responsive / len(answered) >= MAX_RESPONSIVE_SHARE:
        return MODE_COLLAPSE.clear(evidence)
    common, count = Counter(_text(r["after"]) for r in answered).most_common(1)[0]
    advice = sentence([lower_lr_advice(record.config), fewer_epochs(record.config),
                        "train on more diverse prompts and responses"])
    example = f"{_quote(common)} was the answer {count} times" if count > 1 else f"e.g. {_quote(common)}"
    shown = f"{answers.distinct} distinct answers to {len(answered)} prompts; {example}"
    return MODE_COLLAPSE.found(f"{evidence}; {example}", advice, degraded=_held_out_categories(answered, shown))


def _held_out_categories(rows: list[dict], text: str) -> dict[str, str]:
    """`text` for "all" and for each category of the held-out rows a finding is about."""
    return {category: text for category in ["all", *(r.get("category") for r in rows)] if category}


# ----------------------------------------------------------------- forgetting

class Signal(NamedTuple):
    text: str  # what was measured, for the evidence
    fired: bool
    category: str  # the score category it measures ("general_probe", "general")


def _probe_signals(probe: dict | None) -> tuple[list[Signal], str]:
    """The probe's score and perplexity signals, and why there are none."""
    if not isinstance(probe, dict):
        return [], "the general-capability probe is off"
    signals = []
    before, after = probe.get("before") or {}, probe.get("after") or {}
    metric = next((m for m in (PROBE_METRIC, "normalised")
                   if _number(before.get(m)) is not None and _number(after.get(m)) is not None), None)
    if metric:
        b, a = _number(before[metric]), _number(after[metric])
        signals.append(Signal(f"general probe ({metric}, {probe.get('prompts', '?')} prompts): {b:.0%} -> {a:.0%} "
                              f"({(a - b) * 100:+.0f} points)", b - a >= SCORE_DROP - 1e-9, "general_probe"))
    pb, pa = _number(probe.get("perplexity_before")), _number(probe.get("perplexity_after"))
    if pb and pa is not None:
        signals.append(Signal(f"reference perplexity {pb:.1f} -> {pa:.1f}{change(pa, pb)}",
                              pa >= pb * (1 + PERPLEXITY_RISE), "general_probe"))
    return signals, "the general probe has no after-training scores yet"


def _general_rows_signal(rows: list[dict]) -> Signal | None:
    """The held-out prompts marked "general", scored before and after."""
    scored = [r for r in rows or [] if isinstance(r, dict) and r.get("category") == "general"
              and isinstance(r.get("before_score"), dict) and isinstance(r.get("after_score"), dict)
              and _number(r["before_score"].get(GENERAL_METRIC)) is not None
              and _number(r["after_score"].get(GENERAL_METRIC)) is not None]
    if len(scored) < MIN_GENERAL_PROMPTS:
        return None
    b = mean(r["before_score"][GENERAL_METRIC] for r in scored)
    a = mean(r["after_score"][GENERAL_METRIC] for r in scored)
    return Signal(f"general held-out prompts ({GENERAL_METRIC}, {len(scored)}): {b:.0%} -> {a:.0%} "
                  f"({(a - b) * 100:+.0f} points)", b - a >= SCORE_DROP - 1e-9, "general")


def _forgetting_advice(config: dict) -> str:
    parts = []
    if config.get("method", "full") != "lora":
        parts.append("use LoRA (method lora) to change fewer weights")
    parts += [lower_lr_advice(config), fewer_epochs(config),
              "mix some general instruction data in with the task data"]
    return sentence(parts)


def forgetting(record: RunFacts) -> Finding:
    signals, why = _probe_signals(record.probe)
    general = _general_rows_signal(record.comparison)
    if general:
        signals.append(general)
    if not signals:
        return FORGETTING.unknown(f"{why} and fewer than {MIN_GENERAL_PROMPTS} held-out prompts of category "
                                  "'general' were scored before and after",
                                  "" if record.probe else "Switch on the general-capability probe.")
    evidence = "; ".join(s.text for s in signals)
    fired = [s for s in signals if s.fired]
    if fired:
        degraded = {s.category: "; ".join(f.text for f in fired if f.category == s.category) for s in fired}
        return FORGETTING.found(f"{evidence} (a drop of {SCORE_DROP * 100:.0f} points or a perplexity rise of "
                                f"{PERPLEXITY_RISE:.0%} counts)", _forgetting_advice(record.config), degraded=degraded)
    return FORGETTING.clear(evidence)


# ----------------------------------------------------------------- memorisation

def memorisation(record: RunFacts) -> Finding:
    training = Counter(_text(r) for r in record.train_responses or [] if len(_text(r).split()) >= MIN_COPY_WORDS)
    rows = [r for r in record.comparison or [] if isinstance(r, dict)]
    answered = [r for r in rows if _text(r.get("after"))]
    if not record.train_responses:
        return MEMORISATION.unknown("the training responses were not given")
    if not answered:
        return MEMORISATION.unknown(_missing_answers(len(rows), 0, record.status))
    copies = [r for r in answered
              if _text(r["after"]) in training and _text(r.get("reference")) != _text(r["after"])]
    looked = (f"{len(answered)} held-out answers against {len(training)} training responses of "
              f"{MIN_COPY_WORDS}+ words")
    if not copies:
        return MEMORISATION.clear(f"no held-out answer copies a training response ({looked})")
    example = copies[0]
    repeated = sum(1 for count in training.values() if count > 1)
    advice = sentence(["train on more varied data", fewer_epochs(record.config),
                        f"deduplicate the training responses ({repeated} appear more than once)" if repeated
                        else "deduplicate near-identical training examples"])
    copied = f"{len(copies)} of {len(answered)} held-out answers copy a training response word for word"
    return MEMORISATION.found(
        f"{copied}, e.g. {_quote(_text(example.get('prompt')))} got {_quote(_text(example['after']))} (reference: "
        f"{_quote(_text(example.get('reference')))})", advice, degraded=_held_out_categories(copies, copied))
