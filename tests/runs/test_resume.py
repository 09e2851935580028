"""Resuming a run through the queue: the same folder and record, from its last
complete checkpoint, one curve with no step twice or missing, the learning-rate
schedule going on; and the runs that cannot be resumed saying why, in one line,
with nothing changed."""

import errno
import json
import os
import subprocess
import sys

import pytest
from transformers import Trainer, TrainerCallback

from finetune.experiments import compare
from finetune.experiments.scheduler import Scheduler
from finetune.runs import records, resume
from finetune.runs.records import LOCAL_OWNER, NoSuchRun, owner_hash, write_record
from finetune.runs.resume import CannotResume
from finetune.runs.run import TrainingRun
from finetune.train.config import TrainConfig


def config(model_dir, data, **changes):
    values = dict(model=str(model_dir), data=str(data), learning_rate=3e-3, batch_size=4, grad_accum=1, epochs=2,
                  max_steps=8, eval_steps=2, held_out=2, validation_fraction=0.15, max_new_tokens=8, seed=5,
                  precision="fp32", general_probe=False)
    return TrainConfig(**{**values, **changes})


def logged(history, key):
    return [(h["step"], h[key]) for h in history if key in h]


class StopAtStep(TrainerCallback):
    def __init__(self, holder, step):
        self.holder, self.step = holder, step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            self.holder[0].stop()


def stopped_run(cfg, folder, step):
    holder = []
    run = TrainingRun(cfg, folder, allow_out_of_range=True, callbacks=(StopAtStep(holder, step),))
    holder.append(run)
    return run.start().wait(timeout=300)


