"""What a TrainingRun's thread does, start to finish: load, answer the
held-out prompts with the base model, train, answer them again, save.

The thread body sees a narrow interface: the run's Job (config, run folder,
model source, prepared data), the hub token, `publish(**changes)` for the run's
snapshot, `record(entry)` for each logged metric and `stop_requested()`. It
returns a RunResult; it never touches the run object itself.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import dataset, device, models
from .config import TrainConfig
from .evaluate import generate
from .metrics import comparison_rows, summarise_scores
from .files import DataError
from .plan import Plan, plan
from .run import Job
from .trainer import (CheckpointError, NonFiniteLossError, RunCallback, build_trainer, last_complete_checkpoint,
                      with_lora)


@dataclass(frozen=True)
class RunResult:
    """What a finished thread hands back to its run."""

    status: str  # "completed" | "stopped"
    message: str
    source: models.ModelSource
    hardware: device.Hardware
    template: str  # how prompts were rendered ("chat" | "alpaca"), for free-text questions later
    comparison: tuple[dict, ...]
    scores: dict


def execute(job: Job, token: str | None, publish: Callable[..., None], record: Callable[[dict], None],
            stop_requested: Callable[[], bool]) -> RunResult:
    """Everything up to the run's outcome. Raises on failure; the caller turns
    the error into a failed run."""
    config, folder = job.config, job.folder
    hardware = device.detect(config.precision)
    model, tokenizer = models.load(job.source, token=token, progress=lambda text: publish(message=text))
    prepared = job.prepared or dataset.prepare(config, tokenizer, token=token)
    run_plan = job.plan or plan(config, len(prepared.train), prepared.train_tokens)
    resume_from = last_complete_checkpoint(folder.checkpoints_dir) if job.resume else None
    resumed_step = int(Path(resume_from).name.rsplit("-", 1)[1]) if resume_from else None
    folder.prepare(keep_metrics_until=resumed_step)
    folder.write_json("config.json", resolved_config(job, prepared, hardware, run_plan))
    publish(status="baseline", message="answering the held-out prompts with the base model", plan=run_plan,
            max_steps=run_plan.steps, hardware=hardware.describe(), model=job.source.label,
            train_examples=len(prepared.train), train_tokens=prepared.train_tokens,
            history=tuple(folder.read_metrics()), step=resumed_step or 0,
            comparison=tuple(comparison_rows(prepared.held_out, None, None)))
    model.to(hardware.device)
    prompts = [item.prompt for item in prepared.held_out]
    before = generate(model, tokenizer, prompts, config.max_new_tokens, autocast_dtype=hardware.autocast_dtype)
    publish(comparison=tuple(comparison_rows(prepared.held_out, before, None)))

    model = _train(job, model, tokenizer, prepared, hardware, run_plan, resume_from, publish, record,
                   stop_requested)
    stopped = stop_requested()

    publish(status="finishing", message="saving the model and answering the held-out prompts again")
    final = model.merge_and_unload() if config.method == "lora" else model
    save_model(final, tokenizer, folder.model_dir)
    after = generate(final, tokenizer, prompts, config.max_new_tokens, autocast_dtype=hardware.autocast_dtype)
    rows = comparison_rows(prepared.held_out, before, after)
    folder.write_json("comparison.json", rows)
    folder.write_csv("comparison.csv", rows, ["category", "task", "prompt", "reference", "before", "after"])
    return RunResult(
        status="stopped" if stopped else "completed",
        message="stopped: the checkpoint and model are saved" if stopped else "training complete",
        source=job.source, hardware=hardware, template=prepared.template, comparison=tuple(rows), scores=summarise_scores(rows),
    )


def _train(job: Job, model, tokenizer, prepared, hardware, run_plan: Plan, resume_from: str | None, publish, record,
           stop_requested):
    """Train (unless a stop came first); returns the model that was trained (LoRA-wrapped or not)."""
    config = job.config
    if config.method == "lora":
        model = with_lora(model, config)
    trainer = build_trainer(config, model, tokenizer, prepared, hardware, job.folder.checkpoints_dir, run_plan,
                            callbacks=[RunCallback(record, stop_requested, lambda: trainer), *job.callbacks])
    if trainer.compiled:
        publish(hardware=hardware.describe() + ", compiled")
    if not stop_requested():
        publish(status="training", message="training")
        trainer.train(resume_from_checkpoint=resume_from)
    return model


def resolved_config(job: Job, prepared, hardware, run_plan: Plan) -> dict:
    return {
        **job.config.to_dict(), "data": job.data_name,
        "resolved": {
            "model": job.source.label, "format": prepared.format, "template": prepared.template,
            "train_examples": len(prepared.train), "validation_examples": len(prepared.validation),
            "held_out_prompts": len(prepared.held_out), "device": hardware.device, "precision": hardware.precision,
            "steps": run_plan.steps,
        },
    }


def save_model(model, tokenizer, target: Path) -> None:
    """safetensors + tokenizer, written to a temporary folder then renamed,
    so a reader never sees half a model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".model-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def explain_failure(err: BaseException, config: TrainConfig) -> str:
    """One clear line for the user, with what to change where there is something."""
    if isinstance(err, CheckpointError):
        return f"{err}; free disk space, then resume: the last complete checkpoint is kept"
    if isinstance(err, (NonFiniteLossError, DataError, models.ModelError)):
        return str(err)
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in text.lower() \
            or "can't allocate memory" in text.lower():
        advice = [f"the batch size (now {config.batch_size}; raise gradient accumulation to keep the step size)",
                  f"the max length (now {config.max_length})"]
        if config.method == "full":
            advice.append("or switch the method to LoRA")
        return "out of memory: lower " + ", ".join(advice)
    if isinstance(err, OSError) and getattr(err, "errno", None) == 28:
        return f"the disk is full: {text}"
    return f"training failed: {type(err).__name__}: {text}"
