"""What a checkpoint costs, to decide whether runs should save one every few
steps by default (so a crash leaves something to resume from): the seconds one
save takes beside a training step's, and its size on disk (two are kept).

    .venv/bin/python -m bench.checkpoint_cost                    # the default model, quick-demo settings
    .venv/bin/python -m bench.checkpoint_cost --model PATH --steps 8

It trains through the engine's own Trainer (build_trainer) on the bundled demo
data with a save every other step, and times each save (from the step's end
to the Trainer's on_save) and each step without one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from transformers import TrainerCallback

from bench import folder_bytes
from finetune.data import dataset
from finetune.sources import models
from finetune.train import config as cfg
from finetune.train import device
from finetune.train.plan import plan
from finetune.train.trainer import build_trainer


class Clock(TrainerCallback):
    """Seconds of each step without a save, and of each save."""

    def __init__(self):
        self.steps, self.saves, self._mark = [], [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._mark = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if state.global_step > 1:  # the first step warms up
            self.steps.append(now - self._mark)
        self._mark = now

    def on_save(self, args, state, control, **kwargs):
        self.saves.append(time.perf_counter() - self._mark)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--steps", type=int, default=7)
    args = parser.parse_args(argv)
    config = cfg.build({"model": args.model, "max_steps": args.steps, "save_steps": 2, "validation_fraction": 0.0,
                        "held_out": 0}, preset="quick-demo", allow_out_of_range=True).config
    hardware = device.detect(config.precision)
    source = models.resolve(config.model)
    model, tokenizer = models.load(source, progress=lambda text: print(text, file=sys.stderr))
    prepared = dataset.prepare(config, tokenizer)
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = Path(tmp) / "checkpoints"
        run_plan = plan(config, len(prepared.train), prepared.train_tokens)
        trainer = build_trainer(config, model, tokenizer, prepared, hardware, checkpoints, run_plan,
                                callbacks=[clock])
        trainer.train()
        sizes = [folder_bytes(p) for p in checkpoints.glob("checkpoint-*")]
    step = sum(clock.steps) / len(clock.steps)
    save = sum(clock.saves) / len(clock.saves)
    print(f"model: {source.label}, {hardware.describe()}")
    print(f"one training step (batch {config.batch_size}, quick-demo): {step:.2f} s (mean of {len(clock.steps)})")
    print(f"one checkpoint save: {save:.2f} s (mean of {len(clock.saves)}), {max(sizes) / 2**20:,.0f} MiB on disk; "
          f"two are kept: {2 * max(sizes) / 2**20:,.0f} MiB per run")
    for every in (10, 25, 50):
        print(f"a save every {every} steps: +{save / (every * step):.1%} training time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
