"""Preference runs compared and swept: the settings diff names the objective and the
settings each run's objective reads (never a beta a supervised run ignored); a sweep
over beta runs end to end on a tiny model; a sweep over a setting its objective does
not read is refused."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from finetune.experiments import compare, labels, sweep
from finetune.runs import records
from finetune.runs.records import RunRecord, write_record
from finetune.train.config import TrainConfig

PAIRS = [{"prompt": f"Convert to ISO 8601: {name} {d}, 2021", "chosen": f"2021-{m:02d}-{d:02d}",
          "rejected": f"Sure! That is {d}/{m}/2021."} for d in range(1, 16) for m, name in ((3, "March"), (4, "April"))]


def record(run_id: str, **settings) -> RunRecord:
    return RunRecord(id=run_id, folder=Path(run_id), status="completed",
                     config={**TrainConfig().to_dict(), **settings})


def test_a_supervised_run_and_the_dpo_run_continued_from_it_differ_by_objective_not_by_unused_settings():
    supervised = record("sft", learning_rate=5e-5, beta=0.3)  # a beta it never read
    dpo = record("dpo", learning_rate=1e-5, objective="dpo", model="runs/sft/best")
    rows = {row["setting"]: row for row in labels.settings_diff([supervised, dpo])}
    names = labels.run_labels([supervised, dpo])
    assert rows["objective"][names["sft"]] == "sft" and rows["objective"][names["dpo"]] == "dpo"
    # The DPO run's own settings are named; the supervised run read none of them.
    assert rows["beta"][names["dpo"]] == "0.1" and rows["beta"][names["sft"]] == labels.NOT_USED
    assert rows["precompute_ref"][names["dpo"]] == "True" and "learning_rate" in rows
    assert names["dpo"].startswith("objective=dpo, beta=0.1")
    assert names["sft"] == "objective=sft, lr=5e-05, model=default"


def test_a_setting_only_one_runs_objective_reads_shows_as_not_used_for_the_other():
    dpo = record("a", objective="dpo", beta=0.1, dpo_loss="ipo")
    kto = record("b", objective="kto", beta=0.1, desirable_weight=1.33)
    rows = {row["setting"]: row for row in labels.settings_diff([dpo, kto])}
    names = labels.run_labels([dpo, kto])
    assert rows["dpo_loss"][names["a"]] == "ipo" and rows["dpo_loss"][names["b"]] == labels.NOT_USED
    assert rows["desirable_weight"][names["a"]] == labels.NOT_USED
    assert rows["desirable_weight"][names["b"]] == "1.33"
    assert "beta" not in rows  # both read it, with the same value
    assert labels.differing_settings([record("x", beta=0.05), record("y", beta=0.5)]) == []  # both supervised


def test_a_sweep_over_a_setting_its_objective_does_not_read_is_refused():
    assert "beta" in sweep.sweepable_settings()
    with pytest.raises(sweep.SweepError, match="beta is a setting of DPO and KTO.*objective to dpo or kto"):
        sweep.member_settings(TrainConfig(), "beta", [0.05, 0.5], False)
    with pytest.raises(sweep.SweepError, match="desirable_weight is a setting of KTO"):
        sweep.member_settings(TrainConfig(objective="dpo"), "desirable_weight", [1.0, 1.5], False)
    members = sweep.member_settings(TrainConfig(objective="dpo"), "beta", sweep.parse_values("beta", "0.05, 0.5"),
                                    False)
    assert [m.config.beta for m in members] == [0.05, 0.5]


def test_a_sweep_over_beta_gives_comparable_dpo_runs_named_by_their_beta(tiny_model_dir, tmp_path, write):
    data = write("pairs.jsonl", "\n".join(json.dumps(r) for r in PAIRS))
    arguments = ["sweep", "--data", data, "--model", tiny_model_dir, "--objective", "dpo", "--sweep", "beta=0.05,0.5",
                 "--max-steps", 3, "--eval-steps", 1, "--batch-size", 4, "--grad-accum", 1, "--learning-rate", 1e-3,
                 "--held-out", 4, "--max-new-tokens", 4, "--general-probe", "false", "--allow-out-of-range",
                 "--output", tmp_path]
    done = subprocess.run([sys.executable, "-m", "finetune", *map(str, arguments)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("sweep-")]
    found = json.loads((folder / "sweep.json").read_text())
    assert found["setting"] == "beta" and found["values"] == [0.05, 0.5]
    members = [records.read_run(tmp_path, run_id) for run_id in found["runs"]]
    assert [m.label for m in members] == ["beta=0.05", "beta=0.5"]
    assert all(m.status == "completed" and m.config["objective"] == "dpo" for m in members)
    assert all(any("rewards/margins" in entry for entry in m.history) for m in members)
    assert "beta=0.05" in found["verdict"]["text"] and "beta=0.5" in found["verdict"]["text"]
    assert [row["setting"] for row in labels.settings_diff(members)] == ["beta"]
    # The DPO loss moves with beta: the lowest one is not called the strongest preference.
    assert "Careful: a DPO loss depends on beta, which differ here" in found["verdict"]["text"]


def test_a_verdict_over_different_objectives_says_their_losses_do_not_compare(tmp_path):
    for run_id, objective, losses in (("sft", "sft", (1.2, 0.4)), ("dpo", "dpo", (0.69, 0.3))):
        folder = tmp_path / run_id
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(TrainConfig(objective=objective).to_dict()))
        (folder / "metrics.jsonl").write_text("".join(
            json.dumps({"step": step, key: value}) + "\n" for step, value in zip((5, 10), losses)
            for key in ("loss", "eval_loss")))
        write_record(folder, status="completed")
    text = compare.verdict(records.list_runs(tmp_path))["text"]
    assert "Lowest validation loss" in text
    assert ("Careful: these runs optimise different objectives (DPO (preference pairs), supervised fine-tuning), "
            "so their losses measure different things") in text
    same = [record("a", objective="dpo"), record("b", objective="dpo", learning_rate=1e-5)]
    assert labels.objective_caution(same) is None  # the same loss: ranking it is fair
