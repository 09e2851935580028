"""Detect a dataset's format and normalise every record to one representation:
a conversation of role/content messages with an optional system message (or,
for language-modelling data, plain text).

FORMATS below is the one list of formats: their names, labels, the columns
that identify them, and how their records are read. Adding a format is one
entry there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from ..sources.files import DataError, Table

SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
    "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "system": "system",
    # Tool calls are the assistant speaking; tool results come back as the user's turn.
    "function_call": "assistant", "observation": "user", "tool": "user", "function": "user",
}
MESSAGE_ROLES = {"system": "system", "user": "user", "assistant": "assistant", "tool": "user", "function": "user"}
META_KEYS = ("split", "category", "task")


@dataclass(frozen=True)
class Example:
    """One training example. `messages` alternate user/assistant and end with
    the assistant; `context` is Alpaca's optional input; `text` is set instead
    of messages for plain language-modelling data."""

    messages: tuple[dict, ...] = ()
    system: str | None = None
    context: str | None = None
    text: str | None = None
    where: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_chat(self) -> bool:
        return self.text is None

    @property
    def response(self) -> str:
        return self.messages[-1]["content"] if self.messages else (self.text or "")


@dataclass
class Normalised:
    format: str
    examples: list[Example]
    dropped: dict[str, list[str]]  # reason -> where (e.g. "empty response" -> ["line 4", ...])
    notices: list[str]


@dataclass(frozen=True)
class Mapping:
    """The user's column choices (settings prompt_column, response_column, system_column)."""

    prompt: str = ""
    response: str = ""
    system: str = ""


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


def _lookup(columns: list[str]) -> dict[str, str]:
    return {c.strip().lower(): c for c in columns}


def detect(table: Table) -> str:
    lower = _lookup(table.columns)
    for fmt in FORMATS.values():
        if fmt.columns and all(c in lower for c in fmt.columns):
            return fmt.name
    expected = ", ".join("/".join(f.columns) for f in FORMATS.values() if f.columns)
    raise DataError(
        f"{table.source}: cannot tell the format from the columns {table.columns}; expected {expected}, "
        f"or name the prompt and response columns (format '{MAPPED_FORMAT}')"
    )


def normalise(table: Table, format: str = "auto", prompt_column: str = "", response_column: str = "",
              system_column: str = "") -> Normalised:
    name = detect(table) if format == "auto" else format
    if name not in FORMATS:
        raise DataError(f"unknown format {name!r}")
    fmt = FORMATS[name]
    return fmt.read(table, fmt, Mapping(prompt_column, response_column, system_column))


def _read_named_columns(table: Table, fmt: Format, mapping: Mapping) -> Normalised:
    """A format whose columns are known: the first two are prompt and response."""
    lower = _lookup(table.columns)
    missing = [c for c in fmt.columns if c not in lower]
    if missing:
        raise DataError(f"{table.source}: missing required columns for {fmt.name}: expected "
                        f"{', '.join(fmt.columns)}; found {', '.join(table.columns)}")
    prompt, response = (lower[c] for c in fmt.columns)
    context = next((lower[c] for c in fmt.optional if c != "system" and c in lower), "")
    return _normalise_columns(table, fmt.name, {"prompt": prompt, "response": response, "context": context,
                                                "system": lower.get("system", "")})


def _read_mapped_columns(table: Table, fmt: Format, mapping: Mapping) -> Normalised:
    return _normalise_columns(table, fmt.name, {"prompt": mapping.prompt, "response": mapping.response,
                                                "system": mapping.system})


def _check_text_columns(table: Table, columns: list[str]) -> None:
    """Refuse non-text values (numbers, lists, objects) in text columns, naming the rows."""
    for column in columns:
        bad = [w for r, w in zip(table.records, table.where) if r.get(column) is not None
               and not isinstance(r.get(column), str)]
        if bad:
            sample = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
            kinds = sorted({type(r.get(column)).__name__ for r in table.records
                            if r.get(column) is not None and not isinstance(r.get(column), str)})
            raise DataError(f"{table.source}: column {column!r} must hold text but holds {'/'.join(kinds)} at {sample}")


