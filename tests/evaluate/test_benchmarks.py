"""The standard benchmarks: each bundled subset loads its 100 items through
lm-eval's TaskManager with no network, asks exactly what the lm-eval task it
mirrors asks, and scores a model item by item, so a base and a tuned model
pair up with an interval on their difference."""

import importlib.util
import socket
from pathlib import Path

import pytest
import torch

from finetune.evaluate import benchmarks
from finetune.evaluate.benchmarks import BENCHMARKS, BENCHMARKS_DIR, TASKS, benchmarks_record, load_tasks

LM_EVAL_TASKS = Path(importlib.util.find_spec("lm_eval").origin).parent / "tasks"
MIRRORED = {"boolq": "super_glue/boolq/default.yaml", "commonsense_qa": "commonsense_qa/default.yaml",
            "arithmetic_2da": "arithmetic/arithmetic_2da.yaml"}
# What decides what a model is asked and how its answer is scored.
PROMPT_FIELDS = ("output_type", "doc_to_text", "doc_to_choice", "target_delimiter")


@pytest.fixture
def connections(monkeypatch):
    """Every network connection attempted, refused and recorded (a refused one may be swallowed)."""
    attempts = []

    def refuse(sock, address, *args):
        attempts.append(address)
        raise OSError("the benchmarks must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def yaml_of(task: str) -> Path:
    return next(BENCHMARKS_DIR.rglob(f"{task}.yaml"))


def test_every_bundled_task_loads_its_100_items_offline(connections):
    tasks = load_tasks()
    assert sorted(tasks) == sorted(TASKS)
    for name, task in tasks.items():
        docs = list(task.validation_docs())
        assert len(docs) == 100, name
        for doc in docs:
            target, text = task.doc_to_target(doc), task.doc_to_text(doc)
            assert text.endswith("\nAnswer:"), (name, text[-40:])
            if task.config.doc_to_choice is not None:  # an index into the choices, or one of them
                choices = task.doc_to_choice(doc)
                assert target in range(len(choices)) or target in choices, (name, target)
            else:
                assert target.startswith(" ") and target.strip().isdigit(), (name, target)
    assert connections == []


def test_each_task_asks_what_the_lm_eval_task_it_mirrors_asks():
    from lm_eval.tasks._yaml_loader import load_yaml

    for bench in BENCHMARKS:
        ours = load_yaml(yaml_of(bench.task), resolve_func=False)
        theirs = load_yaml(LM_EVAL_TASKS / MIRRORED[bench.mirrors], resolve_func=False)
        for field in PROMPT_FIELDS:
            assert ours.get(field) == theirs.get(field), (bench.task, field)
        assert [m["metric"] for m in ours["metric_list"]] == [m["metric"] for m in theirs["metric_list"]]
        assert ours["validation_split"] == theirs["validation_split"] == "validation"


def test_boolq_targets_follow_the_true_false_labels():
    (task,) = load_tasks(["boolq_100"]).values()
    docs = list(task.validation_docs())
    yes = [d for d in docs if task.doc_to_choice(d)[task.doc_to_target(d)] == "yes"]
    assert yes and len(yes) == sum(1 for d in docs if d["label"] == "true")


def test_the_arithmetic_items_are_the_generators_and_add_up():
    path = BENCHMARKS_DIR / "arithmetic" / "make_arithmetic.py"
    spec = importlib.util.spec_from_file_location("make_arithmetic", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "validation.jsonl differs from what make_arithmetic.py generates"
    (task,) = load_tasks(["arithmetic_2da_100"]).values()
    for doc in task.validation_docs():
        a, b = (int(w.rstrip("?")) for w in doc["context"].split()[3:6:2])
        assert int(doc["completion"]) == a + b


def test_an_unknown_task_is_refused_naming_the_bundled_ones():
    with pytest.raises(ValueError, match="bundled: .*boolq_100"):
        load_tasks(["mmlu"])


@pytest.fixture(scope="module")
def tiny():
    import tiny as tiny_models

    tokenizer = tiny_models.build_tokenizer()
    return tiny_models.build_model(tokenizer, seed=0), tiny_models.build_model(tokenizer, seed=1), tokenizer


def test_two_models_are_scored_item_by_item_and_paired(tiny, connections):
    first, second, tokenizer = tiny
    first.train()
    rng = torch.random.get_rng_state()
    before = benchmarks.run_benchmarks(first, tokenizer, limit=4)
    after = benchmarks.run_benchmarks(second, tokenizer, limit=4)
    assert first.training, "the model's mode is given back"
    assert torch.equal(torch.random.get_rng_state(), rng), "lm-eval must not reseed the training that follows"
    assert connections == []
    for side in (before, after):
        assert set(side) == set(TASKS)
        for scores in side.values():
            assert len(scores.correct) == 4 and set(scores.correct) <= {0, 1}
            assert scores.accuracy == sum(scores.correct) / 4
    record = benchmarks_record(before, after)
    for task, entry in record.items():
        assert entry["items"] == 4 and entry["before"] == before[task].accuracy
        assert entry["difference"]["change"] == pytest.approx(after[task].accuracy - before[task].accuracy)
        assert entry["difference"]["low"] <= entry["difference"]["change"] <= entry["difference"]["high"]
        assert entry["sentence"].endswith(")") and entry["label"] in entry["sentence"]


def test_a_model_that_improves_on_every_item_is_called_better():
    before = {"arithmetic_2da_100": benchmarks.TaskScores("arithmetic_2da_100", (0,) * 30)}
    after = {"arithmetic_2da_100": benchmarks.TaskScores("arithmetic_2da_100", (1,) * 30)}
    entry = benchmarks_record(before, after)["arithmetic_2da_100"]
    assert entry["difference"]["verdict"] == "better"
    assert entry["sentence"].startswith("better on arithmetic (2-digit addition): +100 points")
    only_before = benchmarks_record(before, None)["arithmetic_2da_100"]
    assert only_before["after"] is None and "difference" not in only_before
