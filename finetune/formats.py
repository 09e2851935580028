"""Detect a dataset's format and normalise every record to one representation:
a conversation of role/content messages with an optional system message (or,
for language-modelling data, plain text).

Formats, by the columns that identify them:
    messages           {"messages": [{"role": "user", "content": ...}, ...]}       (OpenAI)
    sharegpt           {"conversations": [{"from": "human", "value": ...}, ...]}
    alpaca             {"instruction", "input"?, "output"}
    dolly              {"instruction", "context"?, "response"}
    prompt_completion  {"prompt", "completion"}
    qa                 {"question", "answer"}
    columns            any two columns named by the user (prompt_column, response_column)
    text               {"text"}                                                     (language modelling)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .files import DataError, Table

# format -> (required columns, optional columns); matched case-insensitively.
COLUMN_FORMATS = {
    "alpaca": (("instruction", "output"), ("input", "system")),
    "dolly": (("instruction", "response"), ("context", "system")),
    "prompt_completion": (("prompt", "completion"), ("system",)),
    "qa": (("question", "answer"), ("system",)),
}
CHAT_FORMATS = {"messages": "messages", "sharegpt": "conversations"}
DETECTION_ORDER = ("messages", "sharegpt", "alpaca", "dolly", "prompt_completion", "qa", "text")
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


def _lookup(columns: list[str]) -> dict[str, str]:
    return {c.strip().lower(): c for c in columns}


def detect(table: Table) -> str:
    lower = _lookup(table.columns)
    for name in DETECTION_ORDER:
        if name in CHAT_FORMATS and CHAT_FORMATS[name] in lower:
            return name
        if name in COLUMN_FORMATS and all(c in lower for c in COLUMN_FORMATS[name][0]):
            return name
        if name == "text" and "text" in lower:
            return name
    raise DataError(
        f"{table.source}: cannot tell the format from the columns {table.columns}; expected messages, "
        "conversations, instruction/output, instruction/response, prompt/completion, question/answer or text, "
        "or name the prompt and response columns (format 'columns')"
    )


def normalise(table: Table, format: str = "auto", prompt_column: str = "", response_column: str = "",
              system_column: str = "") -> Normalised:
    name = detect(table) if format == "auto" else format
    if name == "columns":
        mapping = {"prompt": prompt_column, "response": response_column, "system": system_column}
    elif name in COLUMN_FORMATS:
        mapping = _column_mapping(table, name)
    elif name in CHAT_FORMATS:
        return _normalise_chat(table, name)
    elif name == "text":
        return _normalise_text(table)
    else:
        raise DataError(f"unknown format {name!r}")
    return _normalise_columns(table, name, mapping)


def _column_mapping(table: Table, name: str) -> dict[str, str]:
    required, optional = COLUMN_FORMATS[name]
    lower = _lookup(table.columns)
    missing = [c for c in required if c not in lower]
    if missing:
        raise DataError(
            f"{table.source}: missing required columns for {name}: expected {', '.join(required)}; "
            f"found {', '.join(table.columns)}"
        )
    prompt, response = (lower[c] for c in required)
    context = next((lower[c] for c in optional if c != "system" and c in lower), "")
    return {"prompt": prompt, "response": response, "context": context, "system": lower.get("system", "")}


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


def _normalise_chat(table: Table, name: str) -> Normalised:
    column = _lookup(table.columns)[CHAT_FORMATS[name]]
    role_key, text_key, roles = ("role", "content", MESSAGE_ROLES) if name == "messages" else \
        ("from", "value", SHAREGPT_ROLES)
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


def _normalise_text(table: Table) -> Normalised:
    column = _lookup(table.columns)["text"]
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
