"""A preference run's Trainer: TRL's DPOTrainer or KTOTrainer (Trainer
subclasses, so the lab's callbacks, checkpoints, resume and best checkpoint
work as for supervised runs), given the run's own arguments and the examples
in TRL's own forms (data/render.py trl_record; the tokens TRL builds from them
are the ones the Data tab shows, tested). The losses are TRL's.

The reference model: with LoRA the base with the adapters switched off; in
full fine-tuning, with precompute_ref, the model itself before the first step
(its log-probabilities of every pair computed once, no second copy), else a
copy TRL keeps beside it."""

from __future__ import annotations

from ..data.render import Renderer
from .arguments import training_arguments
from .config import TrainConfig
from .plan import Plan


class _CountsTokens:
    """The lab's throughput counter (RunCallback reads `tokens_seen`) over TRL's own count
    of the training tokens, which a resumed run sets back to its checkpoint's."""

    @property
    def tokens_seen(self) -> int:
        return int(getattr(self, "_total_train_tokens", 0) or 0)

    @tokens_seen.setter
    def tokens_seen(self, value: int) -> None:
        self._total_train_tokens = value


def trainer_classes(objective: str):
    """(TRL's config class, the lab's trainer class) for a preference objective."""
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

    if objective == "dpo":
        return DPOConfig, type("LabDPOTrainer", (_CountsTokens, DPOTrainer), {})
    if objective == "kto":
        return KTOConfig, type("LabKTOTrainer", (_CountsTokens, KTOTrainer), {})
    raise ValueError(f"objective {objective!r} is not a preference objective")


def objective_arguments(config: TrainConfig) -> dict:
    """The TRL config fields the run's settings decide."""
    common = dict(beta=config.beta, max_length=config.max_length, precompute_ref_log_probs=config.precompute_ref,
                  dataset_num_proc=None)
    if config.objective == "dpo":
        return {**common, "loss_type": [config.dpo_loss]}
    return {**common, "desirable_weight": config.desirable_weight, "undesirable_weight": config.undesirable_weight}


def trl_records(renderer: Renderer, pairs, objective: str) -> list[dict]:
    """The examples in TRL's form. For KTO a pair becomes its two replies, the desirable one
    then the other, next to each other: TRL's own unpairing puts every chosen reply before
    every rejected one, and batches (and KTO's KL estimate) want both kinds."""
    records = [renderer.trl_record(example) for example, _ in pairs]
    if objective != "kto":
        return records
    unpaired = []
    for record in records:
        if "completion" in record:
            unpaired.append(record)
        else:
            unpaired += [{"prompt": record["prompt"], "completion": record["chosen"], "label": True},
                         {"prompt": record["prompt"], "completion": record["rejected"], "label": False}]
    return unpaired


def build_preference_trainer(config: TrainConfig, model, tokenizer, prepared, hardware, checkpoints_dir,
                             plan: Plan, callbacks, checkpointing: bool, alongside: bool = False):
    from datasets import Dataset

    renderer = Renderer(tokenizer, prepared.template, config.system_prompt)
    train = Dataset.from_list(trl_records(renderer, prepared.train_pairs, config.objective))
    validation = Dataset.from_list(trl_records(renderer, prepared.validation_pairs, config.objective)) \
        if prepared.validation_pairs else None
    arguments_class, trainer_class = trainer_classes(config.objective)
    args = training_arguments(config, hardware, checkpoints_dir, plan, validation is not None, checkpointing,
                              arguments_class, alongside=alongside, **objective_arguments(config))
    trainer = trainer_class(model=model, args=args, train_dataset=train, eval_dataset=validation,
                            processing_class=tokenizer, callbacks=list(callbacks))
    return trainer
