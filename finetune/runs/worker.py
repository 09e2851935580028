"""What a TrainingRun's thread does, start to finish: load, answer the
held-out prompts with the base model, train, answer them again, save.

The thread body sees a narrow interface: the run's Job (config, run folder,
model source, prepared data), the hub token, `publish(**changes)` for the run's
snapshot, `record(entry)` for each logged metric and `stop_requested()`. It
returns a RunResult; it never touches the run object itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..data import dataset
from ..data.render import IGNORE
from ..diagnose import findings
from ..evaluate import benchmarks as bench
from ..evaluate import preference, probe
from ..evaluate.generate import generate
from ..evaluate.metrics import comparison_rows, summarise_scores, with_scores
from ..memory import estimate as memory
from ..memory import peak
from ..sources import models
from ..sources.files import DataError
from ..train import device, levers, objectives, ranks
from ..train.config import TrainConfig, uses_adapters
from ..train.plan import Plan, plan
from ..train.trainer import (
    BestCheckpoint,
    CheckpointError,
    NonFiniteLossError,
    RunCallback,
    build_trainer,
    has_validation,
    checkpoint_step,
    keeps_best,
    last_complete_checkpoint,
    with_lora,
)
from .job import Job
from .measures import (
    answers_before,
    answers_on_main,
    benchmarks_on_main,
    general_probe,
    judge_on_main,
    place,
    preference_on_main,
    preference_pairs,
    probe_before_training,
    probe_on_main,
    validation_losses_on_main,
)
from .outputs import PREFERENCE_FILE, VALIDATION_LOSSES_FILE
from .resume import CHECKPOINT_KEPT
from .saving import adapter_base_name, best_keeper, merged_over_full_base, save_adapter, save_model, store_best_once


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
    # For the final diagnosis: the general probe's record (probe.probe_record; None when off or
    # it failed) and the training responses that memorisation compares answers against.
    probe: dict | None = None
    train_responses: tuple[str, ...] = ()
    # The preference evidence's record (preference.json; None without preference pairs or when
    # it failed), for the preference failure modes' "no preference learned".
    preference: dict | None = None


def execute(job: Job, token: str | None, publish: Callable[..., None], record: Callable[[dict], None],
            stop_requested: Callable[[], bool]) -> RunResult:
    """Everything up to the run's outcome. Raises on failure; the caller turns
    the error into a failed run. Under a multi-process launch every process
    trains; only the main one answers prompts and writes files (train/ranks.py)."""
    config, folder = job.config, job.folder
    hardware = device.detect(config.precision)
    # Started before the model loads, so the peak counts the weights, as the estimate does.
    meter = peak.PeakMemory(str(hardware.torch_device)).start()
    model, tokenizer = _load_model(job, hardware, token, publish)
    prepared = job.prepared or dataset.prepare(config, tokenizer, token=token)
    objectives.check_data(config, prepared)
    run_plan = job.plan if job.plan and ranks.num_processes() == 1 else \
        plan(config, *objectives.training_units(config, prepared), processes=ranks.num_processes())
    resume_from = last_complete_checkpoint(folder.checkpoints_dir) if job.resume else None
    resumed_step = checkpoint_step(resume_from) if resume_from else None
    if ranks.is_main():
        folder.prepare(keep_metrics_until=resumed_step)
        folder.write_json("config.json", resolved_config(job, prepared, hardware, run_plan))
    history = tuple(folder.read_metrics())  # a resumed run's curve up to its checkpoint; else empty
    record = findings.LiveDiagnoses(record, publish, config, history) if ranks.is_main() else _not_recorded
    publish(status="baseline", message="answering the held-out prompts with the base model", plan=run_plan,
            max_steps=run_plan.steps, hardware=hardware.describe(), model=job.source.label,
            train_examples=len(prepared.train), train_tokens=prepared.train_tokens,
            history=history, step=resumed_step or 0,
            comparison=tuple(comparison_rows(prepared.held_out, None, None)))
    place(model, hardware)
    prompts = [item.prompt for item in prepared.held_out]
    before, answers_reused = answers_before(job, model, tokenizer, prompts, hardware)
    publish(comparison=tuple(comparison_rows(prepared.held_out, before, None)))
    general = general_probe(config, publish)
    probe_before, probe_reused = probe_before_training(job, general, model, tokenizer, prepared, hardware, publish)
    pairs = preference_pairs(prepared)  # preference data only: which reply of unseen pairs the model prefers
    preferred_before = preference_on_main(pairs, model, config, hardware, publish, "before", job)
    failed: dict[str, str] = {}  # what the benchmarks or the judge could not measure, and why, for the summary
    bench_before = benchmarks_on_main(config, model, tokenizer, hardware, publish, "before", failed)

    keeper = best_keeper(job, tokenizer, models.saved_dtype(job.source, token), publish) \
        if keeps_best(config, has_validation(config, prepared)) else None
    model, trainer = _train(job, model, tokenizer, prepared, hardware, run_plan, resume_from, publish, record,
                            stop_requested, meter, keeper)
    stopped = stop_requested()

    publish(status="finishing", message="saving the model and answering the held-out prompts again")
    final, after = _save_and_answer(job, model, trainer, tokenizer, prompts, hardware, token)
    # Called on every process whenever the probe is on: the main one measures, the others wait at its barrier.
    probe_after = probe_on_main(general, final, tokenizer, prepared, config, hardware, publish, "after")
    preferred_after = preference_on_main(pairs, final, config, hardware, publish, "after")
    bench_after = benchmarks_on_main(config, final, tokenizer, hardware, publish, "after", failed)
    losses = validation_losses_on_main(final, prepared, hardware, publish, config.objective)
    del model, trainer, final  # the judge may be as big as the trained model: free it first
    judged = judge_on_main(job, token, prepared, before, after, hardware, publish, failed)
    rows = [{**row, "before_reused": answers_reused} if answers_reused else row
            for row in comparison_rows(prepared.held_out, before, after)]
    probe_found = probe.probe_record(general, probe_before, probe_after) if probe_before else None
    if probe_found and probe_reused:
        probe_found = {**probe_found, "before_reused": probe_reused}
    scores = summarise_scores(rows)
    if probe_found and probe_after:
        scores["general_probe"] = probe.scores_entry(probe_found)  # beside the task's, never mixed into "all"
    preference_found = preference.preference_record(pairs, preferred_before, preferred_after) \
        if preferred_before and preferred_after else None
    if preference_found:
        scores["preference"] = preference.scores_entry(preference_found)
    if bench_before or bench_after:  # beside the probe, per task, with the paired difference
        scores["benchmarks"] = bench.benchmarks_record(bench_before, bench_after)
    if judged:
        scores["judge"] = judged
    scores.update({key: {"error": why} for key, why in failed.items() if key not in scores})
    if ranks.is_main():
        folder.write_json("comparison.json", rows)
        folder.write_csv("comparison.csv", rows, ["category", "task", "prompt", "reference", "before", "after"])
        if probe_before:
            # Each question's scores too: summary.json's "changes" pairs them, as it pairs the held-out prompts'.
            answers = [with_scores(a) for a in probe.answers_table(general, probe_before, probe_after)]
            folder.write_json("probe.json", {**probe_found, "answers": answers})
        if losses:
            folder.write_json(VALIDATION_LOSSES_FILE, losses)
        if preference_found:
            folder.write_json(PREFERENCE_FILE, preference_found)
        if bench_before or bench_after:
            folder.write_json("benchmarks.json", {"summary": scores["benchmarks"],
                                                  "items": bench.items_table(bench_before, bench_after)})
    return RunResult(
        status="stopped" if stopped else "completed",
        message="stopped: the checkpoint and model are saved" if stopped else "training complete",
        source=job.source, hardware=hardware, template=prepared.template, comparison=tuple(rows), scores=scores,
        probe=probe_found, train_responses=training_responses(prepared), preference=preference_found,
    )


def training_responses(prepared) -> tuple[str, ...]:
    """The last assistant reply of each training example (none for plain-text data)."""
    return tuple(str(e.messages[-1].get("content") or "") for e in prepared.split.train
                 if e.is_chat and e.messages and e.messages[-1].get("role") == "assistant")


def _not_recorded(entry: dict) -> None:
    """A non-main process's metrics: the main process logs the same (gathered) values."""


