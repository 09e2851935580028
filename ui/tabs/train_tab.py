"""Tab 3, Train: start (or queue) a run, stop or cancel it, and follow it
through a gr.Timer that polls the run's snapshot.

Runs train one at a time in the engine's background thread; a start while
another trains queues the run (the scheduler's rules: first in, first out,
bounded per person and in all). A stopped or interrupted run shows Resume: it
is queued again, under the same rules, to go on from its last complete
checkpoint. The timer runs only while the caller's run is waiting or training; a page load re-attaches to the caller's latest run, so a
refresh or a second tab loses nothing. Every handler acts as its caller (the
owner key) and sees only the caller's runs in public mode."""

from __future__ import annotations

from dataclasses import dataclass, replace

import gradio as gr

from finetune.data import dataset
from finetune.experiments.scheduler import QueueFull, Submission
from finetune.runs import resume
from finetune.runs.records import NoSuchRun, read_config
from finetune.sources.files import DataError
from finetune.sources.models import ModelError
from finetune.train import config as cfg
from ui.lab import Lab, Shown, user_error
from ui.tabs import compare_tab, continuing
from ui.tabs.data_tab import DataTab, dataset_source
from ui.views import badges, fields, plots
from ui.views.train_views import (
    LIVE_POLL_SECONDS,
    change_key,
    poll_interval,
    queue_message,
    stats_markdown,
    status_dict,
    status_markdown,
)


@dataclass
class TrainTab:
    start: gr.Button
    stop: gr.Button
    refresh: gr.Button
    resume: gr.Button  # shown for a stopped or interrupted run with a checkpoint to go on from
    resume_note: gr.Markdown  # why a stopped or interrupted run cannot be resumed
    status: gr.Markdown
    stats: gr.Markdown
    diagnoses: gr.HTML  # failure-mode badges from the run's live (then final) findings
    loss: gr.Plot
    learning_rate: gr.Plot
    details: gr.JSON
    timer: gr.Timer
    seen: gr.State  # change_key of what this page last drew
    # A preference run's signals, one figure per plots.signal_plots() name (rewards, accuracy,
    # log-probabilities): shown for a run whose objective logs that figure's signals, hidden otherwise.
    signals: dict = None


def build(lab: Lab) -> TrainTab:
    with gr.Row():
        start = gr.Button("Start training", variant="primary", scale=2, elem_id="start-training")
        stop = gr.Button("Stop", variant="stop", scale=1, interactive=False, elem_id="stop-training")
        refresh = gr.Button("Refresh", variant="secondary", scale=0, min_width=100)
        resume_button = gr.Button("Resume", variant="primary", scale=1, visible=False, elem_id="resume-training")
    resume_note = gr.Markdown("", elem_classes="lab-muted", elem_id="resume-note")
    status = gr.Markdown(status_markdown(None), elem_id="run-status")
    stats = gr.Markdown("")
    diagnoses = gr.HTML(badges.diagnoses_html(()), elem_id="train-diagnoses")
    with gr.Row(equal_height=True):
        loss = gr.Plot(plots.loss_figure([], waiting="start a run to see the loss"), show_label=False,
                       elem_id="loss-plot", min_width=320)
        learning_rate = gr.Plot(plots.learning_rate_figure(waiting="start a run to see the learning rate"),
                                show_label=False, elem_id="lr-plot", min_width=320)
    with gr.Row(equal_height=True):
        signals = {name: gr.Plot(show_label=False, visible=False, elem_id=f"signal-{name}-plot", min_width=320)
                   for name in plots.signal_plots()}
    gr.Markdown("The before/after answers to the held-out prompts fill in on the **Compare** tab: *before* as soon "
                "as the model is loaded, *after* when training ends.", elem_classes="lab-muted")
    with gr.Accordion("Run status (JSON)", open=False):
        details = gr.JSON(label="Run status")
    return TrainTab(start, stop, refresh, resume_button, resume_note, status, stats, diagnoses, loss, learning_rate, details,
                    gr.Timer(LIVE_POLL_SECONDS, active=False), gr.State(None), signals)


def submission(lab: Lab, owner: str, prepared, source, file, bundled_dataset, hub_dataset, hub_token,
               allow_out_of_range, **settings) -> Submission:
    """Check everything a run needs now, so mistakes are errors here rather than a
    failed run later. `prepared`: this session's data from its last "Load and
    inspect", used when the data settings are the same."""
    token = hub_token or None
    data, name = dataset_source(lab, owner, source, file, bundled_dataset, hub_dataset)
    try:
        checked = fields.build_config({**settings, "data": data}, allow_out_of_range)
        for spec in (checked.config.model, checked.config.judge):  # public: only one's own runs' models
            continuing.check_own_model(lab, owner, spec)
        model = lab.resolve(checked.config.model)
        if prepared is None or prepared.key != checked.config.data_key():
            with lab.tokenizer(checked.config.model, token) as tokenizer:
                prepared = dataset.prepare(checked.config, tokenizer, token=token, limits=lab.limits)
    except (cfg.ConfigError, DataError, ModelError) as err:
        raise user_error(err, token) from None
    return Submission(checked, prepared=prepared, source=model, token=token, data_name=name,
                      allowed_model_roots=lab.allowed_model_roots)


