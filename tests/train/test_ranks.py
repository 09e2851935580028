"""Several processes through torchrun (DDP, gloo on the CPU): one set of outputs,
and the same loss curve as one process with the same global batch."""

import json
import os
import subprocess
import sys
import threading

import pytest
from conftest import DEMO_DATA, ROOT

from finetune.train import ranks

# Measured: the two curves agree to ~1e-5 (the processes sum their losses in a
# different order, and under DDP the loss goes through the model's own logits).
LOSS_TOLERANCE = 1e-3
TRAIN = ["train", "--data", DEMO_DATA, "--max-steps", 4, "--learning-rate", 1e-3, "--allow-out-of-range",
         "--max-new-tokens", 8, "--batch-size", 4]


def _losses(folder):
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [m for m in metrics if "loss" in m]


def _run(command, timeout=300):
    # On the CPU (gloo) even where there is a GPU: two processes cannot share one GPU under NCCL.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([str(c) for c in command], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def two_process_run(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    result = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", 2,
                   "-m", "finetune", *TRAIN, "--model", tiny_model_dir, "--grad-accum", 2, "--output", out])
    return out, result


def test_two_processes_write_one_set_of_outputs(two_process_run):
    out, result = two_process_run
    steps = [m["step"] for m in _losses(out)]
    assert steps == [1, 2, 3, 4], "one metrics line per logged step, not one per process"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 4
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison and all(row["before"] is not None and row["after"] is not None for row in comparison)
    assert (out / "model" / "model.safetensors").is_file()
    assert result.stdout.count('"status": "completed"') == 1, "only the main process reports"


def test_two_processes_follow_the_single_process_loss_curve(two_process_run, tiny_model_dir, tmp_path):
    """2 processes x batch 4 x accumulation 2 and 1 process x batch 4 x accumulation 4
    see the same 32 examples per step, in the same micro-batches."""
    out, _ = two_process_run
    single = tmp_path / "single"
    _run([sys.executable, "-m", "finetune", *TRAIN, "--model", tiny_model_dir, "--grad-accum", 4, "--output", single])
    together, alone = _losses(out), _losses(single)
    for a, b in zip(together, alone, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=LOSS_TOLERANCE), (a, b)
    # Token counts and throughput cover both processes, not only the main one.
    assert [m["tokens_seen"] for m in together] == [m["tokens_seen"] for m in alone]


def test_a_runs_config_starts_the_next_run_as_it_is(two_process_run, tmp_path):
    """How the README points a run made in the app at a launcher: --config runs/<id>/config.json."""
    out, _ = two_process_run
    again = tmp_path / "again"
    _run([sys.executable, "-m", "finetune", "train", "--config", out / "config.json", "--max-steps", 1,
          "--allow-out-of-range", "--output", again])
    assert json.loads((again / "config.json").read_text())["learning_rate"] == 1e-3


def test_two_threads_asking_which_process_this_is_both_get_an_answer(monkeypatch):
    """Under torchrun the CLI's main thread asks while the run's thread starts training.
    accelerate builds its shared state attribute by attribute; a thread that came in
    half-way read 'no attribute is_main_process' and failed the run (2 of 3 launches here)."""
    import accelerate

    building, second_asks = threading.Event(), threading.Event()

    class SharedStateBuiltSlowly:  # the shape of accelerate's PartialState
        _shared_state: dict = {}

        def __init__(self, cpu=False):
            self.__dict__ = self._shared_state
            if not self._shared_state:
                self.backend = "gloo"
                building.set()
                # init_process_group waits for the other processes: meanwhile the second thread asks.
                # Without the lock it reads the half-built state; with it, it waits for the lock.
                second_asks.wait(30)
                self.process_index = 0

        @property
        def is_main_process(self):
            return self.process_index == 0

    monkeypatch.setattr(accelerate, "PartialState", SharedStateBuiltSlowly)
    monkeypatch.setenv("WORLD_SIZE", "2")
    answers, errors = [], []

    def ask(announce=None):
        try:
            if announce is not None:
                announce.set()
            answers.append(ranks.is_main())
        except AttributeError as err:
            errors.append(err)

    first = threading.Thread(target=ask)
    first.start()
    assert building.wait(30), "the first thread never started building the shared state"
    second = threading.Thread(target=ask, args=(second_asks,))
    second.start()
    for thread in (first, second):
        thread.join(60)
    assert not errors and answers == [True, True]
