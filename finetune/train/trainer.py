"""transformers' Trainer, taught three things: the response-only chunked loss
on packed rows, refusing a non-finite loss, and checkpoints that are never
used half-written; the callback that keeps the model at its lowest validation
loss; and the factory that builds it for a config (collator,
schedule, compile decision), which runs and benchmarks share."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer import TRAINER_STATE_NAME, TRAINING_ARGS_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..data.collate import PackingCollator
from . import levers, loggers, ranks
from .acceleration import compile_layers
from .config import TrainConfig
from .loss import response_loss
from .plan import Plan

COMPLETE_MARKER = "checkpoint-complete"


class NonFiniteLossError(RuntimeError):
    def __init__(self, step: int, value: float, what: str = "the training loss"):
        super().__init__(
            f"{what} became {value} at step {step}; the run was halted. Lower the learning rate "
            "or check the data for broken examples"
        )
        self.step = step


class CheckpointError(OSError):
    pass


class LabTrainer(Trainer):
    # compute_loss divides by the tokens of the whole optimizer step itself.
    loss_is_scaled_for_ga = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Makes the Trainer count the targets of all micro-batches of a step
        # (num_items_in_batch), so accumulation weighs every token equally.
        self.model_accepts_loss_kwargs = True
        self.tokens_seen = 0

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        # Count the optimizer step's targets from the collator's host-side list,
        # the same on every transformers version (whose own count has changed
        # between releases) and without a device sync.
        # Under several processes the count is summed across them, as transformers' own count is.
        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        return batches, ranks.sum_across(sum(int(b["targets"].numel()) for b in batches)) or None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        tokens = inputs.pop("num_tokens", 0)
        with self.accelerator.autocast():
            loss = response_loss(model, inputs, num_items_in_batch)
        if num_items_in_batch is not None:
            # The count covers every process's targets, and DDP/FSDP average the
            # gradients over the processes: scale back up (as transformers does).
            loss = loss * ranks.num_processes()
        if model.training:
            self.tokens_seen += int(tokens)
            # One host sync per micro-batch, the same the Trainer's own NaN filter costs;
            # a NaN must stop the run before it reaches the weights.
            value = loss.detach().float().item()
            if not math.isfinite(value):
                raise NonFiniteLossError(self.state.global_step + 1, value)
        # prediction_step slices outputs[1:] even when it only wants the loss.
        return (loss, {"loss": loss}) if return_outputs else loss

    def _save_checkpoint(self, model, trial):
        folder = Path(self.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        try:
            super()._save_checkpoint(model, trial)
            if self.args.should_save:  # the main process, once its save has finished
                _portable_checkpoint(folder, self.args)
                (folder / COMPLETE_MARKER).write_text(str(self.state.global_step))
        except OSError as err:
            shutil.rmtree(folder, ignore_errors=True)  # never leave a half-written checkpoint to resume from
            raise CheckpointError(f"saving the checkpoint at step {self.state.global_step} failed: {err}") from err


def _portable_checkpoint(folder: Path, args) -> None:
    """No absolute path of this machine in a checkpoint, so a run folder can be copied
    elsewhere: trainer_state.json keeps the best checkpoint's step but not its path
    (the Trainer finds that folder again from best_global_step at its next save,
    before it rotates checkpoints), and training_args.bin names the output folder
    by its name."""
    state_file = folder / TRAINER_STATE_NAME
    state = json.loads(state_file.read_text(encoding="utf-8")) if state_file.is_file() else {}
    if state.get("best_model_checkpoint") is not None:
        state["best_model_checkpoint"] = None
        state_file.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if (folder / TRAINING_ARGS_NAME).is_file():
        named = copy.copy(args)
        named.output_dir = Path(args.output_dir).name
        torch.save(named, folder / TRAINING_ARGS_NAME)


def last_complete_checkpoint(folder: str | os.PathLike) -> str | None:
    """The newest checkpoint whose save finished; half-written ones are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if (p / COMPLETE_MARKER).is_file()]
    return str(max(done, key=checkpoint_step)) if done else None


def checkpoint_step(path: str | Path) -> int:
    """The step a Trainer checkpoint folder (checkpoint-<step>) was saved at."""
    return int(Path(path).name.rsplit("-", 1)[1])


