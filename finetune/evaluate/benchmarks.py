"""Standard benchmarks, offline: three bundled 100-item subsets scored by
lm-evaluation-harness on a model already in memory, item by item, so the
base and the tuned model pair up on the same items and their difference
gets an interval (significance.paired_difference).

    before = run_benchmarks(model, tokenizer)          # {task: TaskScores}
    ...train...
    after = run_benchmarks(model, tokenizer)
    record = benchmarks_record(before, after)          # per task: before, after, items, difference

Each subset is an lm-eval task config (assets/benchmarks/<kind>/<task>.yaml)
that copies the prompt, choices and metric of the lm-eval task it mirrors and
reads a bundled JSON-lines file instead of the hub (sources and licences:
assets/benchmarks/SOURCES.md). Nothing here opens a network connection: the
data are local files read by the `json` builder, and the model and tokenizer
are objects, not hub ids (tests/evaluate/test_benchmarks.py blocks sockets
to prove it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .. import ASSETS
from .significance import paired_difference

BENCHMARKS_DIR = ASSETS / "benchmarks"
# Items per forward pass. Every item is one short prompt (BoolQ's passages are
# the longest, ~150 tokens): 8 keeps the padding of a batch small on a CPU.
BENCHMARK_BATCH = 8


@dataclass(frozen=True)
class Benchmark:
    task: str  # the task's name in its YAML
    label: str  # what people read
    mirrors: str  # the lm-eval task whose prompt and metric it copies


BENCHMARKS = (
    Benchmark("boolq_100", "reading (BoolQ)", "boolq"),
    Benchmark("commonsense_qa_100", "common sense (CommonsenseQA)", "commonsense_qa"),
    Benchmark("arithmetic_2da_100", "arithmetic (2-digit addition)", "arithmetic_2da"),
)
TASKS = tuple(b.task for b in BENCHMARKS)


def benchmark(task: str) -> Benchmark:
    for found in BENCHMARKS:
        if found.task == task:
            return found
    return Benchmark(task, task, task)  # a task added under assets/benchmarks without an entry above


@dataclass(frozen=True)
class TaskScores:
    """One model on one task: the accuracy and each item's 0/1, in the file's order."""

    task: str
    correct: tuple[int, ...]

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct) if self.correct else float("nan")


def load_tasks(tasks: Sequence[str] = TASKS, root: Path | str = BENCHMARKS_DIR) -> dict:
    """The named tasks as lm-eval Task objects, their documents read from the
    bundled files: {name: Task}."""
    manager, configs = _task_configs(tasks, root)
    return manager.load(configs)["tasks"]


def _task_configs(tasks: Sequence[str], root: Path | str):
    """A TaskManager that knows only the bundled tasks (indexing lm-eval's
    thousands of its own takes seconds), and each task's config with its
    data_files made absolute: they are relative to the YAML, and lm-eval would
    read them relative to the working directory."""
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml  # the reader TaskManager itself uses

    manager = TaskManager(include_path=str(Path(root)), include_defaults=False)
    unknown = [t for t in tasks if t not in manager.all_subtasks]
    if unknown:
        raise ValueError(f"unknown benchmark {', '.join(unknown)}; bundled: {', '.join(manager.all_subtasks)}")
    configs = []
    for name in tasks:
        path = Path(manager.task_index[name].yaml_path)
        config = load_yaml(path, resolve_func=True)
        files = config["dataset_kwargs"]["data_files"]
        config["dataset_kwargs"] = {**config["dataset_kwargs"],
                                    "data_files": {split: str(path.parent / f) for split, f in files.items()}}
        configs.append(config)
    return manager, configs


def run_benchmarks(model, tokenizer, tasks: Sequence[str] = TASKS, *, limit: int | None = None,
                   batch_size: int = BENCHMARK_BATCH, autocast_dtype: torch.dtype | None = None,
                   root: Path | str = BENCHMARKS_DIR) -> dict[str, TaskScores]:
    """Score `model` (already loaded and placed) on each task, zero-shot as
    lm-eval does: {task: TaskScores}. `limit` keeps each task's first items.
    The model's train/eval mode is restored after; the process's random seeds
    are left alone (lm-eval would reseed them, changing the training that follows)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    manager, configs = _task_configs(tasks, root)
    was_training = model.training
    try:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, mixed_precision_dtype=autocast_dtype)
        results = simple_evaluate(lm, tasks=configs, task_manager=manager, limit=limit, bootstrap_iters=0,
                                  log_samples=True, random_seed=None, numpy_random_seed=None, torch_random_seed=None)
    finally:
        model.train(was_training)
    return {name: _task_scores(name, results["samples"][name]) for name in tasks}


def _task_scores(task: str, samples: list[dict]) -> TaskScores:
    ordered = sorted(samples, key=lambda s: s["doc_id"])
    if [s["doc_id"] for s in ordered] != list(range(len(ordered))):
        raise ValueError(f"{task}: lm-eval returned items {[s['doc_id'] for s in ordered]}, not the first "
                         f"{len(ordered)} in order")
    return TaskScores(task, tuple(int(s["acc"]) for s in ordered))


def benchmarks_record(before: dict[str, TaskScores] | None, after: dict[str, TaskScores] | None) -> dict:
    """What a run's summary keeps (its scores' "benchmarks" entry): per task the
    accuracy before and after, the items, and the paired difference with its
    sentence once both sides are measured."""
    record = {}
    for task in (before or after or {}):
        b, a = (before or {}).get(task), (after or {}).get(task)
        about = benchmark(task)
        entry = {"label": about.label, "mirrors": about.mirrors, "items": len((b or a).correct),
                 "before": round(b.accuracy, 4) if b else None, "after": round(a.accuracy, 4) if a else None}
        if b and a:
            difference = paired_difference(b.correct, a.correct).to_dict(where=f"on {about.label}")
            entry.update(difference=difference, sentence=difference["sentence"])
        record[task] = entry
    return record


def items_table(before: dict[str, TaskScores] | None, after: dict[str, TaskScores] | None) -> dict:
    """benchmarks.json: each task's items right (1) or wrong (0) before and after, to see which changed."""
    return {task: {"before": list(before[task].correct) if before and task in before else None,
                   "after": list(after[task].correct) if after and task in after else None}
            for task in (before or after or {})}
