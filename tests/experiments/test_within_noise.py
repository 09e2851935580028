"""A winner within the noise of the runner-up is a tie: the verdict's validation
loss, paired example by example, and the held-out answers, paired prompt by
prompt (synthetic run folders, no training)."""

import json
import random

import pytest

from finetune.cli.main import main as cli_main
from finetune.data.dataset import HeldOutPrompt
from finetune.evaluate.metrics import comparison_rows
from finetune.experiments.compare import VERSUS_BEST, runs_rows, verdict
from finetune.experiments.noise import held_out_comparison
from finetune.runs.outputs import VALIDATION_LOSSES_FILE, read_validation_losses
from finetune.runs.records import list_runs, write_record
from finetune.train.config import TrainConfig

# Validation loss at steps 10..50: "lr=2e-05" reaches 1.100, "lr=5e-05" 1.120.
CURVES = {2e-5: [1.6, 1.4, 1.25, 1.15, 1.10], 5e-5: [1.5, 1.3, 1.2, 1.13, 1.12]}
PROMPTS = [HeldOutPrompt(f"p{i}", f"Convert date {i}", f"2021-03-{i + 1:02d}", "task") for i in range(20)]


def make_run(root, lr, *, right=None, losses=None, prompts=PROMPTS):
    """A finished run: its validation curve, its held-out answers (the first `right`
    of `prompts` answered right) and its per-example validation losses."""
    folder = root / f"run-{lr:g}"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TrainConfig(learning_rate=lr).to_dict()))
    history = [{"step": step, "loss": 2.0 - step / 100} for step in range(5, 51, 5)]
    history += [{"step": 10 * (i + 1), "eval_loss": value} for i, value in enumerate(CURVES[lr])]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "steps": 50}))
    if right is not None:
        answers = [p.reference if i < right else "no idea" for i, p in enumerate(prompts)]
        (folder / "comparison.json").write_text(json.dumps(comparison_rows(prompts, ["no idea"] * len(prompts),
                                                                           answers)))
    if losses is not None:
        ids = [f"example-{i}" for i in range(len(losses))]
        (folder / VALIDATION_LOSSES_FILE).write_text(json.dumps({"ids": ids, "losses": losses,
                                                                 "tokens": [20] * len(losses)}))
    write_record(folder, status="completed", label=f"lr={lr:g}", created_at=lr * 1e6)
    return folder


def example_losses(spread, seed=0, n=40):
    """Per-example losses of the winner and the runner-up: the runner-up's are
    0.02 higher on average, give or take `spread` per example."""
    rng = random.Random(seed)
    winner = [1.1 + rng.uniform(-0.5, 0.5) for _ in range(n)]
    return winner, [w + 0.02 + rng.uniform(-spread, spread) for w in winner]


def test_a_lead_within_the_noise_of_the_validation_examples_is_a_tie(tmp_path):
    winner, runner = example_losses(spread=0.3)
    make_run(tmp_path, 2e-5, losses=winner)
    make_run(tmp_path, 5e-5, losses=runner)
    found = verdict(list_runs(tmp_path))
    assert found["lowest"]["label"] == "lr=2e-05"
    margin = found["lowest_margin"]
    assert margin["runner_up"] == "lr=5e-05" and margin["gap"] == pytest.approx(0.02)
    assert margin["examples"] == 40 and margin["low"] < 0 < margin["gap"] < margin["high"] and margin["tie"]
    assert "Lowest validation loss: lr=2e-05, 1.1000 at step 50. That is a tie with lr=5e-05 (1.1200): the gap " \
           "of 0.0200 is within the noise (95% interval -0.0" in found["text"]
    assert "from the losses of the 40 validation examples both runs scored" in found["text"]


def test_a_lead_bigger_than_the_noise_names_the_winner(tmp_path):
    winner, runner = example_losses(spread=0.01)  # every example 0.01 to 0.03 worse under the runner-up
    make_run(tmp_path, 2e-5, losses=winner)
    make_run(tmp_path, 5e-5, losses=runner)
    found = verdict(list_runs(tmp_path))
    margin = found["lowest_margin"]
    assert 0 < margin["low"] < 0.02 < margin["high"] < 0.03 and margin["tie"] is False
    assert "It beats the runner-up, lr=5e-05 (1.1200), by 0.0200, more than the noise (95% interval +0.01" \
           in found["text"]


