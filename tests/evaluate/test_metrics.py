"""The metrics registry: each score against values worked out by hand or by the libraries' own examples."""

import json

import pytest

from finetune.data.dataset import HeldOutPrompt
from finetune.evaluate.metrics import (
    METRICS,
    aligned_after_scores,
    change_lines,
    comparison_rows,
    metric_changes,
    readings,
    score,
    score_changes,
    summarise_scores,
    with_scores,
)
from finetune.export import bundle as export


def test_registry_has_every_metric_the_tutorial_names():
    assert list(METRICS) == ["exact", "normalised", "contains", "token_f1", "rouge_l", "bleu"]


def test_one_word_changed_in_six():
    # "the cat sat on the mat" vs "... a mat": 5 of 6 words shared, in order.
    scores = score("the cat sat on the mat", "the cat sat on a mat")
    assert scores["token_f1"] == pytest.approx(5 / 6)
    assert scores["rouge_l"] == pytest.approx(5 / 6)
    assert scores["bleu"] == pytest.approx(0.537, abs=0.001)  # sacrebleu's 53.7, scaled to 0..1
    assert scores["exact"] == 0.0


def test_token_f1_counts_words_not_order_and_ignores_case_and_punctuation():
    # answer 3 words, reference 2, 2 shared: precision 2/3, recall 1, F1 0.8.
    assert score("Paris, in France.", "france paris")["token_f1"] == pytest.approx(0.8)
    # ROUGE-L wants order: the longest common subsequence is one word.
    assert score("Paris, in France.", "france paris")["rouge_l"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_non_latin_answers_are_scored():
    # rouge-score's own tokenizer drops every non-[a-z0-9] character and would give 0 here.
    assert score("東京 です", "東京 です")["token_f1"] == 1.0
    assert score("Zürich", "zürich")["rouge_l"] == 1.0


def test_identical_answers_score_one_and_unrelated_zero():
    same, other = score("2021-03-05", "2021-03-05"), score("banana", "2021-03-05")
    assert all(value == pytest.approx(1.0) for value in same.values())
    assert other["token_f1"] == other["rouge_l"] == other["bleu"] == 0.0


def test_empty_answers_never_crash():
    assert score("", "Paris")["bleu"] == 0.0 and score("", "Paris")["token_f1"] == 0.0
    assert score("", "")["bleu"] == 1.0 and score("", "")["rouge_l"] == 1.0
    assert score(None, "Paris") == {name: 0.0 for name in METRICS}


def test_new_metrics_flow_to_summary_and_model_card(tmp_path):
    held = [HeldOutPrompt(question="q1", reference="the cat sat on a mat", category="task", task="t", prompt="q1"),
            HeldOutPrompt(question="q2", reference="Paris", category="task", task="t", prompt="q2")]
    rows = comparison_rows(held, ["dog", "Rome"], ["the cat sat on the mat", "Paris"])
    summary = summarise_scores(rows)
    assert summary["task"]["after_token_f1"] == pytest.approx((5 / 6 + 1) / 2, abs=1e-4)
    assert summary["task"]["before_bleu"] == 0.0
    (tmp_path / "summary.json").write_text(json.dumps({"scores": summary}))
    card = export.model_card(tmp_path)
    assert "ROUGE-L before" in card and "BLEU after" in card and "token F1" in card


def held_out(task_before, task_after, general_before, general_after):
    """Rows of 0/1 answers: "right" matches the reference, anything else does not."""
    prompts = [HeldOutPrompt(f"t{i}", f"task {i}", "right", "task") for i in range(len(task_before))] + \
        [HeldOutPrompt(f"g{i}", f"general {i}", "right", "general") for i in range(len(general_before))]
    answer = {1: "Right.", 0: "wrong"}
    return comparison_rows(prompts, [answer[v] for v in task_before + general_before],
                           [answer[v] for v in task_after + general_after])


def test_each_category_gets_its_change_with_an_interval_and_a_sentence():
    rows = held_out([0] * 20, [1] * 16 + [0] * 4, [1] * 10, [1] * 9 + [0])
    changes = score_changes(rows)
    assert list(changes) == ["all", "task", "general"] and set(changes["task"]) == {*METRICS, "reading"}
    task = changes["task"]["normalised"]
    assert task["n"] == 20 and task["change"] == pytest.approx(0.8) and task["low"] > 0.5 and task["high"] < 1
    assert task["verdict"] == "better"
    # One metric's sentence names its metric: it is not the category's verdict.
    assert task["sentence"].startswith("better on the task prompts (normalised): +80 points, 95% interval +53 to +92")
    assert changes["task"]["reading"]["verdict"] == "better" and changes["task"]["reading"]["metric"] == "normalised"
    assert changes["task"]["reading"]["sentence"].startswith("better on the task prompts: +80 points")
    assert changes["general"]["normalised"]["verdict"] == "no measurable change"  # one answer lost of ten
    assert changes["all"]["exact"]["change"] == 0.0  # "Right." is never the reference character for character
    json.dumps(changes, allow_nan=False)
    lines = change_lines(changes, summarise_scores(rows))
    assert lines[1].startswith("task (20 prompts), normalised 0% → 80%: better on the task prompts: +80 points")
    # The general questions are open: read on "contains" (the reference is a fact the answer states).
    assert lines[2].startswith("general (10 prompts), contains 100% → 90%: no measurable change on the general")


def test_only_prompts_answered_before_and_after_are_paired():
    prompts = [HeldOutPrompt(f"p{i}", f"q{i}", "right", "task") for i in range(4)]
    assert score_changes(comparison_rows(prompts, ["wrong"] * 4, None)) == {}  # training not over yet
    changes = metric_changes([*comparison_rows(prompts, ["wrong"] * 4, ["right"] * 4),
                              {"before_score": None, "after_score": {"normalised": 1.0}}], "task", ["normalised"])
    assert list(changes) == ["normalised"] and changes["normalised"]["n"] == 4


def test_a_probe_answer_gets_the_same_scores_as_a_held_out_one():
    scored = with_scores({"question": "Capital of France?", "reference": "Paris", "before": "Rome",
                          "after": "Paris.", "topic": "geography"})
    assert scored["before_score"]["normalised"] == 0.0 and scored["after_score"]["normalised"] == 1.0
    assert scored["topic"] == "geography"
    assert with_scores({"reference": "Paris", "before": "Rome", "after": None})["after_score"] is None


def test_two_runs_are_paired_prompt_by_prompt_whatever_their_order():
    prompts = [HeldOutPrompt(f"p{i}", f"q{i}", f"a{i}") for i in range(4)]
    first = comparison_rows(prompts, None, ["a0", "no", "a2", "no"])
    second = comparison_rows(prompts[::-1], None, ["a3", "no", "no", "a0"])  # the same prompts, reversed
    other_data = comparison_rows([HeldOutPrompt("x", "x?", "x")], None, ["x"])
    aligned = aligned_after_scores({"one": first, "two": second, "not answered": comparison_rows(prompts, None, None)})
    assert aligned == {"one": [1.0, 0.0, 1.0, 0.0], "two": [1.0, 0.0, 0.0, 1.0]}  # q0, q1, q2, q3 in both
    assert aligned_after_scores({"one": first, "other": other_data}) == {}  # no prompt in common
    repeated = [HeldOutPrompt("p", "same?", "a")] * 2
    twice = aligned_after_scores({"one": comparison_rows(repeated, None, ["a", "b"]),
                                  "two": comparison_rows(repeated, None, ["b", "b"])})
    assert twice == {"one": [1.0, 0.0], "two": [0.0, 0.0]}  # a prompt asked twice is two items


def shorter_answers(category="general_probe"):
    """45 open questions: before, sentences that state the fact (35) or do not (10);
    after, one word, right for 9 of them: the quick-demo probe's change of form."""
    rows = []
    for i in range(45):
        fact = f"fact{i}"
        before = f"The answer to this question is {fact}, as everyone knows." if i < 35 else "I do not know that."
        after = fact if i < 9 else "Something"
        rows.append(with_scores({"question": f"q{i}", "reference": fact, "category": category, "before": before,
                                 "after": after}))
    return rows


def test_metrics_that_move_in_opposite_directions_are_read_as_a_change_of_form_not_better():
    changes = score_changes(shorter_answers())
    probe = changes["general_probe"]
    assert probe["normalised"]["verdict"] == "better" and probe["contains"]["verdict"] == "worse"
    reading = probe["reading"]
    assert reading["verdict"] == "changed form" and reading["metric"] == "contains"
    assert reading["rose"][:2] == ["exact", "normalised"] and reading["fell"] == ["contains"]
    assert reading["sentence"].startswith(
        "the answers changed form on the general-knowledge probe: shorter answers (9 → 1 words on average) that "
        "match the reference exactly more often (0% → 20%), but contain the right answer less often (78% → 20%: "
        "-58 points, 95% interval -")
    line = change_lines(changes, summarise_scores(shorter_answers()))[-1]
    assert line.startswith("general_probe (45 prompts), contains 78% → 20%: the answers changed form")


def test_a_category_a_detector_found_degraded_is_never_called_better():
    rows = held_out([0] * 20, [1] * 16 + [0] * 4, [], [])
    found = score_changes(rows, {"task": ["mode collapse was found: 2 distinct answers to 20 prompts"]})
    reading = found["task"]["reading"]
    assert found["task"]["normalised"]["verdict"] == "better" and reading["verdict"] == "mixed"
    assert reading["sentence"].startswith("mixed on the task prompts: normalised better by +80 points, 95% interval "
                                          "+53 to +92, but mode collapse was found: 2 distinct answers to 20 prompts")
    assert score_changes(rows)["task"]["reading"]["verdict"] == "better"


def test_changes_written_before_readings_are_read_on_each_categorys_headline():
    changes = score_changes(shorter_answers("general"))
    old = {"general": {name: entry for name, entry in changes["general"].items() if name != "reading"}}
    read = readings(old)["general"]
    assert read.metric == "contains" and read.verdict == "changed form" and read.words is None
    assert read.sentence.startswith("the answers changed form on the general prompts: answers that match the "
                                    "reference exactly more often")
    assert readings({"task": {"normalised": {"n": "damaged"}}}) == {} and readings(None) == {}