class RunCallback(TrainerCallback):
    """Observes the Trainer for a TrainingRun: every logged dict goes to the
    run's history; a stop request becomes save-and-stop at the next step."""

    def __init__(self, on_record, stop_requested, trainer_ref):
        self.on_record = on_record
        self.stop_requested = stop_requested
        self.trainer_ref = trainer_ref  # callable returning the trainer, for its token counter
        self._last_time = None
        self._last_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_time = time.perf_counter()
        self._last_tokens = self.trainer_ref().tokens_seen

    def on_evaluate(self, args, state, control, **kwargs):
        self._last_time = time.perf_counter()  # throughput counts training time only

    on_save = on_evaluate

    def on_step_end(self, args, state, control, **kwargs):
        # Every process stops at the same step (a stop may reach them at different
        # moments); one that trained on alone would wait for the others forever.
        if ranks.sum_across(int(self.stop_requested())):
            control.should_save = True
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        for key in ("loss", "eval_loss", "learning_rate", "grad_norm"):
            if logs.get(key) is None:
                continue
            value = float(logs[key])
            if math.isfinite(value):
                record[key] = value
            elif key in ("loss", "eval_loss"):  # never plotted as 0.0 or silently skipped
                raise NonFiniteLossError(state.global_step, value, "the validation loss" if key == "eval_loss"
                                         else "the training loss")
        if "loss" in record:
            now, tokens = time.perf_counter(), ranks.sum_across(self.trainer_ref().tokens_seen)
            elapsed = now - self._last_time
            if elapsed > 0 and tokens > self._last_tokens:
                record["tokens_per_second"] = round((tokens - self._last_tokens) / elapsed, 1)
            record["tokens_seen"] = tokens
            self._last_time, self._last_tokens = now, tokens
        if len(record) > 2:
            self.on_record(record)


def keeps_best(config: TrainConfig, has_validation: bool) -> bool:
    """Whether a run keeps its best model: asked for, measurable (a validation
    split) and not sharded by FSDP, whose weights only a collective gathers."""
    sharded = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    return config.keep_best == "eval_loss" and has_validation and not sharded


class BestCheckpoint(TrainerCallback):
    """Keeps the model at its lowest validation loss in `target` (the run's best/).

    At each evaluation that improves on the best so far, `save(model, folder,
    found)` writes the model and `found` ({step, eval_loss}) into a temporary
    folder beside `target`, which then replaces `target` whole: a save that
    fails or is killed halfway never replaces a good one. Only the main process
    writes. `best`: the one kept already (a resumed run's)."""

    def __init__(self, target, save, on_best=None, best: dict | None = None):
        self.target, self.save, self.on_best = Path(target), save, on_best
        self.best = best

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        loss = (metrics or {}).get("eval_loss")
        if loss is None or not math.isfinite(loss) or (self.best and loss >= self.best["eval_loss"]):
            return
        found = {"step": state.global_step, "eval_loss": float(loss)}
        if ranks.is_main():
            try:
                replace_folder(self.target, lambda folder: self.save(model, folder, found))
            except OSError as err:
                raise CheckpointError(f"saving the best model at step {found['step']} failed: {err}") from err
        self.best = found
        if self.on_best is not None:
            self.on_best(found)


