"""Sweeps: one setting, several values, one run each on the same data, split
and seed, then their comparison; and what a sweep refuses."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEMO_DATA, ROOT
from holds import Holds

from finetune.experiments import sweep
from finetune.experiments.scheduler import Scheduler, Submission
from finetune.runs import records
from finetune.runs.run import active_run
from finetune.train import config as cfg


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "finetune", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_a_sweep_of_three_values_gives_three_comparable_runs_and_a_verdict(tiny_model_dir, tmp_path):
    result = cli("sweep", "--data", DEMO_DATA, "--model", tiny_model_dir, "--sweep", "learning_rate=1e-3,3e-3,1e-2",
                 "--max-steps", 6, "--eval-steps", 2, "--batch-size", 4, "--grad-accum", 1, "--max-new-tokens", 16,
                 "--allow-out-of-range", "--output", tmp_path)
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in progress] == ["[1/3] lr=0.001", "[2/3] lr=0.003", "[3/3] lr=0.01"]
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("sweep-")]
    found = json.loads((folder / "sweep.json").read_text())
    assert found["setting"] == "learning_rate" and found["values"] == [1e-3, 3e-3, 1e-2]
    assert "Lowest validation loss" in found["verdict"]["text"] and found["verdict"]["text"] in result.stdout
    # Is the winner's lead bigger than the noise? Every run kept its validation examples' losses (the same
    # examples: same data, split and seed), and answered the same held-out prompts.
    margin, held_out = found["verdict"]["lowest_margin"], found["verdict"]["held_out"]
    assert margin["examples"] > 1 and margin["tie"] in (True, False) and margin["low"] < margin["gap"]
    said = "That is a tie with" if margin["tie"] else "It beats the runner-up"
    assert said in found["verdict"]["text"]
    assert held_out["prompts"] == 30 and len(held_out["runs"]) == 3 and "Held-out answers" in found["verdict"]["text"]
    members = [records.read_run(tmp_path, run_id) for run_id in found["runs"]]
    assert [m.label for m in members] == ["lr=0.001", "lr=0.003", "lr=0.01"]
    assert all(m.status == "completed" for m in members)
    # Only the swept setting differs: same data, seed and split (the same held-out prompts).
    configs = [{k: v for k, v in m.config.items() if k not in ("learning_rate", "resolved")} for m in members]
    assert configs[0] == configs[1] == configs[2]
    prompts = [[row["prompt"] for row in m.comparison] for m in members]
    assert prompts[0] == prompts[1] == prompts[2] and len(prompts[0]) == 30
    assert [m.config["resolved"]["train_examples"] for m in members] == [332] * 3
    # The runs list and the comparison report read the same folders.
    listing = cli("runs", "--root", tmp_path)
    assert listing.returncode == 0 and sum("lr=" in line for line in listing.stdout.splitlines()) == 3
    report = tmp_path / "report.html"
    compared = cli("compare-runs", *(m.folder for m in members), "--report", report)
    assert compared.returncode == 0 and "Lowest validation loss" in compared.stdout
    assert "held-out vs best (95% interval)" in compared.stdout and "best (" in compared.stdout
    html = report.read_text()
    assert "lr=0.01" in html and "cdn.plot.ly" not in html
    # The sweep folder holds no absolute path (sweep.json, and its runs' files): it can move.
    assert not [path for path in folder.rglob("*.json") if str(tmp_path) in path.read_text()]
    for member in members:
        written = json.loads((member.folder / "config.json").read_text())
        data_path = json.loads((member.folder / "run.json").read_text())["data_path"]
        assert written["data"] == "demo.jsonl" and not Path(written["model"]).is_absolute()
        assert not Path(data_path).is_absolute() and (member.folder / data_path).resolve() == DEMO_DATA.resolve()


@pytest.mark.parametrize("setting, values, message", [
    ("learning_rate", "2e-5", "needs 2 to 19 values"),
    ("learning_rate", ",".join(f"{n}e-6" for n in range(1, 21)), "needs 2 to 19 values"),
    ("method", "full,lora", "not a numeric setting"),
    ("learning_rate", "1e-5,abc", "expected a number"),
    ("learning_rate", "1e-5,1e-5", "repeat"),
])
def test_what_a_sweep_refuses(setting, values, message):
    with pytest.raises(sweep.SweepError, match=message):
        sweep.parse_values(setting, values)


def test_out_of_range_values_follow_the_allow_switch():
    from finetune.train.config import TrainConfig

    values = sweep.parse_values("learning_rate", "1e-5, 1e-3")
    with pytest.raises(sweep.SweepError, match="lr=0.001: learning_rate: 0.001 is outside the recommended range"):
        sweep.member_settings(TrainConfig(), "learning_rate", values, allow_out_of_range=False)
    allowed = sweep.member_settings(TrainConfig(), "learning_rate", values, allow_out_of_range=True)
    assert [m.config.learning_rate for m in allowed] == values and allowed[1].warnings


def test_a_bad_sweep_on_the_command_line_is_one_line(tmp_path):
    result = cli("sweep", "--data", DEMO_DATA, "--sweep", "learning_rate=2e-5", "--output", tmp_path)
    assert result.returncode == 2
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        "error: a sweep needs 2 to 19 values of learning_rate; got 1"]


def test_a_stopping_server_cancels_what_waits_and_stops_what_trains(tiny_model_dir, tmp_path):
    """Shutdown leaves no training thread behind and no queued run silently lost."""
    holds = Holds()
    scheduler = Scheduler(tmp_path / "runs", callbacks=(holds,))
    settings = cfg.build({"model": str(tiny_model_dir), "data": str(DEMO_DATA), "max_steps": 100000,
                          "eval_steps": 0, "max_new_tokens": 16})
    with holds.at_step(1) as hold:
        first, second = (scheduler.submit(Submission(settings), "local") for _ in range(2))
        hold.wait()  # the first is training (100,000 steps to go), the second waits
    assert first.snapshot().status == "training" and second.snapshot().status == "queued"
    scheduler.shutdown(timeout=600)
    assert first.snapshot().status == "stopped"
    assert second.snapshot().status == "cancelled"
    assert "server stopped" in second.snapshot().message
    assert active_run() is None
