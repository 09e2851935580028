"""Turn examples into text and token ids with labels.

The loss counts only what the assistant says: labels are -100 everywhere else.
The end-of-turn token after each reply is trained too, so the model learns to
stop. Masking is by character span and offset mapping, not by token id (with
pad = EOS, masking by id would hide every EOS).
"""

from __future__ import annotations

from dataclasses import dataclass

from .formats import Example

IGNORE = -100  # the label of a position the loss skips (PyTorch's cross_entropy ignore_index)
ALPACA_SYSTEM = "Below is an instruction that describes a task. Write a response that appropriately completes the request."


@dataclass(frozen=True)
class EncodedPair:
    """A preference example as TRL's DPO and KTO trainers tokenize it: the prompt, then
    each reply on its own (the tokens the preference loss trains). An unpaired
    (KTO) example's one reply is `chosen_ids`, with `rejected_ids` empty."""

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]

    @property
    def tokens(self) -> int:
        """Tokens a forward pass reads: the prompt once per reply, and the replies."""
        sides = [ids for ids in (self.chosen_ids, self.rejected_ids) if ids]
        return sum(len(self.prompt_ids) + len(ids) for ids in sides)

    @property
    def longest(self) -> int:
        return len(self.prompt_ids) + max(len(self.chosen_ids), len(self.rejected_ids))


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # aligned with input_ids: the target at a position is that token itself
    original_length: int = 0  # tokens before truncation

    @property
    def truncated(self) -> bool:
        return self.original_length > len(self.input_ids)


