"""The Compare tab's "Standard benchmarks and judge" section, from a run's
scores: a row per benchmark with its change and interval, the judge's counts
and caveat, what went wrong when something did, and how to turn them on."""

from types import SimpleNamespace

from finetune.evaluate.benchmarks import TaskScores, benchmarks_record
from finetune.evaluate.judge import JudgeResult, Verdict, judge_record
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