def files_of(folder):
    """Every file of a run folder with its bytes: what "nothing changed" compares."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_stopped_run_resumes_through_the_queue_into_one_curve(tiny_model_dir, dates_jsonl, tmp_path):
    cfg = config(tiny_model_dir, dates_jsonl)
    whole = TrainingRun(cfg, tmp_path / "whole", allow_out_of_range=True).start().wait(timeout=300)
    assert whole.status == "completed", whole.error

    root = tmp_path / "runs"
    stopped = stopped_run(cfg, root / "r1", 3)
    assert stopped.status == "stopped" and stopped.step == 3  # asked at the end of step 3: it stops there
    before = json.loads((root / "r1" / "run.json").read_text())
    first_session = json.loads((root / "r1" / "summary.json").read_text())["duration_seconds"]

    scheduler = Scheduler(root)
    run = scheduler.resume("r1", LOCAL_OWNER)
    assert run is scheduler.latest(LOCAL_OWNER)  # what the owner's page shows next
    snap = run.wait(timeout=300)
    assert snap.status == "completed", snap.error
    assert snap.run_id == "r1" and snap.step == 8

    after = json.loads((root / "r1" / "run.json").read_text())
    assert after["id"] == "r1" and after["created_at"] == before["created_at"] and after["status"] == "completed"
    assert after["finished_at"] > before["finished_at"] and after["error"] is None
    # One curve: each step once, none missing, the same losses and learning rates as the run never stopped.
    history = records.load_record(root / "r1").history
    assert [s for s, _ in logged(history, "loss")] == list(range(1, 9))
    assert [s for s, _ in logged(history, "eval_loss")] == [2, 4, 6, 8]
    for key, tolerance in (("loss", 1e-4), ("learning_rate", 1e-9), ("eval_loss", 1e-4)):
        got, want = logged(history, key), logged(whole.history, key)
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=tolerance, abs=1e-6), key
    tokens = [h["tokens_seen"] for h in history if "tokens_seen" in h]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), "the token count goes on from the checkpoint"
    # The Experiments table and the summary see one run of 8 steps, timed over both sessions.
    summary = json.loads((root / "r1" / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["status"] == "completed"
    (row,) = compare.runs_rows(records.list_runs(root))
    assert row["steps"] == 8 and row["status"] == "completed"
    second_session = after["finished_at"] - after["started_at"]
    assert summary["duration_seconds"] == pytest.approx(first_session + second_session, abs=1.5)


def test_the_command_line_resumes_a_stopped_run_from_its_config(tiny_model_dir, dates_jsonl, tmp_path, capsys):
    """As the README says: train --config runs/<id>/config.json --output runs/<id> --resume."""
    from finetune.cli.main import main

    folder = tmp_path / "runs" / "r1"
    assert stopped_run(config(tiny_model_dir, dates_jsonl), folder, 2).status == "stopped"
    assert main(["train", "--config", str(folder / "config.json"), "--output", str(folder), "--resume",
                 "--allow-out-of-range"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    history = records.load_record(folder).history
    assert [s for s, _ in logged(history, "loss")] == list(range(1, 9))
    assert records.load_record(folder).status == "completed"


def full_disk_at_step(step, original):
    """Trainer._save_optimizer_and_scheduler failing as a full disk does, at one step."""

    def save(trainer, output_dir):
        if trainer.state.global_step == step:
            raise OSError(errno.ENOSPC, "No space left on device", os.path.join(output_dir, "optimizer.pt"))
        return original(trainer, output_dir)

    return save


def test_a_run_failed_keeping_its_checkpoint_resumes_one_curve_in_tensorboard_too(tiny_model_dir, dates_jsonl,
                                                                                    tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = config(tiny_model_dir, dates_jsonl, save_steps=2, report_to="tensorboard")
    root = tmp_path / "runs"
    original = Trainer._save_optimizer_and_scheduler
    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", full_disk_at_step(6, original))
    failed = TrainingRun(cfg, root / "r1", allow_out_of_range=True).start().wait(timeout=300)
    assert failed.status == "failed" and resume.CHECKPOINT_KEPT in failed.error
    assert failed.step == 6 and resume.checkpoint_step(root / "r1") == 4
    assert "r1/checkpoints/checkpoint-6/optimizer.pt" in failed.error  # named from the run, not this machine
    assert not [p for p in (root / "r1").glob("*.json") if str(tmp_path) in p.read_text()]
    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", original)

    snap = Scheduler(root).resume("r1", LOCAL_OWNER).wait(timeout=300)
    assert snap.status == "completed", snap.error
    history = records.load_record(root / "r1").history
    assert [s for s, _ in logged(history, "loss")] == list(range(1, 9))  # steps 5 and 6 once, from the resume

    # TensorBoard reads the same curve: the events the failed session logged after step 4 are purged.
    events = EventAccumulator(str(root / "r1" / "logs"))
    events.Reload()
    scalars = events.Scalars("train/loss")
    assert [e.step for e in scalars] == list(range(1, 9))
    assert [e.value for e in scalars] == pytest.approx([v for _, v in logged(history, "loss")], rel=1e-6)
    assert [e.step for e in events.Scalars("eval/loss")] == [2, 4, 6, 8]
    assert [e.step for e in events.Scalars("train/learning_rate")] == list(range(1, 9))


def make_run(root, run_id, *, status, owner=LOCAL_OWNER, **record):
    """A run folder by hand (no training): config.json, metrics.jsonl, summary.json, run.json."""
    folder = root / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**TrainConfig(data="dates.jsonl").to_dict(),
                                                    "resolved": {"model": "tiny"}}))
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0, "time": 1.0}) + "\n")
    write_record(folder, status=status, owner=owner, created_at=1.0, **record)
    return folder


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_what_cannot_be_resumed_says_why_in_one_line_and_changes_nothing(tmp_path):
    root = tmp_path / "runs"
    completed = make_run(root, "done", status="completed")
    # A run whose process died, and never checkpointed (save_steps was 0).
    crashed = make_run(root, "crashed", status="training", pid=dead_pid(), pid_start=None, host=None)
    failed = make_run(root, "nan", status="failed", error="the training loss became nan at step 3; ...")
    (failed / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (failed / "checkpoints" / "checkpoint-2" / "checkpoint-complete").write_text("2")
    seen = {folder: files_of(folder) for folder in (completed, crashed, failed)}
    scheduler = Scheduler(root)  # marks the crashed run interrupted, as a server start does
    seen[crashed] = files_of(crashed)

    expected = {"done": "run done is completed: only a stopped or interrupted run",
                "crashed": "run crashed has no complete checkpoint to resume from: a run stopped with Stop saves "
                           "one; an interrupted or failed run has them only if save_steps was set",
                "nan": "run nan is failed"}
    for run_id, message in expected.items():
        with pytest.raises(CannotResume) as refused:
            scheduler.resume(run_id, LOCAL_OWNER)
        assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
    with pytest.raises(NoSuchRun):
        scheduler.resume("no-such-run", LOCAL_OWNER)
    assert {folder: files_of(folder) for folder in seen} == seen
    assert scheduler.latest(LOCAL_OWNER) is None  # nothing was queued


def test_someone_elses_run_is_no_such_run_in_public_mode(tmp_path):
    root = tmp_path / "runs"
    folder = make_run(root, "alices", status="stopped", owner=owner_hash("alice-key-0123456789"))
    (folder / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (folder / "checkpoints" / "checkpoint-2" / "checkpoint-complete").write_text("2")
    scheduler = Scheduler(root, public=True)
    with pytest.raises(NoSuchRun, match="no such run"):
        scheduler.resume("alices", scheduler.owner("bob-key-0123456789"))

