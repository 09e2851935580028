"""Tab 4, Compare: the held-out comparison of any run of yours (the held-out
prompts answered before and after training, scored per category; the latest
run's fills in live through the Train tab's polling), and one free-text
question asked of that run's base and trained model, both loaded from disk for
the question and released after it."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd

from finetune.evaluate.ask import QUESTION_MAX_CHARS, ask, check_question
from finetune.diagnose.findings import degraded
from finetune.evaluate.metrics import METRICS, readings, score_changes, summarise_scores
from finetune.runs.records import NoSuchRun, read_config
from finetune.sources import models
from finetune.sources.models import ModelError
from finetune.train import config as cfg
from finetune.train import device
from ui import limits
from ui.lab import Lab, Shown, user_error
from ui.tabs import continuing
from ui.views import badges, changes, evidence_views, fields

COLUMNS = ["category", "prompt", "reference", "before", "after", "match"]
LATEST = ""  # the run picker's value for "your latest run", which follows the Train tab
WAITING = "…"
EMPTY = "(empty answer)"  # a model that ends its turn at once; a blank cell would look like a bug


def shown_answer(answer: str | None) -> str:
    return WAITING if answer is None else (answer if answer.strip() else EMPTY)


@dataclass
class CompareTab:
    run: gr.Dropdown
    diagnoses: gr.HTML  # the chosen run's failure-mode badges (its final findings once it ended)
    memory: gr.HTML  # its memory estimate beside the measured peak
    scores: gr.Markdown
    table: gr.Dataframe
    question: gr.Textbox
    max_new_tokens: gr.Slider
    ask: gr.Button
    before: gr.Textbox
    after: gr.Textbox
    evidence: gr.Markdown = None  # the run's standard benchmarks and judge (ui.views.evidence_views)
    # "Continue from this run": the picked run's best (or final) model becomes the next run's Model setting.
    continue_which: gr.Radio = None
    continue_button: gr.Button = None
    continue_note: gr.Markdown = None


def build(lab: Lab, max_new_tokens: int) -> CompareTab:
    run = gr.Dropdown([("Your latest run", LATEST)], value=LATEST, label="Run", elem_id="compare-run",
                      allow_custom_value=True,  # an API client names any run of its own; the owner is checked
                      info="Any run of yours; the latest one fills in live while it trains.")
    diagnoses = gr.HTML(run_diagnoses(None), elem_id="compare-diagnoses")
    memory = gr.HTML(run_memory(None), elem_id="compare-memory")
    scores = gr.Markdown(scores_markdown([], None))
    table = gr.Dataframe(comparison_frame([]), label="Held-out prompts (never trained on)", wrap=True,
                         interactive=False, max_height=520, column_widths=["9%", "25%", "18%", "20%", "20%", "8%"],
                         elem_id="comparison-table")
    evidence = gr.Markdown(evidence_views.evidence_markdown(None), elem_id="compare-evidence")
    with gr.Row(equal_height=True):
        continue_which = gr.Radio(continuing.CHOICES, value="best", label="Continue from its", info=continuing.HELP,
                                  scale=3, min_width=260, elem_id="compare-continue-which")
        continue_button = gr.Button("Continue from this run", scale=1, min_width=160, elem_id="compare-continue")
    continue_note = gr.Markdown("", elem_id="compare-continue-note", elem_classes="lab-muted")
    gr.Markdown("### Ask both models")
    question = gr.Textbox(label="Your prompt", lines=3, max_length=QUESTION_MAX_CHARS,
                          placeholder="Rendered with the same chat template and system prompt as training.")
    with gr.Row(equal_height=True):
        limit = fields.widget(cfg.field_by_name("max_new_tokens"), max_new_tokens, scale=3, min_width=260,
                              info="Longest answer, in tokens, for your prompt.")
        ask_button = gr.Button("Ask both models", variant="primary", scale=1, min_width=160)
    with gr.Row(equal_height=True):
        before = gr.Textbox(label="Before: the base model", lines=6, interactive=False, min_width=300)
        after = gr.Textbox(label="After: the trained model", lines=6, interactive=False, min_width=300)
    return CompareTab(run, diagnoses, memory, scores, table, question, limit, ask_button, before, after,
                      evidence=evidence, continue_which=continue_which, continue_button=continue_button,
                      continue_note=continue_note)


def run_choices(lab: Lab, owner: str) -> list[tuple[str, str]]:
    """The picker's entries: the latest run, then each of the owner's runs, newest first."""
    runs = [r for r in lab.scheduler.list(owner) if not r.unreadable]
    return [("Your latest run", LATEST)] + [(f"{r.label or r.id} · {r.status}", r.id) for r in runs]


def held_out_outputs(tab: CompareTab) -> list:
    return [tab.table, tab.scores, tab.diagnoses, tab.memory, tab.run, tab.evidence]


def run_diagnoses(snap) -> str:
    """The chosen run's badges: its final findings once it ended, the live ones while it trains."""
    if snap is None:
        return badges.diagnoses_html((), final=True, waiting="Failure-mode checks appear here for the run you pick.")
    if not snap.finished:
        return badges.diagnoses_html(snap.diagnoses, waiting="The final failure-mode checks run when training ends.")
    return badges.diagnoses_html(snap.diagnoses, final=True)


