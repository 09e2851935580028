"""Ask a model one free-text question, rendered exactly as training rendered
its prompts (same template, same system prompt), so the base and the trained
model answer on equal terms. (The held-out comparison is in metrics.py.)"""

from __future__ import annotations

from .evaluate import generate
from .formats import Example
from .render import Renderer


def render_question(tokenizer, question: str, template: str = "auto", system_prompt: str = "") -> str:
    """The text a model continues to answer `question` as one user turn."""
    example = Example(messages=({"role": "user", "content": question}, {"role": "assistant", "content": ""}))
    return Renderer(tokenizer, template, system_prompt).prompt(example)


def ask(model, tokenizer, question: str, max_new_tokens: int, template: str = "auto", system_prompt: str = "",
        autocast_dtype=None) -> str:
    question = question.strip()
    if not question:
        raise ValueError("type a question first")
    prompt = render_question(tokenizer, question, template, system_prompt)
    return generate(model, tokenizer, [prompt], max_new_tokens, autocast_dtype=autocast_dtype)[0]
