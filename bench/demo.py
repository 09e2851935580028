"""Train the quick-demo preset on the bundled demo dataset and print the
before/after scores (not a test: it takes minutes).

    python -m bench.demo                 # the default model, as the app's first run does
    python -m bench.demo --output runs/demo --json bench/results/demo.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from finetune.runs.run import TrainingRun
from finetune.train import config as cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--output", default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    config = cfg.build({"model": args.model}, preset="quick-demo")
    output = Path(args.output or tempfile.mkdtemp(prefix="demo-run-"))
    started = time.time()
    run = TrainingRun(config, output).start()
    while not (snapshot := run.wait(timeout=10)).finished:
        print(f"  {snapshot.status} step {snapshot.step}/{snapshot.max_steps} {time.time() - started:.0f}s",
              file=sys.stderr)
    snapshot = run.wait()  # the worker's clean-up ends before the process does
    if snapshot.status != "completed":
        print(f"error: {snapshot.error}", file=sys.stderr)
        return 1
    wall = time.time() - started
    scores = snapshot.scores
    print(f"quick-demo on {snapshot.model}, {snapshot.hardware}: {snapshot.step} steps, {wall:.0f} s wall "
          f"(load, before answers, training, after answers), {snapshot.tokens_per_second or 0:.0f} tokens/s")
    print(f"{'prompts':<10}{'n':>4}{'before exact':>14}{'after exact':>13}{'before norm.':>14}{'after norm.':>13}")
    for name in ("task", "general", "all"):
        s = scores.get(name, {})
        print(f"{name:<10}{s.get('prompts', 0):>4}{s.get('before_exact', 0):>14.0%}{s.get('after_exact', 0):>13.0%}"
              f"{s.get('before_normalised', 0):>14.0%}{s.get('after_normalised', 0):>13.0%}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "hardware": snapshot.hardware,
                                               "model": snapshot.model, "wall_seconds": round(wall, 1),
                                               "steps": snapshot.step, "scores": scores}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
