"""python -m finetune train|inspect|estimate|sweep|runs|compare-runs|export|push|chat: the same engine the app drives, headless.

Flags are built from TrainConfig's fields (--learning-rate for learning_rate),
so the command line offers every setting the app has, with the same help.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from ..diagnose import findings
from ..evaluate.metrics import change_lines, readings
from ..runs import records
from ..train import config as cfg
from ..train.presets import PRESETS
from . import chat as cli_chat
from . import runs as cli_runs
from . import share

SHORT_ALIASES = {"grad_accum": ["--gradient-accumulation"], "data": ["-d"], "model": ["-m"]}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    groups = {}
    for f in cfg.fields():
        group_name = f.metadata["group"]
        group = groups.setdefault(group_name, parser.add_argument_group(f"{group_name} settings"))
        help_text = f.metadata["help"]
        bounds = cfg.recommended_range(f, "full")
        if bounds:
            help_text += f" Recommended {bounds[0]:g}..{bounds[1]:g}."
        help_text += f" Default: {f.default!r}."
        kwargs = {"dest": f.name, "default": None, "help": help_text.replace("%", "%%")}
        if cfg.choices(f) is not None:
            kwargs["choices"] = cfg.choices(f)
        group.add_argument(_flag(f.name), *SHORT_ALIASES.get(f.name, []), **kwargs)


def _add_train_flags(parser: argparse.ArgumentParser) -> None:
    """The settings of a run: a config file, a preset, the allow switch, and a flag per setting."""
    parser.add_argument("--config", default=None, help="JSON file of settings; flags override it")
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS), help="start from a preset")
    parser.add_argument("--allow-out-of-range", action="store_true",
                        help="accept values outside the recommended ranges (with a warning)")
    _add_config_flags(parser)


def build_parser() -> argparse.ArgumentParser:
    # The installed `finetune` command names itself so; `python -m finetune` runs this module.
    prog = "finetune" if Path(sys.argv[0]).name == "finetune" else "python -m finetune"
    parser = argparse.ArgumentParser(prog=prog, description="Fine-tune a causal language model.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="fine-tune a model on a dataset file")
    train.add_argument("--output", "-o", default=None, help="output folder (default: runs/<time>)")
    train.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint in --output")
    _add_train_flags(train)
    cli_runs.add_parsers(commands, _add_train_flags)
    inspect = commands.add_parser("inspect", help="describe a dataset file without training")
    inspect.add_argument("file")
    inspect.add_argument("--examples", type=int, default=2, help="rendered examples to show")
    for name in ("model", "format", "prompt_column", "response_column", "system_column", "template",
                 "system_prompt", "max_length"):
        f = cfg.field_by_name(name)
        inspect.add_argument(_flag(name), dest=name, default=None, choices=cfg.choices(f),
                             help=f.metadata["help"].replace("%", "%%"))
    _add_estimate_parser(commands)
    share.add_parsers(commands)
    cli_chat.add_parser(commands)
    return parser


# Flags of `estimate`, each passed to cli.estimate.estimate_command as text (it checks them, in one line).
ESTIMATE_FLAGS = {
    "model": "a model: 'default', a local folder, a config.json, a hub id (online), or llama-2-7b",
    "params": "parameter count (e.g. 7e9), with --layers, --hidden and --vocab instead of a model",
    "layers": "decoder layers", "hidden": "hidden size", "vocab": "vocabulary size",
    "intermediate": "MLP width (default: Llama's 8/3 x hidden, rounded up to 256)",
    "heads": "attention heads", "kv_heads": "key/value heads (grouped-query attention)",
    "tied": "input and output embeddings shared (true/false)",
    "precision": "autocast precision: bf16, fp16 or fp32 ('auto': what the engine picks on this machine)",
    "weights": "precision of the trained weights: fp32 (master weights) or bf16",
    "method": "full, lora or qlora", "batch": "examples per micro-batch",
    "length": "tokens per example (max length for the worst case; the mean length for packed rows)",
    "checkpointing": "gradient checkpointing (true/false)", "optimizer": "adamw or adamw_8bit",
    "lora_r": "LoRA rank", "grad_accum": "gradient accumulation steps",
    "recipe": "'engine' (this lab: fp32 master weights with autocast) or 'classic-mixed' (the textbook "
              "fp16 mixed precision: half working copy + fp32 master, 16 bytes per parameter)",
    "objective": "sft, dpo or kto: DPO puts two sequences per example through the model (--length is one: "
                 "the prompt with its longer reply)",
    "precompute_ref": "a preference run's reference log-probabilities computed once before training (true/false): "
                      "false holds a copy of the weights in full fine-tuning",
    "device": "cuda, cpu or mps: TRL's output layer keeps more on a device without Triton (default: this machine's)",
}
SHAPE_FLAGS = ("model", "params", "layers", "hidden", "vocab")


def _add_estimate_parser(commands) -> None:
    estimate = commands.add_parser(
        "estimate", help="the memory a fine-tuning run needs, term by term, with its arithmetic",
        description="Without a model or its numbers, answers the tutorial's exercise: a 7B model, fp16 mixed "
                    "precision with AdamW, gradient checkpointing, sequence 2048, batch 4.")
    for name, help_text in ESTIMATE_FLAGS.items():
        estimate.add_argument(_flag(name), dest=name, default=None, help=help_text)


def run_estimate(args: argparse.Namespace) -> int:
    from ..memory.tutorial import tutorial_text
    from .estimate import estimate_command

    given = _values(args, ESTIMATE_FLAGS)
    if not any(name in given for name in SHAPE_FLAGS):
        if not given:
            print(tutorial_text())
            return 0
        given["model"] = "llama-2-7b"  # the tutorial's model, with the settings given
        print("no model given: estimating for the tutorial's 7B model (llama-2-7b)", file=sys.stderr)
    print(estimate_command(given))
    return 0


def _values(args: argparse.Namespace, names) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _token() -> str | None:
    return os.environ.get("HF_TOKEN") or None


def _checked_settings(args: argparse.Namespace) -> cfg.Checked:
    values = records.load_settings(args.config) if args.config else {}
    values.update(_values(args, [f.name for f in cfg.fields()]))
    checked = cfg.build(values, preset=args.preset, allow_out_of_range=args.allow_out_of_range)
    for warning in checked.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not checked.config.data:
        raise cfg.ConfigError("--data is required")
    return checked


def run_train(args: argparse.Namespace) -> int:
    from ..runs.run import TrainingRun
    from ..train import ranks

    checked = _checked_settings(args)
    output = Path(args.output or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    main = ranks.is_main()  # asked before the run's thread starts, so one thread sets up the process group
    run = TrainingRun(checked, output, token=_token(), resume=args.resume).start()
    snapshot = _follow(run, quiet=not main)
    if main:
        cli_runs.print_findings(snapshot.diagnoses)  # a failed run's divergence is named too
    if snapshot.status == "failed":
        print(f"error: {snapshot.error}", file=sys.stderr)
        return 1
    if not main:
        return 0  # under torchrun or accelerate launch, the main process reports
    changes = print_changes(output)
    print_evidence(snapshot.scores)
    print(json.dumps({"status": snapshot.status, "output": str(output), "steps": snapshot.step,
                      "scores": snapshot.scores.get("all", {}),
                      "general_probe": snapshot.scores.get("general_probe"),
                      "change": {category: {**reading.difference.to_dict(), **reading.to_dict()}
                                 for category, reading in readings(changes).items()},
                      "found": [d["name"] for d in findings.found(snapshot.diagnoses)]}))
    return 0


def print_changes(output: Path) -> dict:
    """The run's before -> after, per category, read on its headline metric with its
    95% interval, as one verdict (evaluate.metrics.readings: the same on every screen)
    (stderr: stdout stays for the JSON result). Returns summary.json's "changes"."""
    from ..runs.outputs import RunFolder

    summary = RunFolder(output).read_json("summary.json")
    changes = summary.get("changes") if isinstance(summary.get("changes"), dict) else {}
    for line in change_lines(changes, summary.get("scores")):
        print(line, file=sys.stderr)
    return changes


