"""How runs are named when they are compared: the settings that differ between
them, each run's label from those (lr=5e-05), and the settings side by side.

A setting the run's objective does not read (beta in a supervised run, the DPO
loss in a KTO run: train/objectives.uses) is shown as NOT_USED, never names the
run in a legend, and never makes two runs of that objective differ: two
supervised runs do not differ by a beta neither read."""

from __future__ import annotations

import json

from ..runs.portable import display_name
from ..runs.records import RunRecord
from ..train import objectives
from ..train.config import fields

# Legend names for the settings a sweep usually varies; other settings use their field name.
SHORT_NAMES = {"learning_rate": "lr", "batch_size": "batch", "epochs": "epochs", "warmup_ratio": "warmup",
               "weight_decay": "wd", "lora_r": "r"}


# How the table shows a setting the run's objective does not read.
NOT_USED = "–"

# A legend entry naming more settings than this no longer reads; the table shows them all.
LABEL_SETTINGS_MAX = 3


# Shown in the table as their own columns, so not repeated among the differing settings.
FIXED_COLUMNS = ("model", "data")


# Runs that ended this way are not judged: their curves stop where something broke.
NOT_JUDGED = ("failed", "cancelled", "unreadable")


DEFAULTS = {f.name: f.default for f in fields()}


def readable(records) -> list[RunRecord]:
    return [r for r in records if not r.unreadable]


def setting_value(record: RunRecord, name: str):
    """A setting as the run used it; a field missing from an older config.json
    reads as the current default, so it does not count as a difference."""
    return record.config.get(name, DEFAULTS.get(name))


def used(record: RunRecord, name: str) -> bool:
    """Whether the run's objective reads this setting (an older run without one was supervised)."""
    return objectives.uses(str(setting_value(record, "objective") or "sft"), name)


def differing_settings(records) -> list[str]:
    """TrainConfig field names (in field order) whose values differ between the readable runs,
    a setting a run's objective does not read counting as none."""
    runs = readable(records)
    if len(runs) < 2:
        return []
    return [name for name in DEFAULTS
            if len({json.dumps(setting_value(r, name) if used(r, name) else None, sort_keys=True, default=str)
                    for r in runs}) > 1]


def display_value(record: RunRecord, name: str) -> str:
    """A setting for people: the dataset by its name (never a server path), numbers short,
    NOT_USED where the run's objective does not read it."""
    if not used(record, name):
        return NOT_USED
    if name == "data":
        return record.data_name or display_name(setting_value(record, name)) or "?"
    if name == "model":
        return display_name(setting_value(record, name)) or "?"
    value = setting_value(record, name)
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting_label(name: str, value) -> str:
    """How a legend names one setting's value: lr=5e-05, batch=16."""
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{SHORT_NAMES.get(name, name)}={shown}"


def run_label(record: RunRecord, differing) -> str:
    """The legend name: run.json's label, else the differing settings' values (lr=5e-05), else the id."""
    if record.label or record.unreadable:  # an unreadable run's settings are unknown: its id names it
        return record.label or record.id
    read = [n for n in differing if used(record, n)]  # a supervised run is not named by the DPO run's beta
    named = [f"{SHORT_NAMES.get(n, n)}={display_value(record, n)}" for n in read[:LABEL_SETTINGS_MAX]]
    return ", ".join(named) or record.id


def run_labels(records) -> dict[str, str]:
    """run id -> a legend name unique among these runs (the id is added to a repeated one).
    A setting whose values read the same (two uploads of one file) names nothing."""
    runs = readable(records)
    shown = [n for n in differing_settings(records) if len({display_value(r, n) for r in runs}) > 1]
    shown.sort(key=lambda name: name in FIXED_COLUMNS)  # the swept setting leads; model and data follow
    labels = {r.id: run_label(r, shown) for r in records}
    counts = {label: list(labels.values()).count(label) for label in labels.values()}
    return {rid: f"{label} ({rid})" if counts[label] > 1 else label for rid, label in labels.items()}


def settings_diff(records) -> list[dict]:
    """One row per differing setting: {"setting": name, <run label>: value, ...}."""
    labels = run_labels(records)
    runs = readable(records)
    return [{"setting": name, **{labels[r.id]: display_value(r, name) for r in runs}}
            for name in differing_settings(records)]


# The settings a preference loss's value depends on, beside the objective itself.
LOSS_SETTINGS = ("beta", "dpo_loss", "desirable_weight", "undesirable_weight")


def objective_caution(records) -> str | None:
    """A sentence for a verdict that ranks losses, when the runs' losses are not on one
    scale: different objectives optimise different losses (a supervised run's cross-entropy,
    DPO's -log sigmoid(beta x margin)), and a preference loss moves with beta and its variant.
    None when the losses compare."""
    runs = readable(records)
    named = {str(setting_value(r, "objective") or "sft") for r in runs}
    if len(named) > 1:
        words = ", ".join(objectives.NAMES.get(o, o) for o in sorted(named))
        return (f"Careful: these runs optimise different objectives ({words}), so their losses measure different "
                "things and the lowest one is not the better run; compare their held-out answers, and a preference "
                "run's preference accuracy on pairs it never trained on.")
    differ = [n for n in LOSS_SETTINGS if n in differing_settings(runs)]
    if differ:
        return (f"Careful: a {next(iter(named)).upper()} loss depends on {' and '.join(differ)}, which differ here, so "
                "the lowest loss is not the strongest preference; compare each run's preference accuracy on pairs "
                "it never trained on.")
    return None


def quoted(label: str) -> str:
    """A label naming several settings holds commas: quote it so the sentence still reads."""
    return f'"{label}"' if "," in label else label
