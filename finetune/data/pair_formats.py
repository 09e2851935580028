"""Preference data in the forms people have it, read into Examples whose
messages end with the chosen reply and whose `rejected` holds the other one
(or, for KTO's unpaired data, one reply and whether it is `desirable`):

    prompt / chosen / rejected     TRL's standard (text) and conversational (message lists) forms
    chosen / rejected              TRL's implicit prompt: two whole conversations sharing all but the
                                   last reply (message lists, or Anthropic HH's "Human:/Assistant:" text)
    conversations + chosen/rejected  LLaMA-Factory's sharegpt preference form
    OpenAssistant trees            sibling replies ranked by people: the best against each other one
    prompt / completion / label    KTO's unpaired form
    any table by column mapping    a prompt, a chosen and a rejected column

A pair whose two sides are the same teaches nothing: it is dropped and said.
"""

from __future__ import annotations

import re

from ..sources.files import DataError, Table
from .example import (MESSAGE_ROLES, SHAREGPT_ROLES, Example, Normalised, check_text_columns, clean, finish,
                      lookup, meta, read_turns)

PAIR_DROPS = ("empty prompt", "empty chosen reply", "empty rejected reply", "chosen equal to rejected")
HH_TURN = re.compile(r"\n\n(Human|Assistant): ")  # Anthropic HH-RLHF transcripts


def read_pairs(table: Table, fmt, mapping) -> Normalised:
    """prompt/chosen/rejected: each side text, or a list of role/content messages."""
    columns = _columns(table, ("prompt", "chosen", "rejected"))
    return _pairs(table, fmt.name, lambda record, where: (
        *_prompt(table.source, where, record.get(columns["prompt"]), record.get(columns.get("system", ""))),
        _reply(table.source, where, record.get(columns["chosen"]), "chosen"),
        _reply(table.source, where, record.get(columns["rejected"]), "rejected")))


def read_implicit_pairs(table: Table, fmt, mapping) -> Normalised:
    """chosen/rejected only: two whole conversations; the prompt is all they share."""
    columns = _columns(table, ("chosen", "rejected"))

    def split(record, where):
        chosen = _conversation(table.source, where, record.get(columns["chosen"]), "chosen")
        rejected = _conversation(table.source, where, record.get(columns["rejected"]), "rejected")
        shared = 0
        while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
            shared += 1
        prompt = chosen[:shared]
        if chosen[shared:][0]["role"] != "assistant" or len(chosen) - shared != 1 or len(rejected) - shared != 1:
            raise DataError(f"{table.source}: {where}: chosen and rejected must be the same conversation up to "
                            "their last reply, which is the assistant's")
        return None, prompt, chosen[-1]["content"], rejected[-1]["content"]

    return _pairs(table, fmt.name, split)


def read_sharegpt_pairs(table: Table, fmt, mapping) -> Normalised:
    """LLaMA-Factory's form: `conversations` of from/value turns, and `chosen` and
    `rejected` each one {from, value} turn."""
    columns = _columns(table, ("conversations", "chosen", "rejected"))

    def side(record, where, name) -> str:
        turn = record.get(columns[name])
        if isinstance(turn, dict) and isinstance(turn.get("value"), str):
            return turn["value"]
        return _reply(table.source, where, turn, name)

    def split(record, where):
        system, prompt = read_turns(table.source, where, record.get(columns["conversations"]), "from", "value",
                                    SHAREGPT_ROLES, clean(record.get(columns.get("system", ""))) or None)
        return system, prompt, side(record, where, "chosen"), side(record, where, "rejected")

    return _pairs(table, fmt.name, split)


def read_oasst_trees(table: Table, fmt, mapping) -> Normalised:
    """OpenAssistant's message trees: where people ranked two or more replies to the
    same message, the best-ranked one is chosen against each of the others; the
    conversation down to that message is the prompt."""
    column = _columns(table, ("message_tree_id", "prompt"))["prompt"]
    examples, dropped = [], {reason: [] for reason in PAIR_DROPS}
    for record, where in zip(table.records, table.where):
        root = record.get(column)
        if not isinstance(root, dict) or not isinstance(root.get("text"), str):
            raise DataError(f"{table.source}: {where}: 'prompt' must be a message with 'text' and 'replies'")
        for history, chosen, rejected, node in _ranked_siblings(root, []):
            _add_pair(examples, dropped, None, history, chosen, rejected, f"{where}, message {node}", meta(record))
    return finish(table, fmt.name, examples, dropped)


def _ranked_siblings(message: dict, history: list[dict]):
    """(prompt messages, chosen, rejected, message id) for every ranked set of replies under `message`."""
    history = history + [{"role": "user", "content": message.get("text", "")}]
    replies = [r for r in message.get("replies") or [] if isinstance(r, dict) and r.get("role") == "assistant"
               and not r.get("deleted") and isinstance(r.get("text"), str)]
    ranked = sorted((r for r in replies if isinstance(r.get("rank"), int)), key=lambda r: r["rank"])
    for worse in ranked[1:]:
        yield history, ranked[0]["text"], worse["text"], str(message.get("message_id", ""))[:8]
    for reply in replies:
        for follow_up in reply.get("replies") or []:
            if isinstance(follow_up, dict) and follow_up.get("role") == "prompter" and not follow_up.get("deleted"):
                yield from _ranked_siblings(follow_up, history + [{"role": "assistant", "content": reply["text"]}])


