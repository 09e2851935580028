"""Synthetic runs for the failure-mode detector tests: logged histories drawn
from a loss function, held-out answers, training responses and a steady
general probe. The defaults are a healthy run; a test changes the one part
that shows its failure."""

import math

from finetune.diagnose.modes import diagnose_final
from finetune.train.config import TrainConfig

CONFIG = TrainConfig(learning_rate=5e-5, method="full", epochs=3, warmup_ratio=0.05, weight_decay=0.0,
                     max_grad_norm=1.0, early_stopping_patience=0, validation_fraction=0.05).to_dict()
STEPS_PER_EPOCH = 20


def config(**changes):
    return {**CONFIG, **changes}


def train_step(step, loss, warmup=3, lr=5e-5):
    return {"step": step, "epoch": round(step / STEPS_PER_EPOCH, 3), "loss": loss,
            "learning_rate": lr * min(1.0, step / warmup), "grad_norm": 1.2, "tokens_per_second": 250.0,
            "time": 1764389000.0 + step}


def eval_step(step, loss):
    return {"step": step, "epoch": round(step / STEPS_PER_EPOCH, 3), "eval_loss": loss,
            "time": 1764389000.5 + step}


def wobble(step):
    """Deterministic batch noise of about 2%."""
    return 1 + 0.02 * math.sin(step * 1.7)


def history(train_loss, eval_loss=None, steps=60, eval_every=6, **step_options):
    """A logged history: a training loss every step, a validation loss every `eval_every` steps."""
    logged = []
    for step in range(1, steps + 1):
        logged.append(train_step(step, train_loss(step), **step_options))
        if eval_loss and step % eval_every == 0:
            logged.append(eval_step(step, eval_loss(step)))
    return logged


def healthy(steps=60):
    return history(lambda s: (2.0 * math.exp(-s / 25) + 0.6) * wobble(s),
                   lambda s: 2.1 * math.exp(-s / 25) + 0.7, steps=steps)


def advice(finding):
    """The advice without its sentence capital, to look for a phrase in it."""
    return finding.advice.lower()


def by_name(findings):
    return {f.name: f for f in findings}


def rows(answers, references, category="task"):
    return [{"prompt": f"Question number {i}?", "reference": ref, "category": category, "task": "t",
             "before": "I am not sure.", "after": answer,
             "before_score": None, "after_score": None} for i, (answer, ref) in enumerate(zip(answers, references))]


CITIES = ["Paris", "Berlin", "Madrid", "Rome", "Vienna", "Lisbon", "Prague", "Oslo"]
VARIED = rows([f"The capital is {c}." for c in CITIES], CITIES)
TRAIN_RESPONSES = [f"The answer to training question {i} is {i * 7} apples and pears." for i in range(20)]
PROBE_STEADY = {"prompts": 20, "before": {"exact": 0.1, "normalised": 0.2, "contains": 0.7},
                "after": {"exact": 0.1, "normalised": 0.2, "contains": 0.65},
                "perplexity_before": 12.1, "perplexity_after": 12.9}


def final(**changes):
    record = dict(history=healthy(), config=CONFIG, comparison=VARIED, probe=PROBE_STEADY,
                  train_responses=TRAIN_RESPONSES)
    record.update(changes)
    return by_name(diagnose_final(**record))
