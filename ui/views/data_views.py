"""How the Data tab shows what the engine read: pure functions from engine
objects to widget values."""

from __future__ import annotations

import json
import statistics
from html import escape

import gradio as gr
import pandas as pd

from finetune.data.advice import Advice, data_advice
from finetune.data.dataset import PreparedData
from finetune.data.formats import FORMATS, Example
from finetune.data.render import EncodedPair, Renderer
from finetune.sources.files import Table
from finetune.train import objectives
from finetune.train.config import TrainConfig

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


# How a preference example's tokens are marked: the prompt is never trained; each reply is,
# as the side it is on (a pair's two, or KTO's one labelled reply).
PROMPT_MASKED = "prompt (masked)"
SIDE_COLORS = {"chosen": "#16a34a", "rejected": "#dc2626", "desirable": "#16a34a", "undesirable": "#dc2626",
               PROMPT_MASKED: "#cbd5e1"}


def highlighted_side(tokenizer, prompt_ids: list[int], reply_ids: list[int], side: str) -> dict:
    """The prompt and one reply as TRL's trainer reads them (its own token ids, decoded),
    the prompt marked masked and the reply marked as its side."""
    prompt = tokenizer.decode(prompt_ids)
    whole = tokenizer.decode(list(prompt_ids) + list(reply_ids))
    if not whole.startswith(prompt):  # a token that merges across the seam: show the two decoded apart
        whole = prompt + tokenizer.decode(reply_ids)
    entities = [{"entity": PROMPT_MASKED, "start": 0, "end": len(prompt)}] if prompt else []
    if len(whole) > len(prompt):
        entities.append({"entity": side, "start": len(prompt), "end": len(whole)})
    return {"text": whole, "entities": entities}


def pair_sides(tokenizer, example: Example, encoded: EncodedPair) -> list[tuple[str, dict, str]]:
    """(side, highlighted text, label) for each reply of a preference example: chosen and
    rejected for a pair; the one reply, desirable or undesirable, for KTO's unpaired data."""
    if example.kind == "unpaired":
        side = "desirable" if example.desirable else "undesirable"
        replies = [(side, encoded.chosen_ids)]
    else:
        replies = [("chosen", encoded.chosen_ids), ("rejected", encoded.rejected_ids)]
    prompt = len(encoded.prompt_ids)
    return [(side, highlighted_side(tokenizer, encoded.prompt_ids, ids, side),
             f"{side.capitalize()}: {len(ids)} tokens trained as {side} (the prompt's {prompt} masked)")
            for side, ids in replies]


def first_pair(tokenizer, prepared: PreparedData | None) -> list[dict] | None:
    """The first training example's sides as shown ({side, value, label} each), or None for
    supervised data: kept in a State whose change redraws the views (side_views)."""
    pairs = prepared.train_pairs if prepared is not None else []
    if not pairs:
        return None
    return [{"side": side, "value": value, "label": label} for side, value, label in pair_sides(tokenizer, *pairs[0])]


def side_views(sides: list[dict] | None) -> tuple:
    """Updates of (the supervised example, the chosen view, the rejected view): preference data
    shows its sides side by side in place of the supervised example (which is what SFT would train)."""
    shown = [gr.update(value=s["value"], label=s["label"], visible=True) for s in sides or []]
    hidden = [gr.update(visible=False)] * (2 - len(shown))
    return (gr.update(visible=not sides), *shown, *hidden)


def lengths(prepared: PreparedData) -> tuple[list[int], str]:
    """(the lengths the max length applies to, what each counts): a supervised example's tokens;
    a preference pair's prompt with its longer reply (KTO's one reply), as TRL truncates it."""
    if prepared.kind == "sft":
        return prepared.report["lengths"], "example"
    pairs = prepared.train_pairs + prepared.validation_pairs + prepared.held_out_pairs
    return [encoded.longest for _, encoded in pairs], "pair" if prepared.kind == "pair" else "reply"


def _split_counts(prepared: PreparedData) -> dict:
    return {"train": len(prepared.train), "validation": len(prepared.validation), "held_out": len(prepared.held_out)}


def _pair_counts(prepared: PreparedData) -> dict:
    return {"train": len(prepared.train_pairs), "validation": len(prepared.validation_pairs),
            "held_out": len(prepared.held_out_pairs)}


KIND_WORDS = {
    "pair": "preference pairs (a prompt, a chosen and a rejected reply): DPO trains on each pair; KTO splits each "
            "into a desirable and an undesirable reply",
    "unpaired": "replies labelled desirable or undesirable (KTO)",
}