def test_without_per_example_losses_for_the_same_examples_the_verdict_says_it_cannot_tell(tmp_path):
    make_run(tmp_path, 2e-5, losses=[1.0, 1.2, 0.9])
    make_run(tmp_path, 5e-5)  # an older run: no validation_losses.json
    found = verdict(list_runs(tmp_path))
    assert found["lowest_margin"]["tie"] is None and found["lowest"]["label"] == "lr=2e-05"
    assert "Whether that lead of 0.0200 over lr=5e-05 (1.1200) is bigger than the noise cannot be told" \
           in found["text"]
    assert read_validation_losses(tmp_path / "run-2e-05") == {"example-0": 1.0, "example-1": 1.2, "example-2": 0.9}
    (tmp_path / "run-2e-05" / VALIDATION_LOSSES_FILE).write_text('{"ids": [1, 2], "losses": [0.5]}')
    assert read_validation_losses(tmp_path / "run-2e-05") == {}  # damaged: unknown, never a crash


def test_held_out_answers_one_apart_are_a_tie_and_a_wide_gap_is_not(tmp_path):
    make_run(tmp_path, 2e-5, right=18)
    make_run(tmp_path, 5e-5, right=17)
    found = held_out_comparison(list_runs(tmp_path))
    assert found["best"] == "lr=2e-05" and found["runner_up"] == "lr=5e-05" and found["prompts"] == 20
    against = found["runs"]["lr=5e-05"]["versus_best"]
    assert against["change"] == pytest.approx(-0.05) and against["low"] < 0 < against["high"]
    assert found["tie"] is True
    text = verdict(list_runs(tmp_path))["text"]
    assert "Held-out answers after training (normalised match, on the 20 prompts every run answered): best " \
           "lr=2e-05 at 90%; lr=5e-05 85% (-5 points, 95% interval -2" in text and "within the noise)." in text
    assert "On these answers lr=2e-05 and lr=5e-05 are a tie: the difference is within the noise." in text
    rows = {row["label"]: row for row in runs_rows(list_runs(tmp_path), versus_best=True)}
    assert rows["lr=2e-05"][VERSUS_BEST] == "best (90%)"
    assert rows["lr=5e-05"][VERSUS_BEST].startswith("-5 points, 95% interval -")
    assert rows["lr=5e-05"][VERSUS_BEST].endswith(", within the noise")
    assert VERSUS_BEST not in runs_rows(list_runs(tmp_path))[0]  # a plain listing compares nothing

    wide = tmp_path / "wide"
    wide.mkdir()
    make_run(wide, 2e-5, right=4)
    make_run(wide, 5e-5, right=19)
    found = held_out_comparison(list_runs(wide))
    assert found["best"] == "lr=5e-05" and found["tie"] is False
    assert found["runs"]["lr=2e-05"]["versus_best"]["high"] < 0
    assert "On these answers lr=5e-05 is ahead of every other run by more than the noise." in \
           verdict(list_runs(wide))["text"]


def test_runs_on_different_prompts_are_not_compared_by_their_answers(tmp_path):
    other = [HeldOutPrompt(f"o{i}", f"Another question {i}", "yes", "task") for i in range(20)]
    make_run(tmp_path, 2e-5, right=18)
    make_run(tmp_path, 5e-5, right=5, prompts=other)
    assert held_out_comparison(list_runs(tmp_path)) is None
    assert "Held-out answers" not in verdict(list_runs(tmp_path))["text"]


def test_compare_runs_prints_each_run_against_the_best_and_the_tie(tmp_path, capsys):
    winner, runner = example_losses(spread=0.3)
    folders = [make_run(tmp_path, 2e-5, right=18, losses=winner), make_run(tmp_path, 5e-5, right=17, losses=runner)]
    report = tmp_path / "report.html"
    assert cli_main(["compare-runs", *map(str, folders), "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert VERSUS_BEST in out and "best (90%)" in out and "-5 points, 95% interval" in out
    assert "That is a tie with lr=5e-05" in out and "are a tie: the difference is within the noise" in out
    html = report.read_text()
    assert VERSUS_BEST in html and "That is a tie with lr=5e-05" in html
