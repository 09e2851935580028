"""The one source of truth for every setting of a run.

Each field carries its default, its recommended range (`min`/`max`), hard limits
that are never crossed (`hard_min`/`hard_max`), choices and help text in its
metadata. The command line builds its flags from these fields and the app its
sliders, so a range changes in one place.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..data.formats import FORMATS, MAPPED_FORMAT, format_choices
from ..sources.files import name_problem, shown
from .presets import PRESETS


class ConfigError(ValueError):
    """One or more settings are refused; the message lists each."""


# Hard caps on free-text settings, in characters, enforced everywhere (app, API,
# command line) like the numeric hard limits. Text is cheap to send and costly to
# use: the system prompt is rendered into every example and tokenised per record
# (a 200,000-character one made one load of the demo data cost 42 s of CPU).
SYSTEM_PROMPT_MAX_CHARS = 8_000  # ~2,000 tokens: already the whole recommended max_length on its own
COLUMN_NAME_MAX_CHARS = 256  # a column header; real ones are a few words
# Settings that name a model or a dataset: each is a hub id or a path, whose parts a file system must hold.
NAMED_SOURCES = ("model", "data", "judge")
SPEC_MAX_CHARS = 4_096  # a model or dataset: a hub id (at most 96) or a path (PATH_MAX is 4096 on Linux)
# A public deployment's answers (held-out prompts and free questions) stop at
# this many tokens, whatever a client sends: a paragraph, while a shared 2-core
# server generates a few tokens a second. (A NaN max_new_tokens once kept a
# server busy for minutes; the hard limit is 4096.)
PUBLIC_MAX_NEW_TOKENS = 256


def setting(default, help, group, **meta):
    """A TrainConfig field: its default, help text, group and limits (min/max, hard_min/hard_max, step, choices)."""
    return field(default=default, metadata={"help": help, "group": group, **meta})


@dataclass(frozen=True)
class TrainConfig:
    # --- data
    model: str = setting("default", "Model: 'default' (bundled SmolLM2-135M-Instruct), a local folder or a hub id.",
                         "data", max_chars=SPEC_MAX_CHARS)
    data: str = setting("", "Dataset: a JSON, JSONL, CSV or Parquet file, or a hub dataset id.", "data",
                        max_chars=SPEC_MAX_CHARS)
    format: str = setting(
        "auto",
        f"Record format; 'auto' detects it from the columns. '{MAPPED_FORMAT}' uses the column mapping below.",
        "data",
        choices=format_choices,
    )
    prompt_column: str = setting("", f"Column holding the prompt (format '{MAPPED_FORMAT}').", "data",
                                 max_chars=COLUMN_NAME_MAX_CHARS)
    response_column: str = setting("", f"Column holding the response (format '{MAPPED_FORMAT}').", "data",
                                   max_chars=COLUMN_NAME_MAX_CHARS)
    system_column: str = setting("", "Optional column holding a per-record system message.", "data",
                                 max_chars=COLUMN_NAME_MAX_CHARS)
    rejected_column: str = setting(
        "", f"Column holding the rejected response of a preference pair (format '{MAPPED_FORMAT}': the response "
        "column is then the chosen one).", "data", max_chars=COLUMN_NAME_MAX_CHARS)
    template: str = setting(
        "auto",
        "How examples become text: the model's chat template ('chat'), the Alpaca prompt "
        "('### Instruction:' / '### Response:'), or 'auto' (chat template when the model has one).",
        "data",
        choices=("auto", "chat", "alpaca"),
    )
    system_prompt: str = setting("", "System message added to every example that has none.", "data",
                                 max_chars=SYSTEM_PROMPT_MAX_CHARS)
    max_length: int = setting(
        512, "Longest example in tokens; longer ones are truncated or dropped.", "data",
        min=128, max=2048, hard_min=16, hard_max=32768, step=64,
    )
    overlong: str = setting("truncate", "What to do with examples over max_length.", "data", choices=("truncate", "drop"))
    held_out: int = setting(
        10, "Prompts kept out of training for the before/after comparison.", "data",
        min=0, max=50, hard_min=0, hard_max=500, step=1,
    )
    validation_fraction: float = setting(
        0.05, "Share of the records used for validation loss.", "data",
        min=0.0, max=0.2, hard_min=0.0, hard_max=0.5, step=0.01,
    )
    # --- objective: what the training optimises
    objective: str = setting(
        "sft", "What training optimises. 'sft': supervised fine-tuning, the loss on the response tokens. 'dpo': "
        "Direct Preference Optimization on pairs (a prompt, a chosen and a rejected response): the chosen one "
        "made likelier than the rejected one, relative to the starting model. 'kto': Kahneman-Tversky "
        "Optimization on responses each labelled desirable or not (pairs are split into one of each). DPO and "
        "KTO are TRL's trainers and usually start from a supervised run (Continue from this run).",
        "objective", choices=("sft", "dpo", "kto"),
    )
    beta: float = setting(
        0.1, "How far the preference run may move from the starting model (DPO and KTO's beta): the rewards are "
        "beta x the log-probability ratios to it. Small (0.01-0.05) lets it drift far and fast, which risks "
        "degenerate answers; large (0.5) keeps it close and learns little. 0.1 is the usual start.",
        "objective", min=0.01, max=0.5, hard_min=0.001, hard_max=10.0, step=0.01,
    )
    dpo_loss: str = setting(
        "sigmoid", "DPO's loss (TRL's DPOConfig loss_type): 'sigmoid' is the original DPO; 'ipo' regularises "
        "towards a fixed margin (less overfitting on deterministic pairs); 'hinge' is SLiC's; 'robust' assumes "
        "some labels are flipped; 'sigmoid_norm' normalises by length; 'apo_zero'/'apo_down' anchor the chosen "
        "or rejected likelihood; the others are variants from the literature.",
        "objective", choices=("sigmoid", "ipo", "hinge", "robust", "sigmoid_norm", "bco_pair", "sppo_hard",
                              "nca_pair", "exo_pair", "apo_zero", "apo_down", "discopop"),
    )
    precompute_ref: bool = setting(
        True, "Compute the reference (starting) model's log-probabilities of every pair once, before training: no "
        "second copy of the model in memory during full fine-tuning, and one forward pass less per step. With "
        "LoRA the reference is always the base with the adapters switched off (no copy either).", "objective",
    )
    desirable_weight: float = setting(
        1.0, "KTO: the weight of the desirable responses' loss. Raise it when desirable ones are fewer than "
        "undesirable ones (KTO's paper keeps weight x count within 1 to 4/3 of the other side).",
        "objective", min=0.5, max=2.0, hard_min=0.01, hard_max=100.0, step=0.05,
    )
    undesirable_weight: float = setting(
        1.0, "KTO: the weight of the undesirable responses' loss (raise it when they are the fewer).",
        "objective", min=0.5, max=2.0, hard_min=0.01, hard_max=100.0, step=0.05,
    )
    # --- optimisation
    method: str = setting(
        "full", "Full fine-tuning updates every weight; LoRA trains small adapters (less memory, higher learning "
        "rate); QLoRA trains them over a 4-bit NF4 copy of the base (least memory; bitsandbytes, CUDA only).",
        "optim", choices=("full", "lora", "qlora"),
    )
    learning_rate: float = setting(
        2e-5,
        "Peak learning rate: 10-100x smaller than pre-training; start at 2e-5. "
        "LoRA trains few weights and wants 5e-5 to 5e-4.",
        "optim", min=1e-6, max=5e-5, lora_min=5e-5, lora_max=5e-4, hard_min=1e-8, hard_max=1e-2, step=1e-6,
    )
    min_lr_ratio: float = setting(
        0.1, "The cosine schedule decays from the peak learning rate to peak x this ratio.", "optim",
        min=0.0, max=0.5, hard_min=0.0, hard_max=1.0, step=0.01,
    )
    batch_size: int = setting(
        8, "Examples per forward pass; the engine packs them into rows without padding.", "optim",
        min=4, max=32, hard_min=1, hard_max=512, step=1,
    )
    grad_accum: int = setting(
        4, "Forward passes per optimizer step; examples per step = batch size x accumulation.", "optim",
        min=1, max=16, hard_min=1, hard_max=256, step=1,
    )
    epochs: int = setting(3, "Passes over the training set; more than a few overfits small data.", "optim",
                     min=1, max=5, hard_min=1, hard_max=100, step=1)
    max_steps: int = setting(0, "Stop after this many optimizer steps (0: run all epochs).", "optim",
                        min=0, max=100000, hard_min=0, hard_max=10**7, step=1)
    warmup_ratio: float = setting(
        0.05, "Share of steps spent ramping the learning rate up from 0, which steadies the first updates.", "optim",
        min=0.03, max=0.1, hard_min=0.0, hard_max=0.5, step=0.01,
    )
    weight_decay: float = setting(0.1, "AdamW weight decay (not applied to norms and biases).", "optim",
                             min=0.0, max=0.2, hard_min=0.0, hard_max=1.0, step=0.01)
    max_grad_norm: float = setting(1.0, "Gradient clipping norm; guards against loss spikes.", "optim",
                              min=0.1, max=5.0, hard_min=0.0, hard_max=100.0, step=0.1)
    # --- LoRA
    lora_r: int = setting(16, "LoRA rank: adapter size.", "lora", min=4, max=64, hard_min=1, hard_max=1024, step=4)
    lora_alpha: int = setting(32, "LoRA scaling; usually twice the rank.", "lora", min=4, max=128, hard_min=1,
                         hard_max=4096, step=4)
    lora_dropout: float = setting(0.05, "Dropout on the LoRA adapters.", "lora", min=0.0, max=0.2, hard_min=0.0,
                             hard_max=0.9, step=0.01)
    # --- evaluation and run control
    eval_steps: int = setting(0, "Validation loss every N optimizer steps (0: about 10 times per run).", "run",
                         min=0, max=10000, hard_min=0, hard_max=10**7, step=1)
    early_stopping_patience: int = setting(
        0, "Stop when validation loss has not improved for this many evaluations (0: off).", "run",
        min=0, max=20, hard_min=0, hard_max=1000, step=1,
    )
    keep_best: str = setting(
        "eval_loss", "Keep the model at its lowest validation loss (in the run's best/ folder) to export instead of "
        "the final one: saved whenever an evaluation (eval_steps) improves on the best so far, in the base model's "
        "dtype (LoRA: the adapters only, merged at export). Validation loss is the only measure taken during "
        "training, so it is the only choice; a run without a validation split keeps none. "
        "On the default model each save takes ~2 s and best/ 273 MB (LoRA: ~0.3 s, 13 MB) on a 2-core CPU.",
        "run", choices=("eval_loss", "off"),
    )
    save_steps: int = setting(0, "Checkpoint every N optimizer steps for resuming (0: only at the end or on stop).",
                         "run", min=0, max=100000, hard_min=0, hard_max=10**7, step=1)
    seed: int = setting(42, "Random seed for the split, shuffling and initialisation.", "run",
                   min=0, max=2**31 - 1, hard_min=0, hard_max=2**31 - 1, step=1)
    precision: str = setting("auto", "Autocast precision; weights stay fp32. 'auto': bf16 where the device supports it.",
                        "run", choices=("auto", "bf16", "fp16", "fp32"))
    packing: bool = setting(True, "Pack examples into rows with a block-diagonal mask instead of padding.", "run")
    compile: str = setting("auto", "torch.compile the decoder layers: ~10-30% faster steps for seconds to a minute of "
                      "compiling ('auto': for runs of 100k training tokens or more).", "run",
                      choices=("auto", "on", "off"))
    max_new_tokens: int = setting(96, "Tokens generated per held-out prompt for the before/after comparison.", "run",
                             min=16, max=512, hard_min=1, hard_max=4096, step=16)
    report_to: str = setting(
        "none", "Also log the run's metrics to TensorBoard (event files in the run folder's logs/) or to Trackio "
        "(its local store, a run named after this one; offline), to open in the tool you already use.", "run",
        choices=("none", "tensorboard", "trackio"),
    )
    general_probe: bool = setting(
        True, "Ask ~45 short general-knowledge questions and measure the perplexity of a general text before and "
        "after training, reported apart from the held-out task prompts: forgetting (the alignment tax) shows on "
        "any dataset. Costs two short generation passes.", "run",
    )
    benchmarks: bool = setting(
        False, "Score the base and the trained model on three bundled 100-item standard benchmarks (BoolQ "
        "reading, CommonsenseQA, 2-digit addition; lm-evaluation-harness, offline), each change with a 95% "
        "interval. Costs minutes on a CPU: about 70 s per model for the default model on 2 idle cores.", "run",
    )
    judge: str = setting(
        "off", "A judge model compares the trained and the base model's answers to the held-out prompts, in both "
        "orders: 'off', 'base' (the base model itself: a model tends to prefer its own answers), or a model "
        "(a local folder, or a hub id with a network). Reports wins, ties and losses with an interval.", "run",
        max_chars=SPEC_MAX_CHARS,
    )
    # --- memory: what lets a bigger model fit (each refused, saying why, where the hardware cannot do it)
    gradient_checkpointing: str = setting(
        "auto", "Recompute each layer's activations in the backward pass instead of keeping them: far less memory "
        "for ~30% more compute. 'auto': on when the estimated peak exceeds about 85% of the device's free memory.",
        "memory", choices=("auto", "on", "off"),
    )
    weights: str = setting(
        "fp32", "Precision of the trained weights. fp32 master weights are the safe default; bf16 halves the "
        "weights and gradients (full fine-tuning keeps fp32 optimizer states through bitsandbytes, CUDA only; "
        "with LoRA the frozen base is bf16 and the adapters fp32).",
        "memory", choices=("fp32", "bf16"),
    )
    optimizer: str = setting(
        "adamw", "AdamW keeps two fp32 states per trained weight (8 bytes); 8-bit AdamW (bitsandbytes, CUDA only) "
        "keeps them in 2 bytes, with the same results in practice.",
        "memory", choices=("adamw", "adamw_8bit"),
    )

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * self.grad_accum

    def data_key(self) -> tuple:
        """Everything the prepared examples depend on: the data settings (model
        included, for its tokenizer) and the seed that draws the split. Two
        configs with the same key prepare the same data."""
        return tuple(getattr(self, f.name) for f in fields() if f.metadata["group"] == "data" or f.name == "seed")


class Checked(NamedTuple):
    """A config that passed validate(), with the warnings for the values outside
    the recommended ranges that `allow_out_of_range` let through."""

    config: TrainConfig
    warnings: tuple[str, ...] = ()
    allow_out_of_range: bool = False


ADAPTER_METHODS = ("lora", "qlora")  # methods that train LoRA adapters over a frozen base


def uses_adapters(method: str) -> bool:
    return method in ADAPTER_METHODS


def fields() -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(TrainConfig)


def field_by_name(name: str) -> dataclasses.Field:
    for f in fields():
        if f.name == name:
            return f
    raise KeyError(name)


def choices(f: dataclasses.Field) -> tuple[str, ...] | None:
    """The values a choice field accepts (a registry's names are read when asked, so a new entry counts)."""
    found = f.metadata.get("choices")
    return tuple(found() if callable(found) else found) if found is not None else None


def recommended_range(f: dataclasses.Field, method: str) -> tuple[Any, Any] | None:
    meta = f.metadata
    if uses_adapters(method) and "lora_min" in meta:
        return meta["lora_min"], meta["lora_max"]
    if "min" in meta:
        return meta["min"], meta["max"]
    return None


def coerce(f: dataclasses.Field, value: Any) -> Any:
    """Turn a raw value (a flag, a JSON value, a widget value) into the field's
    type, refusing what cannot be one. Never turns NaN or junk into a number."""
    kind = type(f.default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{f.name}: expected true or false, got {shown(value)}")
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{f.name}: expected a number, got {shown(value)}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{f.name}: expected a number, got {shown(value)}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{f.name}: {shown(value)} is not a finite number")
        if kind is int:
            if number != int(number):
                raise ConfigError(f"{f.name}: expected a whole number, got {shown(value)}")
            return int(number)
        return number
    if not isinstance(value, str):
        raise ConfigError(f"{f.name}: expected text, got {shown(value)}")
    return value


def build(values: dict[str, Any] | None = None, preset: str | None = None,
          allow_out_of_range: bool = False, base: TrainConfig | None = None) -> Checked:
    """Make a validated config from a preset and raw values (later wins)."""
    merged: dict[str, Any] = {}
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        merged.update(PRESETS[preset])
    merged.update({k: v for k, v in (values or {}).items() if v is not None})
    known = {f.name: f for f in fields()}
    unknown = sorted(set(merged) - set(known))
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    problems, coerced = [], {}
    for name, value in merged.items():
        try:
            coerced[name] = coerce(known[name], value)
        except ConfigError as err:
            problems.append(str(err))
    if problems:
        raise ConfigError("; ".join(problems))
    return check(dataclasses.replace(base or TrainConfig(), **coerced), allow_out_of_range)


def check(config: TrainConfig, allow_out_of_range: bool = False) -> Checked:
    return Checked(config, tuple(validate(config, allow_out_of_range)), allow_out_of_range)


def validate(config: TrainConfig, allow_out_of_range: bool = False) -> list[str]:
    """Raise ConfigError listing every refused value; return the warnings for
    values outside the recommended range that were allowed."""
    problems, warnings = [], []
    for f in fields():
        value = getattr(config, f.name)
        meta = f.metadata
        accepted = choices(f)
        if accepted is not None and value not in accepted:
            problems.append(f"{f.name}: {shown(value)} is not one of {', '.join(accepted)}")
            continue
        if isinstance(value, str) and len(value) > meta.get("max_chars", len(value)):
            problems.append(f"{f.name}: {len(value):,} characters is over the limit of {meta['max_chars']:,}")
            continue
        if f.name in NAMED_SOURCES and isinstance(value, str) and name_problem(value):
            problems.append(f"{f.name}: {name_problem(value)}")
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if not math.isfinite(value):
            problems.append(f"{f.name}: {shown(value)} is not a finite number")
            continue
        if "hard_min" in meta and not meta["hard_min"] <= value <= meta["hard_max"]:
            problems.append(f"{f.name}: {value} is outside the possible range {meta['hard_min']}..{meta['hard_max']}")
            continue
        bounds = recommended_range(f, config.method)
        if bounds and not bounds[0] <= value <= bounds[1] and not _is_off_value(f, value):
            message = f"{f.name}: {value:g} is outside the recommended range {bounds[0]:g}..{bounds[1]:g}"
            (warnings if allow_out_of_range else problems).append(message)
    if not config.judge.strip():
        problems.append("judge: empty; use 'off', 'base' or a model (a local folder or a hub id)")
    if config.format in FORMATS and FORMATS[config.format].mapped and not (config.prompt_column
                                                                          and config.response_column):
        problems.append(f"format '{config.format}' needs prompt_column and response_column")
    if problems:
        hint = "" if allow_out_of_range else " (allow values outside the recommended ranges to override range checks)"
        raise ConfigError("; ".join(problems) + (hint if any("recommended" in p for p in problems) else ""))
    return warnings


def _is_off_value(f: dataclasses.Field, value: Any) -> bool:
    # 0 means "off/auto" for these counters and is always allowed.
    return value == 0 and f.name in {"max_steps", "eval_steps", "save_steps", "early_stopping_patience", "held_out"}


def load_json(path: str | Path) -> dict[str, Any]:
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read config {path}: {err}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config {path} must be a JSON object of settings")
    # A run's own config.json also records what it resolved (format, device, steps):
    # facts of that run, not settings, so it can start the next run as it is.
    values.pop("resolved", None)
    return values
