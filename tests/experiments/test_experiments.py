"""Comparing runs: the tutorial's learning-rate exercise on three synthetic runs
(written as files, no training), the table, the overlaid curves and the
offline HTML report."""

import json
from html import escape

import pytest
from fake_runs import history_for, make_run

from finetune.experiments.compare import runs_rows, runs_table, verdict
from finetune.experiments.figures import overlay_figures
from finetune.experiments.labels import differing_settings, run_label, run_labels, settings_diff
from finetune.experiments.report import write_report
from finetune.runs.records import list_runs


@pytest.fixture
def sweep(tmp_path):
    """The three learning-rate runs, read back as records."""
    for index, lr in enumerate((1e-5, 2e-5, 5e-5)):
        make_run(tmp_path, f"lr-{index}", lr, created_at=100.0 + index)
    return list_runs(tmp_path)


def test_labels_name_the_differing_learning_rate(sweep):
    differing = differing_settings(sweep)
    assert differing == ["data", "learning_rate"]  # upload paths differ; shown by data name
    assert sorted(run_label(r, ["learning_rate"]) for r in sweep) == ["lr=1e-05", "lr=2e-05", "lr=5e-05"]
    assert sorted(run_labels(sweep).values()) == ["lr=1e-05", "lr=2e-05", "lr=5e-05"]  # same data name: not named
    rows = {row["setting"]: row for row in settings_diff(sweep)}
    assert rows["learning_rate"] == {"setting": "learning_rate", "lr=1e-05": "1e-05", "lr=2e-05": "2e-05",
                                     "lr=5e-05": "5e-05"}
    assert {value for key, value in rows["data"].items() if key != "setting"} == {"dates.jsonl"}


def test_the_verdict_answers_the_learning_rate_exercise(tmp_path):
    for index, lr in enumerate((1e-5, 2e-5, 5e-5)):
        make_run(tmp_path, f"lr-{index}", lr, created_at=100.0 + index, label=f"lr={lr:g}")
    found = verdict(list_runs(tmp_path))
    assert found["metric"] == "eval_loss"
    assert found["lowest"] == {"label": "lr=2e-05", "run": "lr-1", "value": 1.12, "step": 100}
    assert found["fastest"]["label"] == "lr=5e-05" and found["fastest"]["step"] == 30
    assert found["overfit"] == {"lr=5e-05": 40}
    assert found["fastest_without_overfitting"]["label"] == "lr=2e-05"
    assert found["fastest_without_overfitting"]["step"] == 60
    text = found["text"]
    assert "Lowest validation loss: lr=2e-05, 1.1200 at step 100" in text
    assert "lr=5e-05, by step 30" in text and "Overfit: lr=5e-05 from step 40" in text
    assert "Answer: lr=2e-05 converges fastest without overfitting (by step 60)" in text


def test_the_verdict_without_validation_one_run_and_failed_runs(tmp_path):
    make_run(tmp_path, "a", 1e-5, created_at=1.0, history=history_for(1e-5, validation=False))
    make_run(tmp_path, "b", 5e-5, created_at=2.0, history=history_for(5e-5, validation=False))
    make_run(tmp_path, "c", 2e-5, created_at=3.0, status="failed", error="CUDA out of memory")
    found = verdict(list_runs(tmp_path))
    assert found["metric"] == "loss" and "uses training loss" in found["text"]
    assert found["overfit"] == {} and found["fastest_without_overfitting"] is None
    assert "Not judged: lr=2e-05 (failed)" in found["text"]
    assert found["lowest"]["label"] == "lr=5e-05"  # its training loss falls furthest

    single = verdict([r for r in list_runs(tmp_path) if r.id == "a"])
    assert "Only one run" in single["text"] and single["lowest"]["run"] == "a"
    empty = verdict([r for r in list_runs(tmp_path) if r.id == "c"])
    assert empty["metric"] is None and "Cannot judge" in empty["text"]


def test_the_table_shows_outcomes_and_only_the_settings_that_differ(sweep):
    table = runs_table(sweep)
    assert list(table["run"]) == ["lr-2", "lr-1", "lr-0"]  # newest first, as listed
    assert "learning_rate" in table.columns and "batch_size" not in table.columns
    row = table.set_index("run").loc["lr-1"]
    assert row["best val loss"] == 1.12 and row["best val step"] == 100
    assert row["data"] == "dates.jsonl" and "/srv/uploads" not in table.to_string()
    assert row["held-out (before → after)"] == "0% → 100%" and row["duration (s)"] == 157.0
    assert json.dumps(runs_rows(sweep))  # the JSON form serialises as is


def test_overlay_figures_have_one_trace_per_run_named_by_learning_rate(sweep):
    figures = overlay_figures(sweep)
    assert set(figures) == {"loss", "eval_loss", "learning_rate"}
    for fig in figures.values():
        assert sorted(trace.name for trace in fig.data) == ["lr=1e-05", "lr=2e-05", "lr=5e-05"]
        assert len({trace.line.color for trace in fig.data}) == 3
    assert all("markers" in trace.mode for trace in figures["eval_loss"].data)

    nothing = overlay_figures([])
    assert not nothing["loss"].data and nothing["loss"].layout.annotations


def test_an_unreadable_run_does_not_break_the_comparison(sweep, tmp_path):
    (tmp_path / "lr-0" / "config.json").write_text("{broken")
    runs = list_runs(tmp_path)
    assert {r.status for r in runs} == {"completed", "unreadable"}
    found = verdict(runs)
    assert "config.json is not valid JSON" in found["text"] and found["lowest"]["label"] == "lr=2e-05"
    assert len(runs_table(runs)) == 3 and len(overlay_figures(runs)["loss"].data) == 2


def test_the_report_is_one_offline_html_file_with_escaped_names(tmp_path):
    runs_root = tmp_path / "runs"
    make_run(runs_root, "lr-0", 1e-5, created_at=1.0)
    make_run(runs_root, "lr-1", 2e-5, created_at=2.0)
    make_run(runs_root, "lr-2", 5e-5, created_at=3.0, data_name="<script>alert(1)</script>")
    runs = list_runs(runs_root)

    path = write_report(runs, tmp_path / "report" / "compare.html")
    html = path.read_text(encoding="utf-8")
    assert list(path.parent.iterdir()) == [path]
    assert escape(verdict(runs)["text"]) in html
    assert "converges fastest without overfitting" in html
    assert html.count("Plotly.newPlot(") == 3 and "cdn.plot.ly" not in html
    assert "<script src" not in html and html.count("plotly.js v") >= 1  # the bundle itself, inline
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
