"""Resume from the browser: a stopped run goes on through /resume_run (the Train
tab's Resume button), into the same run and one curve; what cannot be resumed
is one line. The app runs in-process on the tiny model (tests/app_server.py)."""

import json
import time
from types import SimpleNamespace

import pytest
from app_server import running_app
from holds import Holds

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from finetune.runs.records import write_record  # noqa: E402
from finetune.runs.run import Snapshot  # noqa: E402
from ui.lab import Shown  # noqa: E402
from ui.tabs import train_tab  # noqa: E402

RUN = dict(source="upload", learning_rate=3e-3, batch_size=4, grad_accum=1, max_new_tokens=8, general_probe=False,
           held_out=2, max_steps=12, allow_out_of_range=True)
ROWS = [{"prompt": f"Convert to ISO 8601: March {d}, 2021", "completion": f"2021-03-{d:02d}"} for d in range(1, 29)]


def status_until(c: Client, done, timeout: float = 120) -> dict:
    """Poll until `done(status)`: only for what the run is sure to reach (its end)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = c.predict(api_name="/training_status")
        if done(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"waited {timeout} s: {status}")


def test_a_stopped_run_resumes_from_the_page_into_the_same_run(tiny_model_dir, write, tmp_path):
    data = write("dates.jsonl", "\n".join(json.dumps(r) for r in ROWS))
    holds = Holds()
    with running_app(tiny_model_dir, tmp_path / "runs", holds=holds) as url:
        c = Client(url, verbose=False)
        c.predict("full", True, api_name="/set_ranges")
        with holds.at_step(2) as hold:  # held at the end of step 2 while the stop is asked
            started = c.predict(file=handle_file(str(data)), **RUN, api_name="/start_training")
            hold.wait()
            assert c.predict(api_name="/stop_training")["stop_requested"]
        stopped = status_until(c, lambda s: s["finished"])
        assert stopped["status"] == "stopped" and stopped["step"] == 2

        resumed = c.predict(api_name="/resume_run")
        assert resumed["run_id"] == started["run_id"] and not resumed["finished"]
        done = status_until(c, lambda s: s["finished"])
        assert done["status"] == "completed" and done["run_id"] == started["run_id"] and done["step"] == 12
        steps = [h["step"] for h in done["history"] if "loss" in h]
        assert steps == list(range(1, 13)), "one curve: no step twice, none missing"
        assert [r["run"] for r in c.predict(api_name="/list_runs")] == [started["run_id"]]

        with pytest.raises(AppError, match=f"run {started['run_id']} is completed: only a stopped or interrupted"):
            c.predict(run_id=started["run_id"], api_name="/resume_run")
        with pytest.raises(AppError, match="no such run"):
            c.predict(run_id="not-a-run-of-yours", api_name="/resume_run")


def test_the_resume_button_shows_for_a_run_it_can_resume(tmp_path):
    tab = SimpleNamespace(resume="resume-button", resume_note="resume-note")
    stopped = tmp_path / "stopped"
    write_record(stopped, status="stopped")
    (stopped / "checkpoints" / "checkpoint-12").mkdir(parents=True)
    (stopped / "checkpoints" / "checkpoint-12" / "checkpoint-complete").write_text("12")
    (stopped / "checkpoints" / "checkpoint-14").mkdir()  # half-written: never resumed from

    def shown(status, folder, error=None):
        return Shown(Snapshot(run_id=folder.name, status=status, error=error), folder)

    views = train_tab.resume_views(tab, shown("stopped", stopped))
    assert views["resume-button"]["visible"] and views["resume-button"]["value"] == "Resume from step 12"
    assert views["resume-note"] == ""
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    views = train_tab.resume_views(tab, shown("interrupted", crashed))
    assert not views["resume-button"]["visible"] and "save_steps" in views["resume-note"]
    for status, error in (("completed", None), ("failed", "out of memory: lower the batch size"), ("training", None)):
        views = train_tab.resume_views(tab, shown(status, stopped, error))
        assert not views["resume-button"]["visible"] and views["resume-note"] == "", status
    disk_full = "saving the checkpoint at step 12 failed: ...; free disk space, then resume: the last complete " \
                "checkpoint is kept"
    assert train_tab.resume_views(tab, shown("failed", stopped, disk_full))["resume-button"]["visible"]
