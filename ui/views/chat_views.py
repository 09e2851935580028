"""What the Chat tab shows of a conversation: each model's column as chat
messages (its answers, the one marked better, an edited answer, a stopped one),
the line saying who answers with which settings, and the person's saved data."""

from __future__ import annotations

from finetune.evaluate.conversation import SIDES, Conversation
from finetune.evaluate.sampling import Sampling

WAITING = "…"
EMPTY = "(empty answer)"  # a model that ends its turn at once; a blank bubble would look like a bug
BETTER = "✓ marked better"
EDITED = "✎ edited into the answer wanted"
COLUMNS = {"base": "Before: the base model", "trained": "After: the trained model",
           "gguf": "The trained model's GGUF, through llama.cpp"}


def chat_messages(conversation: Conversation | None, answerer: str) -> list[dict]:
    """One column: each turn's user message and this model's answer, with its marks."""
    messages = []
    for turn in conversation.turns if conversation is not None else []:
        if answerer not in SIDES and answerer not in turn.asked:
            continue  # the GGUF answers only the turns it was asked
        messages.append({"role": "user", "content": turn.user})
        if answerer not in turn.answers:
            if answerer in turn.asked:  # asked, no text yet
                messages.append({"role": "assistant", "content": WAITING})
            continue
        lines = [turn.said(answerer) or EMPTY]
        if answerer in turn.edited:
            lines.append(f"*{EDITED}* (it said: {turn.answers[answerer] or EMPTY})")
        if turn.chosen == answerer:
            lines.append(f"**{BETTER}**")
        if turn.notes.get(answerer):
            lines.append(f"*[{turn.notes[answerer]}]*")
        messages.append({"role": "assistant", "content": "\n\n".join(lines)})
    return messages


def status_line(conversation: Conversation | None, labels: dict[str, str], template: str, system: str,
                sampling: Sampling | None, answering: str | None = None) -> str:
    """Who answers the conversation and how: the run, each model, the rendering, the sampling."""
    if conversation is None:
        return ("Pick a finished run and send a message: its base model and its trained model answer side by side, "
                "one after the other, each in the run's own chat template and system prompt.")
    parts = [f"Run **{conversation.run_id}** ({conversation.which} model), turn {len(conversation.turns)}",
             "; ".join(f"{name}: {label}" for name, label in labels.items()),
             f"template {template}, system prompt {repr(system) if system else 'none (the template’s own)'}"]
    if sampling is not None:
        parts.append(sampling.describe())
    if answering:
        parts.append(f"*{COLUMNS[answering].split(':')[-1].strip()} is answering…*")
    return " · ".join(parts)


def saved_line(counts: dict[str, int], where: str | None = None) -> str:
    """The person's chat data: how many pairs and edited answers, and where to use them."""
    pairs, edits = counts.get("pairs", 0), counts.get("sft", 0)
    if not pairs and not edits:
        return ("Nothing saved yet. Mark which answer of a turn is better to save a preference pair, or edit an answer "
                "into the one you wanted to save a supervised example.")
    text = (f"Your chat data: **{pairs}** preference pair{'s' * (pairs != 1)} and **{edits}** edited "
            f"answer{'s' * (edits != 1)}. On the **Data** tab pick the source *My chat pairs* (for a DPO or KTO "
            "run) or *My edited answers* (supervised), and train on them.")
    return text + (f" Saved in `{where}`." if where else "")