def run_memory(snap) -> str:
    return badges.memory_html(snap.memory) if snap is not None else ""


def run_views(tab: CompareTab, snap) -> dict:
    """Everything the Compare tab shows about one run (its snapshot, or None)."""
    rows = list(snap.comparison) if snap else []
    return {tab.table: comparison_frame(rows), tab.scores: scores_markdown(rows, snap),
            tab.diagnoses: run_diagnoses(snap), tab.memory: run_memory(snap),
            tab.evidence: evidence_views.run_evidence(snap)}


def held_out_views(tab: CompareTab, snap, choices=None, picked: str = LATEST) -> dict:
    """The held-out table and scores of the latest run's snapshot, unless the
    picker shows another run; and the picker's entries when given."""
    shown = {tab.run: gr.update(choices=choices)} if choices is not None else {}
    if picked != LATEST:
        return shown
    return {**shown, **run_views(tab, snap)}


def _mark(score) -> str:
    if score is None:
        return WAITING
    return "✓" if score["normalised"] else ("~" if score["contains"] else "✗")


def comparison_frame(rows: list[dict]) -> pd.DataFrame:
    data = [[row.get("category") or "", row["prompt"], row["reference"],
             shown_answer(row.get("before")), shown_answer(row.get("after")),
             f"{_mark(row.get('before_score'))} → {_mark(row.get('after_score'))}"] for row in rows]
    return pd.DataFrame(data, columns=COLUMNS)


def finished_changes(snap) -> dict:
    """A finished run's changes as its summary.json keeps them (the general probe's and any other
    category's too), so this tab says what the command line printed; {} while it runs."""
    return dict(snap.changes) if snap is not None and snap.finished and snap.changes else {}


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
    # Every metric's change: a category's reading needs them all to see scores that
    # moved in opposite directions (the bootstraps of the three graded metrics cost
    # a few tens of milliseconds, once the trained model has answered). A finished
    # run's found diagnoses keep a degraded category from being called better.
    found = finished_changes(snap) or \
        score_changes(rows, degraded(snap.diagnoses if snap is not None and snap.finished else ()))
    read = readings(found)
    lines = ["### Before and after", "Share of held-out answers scoring against the reference: "
             + "; ".join(f"*{m.label}*: {m.help}" for m in METRICS.values())
             + ". In the table, ✓ matches (normalised), ~ contains the reference, ✗ neither.", "",
             "| prompts | count | " + " | ".join(f"{m.label}: before → after" for m in METRICS.values())
             + " | change on its headline metric (95% interval) |",
             "|---|---|" + "---|" * (len(METRICS) + 1)]
    for name, entry in summary.items():
        cells = [" → ".join(f"{entry[f'{side}_{metric}']:.0%}" if f"{side}_{metric}" in entry else WAITING
                            for side in ("before", "after")) for metric in METRICS]
        cells.append(changes.change_cell(read.get(name)))
        lines.append(f"| {name} | {entry['prompts']} | " + " | ".join(cells) + " |")
    sentences = changes.change_sentences(found, {**((snap.scores or {}) if snap is not None else {}), **summary})
    return "\n".join(lines + (["", sentences] if sentences else []))