class Renderer:
    """Renders with the model's chat template, or the Alpaca prompt template."""

    def __init__(self, tokenizer, template: str = "auto", system_prompt: str = ""):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("this tokenizer has no fast (Rust) version; label masking needs character offsets")
        has_chat = bool(getattr(tokenizer, "chat_template", None))
        if template == "chat" and not has_chat:
            raise ValueError("the model has no chat template; use template 'alpaca'")
        self.tokenizer = tokenizer
        self.uses_chat_template = template == "chat" or (template == "auto" and has_chat)
        self.system_prompt = system_prompt.strip()
        self.eos = tokenizer.eos_token or ""

    @property
    def template_name(self) -> str:
        return "chat" if self.uses_chat_template else "alpaca"

    # --- text
    def render(self, example: Example) -> tuple[str, list[tuple[int, int]]]:
        """The full text and the character spans the loss trains on."""
        if not example.is_chat:
            return example.text + self.eos, [(0, len(example.text) + len(self.eos))]
        if self.uses_chat_template:
            return self._render_chat(example)
        return self._render_alpaca(example, with_response=True)

    def prompt(self, example: Example) -> str:
        """The text a model sees before its final reply (for generation)."""
        if not example.is_chat:
            return example.text
        if self.uses_chat_template:
            return self._apply(self._chat_messages(example)[:-1], add_generation_prompt=True)
        return self._render_alpaca(example, with_response=False)[0]

    def _chat_messages(self, example: Example) -> list[dict]:
        messages = [dict(m) for m in example.messages]
        if example.context:
            messages[0]["content"] = f"{messages[0]['content']}\n\n{example.context}"
        system = example.system or self.system_prompt
        return ([{"role": "system", "content": system}] if system else []) + messages

    def _apply(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _render_chat(self, example: Example) -> tuple[str, list[tuple[int, int]]]:
        messages = self._chat_messages(example)
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self._apply(messages[:i], add_generation_prompt=True)
            after = self._apply(messages[: i + 1])
            if not after.startswith(before):
                raise ValueError("the chat template renders differently turn by turn; use template 'alpaca'")
            spans.append((len(before), self._end_of_turn(after, len(before), message["content"])))
        return self._apply(messages), spans

    def _end_of_turn(self, text: str, start: int, content: str) -> int:
        """End of the reply including its end-of-turn token, excluding any trailing newline."""
        content_end = text.find(content, start) + len(content) if content else start
        eos_at = text.find(self.eos, content_end) if self.eos else -1
        return eos_at + len(self.eos) if eos_at >= 0 else len(text.rstrip())

    def _render_alpaca(self, example: Example, with_response: bool) -> tuple[str, list[tuple[int, int]]]:
        system = example.system or self.system_prompt or ALPACA_SYSTEM
        text, spans = f"{system}\n\n", []
        turns = list(example.messages)
        for i, message in enumerate(turns):
            if message["role"] == "user":
                text += f"### Instruction:\n{message['content']}\n\n"
                if i == 0 and example.context:
                    text += f"### Input:\n{example.context}\n\n"
                continue
            text += "### Response:\n"
            if not with_response and i == len(turns) - 1:
                return text, spans
            start = len(text)
            text += message["content"] + self.eos
            spans.append((start, len(text)))
            text += "\n\n"
        return text.rstrip("\n"), spans

    # --- tokens
    def encode(self, example: Example) -> Encoded:
        """Token ids and labels of the whole example, untruncated."""
        text, spans = self.render(example)
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoding["input_ids"])
        labels = [tok if _in_spans(start, end, spans) else IGNORE
                  for tok, (start, end) in zip(ids, encoding["offset_mapping"])]
        return Encoded(ids, labels, len(ids))

    # --- preference data, in TRL's forms
    def trl_record(self, example: Example) -> dict:
        """What TRL's DPO or KTO trainer is given for an example: its conversational form
        (message lists, rendered by the same chat template) or, for the Alpaca template,
        its standard form (the prompt text and the reply text; TRL adds the EOS token)."""
        if self.uses_chat_template:
            prompt = self._chat_messages(example)[:-1]
            reply = lambda text: [{"role": "assistant", "content": text}]  # noqa: E731
        else:
            prompt, reply = self._render_alpaca(example, with_response=False)[0], (lambda text: text)
        if example.kind == "unpaired":
            return {"prompt": prompt, "completion": reply(example.response), "label": bool(example.desirable)}
        return {"prompt": prompt, "chosen": reply(example.response), "rejected": reply(example.rejected or "")}

    def encode_pair(self, example: Example) -> EncodedPair:
        """The token ids TRL builds from trl_record(example): the prompt, and each reply as
        the part where prompt+reply departs from the prompt alone (done exactly as TRL's
        _prepare_dataset does, so what the Data tab shows is what trains; tested)."""
        record = self.trl_record(example)
        replies = [record["completion"]] if "completion" in record else [record["chosen"], record["rejected"]]
        prompt_ids = self._ids(record["prompt"], add_generation_prompt=True)
        full = [self._ids(record["prompt"] + reply if isinstance(reply, list) else record["prompt"] + reply
                          + ("" if isinstance(reply, list) else self.eos)) for reply in replies]
        start = min(_common_prefix(prompt_ids, ids) for ids in full)
        sides = [ids[start:] for ids in full]
        return EncodedPair(prompt_ids[:start], sides[0], sides[1] if len(sides) > 1 else [])

    def _ids(self, value, add_generation_prompt: bool = False) -> list[int]:
        if isinstance(value, list):
            return list(self.tokenizer.apply_chat_template(value, tokenize=True, return_dict=True,
                                                           add_generation_prompt=add_generation_prompt)["input_ids"])
        return list(self.tokenizer(text=value)["input_ids"])


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n



def fit(encoded: Encoded, max_length: int, overlong: str = "truncate") -> Encoded | None:
    """Apply the length policy; None when the example is dropped (too long with
    overlong='drop', or nothing left to train after truncation)."""
    ids, labels = encoded.input_ids, encoded.labels
    if len(ids) > max_length:
        if overlong == "drop":
            return None
        ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE for label in labels[1:]):
        return None
    return Encoded(ids, labels, encoded.original_length)


def _in_spans(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return end > start and any(start < span_end and end > span_start for span_start, span_end in spans)
