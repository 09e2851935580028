"""What a run will do before it starts: optimizer steps, warmup steps, tokens
per epoch, the device, and the learning-rate curve the schedule will follow.

The run takes its step and warmup counts from here (trainer.build_trainer), and
the curve is transformers' own `cosine_with_min_lr` schedule evaluated on a
dummy optimizer, so what is shown before the run is what the run logs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import TrainConfig

MAX_CURVE_POINTS = 400  # enough for a smooth plot of a run of any length


@dataclass(frozen=True)
class Plan:
    train_examples: int
    train_tokens: int  # tokens per epoch, after the max-length policy
    steps: int  # optimizer steps
    warmup_steps: int
    examples_per_step: int
    epochs: float  # passes over the training set the steps amount to
    curve_steps: tuple[int, ...]
    curve_lr: tuple[float, ...]  # the learning rate each step uses (what the Trainer logs at that step)


def planned_steps(train_examples: int, config: TrainConfig, processes: int = 1) -> int:
    """Optimizer steps the Trainer will take: ceil(batches / accumulation) per
    epoch, each of `processes` processes taking every processes-th batch."""
    if config.max_steps:
        return config.max_steps
    batches = math.ceil(math.ceil(train_examples / config.batch_size) / processes)
    return math.ceil(batches / config.grad_accum) * config.epochs


def warmup_steps(config: TrainConfig, steps: int) -> int:
    """Warmup steps for the run: the value trainer.build_trainer gives the Trainer."""
    return math.ceil(config.warmup_ratio * steps)


def learning_rate_curve(config: TrainConfig, steps: int, points: int = MAX_CURVE_POINTS
                        ) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(step, learning rate that step uses) for steps 1..steps, sampled to at most `points`.

    Step k runs with the schedule's value after k - 1 scheduler steps, and that is
    the value the Trainer logs at step k: 0 at step 1 when there is warmup."""
    import torch
    from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup

    if steps <= 0:
        return (), ()
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.learning_rate)
    schedule = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=warmup_steps(config, steps), num_training_steps=steps,
        min_lr_rate=config.min_lr_ratio,
    )
    factor = schedule.lr_lambdas[0]
    stride = max(1, math.ceil(steps / points))
    peak_at = min(warmup_steps(config, steps) + 1, steps)  # keep the top of the warmup in a sampled curve
    chosen = sorted(set(range(1, steps + 1, stride)) | {1, steps, peak_at})
    return tuple(chosen), tuple(config.learning_rate * factor(step - 1) for step in chosen)


def plan(config: TrainConfig, train_examples: int, train_tokens: int, processes: int = 1) -> Plan:
    """`processes`: how many train side by side (a torchrun or accelerate launch), each on its share of a step."""
    steps = planned_steps(train_examples, config, processes)
    xs, ys = learning_rate_curve(config, steps)
    seen = steps * config.examples_per_step * processes
    return Plan(
        train_examples=train_examples, train_tokens=train_tokens, steps=steps,
        warmup_steps=warmup_steps(config, steps), examples_per_step=config.examples_per_step * processes,
        epochs=round(min(seen / train_examples, config.epochs) if train_examples else 0.0, 2),
        curve_steps=xs, curve_lr=ys,
    )
