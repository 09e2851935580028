"""Widgets built from TrainConfig's field metadata, and back.

Ranges, steps, choices and help text come from `finetune.train.config`; nothing here
re-types a range. A slider's bounds are the recommended range (the LoRA range
for the learning rate when the method is LoRA) unless the user allows values
outside it; then they are the hard limits.

make_widgets() makes one widget per config field before any tab is laid out
(unrendered); each tab renders the ones it shows. A field no tab shows must be
listed in EXCLUDED, or the app refuses to build (check_all_placed).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gradio as gr

from finetune.train import config as cfg

# Fields set by the dataset source controls on the Data tab, not by a preset.
SOURCE_FIELDS = ("model", "data", "format", "prompt_column", "response_column", "system_column", "rejected_column")
# Config fields deliberately without a widget of their own, and why.
EXCLUDED = {"data": "chosen by the dataset source controls (bundled, upload, hub) on the Data tab"}
# Wider than this many slider positions and a slider cannot pick a value: use a number box.
MAX_SLIDER_POSITIONS = 2000
WORDS = {"lr": "LR", "lora": "LoRA", "max": "Max", "min": "Min"}


def label(f: dataclasses.Field) -> str:
    words = [WORDS.get(w, w) for w in f.name.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:]] + words[1:])


def is_number(f: dataclasses.Field) -> bool:
    return type(f.default) in (int, float) and type(f.default) is not bool


def bounds(f: dataclasses.Field, method: str, allow: bool) -> tuple[float, float]:
    if allow:
        return f.metadata["hard_min"], f.metadata["hard_max"]
    return cfg.recommended_range(f, method)


def info(f: dataclasses.Field, method: str = "full") -> str:
    text = f.metadata["help"]
    rng = cfg.recommended_range(f, method) if "min" in f.metadata else None
    return f"{text} Recommended: {rng[0]:g} to {rng[1]:g}." if rng else text


def _uses_slider(f: dataclasses.Field) -> bool:
    # A seed or a step count spans millions of values: a slider could not pick one.
    return (f.metadata["max"] - f.metadata["min"]) / f.metadata["step"] <= MAX_SLIDER_POSITIONS


def widget(f: dataclasses.Field, value: Any, method: str = "full", allow: bool = False, choices=None,
           **extra) -> gr.Component:
    """One input for one config field; `choices` makes a text field a dropdown (e.g. of a table's columns)."""
    meta = f.metadata
    common = {"label": label(f), "value": value, "info": info(f, method) if is_number(f) else meta["help"], **extra}
    if cfg.choices(f) is not None or choices is not None:
        return gr.Dropdown(choices=list(choices if choices is not None else cfg.choices(f)), **common)
    if isinstance(f.default, bool):
        return gr.Checkbox(**common)
    if is_number(f):
        low, high = bounds(f, method, allow)
        if _uses_slider(f):
            return gr.Slider(minimum=low, maximum=high, step=meta["step"], **common)
        return gr.Number(minimum=low, maximum=high, step=meta["step"], precision=0 if isinstance(f.default, int)
                         else None, **common)
    # The browser stops typing at the engine's cap (the server refuses longer text whatever is sent).
    return gr.Textbox(max_length=meta.get("max_chars"), **common)


def make_widgets(initial: cfg.TrainConfig, options: dict[str, dict]) -> dict[str, gr.Component]:
    """One unrendered widget per config field not in EXCLUDED; `options` are
    the layout arguments the tabs ask for, by field name."""
    return {f.name: widget(f, getattr(initial, f.name), initial.method, render=False, **options.get(f.name, {}))
            for f in cfg.fields() if f.name not in EXCLUDED}


def check_all_placed(widgets: dict[str, gr.Component]) -> None:
    """Refuse to build an app in which a setting has no place on any tab."""
    unplaced = [name for name, w in widgets.items() if not w.is_rendered]
    if unplaced:
        raise RuntimeError(f"settings without a place on any tab: {', '.join(unplaced)}; lay them out on a tab "
                           "or list them in ui.views.fields.EXCLUDED with the reason")


def clamp(value, low, high):
    if value is None:
        return value
    return min(max(value, low), high)


def range_update(f: dataclasses.Field, value: Any, method: str, allow: bool):
    """New bounds (and a value kept inside them) for a numeric widget."""
    low, high = bounds(f, method, allow)
    return gr.update(minimum=low, maximum=high, value=clamp(value, low, high), info=info(f, method))


def numeric_fields(names) -> list[dataclasses.Field]:
    return [cfg.field_by_name(n) for n in names if is_number(cfg.field_by_name(n))]


def preset_values(preset: str, current: dict[str, Any]) -> dict[str, Any]:
    """Every setting a preset decides: the preset over the defaults, keeping the data source."""
    chosen = cfg.build(preset=preset, allow_out_of_range=True).config
    return {name: getattr(chosen, name) for name in current if name not in SOURCE_FIELDS}


def build_config(values: dict[str, Any], allow: bool) -> cfg.Checked:
    """Widget values -> a checked config; ConfigError lists every problem."""
    known = {f.name for f in cfg.fields()}
    return cfg.build({k: v for k, v in values.items() if k in known}, allow_out_of_range=allow)