def _load_model(job: Job, hardware: device.Hardware, token: str | None, publish):
    """The base model with the memory levers applied: the weights' dtype, QLoRA's
    4-bit quantization (placed on this process's GPU), the attention kernel."""
    config = job.config
    quantization = levers.quantization_config(config, hardware)
    return models.load(job.source, token=token, progress=lambda text: publish(message=text),
                       dtype=levers.weights_dtype(config, hardware), quantization_config=quantization,
                       device_map={"": hardware.index} if quantization else None,
                       attn_implementation=levers.attention_implementation(hardware))


def _train(job: Job, model, tokenizer, prepared, hardware, run_plan: Plan, resume_from: str | None, publish, record,
           stop_requested, meter: peak.PeakMemory, keeper: BestCheckpoint | None = None):
    """Train (unless a stop came first); returns the model that was trained (LoRA-wrapped or not) and its Trainer.
    The memory estimate is published before training and the measured peak after it. `keeper` goes first among
    the callbacks, so the time it spends saving is not counted as training time."""
    config = job.config
    if uses_adapters(config.method):
        model = with_lora(model, config)
    # The job's own callbacks (tests hold or fault a run through them) come before RunCallback, so a
    # stop asked while one of them holds step N lands on step N itself.
    trainer = build_trainer(config, model, tokenizer, prepared, hardware, job.folder.checkpoints_dir, run_plan,
                            callbacks=[*filter(None, [keeper]), *job.callbacks,
                                       RunCallback(record, stop_requested, lambda: trainer,
                                                   objectives.logged_keys(config.objective))],
                            alongside=bool(job.others_training and job.others_training()))
    publish(hardware=f"{hardware.describe()}; {trainer.checkpointing.reason}"
                     + ("; compiled" if trainer.compiled else ""))
    estimate = memory_estimate(model, config, hardware, prepared, trainer.checkpointing.on, job.source.label)
    publish(memory=estimate)
    if resume_from and ranks.is_main():  # the token count goes on from the checkpoint's, as the curve does
        trainer.tokens_seen = next((e["tokens_seen"] for e in reversed(job.folder.read_metrics())
                                    if isinstance(e.get("tokens_seen"), int)), 0)
    try:
        if not stop_requested():
            publish(status="training", message="training")
            trainer.train(resume_from_checkpoint=resume_from)
    finally:  # an out-of-memory failure is when the measured peak matters most
        # Read before saving and answering, which are not training (and save in another dtype).
        publish(memory={**estimate, "peak_bytes": meter.peak_bytes(), "peak_kind": meter.method})
    return model, trainer


