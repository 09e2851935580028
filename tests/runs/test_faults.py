"""Faults in a run: out of memory, a full disk during a checkpoint, a killed
process. Nothing is lost, the message says what to do, and a retry works."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from conftest import ROOT
from transformers import Trainer, TrainerCallback

from finetune.experiments.scheduler import Scheduler
from finetune.runs.records import list_runs
from finetune.runs.run import TrainingRun, active_run
from finetune.train.config import TrainConfig
from finetune.train.trainer import last_complete_checkpoint


def config(model_dir, data, **changes):
    values = dict(model=str(model_dir), data=str(data), learning_rate=3e-3, batch_size=4, grad_accum=1, epochs=2,
                  held_out=0, validation_fraction=0.0, max_new_tokens=8, seed=5, precision="fp32")
    return TrainConfig(**{**values, **changes})


def losses(history):
    return [(h["step"], h["loss"]) for h in history if "loss" in h]


class RaiseAtStep(TrainerCallback):
    def __init__(self, step, error):
        self.step, self.error = step, error

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise self.error


def test_out_of_memory_says_what_to_lower_and_a_retry_works(tiny_model_dir, dates_jsonl, tmp_path):
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    run = TrainingRun(config(tiny_model_dir, dates_jsonl, batch_size=8, max_length=256), tmp_path / "a",
                      allow_out_of_range=True, callbacks=(RaiseAtStep(2, oom),)).start()
    snap = run.wait(timeout=300)
    assert snap.status == "failed"
    assert snap.error.startswith("out of memory: lower")
    assert "batch size (now 8" in snap.error and "max length (now 256)" in snap.error and "LoRA" in snap.error
    assert active_run() is None
    retry = TrainingRun(config(tiny_model_dir, dates_jsonl, batch_size=4, max_steps=2), tmp_path / "b",
                        allow_out_of_range=True).start()
    assert retry.wait(timeout=300).status == "completed"


def test_disk_full_during_a_checkpoint_keeps_the_last_complete_one(tiny_model_dir, dates_jsonl, tmp_path,
                                                                      monkeypatch):
    original = Trainer._save_optimizer_and_scheduler

    def full_disk_at_step_4(self, output_dir):
        if self.state.global_step == 4:
            with open(os.path.join(output_dir, "optimizer.pt"), "wb") as handle:
                handle.write(b"partial")  # a half-written file, as a full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", full_disk_at_step_4)
    cfg = config(tiny_model_dir, dates_jsonl, save_steps=2, max_steps=8)
    snap = TrainingRun(cfg, tmp_path / "run", allow_out_of_range=True).start().wait(timeout=300)
    assert snap.status == "failed"
    assert "checkpoint at step 4" in snap.error and "No space left" in snap.error and "free disk space" in snap.error
    checkpoints = tmp_path / "run" / "checkpoints"
    assert not (checkpoints / "checkpoint-4").exists(), "a partial checkpoint is never left behind"
    assert last_complete_checkpoint(checkpoints).endswith("checkpoint-2")

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", original)
    resumed = TrainingRun(cfg, tmp_path / "run", allow_out_of_range=True, resume=True).start().wait(timeout=300)
    assert resumed.status == "completed", resumed.error
    assert [s for s, _ in losses(resumed.history)] == list(range(1, 9))


# A run that holds at the end of step 7, after checkpoint-6 is written, until it is killed;
# it says it is held by writing the file named in argv[3].
HELD_RUN = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    from transformers import TrainerCallback
    from finetune.train.config import TrainConfig
    from finetune.runs.run import TrainingRun

    class HoldAtStep7(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 7:
                Path(sys.argv[3]).write_text("held")
                threading.Event().wait(600)

    config = TrainConfig(**__import__("json").loads(sys.argv[1]))
    TrainingRun(config, sys.argv[2], allow_out_of_range=True, callbacks=(HoldAtStep7(),)).start().wait()
""")


def process_ended_or_held(process: subprocess.Popen, held, timeout: float = 240) -> None:
    """Wait until the process says it is held (or fail if it ends first). Polls a
    file the run is sure to write; the timeout is for a broken run only."""
    deadline = time.monotonic() + timeout
    while not held.exists():
        assert process.poll() is None, "the run ended before it reached its hold"
        assert time.monotonic() < deadline, f"the run did not reach its hold in {timeout} s"
        time.sleep(0.1)


def test_killed_process_resumes_with_the_same_steps_and_loss_curve(tiny_model_dir, dates_jsonl, tmp_path):
    cfg = config(tiny_model_dir, dates_jsonl, save_steps=3, max_steps=10)
    reference = TrainingRun(cfg, tmp_path / "whole", allow_out_of_range=True).start().wait(timeout=300)
    assert reference.status == "completed", reference.error

    out, held = tmp_path / "killed", tmp_path / "held"
    script = tmp_path / "held_run.py"
    script.write_text(HELD_RUN)
    process = subprocess.Popen([sys.executable, str(script), json.dumps(cfg.to_dict()), str(out), str(held)],
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        process_ended_or_held(process, held)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert (out / "checkpoints" / "checkpoint-6" / "checkpoint-complete").exists()
    killed_at = max(h["step"] for h in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()))
    assert killed_at == 6, "killed during step 7, before it was logged"
    # A killed process's run is listed as interrupted, never as training or finished; a server
    # starting on the folder writes that down.
    assert [(r.id, r.status) for r in list_runs(tmp_path) if r.id == "killed"] == [("killed", "interrupted")]
    Scheduler(tmp_path)
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"

    resumed = TrainingRun(cfg, out, allow_out_of_range=True, resume=True).start().wait(timeout=300)
    assert resumed.status == "completed", resumed.error
    assert resumed.step == reference.step == 10
    got, want = losses(resumed.history), losses(reference.history)
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-4, abs=1e-5)


def test_hub_token_never_reaches_outputs_logs_or_errors(tiny_model_dir, dates_jsonl, tmp_path, capfd):
    token = "hf_SECRETsecretSECRETsecret123456"
    snap = TrainingRun(config(tiny_model_dir, dates_jsonl, max_steps=2), tmp_path / "ok", token=token,
                       allow_out_of_range=True).start().wait(timeout=300)
    assert snap.status == "completed"
    failed = TrainingRun(config(tiny_model_dir, dates_jsonl).replace(model="someone/private-model"), tmp_path / "bad",
                         token=token, allow_out_of_range=True).start().wait(timeout=300)
    assert failed.status == "failed" and token not in failed.error
    for folder in (tmp_path / "ok", tmp_path / "bad"):
        for path in folder.rglob("*"):
            if path.is_file() and path.stat().st_size < 5_000_000:
                assert token not in path.read_bytes().decode("utf-8", "ignore"), path
    captured = capfd.readouterr()
    assert token not in captured.out + captured.err
    assert token not in repr(snap) + repr(failed)
