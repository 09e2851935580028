"""A model's answer in a conversation, streamed: the conversation rendered with
the run's own template and system prompt (data.render.Renderer, as training
rendered its examples), then answered token by token, by transformers
(TextIteratorStreamer, generate in a thread) or by llama.cpp for a GGUF file.

The sampling settings are sampling.Sampling; with the same seed and settings an
answer comes out the same again, whatever else the process is doing.
"""

from __future__ import annotations

import threading
import time
from typing import Iterator

import torch
from transformers import LogitsProcessor, StoppingCriteria

from ..data.formats import Example
from ..data.render import Renderer
from .generate import autocast
from .sampling import Sampling


def render_conversation(tokenizer, messages: list[dict], template: str = "auto", system_prompt: str = "") -> str:
    """The text a model continues to answer the last user message of `messages`
    (user and assistant turns, the user's last), rendered as training rendered its
    prompts. A system message among them overrides `system_prompt`."""
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    turns = tuple(m for m in messages if m["role"] != "system")
    if not turns or turns[-1]["role"] != "user":
        raise ValueError("a conversation to answer ends with the user's message")
    example = Example(messages=(*turns, {"role": "assistant", "content": ""}), system=system or None)
    return Renderer(tokenizer, template, system_prompt).prompt(example)


class SeededSampler(LogitsProcessor):
    """A logits processor that draws the next token itself, with its own random
    generator, and leaves only that token possible (so generate's greedy pick is the
    draw). Not do_sample=True: that draws from torch's process-wide generator, which a
    run training in another thread draws from too, so an answer could not be
    reproduced, and seeding it would change that run's own randomness."""

    def __init__(self, temperature: float, top_p: float, seed: int):
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.generator = None

    def __call__(self, input_ids, scores):
        if self.generator is None:
            self.generator = torch.Generator(device=scores.device).manual_seed(self.seed)
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:  # keep the smallest set of likeliest tokens holding top_p of the probability
            ordered, order = probs.sort(dim=-1, descending=True)
            outside = ordered.cumsum(dim=-1) - ordered > self.top_p
            probs = probs.scatter(-1, order, ordered.masked_fill(outside, 0.0))
        drawn = torch.multinomial(probs, 1, generator=self.generator)
        return torch.full_like(scores, float("-inf")).scatter(1, drawn, 0.0)


class _Halt(StoppingCriteria):
    """A stopping criterion: true once `stop` (the person's Stop) or `halt` (the
    reader went away) is set."""

    def __init__(self, *events: threading.Event | None):
        self.events = [e for e in events if e is not None]

    def __call__(self, input_ids, scores, **kwargs):
        stopped = any(e.is_set() for e in self.events)
        return torch.full((input_ids.shape[0],), stopped, dtype=torch.bool, device=input_ids.device)


def generate_options(tokenizer, sampling: Sampling, stop: threading.Event | None = None,
                     halt: threading.Event | None = None, max_time: float | None = None) -> dict:
    from transformers import LogitsProcessorList, StoppingCriteriaList

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    options = dict(max_new_tokens=sampling.max_new_tokens, do_sample=False, num_beams=1, temperature=None,
                   top_p=None, top_k=None, repetition_penalty=sampling.repetition_penalty, max_time=max_time,
                   eos_token_id=tokenizer.eos_token_id, pad_token_id=pad,
                   stopping_criteria=StoppingCriteriaList([_Halt(stop, halt)]))
    if not sampling.greedy:
        options["logits_processor"] = LogitsProcessorList(
            [SeededSampler(sampling.temperature, sampling.top_p, sampling.seed)])
    return options


def stream_answer(model, tokenizer, prompt: str, sampling: Sampling, stop: threading.Event | None = None,
                  max_time: float | None = None, autocast_dtype=None) -> Iterator[str]:
    """The answer so far, each time it grows (generate runs in a thread and hands
    its text over through transformers' TextIteratorStreamer). Ends at the end of
    the turn, at max_new_tokens, at `max_time` seconds, or once `stop` is set; a
    reader that goes away stops the generation too."""
    from transformers import TextIteratorStreamer

    model.eval()
    device = next(model.parameters()).device
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    halt, failed = threading.Event(), []

    def work():
        try:
            with torch.no_grad(), autocast(model, autocast_dtype):
                model.generate(**inputs, streamer=streamer, **generate_options(tokenizer, sampling, stop, halt,
                                                                                max_time))
        except Exception as err:  # noqa: BLE001 -- raised again in the reader's thread
            failed.append(err)
            streamer.end()

    thread = threading.Thread(target=work, name="chat-answer", daemon=True)
    thread.start()
    text = ""
    try:
        for piece in streamer:
            if piece:
                text += piece
                yield text
    finally:
        halt.set()  # the reader stopped early (a closed page): let the model go at the next token
        thread.join()
    if failed:
        raise failed[0]


def stream_gguf(llm, prompt: str, sampling: Sampling, stop: threading.Event | None = None,
                max_time: float | None = None) -> Iterator[str]:
    """The same as stream_answer, from a GGUF file through llama-cpp-python's Llama.
    Its sampler is llama.cpp's own: greedy answers match transformers' on the same
    weights, sampled ones differ (another random generator; its repetition penalty
    looks back 64 tokens)."""
    tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    if len(tokens) + sampling.max_new_tokens > llm.n_ctx():
        raise ValueError(f"the conversation is {len(tokens)} tokens: with {sampling.max_new_tokens} new ones it "
                         f"is over this GGUF model's context of {llm.n_ctx()}; clear it and start again")
    llm.set_seed(sampling.seed)
    options = dict(temp=0.0, top_k=1) if sampling.greedy else dict(temp=sampling.temperature, top_p=sampling.top_p,
                                                                    top_k=0)
    started, said, shown = time.monotonic(), [], ""
    for token in llm.generate(tokens, min_p=0.0, repeat_penalty=sampling.repetition_penalty, **options):
        if token == llm.token_eos():
            break
        said.append(token)
        text = llm.detokenize(said).decode("utf-8", errors="ignore")  # a character cut in two waits for its end
        if text != shown:
            shown = text
            yield text
        if len(said) >= sampling.max_new_tokens or (stop is not None and stop.is_set()) \
                or (max_time is not None and time.monotonic() - started >= max_time):
            break
