"""Tab 3, Train: start and stop a run, which trains in the engine's background
thread, and follow it through a gr.Timer that polls the run's snapshot.

The timer runs only while a run is active; a page load re-attaches to the
latest run (running or finished), so a refresh or a second tab loses nothing.
The engine's one-run slot is what refuses a second start: the start handler
returns as soon as the thread is running, so Gradio's queue cannot."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from finetune import config as cfg
from finetune import dataset
from finetune.files import DataError
from finetune.models import ModelError
from finetune.run import RunBusyError, TrainingRun, active_run, ensure_idle
from ui import compare_tab, fields, plots
from ui.data_tab import DataTab, dataset_source
from ui.lab import Lab, user_error
from ui.train_views import change_key, stats_markdown, status_dict, status_markdown

POLL_SECONDS = 1.5


@dataclass
class TrainTab:
    start: gr.Button
    stop: gr.Button
    refresh: gr.Button
    status: gr.Markdown
    stats: gr.Markdown
    loss: gr.Plot
    learning_rate: gr.Plot
    details: gr.JSON
    timer: gr.Timer
    seen: gr.State  # change_key of what this page last drew


def build(lab: Lab) -> TrainTab:
    with gr.Row():
        start = gr.Button("Start training", variant="primary", scale=2, elem_id="start-training")
        stop = gr.Button("Stop", variant="stop", scale=1, interactive=False, elem_id="stop-training")
        refresh = gr.Button("Refresh", variant="secondary", scale=0, min_width=100)
    status = gr.Markdown(status_markdown(None), elem_id="run-status")
    stats = gr.Markdown("")
    with gr.Row(equal_height=True):
        loss = gr.Plot(plots.loss_figure([], waiting="start a run to see the loss"), show_label=False,
                       elem_id="loss-plot", min_width=320)
        learning_rate = gr.Plot(plots.learning_rate_figure(waiting="start a run to see the learning rate"),
                                show_label=False, elem_id="lr-plot", min_width=320)
    gr.Markdown("The before/after answers to the held-out prompts fill in on the **Compare** tab: *before* as soon "
                "as the model is loaded, *after* when training ends.", elem_classes="lab-muted")
    with gr.Accordion("Run status (JSON)", open=False):
        details = gr.JSON(label="Run status")
    return TrainTab(start, stop, refresh, status, stats, loss, learning_rate, details,
                    gr.Timer(POLL_SECONDS, active=False), gr.State(None))


def start_training(lab: Lab, prepared, source, file, bundled_dataset, hub_dataset, hub_token, allow_out_of_range,
                   **settings) -> dict:
    """Validate everything the run needs here, so mistakes are errors now rather
    than a failed run later. `prepared`: this session's data from its last
    "Load and inspect", used when the data settings are the same."""
    token = hub_token or None
    data, _ = dataset_source(lab, source, file, bundled_dataset, hub_dataset)
    try:
        ensure_idle()  # before the data is prepared: a busy trainer costs nothing
        checked = fields.build_config({**settings, "data": data}, allow_out_of_range)
        model = lab.resolve(checked.config.model)
        if prepared is None or prepared.key != checked.config.data_key():
            with lab.tokenizer(checked.config.model, token) as tokenizer:
                prepared = dataset.prepare(checked.config, tokenizer, token=token, limits=lab.limits)
        run = TrainingRun(checked, lab.new_output_dir(), prepared=prepared, token=token, source=model)
        lab.release_base_model()  # the free-text question's copy of the base model: memory the run may need
        run.start()
    except (cfg.ConfigError, DataError, ModelError, RunBusyError) as err:
        raise user_error(err, token) from None
    lab.remember(run)
    return status_dict(run.snapshot())


def stop_training(lab: Lab) -> dict:
    run = active_run()
    if run is None:
        raise user_error("No run is training.")
    run.stop()
    return status_dict(run.snapshot(), stop_requested=True)


def views(lab: Lab, tab: TrainTab, compare, seen, force: bool = False) -> dict:
    """What the train and compare views show; the plots and tables only when
    they changed since `seen` (the change_key this page drew last)."""
    run = lab.latest_run()
    snap = run.snapshot() if run else None
    stopping = bool(run and run.stop_requested)
    key = change_key(snap, stopping)
    running = snap is not None and not snap.finished
    shown = {tab.status: status_markdown(snap, stopping), tab.stats: stats_markdown(snap),
             tab.timer: gr.Timer(active=running), tab.seen: key}
    if key == seen and not force:
        return shown
    history = snap.history if snap else ()
    waiting = snap.message if snap else "start a run to see the loss"
    planned = (snap.plan.curve_steps, snap.plan.curve_lr) if snap and snap.plan else ((), ())
    rows = list(snap.comparison) if snap else []
    return {**shown, tab.loss: plots.loss_figure(history, waiting=waiting),
            tab.learning_rate: plots.learning_rate_figure(history, planned, waiting=waiting),
            tab.details: status_dict(snap, stopping), compare.table: compare_tab.comparison_frame(rows),
            compare.scores: compare_tab.scores_markdown(rows, snap), tab.start: gr.update(interactive=not running),
            tab.stop: gr.update(interactive=running),
            compare.ask: gr.update(interactive=not running)}  # a free-text question waits for the run to end


def wire(lab: Lab, tab: TrainTab, data: DataTab, params, settings: dict, compare, demo: gr.Blocks) -> None:
    outputs = [tab.status, tab.stats, tab.loss, tab.learning_rate, tab.details, compare.table, compare.scores,
               tab.start, tab.stop, compare.ask, tab.timer, tab.seen]
    inputs = {"prepared": data.prepared, **data.source_inputs(), "allow_out_of_range": params.allow, **settings}

    # `file=None` in the signature makes the file optional for API clients using another source.
    def start(prepared, source, file=None, bundled_dataset=None, hub_dataset="", hub_token="",
              allow_out_of_range=False, **values):
        return start_training(lab, prepared, source, file, bundled_dataset, hub_dataset, hub_token,
                              allow_out_of_range, **values)

    def attach():
        return views(lab, tab, compare, None, force=True)

    def tick(seen):
        return views(lab, tab, compare, seen)

    tab.start.click(start, inputs_kwargs=inputs, outputs=tab.details, api_name="start_training",
                    concurrency_limit=None).success(attach, None, outputs, api_visibility="private")
    tab.stop.click(lambda: stop_training(lab), None, tab.details, api_name="stop_training",
                   concurrency_limit=None).success(attach, None, outputs, api_visibility="private")
    tab.refresh.click(lambda: status_dict(*_latest(lab)), None, tab.details, api_name="training_status",
                      concurrency_limit=None).then(attach, None, outputs, api_visibility="private")
    tab.timer.tick(tick, tab.seen, outputs, api_visibility="private", show_progress="hidden",
                   concurrency_limit=None)
    demo.load(attach, None, outputs, api_visibility="private")


def _latest(lab: Lab):
    run = lab.latest_run()
    return (run.snapshot(), run.stop_requested) if run else (None, False)
