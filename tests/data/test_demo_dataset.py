"""The bundled demo dataset: its generator, its shape, and its held-out set."""

import importlib.util
import json
from collections import Counter

from conftest import ROOT

from finetune.data.dataset import prepare
from finetune.evaluate.metrics import comparison_rows, score, summarise_scores
from finetune.train.config import TrainConfig

spec = importlib.util.spec_from_file_location("make_demo", ROOT / "assets" / "make_demo.py")
make_demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_demo)


def test_generator_output_is_the_committed_file():
    assert make_demo.main(["--check"]) == 0, "run: python assets/make_demo.py"


def test_shape_tasks_and_splits():
    records = make_demo.generate()
    tasks = Counter((r["task"], r["split"]) for r in records)
    for task in make_demo.TASKS:
        assert tasks[(task, "train")] == make_demo.TRAIN_PER_TASK
        assert tasks[(task, "heldout")] == make_demo.HELD_OUT_PER_TASK
    general = [r for r in records if r["category"] == "general"]
    assert len(general) == len(make_demo.GENERAL) and all(r["split"] == "heldout" for r in general)
    assert all(set(r) == {"instruction", "input", "output", "split", "category", "task"} for r in records)
    assert all(r["output"].strip() and r["instruction"].strip() for r in records)


def test_no_held_out_prompt_appears_in_training():
    records = make_demo.generate()
    train = {(r["instruction"], r["input"]) for r in records if r["split"] == "train"}
    held = [(r["instruction"], r["input"]) for r in records if r["split"] == "heldout"]
    assert held and not train.intersection(held)
    assert len(set(held)) == len(held)


def test_answers_are_checkable():
    for record in make_demo.generate():
        if record["task"] == "json":
            assert set(json.loads(record["output"])) == {"name", "age", "city"}
        if record["task"] == "dates":
            year, month, day = record["output"].split("-")
            assert len(year) == 4 and len(month) == 2 and len(day) == 2


def test_engine_uses_the_marked_split_and_categories(tiny_tokenizer):
    prepared = prepare(TrainConfig(data=str(ROOT / "assets" / "demo" / "demo.jsonl")), tiny_tokenizer)
    held = prepared.held_out
    assert len(held) == len(make_demo.TASKS) * make_demo.HELD_OUT_PER_TASK + len(make_demo.GENERAL)
    assert Counter(h.category for h in held) == {"task": 20, "general": 10}
    trained_questions = {e.messages[0]["content"] for e in prepared.split.train + prepared.split.validation}
    assert not any(h.question.split("\n\n")[0] in trained_questions and h.category == "general" for h in held)


def test_scorer_exact_and_normalised_match():
    matches = ("exact", "normalised", "contains")
    assert {m: score("2021-03-05", "2021-03-05")[m] for m in matches} == {m: True for m in matches}
    assert {m: score(" Paris. ", "paris")[m] for m in matches} == {"exact": False, "normalised": True, "contains": True}
    assert score("The capital of France is Paris.", "Paris")["contains"]
    assert not score("Parisian", "Paris")["contains"]
    assert not any(score(None, "x").values()), "no answer scores nothing, on every metric"


def test_scores_are_summarised_per_category(tiny_tokenizer):
    from finetune.data.dataset import HeldOutPrompt

    held = [HeldOutPrompt("p", "q1", "2021-03-05", "task", "dates"), HeldOutPrompt("p", "q2", "Paris", "general")]
    rows = comparison_rows(held, ["March 5", "Paris"], ["2021-03-05", "Rome"])
    scores = summarise_scores(rows)
    assert scores["task"]["before_exact"] == 0.0 and scores["task"]["after_exact"] == 1.0
    assert scores["general"]["before_exact"] == 1.0 and scores["general"]["after_exact"] == 0.0
    assert scores["all"]["prompts"] == 2