def _clean(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def _normalise_columns(table: Table, name: str, mapping: dict[str, str]) -> Normalised:
    missing = [c for key, c in mapping.items() if c and c not in table.columns]
    if missing:
        raise DataError(
            f"{table.source}: missing columns {', '.join(missing)}; found {', '.join(table.columns)}"
        )
    _check_text_columns(table, [c for c in mapping.values() if c])
    examples, dropped = [], {"empty prompt": [], "empty response": []}
    for record, where in zip(table.records, table.where):
        prompt, response = _clean(record.get(mapping["prompt"])), _clean(record.get(mapping["response"]))
        if not prompt:
            dropped["empty prompt"].append(where)
            continue
        if not response:
            dropped["empty response"].append(where)
            continue
        examples.append(Example(
            messages=({"role": "user", "content": prompt}, {"role": "assistant", "content": response}),
            system=_clean(record.get(mapping["system"])) or None if mapping.get("system") else None,
            context=_clean(record.get(mapping.get("context") or "")) or None if mapping.get("context") else None,
            where=where, meta=_meta(record),
        ))
    return _finish(table, name, examples, dropped)


def _read_chat(table: Table, fmt: Format, mapping: Mapping, role_key: str, text_key: str,
               roles: dict[str, str]) -> Normalised:
    """Conversations: one column holding a list of {role_key, text_key} turns."""
    name = fmt.name
    lower = _lookup(table.columns)
    if fmt.columns[0] not in lower:
        raise DataError(f"{table.source}: no {fmt.columns[0]!r} column for format {name}; found "
                        f"{', '.join(table.columns)}")
    column = lower[fmt.columns[0]]
    examples, dropped = [], {"no assistant reply": [], "empty response": []}
    for record, where in zip(table.records, table.where):
        turns = record.get(column)
        if not isinstance(turns, list):
            raise DataError(f"{table.source}: {where}: {column!r} must be a list of turns")
        system = _clean(record.get("system")) or None
        messages = []
        for number, turn in enumerate(turns, 1):
            if not isinstance(turn, dict) or not isinstance(turn.get(text_key), str):
                raise DataError(f"{table.source}: {where}, turn {number}: expected {{{role_key}, {text_key}}} text")
            role = roles.get(str(turn.get(role_key, "")).lower())
            if role is None:
                raise DataError(f"{table.source}: {where}, turn {number}: unknown role {turn.get(role_key)!r}")
            if role == "system":
                system = turn[text_key].strip() or system
                continue
            _append_turn(messages, role, turn[text_key])
        while messages and messages[-1]["role"] != "assistant":
            messages.pop()  # a trailing user turn has no reply to learn
        if not messages:
            dropped["no assistant reply"].append(where)
        elif not messages[-1]["content"].strip():
            dropped["empty response"].append(where)
        else:
            if messages[0]["role"] != "user":
                messages.insert(0, {"role": "user", "content": ""})
            examples.append(Example(messages=tuple(messages), system=system, where=where, meta=_meta(record)))
    return _finish(table, name, examples, dropped)


def _append_turn(messages: list[dict], role: str, text: str) -> None:
    # Two turns of the same role in a row (a tool call then its result, say) merge into one.
    if messages and messages[-1]["role"] == role:
        messages[-1] = {"role": role, "content": messages[-1]["content"] + "\n\n" + text}
    else:
        messages.append({"role": role, "content": text})


def _read_text(table: Table, fmt: Format, mapping: Mapping) -> Normalised:
    lower = _lookup(table.columns)
    if "text" not in lower:
        raise DataError(f"{table.source}: no 'text' column; found {', '.join(table.columns)}")
    column = lower["text"]
    _check_text_columns(table, [column])
    examples, dropped = [], {"empty text": []}
    for record, where in zip(table.records, table.where):
        text = record.get(column)
        if not _clean(text):
            dropped["empty text"].append(where)
            continue
        examples.append(Example(text=text, where=where, meta=_meta(record)))
    return _finish(table, "text", examples, dropped)


def _meta(record: dict) -> dict:
    return {k: record[k] for k in META_KEYS if isinstance(record.get(k), str)}


def _finish(table: Table, name: str, examples: list[Example], dropped: dict[str, list[str]]) -> Normalised:
    dropped = {reason: where for reason, where in dropped.items() if where}
    notices = list(table.notices)
    if table.missing_cells:
        notices.append(f"{table.missing_cells} blank, null or NA cells were treated as missing")
    for reason, where in dropped.items():
        notices.append(f"dropped {len(where)} records with {reason} ({', '.join(where[:5])}"
                       f"{', ...' if len(where) > 5 else ''})")
    if not examples:
        raise DataError(f"{table.source}: no usable records ({'; '.join(notices) or 'all were empty'})")
    return Normalised(name, examples, dropped, notices)


# In detection order: the first format whose columns a table has is its format.
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("messages", "OpenAI-style messages", partial(_read_chat, role_key="role", text_key="content",
                                                        roles=MESSAGE_ROLES), columns=("messages",)),
    Format("sharegpt", "ShareGPT conversations", partial(_read_chat, role_key="from", text_key="value",
                                                         roles=SHAREGPT_ROLES), columns=("conversations",)),
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
