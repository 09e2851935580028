"""The UI's pure parts, without a server: widgets built from the config
metadata, how a run's state is shown, and plots of very short runs."""

import pytest

gr = pytest.importorskip("gradio")

from finetune.runs.run import Snapshot  # noqa: E402
from finetune.train import config as cfg  # noqa: E402
from ui.views import fields, plots  # noqa: E402
from ui.views.train_views import LIVE_POLL_SECONDS, WAITING_POLL_SECONDS, poll_interval, status_dict, status_markdown  # noqa: E402


def test_sliders_take_their_ranges_and_help_from_the_config():
    lr = cfg.field_by_name("learning_rate")
    with gr.Blocks():
        slider = fields.widget(lr, 2e-5)
        lora_slider = fields.widget(lr, 2e-4, method="lora")
        wide = fields.widget(lr, 3e-3, allow=True)
        seed = fields.widget(cfg.field_by_name("seed"), 42)
        method = fields.widget(cfg.field_by_name("method"), "full")
    assert (slider.minimum, slider.maximum, slider.step) == (lr.metadata["min"], lr.metadata["max"], lr.metadata["step"])
    assert "10-100x smaller than pre-training; start at 2e-5" in slider.info
    assert (lora_slider.minimum, lora_slider.maximum) == (lr.metadata["lora_min"], lr.metadata["lora_max"])
    assert (wide.minimum, wide.maximum) == (lr.metadata["hard_min"], lr.metadata["hard_max"])
    assert isinstance(seed, gr.Number)  # two billion positions are no slider
    assert isinstance(method, gr.Dropdown) and method.choices == [(c, c) for c in ("full", "lora", "qlora")]


def test_every_setting_gets_the_widget_its_metadata_asks_for():
    with gr.Blocks():
        made = {f.name: fields.widget(f, f.default) for f in cfg.fields()}
    for f in cfg.fields():
        w = made[f.name]
        if cfg.choices(f) is not None:
            assert isinstance(w, gr.Dropdown) and [c[0] for c in w.choices] == list(cfg.choices(f)), f.name
        elif isinstance(f.default, bool):
            assert isinstance(w, gr.Checkbox), f.name
        elif fields.is_number(f):
            assert (w.minimum, w.maximum) == cfg.recommended_range(f, "full"), f.name
        else:
            assert isinstance(w, gr.Textbox), f.name
        assert w.value == f.default and w.label == fields.label(f)


def test_switching_off_the_switch_pulls_values_back_into_range():
    update = fields.range_update(cfg.field_by_name("learning_rate"), 3e-3, "full", allow=False)
    assert update["value"] == cfg.field_by_name("learning_rate").metadata["max"]


def test_presets_keep_the_dataset_choice():
    current = {f.name: f.default for f in cfg.fields()}
    values = fields.preset_values("classic", current)
    assert values["learning_rate"] == 2e-5 and values["batch_size"] == 4 and values["grad_accum"] == 8
    assert not set(fields.SOURCE_FIELDS) & set(values)


def test_a_failed_run_shows_its_error_never_done():
    snap = Snapshot(run_id="r", status="failed", message="out of memory: lower the batch size (now 32)",
                    error="out of memory: lower the batch size (now 32)", model="m")
    text = status_markdown(snap)
    assert "failed" in text and "lower the batch size (now 32)" in text
    assert "completed" not in text and "done" not in text.lower()
    assert status_dict(snap)["error"] == snap.error


def test_a_one_step_run_is_drawn_with_markers():
    history = ({"step": 1, "loss": 2.0, "learning_rate": 1e-5, "time": 0.0}, {"step": 1, "eval_loss": 2.1, "time": 0})
    loss = plots.loss_figure(history)
    assert [t.name for t in loss.data] == ["training", "validation"]
    assert all("markers" in t.mode for t in loss.data)
    assert "markers" in plots.learning_rate_figure(history).data[0].mode


def test_no_points_yet_shows_why_not_an_empty_axis():
    figure = plots.loss_figure((), waiting="loading the model")
    assert not figure.data and figure.layout.annotations[0].text == "loading the model"


def test_a_page_polls_often_only_while_its_own_run_trains():
    """Thirty open pages must not spend the server's CPU asking about runs that
    are not theirs: fast polls for the caller's live run, slow ones while it
    waits or another person's run holds the trainer, none when nothing can change."""
    training, queued = Snapshot(run_id="r", status="training"), Snapshot(run_id="r", status="queued")
    done = Snapshot(run_id="r", status="completed")
    assert poll_interval(training, busy=False) == LIVE_POLL_SECONDS
    assert poll_interval(queued, busy=True) == WAITING_POLL_SECONDS > LIVE_POLL_SECONDS
    assert poll_interval(None, busy=True) == poll_interval(done, busy=True) == WAITING_POLL_SECONDS
    assert poll_interval(None, busy=False) is None and poll_interval(done, busy=False) is None


def test_the_experiments_tab_redraws_its_figures_only_when_a_run_moved(tmp_path):
    """Its timer ticks every few seconds for each student with a run waiting or
    training; a tick that finds nothing new must not redraw three figures."""
    from fake_runs import history_for, make_run

    from finetune.sources.files import Limits
    from ui.lab import Lab
    from ui.tabs import experiments_tab

    lab = Lab("default", tmp_path / "runs", None, Limits())
    make_run(lab.output_root, "done", 2e-5, created_at=1.0)
    live = make_run(lab.output_root, "live", 5e-5, created_at=2.0, status="training", history=history_for(5e-5)[:5])
    with gr.Blocks():
        tab = experiments_tab.build(lab)
    first = experiments_tab.views(lab, tab, "local", None)
    assert tab.loss in first and first[tab.timer].active  # a run is training: keep ticking
    quiet = experiments_tab.views(lab, tab, "local", None, seen=first[tab.seen])
    assert set(quiet) == {tab.timer, tab.seen} and quiet[tab.timer].active
    with (live / "metrics.jsonl").open("a") as log:
        log.write('{"step": 25, "epoch": 0.5, "loss": 1.9, "time": 25.0}\n')
    moved = experiments_tab.views(lab, tab, "local", None, seen=first[tab.seen])
    assert tab.loss in moved and len(moved[tab.loss].data) == 2  # both runs' curves, redrawn