def read_unpaired(table: Table, fmt, mapping) -> Normalised:
    """prompt/completion/label: one reply each, labelled desirable (true) or not (false), for KTO."""
    columns = _columns(table, ("prompt", "completion", "label"))
    examples, dropped = [], {"empty prompt": [], "empty completion": []}
    for record, where in zip(table.records, table.where):
        system, prompt = _prompt(table.source, where, record.get(columns["prompt"]),
                                 record.get(columns.get("system", "")))
        completion = _reply(table.source, where, record.get(columns["completion"]), "completion")
        if not prompt or not prompt[-1]["content"].strip():
            dropped["empty prompt"].append(where)
        elif not completion.strip():
            dropped["empty completion"].append(where)
        else:
            examples.append(Example(messages=(*prompt, {"role": "assistant", "content": completion}), system=system,
                                    desirable=_label(table.source, where, record.get(columns["label"])),
                                    where=where, meta=meta(record)))
    return finish(table, fmt.name, examples, dropped)


def read_pair_columns(table: Table, name: str, prompt: str, chosen: str, rejected: str,
                      system: str = "") -> Normalised:
    """Any table by column mapping: a prompt, a chosen and a rejected column (and a system one)."""
    missing = [c for c in (prompt, chosen, rejected, system) if c and c not in table.columns]
    if missing:
        raise DataError(f"{table.source}: missing columns {', '.join(missing)}; found {', '.join(table.columns)}")
    check_text_columns(table, [c for c in (prompt, chosen, rejected, system) if c])
    return _pairs(table, name, lambda record, where: (
        clean(record.get(system)) or None if system else None,
        [{"role": "user", "content": clean(record.get(prompt))}],
        clean(record.get(chosen)), clean(record.get(rejected))))


# --- shared
def _pairs(table: Table, name: str, split) -> Normalised:
    """Examples from `split(record, where) -> (system, prompt messages, chosen, rejected)`."""
    examples, dropped = [], {reason: [] for reason in PAIR_DROPS}
    for record, where in zip(table.records, table.where):
        system, prompt, chosen, rejected = split(record, where)
        _add_pair(examples, dropped, system, prompt, chosen, rejected, where, meta(record))
    return finish(table, name, examples, dropped)


def _add_pair(examples: list, dropped: dict, system, prompt: list[dict], chosen: str, rejected: str, where: str,
              record_meta: dict) -> None:
    if not prompt or prompt[-1]["role"] != "user" or not prompt[-1]["content"].strip():
        dropped["empty prompt"].append(where)
    elif not chosen.strip():
        dropped["empty chosen reply"].append(where)
    elif not rejected.strip():
        dropped["empty rejected reply"].append(where)
    elif chosen.strip() == rejected.strip():
        dropped["chosen equal to rejected"].append(where)
    else:
        examples.append(Example(messages=(*prompt, {"role": "assistant", "content": chosen.strip()}), system=system,
                                rejected=rejected.strip(), where=where, meta=record_meta))


def _columns(table: Table, required: tuple[str, ...]) -> dict[str, str]:
    """The table's columns by lower-case name, refusing a table without the required ones in one line."""
    lower = lookup(table.columns)
    missing = [c for c in required if c not in lower]
    if missing:
        raise DataError(f"{table.source}: no {', '.join(repr(c) for c in missing)} column for preference data; "
                        f"found {', '.join(table.columns)}")
    return {**{c: lower[c] for c in required}, **({"system": lower["system"]} if "system" in lower else {})}


def _prompt(source: str, where: str, value, system_value=None) -> tuple[str | None, list[dict]]:
    """A prompt given as text or as a list of role/content messages (ending with the user's)."""
    system = clean(system_value) or None
    if isinstance(value, str):
        return system, [{"role": "user", "content": value.strip()}]
    if isinstance(value, list):
        return read_turns(source, where, value, "role", "content", MESSAGE_ROLES, system)
    if value is None:
        return system, []
    raise DataError(f"{source}: {where}: the prompt must be text or a list of messages, not {type(value).__name__}")


def _reply(source: str, where: str, value, side: str) -> str:
    """A reply given as text or as assistant messages (TRL's conversational form)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        _, turns = read_turns(source, where, value, "role", "content", MESSAGE_ROLES)
        if any(turn["role"] != "assistant" for turn in turns):
            raise DataError(f"{source}: {where}: {side} must hold the assistant's reply only")
        return turns[0]["content"] if turns else ""
    if value is None:
        return ""
    raise DataError(f"{source}: {where}: {side} must be text or a list of messages, not {type(value).__name__}")


def _conversation(source: str, where: str, value, side: str) -> list[dict]:
    """A whole conversation: a list of messages, or HH-RLHF's "\\n\\nHuman: ...\\n\\nAssistant: ..." text."""
    if isinstance(value, list):
        return read_turns(source, where, value, "role", "content", MESSAGE_ROLES)[1]
    if isinstance(value, str) and HH_TURN.search(value):
        parts = HH_TURN.split(value)[1:]  # role, text, role, text, ...
        messages: list[dict] = []
        for role, text in zip(parts[::2], parts[1::2]):
            messages.append({"role": "user" if role == "Human" else "assistant", "content": text.strip()})
        return messages
    raise DataError(f"{source}: {where}: without a prompt column, {side} must be a whole conversation (a list of "
                    "messages, or 'Human: ... Assistant: ...' text)")


def _label(source: str, where: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise DataError(f"{source}: {where}: label must be true (desirable) or false (undesirable), got {value!r}")
