"""Tab 4, Compare: the held-out comparison (the held-out prompts answered
before and after training, filled in by the Train tab's polling, scored per
category), and one free-text question asked of both the base and the trained model."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd

from finetune import config as cfg
from finetune import device
from finetune.ask import ask
from finetune.metrics import METRICS, summarise_scores
from finetune.models import ModelError
from ui import fields
from ui.lab import Lab, user_error

COLUMNS = ["category", "prompt", "reference", "before", "after", "match"]
WAITING = "…"
EMPTY = "(empty answer)"  # a model that ends its turn at once; a blank cell would look like a bug


def shown(answer: str | None) -> str:
    return WAITING if answer is None else (answer if answer.strip() else EMPTY)


@dataclass
class CompareTab:
    scores: gr.Markdown
    table: gr.Dataframe
    question: gr.Textbox
    max_new_tokens: gr.Slider
    ask: gr.Button
    before: gr.Textbox
    after: gr.Textbox


def build(lab: Lab, max_new_tokens: int) -> CompareTab:
    scores = gr.Markdown(scores_markdown([], None))
    table = gr.Dataframe(comparison_frame([]), label="Held-out prompts (never trained on)", wrap=True,
                         interactive=False, max_height=520, column_widths=["9%", "25%", "18%", "20%", "20%", "8%"],
                         elem_id="comparison-table")
    gr.Markdown("### Ask both models")
    question = gr.Textbox(label="Your prompt", lines=3,
                          placeholder="Rendered with the same chat template and system prompt as training.")
    with gr.Row(equal_height=True):
        limit = fields.widget(cfg.field_by_name("max_new_tokens"), max_new_tokens, scale=3, min_width=260,
                              info="Longest answer, in tokens, for your prompt.")
        ask_button = gr.Button("Ask both models", variant="primary", scale=1, min_width=160)
    with gr.Row(equal_height=True):
        before = gr.Textbox(label="Before: the base model", lines=6, interactive=False, min_width=300)
        after = gr.Textbox(label="After: the trained model", lines=6, interactive=False, min_width=300)
    return CompareTab(scores, table, question, limit, ask_button, before, after)


def _mark(score) -> str:
    if score is None:
        return WAITING
    return "✓" if score["normalised"] else ("~" if score["contains"] else "✗")


def comparison_frame(rows: list[dict]) -> pd.DataFrame:
    data = [[row.get("category") or "", row["prompt"], row["reference"],
             shown(row.get("before")), shown(row.get("after")),
             f"{_mark(row.get('before_score'))} → {_mark(row.get('after_score'))}"] for row in rows]
    return pd.DataFrame(data, columns=COLUMNS)


def scores_markdown(rows: list[dict], snap) -> str:
    if not rows and snap is not None and snap.status in ("training", "finishing", "completed", "stopped"):
        return "### Before and after\nThis run holds out no prompts (the *Held out* setting is 0)."
    if not rows:
        return ("### Before and after\nStart a run on the **Train** tab: its held-out prompts appear here, answered "
                "by the base model as soon as it is loaded and by the trained model when training ends.")
    if all(row.get("before") is None for row in rows):
        return (f"### Before and after\n{len(rows)} held-out prompts, never trained on. The base model is "
                "answering them now (*before*); the trained model answers when training ends (*after*).")
    summary = summarise_scores(rows)
    lines = ["### Before and after", "Share of held-out answers scoring against the reference: "
             + "; ".join(f"*{m.label}*: {m.help}" for m in METRICS.values())
             + ". In the table, ✓ matches (normalised), ~ contains the reference, ✗ neither.", "",
             "| prompts | count | " + " | ".join(f"{m.label}: before → after" for m in METRICS.values()) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for name, entry in summary.items():
        cells = [" → ".join(f"{entry[f'{side}_{metric}']:.0%}" if f"{side}_{metric}" in entry else WAITING
                            for side in ("before", "after")) for metric in METRICS]
        lines.append(f"| {name} | {entry['prompts']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ask_both(lab: Lab, prompt: str, max_new_tokens: int, model: str, template: str, system_prompt: str,
             hub_token: str) -> tuple[str, str]:
    """The base and the trained model answer one prompt. Without a finished run, only the base answers."""
    token = hub_token or None
    if not (prompt or "").strip():
        raise user_error("Type a prompt first.")
    run = lab.latest_run()
    if run is not None and not run.snapshot().finished:
        raise user_error("A run is training; ask again when it ends. The held-out table fills in live meanwhile.")
    result = run.result if run is not None else None
    try:
        if result is not None:
            source, hardware = result.source, result.hardware
            template, system_prompt = result.template, run.config.system_prompt
        else:
            source, hardware = lab.resolve(model), device.detect("auto")
        with lab.base_model(source, token, hardware.device) as (base, tokenizer):
            before = ask(base, tokenizer, prompt, max_new_tokens, template, system_prompt, hardware.autocast_dtype)
        if result is None:
            return shown(before), "No trained model yet: train one on the Train tab."
        after = ask(result.trained_model, result.tokenizer, prompt, max_new_tokens, template, system_prompt,
                    hardware.autocast_dtype)
    except (ModelError, ValueError) as err:
        raise user_error(err, token) from None
    return shown(before), shown(after)


def wire(lab: Lab, tab: CompareTab, settings: dict, data) -> None:
    def handler(prompt, max_new_tokens, model, template, system_prompt, hub_token):
        before, after = ask_both(lab, prompt, max_new_tokens, model, template, system_prompt, hub_token)
        return {tab.before: before, tab.after: after}

    inputs = [tab.question, tab.max_new_tokens, settings["model"], settings["template"], settings["system_prompt"],
              data.token]
    gr.on([tab.ask.click, tab.question.submit], handler, inputs, [tab.before, tab.after], api_name="ask")
