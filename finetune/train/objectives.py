"""What a run optimises: supervised fine-tuning (the lab's own packed,
response-only loss) or a preference objective through TRL's trainers (DPO on
pairs, KTO on replies labelled desirable or not). Each objective says here
what data it takes, how many examples a pass holds, and the signals it logs
(names, labels, which plot): the run's record, the Train tab and the model
card read them from this one list."""

from __future__ import annotations

from dataclasses import dataclass

from .config import TrainConfig, fields


@dataclass(frozen=True)
class Signal:
    key: str  # as TRL logs it (training batches); "eval_" + key on the validation pairs
    label: str
    plot: str  # which figure: "rewards", "accuracy" or "logps"


_REWARDS = (
    Signal("rewards/chosen", "chosen reward", "rewards"),
    Signal("rewards/rejected", "rejected reward", "rewards"),
    Signal("rewards/margins", "margin (chosen - rejected)", "rewards"),
)
_LOGPS = (
    Signal("logps/chosen", "chosen log-probability", "logps"),
    Signal("logps/rejected", "rejected log-probability", "logps"),
)
SIGNALS: dict[str, tuple[Signal, ...]] = {
    "sft": (),
    "dpo": (*_REWARDS, Signal("rewards/accuracies", "preference accuracy", "accuracy"), *_LOGPS),
    "kto": (*_REWARDS, Signal("kl", "KL to the reference", "rewards"), *_LOGPS),
}
NAMES = {"sft": "supervised fine-tuning", "dpo": "DPO (preference pairs)", "kto": "KTO (desirable / undesirable)"}
GROUP = tuple(f.name for f in fields() if f.metadata.get("group") == "objective")
# The objective group's settings each objective reads (what preference.objective_arguments gives TRL).
SETTINGS: dict[str, tuple[str, ...]] = {
    "sft": (),
    "dpo": ("beta", "dpo_loss", "precompute_ref"),
    "kto": ("beta", "precompute_ref", "desirable_weight", "undesirable_weight"),
}


def uses(objective: str, name: str) -> bool:
    """Whether a run of this objective reads setting `name`: every setting outside the objective
    group does; of the group, the objective itself and the ones SETTINGS lists for it."""
    if name == "objective" or name not in GROUP:
        return True
    return name in SETTINGS.get(objective, ())


def describe(config) -> str:
    """The objective and the settings it reads, in words, from a TrainConfig or a run's
    config.json: 'DPO (preference pairs): beta 0.1, loss sigmoid, reference log-probabilities
    precomputed'; 'supervised fine-tuning'. What a card, a Hub commit and a comparison say."""
    get = config.get if isinstance(config, dict) else (lambda name, default=None: getattr(config, name, default))
    objective = str(get("objective") or "sft")
    words = {"beta": lambda v: f"beta {v:g}", "dpo_loss": lambda v: f"loss {v}",
             "precompute_ref": lambda v: _reference_words(str(get("method") or "full"), bool(v)),
             "desirable_weight": lambda v: f"desirable weight {v:g}",
             "undesirable_weight": lambda v: f"undesirable weight {v:g}"}
    used = [words[name](get(name)) for name in SETTINGS.get(objective, ()) if get(name) is not None]
    return NAMES.get(objective, objective) + (f": {', '.join(used)}" if used else "")


def tags(config) -> list[str]:
    """A run's tags on the Hub for its objective (a TrainConfig or config.json): a preference
    run's objective and 'trl', whose trainer trained it, as TRL tags the models it trains;
    none for supervised fine-tuning."""
    objective = str((config.get("objective") if isinstance(config, dict) else config.objective) or "sft")
    return [] if objective == "sft" else [objective, "trl"]


def _reference_words(method: str, precomputed: bool) -> str:
    if method != "full":
        return "reference: the adapters switched off"
    return "reference log-probabilities precomputed" if precomputed else "reference model held as a copy"


def signals(objective: str) -> tuple[Signal, ...]:
    return SIGNALS.get(objective, ())


def logged_keys(objective: str) -> tuple[str, ...]:
    """Every key of the objective's signals a run records, on training batches and validation pairs."""
    keys = tuple(s.key for s in signals(objective))
    return keys + tuple(f"eval_{key}" for key in keys)


def data_problem(objective: str, kind: str) -> str | None:
    """Why data of this kind ('sft', 'pair', 'unpaired') cannot train this objective, or None."""
    if objective == "dpo" and kind != "pair":
        return ("DPO trains on preference pairs (a prompt, a chosen and a rejected reply); this data has "
                + ("single replies labelled desirable or not: use objective 'kto'" if kind == "unpaired"
                   else "one reply per prompt: use objective 'sft', or pairs"))
    if objective == "kto" and kind == "sft":
        return ("KTO trains on replies labelled desirable or not (or on preference pairs); this data has one "
                "reply per prompt and no label: use objective 'sft'")
    if objective == "sft" and kind == "unpaired":
        return ("supervised fine-tuning would train the undesirable replies of this unpaired data too: use "
                "objective 'kto'")
    return None


def check_data(config: TrainConfig, prepared) -> None:
    """DataError, in one line, when the prepared data cannot train the config's objective."""
    from ..sources.files import DataError

    problem = data_problem(config.objective, prepared.kind)
    if problem:
        raise DataError(f"{prepared.source}: {problem}")


def training_units(config: TrainConfig, prepared) -> tuple[int, int]:
    """(examples a pass over the training set holds, tokens it reads) for the objective:
    a pair is one DPO example; KTO splits it into two (one desirable, one not)."""
    if config.objective == "sft" or not prepared.train_pairs:
        return len(prepared.train), prepared.train_tokens
    count = len(prepared.train_pairs) * (2 if config.objective == "kto" and prepared.kind == "pair" else 1)
    return count, prepared.pair_tokens
