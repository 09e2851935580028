"""Tab 6, Experiments: your runs in one table; two or more of them compared
(training loss, validation loss and learning rate overlaid, the settings that
differ, and a verdict in plain words); and sweeps, one queued run per value of
one setting. One button runs the tutorial's learning-rate exercise on the
bundled demo data."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd

from finetune.data import dataset
from finetune.experiments import compare as experiments
from finetune.experiments import sweep
from finetune.experiments.figures import overlay_figures
from finetune.experiments.labels import run_labels, settings_diff
from finetune.experiments.scheduler import QueueFull, Submission
from finetune.runs.folders import METRICS_FILE
from finetune.runs.records import NoSuchRun
from finetune.sources.files import DataError
from finetune.sources.models import ModelError
from finetune.train import config as cfg
from finetune.train.config import ConfigError
from ui.lab import Lab, user_error
from ui.tabs import continuing
from ui.tabs.train_tab import submission

POLL_SECONDS = 3.0
EXERCISE_PRESET = "lr-sweep-demo"
INTRO = """### Runs, compared
Pick two or more of your runs to see their curves on one plot and a verdict. The tutorial's exercise:
*compare the training curves of fine-tuning with learning rates of 1e-5, 2e-5 and 5e-5; which converges
fastest without overfitting?* The button runs it on the demo data (three queued runs, a few minutes each on a
laptop CPU)."""


@dataclass
class ExperimentsTab:
    exercise: gr.Button
    setting: gr.Dropdown
    values: gr.Textbox
    start: gr.Button
    table: gr.Dataframe
    chosen: gr.CheckboxGroup
    refresh: gr.Button
    loss: gr.Plot
    eval_loss: gr.Plot
    learning_rate: gr.Plot
    diff: gr.Dataframe
    verdict: gr.Markdown
    timer: gr.Timer
    seen: gr.State  # progress_key of what this page last drew
    # "Continue from this run": one finished run of yours, its best (or final) model the next run's Model.
    continue_run: gr.Dropdown = None
    continue_which: gr.Radio = None
    continue_button: gr.Button = None
    continue_note: gr.Markdown = None


def build(lab: Lab) -> ExperimentsTab:
    gr.Markdown(INTRO)
    exercise = gr.Button("Run the learning-rate exercise (1e-5, 2e-5, 5e-5)", variant="primary",
                         elem_id="lr-exercise")
    with gr.Accordion("A sweep of your own (data and other settings from the first two tabs)", open=False):
        with gr.Row(equal_height=True):
            setting = gr.Dropdown(sweep.sweepable_settings(), value=sweep.DEFAULT_SETTING, label="Setting",
                                  scale=1, min_width=200)
            values = gr.Textbox(", ".join(f"{v:g}" for v in sweep.DEFAULT_VALUES), label="Values",
                                info=f"{sweep.MIN_VALUES} to {sweep.MAX_VALUES} values, separated by commas",
                                scale=2, min_width=240)
            start = gr.Button("Start the sweep", scale=1, min_width=160, elem_id="start-sweep")
    table = gr.Dataframe(label="Your runs (from: the run each continues from, and that run's own)", interactive=False,
                         wrap=True, max_height=320, elem_id="runs-table")
    with gr.Row(equal_height=True):
        continue_run = gr.Dropdown([], label="Continue from this run", scale=2, min_width=220,
                                   elem_id="experiments-continue-run",
                                   info="A finished run of yours: its model becomes the next run's Model setting.")
        continue_which = gr.Radio(continuing.CHOICES, value="best", label="Its", info=continuing.HELP, scale=2,
                                  min_width=220, elem_id="experiments-continue-which")
        continue_button = gr.Button("Continue from this run", scale=1, min_width=160, elem_id="experiments-continue")
    continue_note = gr.Markdown("", elem_id="experiments-continue-note", elem_classes="lab-muted")
    with gr.Row(equal_height=True):
        chosen = gr.CheckboxGroup([], label="Compare these runs", scale=4, elem_id="compare-runs")
        refresh = gr.Button("Refresh", scale=0, min_width=100)
    verdict = gr.Markdown("", elem_id="verdict")
    with gr.Row(equal_height=True):
        loss = gr.Plot(show_label=False, elem_id="runs-loss", min_width=320)
        eval_loss = gr.Plot(show_label=False, elem_id="runs-eval-loss", min_width=320)
    learning_rate = gr.Plot(show_label=False, elem_id="runs-lr")
    diff = gr.Dataframe(label="Settings that differ", interactive=False, wrap=True)
    return ExperimentsTab(exercise, setting, values, start, table, chosen, refresh, loss, eval_loss, learning_rate,
                          diff, verdict, gr.Timer(POLL_SECONDS, active=False), gr.State(None), continue_run,
                          continue_which, continue_button, continue_note)


def _choices(records) -> list[tuple[str, str]]:
    labels = run_labels(records)
    return [(f"{labels[r.id]} · {r.status}", r.id) for r in records if not r.unreadable]


def _finished_choices(records) -> list[tuple[str, str]]:
    """The runs one can continue from: those that ended (a cancelled one never trained), newest first."""
    labels = run_labels(records)
    return [(f"{labels[r.id]} · {r.status}", r.id) for r in records
            if not r.unreadable and r.finished and r.status != "cancelled"]


def _default_selection(records) -> list[str]:
    """The newest sweep's runs, else the newest three runs."""
    newest_sweep = next((r.sweep for r in records if r.sweep), None)
    if newest_sweep:
        return [r.id for r in records if r.sweep == newest_sweep]
    return [r.id for r in records if not r.unreadable][:3]


