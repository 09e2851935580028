"""The Compare tab's "Standard benchmarks and judge" section, from a run's
scores: a row per benchmark with its change and interval, the judge's counts
and caveat, what went wrong when something did, and how to turn them on."""

import json
from types import SimpleNamespace

import pytest

from finetune.evaluate.benchmarks import TaskScores, benchmarks_record
from finetune.evaluate.judge import JudgeResult, Verdict, judge_record
from finetune.runs.records import write_record
from finetune.sources.files import Limits
from ui.views.evidence_views import TITLE, evidence_markdown, run_evidence


def scores():
    before = {"boolq_100": TaskScores("boolq_100", (0,) * 20 + (1,) * 20)}
    after = {"boolq_100": TaskScores("boolq_100", (1,) * 40)}
    judged = judge_record(JudgeResult((Verdict(0.9, 0.7), Verdict(0.9, 0.2), Verdict(0.1, 0.3)), 0.8),
                          "Some|Judge <b>", judge_is_base=True)
    return {"all": {"prompts": 3}, "benchmarks": benchmarks_record(before, after), "judge": judged}


def test_the_section_shows_each_benchmark_and_the_judge():
    text = evidence_markdown(scores(), "completed")
    assert text.startswith(TITLE)
    row = next(line for line in text.splitlines() if line.startswith("| reading (BoolQ)"))
    assert "| 40 | 50% | 100% | +50 (" in row and row.endswith("| better |")
    assert "1 wins, 1 ties, 1 losses" in text and "Position consistency 67%" in text
    assert "prefer its own answers" in text
    assert "Some\\|Judge &lt;b&gt;" in text, "a run's text cannot break the table or inject HTML"


def test_failures_are_shown_in_place_of_the_results():
    text = evidence_markdown({"benchmarks": {"error": "the standard benchmarks failed before training: X"},
                              "judge": {"error": "the judge failed: ModelError: no such model"}}, "completed")
    assert "**Benchmarks:** the standard benchmarks failed before training: X" in text
    assert "**Judge:** the judge failed: ModelError: no such model" in text and "| benchmark |" not in text


def test_without_results_it_says_how_to_get_them_or_when_they_come():
    assert "Hyperparameters tab" in evidence_markdown(None)
    assert "Hyperparameters tab" in run_evidence(SimpleNamespace(scores={"all": {}}, status="completed"))
    assert "when it ends" in run_evidence(SimpleNamespace(scores={}, status="training"))


def test_the_compare_tab_shows_the_section_for_a_past_run(tmp_path, tiny_model_dir):
    gr = pytest.importorskip("gradio")
    from ui.lab import Lab
    from ui.tabs import compare_tab

    lab = Lab(str(tiny_model_dir), tmp_path / "runs", None, Limits())
    folder = lab.output_root / "past"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "tiny"}))
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "steps": 4, "scores": scores()}))
    write_record(folder, status="completed", created_at=1.0)
    with gr.Blocks():
        tab = compare_tab.build(lab, 32)
    assert "Hyperparameters tab" in tab.evidence.value, "before any run is picked"
    shown = compare_tab.show_run(lab, tab, lab.scheduler.owner(""), "past")
    assert "| reading (BoolQ) |" in shown[tab.evidence] and "1 wins, 1 ties, 1 losses" in shown[tab.evidence]
    assert tab.evidence in compare_tab.held_out_outputs(tab), "the latest run's section follows the Train tab"
