"""The metrics registry: each score against values worked out by hand or by the libraries' own examples."""

import json

import pytest

from finetune.data.dataset import HeldOutPrompt
from finetune.evaluate.metrics import METRICS, comparison_rows, score, summarise_scores
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
