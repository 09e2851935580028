"""transformers' Trainer, taught three things: the response-only chunked loss
on packed rows, refusing a non-finite loss, and checkpoints that are never
used half-written."""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .loss import response_loss

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
        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        return batches, sum(int(b["targets"].numel()) for b in batches) or None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        tokens = inputs.pop("num_tokens", 0)
        with self.accelerator.autocast():
            loss = response_loss(model, inputs, num_items_in_batch)
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
            (folder / COMPLETE_MARKER).write_text(str(self.state.global_step))
        except OSError as err:
            shutil.rmtree(folder, ignore_errors=True)  # never leave a half-written checkpoint to resume from
            raise CheckpointError(f"saving the checkpoint at step {self.state.global_step} failed: {err}") from err


def last_complete_checkpoint(folder: str | os.PathLike) -> str | None:
    """The newest checkpoint whose save finished; half-written ones are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if (p / COMPLETE_MARKER).is_file()]
    return str(max(done, key=lambda p: int(p.name.rsplit("-", 1)[1]))) if done else None


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
        if self.stop_requested():
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
            now, tokens = time.perf_counter(), self.trainer_ref().tokens_seen
            elapsed = now - self._last_time
            if elapsed > 0 and tokens > self._last_tokens:
                record["tokens_per_second"] = round((tokens - self._last_tokens) / elapsed, 1)
            record["tokens_seen"] = tokens
            self._last_time, self._last_tokens = now, tokens
        if len(record) > 2:
            self.on_record(record)


def release_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
