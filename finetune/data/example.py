"""What a record becomes, whatever its format: an Example (a conversation, its
system message, Alpaca's input; for preference data the rejected reply or
whether the reply is desirable), and the helpers every format reader shares.
formats.py holds the registry of formats; pair_formats.py the preference ones."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    of messages for plain language-modelling data. A preference pair's
    messages end with its chosen reply and `rejected` holds the other one; an
    unpaired example (KTO) has `desirable` True or False."""

    messages: tuple[dict, ...] = ()
    system: str | None = None
    context: str | None = None
    text: str | None = None
    where: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    rejected: str | None = None
    desirable: bool | None = None

    @property
    def is_chat(self) -> bool:
        return self.text is None

    @property
    def kind(self) -> str:
        """'pair' (chosen and rejected), 'unpaired' (one reply, desirable or not) or 'sft'."""
        return "pair" if self.rejected is not None else "unpaired" if self.desirable is not None else "sft"

    @property
    def response(self) -> str:
        return self.messages[-1]["content"] if self.messages else (self.text or "")


@dataclass
class Normalised:
    format: str
    examples: list[Example]
    dropped: dict[str, list[str]]  # reason -> where (e.g. "empty response" -> ["line 4", ...])
    notices: list[str]

    @property
    def kind(self) -> str:
        """What the data is for: 'sft', 'pair' (DPO, or KTO split into one of each) or 'unpaired' (KTO)."""
        return self.examples[0].kind if self.examples else "sft"


@dataclass(frozen=True)
class Mapping:
    """The user's column choices (settings prompt_column, response_column, system_column,
    rejected_column: with one, the response column is the chosen reply of a pair)."""

    prompt: str = ""
    response: str = ""
    system: str = ""
    rejected: str = ""


def lookup(columns: list[str]) -> dict[str, str]:
    return {c.strip().lower(): c for c in columns}


def check_text_columns(table: Table, columns: list[str]) -> None:
    """Refuse non-text values (numbers, lists, objects) in text columns, naming the rows."""
    for column in columns:
        bad = [w for r, w in zip(table.records, table.where) if r.get(column) is not None
               and not isinstance(r.get(column), str)]
        if bad:
            sample = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
            kinds = sorted({type(r.get(column)).__name__ for r in table.records
                            if r.get(column) is not None and not isinstance(r.get(column), str)})
            raise DataError(f"{table.source}: column {column!r} must hold text but holds {'/'.join(kinds)} at {sample}")


def clean(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def append_turn(messages: list[dict], role: str, text: str) -> None:
    # Two turns of the same role in a row (a tool call then its result, say) merge into one.
    if messages and messages[-1]["role"] == role:
        messages[-1] = {"role": role, "content": messages[-1]["content"] + "\n\n" + text}
    else:
        messages.append({"role": role, "content": text})


def read_turns(source: str, where: str, turns, role_key: str, text_key: str, roles: dict[str, str],
               system: str | None = None) -> tuple[str | None, list[dict]]:
    """(the system message, the other turns as role/content messages, same-role turns merged)
    from a list of {role_key, text_key} turns; DataError naming the record and turn otherwise."""
    if not isinstance(turns, list):
        raise DataError(f"{source}: {where}: expected a list of turns, got {type(turns).__name__}")
    messages: list[dict] = []
    for number, turn in enumerate(turns, 1):
        if not isinstance(turn, dict) or not isinstance(turn.get(text_key), str):
            raise DataError(f"{source}: {where}, turn {number}: expected {{{role_key}, {text_key}}} text")
        role = roles.get(str(turn.get(role_key, "")).lower())
        if role is None:
            raise DataError(f"{source}: {where}, turn {number}: unknown role {turn.get(role_key)!r}")
        if role == "system":
            system = turn[text_key].strip() or system
            continue
        append_turn(messages, role, turn[text_key])
    return system, messages


def meta(record: dict) -> dict:
    return {k: record[k] for k in META_KEYS if isinstance(record.get(k), str)}


def finish(table: Table, name: str, examples: list[Example], dropped: dict[str, list[str]]) -> Normalised:
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