def print_evidence(scores: dict) -> None:
    """One line per standard benchmark and one for the judge, with their
    sentences (or why they are missing), on stderr (stdout stays for the result)."""
    from ..evaluate.judge import judge_sentence  # imports torch: only a command that trained needs it

    benchmarks, judged = scores.get("benchmarks") or {}, scores.get("judge") or {}
    if "error" in benchmarks:
        print(f"benchmarks: {benchmarks['error']}", file=sys.stderr)
    for entry in (e for e in benchmarks.values() if isinstance(e, dict)):
        shares = " -> ".join(f"{entry[side]:.0%}" if entry.get(side) is not None else "n/a"
                             for side in ("before", "after"))
        print(f"benchmark {entry['label']}: {shares} of {entry['items']} items"
              + (f"; {entry['sentence']}" if entry.get("sentence") else ""), file=sys.stderr)
    if judged:
        print(f"judge: {judged['error'] if 'error' in judged else judge_sentence(judged)}", file=sys.stderr)


def _follow(run, quiet: bool = False) -> "object":
    """Progress lines on stderr until the run ends (none when `quiet`); Ctrl-C asks for a clean stop."""
    if not quiet:
        run.watch(ProgressLines())
    while True:
        try:
            snapshot = run.wait(timeout=1.0)
        except KeyboardInterrupt:
            print("stopping at the next step (Ctrl-C again to abort)...", file=sys.stderr)
            run.stop()
            continue
        if snapshot.finished:
            # Let the worker thread finish its clean-up: exiting while it still
            # runs torch code aborts the interpreter at shutdown.
            return run.wait()


