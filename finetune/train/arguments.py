"""The Trainer's arguments for a run: every setting of the config the Trainer reads,
the same for the lab's supervised Trainer and TRL's preference trainers (whose
configs are TrainingArguments subclasses with their own fields added)."""

from __future__ import annotations

from . import levers
from .config import TrainConfig
from .plan import Plan


def training_arguments(config: TrainConfig, hardware, checkpoints_dir, plan: Plan, has_validation: bool,
                       checkpointing: bool, arguments_class=None, alongside: bool = False, **extra):
    """`arguments_class`: TrainingArguments, or a TRL config (a subclass) given its own `extra` fields.
    `alongside`: other runs train in this process; keep accelerate's configured state, which
    TrainingArguments otherwise resets (the other runs then fail mid-step)."""
    from transformers import TrainingArguments

    arguments_class = arguments_class or TrainingArguments
    on_gpu = hardware.device == "cuda"
    return arguments_class(
        output_dir=str(checkpoints_dir),
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1, learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm, warmup_steps=plan.warmup_steps,
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": config.min_lr_ratio},
        optim=levers.optimizer_name(config),
        **checkpointing_arguments(arguments_class, checkpointing),
        logging_steps=1, logging_first_step=True, logging_nan_inf_filter=False,
        eval_strategy="steps" if has_validation else "no", eval_steps=config.eval_steps or max(1, plan.steps // 10),
        save_strategy="steps" if config.save_steps else "no", save_steps=config.save_steps or 500,
        save_total_limit=2, metric_for_best_model="eval_loss" if has_validation else None, greater_is_better=False,
        seed=config.seed, data_seed=config.seed, bf16=hardware.precision == "bf16",
        fp16=hardware.precision == "fp16", use_cpu=hardware.device == "cpu", report_to="none", disable_tqdm=True,
        remove_unused_columns=False, dataloader_pin_memory=on_gpu, dataloader_num_workers=2 if on_gpu else 0,
        ddp_find_unused_parameters=False,  # every weight gets a gradient; the search costs a pass per step
        **({"accelerator_config": {"use_configured_state": True}} if alongside else {}),
        **extra,
    )


def checkpointing_arguments(arguments_class, on: bool) -> dict:
    """transformers 5.2x renamed gradient_checkpointing to activation_checkpointing;
    the GPU machines run older 5.x releases, which know only the old name."""
    name = "activation_checkpointing" if "activation_checkpointing" in arguments_class.__dataclass_fields__ \
        else "gradient_checkpointing"
    if not on:
        # TRL's configs turn checkpointing on by default: say off where the field exists.
        fields = arguments_class.__dataclass_fields__
        return {field: False for field in ("activation_checkpointing", "gradient_checkpointing")
                if field in fields and fields[field].default is True}
    # The non-reentrant variant works with inputs that need no gradient (frozen embeddings under LoRA).
    return {name: True, f"{name}_kwargs": {"use_reentrant": False}}
