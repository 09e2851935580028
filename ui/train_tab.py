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
from finetune.plan import learning_rate_curve
from finetune.run import RunBusyError, TrainingRun, active_run
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


def start_training(lab: Lab, source, file, bundled_dataset, hub_dataset, hub_token, allow_out_of_range,
                   **settings) -> dict:
    """Validate everything the run needs here, so mistakes are errors now rather than a failed run later."""
    token = hub_token or None
    busy = active_run()
    if busy is not None:
        snap = busy.snapshot()
        raise user_error(f"A run is already {snap.status} (step {snap.step}/{snap.max_steps}); wait for it to "
                         "finish or stop it first.")
    data, _ = dataset_source(lab, source, file, bundled_dataset, hub_dataset)
    try:
        config = fields.build_config({**settings, "data": data}, allow_out_of_range)
        with lab.tokenizer(config.model, token) as tokenizer:
            prepared = dataset.prepare(config, tokenizer, token=token, limits=lab.limits)
        run = TrainingRun(config, lab.new_output_dir(), prepared=prepared, token=token,
                          allowed_model_roots=lab.allowed_model_roots, allow_out_of_range=allow_out_of_range)
        lab.release_base_model()  # the comparison's copy of the base model: memory the run may need
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


def views(lab: Lab, seen, force: bool = False) -> tuple:
    """Outputs for the train and compare views; gr.skip() where nothing changed since `seen`."""
    run = lab.latest_run()
    snap = run.snapshot() if run else None
    stopping = bool(run and run.stop_requested)
    key = change_key(snap, stopping)
    running = snap is not None and not snap.finished
    cheap = (status_markdown(snap, stopping), stats_markdown(snap))
    timer = gr.Timer(active=running)
    if key == seen and not force:
        return (*cheap, *[gr.skip()] * 8, timer, key)
    history = snap.history if snap else ()
    waiting = snap.message if snap else "start a run to see the loss"
    planned = learning_rate_curve(run.config, snap.max_steps) if snap and snap.max_steps else ((), ())
    rows = list(snap.comparison) if snap else []
    if snap and not rows and run.prepared is not None:
        rows = compare_tab.pending_rows(run.prepared.held_out)
    return (*cheap, plots.loss_figure(history, waiting=waiting),
            plots.learning_rate_figure(history, planned, waiting=waiting), status_dict(snap, stopping),
            compare_tab.comparison_frame(rows), compare_tab.scores_markdown(rows, snap),
            gr.update(interactive=not running), gr.update(interactive=running),
            gr.update(interactive=not running), timer, key)  # free-text compare waits for the run to end


def wire(lab: Lab, tab: TrainTab, data: DataTab, params, settings: dict, compare, demo: gr.Blocks) -> None:
    outputs = [tab.status, tab.stats, tab.loss, tab.learning_rate, tab.details, compare.table, compare.scores,
               tab.start, tab.stop, compare.ask, tab.timer, tab.seen]
    inputs = {**data.source_inputs(), "allow_out_of_range": params.allow,
              **{name: w for name, w in settings.items() if name != "data"}}

    # `file=None` in the signature makes the file optional for API clients using another source.
    def start(source, file=None, bundled_dataset=None, hub_dataset="", hub_token="", allow_out_of_range=False,
              **values):
        return start_training(lab, source, file, bundled_dataset, hub_dataset, hub_token, allow_out_of_range,
                              **values)

    def attach():
        return views(lab, None, force=True)

    def tick(seen):
        return views(lab, seen)

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
