"""The preference lesson, measured: a DPO run on the bundled pairs
(assets/preference/pairs.jsonl), from the command line as a student's would
run, timed phase by phase, with what it changed (the held-out preference
accuracy before -> after with its interval), what it cost (the general probe)
and its memory estimate beside the measured peak (not a test: it takes minutes).

    python -m bench.preference_demo --json bench/results/preference-demo-cpu-2core-<date>.json
    python -m bench.preference_demo --parent runs/<supervised run>   # continue from a supervised run
    python -m bench.preference_demo --supervised                    # run quick-demo first, then continue from it
    python -m bench.preference_demo -- --learning-rate 2e-5         # anything after -- goes to `train`

Each phase is timed from the `[status] message` lines `train` prints on stderr; the
run's CPU time is kept beside its wall time, which other work on the machine stretches.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from finetune.evaluate.metrics import readings
from finetune.memory.estimate import GIB

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "assets" / "preference" / "pairs.jsonl"


def timed_train(arguments: list[str], output: Path) -> dict:
    """Run `python -m finetune train ... --output OUTPUT`; its wall time, and the seconds
    between one `[status] message` line on stderr and the next, summed by message."""
    command = [sys.executable, "-m", "finetune", "train", *arguments, "--output", str(output)]
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = last = time.perf_counter()
    phases: dict[str, float] = {}
    phase = "starting"
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for line in process.stderr:
        if line.startswith("["):
            now = time.perf_counter()
            phases[phase] = phases.get(phase, 0.0) + now - last
            last, phase = now, line.strip()[:90]
        print(line, end="", file=sys.stderr)
    process.wait()
    end = time.perf_counter()
    phases[phase] = phases.get(phase, 0.0) + end - last
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The process's own CPU time: on a machine shared with other work the wall time stretches, this does not
    # (much): with one thread it is about the wall time the run would take alone.
    cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
    return {"command": " ".join(["python -m finetune train", *arguments]), "returncode": process.returncode,
            "wall_seconds": round(end - started, 1), "cpu_seconds": round(cpu, 1),
            "phases": {k: round(v, 1) for k, v in phases.items()}}


def figures(output: Path) -> dict:
    """What the run's summary.json says it changed and cost, and its memory."""
    summary = json.loads((output / "summary.json").read_text())
    scores = summary.get("scores") or {}
    found = readings(summary.get("changes"))
    lines = {c: r.line((scores.get(c) or {}).get("pairs" if c == "preference" else "prompts"))
             for c, r in found.items()}
    memory = summary.get("memory") or {}
    peak, estimate = memory.get("peak_bytes"), memory.get("estimate_bytes")
    history = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evaluations = [e for e in history if "eval_rewards/accuracies" in e]
    return {
        "status": summary.get("status"), "steps": summary.get("steps"), "hardware": summary.get("hardware"),
        "duration_seconds": summary.get("duration_seconds"),
        "preference": {"scores": scores.get("preference"), "verdict": found["preference"].verdict
                       if "preference" in found else None},
        "readings": lines,
        "validation_preference_accuracy": [(e["step"], round(e["eval_rewards/accuracies"], 3)) for e in evaluations],
        "final_margin": next((round(e["rewards/margins"], 3) for e in reversed(history) if "rewards/margins" in e),
                             None),
        "diagnoses_found": [d.get("title") or d.get("name") for d in summary.get("diagnoses") or ()
                            if d.get("status") == "FOUND"],
        "memory": {"estimate_gib": round(estimate / GIB, 2) if estimate else None,
                   "peak_gib": round(peak / GIB, 2) if peak else None, "peak_kind": memory.get("peak_kind"),
                   "estimate_over_peak": round(estimate / peak, 2) if estimate and peak else None,
                   "estimate_text": memory.get("estimate_text")},
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", default=None, help="a finished supervised run folder to continue from")
    parser.add_argument("--supervised", action="store_true", help="train quick-demo first and continue from it")
    parser.add_argument("--which", default="best", choices=("best", "final"))
    parser.add_argument("--output", default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    root = Path(args.output or tempfile.mkdtemp(prefix="preference-demo-"))
    result: dict = {"date": time.strftime("%Y-%m-%d"), "cpu_count": os.cpu_count(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load_average_at_start": os.getloadavg()}
    parent = Path(args.parent) if args.parent else None
    if args.supervised:
        parent = root / "supervised"
        result["supervised"] = timed_train(["--preset", "quick-demo", "--model", "default"], parent)
        result["supervised"].update(figures(parent))
    model = "default"
    if parent is not None:
        model = str(parent / ("best" if args.which == "best" and (parent / "best").is_dir() else "model"))
    result["preference_run"] = timed_train(["--preset", "dpo-demo", "--data", str(PAIRS), "--model", model,
                                            *extra], root / "dpo")
    result["preference_run"].update(model=model, **figures(root / "dpo"))
    result["load_average_at_end"] = os.getloadavg()
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0 if result["preference_run"]["returncode"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
