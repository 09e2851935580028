"""Data advice: what a dataset's examples say about whether fine-tuning on them
will pay off, before any training starts.

`data_advice(train, validation, held_out, dropped)` returns findings (`Advice`):
too few examples, duplicate and near-duplicate prompts, conflicting answers,
empty or one-word responses, response-length outliers, prompt diversity, and
evaluation prompts that leak into training. Preference data (pairs for DPO,
labelled replies for KTO) gets its own checks: the pairs dropped on reading
(a side empty, chosen equal to rejected; `dropped` says how many), pairs whose
sides differ only in case or punctuation, a pair and its reverse, and one side
systematically longer than the other (a length bias the model learns). Every
check is a pass or two over the examples with dictionaries (no pairwise
comparison), so 200k records take seconds.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Callable, Iterable, Mapping

from .formats import Example
from .text import normalise_answer

# The usual rule of thumb: fine-tuning starts to pay off at around 100 high-quality
# examples; below that, a good prompt with a few examples in it often does as well.
MIN_TRAIN_EXAMPLES = 100
# Tukey's "far out" fence: a response longer than Q3 + 3 x IQR is rare under any
# ordinary length distribution, so it is usually pasted text, a runaway
# generation or a concatenation of several records.
OUTLIER_IQRS = 3.0
# ...and at least this many times the median length, so a dataset whose replies are
# all about the same length (IQR near 0) does not flag one a few words longer.
OUTLIER_MIN_MEDIAN_RATIO = 4.0
# Quartiles of fewer responses are too noisy to call anything an outlier.
OUTLIER_MIN_EXAMPLES = 20
DIVERSITY_N = 3  # word 3-grams: long enough to see a template, short enough to see rephrasings
# The share of distinct n-grams falls as a corpus grows (type-token ratios do), so
# it is measured on at most this many prompts, spread evenly over the data:
# comparable between datasets of any size, and bounded in time and memory.
DIVERSITY_SAMPLE = 2000
# Below this share of distinct 3-grams the prompts are mostly a template with slots
# filled in. Measured: instruction datasets (Alpaca, Dolly-style QA, chats) 0.82-0.88;
# the bundled demo, five generated templates with varied inputs, 0.38.
LOW_DIVERSITY = 0.3
# Length bias in preference pairs. Without a preference for length, the chosen
# reply is the longer one in about half the pairs; when it is in more than this
# share, length alone predicts which reply wins four times in five, and DPO
# learns that before the content (its implicit reward grows with the summed
# log-probability of the reply: Singhal et al. 2023, "A Long Way to Go", and
# Park et al. 2024, "Disentangling Length from Quality in DPO").
LENGTH_BIAS_SHARE = 0.8
# ...and by this median ratio of their lengths in words: half as long again in
# the typical pair, not a word or two that a share alone would also count.
LENGTH_BIAS_RATIO = 1.5
# A share over fewer pairs is too noisy to call a bias.
LENGTH_BIAS_MIN_PAIRS = 20
# How the pair readers (pair_formats.py) name the records they drop, by what is wrong.
EMPTY_SIDE_DROPS = ("empty prompt", "empty chosen reply", "empty rejected reply", "empty completion")
IDENTICAL_DROP = "chosen equal to rejected"
MAX_EXAMPLES_SHOWN = 3
SNIPPET_CHARS = 60


@dataclass(frozen=True)
class Advice:
    name: str  # stable key, e.g. "duplicates"
    title: str  # one line for people, with the count
    count: int
    examples: tuple[str, ...]  # a few short strings showing where
    advice: str  # what to do
    severity: str = "warning"  # "warning" | "info"

    def to_dict(self) -> dict:
        return {**asdict(self), "examples": list(self.examples)}


def data_advice(train: list[Example], validation: list[Example], held_out: list[Example],
                dropped: Mapping[str, int | list[str]] | None = None) -> list[Advice]:
    """The findings that apply, warnings and notes in a fixed order; the
    diversity note is always there. `dropped`: the records the reader dropped, by
    reason (a count, or where they are: Normalised.dropped or the report's counts)."""
    question = _per_example(_question)  # normalising is the costly step: once per example
    preference = any(e.kind != "sft" for e in train)
    checks = (
        _too_few(train), _duplicates(train), _near_duplicates(train, question),
        _contradicting_pairs(train, question) if preference else _conflicts(train, question),
        _empty_responses(train), _one_word_responses(train), _long_outliers(train), _diversity(train),
        _leaks(train, validation, held_out, question),
    )
    pairs = (_dropped_pairs(dropped or {}, IDENTICAL_DROP), _dropped_pairs(dropped or {}, *EMPTY_SIDE_DROPS),
             _sides_alike(train), _length_bias(train))
    return [finding for finding in checks + pairs if finding is not None]


def _per_example(function: Callable[[Example], str]) -> Callable[[Example], str]:
    """`function` remembered per example object for one call of data_advice
    (an Example holds dicts, so it cannot be a dictionary key itself)."""
    memo: dict[int, str] = {}

    def remembered(example: Example) -> str:
        if id(example) not in memo:
            memo[id(example)] = function(example)
        return memo[id(example)]

    return remembered


# --- what a check looks at

def prompt_of(example: Example) -> str:
    """What the model is asked: for a conversation everything before the final
    reply (for one turn, the user's message) plus Alpaca's input; for plain text,
    the text. Whole conversations count, so two chats that both open with "Hi"
    are not duplicates."""
    if not example.is_chat:
        return example.text or ""
    turns = [m["content"] for m in example.messages[:-1]]
    if example.context:
        turns.append(example.context)
    return "\n\n".join(turns)


def _key(text: str) -> str:
    # Case, punctuation and spacing ignored: "What is X?" and "what is x" ask the same.
    return normalise_answer(text)


def _question(example: Example) -> str:
    return _key(prompt_of(example))


def _answer(example: Example) -> str:
    return _key(example.response)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS - 1] + "…"


