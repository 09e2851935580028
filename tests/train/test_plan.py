"""The run plan: steps and the learning-rate curve a run will follow, checked
against what a real run logs."""

import json

import pytest

from finetune.runs.run import TrainingRun
from finetune.train import plan
from finetune.train.config import TrainConfig, build

RECORDS = [{"instruction": f"Convert the date to ISO 8601: March {d}, 2021", "output": f"2021-03-{d:02d}"}
           for d in range(1, 23)]


def test_plan_matches_what_the_trainer_logs(tiny_model_dir, write, tmp_path):
    data = write("dates.json", json.dumps(RECORDS))
    # 22 examples, 2 held out, no validation: 20 train -> 5 batches of 4 -> 3 steps of 2 batches, x 2 epochs.
    config = TrainConfig(model=str(tiny_model_dir), data=str(data), learning_rate=3e-3, batch_size=4, grad_accum=2,
                         epochs=2, held_out=2, validation_fraction=0.0, warmup_ratio=0.2, max_new_tokens=4, seed=3)
    run = TrainingRun(config, tmp_path / "run", allow_out_of_range=True).start()
    snap = run.wait(timeout=300)
    assert snap.status == "completed", snap.error
    planned = plan.plan(config, snap.train_examples, snap.train_tokens)
    assert planned.steps == snap.max_steps == snap.step == 6
    assert planned.warmup_steps == 2
    logged = {h["step"]: h["learning_rate"] for h in snap.history if "loss" in h}
    assert dict(zip(planned.curve_steps, planned.curve_lr)) == pytest.approx(logged, rel=1e-6, abs=1e-12)
    assert planned.train_tokens == snap.train_tokens


def test_plan_curve_is_sampled_for_long_runs():
    config = build({"max_steps": 100_000, "warmup_ratio": 0.05}).config
    steps, rates = plan.learning_rate_curve(config, 100_000)
    assert len(steps) <= plan.MAX_CURVE_POINTS + 3
    assert steps[0] == 1 and steps[-1] == 100_000 and 5001 in steps  # the top of the warmup is kept
    assert max(rates) == pytest.approx(config.learning_rate)
    assert rates[-1] == pytest.approx(config.learning_rate * config.min_lr_ratio, rel=1e-3)
