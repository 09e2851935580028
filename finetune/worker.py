"""What a TrainingRun's thread does, start to finish: load, answer the
held-out prompts with the base model, train, answer them again, save."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from . import dataset, device, models
from .acceleration import compile_layers
from .collate import PackingCollator
from .config import TrainConfig
from .evaluate import comparison_rows, generate, summarise_scores
from .files import DataError
from .plan import planned_steps, warmup_steps
from .trainer import CheckpointError, LabTrainer, NonFiniteLossError, RunCallback, last_complete_checkpoint


def execute(run) -> dict:
    """Everything up to the run's outcome; returns the final snapshot's changes,
    which the run publishes once its files are written."""
    config = run.config
    hardware = device.detect(config.precision)
    run.hardware = hardware
    source = models.resolve(config.model, run.allowed_model_roots)
    run.model_source = source
    model, tokenizer = models.load(source, token=run._token)
    run.tokenizer = tokenizer
    prepared = run.prepared or dataset.prepare(config, tokenizer, token=run._token)
    run.prepared = prepared
    resume_from = last_complete_checkpoint(run.folder.checkpoints_dir) if run.resume else None
    resumed_step = int(Path(resume_from).name.rsplit("-", 1)[1]) if resume_from else None
    run.folder.prepare(keep_metrics_until=resumed_step)
    steps = planned_steps(len(prepared.train), config)
    run.folder.write_json("config.json", resolved_config(config, source.label, prepared, hardware))
    run._update(status="baseline", message="answering the held-out prompts with the base model",
                max_steps=steps, hardware=hardware.describe(), model=source.label,
                train_examples=len(prepared.train), train_tokens=prepared.train_tokens,
                history=tuple(run.folder.read_metrics()), step=resumed_step or 0)
    model.to(hardware.device)
    prompts = [item.prompt for item in prepared.held_out]
    before = generate(model, tokenizer, prompts, config.max_new_tokens, autocast_dtype=hardware.autocast_dtype)
    run._update(comparison=tuple(comparison_rows(prepared.held_out, before, None)))

    if config.method == "lora":
        model = _with_lora(model, config)
    trainer = build_trainer(config, model, tokenizer, prepared, hardware, run.folder.checkpoints_dir,
                            callbacks=[RunCallback(run.record, lambda: run.stop_requested, lambda: trainer),
                                       *run.extra_callbacks])
    if trainer.compiled:
        run._update(hardware=hardware.describe() + ", compiled")
    if not run.stop_requested:
        run._update(status="training", message="training")
        trainer.train(resume_from_checkpoint=resume_from)
    stopped = run.stop_requested

    run._update(status="finishing", message="saving the model and answering the held-out prompts again")
    final = model.merge_and_unload() if config.method == "lora" else model
    save_model(final, tokenizer, run.folder.model_dir)
    after = generate(final, tokenizer, prompts, config.max_new_tokens, autocast_dtype=hardware.autocast_dtype)
    rows = comparison_rows(prepared.held_out, before, after)
    run.folder.write_json("comparison.json", rows)
    run.folder.write_csv("comparison.csv", rows, ["category", "task", "prompt", "reference", "before", "after"])
    run.trained_model = final
    return {"status": "stopped" if stopped else "completed", "comparison": tuple(rows),
            "scores": summarise_scores(rows),
            "message": "stopped: the checkpoint and model are saved" if stopped else "training complete"}


def resolved_config(config: TrainConfig, model_label: str, prepared, hardware) -> dict:
    return {
        **config.to_dict(),
        "resolved": {
            "model": model_label, "format": prepared.format, "template": prepared.template,
            "train_examples": len(prepared.train), "validation_examples": len(prepared.validation),
            "held_out_prompts": len(prepared.held_out), "device": hardware.device, "precision": hardware.precision,
            "steps": planned_steps(len(prepared.train), config),
        },
    }


def _with_lora(model, config: TrainConfig):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def build_trainer(config: TrainConfig, model, tokenizer, prepared, hardware, checkpoints_dir,
                  callbacks=()) -> LabTrainer:
    """The engine's Trainer for a config: packed rows, response-only chunked
    loss, fused AdamW, cosine schedule to a minimum learning rate."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback, PrinterCallback, TrainingArguments

    steps = planned_steps(len(prepared.train), config)
    has_validation = bool(prepared.validation)
    eval_steps = config.eval_steps or max(1, steps // 10)
    on_gpu = hardware.device == "cuda"
    args = TrainingArguments(
        output_dir=str(checkpoints_dir),
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1, learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm, warmup_steps=warmup_steps(config, steps),
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": config.min_lr_ratio},
        optim="adamw_torch_fused",  # fused on CPU too (torch>=2.4): one kernel instead of a loop per tensor
        logging_steps=1, logging_first_step=True, logging_nan_inf_filter=False,
        eval_strategy="steps" if has_validation else "no", eval_steps=eval_steps,
        save_strategy="steps" if config.save_steps else "no", save_steps=config.save_steps or 500,
        save_total_limit=2, metric_for_best_model="eval_loss" if has_validation else None, greater_is_better=False,
        seed=config.seed, data_seed=config.seed, bf16=hardware.precision == "bf16",
        fp16=hardware.precision == "fp16", use_cpu=not on_gpu, report_to="none", disable_tqdm=True,
        remove_unused_columns=False, dataloader_pin_memory=on_gpu, dataloader_num_workers=2 if on_gpu else 0,
    )
    callbacks = list(callbacks)
    if config.early_stopping_patience and has_validation:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    model.to(hardware.device)
    compiled = _should_compile(config, prepared) and compile_layers(model, hardware.device, hardware.autocast_dtype)
    trainer = LabTrainer(
        model=model, args=args, train_dataset=_to_dataset(Dataset, prepared.train),
        eval_dataset=_to_dataset(Dataset, prepared.validation) if has_validation else None,
        data_collator=_collator(tokenizer, config, on_gpu),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # progress is the caller's to show (stderr in the CLI)
    trainer.compiled = compiled
    return trainer


def _collator(tokenizer, config: TrainConfig, on_gpu: bool) -> PackingCollator:
    # Rows of ~256 tokens on a CPU: attention over a row costs its length squared,
    # masked pairs included, and there it outweighs ~10% padding (measured by
    # bench.throughput). A GPU wants fewer, wider rows, padded to tensor-core sizes.
    return PackingCollator(tokenizer.pad_token_id, pack=config.packing, pad_to_multiple=64 if on_gpu else 8,
                           row_tokens=512 if on_gpu else 256)


COMPILE_WORTHWHILE_TOKENS = 100_000


def _should_compile(config: TrainConfig, prepared) -> bool:
    """'auto' compiles runs long enough to repay the compile time (seconds to a
    minute) with the ~10-30% faster steps: 100k training tokens or more."""
    if config.compile != "auto":
        return config.compile == "on"
    steps = planned_steps(len(prepared.train), config)
    tokens_per_example = prepared.train_tokens / max(len(prepared.train), 1)
    return steps * config.examples_per_step * tokens_per_example >= COMPILE_WORTHWHILE_TOKENS


def _to_dataset(dataset_class, encoded):
    return dataset_class.from_dict({"input_ids": [e.input_ids for e in encoded], "labels": [e.labels for e in encoded]})


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
