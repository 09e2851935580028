"""A conversation with a run's base and trained model side by side, and what a
person makes of it: per turn, which answer was better (a preference pair) or
an answer edited into the one wanted (a supervised example).

Each model goes on from its own answers (an edited answer replaces its own: it
is the answer wanted). Each turn keeps the messages each model was given, so a
pair's prompt is exactly the conversation its chosen answer replied to.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from .ask import QUESTION_MAX_CHARS

SIDES = ("base", "trained")  # the two models that answer every turn, and what can be marked or edited
ANSWERERS = (*SIDES, "gguf")  # the trained model's GGUF answers beside them, for comparison only
# An edited answer is what the person wants the model to say: as long as a question may be.
EDIT_MAX_CHARS = QUESTION_MAX_CHARS
# Every turn is read again to render the next: past this the conversation is refused
# (about 4,000 tokens; a bigger context costs a small server seconds per token).
CONVERSATION_MAX_CHARS = 16_000


@dataclass
class Turn:
    user: str
    system: str = ""  # the system prompt this turn was rendered with ("" : the template's own)
    answers: dict[str, str] = field(default_factory=dict)  # answerer -> its answer as given
    asked: dict[str, list[dict]] = field(default_factory=dict)  # answerer -> the messages it answered
    notes: dict[str, str] = field(default_factory=dict)  # answerer -> "stopped", "cut short after 30 s", ...
    chosen: str | None = None  # the side marked better
    edited: dict[str, str] = field(default_factory=dict)  # side -> the answer wanted

    def said(self, side: str) -> str:
        return self.edited.get(side, self.answers.get(side, ""))


@dataclass
class Conversation:
    """Whose, with which run's models, and the turns so far. `id` names its saved
    records (a turn's pair is `<id>-<turn>`), so marking a turn again replaces it."""

    owner: str
    run_id: str
    which: str
    turns: list[Turn] = field(default_factory=list)
    id: str = field(default_factory=lambda: secrets.token_hex(6))

    def history(self, answerer: str) -> list[dict]:
        """The user and assistant messages `answerer` has seen so far."""
        side = "trained" if answerer == "gguf" else answerer
        messages = []
        for turn in self.turns:
            said = turn.edited.get(side) if answerer != "gguf" else None
            messages += [{"role": "user", "content": turn.user},
                         {"role": "assistant", "content": said if said is not None else turn.answers.get(answerer, "")}]
        return messages

    def start_turn(self, user: str, system: str = "") -> Turn:
        """A new turn for `user`'s message; ValueError when it cannot be asked."""
        user = (user or "").strip()
        if not user:
            raise ValueError("type a message first")
        if len(user) > QUESTION_MAX_CHARS:
            raise ValueError(f"the message is {len(user):,} characters, over the limit of {QUESTION_MAX_CHARS:,}")
        size = len(user) + sum(len(t.user) + max((len(a) for a in t.answers.values()), default=0)
                               for t in self.turns)
        if size > CONVERSATION_MAX_CHARS:
            raise ValueError(f"the conversation is {size:,} characters, over the limit of "
                             f"{CONVERSATION_MAX_CHARS:,}; press Clear and start a new one")
        turn = Turn(user, system.strip())
        self.turns.append(turn)
        return turn

    def ask(self, turn: Turn, answerer: str) -> list[dict]:
        """The messages `answerer` answers for `turn` (system first when the turn has one), kept on the turn."""
        before = self.history(answerer)[: 2 * self.turns.index(turn)]
        system = [{"role": "system", "content": turn.system}] if turn.system else []
        turn.asked[answerer] = system + before + [{"role": "user", "content": turn.user}]
        return turn.asked[answerer]

    def redo_last(self, system: str | None = None) -> Turn:
        """The last turn, its answers, mark and edits dropped, to be answered again
        (with `system` as its system prompt, when given)."""
        if not self.turns:
            raise ValueError("there is no answer to regenerate yet: send a message first")
        last = self.turns[-1]
        self.turns[-1] = Turn(last.user, last.system if system is None else system.strip())
        return self.turns[-1]

    def turn(self, number: int) -> Turn:
        """Turn `number` (1 is the first; 0 the latest); ValueError naming the turns there are."""
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValueError(f"turn: {number!r} is not a whole number")
        if not self.turns:
            raise ValueError("there is no answer yet: send a message first")
        if not 0 <= number <= len(self.turns):
            raise ValueError(f"turn: {number} is not a turn of this conversation (1 to {len(self.turns)}, "
                             "or 0 for the latest)")
        return self.turns[number - 1]

    def key(self, number: int) -> str:
        return f"{self.id}-{number or len(self.turns)}"

    def mark(self, number: int, better: str | None) -> Turn:
        """Mark one side's answer of a turn as the better one (None: unmark)."""
        turn = self.turn(number)
        if better is not None:
            if better not in SIDES:
                raise ValueError(f"better: {better!r} is not one of {', '.join(SIDES)}")
            if any(not turn.said(side).strip() for side in SIDES):
                raise ValueError("both models must have answered this turn before one answer can be better")
            if turn.said("base").strip() == turn.said("trained").strip():
                raise ValueError("the two answers are the same: there is nothing to prefer")
        turn.chosen = better
        return turn

    def edit(self, number: int, side: str, text: str) -> Turn:
        """Replace one side's answer of a turn with the answer wanted ("" : undo the edit)."""
        turn = self.turn(number)
        if side not in SIDES:
            raise ValueError(f"side: {side!r} is not one of {', '.join(SIDES)}")
        if side not in turn.answers:
            raise ValueError(f"the {side} model has not answered this turn")
        text = (text or "").strip()
        if len(text) > EDIT_MAX_CHARS:
            raise ValueError(f"the edited answer is {len(text):,} characters, over the limit of {EDIT_MAX_CHARS:,}")
        if text:
            turn.edited[side] = text
        else:
            turn.edited.pop(side, None)
        return turn


def preference_pair(turn: Turn) -> dict | None:
    """A marked turn in the lab's preference format: the conversation its chosen answer
    replied to as messages, and each answer as an assistant message (None: unmarked)."""
    if turn.chosen is None:
        return None
    other = next(side for side in SIDES if side != turn.chosen)
    return {"prompt": turn.asked[turn.chosen],
            "chosen": [{"role": "assistant", "content": turn.said(turn.chosen)}],
            "rejected": [{"role": "assistant", "content": turn.said(other)}]}


def edited_examples(turn: Turn) -> dict[str, dict]:
    """Each edited answer of a turn as a supervised example in `messages` form, by side."""
    return {side: {"messages": [*turn.asked[side], {"role": "assistant", "content": text}]}
            for side, text in turn.edited.items()}
