"""Tab 6, Experiments: your runs in one table (filtered by status, data, model
and text, newest first, a page at a time, with the disk each uses); two or more
of them, picked from the table, compared (training loss, validation loss and
learning rate overlaid, the settings that differ, and a verdict in plain
words) or deleted; and sweeps, one queued run per value of one setting. One
button runs the tutorial's learning-rate exercise on the bundled demo data."""

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
from finetune.runs import disk
from finetune.runs.disk import CannotDelete
from finetune.runs.folders import METRICS_FILE
from finetune.runs.records import NoSuchRun
from finetune.sources.files import DataError
from finetune.sources.models import ModelError
from finetune.train import config as cfg
from finetune.train.config import ConfigError
from ui.lab import Lab, user_error
from ui.tabs import continuing
from ui.tabs.train_tab import submission
from ui.views import runs_table
from ui.views.runs_table import Filters

POLL_SECONDS = 3.0
EXERCISE_PRESET = "lr-sweep-demo"
INTRO = """### Runs, compared
Click two or more of your runs in the table to see their curves on one plot and a verdict. The tutorial's exercise:
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
    chosen: gr.Dropdown  # the runs compared (or deleted): clicked in the table, or picked here
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
    # Many runs: the table's filters and page, and deleting the chosen runs (after a second press).
    status: gr.Dropdown = None
    data: gr.Dropdown = None
    model: gr.Dropdown = None
    search: gr.Textbox = None
    page: gr.State = None
    page_info: gr.Markdown = None
    newer: gr.Button = None
    older: gr.Button = None
    delete: gr.Button = None
    confirm_row: gr.Row = None
    confirm_text: gr.Markdown = None
    confirm: gr.Button = None
    keep: gr.Button = None

    @property
    def filters(self) -> list:
        """The inputs Filters.read takes, in its order."""
        return [self.status, self.data, self.model, self.search, self.page]


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
    with gr.Row(equal_height=True):
        status = gr.Dropdown([("any status", "")], value="", label="Status", scale=1, min_width=150,
                             elem_id="runs-status")
        data = gr.Dropdown([("any data", "")], value="", label="Data", scale=1, min_width=150, elem_id="runs-data")
        model = gr.Dropdown([("any model", "")], value="", label="Model", scale=1, min_width=150,
                            elem_id="runs-model")
        search = gr.Textbox(label="Search", placeholder="run, label, setting, note…", scale=2, min_width=200,
                            max_length=200, elem_id="runs-search")
    table = gr.Dataframe(label="Your runs, newest first (click a row to compare it; from: the run each continues "
                               "from, and that run's own)", interactive=False, wrap=True, max_height=480,
                         elem_id="runs-table")
    with gr.Row(equal_height=True):
        newer = gr.Button("◀ Newer", scale=0, min_width=100, elem_id="runs-newer")
        page_info = gr.Markdown("", elem_id="runs-page")
        older = gr.Button("Older ▶", scale=0, min_width=100, elem_id="runs-older")
    with gr.Row(equal_height=True):
        continue_run = gr.Dropdown([], label="Continue from this run", scale=2, min_width=220,
                                   elem_id="experiments-continue-run",
                                   info="A finished run of yours: its model becomes the next run's Model setting.")
        continue_which = gr.Radio(continuing.CHOICES, value="best", label="Its", info=continuing.HELP, scale=2,
                                  min_width=220, elem_id="experiments-continue-which")
        continue_button = gr.Button("Continue from this run", scale=1, min_width=160, elem_id="experiments-continue")
    continue_note = gr.Markdown("", elem_id="experiments-continue-note", elem_classes="lab-muted")
    with gr.Row(equal_height=True):
        chosen = gr.Dropdown([], value=[], multiselect=True, label="Compare these runs", scale=4,
                             info="Click rows of the table, or pick runs of the page here.", elem_id="compare-runs")
        refresh = gr.Button("Refresh", scale=0, min_width=100)
        delete = gr.Button("Delete these runs…", scale=0, min_width=160, variant="stop", elem_id="delete-runs")
    with gr.Row(visible=False, equal_height=True) as confirm_row:
        confirm_text = gr.Markdown("", elem_id="delete-runs-question")
        confirm = gr.Button("Yes, delete them", scale=0, min_width=160, variant="stop", elem_id="delete-runs-confirm")
        keep = gr.Button("Keep them", scale=0, min_width=120, elem_id="delete-runs-keep")
    verdict = gr.Markdown("", elem_id="verdict")
    with gr.Row(equal_height=True):
        loss = gr.Plot(show_label=False, elem_id="runs-loss", min_width=320)
        eval_loss = gr.Plot(show_label=False, elem_id="runs-eval-loss", min_width=320)
    learning_rate = gr.Plot(show_label=False, elem_id="runs-lr")
    diff = gr.Dataframe(label="Settings that differ", interactive=False, wrap=True)
    return ExperimentsTab(exercise, setting, values, start, table, chosen, refresh, loss, eval_loss, learning_rate,
                          diff, verdict, gr.Timer(POLL_SECONDS, active=False), gr.State(None), continue_run,
                          continue_which, continue_button, continue_note, status=status, data=data, model=model,
                          search=search, page=gr.State(1), page_info=page_info, newer=newer, older=older,
                          delete=delete, confirm_row=confirm_row, confirm_text=confirm_text, confirm=confirm,
                          keep=keep)


def _choices(records, offered: set[str]) -> list[tuple[str, str]]:
    """The runs one may pick to compare: those of the page shown and those picked already."""
    labels = run_labels(records)
    return [(f"{labels[r.id]} · {r.status}", r.id) for r in records if not r.unreadable and r.id in offered]


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


def views(lab: Lab, tab: ExperimentsTab, owner: str, chosen: list[str] | None, seen=None,
          filters: Filters | None = None) -> dict:
    """Everything the tab shows; `chosen` None (or empty) picks the default selection;
    `filters` the table's page. A timer's tick passes `seen`: while the caller's runs
    wait in the queue nothing changes, and the figures (70 ms of server CPU each time
    here) are not redrawn."""
    filters = filters or Filters()
    records = lab.scheduler.list(owner)
    known = {r.id for r in records}
    chosen = [c for c in chosen if c in known] if chosen else []
    chosen = chosen or _default_selection(records)
    active = any(not r.finished for r in records)
    key = progress_key(records, chosen) + (filters,)
    if key == seen:
        return {tab.timer: gr.Timer(active=active), tab.seen: key}
    compared = compare_runs(lab, owner, chosen)
    rows = experiments.runs_rows(records)
    page = runs_table.page_of(rows, filters)
    return {tab.seen: key, **_table_views(tab, records, rows, page, filters),
            tab.chosen: gr.update(choices=_choices(records, {row["run"] for row in page.rows} | set(chosen)),
                                  value=chosen),
            tab.continue_run: gr.update(choices=_finished_choices(records)), tab.loss: compared["loss"],
            tab.eval_loss: compared["eval_loss"], tab.learning_rate: compared["learning_rate"],
            tab.diff: compared["diff"], tab.verdict: compared["verdict"], tab.timer: gr.Timer(active=active)}


def _table_views(tab: ExperimentsTab, records, rows: list[dict], page: runs_table.Page, filters: Filters) -> dict:
    """The page of the table (the disk column measured for its runs alone), where it is, and the filters'
    choices: the values the caller's runs have."""
    by_id = {r.id: r for r in records}
    shown = [runs_table.with_disk(row, by_id[row["run"]]) for row in page.rows]
    columns = list(runs_table.with_disk(rows[0], records[0])) if rows else ["run", "status"]
    return {tab.table: pd.DataFrame(shown, columns=columns) if records else pd.DataFrame(),
            tab.page: page.number, tab.page_info: page.text,
            tab.status: gr.update(choices=runs_table.filter_choices(rows, "status", "any status", filters.status)),
            tab.data: gr.update(choices=runs_table.filter_choices(rows, "data", "any data", filters.data)),
            tab.model: gr.update(choices=runs_table.filter_choices(rows, "model", "any model", filters.model))}