def compare_runs(lab: Lab, owner: str, run_ids: list[str]) -> dict:
    """The table, overlaid curves, settings diff and verdict of the caller's chosen runs."""
    try:
        chosen = [lab.scheduler.record(run_id, owner) for run_id in run_ids or []]
    except NoSuchRun as err:
        raise user_error(err) from None
    figures = overlay_figures(chosen)
    found = experiments.verdict(chosen) if len(chosen) > 1 else None
    if found is None:
        text = "Choose two or more runs to compare them." if chosen else "You have no runs to compare yet."
    else:
        text = "#### Verdict\n" + found["text"]
    diff = settings_diff(chosen)
    return {"rows": experiments.runs_rows(chosen, versus_best=True, held_out=found["held_out"] if found else None),
            "loss": figures["loss"], "eval_loss": figures["eval_loss"], "learning_rate": figures["learning_rate"],
            "diff": pd.DataFrame(diff), "verdict": text, "found": found, "settings_diff": diff}


def progress_key(records, chosen: list[str]) -> tuple:
    """What, when unchanged, means the tab has nothing new to draw: each run's
    status and how much of its history is logged, and the runs picked."""
    def logged(record) -> int | None:
        try:
            return None if record.finished else (record.folder / METRICS_FILE).stat().st_size
        except OSError:
            return None
    return tuple((r.id, r.status, logged(r)) for r in records) + tuple(chosen)


def views(lab: Lab, tab: ExperimentsTab, owner: str, chosen: list[str] | None, seen=None) -> dict:
    """Everything the tab shows; `chosen` None picks the default selection. A
    timer's tick passes `seen`: while the caller's runs wait in the queue nothing
    changes, and the figures (70 ms of server CPU each time here) are not redrawn."""
    records = lab.scheduler.list(owner)
    known = {r.id for r in records}
    chosen = [c for c in chosen if c in known] if chosen else _default_selection(records)
    active = any(not r.finished for r in records)
    key = progress_key(records, chosen)
    if key == seen:
        return {tab.timer: gr.Timer(active=active), tab.seen: key}
    compared = compare_runs(lab, owner, chosen)
    return {tab.seen: key, tab.table: experiments.runs_table(records) if records else pd.DataFrame(),
            tab.chosen: gr.update(choices=_choices(records), value=chosen),
            tab.continue_run: gr.update(choices=_finished_choices(records)), tab.loss: compared["loss"],
            tab.eval_loss: compared["eval_loss"], tab.learning_rate: compared["learning_rate"],
            tab.diff: compared["diff"], tab.verdict: compared["verdict"], tab.timer: gr.Timer(active=active)}


def start_sweep(lab: Lab, owner: str, wanted: Submission, setting: str, values) -> dict:
    """Queue one run per value; the runs share data, split and seed."""
    try:
        parsed = sweep.parse_values(setting, values)
        members = sweep.member_settings(wanted.settings.config, setting, parsed,
                                        wanted.settings.allow_out_of_range)
    except (sweep.SweepError, ConfigError) as err:
        raise user_error(err) from None
    # A swept data setting (max length, split...) changes the prepared data: each run prepares its own.
    same_data = all(m.config.data_key() == wanted.settings.config.data_key() for m in members)
    submissions = [Submission(m, prepared=wanted.prepared if same_data else None, source=wanted.source,
                              token=wanted.token, data_name=wanted.data_name,
                              allowed_model_roots=wanted.allowed_model_roots) for m in members]
    try:
        sweep_id, runs = lab.scheduler.submit_sweep(submissions, sweep.labels(setting, parsed), owner, setting,
                                                    parsed)
    except QueueFull as err:
        raise user_error(err) from None
    return {"sweep_id": sweep_id, "setting": setting, "values": parsed,
            "runs": [{"run_id": r.run_id, "label": r.identity.label, "status": r.snapshot().status} for r in runs]}


