"""Runs side by side when the machine has room (experiments/admission.py): the
admission rule on fake machines, two tiny runs training at once with the same
losses as apart, a run that runs out of memory beside another queued again to
train alone, and the queue's estimate counting the places the trainer has."""

import json

import pytest
import torch
from holds import Holds
from tiny_runs import RECORDS, tiny_config
from transformers import TrainerCallback

from finetune.experiments.admission import Admission, Machine, configured_limit
from finetune.experiments.scheduler import Scheduler, Submission
from finetune.runs.run import TrainingRun, active_runs
from finetune.train.config import check

GIB = 2**30


def test_a_gpu_admits_the_runs_whose_estimates_fit_its_memory():
    gpu = Admission.for_machine(Machine("cuda", cores=16, memory_bytes=80 * GIB), limit=8)
    run = 25 * GIB  # two fit in 85% of 80 GiB with the 1.3 margin (65 GiB); three do not (97.5 GiB)
    assert gpu.admits([], run) and gpu.admits([run], run)
    assert not gpu.admits([run, run], run)
    assert not gpu.admits([run], None), "a GPU admits beside others only what it can estimate"
    assert not gpu.admits([run], 1 * GIB, alone=True) and gpu.admits([], run, alone=True)


def test_a_cpu_gives_each_run_its_cores_and_never_oversubscribes_them(monkeypatch):
    monkeypatch.delenv("FINETUNE_CONCURRENT_RUNS", raising=False)
    two = Admission.for_machine(Machine("cpu", cores=2, memory_bytes=16 * GIB))
    assert two.limit == 2 and two.admits([None], None) and not two.admits([None, None], None)
    for cores in (1, 2, 3, 8, 32, 64):
        admission = Admission.for_machine(Machine("cpu", cores=cores, memory_bytes=None))
        assert admission.threads_per_run * admission.limit <= cores and admission.threads_per_run >= 1
    assert Admission.for_machine(Machine("cpu", cores=1, memory_bytes=None)).limit == 1
    assert Admission.for_machine(Machine("mps", cores=10, memory_bytes=None)).limit == 1, "nothing would gain"
    monkeypatch.setenv("FINETUNE_CONCURRENT_RUNS", "3")
    assert configured_limit() == 3 and Admission.for_machine(Machine("cpu", 2, None)).limit == 3
    monkeypatch.setenv("FINETUNE_CONCURRENT_RUNS", "lots")
    assert configured_limit() is None


@pytest.fixture
def dates(write):
    return write("dates.json", json.dumps(RECORDS))


def losses(snap):
    return [(h["step"], round(h["loss"], 5)) for h in snap.history if "loss" in h]


def side_by_side(tmp_path, holds):
    return Scheduler(tmp_path / "runs", callbacks=(holds,),
                     admission=Admission.for_machine(Machine("cpu", cores=2, memory_bytes=None), limit=2))


def test_two_runs_train_at_once_with_the_same_losses_as_apart(tiny_model_dir, dates, tmp_path):
    configs = [tiny_config(tiny_model_dir, dates, seed=seed, grad_accum=2, batch_size=2, epochs=1, held_out=2,
                           precision="fp32") for seed in (1, 2)]
    apart = [losses(TrainingRun(c, tmp_path / f"apart-{i}", allow_out_of_range=True).start().wait(timeout=300))
             for i, c in enumerate(configs)]
    holds = Holds()
    scheduler = side_by_side(tmp_path, holds)
    with holds.at_step(1) as first_held, holds.at_step(1) as second_held:
        runs = [scheduler.submit(Submission(check(c, allow_out_of_range=True)), "local") for c in configs]
        first_held.wait()
        second_held.wait()  # both at step 1 at once: they train side by side
        assert {first_held.run_id, second_held.run_id} == {r.run_id for r in runs}
        assert set(active_runs()) == set(runs) and scheduler.position(runs[1]) == 0
    together = [losses(r.wait(timeout=300)) for r in runs]
    assert [r.snapshot().status for r in runs] == ["completed", "completed"]
    assert together == apart, "gradient accumulation and seeds are each run's own"


class OutOfMemoryAtStep(TrainerCallback):
    """Runs out of memory at step 2 of the run whose folder name is `run_id`, once."""

    def __init__(self):
        self.run_id, self.raised = None, False

    def on_step_end(self, args, state, control, **kwargs):
        from pathlib import Path

        if not self.raised and Path(args.output_dir).parent.name == self.run_id and state.global_step == 2:
            self.raised = True
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_a_run_that_runs_out_of_memory_beside_another_is_queued_again_to_train_alone(tiny_model_dir, dates,
                                                                                      tmp_path):
    holds, oom = Holds(), OutOfMemoryAtStep()
    scheduler = Scheduler(tmp_path / "runs", callbacks=(holds, oom),
                          admission=Admission.for_machine(Machine("cpu", cores=2, memory_bytes=None), limit=2))
    config = tiny_config(tiny_model_dir, dates, max_steps=6, held_out=0, precision="fp32")
    with holds.at_step(1) as first_held:
        first = scheduler.submit(Submission(check(config, allow_out_of_range=True)), "local")
        first_held.wait()
        second = scheduler.submit(Submission(check(config, allow_out_of_range=True)), "local")
        oom.run_id = second.run_id
        assert scheduler.position(second) == 0, "it started beside the first"
        failed = second.wait(timeout=300)
        assert failed.status == "failed" and failed.error.startswith("out of memory")
        retry = scheduler.live(second.run_id, "local")
        assert retry is not second and retry.snapshot().status == "queued"
        assert "train alone" in retry.snapshot().message
        assert scheduler.position(retry) == 1, "it waits while the first trains"
    assert first.wait(timeout=300).status == "completed"
    done = retry.wait(timeout=300)
    assert done.status == "completed" and done.step == 6
    assert json.loads((tmp_path / "runs" / second.run_id / "run.json").read_text())["status"] == "completed"


def test_the_estimated_start_counts_the_places_the_trainer_has(tiny_model_dir, dates, tmp_path):
    holds = Holds()
    scheduler = side_by_side(tmp_path, holds)
    scheduler._seconds_per_step = 2.0  # as if measured on an earlier run
    config = check(tiny_config(tiny_model_dir, dates, max_steps=10, held_out=0, precision="fp32"),
                   allow_out_of_range=True)
    with holds.at_step(1) as a, holds.at_step(1) as b:
        running = [scheduler.submit(Submission(config), f"student {n}") for n in range(2)]
        a.wait()
        b.wait()
        waiting = [scheduler.submit(Submission(config), f"student {n}") for n in range(2, 5)]
        assert [scheduler.position(r) for r in waiting] == [1, 2, 3]
        # Neither running run has a pace yet (no ETA): places free at 0 s; 10 steps take 20 s.
        assert [scheduler.wait_estimate(r) for r in waiting] == [0.0, 0.0, 20.0]
        for run in waiting:
            scheduler.cancel(run.run_id, run.owner)
        for run in running:
            run.stop()