class ProgressLines:
    """Watches a run (TrainingRun.watch): a line for each status message and each logged
    step as the run makes it, so none is missed however quickly the next one follows."""

    def __init__(self):
        self.shown_status, self.shown = None, 0

    def __call__(self, snapshot) -> None:
        if (snapshot.status, snapshot.message) != self.shown_status:
            print(f"[{snapshot.status}] {snapshot.message}", file=sys.stderr)
            self.shown_status = (snapshot.status, snapshot.message)
        for entry in snapshot.history[self.shown:]:
            print(_progress_line(entry, snapshot), file=sys.stderr)
        self.shown = len(snapshot.history)  # a non-main process records no history


def _progress_line(entry: dict, snapshot) -> str:
    parts = [f"step {entry['step']}/{snapshot.max_steps}", f"epoch {entry.get('epoch', 0):.2f}"]
    for key, label in (("loss", "loss"), ("eval_loss", "validation loss"), ("learning_rate", "lr"),
                       ("tokens_per_second", "tokens/s")):
        if key in entry:
            parts.append(f"{label} {entry[key]:.4g}")
        if key == "eval_loss" and key in entry and entry[key] < 50:  # exp(50) is no perplexity anyone reads
            parts.append(f"validation perplexity {math.exp(entry[key]):.4g}")
    return "  " + ", ".join(parts)


def run_inspect(args: argparse.Namespace) -> int:
    from ..data import dataset
    from ..data.render import Renderer
    from ..sources import models

    config = cfg.build({**_values(args, ["model", "format", "prompt_column", "response_column", "system_column",
                                         "template", "system_prompt", "max_length"]), "data": args.file}).config
    tokenizer = models.load_tokenizer(models.resolve(config.model), token=_token(),
                                      progress=lambda text: print(text, file=sys.stderr))
    table, normalised = dataset.load_examples(config, token=_token())
    renderer = Renderer(tokenizer, config.template, config.system_prompt)
    encoded = {id(e): renderer.encode(e) for e in normalised.examples}
    report = dataset.quality_report(normalised.examples, encoded, config.max_length, normalised)
    report.pop("lengths")
    found = _data_advice(normalised.examples, config)
    for item in found:
        print(f"{item.severity}: {item.title}. {item.advice}", file=sys.stderr)
    print(json.dumps({
        "file": table.source, "format": normalised.format, "records": len(table.records), "columns": table.columns,
        "template": renderer.template_name,
        "examples": [renderer.render(e)[0] for e in normalised.examples[: max(args.examples, 0)]],
        "quality": report, "notices": normalised.notices, "advice": [item.to_dict() for item in found],
    }, indent=2, ensure_ascii=False))
    return 0


def _data_advice(examples, config: cfg.TrainConfig):
    """The data advice on the split a run with these settings would make (a
    leak between held-out and training prompts depends on it)."""
    from ..data import advice, dataset

    split = dataset.split_examples(examples, config.held_out, config.validation_fraction, config.seed)
    return advice.data_advice(split.train, split.validation, split.held_out)


def main(argv: list[str] | None = None) -> int:
    from ..experiments.scheduler import QueueFull
    from ..runs.records import NoSuchRun
    from ..runs.run import RunBusyError
    from ..sources.files import DataError
    from ..sources.models import ModelError

    args = build_parser().parse_args(argv)
    commands = {"train": run_train, "inspect": run_inspect, "estimate": run_estimate, "runs": cli_runs.run_runs,
                "compare-runs": cli_runs.run_compare,
                "export": share.run_export, "push": share.run_push, "chat": cli_chat.run_chat,
                "sweep": lambda a: cli_runs.run_sweep(a, _checked_settings(a), _token())}
    try:
        return commands[args.command](args)
    except (cfg.ConfigError, DataError, ModelError, RunBusyError, QueueFull, NoSuchRun, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
