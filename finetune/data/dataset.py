"""From a dataset source to what a run needs: tokenized train and validation
examples, held-out prompts that are never trained on, and a quality report."""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from typing import Protocol

from ..sources.files import DataError, Limits, Table, load_table
from .formats import Example, Normalised, normalise
from .render import Encoded, EncodedPair, Renderer, fit

HELD_OUT_MARKS = {"heldout", "held_out", "held-out", "test"}
VALIDATION_MARKS = {"validation", "val", "dev", "valid"}


class DataSettings(Protocol):
    """The settings that shape prepared data. A run's TrainConfig
    (finetune.train.config) has them all; data asks only for these, so it knows
    nothing of training or runs."""

    data: str
    format: str
    prompt_column: str
    response_column: str
    system_column: str
    rejected_column: str
    template: str
    system_prompt: str
    max_length: int
    overlong: str
    held_out: int
    validation_fraction: float
    seed: int

    def data_key(self) -> tuple:
        """Everything prepared data depends on: equal keys prepare equal data."""


@dataclass(frozen=True)
class HeldOutPrompt:
    prompt: str  # rendered text the model continues
    question: str  # the last user message, for display
    reference: str
    category: str = ""  # e.g. "task" or "general"
    task: str = ""
    rejected: str = ""  # a preference pair's rejected reply (the reference is the chosen one)


@dataclass
class Split:
    train: list[Example]
    validation: list[Example]
    held_out: list[Example]


@dataclass
class PreparedData:
    """What both the Data tab and a run need from a dataset, made once: the
    table as read, the examples, the split, their encodings and the report."""

    key: tuple  # the config's data_key(): the same key prepares the same data
    table: Table
    format: str
    template: str
    examples: list[Example]
    split: Split
    train: list[Encoded]
    validation: list[Encoded]
    held_out: list[HeldOutPrompt]
    report: dict
    notices: list[str] = field(default_factory=list)
    # Preference data (kind "pair" or "unpaired"): each split's examples with their tokens as TRL's
    # trainers build them, after the length policy (empty for supervised data).
    kind: str = "sft"
    train_pairs: list[tuple[Example, EncodedPair]] = field(default_factory=list)
    validation_pairs: list[tuple[Example, EncodedPair]] = field(default_factory=list)
    held_out_pairs: list[tuple[Example, EncodedPair]] = field(default_factory=list)

    @property
    def train_tokens(self) -> int:
        return sum(len(e.input_ids) for e in self.train)

    @property
    def pair_tokens(self) -> int:
        """Tokens one pass over the preference training examples reads (each reply with its prompt)."""
        return sum(encoded.tokens for _, encoded in self.train_pairs)

    @property
    def source(self) -> str:
        return self.table.source


def load_examples(config: DataSettings, token: str | None = None, limits: Limits | None = None,
                  ) -> tuple[Table, Normalised]:
    if not config.data:
        raise DataError("no dataset given")
    table = load_table(config.data, token=token, limits=limits)
    return table, normalise_table(table, config)


def normalise_table(table: Table, config: DataSettings) -> Normalised:
    return normalise(table, config.format, config.prompt_column, config.response_column, config.system_column,
                     config.rejected_column)