def memory_estimate(model, config: TrainConfig, hardware, prepared, checkpointing: bool,
                    name: str | None = None) -> dict:
    """The estimate for this run, as Snapshot.memory wants it: packed rows hold
    batch x the mean example's tokens (padded ones batch x the longest), and
    only the response tokens reach the loss. `name`: the model as people know it
    (else its config's, a local folder's full path). A preference run's micro-batch
    holds its sequences padded to the longest (levers.pair_lengths)."""
    if config.objective != "sft" and prepared.train_pairs:
        per_example, fraction = levers.pair_lengths(prepared.train_pairs, config.max_length)
    else:
        lengths = [len(e.input_ids) for e in prepared.train] or [config.max_length]
        per_example = round(sum(lengths) / len(lengths)) if config.packing else max(lengths)
        targets = sum(sum(1 for t in e.labels if t != IGNORE) for e in prepared.train)
        fraction = min(max(targets / max(sum(lengths), 1), 0.01), 1.0)  # the estimator refuses 0
    found = levers.run_estimate(model, config, hardware, checkpointing, per_example, fraction, name)
    if found is None:
        return {}
    return {"estimate_bytes": int(found.peak_bytes), "estimate_text": memory.format_breakdown(found)}


def _save_and_answer(job: Job, model, trainer, tokenizer, prompts, hardware, token):
    """Save the trained model in the base model's dtype and answer the held-out
    prompts with it (main process); returns (the trained model, its answers or None)."""
    config, target = job.config, job.folder.model_dir
    dtype = models.saved_dtype(job.source, token)
    if trainer.is_fsdp_enabled:
        return _save_sharded(job, model, trainer, tokenizer, prompts, hardware, dtype, token)
    if uses_adapters(config.method) and ranks.is_main():  # the adapters alone too, before they are merged away
        save_adapter(model, tokenizer, job.folder.adapter_dir, dtype, adapter_base_name(job))
    if config.method == "qlora":
        merged = merged_over_full_base(model, job.source, dtype, token) if ranks.is_main() else None
        final = model
    else:
        final = merged = model.merge_and_unload() if uses_adapters(config.method) else model
    answers = None
    if ranks.is_main():
        save_model(merged, tokenizer, target, dtype=dtype)
        store_best_once(job.folder, trainer.state.global_step)  # a best at the last step: the same files, once
        answers = generate(final, tokenizer, prompts, config.max_new_tokens, autocast_dtype=hardware.autocast_dtype)
    ranks.barrier()
    return final, answers