def exercise_submission(lab: Lab) -> Submission:
    """The learning-rate exercise's settings: the preset on the bundled demo data."""
    try:
        checked = cfg.build({"model": lab.default_model}, preset=EXERCISE_PRESET)
        source = lab.resolve(checked.config.model)
        with lab.tokenizer(checked.config.model, None) as tokenizer:
            prepared = dataset.prepare(checked.config, tokenizer, limits=lab.limits)
    except (ConfigError, DataError, ModelError) as err:
        raise user_error(err) from None
    return Submission(checked, prepared=prepared, source=source, data_name="demo/demo.jsonl",
                      allowed_model_roots=lab.allowed_model_roots)


def wire(lab: Lab, tab: ExperimentsTab, data, params, settings: dict, owner_key, tab_block: gr.Tab) -> None:
    outputs = [tab.table, tab.chosen, tab.continue_run, tab.loss, tab.eval_loss, tab.learning_rate, tab.diff,
               tab.verdict, tab.timer, tab.seen]

    def show(chosen=None, owner_key=None, request: gr.Request = None):
        return views(lab, tab, lab.owner(owner_key, request), chosen)

    def tick(chosen=None, seen=None, owner_key=None, request: gr.Request = None):
        return views(lab, tab, lab.owner(owner_key, request), chosen, seen)

    def list_runs(owner_key: str | None = None, request: gr.Request = None) -> list[dict]:
        """Your runs, newest first, one row each (what the Experiments table shows)."""
        return experiments.runs_rows(lab.scheduler.list(lab.owner(owner_key, request)))

    def compare(run_ids, owner_key=None, request: gr.Request = None):
        found = compare_runs(lab, lab.owner(owner_key, request), run_ids)
        return {tab.loss: found["loss"], tab.eval_loss: found["eval_loss"], tab.learning_rate: found["learning_rate"],
                tab.diff: found["diff"], tab.verdict: found["verdict"]}

    def compare_runs_api(run_ids: list[str], owner_key: str | None = None, request: gr.Request = None) -> dict:
        """Your runs compared: the table rows, the verdict (text and structured), the
        settings that differ, and the overlaid figures as plotly JSON."""
        found = compare_runs(lab, lab.owner(owner_key, request), run_ids)
        return {"rows": found["rows"], "verdict": found["found"], "settings_diff": found["settings_diff"],
                "figures": {name: found[name].to_plotly_json() for name in ("loss", "eval_loss", "learning_rate")}}

    def sweep_handler(setting, values, prepared, source, file=None, bundled_dataset=None, hub_dataset="",
                      hub_token="", allow_out_of_range=False, owner_key=None, request: gr.Request = None, **values_):
        owner = lab.owner(owner_key, request)
        wanted = submission(lab, owner, prepared, source, file, bundled_dataset, hub_dataset, hub_token,
                            allow_out_of_range, **values_)
        return start_sweep(lab, owner, wanted, setting, values)

    def exercise(owner_key=None, request: gr.Request = None):
        owner = lab.owner(owner_key, request)
        started = start_sweep(lab, owner, exercise_submission(lab), sweep.DEFAULT_SETTING, sweep.DEFAULT_VALUES)
        gr.Info(f"Queued {len(started['runs'])} runs: {', '.join(r['label'] for r in started['runs'])}.")
        return started

    redraw = dict(fn=show, inputs=[gr.State(None), owner_key], outputs=outputs, api_visibility="private")
    sweep_inputs = {"setting": tab.setting, "values": tab.values, "prepared": data.prepared,
                    **data.source_inputs(), "allow_out_of_range": params.allow, **settings, "owner_key": owner_key}
    sweep_status = gr.JSON(visible=False)
    tab.start.click(sweep_handler, inputs_kwargs=sweep_inputs, outputs=sweep_status, api_name="start_sweep",
                    concurrency_limit=None).success(**redraw)
    tab.exercise.click(exercise, owner_key, sweep_status, api_visibility="private",
                       concurrency_limit=None).success(**redraw)
    tab.chosen.input(compare, [tab.chosen, owner_key], [tab.loss, tab.eval_loss, tab.learning_rate, tab.diff,
                                                        tab.verdict], api_visibility="private")
    gr.api(compare_runs_api, api_name="compare_runs")
    gr.api(list_runs, api_name="list_runs")
    tab.refresh.click(show, [tab.chosen, owner_key], outputs, api_visibility="private")
    tab.timer.tick(tick, [tab.chosen, tab.seen, owner_key], outputs, api_visibility="private", show_progress="hidden",
                   concurrency_limit=None)
    tab_block.select(show, [tab.chosen, owner_key], outputs, api_visibility="private")
    continuing.wire_button(lab, tab.continue_button, tab.continue_run, tab.continue_which, tab.continue_note,
                           settings["model"], owner_key)
