"""Beside every before/after score, the change with its interval: the Compare
tab's held-out table, and the Experiments tab's verdict calling a lead within
the noise a tie (no server: the tabs' pure parts on fake run folders)."""

import json

import pytest

gr = pytest.importorskip("gradio")

from finetune.data.dataset import HeldOutPrompt  # noqa: E402
from finetune.evaluate.metrics import comparison_rows, readings  # noqa: E402
from finetune.experiments.compare import VERSUS_BEST  # noqa: E402
from finetune.runs.records import write_record  # noqa: E402
from finetune.sources.files import Limits  # noqa: E402
from finetune.train.config import TrainConfig  # noqa: E402
from ui.lab import Lab  # noqa: E402
from ui.tabs import compare_tab, experiments_tab  # noqa: E402
from ui.views.changes import change_cell, change_sentences  # noqa: E402

TASK = [HeldOutPrompt(f"t{i}", f"Convert date {i}", f"2021-03-{i + 1:02d}", "task") for i in range(20)]
GENERAL = [HeldOutPrompt(f"g{i}", f"Capital {i}?", f"City {i}", "general") for i in range(10)]


def answers(prompts, right):
    return [p.reference if i < right else "I am not sure" for i, p in enumerate(prompts)]


def test_the_compare_tab_puts_each_categorys_change_and_interval_beside_its_scores():
    rows = comparison_rows(TASK + GENERAL, answers(TASK, 0) + answers(GENERAL, 10),
                           answers(TASK, 16) + answers(GENERAL, 9))
    text = compare_tab.scores_markdown(rows, None)
    assert "| change on its headline metric (95% interval) |" in text
    task_row = next(line for line in text.splitlines() if line.startswith("| task | 20 |"))
    assert task_row.endswith("| 0% → 80% | normalised: +80 points, 95% interval +53 to +92 |")
    assert "- task (20 prompts), normalised 0% → 80%: better on the task prompts: +80 points, 95% interval +53 to " \
           "+92" in text
    # The general questions are open: read on "contains".
    assert "- general (10 prompts), contains 100% → 90%: no measurable change on the general prompts: -10 points, " \
           "95% interval -" in text
    # While the trained model has not answered yet: no change to show.
    waiting = compare_tab.scores_markdown(comparison_rows(TASK, answers(TASK, 0), None), None)
    assert next(line for line in waiting.splitlines() if line.startswith("| task |")).endswith("| … |")
    assert "bigger than the noise" not in waiting


def test_a_damaged_or_missing_change_shows_as_unknown():
    assert change_cell(None) == change_cell(readings({"all": {"normalised": {"n": "x"}}}).get("all")) == "…"
    assert change_sentences({"all": {"normalised": {"n": 3, "change": "?"}}}) == ""


def make_run(root, run_id, lr, right, example_losses, best_loss):
    folder = root / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(TrainConfig(learning_rate=lr).to_dict()))
    history = [{"step": s, "loss": 2.0 - s / 100} for s in (10, 20, 30)] + \
        [{"step": 20, "eval_loss": best_loss + 0.2}, {"step": 30, "eval_loss": best_loss}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "steps": 30}))
    (folder / "comparison.json").write_text(json.dumps(comparison_rows(TASK, answers(TASK, 0), answers(TASK, right))))
    (folder / "validation_losses.json").write_text(json.dumps(
        {"ids": [f"e{i}" for i in range(len(example_losses))], "losses": example_losses}))
    write_record(folder, status="completed", label=f"lr={lr:g}", created_at=lr * 1e6)


def test_the_experiments_verdict_calls_a_lead_within_the_noise_a_tie(tmp_path):
    lab = Lab("default", tmp_path / "runs", None, Limits())
    spread = [0.3, -0.3, 0.25, -0.2, 0.1, -0.15, 0.3, -0.25] * 4  # per example: runner-up minus winner, mean 0
    winner = [1.0 + 0.1 * (i % 5) for i in range(len(spread))]
    make_run(lab.output_root, "a", 2e-5, 17, winner, best_loss=1.0)
    make_run(lab.output_root, "b", 5e-5, 18, [w + 0.01 + s for w, s in zip(winner, spread)], best_loss=1.01)
    found = experiments_tab.compare_runs(lab, "local", ["a", "b"])
    assert found["verdict"].startswith("#### Verdict\nLowest validation loss: lr=2e-05, 1.0000 at step 30. "
                                       "That is a tie with lr=5e-05 (1.0100): the gap of 0.0100 is within the noise")
    assert "On these answers lr=5e-05 and lr=2e-05 are a tie" in found["verdict"]
    rows = {row["run"]: row[VERSUS_BEST] for row in found["rows"]}
    assert rows["b"] == "best (90%)" and rows["a"].startswith("-5 points, 95% interval")
