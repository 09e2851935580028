"""An Ollama Modelfile for an exported GGUF, carrying the model's chat
template: `ollama create NAME -f Modelfile` beside the .gguf gives a model that
is prompted exactly as training rendered its examples.

Ollama's TEMPLATE is a Go template, the tokenizer's a Jinja one: no general
translation exists, so the template is read off the tokenizer's own renderings.
Each role's text before and after a message's content, the assistant prompt
and the default system message come from rendering short conversations with
marker contents and taking the differences. A template that does not render
turn by turn (each conversation a prefix of the next) is refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("system", "user", "assistant")
MARK = "\u2063{}\u2063"  # an invisible separator no real template emits


class TemplateError(ValueError):
    """The chat template cannot be written as an Ollama template; one line for the user."""


@dataclass(frozen=True)
class ChatSegments:
    around: dict  # role -> (text before the content, text after it)
    generation: str  # what opens the assistant's reply
    default_system: str | None  # the system message the template adds when none is given

    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        """What the Go template below renders; equal to the tokenizer's rendering."""
        if self.default_system is not None and (not messages or messages[0]["role"] != "system"):
            messages = [{"role": "system", "content": self.default_system}, *messages]
        text = "".join(self.around[m["role"]][0] + m["content"] + self.around[m["role"]][1] for m in messages)
        return text + (self.generation if add_generation_prompt else "")


def chat_segments(tokenizer) -> ChatSegments:
    """Read a tokenizer's chat template off its renderings (see the module's doc)."""
    if not tokenizer.chat_template:
        raise TemplateError("the tokenizer has no chat template to carry into the Modelfile")
    marked = [{"role": role, "content": MARK.format(role)} for role in ROLES]

    def render(messages, generation=False):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

    around = {}
    for count, role in enumerate(ROLES, start=1):
        shorter, longer = render(marked[:count - 1]) if count > 1 else "", render(marked[:count])
        if not longer.startswith(shorter):
            raise TemplateError("the chat template does not render turn by turn; write the Modelfile's "
                                "TEMPLATE by hand (see ollama's docs)")
        before, _, after = longer[len(shorter):].partition(MARK.format(role))
        around[role] = (before, after)
    conversation = render(marked[:2])
    generation = render(marked[:2], generation=True)[len(conversation):]
    only_user = render(marked[1:2])
    added = only_user[: len(only_user) - len("".join(around["user"])) - len(MARK.format("user"))]
    default_system = None
    if added:
        prefix, suffix = around["system"]
        if not (added.startswith(prefix) and added.endswith(suffix)):
            raise TemplateError("the chat template adds a system message Ollama's template cannot express")
        default_system = added[len(prefix): len(added) - len(suffix)]
    return ChatSegments(around, generation, default_system)


def modelfile(tokenizer, gguf_name: str, system: str | None = None) -> str:
    """The Modelfile's text: FROM the GGUF beside it, the TEMPLATE, the SYSTEM
    message (`system`: the one training added to every example; else the
    template's default) and the stop sequences (end of turn and end of text)."""
    segments = chat_segments(tokenizer)
    branches = "".join(
        f'{"if" if i == 0 else "else if"} eq .Role "{role}" }}}}{_go(segments.around[role][0])}{{{{ .Content }}}}'
        f"{_go(segments.around[role][1])}{{{{ "
        for i, role in enumerate(ROLES))
    template = f"{{{{- range .Messages }}}}{{{{ {branches}end }}}}{{{{ end }}}}{_go(segments.generation)}"
    lines = [f"FROM ./{gguf_name}", "", f'TEMPLATE """{template}"""']
    system = system or segments.default_system
    if system is not None:
        lines.append(f'SYSTEM """{_go(system)}"""')
    for stop in _stops(tokenizer, segments):
        lines.append(f"PARAMETER stop {_quoted(stop)}")
    return "\n".join(lines) + "\n"


def _stops(tokenizer, segments: ChatSegments) -> list[str]:
    """Where a reply ends: the assistant's end-of-turn text and the EOS token."""
    stops = []
    end_of_turn = segments.around["assistant"][1].strip()
    for candidate in (end_of_turn, tokenizer.eos_token):
        if candidate and candidate not in stops:
            stops.append(candidate)
    return stops


def _go(text: str) -> str:
    if '"""' in text:
        raise TemplateError("the chat template contains triple quotes, which a Modelfile cannot hold")
    return text.replace("{{", '{{ "{{" }}')  # literal braces in a template's text


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