def start_training(lab: Lab, owner: str, prepared, source, file, bundled_dataset, hub_dataset, hub_token,
                   allow_out_of_range, **settings) -> dict:
    wanted = submission(lab, owner, prepared, source, file, bundled_dataset, hub_dataset, hub_token,
                        allow_out_of_range, **settings)
    try:
        run = lab.scheduler.submit(wanted, owner)
    except QueueFull as err:
        raise user_error(err) from None
    return status_dict(shown_snapshot(lab, Shown(run.snapshot(), run.folder.root, run)))


def find(lab: Lab, owner: str, run_id: str | None) -> Shown | None:
    try:
        return lab.run(owner, (run_id or "").strip() or None)
    except NoSuchRun as err:
        raise user_error(err) from None


def stop_or_cancel(lab: Lab, owner: str, run_id: str | None) -> dict:
    """Stop the caller's training run after the current step, or take a waiting one out of the queue."""
    shown = find(lab, owner, run_id)
    if shown is None or shown.live is None or shown.snapshot.finished:
        raise user_error("No run of yours is waiting or training.")
    try:
        run = lab.scheduler.cancel(shown.live.run_id, owner)
    except (NoSuchRun, ValueError) as err:
        raise user_error(err) from None
    return status_dict(run.snapshot(), stop_requested=run.stop_requested)


def resume_training(lab: Lab, owner: str, run_id: str | None, hub_token: str | None = None) -> dict:
    """Queue the caller's stopped or interrupted run (their latest by default) again, to go
    on from its last complete checkpoint; one line saying why not, and nothing changed, if it cannot."""
    shown = find(lab, owner, run_id)
    if shown is None:
        raise user_error("You have no run to resume.")
    try:
        run = lab.scheduler.resume(shown.snapshot.run_id, owner, token=hub_token or None,
                                   allowed_model_roots=lab.allowed_model_roots)
    except (resume.CannotResume, QueueFull, NoSuchRun, ModelError) as err:
        raise user_error(err, hub_token) from None
    return status_dict(shown_snapshot(lab, Shown(run.snapshot(), run.folder.root, run)))


NO_CHECKPOINT_NOTE = ("This run has no complete checkpoint, so it cannot be resumed: a run stopped with **Stop** "
                      "saves one where it stops; a run interrupted by a crash or a restart, or failed, has them "
                      "only if **save_steps** was set (Hyperparameters tab, run settings).")


def resume_views(tab: TrainTab, shown: Shown | None) -> dict:
    """The Resume button, labelled with the step it goes on from, for a run that can be
    resumed; for one that could but has no checkpoint, a line saying why not."""
    snap = shown.snapshot if shown else None
    offered = snap is not None and resume.offered(snap.status, snap.error)
    step = resume.checkpoint_step(shown.folder) if offered else None
    return {tab.resume: gr.update(visible=step is not None, value=f"Resume from step {step}"),
            tab.resume_note: NO_CHECKPOINT_NOTE if offered and step is None else ""}


def shown_snapshot(lab: Lab, shown: Shown | None):
    """The snapshot to show, with a waiting run's place in the queue as its message."""
    if shown is None or shown.live is None or shown.snapshot.status != "queued":
        return shown.snapshot if shown else None
    position = lab.scheduler.position(shown.live)
    if not position:
        return shown.snapshot
    scheduler = lab.scheduler
    return replace(shown.snapshot, message=queue_message(position, scheduler.wait_estimate(shown.live),
                                                         len(scheduler.training()), scheduler.admission.limit))


def training_status(lab: Lab, owner: str, run_id: str | None) -> dict:
    shown = find(lab, owner, run_id)
    return status_dict(shown_snapshot(lab, shown), shown.stop_requested if shown else False,
                       busy=lab.scheduler.busy_with_another(owner))


def run_objective(shown: Shown | None) -> str:
    """What the shown run optimises: its live config's objective, or its config.json's."""
    if shown is None:
        return "sft"
    if shown.live is not None:
        return shown.live.config.objective
    return read_config(shown.folder).get("objective") or "sft"


def signal_views(tab: TrainTab, history, objective: str, waiting: str) -> dict:
    """The preference signals' figures the objective logs, the others hidden (all, for supervised runs)."""
    figures = plots.signal_figures(history, objective, waiting)
    return {plot: gr.update(value=figures[name], visible=True) if name in figures else gr.update(visible=False)
            for name, plot in tab.signals.items()}