def delete_question(lab: Lab, owner: str, chosen: list[str] | None) -> dict:
    """What the first press of Delete asks: which runs, and the disk they free."""
    if not chosen:
        raise user_error("Choose the runs to delete first: click their rows in the table.")
    try:
        found = [lab.scheduler.record(run_id, owner) for run_id in chosen]
    except NoSuchRun as err:
        raise user_error(err) from None
    size = sum(disk.folder_bytes(r.folder) for r in found)
    names = ", ".join(r.id for r in found)
    return {"text": f"Delete **{len(found)} run{'s' * (len(found) != 1)}** for good ({names}), with their models "
                    f"and checkpoints ({disk.mb_text(size)})?"}


def delete_runs(lab: Lab, owner: str, run_ids) -> dict:
    """The caller's runs deleted whole (or none, with the one line why): {deleted, freed_mb}."""
    try:
        return lab.scheduler.delete(run_ids, owner)
    except (NoSuchRun, CannotDelete, ValueError) as err:
        raise user_error(err) from None


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
               tab.verdict, tab.timer, tab.seen, tab.page, tab.page_info, tab.status, tab.data, tab.model]
    shown = [tab.chosen, *tab.filters, owner_key]  # what a redraw reads: the runs picked, the table's page, whose

    def show(chosen=None, status=None, data_=None, model=None, search=None, page=None, owner_key=None,
             request: gr.Request = None):
        filters = Filters.read(status, data_, model, search, page)
        return views(lab, tab, lab.owner(owner_key, request), chosen, filters=filters)

    def tick(chosen=None, seen=None, status=None, data_=None, model=None, search=None, page=None, owner_key=None,
             request: gr.Request = None):
        filters = Filters.read(status, data_, model, search, page)
        return views(lab, tab, lab.owner(owner_key, request), chosen, seen, filters)

    def first_page(chosen=None, status=None, data_=None, model=None, search=None, page=None, owner_key=None,
                   request: gr.Request = None):
        return show(chosen, status, data_, model, search, 1, owner_key, request)

    def turn(step: int):
        def handler(chosen=None, status=None, data_=None, model=None, search=None, page=None, owner_key=None,
                    request: gr.Request = None):
            return show(chosen, status, data_, model, search, max(1, (page or 1) + step), owner_key, request)
        return handler

    def pick(chosen=None, status=None, data_=None, model=None, search=None, page=None, owner_key=None,
             evt: gr.SelectData = None, request: gr.Request = None):
        run_id = evt.row_value[0] if evt is not None and evt.row_value else None
        picked = runs_table.toggled(chosen, run_id) if isinstance(run_id, str) else chosen
        return show(picked, status, data_, model, search, page, owner_key, request)

    def list_runs(owner_key: str | None = None, request: gr.Request = None) -> list[dict]:
        """Your runs, newest first, one row each (what the Experiments table shows), with the disk each uses."""
        found = lab.scheduler.list(lab.owner(owner_key, request))
        return [runs_table.with_disk(row, record) for row, record in zip(experiments.runs_rows(found), found)]

    def delete_runs_api(run_ids: list[str], owner_key: str | None = None, request: gr.Request = None) -> dict:
        """Delete runs of yours, whole: their folders, models and checkpoints (all the runs named, or
        none). A run waiting or training is refused in one line: cancel or stop it first."""
        return delete_runs(lab, lab.owner(owner_key, request), run_ids)

    def ask(chosen=None, owner_key=None, request: gr.Request = None):
        question = delete_question(lab, lab.owner(owner_key, request), chosen)
        return {tab.confirm_row: gr.Row(visible=True), tab.confirm_text: question["text"]}

    def confirmed(chosen=None, status=None, data_=None, model=None, search=None, page=None, owner_key=None,
                  request: gr.Request = None):
        deleted = delete_runs(lab, lab.owner(owner_key, request), chosen)
        gr.Info(f"Deleted {len(deleted['deleted'])} run{'s' * (len(deleted['deleted']) != 1)}: "
                f"{deleted['freed_mb']:,.0f} MB freed.")
        return {**show(None, status, data_, model, search, page, owner_key, request),
                tab.confirm_row: gr.Row(visible=False)}

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

    private = dict(outputs=outputs, api_visibility="private")
    redraw = dict(fn=show, inputs=[gr.State(None), *tab.filters, owner_key], **private)
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
    gr.api(delete_runs_api, api_name="delete_runs")
    tab.refresh.click(show, shown, **private)
    for widget in (tab.status, tab.data, tab.model):
        widget.input(first_page, shown, **private)
    tab.search.submit(first_page, shown, **private)
    tab.newer.click(turn(-1), shown, **private)
    tab.older.click(turn(+1), shown, **private)
    tab.table.select(pick, shown, **private)
    tab.delete.click(ask, [tab.chosen, owner_key], [tab.confirm_row, tab.confirm_text], api_visibility="private")
    tab.confirm.click(confirmed, shown, [*outputs, tab.confirm_row], api_visibility="private")
    tab.keep.click(lambda: gr.Row(visible=False), None, tab.confirm_row, api_visibility="private")
    tab.timer.tick(tick, [tab.chosen, tab.seen, *tab.filters, owner_key], outputs, api_visibility="private",
                   show_progress="hidden", concurrency_limit=None)
    tab_block.select(show, shown, **private)
    continuing.wire_button(lab, tab.continue_button, tab.continue_run, tab.continue_which, tab.continue_note,
                           settings["model"], owner_key)
