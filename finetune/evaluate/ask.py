"""Ask a model one free-text question, rendered exactly as training rendered
its prompts (same template, same system prompt), so the base and the trained
model answer on equal terms. (The held-out comparison is in metrics.py.)"""

from __future__ import annotations

import time

from ..data.formats import Example
from ..data.render import Renderer
from .generate import generate

# A question is one user turn. Its cost grows with its length before a token is
# generated (tokenising, then attention over the whole prompt): one
# 1,000,000-character question kept a 2-core server busy for over an hour.
# 4,000 characters (~1,000 tokens) is a long question and seconds of work.
QUESTION_MAX_CHARS = 4_000


def check_question(question: str | None) -> str:
    """The question, stripped; a ValueError with a one-line reason when it cannot be asked."""
    question = (question or "").strip()
    if not question:
        raise ValueError("type a question first")
    if len(question) > QUESTION_MAX_CHARS:
        raise ValueError(f"the question is {len(question):,} characters, over the limit of {QUESTION_MAX_CHARS:,}; "
                         "shorten it")
    return question


def render_question(tokenizer, question: str, template: str = "auto", system_prompt: str = "") -> str:
    """The text a model continues to answer `question` as one user turn."""
    example = Example(messages=({"role": "user", "content": question}, {"role": "assistant", "content": ""}))
    return Renderer(tokenizer, template, system_prompt).prompt(example)


def ask(model, tokenizer, question: str, max_new_tokens: int, template: str = "auto", system_prompt: str = "",
        autocast_dtype=None, max_time: float | None = None) -> str:
    """The model's answer. With `max_time` (seconds) generation stops at that
    deadline and the answer says it was cut short."""
    question = check_question(question)
    prompt = render_question(tokenizer, question, template, system_prompt)
    started = time.monotonic()
    answer = generate(model, tokenizer, [prompt], max_new_tokens, autocast_dtype=autocast_dtype,
                      max_time=max_time)[0]
    if max_time is not None and time.monotonic() - started >= max_time:
        answer += f" [cut short: answers stop after {max_time:g} s here]"
    return answer
