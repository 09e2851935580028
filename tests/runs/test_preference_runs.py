"""Preference runs on the tiny model: DPO on pairs and KTO on labelled replies
train through TRL's trainers with the lab's run around them (its record, live
signals, stop, resume, best checkpoint), from the command line and as runs; data
that cannot train the objective is refused in one line before anything starts."""

import json

import pytest
from holds import Holds

from finetune.cli.main import main
from finetune.runs.run import TrainingRun
from finetune.sources.files import DataError
from finetune.train.config import TrainConfig
from finetune.train.objectives import logged_keys

PAIRS = [{"prompt": f"Convert to ISO 8601: {name} {d}, 2021", "chosen": f"2021-{m:02d}-{d:02d}",
          "rejected": f"{d}/{m}/2021, I think"} for d in range(1, 21) for m, name in ((3, "March"), (4, "April"))]


@pytest.fixture
def pairs_file(write):
    return write("pairs.jsonl", "\n".join(json.dumps(r) for r in PAIRS))


def config(model_dir, data, **changes):
    values = dict(model=str(model_dir), data=str(data), objective="dpo", learning_rate=1e-3, batch_size=4,
                  grad_accum=1, max_steps=6, held_out=4, validation_fraction=0.1, eval_steps=2, max_new_tokens=8,
                  general_probe=False, seed=3, precision="fp32")
    return TrainConfig(**{**values, **changes})


def logged(history, key):
    return [(h["step"], h[key]) for h in history if key in h]


@pytest.mark.parametrize("objective", ["dpo", "kto"])
def test_a_preference_run_from_the_command_line_logs_its_signals(tiny_model_dir, pairs_file, tmp_path, objective,
                                                                 capsys):
    out = tmp_path / objective
    code = main(["train", "--data", str(pairs_file), "--model", str(tiny_model_dir), "--objective", objective,
                 "--max-steps", "6", "--learning-rate", "1e-3", "--allow-out-of-range", "--held-out", "4",
                 "--batch-size", "4", "--grad-accum", "1", "--eval-steps", "2", "--max-new-tokens", "8",
                 "--general-probe", "false", "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    trained = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in trained] == list(range(1, 7))
    for key in logged_keys(objective):  # every signal on training batches, and on the validation pairs
        assert any(key in m for m in metrics), key
    margins = [m["rewards/margins"] for m in trained]
    assert margins[-1] > margins[0], "the chosen replies pulled ahead of the rejected ones"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and json.loads((out / "config.json").read_text())["objective"] == objective
    assert (out / "model" / "model.safetensors").is_file() and (out / "best" / "best.json").is_file()


def test_a_preference_run_stops_and_resumes_into_one_curve(tiny_model_dir, pairs_file, tmp_path):
    cfg = config(tiny_model_dir, pairs_file, save_steps=2)
    whole = TrainingRun(cfg, tmp_path / "whole", allow_out_of_range=True).start().wait(timeout=300)
    assert whole.status == "completed", whole.error
    holds = Holds()
    with holds.at_step(3) as hold:
        run = TrainingRun(cfg, tmp_path / "run", allow_out_of_range=True, callbacks=(holds,)).start()
        hold.wait()
        run.stop()
    stopped = run.wait(timeout=300)
    assert (stopped.status, stopped.step) == ("stopped", 3)
    resumed = TrainingRun(cfg, tmp_path / "run", allow_out_of_range=True, resume=True).start().wait(timeout=300)
    assert resumed.status == "completed", resumed.error
    assert [s for s, _ in logged(resumed.history, "loss")] == list(range(1, 7))
    # The reference is the starting model in both: the resumed curve is the uninterrupted one.
    for key in ("loss", "rewards/margins"):
        assert [v for _, v in logged(resumed.history, key)] == \
               pytest.approx([v for _, v in logged(whole.history, key)], rel=1e-3, abs=1e-4), key


def test_data_that_cannot_train_the_objective_is_refused_before_the_run(tiny_model_dir, write, pairs_file, tmp_path):
    supervised = write("sft.jsonl", "\n".join(json.dumps({"prompt": r["prompt"], "completion": r["chosen"]})
                                              for r in PAIRS))
    run = TrainingRun(config(tiny_model_dir, supervised), tmp_path / "dpo-on-sft", allow_out_of_range=True).start()
    snap = run.wait(timeout=300)
    assert snap.status == "failed" and "DPO trains on preference pairs" in snap.error
    unpaired = write("kto.jsonl", "\n".join(json.dumps({"prompt": r["prompt"], "completion": r["chosen"],
                                                        "label": True}) for r in PAIRS))
    with pytest.raises(DataError, match="would train the undesirable replies"):
        from finetune.data import dataset
        from finetune.sources import models
        from finetune.train.objectives import check_data

        cfg = config(tiny_model_dir, unpaired, objective="sft")
        tokenizer = models.load_tokenizer(models.resolve(cfg.model))
        check_data(cfg, dataset.prepare(cfg, tokenizer))
