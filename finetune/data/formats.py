"""Detect a dataset's format and normalise every record to one representation:
a conversation of role/content messages with an optional system message (or,
for language-modelling data, plain text). A preference record is the same
conversation ending with its chosen reply, plus the rejected reply; an
unpaired one (KTO's) ends with its reply and says whether it is desirable.

FORMATS below is the one list of formats: their names, labels, the columns
that identify them, and how their records are read. Adding a format is one
entry there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from ..sources.files import DataError, Table
from . import pair_formats
from .example import (MESSAGE_ROLES, SHAREGPT_ROLES, Example, Mapping, Normalised, check_text_columns, clean,
                      finish, lookup, meta, read_turns)


@dataclass(frozen=True)
class Format:
    """One record format. `columns` identify it (case-insensitively) when the
    format is 'auto'; a format without them is only ever chosen by name.
    `read(table, format, mapping)` turns a table into examples."""

    name: str
    label: str  # for people: what the Data tab shows
    read: Callable[["Table", "Format", Mapping], "Normalised"]
    columns: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()  # a context column (Alpaca's input), a system column
    mapped: bool = False  # the user names the prompt and response columns
    kind: str = "sft"  # what its examples are: "sft", "pair" (preference pairs) or "unpaired" (KTO's labels)


def detect(table: Table) -> str:
    lower = lookup(table.columns)
    for fmt in FORMATS.values():
        if fmt.columns and all(c in lower for c in fmt.columns):
            return fmt.name
    expected = ", ".join("/".join(f.columns) for f in FORMATS.values() if f.columns)
    raise DataError(
        f"{table.source}: cannot tell the format from the columns {table.columns}; expected {expected}, "
        f"or name the prompt and response columns (format '{MAPPED_FORMAT}')"
    )


def normalise(table: Table, format: str = "auto", prompt_column: str = "", response_column: str = "",
              system_column: str = "", rejected_column: str = "") -> Normalised:
    name = detect(table) if format == "auto" else format
    if name not in FORMATS:
        raise DataError(f"unknown format {name!r}")
    fmt = FORMATS[name]
    return fmt.read(table, fmt, Mapping(prompt_column, response_column, system_column, rejected_column))


def _read_named_columns(table: Table, fmt: Format, mapping: Mapping) -> Normalised:
    """A format whose columns are known: the first two are prompt and response."""
    lower = lookup(table.columns)
    missing = [c for c in fmt.columns if c not in lower]
    if missing:
        raise DataError(f"{table.source}: missing required columns for {fmt.name}: expected "
                        f"{', '.join(fmt.columns)}; found {', '.join(table.columns)}")
    prompt, response = (lower[c] for c in fmt.columns)
    context = next((lower[c] for c in fmt.optional if c != "system" and c in lower), "")
    return _normalise_columns(table, fmt.name, {"prompt": prompt, "response": response, "context": context,
                                                "system": lower.get("system", "")})


def _read_mapped_columns(table: Table, fmt: Format, mapping: Mapping) -> Normalised:
    if mapping.rejected:  # a prompt, a chosen and a rejected column: preference pairs from any table
        return pair_formats.read_pair_columns(table, fmt.name, mapping.prompt, mapping.response, mapping.rejected,
                                            mapping.system)
    return _normalise_columns(table, fmt.name, {"prompt": mapping.prompt, "response": mapping.response,
                                                "system": mapping.system})


def _normalise_columns(table: Table, name: str, mapping: dict[str, str]) -> Normalised:
    missing = [c for key, c in mapping.items() if c and c not in table.columns]
    if missing:
        raise DataError(
            f"{table.source}: missing columns {', '.join(missing)}; found {', '.join(table.columns)}"
        )
    check_text_columns(table, [c for c in mapping.values() if c])
    examples, dropped = [], {"empty prompt": [], "empty response": []}
    for record, where in zip(table.records, table.where):
        prompt, response = clean(record.get(mapping["prompt"])), clean(record.get(mapping["response"]))
        if not prompt:
            dropped["empty prompt"].append(where)
            continue
        if not response:
            dropped["empty response"].append(where)
            continue
        examples.append(Example(
            messages=({"role": "user", "content": prompt}, {"role": "assistant", "content": response}),
            system=clean(record.get(mapping["system"])) or None if mapping.get("system") else None,
            context=clean(record.get(mapping.get("context") or "")) or None if mapping.get("context") else None,
            where=where, meta=meta(record),
        ))
    return finish(table, name, examples, dropped)


def _read_chat(table: Table, fmt: Format, mapping: Mapping, role_key: str, text_key: str,
               roles: dict[str, str]) -> Normalised:
    """Conversations: one column holding a list of {role_key, text_key} turns."""
    name = fmt.name
    lower = lookup(table.columns)
    if fmt.columns[0] not in lower:
        raise DataError(f"{table.source}: no {fmt.columns[0]!r} column for format {name}; found "
                        f"{', '.join(table.columns)}")
    column = lower[fmt.columns[0]]
    examples, dropped = [], {"no assistant reply": [], "empty response": []}
    for record, where in zip(table.records, table.where):
        turns = record.get(column)
        if not isinstance(turns, list):
            raise DataError(f"{table.source}: {where}: {column!r} must be a list of turns")
        system, messages = read_turns(table.source, where, turns, role_key, text_key, roles,
                                      clean(record.get("system")) or None)
        while messages and messages[-1]["role"] != "assistant":
            messages.pop()  # a trailing user turn has no reply to learn
        if not messages:
            dropped["no assistant reply"].append(where)
        elif not messages[-1]["content"].strip():
            dropped["empty response"].append(where)
        else:
            if messages[0]["role"] != "user":
                messages.insert(0, {"role": "user", "content": ""})
            examples.append(Example(messages=tuple(messages), system=system, where=where, meta=meta(record)))
    return finish(table, name, examples, dropped)


def _read_text(table: Table, fmt: Format, mapping: Mapping) -> Normalised:
    lower = lookup(table.columns)
    if "text" not in lower:
        raise DataError(f"{table.source}: no 'text' column; found {', '.join(table.columns)}")
    column = lower["text"]
    check_text_columns(table, [column])
    examples, dropped = [], {"empty text": []}
    for record, where in zip(table.records, table.where):
        text = record.get(column)
        if not clean(text):
            dropped["empty text"].append(where)
            continue
        examples.append(Example(text=text, where=where, meta=meta(record)))
    return finish(table, "text", examples, dropped)


# In detection order: the first format whose columns a table has is its format.
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("messages", "OpenAI-style messages", partial(_read_chat, role_key="role", text_key="content",
                                                        roles=MESSAGE_ROLES), columns=("messages",)),
    Format("sharegpt_preference", "ShareGPT preference pairs (conversations + chosen / rejected)",
           pair_formats.read_sharegpt_pairs, columns=("conversations", "chosen", "rejected"), kind="pair"),
    Format("sharegpt", "ShareGPT conversations", partial(_read_chat, role_key="from", text_key="value",
                                                         roles=SHAREGPT_ROLES), columns=("conversations",)),
    Format("preference", "preference pairs (prompt / chosen / rejected)", pair_formats.read_pairs,
           columns=("prompt", "chosen", "rejected"), optional=("system",), kind="pair"),
    Format("implicit_preference", "preference pairs as whole conversations (chosen / rejected)",
           pair_formats.read_implicit_pairs, columns=("chosen", "rejected"), kind="pair"),
    Format("oasst", "OpenAssistant message trees (ranked replies become pairs)", pair_formats.read_oasst_trees,
           columns=("message_tree_id", "prompt"), kind="pair"),
    Format("unpaired", "unpaired preferences for KTO (prompt / completion / label)", pair_formats.read_unpaired,
           columns=("prompt", "completion", "label"), optional=("system",), kind="unpaired"),
    Format("alpaca", "Alpaca (instruction / input / output)", _read_named_columns,
           columns=("instruction", "output"), optional=("input", "system")),
    Format("dolly", "Dolly (instruction / context / response)", _read_named_columns,
           columns=("instruction", "response"), optional=("context", "system")),
    Format("prompt_completion", "prompt / completion", _read_named_columns, columns=("prompt", "completion"),
           optional=("system",)),
    Format("qa", "question / answer", _read_named_columns, columns=("question", "answer"), optional=("system",)),
    Format("text", "plain text (language modelling)", _read_text, columns=("text",)),
    Format("columns", "mapped columns", _read_mapped_columns, mapped=True),
)}
MAPPED_FORMAT = next(f.name for f in FORMATS.values() if f.mapped)


def format_choices() -> tuple[str, ...]:
    """What the `format` setting accepts: 'auto' (detect) or a format's name."""
    return ("auto", *FORMATS)