def _snippet(example: Example, text: str | None = None) -> str:
    """Where the example is (its line or record) and a short text: its prompt unless given."""
    text = _short(prompt_of(example) if text is None else text)
    return f"{example.where}: {text}" if example.where else text


def _shown(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(islice(items, MAX_EXAMPLES_SHOWN))


def _groups(examples: list[Example], key) -> list[list[Example]]:
    """Examples sharing a key, in first-seen order, only groups of two or more."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[key(example)].append(example)
    return [group for group in groups.values() if len(group) > 1]


# --- the checks: each returns one Advice or None

def _too_few(train: list[Example]) -> Advice | None:
    if len(train) >= MIN_TRAIN_EXAMPLES:
        return None
    return Advice(
        "too_few_examples", f"Only {len(train)} training examples", len(train), (),
        f"Fine-tuning starts to pay off at around {MIN_TRAIN_EXAMPLES}+ high-quality examples. With fewer, "
        "try a good prompt with a few examples in it first, or collect more examples before training.",
    )


def _whole(example: Example) -> tuple:
    """What makes an example itself: its prompt, and for preference data its replies and
    label too (one prompt compared over several pairs of replies is no duplicate)."""
    if example.kind == "sft":
        return (prompt_of(example),)
    return prompt_of(example), example.response, example.rejected, example.desirable


def _duplicates(train: list[Example]) -> Advice | None:
    groups = _groups(train, _whole)
    extra = sum(len(g) - 1 for g in groups)
    if not extra:
        return None
    what = "prompt" if train[0].kind == "sft" else "prompt and replies"
    return Advice(
        "duplicates", f"{extra} examples repeat another example's {what} exactly", extra,
        _shown(f"{_snippet(g[0])} (x{len(g)})" for g in groups),
        "Each copy is trained on again every epoch, so repeated examples weigh more and are memorised. "
        "Keep one copy unless the repetition is deliberate.",
    )


def _near_duplicates(train: list[Example], question: Callable[[Example], str]) -> Advice | None:
    """Prompts equal once case, punctuation and spacing are ignored, but not
    character for character. No fuzzy similarity on purpose: templated datasets
    differ by a number or a date, and those are distinct examples."""
    groups = [g for g in _groups(train, question) if len({prompt_of(e) for e in g}) > 1]
    extra = sum(len({prompt_of(e) for e in g}) - 1 for g in groups)
    if not extra:
        return None
    return Advice(
        "near_duplicates", f"{extra} prompts differ from another only in case, punctuation or spacing", extra,
        _shown(" | ".join(_snippet(e) for e in _first_variants(g, prompt_of)) for g in groups),
        "These are the same question asked twice. Merge them, or rephrase one if both are meant to be kept.",
    )


def _first_variants(group: list[Example], key) -> list[Example]:
    """The first two examples of a group that differ in `key`."""
    first = group[0]
    return [first, next(e for e in group if key(e) != key(first))]


def _conflicts(train: list[Example], question: Callable[[Example], str]) -> Advice | None:
    chats = [e for e in train if e.is_chat]
    groups = [g for g in _groups(chats, question) if len({_answer(e) for e in g}) > 1]
    if not groups:
        return None
    return Advice(
        "conflicting_answers", f"{len(groups)} prompts have different answers", len(groups),
        _shown(f"{_snippet(g[0])} -> " + " / ".join(repr(_short(e.response)) for e in _first_variants(g, _answer))
               for g in groups),
        "The model learns to average the answers or pick one at random. Keep the answer you want, or add "
        "the context (in the prompt or the system message) that decides between them.",
    )


def _empty_responses(train: list[Example]) -> Advice | None:
    empty = [e for e in train if not e.response.strip()]
    if not empty:
        return None
    return Advice(
        "empty_responses", f"{len(empty)} examples have an empty response", len(empty),
        _shown(_snippet(e) for e in empty),
        "An empty reply teaches the model to say nothing (or only to stop). Write the reply or drop the example.",
    )


def _one_word_responses(train: list[Example]) -> Advice | None:
    """A note, not a warning: a label, a date or a name is a one-word answer."""
    one_word = [e for e in train if len(e.response.split()) == 1]
    if not one_word:
        return None
    share = len(one_word) / len(train)
    return Advice(
        "one_word_responses", f"{len(one_word)} responses ({share:.0%}) are a single word", len(one_word),
        _shown(f"{_snippet(e)} -> {_short(e.response)!r}" for e in one_word),
        "Fine when the task is answered in one word (a label, a date, a name). Otherwise they teach the model "
        "to answer tersely: write the full answer or drop them.", "info",
    )


def _long_outliers(train: list[Example]) -> Advice | None:
    if len(train) < OUTLIER_MIN_EXAMPLES:
        return None
    lengths = [len(e.response.split()) for e in train]
    q1, median, q3 = statistics.quantiles(lengths, n=4)
    bound = max(q3 + OUTLIER_IQRS * (q3 - q1), OUTLIER_MIN_MEDIAN_RATIO * median)
    outliers = sorted((e for e, n in zip(train, lengths) if n > bound), key=lambda e: -len(e.response.split()))
    if not outliers:
        return None
    return Advice(
        "long_responses", f"{len(outliers)} responses are far longer than the rest (over {bound:.0f} words; "
        f"median {median:.0f})", len(outliers),
        _shown(_snippet(e, f"{len(e.response.split())} words: {prompt_of(e)}") for e in outliers),
        "Unusually long replies are often pasted text, runaway generations or several records run together. "
        "They dominate the loss and may be cut at max_length; check them, and trim or drop those that are not "
        "the answers you want.", "info",
    )


def _diversity(train: list[Example]) -> Advice:
    share, sample = distinct_ngram_share([prompt_of(e) for e in train])
    low = share < LOW_DIVERSITY
    advice = (
        "The prompts are mostly one template with slots filled in. That suits a narrow task, but the model will "
        "not learn to follow other phrasings: add varied wordings if people will ask in their own words."
        if low else
        "Share of distinct word 3-grams among the prompts: higher means more varied wording. Narrow, templated "
        f"data scores low (below {LOW_DIVERSITY:.1f} is flagged)."
    )
    return Advice("prompt_diversity", f"Prompt diversity: {share:.2f} distinct {DIVERSITY_N}-grams "
                  f"(over {sample} prompts)", sample, (), advice, "warning" if low else "info")


def distinct_ngram_share(texts: list[str], n: int = DIVERSITY_N, sample: int = DIVERSITY_SAMPLE) -> tuple[float, int]:
    """Distinct word n-grams / all word n-grams over an even sample of at most
    `sample` texts; 1.0 when the texts are too short to have any."""
    step = max(1, len(texts) // sample)
    chosen = texts[::step][:sample]
    seen, total = set(), 0
    for text in chosen:
        words = _key(text).split()
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        seen.update(grams)
        total += len(grams)
    return (len(seen) / total if total else 1.0), len(chosen)


def _leaks(train: list[Example], validation: list[Example], held_out: list[Example],
           question: Callable[[Example], str]) -> Advice | None:
    trained = {question(e) for e in train}
    leaked = [(side, e) for side, examples in (("held-out", held_out), ("validation", validation))
              for e in examples if question(e) in trained]
    if not leaked:
        return None
    counts = {side: sum(1 for s, _ in leaked if s == side) for side in ("held-out", "validation")}
    measures = ("the held-out preference accuracy and answers (after) or the validation reward accuracy"
                if any(e.kind != "sft" for e in train) else "the after score (held-out) or the validation loss")
    return Advice(
        "leaks", f"{counts['held-out']} held-out and {counts['validation']} validation prompts also appear in "
        "training", len(leaked), _shown(f"{side} {_snippet(e)}" for side, e in leaked),
        f"A model that trained on a prompt is not being tested on it: {measures} looks better than the model "
        "is. Remove these prompts from the training data (or keep every pair of one prompt in one split).",
    )


# --- preference data: pairs (DPO, or KTO split in two) and labelled replies (KTO)

def _dropped_pairs(dropped: Mapping[str, int | list[str]], *reasons: str) -> Advice | None:
    """Records the reader already dropped for one of `reasons`: said with how many and where,
    since a pair file with many of them was usually exported wrong."""
    found = {reason: dropped[reason] for reason in reasons if dropped.get(reason)}
    if not found:
        return None
    count = sum(len(v) if isinstance(v, list) else int(v) for v in found.values())
    where = tuple(f"{reason}: {', '.join(v[:5])}{' ...' if len(v) > 5 else ''}" if isinstance(v, list)
                  else f"{reason}: {v}" for reason, v in found.items())
    if reasons == (IDENTICAL_DROP,):
        return Advice(
            "identical_pairs", f"{_count(count, 'pair')} had the same chosen and rejected reply and "
            f"{'was' if count == 1 else 'were'} dropped", count,
            _shown(where),
            "A pair whose two replies are the same teaches no preference (its loss is constant), so the lab "
            "leaves it out. Many of them usually mean the rejected column holds the wrong field, or the "
            "replies were copied into both sides: check the export.",
        )
    return Advice(
        "empty_sides", f"{_count(count, 'record')} had an empty prompt or reply and {'was' if count == 1 else 'were'} "
        "dropped", count, _shown(where),
        "A preference needs a prompt and a reply on each side: an empty one says nothing about what is "
        "better. Fill them in or leave them out; many of them usually mean a column is mapped wrong.",
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _sides_alike(train: list[Example]) -> Advice | None:
    """Pairs whose replies are equal once case, punctuation and spacing are ignored:
    they teach formatting (a full stop, a capital) rather than content."""
    alike = [e for e in train if e.kind == "pair" and _key(e.response) == _key(e.rejected or "")]
    if not alike:
        return None
    return Advice(
        "pairs_alike", f"{_count(len(alike), 'pair')} differ{'s' if len(alike) == 1 else ''} only in case, punctuation or spacing", len(alike),
        _shown(f"{_snippet(e)} -> {_short(e.response)!r} over {_short(e.rejected or '')!r}" for e in alike),
        "The preference in these pairs is a capital letter or a full stop: the model learns that formatting, "
        "not better content. Drop them unless the formatting is what you want to teach.",
    )


def _contradicting_pairs(train: list[Example], question: Callable[[Example], str]) -> Advice | None:
    """A pair and its reverse for the same prompt (A over B, and B over A), or one
    reply to a prompt labelled both desirable and undesirable: the two cancel."""
    seen, found = {}, []
    for e in train:
        if e.kind == "pair":
            key = (question(e), _answer(e), _key(e.rejected or ""))
            reverse = (key[0], key[2], key[1])
        else:
            key, reverse = (question(e), _answer(e), e.desirable), (question(e), _answer(e), not e.desirable)
        if reverse in seen:
            found.append((seen[reverse], e))
        seen.setdefault(key, e)
    if not found:
        return None
    return Advice(
        "contradicting_pairs", f"{len(found)} examples contradict another for the same prompt", len(found),
        _shown(f"{_snippet(a)} ({a.where or 'one'} vs {b.where or 'another'})" for a, b in found),
        "One example prefers a reply and another the opposite (or labels the same reply both desirable and "
        "undesirable): their gradients cancel. Keep the judgement you mean, or add what decides between them "
        "to the prompt.",
    )


def _length_bias(train: list[Example]) -> Advice | None:
    """One side of the pairs systematically longer: in more than LENGTH_BIAS_SHARE of
    the pairs, by a median ratio over LENGTH_BIAS_RATIO (in words)."""
    pairs = [(e, len(e.response.split()), len((e.rejected or "").split())) for e in train if e.kind == "pair"]
    if len(pairs) < LENGTH_BIAS_MIN_PAIRS:
        return None
    for side, other in (("chosen", "rejected"), ("rejected", "chosen")):
        sides = [(e, c, r) if side == "chosen" else (e, r, c) for e, c, r in pairs]  # (example, this, other)
        longer = [(e, this, that) for e, this, that in sides if this > that]
        share = len(longer) / len(pairs)
        ratio = statistics.median(this / max(that, 1) for _, this, that in sides)
        if share <= LENGTH_BIAS_SHARE or ratio <= LENGTH_BIAS_RATIO:
            continue
        return Advice(
            "length_bias", f"The {side} reply is the longer one in {share:.0%} of the pairs (median {ratio:.1f}x "
            f"the {other})", len(longer),
            _shown(f"{_snippet(e)} -> {this} vs {that} words" for e, this, that in longer),
            f"Length alone predicts the preference here, and the model learns it first: its answers will grow "
            f"{'longer' if side == 'chosen' else 'shorter'} whatever they say. Add pairs where the {other} reply "
            f"is the longer one, or trim the {side} replies; dpo_loss 'sigmoid_norm' (length-normalised) or 'ipo' "
            "lean on length less. After training, compare the answers' length with the chosen replies'.",
        )
    return None