def replace_folder(target: Path, write) -> None:
    """`write(folder)` into a temporary folder beside `target`, which then takes
    its place. The old one is moved aside before the new one moves in, so a
    kill between the two renames leaves it whole under `.<name>-replaced`
    (where RunFolder.best looks); a temporary folder is never read."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", suffix=".partial", dir=target.parent))
    aside = target.with_name(f".{target.name}-replaced")
    try:
        write(tmp)
        if target.exists():  # else `aside` may be the only good copy: it stays until the new one is in
            shutil.rmtree(aside, ignore_errors=True)
            target.rename(aside)
        tmp.rename(target)
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def with_lora(model, config: TrainConfig):
    """LoRA adapters on every linear layer; for QLoRA over the 4-bit base, which
    peft first readies (norms in fp32, inputs that carry gradients)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if config.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)  # the Trainer decides that

    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def build_trainer(config: TrainConfig, model, tokenizer, prepared, hardware, checkpoints_dir, plan: Plan,
                  callbacks=()) -> LabTrainer:
    """The engine's Trainer for a config: packed rows, response-only chunked
    loss, the config's optimizer and checkpointing, cosine schedule to a minimum
    learning rate. Step and warmup counts come from the run's plan."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback, PrinterCallback

    has_validation = bool(prepared.validation)
    if getattr(model, "hf_quantizer", None) is None:
        model.to(hardware.torch_device)
    checkpointing = levers.checkpointing(config, levers.estimated_peak(model, config, hardware),
                                         levers.free_memory(hardware, model))
    args = training_arguments(config, hardware, checkpoints_dir, plan, has_validation, checkpointing.on)
    # The loggers report_to asks for write beside the checkpoints, in the run folder.
    callbacks = [*callbacks, *loggers.callbacks(config, Path(checkpoints_dir).parent)]
    if config.early_stopping_patience and has_validation:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    compiled = _should_compile(config, plan, hardware) and compile_layers(model, hardware.device,
                                                                         hardware.autocast_dtype)
    trainer = LabTrainer(
        model=model, args=args, train_dataset=_to_dataset(Dataset, prepared.train),
        eval_dataset=_to_dataset(Dataset, prepared.validation) if has_validation else None,
        data_collator=_collator(tokenizer, config, hardware.device == "cuda", levers.uses_varlen_attention(model)),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # progress is the caller's to show (stderr in the CLI)
    trainer.compiled = compiled
    trainer.checkpointing = checkpointing
    return trainer


def training_arguments(config: TrainConfig, hardware, checkpoints_dir, plan: Plan, has_validation: bool,
                       checkpointing: bool):
    from transformers import TrainingArguments

    on_gpu = hardware.device == "cuda"
    return TrainingArguments(
        output_dir=str(checkpoints_dir),
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1, learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm, warmup_steps=plan.warmup_steps,
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": config.min_lr_ratio},
        optim=levers.optimizer_name(config),
        **_checkpointing_arguments(TrainingArguments, checkpointing),
        logging_steps=1, logging_first_step=True, logging_nan_inf_filter=False,
        eval_strategy="steps" if has_validation else "no", eval_steps=config.eval_steps or max(1, plan.steps // 10),
        save_strategy="steps" if config.save_steps else "no", save_steps=config.save_steps or 500,
        save_total_limit=2, metric_for_best_model="eval_loss" if has_validation else None, greater_is_better=False,
        seed=config.seed, data_seed=config.seed, bf16=hardware.precision == "bf16",
        fp16=hardware.precision == "fp16", use_cpu=hardware.device == "cpu", report_to="none", disable_tqdm=True,
        remove_unused_columns=False, dataloader_pin_memory=on_gpu, dataloader_num_workers=2 if on_gpu else 0,
        ddp_find_unused_parameters=False,  # every weight gets a gradient; the search costs a pass per step
    )


def _checkpointing_arguments(arguments_class, on: bool) -> dict:
    """transformers 5.2x renamed gradient_checkpointing to activation_checkpointing;
    the GPU machines run older 5.x releases, which know only the old name."""
    if not on:
        return {}
    name = "activation_checkpointing" if "activation_checkpointing" in arguments_class.__dataclass_fields__ \
        else "gradient_checkpointing"
    # The non-reentrant variant works with inputs that need no gradient (frozen embeddings under LoRA).
    return {name: True, f"{name}_kwargs": {"use_reentrant": False}}


def _collator(tokenizer, config: TrainConfig, on_gpu: bool, varlen: bool = False) -> PackingCollator:
    # Rows of ~256 tokens on a CPU: attention over a row costs its length squared,
    # masked pairs included, and there it outweighs ~10% padding (measured by
    # bench.throughput). A GPU wants fewer, wider rows, padded to tensor-core sizes.
    # A varlen kernel skips masked pairs altogether: one row holds the whole micro-batch.
    return PackingCollator(tokenizer.pad_token_id, pack=config.packing, pad_to_multiple=64 if on_gpu else 8,
                           row_tokens=512 if on_gpu else 256, varlen=varlen and config.packing)


COMPILE_WORTHWHILE_TOKENS = 100_000


def _should_compile(config: TrainConfig, plan: Plan, hardware=None) -> bool:
    """'auto' compiles runs long enough to repay the compile time (seconds to a
    minute) with the ~10-30% faster steps: 100k training tokens or more; never
    on Apple's MPS, where inductor is still experimental, nor under FSDP."""
    if config.compile != "auto":
        return config.compile == "on"
    if hardware is not None and hardware.device == "mps":
        return False
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return False  # layers compiled before FSDP shards them: not a combination tested here
    tokens_per_example = plan.train_tokens / max(plan.train_examples, 1)
    return plan.steps * config.examples_per_step * tokens_per_example >= COMPILE_WORTHWHILE_TOKENS


def _to_dataset(dataset_class, encoded):
    return dataset_class.from_dict({"input_ids": [e.input_ids for e in encoded], "labels": [e.labels for e in encoded]})
