"""python -m finetune sweep|runs|compare-runs: the experiments side of the
command line, on the same scheduler, records and comparison as the app
(`runs --delete RUN...` deletes runs by the scheduler's rules, as the app's button does)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..diagnose import curves, findings
from ..experiments import compare as experiments
from ..experiments import sweep
from ..runs import records, sweep_records
from ..train import config as cfg

DEFAULT_ROOT = "runs"
DEFAULT_SWEEP = f"{sweep.DEFAULT_SETTING}={','.join(f'{v:g}' for v in sweep.DEFAULT_VALUES)}"


def add_parsers(commands, add_train_flags) -> None:
    run_sweep = commands.add_parser("sweep", help="one run per value of one setting, then their comparison")
    run_sweep.add_argument("--sweep", default=DEFAULT_SWEEP,
                           help=f"SETTING=V1,V2,... (default: {DEFAULT_SWEEP}, the tutorial's exercise)")
    run_sweep.add_argument("--output", "-o", default=DEFAULT_ROOT,
                           help="folder for the sweep folder and its runs (default: runs)")
    add_train_flags(run_sweep)
    listing = commands.add_parser("runs", help="list runs, one line each, or delete some (--delete)")
    listing.add_argument("--root", default=DEFAULT_ROOT, help="runs folder (default: runs)")
    listing.add_argument("--delete", nargs="+", metavar="RUN", default=None,
                         help="delete these runs (ids as listed) whole: their folders, models and checkpoints; "
                              "a run waiting or training is refused (stop it first)")
    compare = commands.add_parser("compare-runs", help="compare runs: a table, a verdict and an HTML report")
    compare.add_argument("folders", nargs="+", help="run folders")
    compare.add_argument("--report", default="compare-runs.html", help="HTML report to write")


def parse_sweep(text: str) -> tuple[str, list]:
    setting, _, values = text.partition("=")
    if not values:
        raise sweep.SweepError(f"--sweep wants SETTING=V1,V2,...; got {text!r}")
    setting = setting.strip().replace("-", "_")
    return setting, sweep.parse_values(setting, values)


def run_sweep(args: argparse.Namespace, checked: cfg.Checked, token: str | None) -> int:
    from ..experiments.scheduler import Scheduler, Submission

    setting, values = parse_sweep(args.sweep)
    members = sweep.member_settings(checked.config, setting, values, checked.allow_out_of_range)
    scheduler = Scheduler(Path(args.output))
    sweep_id, runs = scheduler.submit_sweep([Submission(m, token=token) for m in members],
                                            sweep.labels(setting, values), records.LOCAL_OWNER, setting, values)
    print(f"sweep {sweep_id}: {len(runs)} runs of {setting} = {', '.join(f'{v:g}' for v in values)}",
          file=sys.stderr)
    for number, run in enumerate(runs, 1):
        while not (snap := run.wait(timeout=2.0)).finished:
            pass
        print(f"[{number}/{len(runs)}] {run.identity.label}: {snap.status}, {snap.step} steps, "
              f"{snap.elapsed:.0f} s" + (f" ({snap.error})" if snap.error else ""), file=sys.stderr)
        print_findings(snap.diagnoses, run.identity.label or "")
    for run in runs:
        run.wait()  # its thread has closed the sweep (verdict in sweep.json) once the last one ends
    found = sweep_records.read_sweep(scheduler.root, sweep_id)
    print_comparison(found.runs)
    return 0 if all(r.status == "completed" for r in found.runs) else 1


def print_findings(diagnoses, label: str = "") -> None:
    """The failure modes a run showed, with evidence and advice, on stderr
    (stdout stays for results); `label` names a sweep's member."""
    lines = findings.found_lines(diagnoses)
    prefix = f"{label}: " if label else ""
    for line in lines:
        print(prefix + line if line.startswith("found") else line, file=sys.stderr)
    if diagnoses and not lines:
        print(f"{prefix}diagnosis: no failure mode found", file=sys.stderr)


def print_comparison(chosen) -> None:
    """The runs' table (with each run's held-out score against the best run's) and the verdict."""
    found = experiments.verdict(chosen) if len(chosen) > 1 else None
    table = experiments.runs_table(chosen, versus_best=True, held_out=found["held_out"] if found else None)
    print(table.to_string(index=False))
    if found:
        print()
        print(found["text"])


def run_runs(args: argparse.Namespace) -> int:
    if args.delete:
        return delete_runs(Path(args.root), args.delete)
    found = records.list_runs(Path(args.root))
    if not found:
        print(f"no runs in {args.root}", file=sys.stderr)
        return 0
    for record in found:
        print(_one_line(record))
    return 0


def delete_runs(root: Path, run_ids: list[str]) -> int:
    """All the runs named, or none (an unknown id or a run waiting or training stops it, with one line)."""
    from ..experiments.scheduler import Scheduler

    if not root.is_dir():
        raise ValueError(f"{root} is not a folder of runs")
    for run_id in run_ids:  # the app says "no such run" alone (an id is no proof a run exists); here, which
        if records.find_run(root, run_id) is None:
            raise records.NoSuchRun(f"no such run in {root}: {run_id}")
    deleted = Scheduler(root).delete(run_ids, records.LOCAL_OWNER)
    for run_id in deleted["deleted"]:
        print(f"deleted {run_id}")
    print(f"freed {deleted['freed_mb']:,.0f} MB", file=sys.stderr)
    return 0


def _one_line(record) -> str:
    if record.unreadable:
        return f"{record.id}  unreadable: {record.unreadable}"
    summary = record.summary or {}
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created_at)) if record.created_at else "?"
    parts = [record.id, when, record.status, record.label or "", record.data_name or "",
             f"{summary.get('steps', '?')} steps"]
    if summary.get("final_train_loss") is not None:
        parts.append(f"loss {summary['final_train_loss']:.4g}")
    best = curves.best(record.history)
    if best:
        parts.append(f"best val {best[1]:.4g} @ {best[0]}")
    return "  ".join(p for p in parts if p)


def run_compare(args: argparse.Namespace) -> int:
    from ..experiments.report import write_report

    chosen = [records.load_record(Path(folder)) for folder in args.folders]
    print_comparison(chosen)
    path = write_report(chosen, args.report)
    print(f"report: {path}", file=sys.stderr)
    return 0