def _save_sharded(job: Job, model, trainer, tokenizer, prompts, hardware, dtype, token):
    """FSDP: every process hands its shard to the full state dict (a collective),
    the main process saves it, and answers with the saved model once the
    sharded one has freed the GPU."""
    state = trainer.accelerator.get_state_dict(trainer.model)
    answers = None
    if ranks.is_main():
        state = {name: tensor.to(dtype) for name, tensor in state.items()}
        save_model(trainer.accelerator.unwrap_model(trainer.model), tokenizer, job.folder.model_dir, state_dict=state)
    del state, trainer
    device.release_memory()
    final = None
    if ranks.is_main():
        final, _ = models.load(models.resolve(str(job.folder.model_dir)), dtype=dtype)
        place(final, hardware)
        answers = generate(final, tokenizer, prompts, job.config.max_new_tokens, autocast_dtype=hardware.autocast_dtype)
    ranks.barrier()
    return final, answers


def resolved_config(job: Job, prepared, hardware, run_plan: Plan) -> dict:
    return {
        **job.config.to_dict(), "data": job.data_name, "model": job.folder.portable(job.config.model),
        "resolved": {
            "model": job.source.label, "format": prepared.format, "template": prepared.template,
            "train_examples": len(prepared.train), "validation_examples": len(prepared.validation),
            "held_out_prompts": len(prepared.held_out), "device": hardware.device, "precision": hardware.precision,
            "steps": run_plan.steps,
        },
    }


def explain_failure(err: BaseException, config: TrainConfig) -> str:
    """One clear line for the user, with what to change where there is something."""
    if isinstance(err, CheckpointError):
        return f"{err}; free disk space, then resume: {CHECKPOINT_KEPT}"
    if isinstance(err, (NonFiniteLossError, DataError, models.ModelError)):
        return str(err)
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in text.lower() \
            or "can't allocate memory" in text.lower():
        advice = [f"the batch size (now {config.batch_size}; raise gradient accumulation to keep the step size)",
                  f"the max length (now {config.max_length})"]
        if config.method == "full":
            advice.append("or switch the method to LoRA")
        if config.gradient_checkpointing != "on":
            advice.append("or turn gradient checkpointing on")
        return "out of memory: lower " + ", ".join(advice)
    if isinstance(err, OSError) and getattr(err, "errno", None) == 28:
        return f"the disk is full: {text}"
    return f"training failed: {type(err).__name__}: {text}"