def split_examples(examples: list[Example], held_out: int, validation_fraction: float, seed: int) -> Split:
    """Records marked with a `split` column keep their split; the rest are
    shuffled with the seed into held-out, validation and train."""
    def mark(example: Example) -> str:
        return example.meta.get("split", "").lower()

    marked_held = [e for e in examples if mark(e) in HELD_OUT_MARKS]
    marked_val = [e for e in examples if mark(e) in VALIDATION_MARKS]
    rest = [e for e in examples if mark(e) not in HELD_OUT_MARKS | VALIDATION_MARKS]
    order = list(range(len(rest)))
    random.Random(seed).shuffle(order)
    rest = [rest[i] for i in order]
    if not marked_held:
        chat = [e for e in rest if e.is_chat or len(e.text.split()) >= 8]
        marked_held = chat[: min(held_out, max(len(rest) // 5, 0))]
        chosen = {id(e) for e in marked_held}
        rest = [e for e in rest if id(e) not in chosen]
    if not marked_val and validation_fraction > 0 and len(rest) >= 10:
        count = max(1, round(validation_fraction * len(rest)))
        marked_val, rest = rest[:count], rest[count:]
    if not rest:
        raise DataError("no records left to train on after the held-out and validation split")
    return Split(train=rest, validation=marked_val, held_out=marked_held)


def held_out_prompt(example: Example, renderer: Renderer) -> HeldOutPrompt:
    if example.is_chat:
        question = example.messages[-2]["content"] if len(example.messages) > 1 else ""
        if example.context:
            question = f"{question}\n\n{example.context}"
        return HeldOutPrompt(renderer.prompt(example), question, example.response,
                             example.meta.get("category", ""), example.meta.get("task", ""), example.rejected or "")
    words = example.text.split(" ")
    half = " ".join(words[: len(words) // 2])
    return HeldOutPrompt(half, half, " ".join(words[len(words) // 2:]), example.meta.get("category", ""),
                         example.meta.get("task", ""))


def fit_all(examples: list[Example], encoded: dict[int, Encoded], config: DataSettings) -> tuple[list[Encoded], int]:
    """The examples' encodings under the length policy, and how many were dropped."""
    kept = [fit(encoded[id(e)], config.max_length, config.overlong) for e in examples]
    return [e for e in kept if e is not None], sum(1 for e in kept if e is None)


def fit_pairs(examples: list[Example], renderer: Renderer, config: DataSettings
              ) -> tuple[list[tuple[Example, EncodedPair]], int]:
    """Preference examples with their tokens under the length policy, and how many were
    dropped: a prompt that fills max_length leaves its replies nothing (TRL drops it too);
    with overlong='drop', a reply that runs past it. TRL truncates the rest at max_length."""
    kept = []
    for example in examples:
        encoded = renderer.encode_pair(example)
        if len(encoded.prompt_ids) >= config.max_length or \
                (config.overlong == "drop" and encoded.longest > config.max_length):
            continue
        kept.append((example, encoded))
    return kept, len(examples) - len(kept)


def quality_report(examples: list[Example], encoded: dict[int, Encoded], max_length: int,
                   normalised: Normalised) -> dict:
    lengths = [encoded[id(e)].original_length for e in examples]
    distinct = {tuple(encoded[id(e)].input_ids) for e in examples}
    ordered = sorted(lengths)
    return {
        "records": len(examples) + sum(len(w) for w in normalised.dropped.values()),
        "examples": len(examples),
        "duplicates": len(examples) - len(distinct),
        "empty_responses": len(normalised.dropped.get("empty response", [])),
        "dropped": {reason: len(where) for reason, where in normalised.dropped.items()},
        "tokens": {
            "min": ordered[0], "median": statistics.median(ordered),
            "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], "max": ordered[-1],
            "total": sum(ordered),
        },
        "over_max_length": sum(1 for n in lengths if n > max_length),
        "max_length": max_length,
        "lengths": lengths,
    }


def prepare(config: DataSettings, tokenizer, token: str | None = None, limits: Limits | None = None,
            table: Table | None = None) -> PreparedData:
    """`table`: the dataset already read (by the Data tab), so it is not read again."""
    if table is None:
        table, normalised = load_examples(config, token, limits)
    else:
        normalised = normalise_table(table, config)
    try:
        renderer = Renderer(tokenizer, config.template, config.system_prompt)
    except ValueError as err:
        raise DataError(str(err)) from None
    split = split_examples(normalised.examples, config.held_out, config.validation_fraction, config.seed)
    encoded = {id(e): renderer.encode(e) for e in normalised.examples}
    train, train_dropped = fit_all(split.train, encoded, config)
    validation, _ = fit_all(split.validation, encoded, config)
    if not train:
        raise DataError(f"{table.source}: every training example was dropped by the max length "
                        f"({config.max_length} tokens, overlong={config.overlong})")
    report = quality_report(normalised.examples, encoded, config.max_length, normalised)
    report.update(train_truncated=sum(e.truncated for e in train), train_dropped=train_dropped)
    notices = list(normalised.notices)
    if report["over_max_length"]:
        action = "truncated" if config.overlong == "truncate" else "dropped"
        notices.append(f"{report['over_max_length']} examples exceed max_length {config.max_length} and are {action}")
    pairs: dict[str, list] = {}
    if normalised.kind != "sft":
        for name, examples in (("train", split.train), ("validation", split.validation), ("held_out", split.held_out)):
            pairs[name], dropped = fit_pairs(examples, renderer, config)
            report[f"{name}_pairs_dropped"] = dropped
        if not pairs["train"]:
            raise DataError(f"{table.source}: every training pair was dropped: its prompt fills the max length "
                            f"({config.max_length} tokens)")
    return PreparedData(
        key=config.data_key(), table=table, format=normalised.format, template=renderer.template_name,
        examples=normalised.examples, split=split, train=train, validation=validation,
        held_out=[held_out_prompt(e, renderer) for e in split.held_out], report=report, notices=notices,
        kind=normalised.kind, train_pairs=pairs.get("train", []), validation_pairs=pairs.get("validation", []),
        held_out_pairs=pairs.get("held_out", []),
    )
