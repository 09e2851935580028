"""How the Data tab shows what the engine read: pure functions from engine
objects to widget values."""

from __future__ import annotations

import json

import gradio as gr
import pandas as pd

from finetune.config import TrainConfig
from finetune.dataset import PreparedData
from finetune.files import Table
from finetune.formats import FORMATS, Example
from finetune.render import Renderer

PREVIEW_ROWS = 50
CELL_CHARS = 300


def _cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + " ..."


def preview_frame(table: Table) -> pd.DataFrame:
    rows = [{column: _cell(record.get(column)) for column in table.columns} for record in table.records[:PREVIEW_ROWS]]
    return pd.DataFrame(rows, columns=table.columns)


def preview_update(table: Table):
    """The records table, every column visible: equal widths rather than the widest cell's."""
    width = f"{100 / max(len(table.columns), 1):.2f}%"
    return gr.update(value=preview_frame(table), column_widths=[width] * len(table.columns))


def empty_highlight() -> dict:
    return {"text": "Load a dataset to see an example.", "entities": []}


def highlighted_example(tokenizer, config: TrainConfig, example: Example) -> dict:
    """The rendered text with the spans the loss trains on marked 'trained', the rest 'prompt (masked)'."""
    text, spans = Renderer(tokenizer, config.template, config.system_prompt).render(example)
    entities, cursor = [], 0
    for start, end in sorted(spans):
        if start > cursor:
            entities.append({"entity": "prompt (masked)", "start": cursor, "end": start})
        entities.append({"entity": "trained", "start": start, "end": end})
        cursor = end
    if cursor < len(text):
        entities.append({"entity": "prompt (masked)", "start": cursor, "end": len(text)})
    return {"text": text, "entities": entities}


def _split_counts(prepared: PreparedData) -> dict:
    return {"train": len(prepared.train), "validation": len(prepared.validation), "held_out": len(prepared.held_out)}


def summary_markdown(name: str, table: Table, prepared: PreparedData | None, error: str = "") -> str:
    head = f"### {name}\n{len(table.records)} records; columns: " + ", ".join(f"`{c}`" for c in table.columns)
    if prepared is None:
        return (f"{head}\n\n<div class='lab-error'><b>Cannot use these records yet:</b> {error}<br>Pick the right "
                "<b>Format</b>, or <i>columns</i> and map the prompt and response columns.</div>")
    report, split = prepared.report, _split_counts(prepared)
    tokens = report["tokens"]
    over = report["over_max_length"]
    pinned = any(e.meta.get("split") for e in prepared.examples)
    lines = [
        head, "",
        f"**Format:** {FORMATS[prepared.format].label} &nbsp;·&nbsp; **Template:** "
        f"{prepared.template} &nbsp;·&nbsp; **Examples:** {report['examples']}",
        "",
        "| split | train | validation | held out (before/after) |", "|---|---|---|---|",
        f"| examples | {split['train']} | {split['validation']} | {split['held_out']} |",
        "",
        f"**Tokens per example:** min {tokens['min']}, median {tokens['median']:g}, 95% under {tokens['p95']}, "
        f"max {tokens['max']} &nbsp;·&nbsp; **{over}** over the max length of {report['max_length']}",
    ]
    if pinned:
        lines.append("\nThe file's `split` column decides which records are held out or used for validation.")
    quality = [f"{report['duplicates']} duplicates"] if report["duplicates"] else []
    quality += [f"{n} dropped ({reason})" for reason, n in report["dropped"].items()]
    if quality:
        lines.append("\n**Quality:** " + ", ".join(quality))
    if prepared.notices:
        lines.append("\n" + "\n".join(f"- {notice}" for notice in prepared.notices))
    return "\n".join(lines)


def details(name: str, table: Table, prepared: PreparedData) -> dict:
    report = {k: v for k, v in prepared.report.items() if k != "lengths"}
    return {"source": name, "format": prepared.format, "template": prepared.template, "columns": table.columns,
            "records": len(table.records), "split": _split_counts(prepared), "report": report,
            "notices": prepared.notices, "train_tokens": prepared.train_tokens}
