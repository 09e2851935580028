"""What each evaluation adds to a run, against the run's own training time.

One quick-demo-sized run on the default model with every evaluation on: the
held-out answers (always), the general probe, the standard benchmarks and the
judge (the base model). Each phase is timed from the run's progress messages,
polled every POLL seconds in this process, and printed as seconds and as a
ratio to the training phase. Then the base model is loaded again and the
three benchmarks are timed one at a time (not a test: it takes many minutes).

    python -m bench.evaluation_cost --json bench/results/evaluation-cost-cpu-2core-<date>.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from finetune.evaluate import benchmarks
from finetune.runs.run import TrainingRun
from finetune.sources import models
from finetune.train import config as cfg
from finetune.train import device

POLL = 0.1  # seconds between snapshots: the shortest phase (the probe) takes seconds
# Each evaluation's phases, by how its progress message starts (finetune/runs/measures.py).
PHASES = {
    "held-out answers": ("answering the held-out prompts", "saving the model and answering the held-out prompts"),
    "general probe": ("answering the general-capability probe",),
    "benchmarks": ("scoring the standard benchmarks",),
    "judge": ("the judge ",),
}


def phase_of(status: str, message: str) -> str:
    if status == "training":
        return "training"
    for name, starts in PHASES.items():
        if message.startswith(starts):
            return name
    return status  # loading, queued, finishing's other messages


def timed_run(config: cfg.TrainConfig, output: Path) -> tuple[dict[str, float], object]:
    """Seconds spent in each phase of one run, from its snapshots."""
    spent: dict[str, float] = {}
    run = TrainingRun(config, output).start()
    last, phase = time.perf_counter(), "loading"
    while True:
        snapshot = run.wait(timeout=POLL)
        now = time.perf_counter()
        spent[phase] = spent.get(phase, 0.0) + now - last
        last, phase = now, phase_of(snapshot.status, snapshot.message)
        if snapshot.finished:
            return spent, run.wait()


def benchmarks_one_by_one(autocast_dtype) -> dict[str, float]:
    """Each bundled benchmark on the base model alone, in seconds."""
    model, tokenizer = models.load(models.resolve("default"))
    seconds = {}
    for task in benchmarks.TASKS:
        started = time.perf_counter()
        benchmarks.run_benchmarks(model, tokenizer, [task], autocast_dtype=autocast_dtype)
        seconds[task] = round(time.perf_counter() - started, 1)
        print(f"  {task}: {seconds[task]:.0f} s", file=sys.stderr)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    config = cfg.build({"model": args.model, "general_probe": True, "benchmarks": True, "judge": "base"},
                       preset="quick-demo").config
    load_before = os.getloadavg()[0]
    spent, snapshot = timed_run(config, Path(tempfile.mkdtemp(prefix="evaluation-cost-")))
    if snapshot.status != "completed":
        print(f"error: {snapshot.error}", file=sys.stderr)
        return 1
    training = spent.get("training", 0.0)
    print(f"quick-demo on {snapshot.model}, {snapshot.hardware}: {snapshot.step} steps, training {training:.0f} s")
    print(f"{'evaluation':<18}{'seconds':>9}{'x training':>12}   (before and after training together)")
    for name in PHASES:
        print(f"{name:<18}{spent.get(name, 0.0):>9.0f}{spent.get(name, 0.0) / training:>12.2f}")
    per_task = benchmarks_one_by_one(device.detect(config.precision).autocast_dtype)
    print("benchmarks one by one on the base model: "
          + ", ".join(f"{task} {s:.0f} s" for task, s in per_task.items()) + f" (total {sum(per_task.values()):.0f} s)")
    scores = snapshot.scores
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"), "hardware": snapshot.hardware, "model": snapshot.model,
            "cpu_count": os.cpu_count(), "load_average_at_start": round(load_before, 2),
            "load_average_at_end": round(os.getloadavg()[0], 2), "steps": snapshot.step,
            "held_out_prompts": scores.get("all", {}).get("prompts"),
            "seconds": {name: round(value, 1) for name, value in spent.items()},
            "ratio_to_training": {name: round(spent.get(name, 0.0) / training, 3) for name in PHASES},
            "benchmark_seconds_one_by_one": per_task,
            "benchmarks": {task: {k: e.get(k) for k in ("before", "after", "items", "sentence")}
                           for task, e in scores.get("benchmarks", {}).items() if isinstance(e, dict)},
            "judge": {k: scores.get("judge", {}).get(k) for k in ("wins", "ties", "losses", "win_rate", "interval",
                                                                   "position_consistency", "label_mass", "sentence",
                                                                   "error")},
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
