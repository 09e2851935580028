"""report_to: the run's metrics also go to TensorBoard or Trackio, through their
own libraries, offline; what cannot be done is refused in one line before the
run starts."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

from finetune.cli.main import build_parser
from finetune.runs.run import TrainingRun
from finetune.train import loggers
from finetune.train.config import ConfigError, TrainConfig

ROWS = [{"prompt": f"Convert to ISO 8601: March {d}, 2021", "completion": f"2021-03-{d:02d}"} for d in range(1, 29)]


@pytest.fixture
def data_file(write):
    return write("dates.jsonl", "\n".join(json.dumps(r) for r in ROWS))


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "finetune", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env)


def test_report_to_is_a_flag_with_three_choices():
    assert build_parser().parse_args(["train", "--report-to", "tensorboard"]).report_to == "tensorboard"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--report-to", "wandb"])
    assert TrainConfig().report_to == "none"


def test_tensorboard_event_files_in_the_run_folder_hold_the_logged_curve(tiny_model_dir, data_file, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = TrainConfig(model=str(tiny_model_dir), data=str(data_file), learning_rate=3e-3, batch_size=4,
                         max_steps=4, eval_steps=2, held_out=0, validation_fraction=0.15, precision="fp32",
                         general_probe=False, report_to="tensorboard")
    snap = TrainingRun(config, tmp_path / "run", allow_out_of_range=True).start().wait(timeout=300)
    assert snap.status == "completed", snap.error
    events = EventAccumulator(str(tmp_path / "run" / "logs"))
    events.Reload()
    losses = [(h["step"], h["loss"]) for h in snap.history if "loss" in h]
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(s, pytest.approx(v)) for s, v in losses]
    assert [e.step for e in events.Scalars("eval/loss")] == [2, 4]
    # transformers' own callback writes the Trainer's arguments (this machine's paths) as text; not here.
    assert not [tag for tag in events.Tags()["tensors"] if tag.startswith("args")]


TRACKIO_LOGS = textwrap.dedent("""
    import json, sys
    from trackio.sqlite_storage import SQLiteStorage
    print(json.dumps(SQLiteStorage.get_logs(sys.argv[1], sys.argv[2]), default=str))
""")


def test_trackio_logs_the_run_in_its_local_store_without_a_network(tiny_model_dir, data_file, tmp_path):
    store = tmp_path / "trackio"
    # No route out: the hub is offline, and a proxy that does not exist catches any other request.
    env = {**os.environ, "TRACKIO_DIR": str(store), "HF_HUB_OFFLINE": "1", "HTTP_PROXY": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "PYTHONPATH": str(ROOT)}
    env.pop("TRACKIO_SPACE_ID", None)
    out = tmp_path / "runs" / "dates-run"
    result = cli("train", "--data", data_file, "--model", tiny_model_dir, "--output", out, "--max-steps", 3,
                 "--learning-rate", 3e-3, "--allow-out-of-range", "--held-out", 0, "--general-probe", "false",
                 "--report-to", "trackio", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"  # Trackio's notices stay off stdout
    logs = subprocess.run([sys.executable, "-c", TRACKIO_LOGS, loggers.TRACKIO_PROJECT, "dates-run"],
                          capture_output=True, text=True, env=env, timeout=120, check=True)
    logged = [entry for entry in json.loads(logs.stdout) if "train/loss" in entry]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["train/loss"] for e in logged] == pytest.approx([m["loss"] for m in metrics if "loss" in m])
    assert [e["train/global_step"] for e in logged] == [1, 2, 3]


def test_a_logger_that_cannot_log_here_is_refused_before_the_run(tiny_model_dir, data_file, tmp_path, monkeypatch):
    config = TrainConfig(model=str(tiny_model_dir), data=str(data_file), report_to="trackio")
    monkeypatch.setenv("TRACKIO_SPACE_ID", "someone/dashboard")
    with pytest.raises(ConfigError, match=r"^report_to trackio logs to Trackio's local store only; TRACKIO_SPACE_ID"):
        TrainingRun(config, tmp_path / "a", allow_out_of_range=True)
    monkeypatch.delenv("TRACKIO_SPACE_ID")
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"^report_to trackio: the trackio package is not installed"):
        TrainingRun(config, tmp_path / "b", allow_out_of_range=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing written