def ask_both(lab: Lab, owner: str, prompt: str, max_new_tokens: int, run_id: str, model: str, template: str,
             system_prompt: str, hub_token: str) -> tuple[str, str]:
    """The base and the trained model of the chosen run (default: the caller's
    latest) answer one prompt. Without a finished run, only the base answers."""
    token = hub_token or None
    if not (prompt or "").strip():
        raise user_error("Type a prompt first.")
    try:  # refused before any model loads: a client may send anything
        prompt = check_question(prompt)
        max_new_tokens = limits.answer_tokens(max_new_tokens, lab.public)
        limits.check_settings(model=model, template=template, system_prompt=system_prompt)
    except ValueError as err:
        raise user_error(err) from None
    deadline = limits.answer_seconds(lab.public)
    try:
        shown = lab.run(owner, run_id or None)
    except NoSuchRun as err:
        raise user_error(err) from None
    trained = _trained_model_dir(shown)
    if shown is not None and not shown.snapshot.finished:
        raise user_error("This run is still training; ask again when it ends. Its held-out table fills in live.")
    hardware = device.detect("auto")
    if trained is None:
        continuing.check_own_model(lab, owner, model)  # the base model asked alone: none of another's runs
    try:
        if trained is not None:
            settings = _run_settings(shown.folder)
            model, template, system_prompt = settings["model"], settings["template"], settings["system_prompt"]
        before = _answer(lab.resolve(model), token, prompt, max_new_tokens, template, system_prompt, hardware,
                         deadline)
        if trained is None:
            return shown_answer(before), "No trained model yet: train one on the Train tab."
        after = _answer(models.ModelSource("local", str(trained), "trained"), None, prompt, max_new_tokens,
                        template, system_prompt, hardware, deadline)
    except (ModelError, ValueError) as err:
        raise user_error(err, token) from None
    return shown_answer(before), shown_answer(after)


def _trained_model_dir(shown: Shown | None):
    folder = shown.folder / "model" if shown is not None else None
    return folder if folder is not None and (folder / "config.json").is_file() else None


def _run_settings(folder) -> dict:
    """The model spec, template and system prompt a run trained with, from its config.json."""
    config = read_config(folder)  # a local model folder is recorded relative to the run folder
    return {"model": config.get("model", ""), "template": config.get("resolved", {}).get("template", "auto"),
            "system_prompt": config.get("system_prompt", "")}


def _answer(source, token, prompt, max_new_tokens, template, system_prompt, hardware, deadline=None) -> str:
    """Load the model for this one question and let it go after: finished runs keep no model in memory."""
    model, tokenizer = models.load(source, token=token)
    try:
        return ask(model.to(hardware.device), tokenizer, prompt, max_new_tokens, template, system_prompt,
                   hardware.autocast_dtype, deadline)
    finally:
        del model
        device.release_memory()


def show_run(lab: Lab, tab: CompareTab, owner: str, run_id: str) -> dict:
    try:
        shown = lab.run(owner, run_id or None)
    except NoSuchRun as err:
        raise user_error(err) from None
    return run_views(tab, shown.snapshot if shown else None)


def wire(lab: Lab, tab: CompareTab, settings: dict, data, owner_key) -> None:
    def handler(prompt, max_new_tokens, run_id=None, model=None, template=None, system_prompt=None, hub_token=None,
                owner_key=None, request: gr.Request = None):
        owner = lab.owner(owner_key, request)
        before, after = ask_both(lab, owner, prompt, max_new_tokens, run_id, model, template, system_prompt,
                                 hub_token)
        return {tab.before: before, tab.after: after}

    inputs = [tab.question, tab.max_new_tokens, tab.run, settings["model"], settings["template"],
              settings["system_prompt"], data.token, owner_key]
    # One question at a time: each loads two models for its answer.
    gr.on([tab.ask.click, tab.question.submit], handler, inputs, [tab.before, tab.after], api_name="ask",
          concurrency_limit=limits.ASK_CONCURRENCY, concurrency_id="ask")

    def pick(run_id, owner_key=None, request: gr.Request = None):
        return show_run(lab, tab, lab.owner(owner_key, request), run_id)

    tab.run.input(pick, [tab.run, owner_key], [tab.table, tab.scores, tab.diagnoses, tab.memory, tab.evidence],
                  api_visibility="private")
    continuing.wire_button(lab, tab.continue_button, tab.run, tab.continue_which, tab.continue_note,
                           settings["model"], owner_key)
    continuing.wire_api(lab)