def preference_lines(prepared: PreparedData) -> list[str]:
    """What a preference dataset holds per split, and what each objective makes of it."""
    pairs, report = _pair_counts(prepared), prepared.report
    word = "pairs" if prepared.kind == "pair" else "replies"
    dropped = sum(report.get(f"{split}_pairs_dropped", 0) for split in pairs)
    lines = ["", f"**Preference data:** {KIND_WORDS[prepared.kind]}.", "",
             "| split | train | validation | held out (before/after) |", "|---|---|---|---|",
             f"| {word} | {pairs['train']} | {pairs['validation']} | {pairs['held_out']} |"]
    if prepared.kind == "unpaired":
        good = sum(1 for e, _ in prepared.train_pairs if e.desirable)
        lines.append(f"| desirable / undesirable (train) | {good} / {pairs['train'] - good} | | |")
    counted, what = lengths(prepared)
    if counted:
        ordered = sorted(counted)
        over = sum(1 for n in ordered if n > report["max_length"])
        reply = "its longer reply" if prepared.kind == "pair" else "its reply"
        lines.append(f"\n**Tokens per {what}** (the prompt with {reply}, as the preference trainer reads "
                     f"it): median {statistics.median(ordered):g}, max {ordered[-1]} &nbsp;·&nbsp; **{over}** over "
                     f"the max length (TRL truncates the replies)")
    if dropped:
        lines.append(f"\n{dropped} {word} left out: the prompt fills the max length, or (overlong 'drop') a reply "
                     "runs past it.")
    usable = [objectives.NAMES[o] for o in objectives.SIGNALS if o != "sft"
              and objectives.data_problem(o, prepared.kind) is None]
    lines.append(f"\nObjectives this data trains: {', '.join(usable)} (Hyperparameters tab, *Objective*).")
    return lines


FORMAT_HINT = "Pick the right <b>Format</b>, or <i>columns</i> and map the prompt and response columns."
MODEL_HINT = "The records were read; the <b>Model</b> could not be loaded to tokenize them."


def summary_markdown(name: str, table: Table, prepared: PreparedData | None, error: str = "",
                     hint: str = FORMAT_HINT) -> str:
    """The dataset's summary; when it cannot be prepared, the reason and what to change (`hint`)."""
    head = f"### {name}\n{len(table.records)} records; columns: " + ", ".join(f"`{c}`" for c in table.columns)
    if prepared is None:
        return f"{head}\n\n<div class='lab-error'><b>Cannot use these records yet:</b> {error}<br>{hint}</div>"
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
        f"max {tokens['max']} &nbsp;·&nbsp; **{over}** over the max length of {report['max_length']}"
        + (" (the prompt with its chosen reply, as supervised fine-tuning reads it)" if prepared.kind != "sft" else ""),
    ]
    if prepared.kind != "sft":
        lines += preference_lines(prepared)
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
    found = {"source": name, "format": prepared.format, "template": prepared.template, "columns": table.columns,
             "records": len(table.records), "split": _split_counts(prepared), "report": report,
             "notices": prepared.notices, "train_tokens": prepared.train_tokens}
    if prepared.kind != "sft":
        found.update(kind=prepared.kind, pairs=_pair_counts(prepared), pair_tokens=prepared.pair_tokens)
    return found


def run_facts(config: TrainConfig, prepared: PreparedData) -> dict:
    """What the Hyperparameters tab's run summary needs of the data: for each objective this
    data can train, the examples a pass holds and the tokens it reads (objectives.training_units:
    a pair is one DPO example and two KTO ones)."""
    units = {o: list(objectives.training_units(config.replace(objective=o), prepared)) for o in objectives.SIGNALS
             if objectives.data_problem(o, prepared.kind) is None}
    return {"train_examples": len(prepared.train), "train_tokens": prepared.train_tokens, "kind": prepared.kind,
            "units": units}


ADVICE_MARKS = {"warning": ("⚠", "warning"), "info": ("ℹ", "note")}


def prepared_advice(prepared: PreparedData) -> list[Advice]:
    """The engine's data advice on the split this session prepared."""
    split = prepared.split
    return data_advice(split.train, split.validation, split.held_out, prepared.report.get("dropped"))


def advice_view(prepared: PreparedData) -> str:
    """The advice as shown; a check that fails says so in one line instead of failing the load."""
    try:
        return advice_html(prepared_advice(prepared))
    except Exception as err:  # advice is a help, never a reason to refuse the data
        return f"<div class='lab-advice lab-muted'>Data advice could not be computed: {escape(str(err))}</div>"


def advice_html(findings: list[Advice] | None) -> str:
    """Each finding with its count, a few examples and its advice; warnings first."""
    if findings is None:
        return ""
    if not findings:
        return "<div class='lab-advice'><b>Data advice:</b> nothing to flag.</div>"
    ordered = sorted(findings, key=lambda a: a.severity != "warning")
    warnings = sum(1 for a in findings if a.severity == "warning")
    items = []
    for a in ordered:
        mark, word = ADVICE_MARKS.get(a.severity, ("ℹ", escape(a.severity)))
        examples = "".join(f"<li>{escape(x)}</li>" for x in a.examples)
        examples = f"<ul class='advice-examples'>{examples}</ul>" if examples else ""
        items.append(f"<li class='advice {escape(a.severity, quote=True)}' data-name='{escape(a.name, quote=True)}'>"
                     f"{mark} <b>{escape(a.title)}</b> <span class='lab-muted'>({word}; count {a.count})</span>"
                     f"{examples}<div class='advice-text'>{escape(a.advice)}</div></li>")
    head = f"{warnings} warning{'s' if warnings != 1 else ''}, {len(findings) - warnings} note" \
           f"{'s' if len(findings) - warnings != 1 else ''}"
    return (f"<div class='lab-advice'><b>Data advice</b> <span class='lab-muted'>({head})</span>"
            f"<ul class='lab-advice-list'>{''.join(items)}</ul></div>")