def views(lab: Lab, tab: TrainTab, compare, owner: str, seen, picked: str = compare_tab.LATEST,
          force: bool = False) -> dict:
    """What the train and compare views show for the caller; the plots and tables
    only when they changed since `seen` (the change_key this page drew last). The
    Compare tab follows along while its picker is on the latest run."""
    shown = lab.run(owner)
    snap = shown_snapshot(lab, shown)
    stopping = bool(shown and shown.stop_requested)
    busy = lab.scheduler.busy_with_another(owner)
    key = change_key(snap, stopping) + (busy, snap.message if snap else "")
    waiting_or_training = snap is not None and not snap.finished
    interval = poll_interval(snap, busy)
    objective = run_objective(shown)
    visible = {tab.status: status_markdown(snap, stopping, busy), tab.stats: stats_markdown(snap, objective),
               tab.timer: gr.Timer(interval or LIVE_POLL_SECONDS, active=interval is not None), tab.seen: key}
    if key == seen and not force:
        return visible
    history = snap.history if snap else ()
    waiting = snap.message if snap else "start a run to see the loss"
    planned = (snap.plan.curve_steps, snap.plan.curve_lr) if snap and snap.plan else ((), ())
    best = snap.best_checkpoint if snap else None
    return {**visible, tab.loss: plots.loss_figure(history, waiting=waiting, best=best, objective=objective),
            tab.learning_rate: plots.learning_rate_figure(history, planned, waiting=waiting),
            **signal_views(tab, history, objective, waiting),
            tab.details: status_dict(snap, stopping, busy), tab.diagnoses: train_diagnoses(snap),
            **resume_views(tab, shown),
            **compare_tab.held_out_views(compare, snap, compare_tab.run_choices(lab, owner), picked),
            tab.stop: gr.update(interactive=waiting_or_training,
                                value="Cancel" if snap is not None and snap.status == "queued" else "Stop")}


def train_diagnoses(snap) -> str:
    """The badges of the Train tab: the live checks while training, all of them once the run ended."""
    if snap is None:
        return badges.diagnoses_html(())
    return badges.diagnoses_html(snap.diagnoses, final=snap.finished and bool(snap.diagnoses))


def wire(lab: Lab, tab: TrainTab, data: DataTab, params, settings: dict, compare, owner_key,
         demo: gr.Blocks) -> None:
    outputs = [tab.status, tab.stats, tab.diagnoses, tab.loss, tab.learning_rate, *tab.signals.values(), tab.details,
               *compare_tab.held_out_outputs(compare),
               tab.stop, tab.resume, tab.resume_note, tab.timer, tab.seen]
    inputs = {"prepared": data.prepared, **data.source_inputs(), "allow_out_of_range": params.allow, **settings,
              "owner_key": owner_key}

    # `file=None` in the signature makes the file optional for API clients using another
    # source; `owner_key=None` lets an API client name itself (else its session does).
    def start(prepared, source, file=None, bundled_dataset=None, hub_dataset="", hub_token="",
              allow_out_of_range=False, owner_key=None, request: gr.Request = None, **values):
        owner = lab.owner(owner_key, request)
        return start_training(lab, owner, prepared, source, file, bundled_dataset, hub_dataset, hub_token,
                              allow_out_of_range, **values)

    def stop(run_id=None, owner_key=None, request: gr.Request = None):
        return stop_or_cancel(lab, lab.owner(owner_key, request), run_id)

    def status(run_id=None, owner_key=None, request: gr.Request = None):
        return training_status(lab, lab.owner(owner_key, request), run_id)

    def attach(picked=compare_tab.LATEST, owner_key=None, request: gr.Request = None):
        return views(lab, tab, compare, lab.owner(owner_key, request), None, picked, force=True)

    def tick(seen, picked=compare_tab.LATEST, owner_key=None, request: gr.Request = None):
        return views(lab, tab, compare, lab.owner(owner_key, request), seen, picked)

    def resume_run(run_id=None, owner_key=None, hub_token=None, request: gr.Request = None):
        return resume_training(lab, lab.owner(owner_key, request), run_id, hub_token)

    def cancel_run(run_id: str, owner_key: str | None = None, request: gr.Request = None) -> dict:
        """Take a waiting run of yours out of the queue, or stop it if it is training."""
        return stop_or_cancel(lab, lab.owner(owner_key, request), run_id)

    hidden = gr.Textbox("", visible=False)  # the API's optional run id; the page acts on the run it shows
    redraw = [compare.run, owner_key]
    tab.start.click(start, inputs_kwargs=inputs, outputs=tab.details, api_name="start_training",
                    concurrency_limit=None).success(attach, redraw, outputs, api_visibility="private")
    tab.stop.click(stop, [hidden, owner_key], tab.details, api_name="stop_training",
                   concurrency_limit=None).success(attach, redraw, outputs, api_visibility="private")
    gr.api(cancel_run, api_name="cancel_run")
    tab.resume.click(resume_run, [hidden, owner_key, data.token], tab.details, api_name="resume_run",
                     concurrency_limit=None).success(attach, redraw, outputs, api_visibility="private")
    tab.refresh.click(status, [hidden, owner_key], tab.details, api_name="training_status",
                      concurrency_limit=None).then(attach, redraw, outputs, api_visibility="private")
    tab.timer.tick(tick, [tab.seen, compare.run, owner_key], outputs, api_visibility="private",
                   show_progress="hidden", concurrency_limit=None)
    demo.load(attach, redraw, outputs, api_visibility="private")
