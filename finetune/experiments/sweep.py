"""A sweep: one setting, several values, one queued run per value. Everything
else (data, split, seed) is the same, so only that setting differs, and the
runs can be compared on one plot with a verdict (compare.py).

The tutorial's exercise is the default: "Compare the training curves of
fine-tuning with learning rates of 1e-5, 2e-5, and 5e-5."
"""

from __future__ import annotations

import re

from ..train import config as cfg
from ..train import objectives
from .labels import setting_label

DEFAULT_SETTING = "learning_rate"
DEFAULT_VALUES = (1e-5, 2e-5, 5e-5)
MIN_VALUES = 2  # one value is a single run, not a comparison
MAX_VALUES = 19  # 20 runs or more would hold a shared trainer for hours; split such a study


class SweepError(ValueError):
    """A sweep that cannot be run; the message says why."""


def sweepable_settings() -> list[str]:
    """The numeric settings a sweep can vary."""
    return [f.name for f in cfg.fields() if type(f.default) in (int, float)]


def parse_values(setting: str, values) -> list:
    """The sweep's values, from a list or a text such as "1e-5, 2e-5, 5e-5",
    each coerced to the setting's type; refuses what cannot be a sweep."""
    if setting not in sweepable_settings():
        raise SweepError(f"{setting!r} is not a numeric setting; a sweep varies one of: "
                         f"{', '.join(sweepable_settings())}")
    field = cfg.field_by_name(setting)
    items = [v for v in re.split(r"[,\s;]+", values.strip())] if isinstance(values, str) else list(values or ())
    items = [v for v in items if v != ""]
    try:
        parsed = [cfg.coerce(field, v) for v in items]
    except cfg.ConfigError as err:
        raise SweepError(str(err)) from None
    if len(set(parsed)) != len(parsed):
        raise SweepError(f"{setting}: the values repeat; give each value once")
    if not MIN_VALUES <= len(parsed) <= MAX_VALUES:
        raise SweepError(f"a sweep needs {MIN_VALUES} to {MAX_VALUES} values of {setting}; got {len(parsed)}")
    return parsed


def member_settings(base: cfg.TrainConfig, setting: str, values: list,
                    allow_out_of_range: bool) -> list[cfg.Checked]:
    """One checked config per value; values outside the recommended range follow the
    same allow-switch rule as single runs. Every refusal is listed at once. A setting
    the objective does not read (beta in supervised fine-tuning) is refused: the runs
    would all be the same."""
    if not objectives.uses(base.objective, setting):
        readers = [name.upper() for name, names in objectives.SETTINGS.items() if setting in names]
        raise SweepError(f"{setting} is a setting of {' and '.join(readers)}; these settings' objective is "
                         f"{base.objective!r}, which does not read it, so every run would be the same: set objective "
                         f"to {' or '.join(r.lower() for r in readers)}")
    checked, problems = [], []
    for value in values:
        try:
            checked.append(cfg.check(base.replace(**{setting: value}), allow_out_of_range))
        except cfg.ConfigError as err:
            problems.append(f"{setting_label(setting, value)}: {err}")
    if problems:
        raise SweepError("; ".join(problems))
    return checked


def labels(setting: str, values: list) -> list[str]:
    return [setting_label(setting, v) for v in values]
