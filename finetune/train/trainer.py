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
import threading
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer import TRAINER_STATE_NAME, TRAINING_ARGS_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..data.collate import PackingCollator
from . import levers, loggers, ranks
from .acceleration import compile_layers
from .arguments import training_arguments
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

    def __init__(self, on_record, stop_requested, trainer_ref, signals: tuple[str, ...] = ()):
        self.on_record = on_record
        self.stop_requested = stop_requested
        self.trainer_ref = trainer_ref  # callable returning the trainer, for its token counter
        self.signals = signals  # the objective's own logged values (train/objectives.py), kept when finite
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
        for key in self.signals:
            value = logs.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                record[key] = float(value)
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


# Trainers are built one at a time: building one may reset accelerate's process-wide state.
_BUILD_LOCK = threading.Lock()


def side_by_side() -> None:
    """Let Trainers train in two threads of one process. accelerate keeps one GradientState per
    process (whether this micro-batch syncs and the optimizer steps): two Trainers would step, or
    skip, each other's optimizers under gradient accumulation. One per thread, as accelerate itself
    does for TPU threads. Idempotent."""
    from accelerate import state

    if not isinstance(state.GradientState.__dict__.get("_shared_state"), state.ThreadLocalSharedDict):
        state.GradientState._shared_state = state.ThreadLocalSharedDict()


def build_trainer(config: TrainConfig, model, tokenizer, prepared, hardware, checkpoints_dir, plan: Plan,
                  callbacks=(), alongside: bool = False) -> LabTrainer:
    """`alongside`: other runs train in this process now; the Trainer then keeps accelerate's
    configured state (building TrainingArguments resets it, under the other runs' feet)."""
    side_by_side()
    if alongside:
        ranks.configure()  # the configured state the Trainer keeps must exist before its arguments
    with _BUILD_LOCK:
        return _build_trainer(config, model, tokenizer, prepared, hardware, checkpoints_dir, plan, callbacks,
                              alongside)


def _build_trainer(config: TrainConfig, model, tokenizer, prepared, hardware, checkpoints_dir, plan: Plan,
                   callbacks, alongside: bool) -> LabTrainer:
    """The engine's Trainer for a config: packed rows, response-only chunked
    loss, the config's optimizer and checkpointing, cosine schedule to a minimum
    learning rate. Step and warmup counts come from the run's plan. A preference
    objective gets TRL's trainer for it (train/preference.py) with the same
    arguments and callbacks."""
    from datasets import Dataset
    from transformers import PrinterCallback

    if getattr(model, "hf_quantizer", None) is None:
        model.to(hardware.torch_device)
    checkpointing = levers.checkpointing(config, levers.estimated_peak(model, config, hardware),
                                         levers.free_memory(hardware, model))
    callbacks = run_callbacks(config, callbacks, checkpoints_dir, has_validation(config, prepared))
    if config.objective != "sft":
        from .preference import build_preference_trainer

        trainer = build_preference_trainer(config, model, tokenizer, prepared, hardware, checkpoints_dir, plan,
                                           callbacks, checkpointing.on, alongside)
        trainer.remove_callback(PrinterCallback)
        trainer.compiled, trainer.checkpointing = False, checkpointing
        return trainer
    args = training_arguments(config, hardware, checkpoints_dir, plan, bool(prepared.validation), checkpointing.on,
                              alongside=alongside)
    compiled = _should_compile(config, plan, hardware) and compile_layers(model, hardware.device,
                                                                         hardware.autocast_dtype)
    trainer = LabTrainer(
        model=model, args=args, train_dataset=_to_dataset(Dataset, prepared.train),
        eval_dataset=_to_dataset(Dataset, prepared.validation) if prepared.validation else None,
        data_collator=_collator(tokenizer, config, hardware.device == "cuda", levers.uses_varlen_attention(model)),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # progress is the caller's to show (stderr in the CLI)
    trainer.compiled = compiled
    trainer.checkpointing = checkpointing
    return trainer


def has_validation(config: TrainConfig, prepared) -> bool:
    """Whether the run measures a validation loss: validation examples, or pairs for a preference run."""
    return bool(prepared.validation_pairs if config.objective != "sft" else prepared.validation)


def run_callbacks(config: TrainConfig, callbacks, checkpoints_dir, validated: bool) -> list:
    """The run's callbacks, the loggers report_to asks for (writing beside the checkpoints, in the run
    folder) and early stopping when it is on and measurable."""
    from transformers import EarlyStoppingCallback

    found = [*callbacks, *loggers.callbacks(config, Path(checkpoints_dir).parent)]
    if config.early_stopping_patience and validated:
        found.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    return found


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
