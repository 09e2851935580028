"""What an endpoint accepts: every raw value a request sends is checked here,
before Gradio converts it, and a bad one is refused in one line that names the
parameter and says what is allowed.

Why before Gradio's own conversion: a number box turns `true` into 1, a
missing number (null) reaches the handler as None, and Gradio's own refusals
("Value 7 is greater than maximum value 5.", a TypeError with no message at
all for "abc") name no parameter. The check reads what each parameter's
component allows (a number's bounds as this session's page has them, a
dropdown's choices, a text box's length) so it never re-types a range.

The rule for null: text parameters take null as empty (each says what empty
means: the default model, your latest run, no token); a number, a switch or a
choice refuses it (leave the parameter out and it takes the page's value).
"""

from __future__ import annotations

import json
import math
from typing import Any

import gradio as gr

from finetune.train import config as cfg

SHOWN_CHARS = 40  # a refused value is echoed this far, never whole


def install(demo: gr.Blocks) -> None:
    """Check every event's raw inputs before Gradio converts them. Gradio has no hook
    for this: its preprocess_data(block_fn, inputs, state, ...) is wrapped on this app
    only (tests/api call every endpoint through it, so a change in Gradio shows there)."""
    convert = demo.preprocess_data

    async def checked(block_fn, inputs, state, *args, **kwargs):
        check_inputs(block_fn, inputs, state)
        return await convert(block_fn, inputs, state, *args, **kwargs)

    demo.preprocess_data = checked


def check_inputs(block_fn, inputs: list, state) -> None:
    """gr.Error naming the first parameter whose raw value its component cannot take."""
    names = list(getattr(block_fn, "input_parameter_names", None) or [])
    props = getattr(block_fn, "component_prop_inputs", ()) or ()
    for index, (block, raw) in enumerate(zip(block_fn.inputs, inputs)):
        if index in props or getattr(block, "stateful", False):
            continue  # a component's properties, or server-side state: not sent by the caller as a value
        if state is not None and block._id in state:
            block = state[block._id]  # this session's copy: the bounds and choices its page shows
        name = (names[index] if index < len(names) else None) or getattr(block, "label", None) or f"input {index}"
        problem = problem_with(block, raw, name)
        if problem:
            raise gr.Error(f"{name}: {problem}", print_exception=False)


def problem_with(block, raw: Any, name: str) -> str | None:
    """Why `raw` cannot be this component's value, in words; None when it can."""
    if isinstance(block, gr.Checkbox):
        return None if isinstance(raw, bool) else f"{shown(raw)} is not true or false"
    if isinstance(block, (gr.Number, gr.Slider)):
        return number_problem(block, raw, name)
    if isinstance(block, (gr.Dropdown, gr.Radio)):
        return choice_problem(block, raw)
    if isinstance(block, gr.Textbox):
        return text_problem(raw, getattr(block, "max_length", None))
    if isinstance(block, gr.File):
        if raw is None or isinstance(raw, dict) and isinstance(raw.get("path"), str):
            return None
        return f"{shown(raw)} is not a file; upload one (with gradio_client: handle_file(\"data.jsonl\"))"
    if isinstance(block, gr.BrowserState):
        return None if raw is None or isinstance(raw, str) else f"{shown(raw)} is not text; give your owner key"
    if type(block).__name__ == "Api":  # gr.api's parameters: checked against their type hints
        return api_problem(block, raw)
    return None


def number_problem(block, raw: Any, name: str) -> str | None:
    low, high = block.minimum, block.maximum
    whole = _is_whole(block, name)
    lo, hi = (_number(low, whole), _number(high, whole))
    span = (f" from {lo} to {hi}" if low is not None and high is not None
            else f" of at least {lo}" if low is not None else f" of at most {hi}" if high is not None else "")
    allowed = f"give {'a whole number' if whole else 'a number'}{span}"
    if raw is None:
        return f"null is not a number; {allowed}, or leave {name} out to take the page's value"
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return f"{shown(raw)} is not a number; {allowed}"
    if not math.isfinite(raw):
        return f"{shown(raw)} is not a finite number; {allowed}"
    if whole and raw != int(raw):
        return f"{raw:g} is not a whole number; {allowed}"
    if low is not None and raw < low or high is not None and raw > high:
        return f"{raw:g} is outside this page's range; {allowed}{_wider(name, low, high)}"
    return None


def _number(value, whole: bool) -> str:
    """2147483647 as such (a seed's bound), 5e-05 as such; "" for a bound a box does not have."""
    if value is None:
        return ""
    return f"{int(value):,}" if whole and value == int(value) else f"{value:g}"


def _is_whole(block, name: str) -> bool:
    """A setting whose values are whole numbers (batch size, steps, seed), or a box rounding to them."""
    try:
        return isinstance(cfg.field_by_name(name).default, int)
    except KeyError:
        return getattr(block, "precision", None) == 0


def _wider(name: str, low, high) -> str:
    """How to go beyond the recommended range, where the setting allows more."""
    try:
        meta = cfg.field_by_name(name).metadata
    except KeyError:
        return ""
    if "hard_min" not in meta or (meta["hard_min"], meta["hard_max"]) == (low, high):
        return ""
    whole = isinstance(meta["hard_min"], int) and isinstance(meta["hard_max"], int)
    return (f" (the recommended range; with allow_out_of_range=True, through /set_ranges or the page's switch, "
            f"{_number(meta['hard_min'], whole)} to {_number(meta['hard_max'], whole)})")


def choice_problem(block, raw: Any) -> str | None:
    values = [c[1] if isinstance(c, (list, tuple)) else c for c in (block.choices or [])]
    if getattr(block, "multiselect", False):
        if isinstance(raw, list) and all(v in values for v in raw):
            return None
        return f"{shown(raw)} is not a list of {_listed(values)}"
    if getattr(block, "allow_custom_value", False):
        return text_problem(raw, None)
    if raw in values and not isinstance(raw, bool) or raw is None and "" in values:
        return None
    return f"{shown(raw)} is not one of {_listed(values)}"


def text_problem(raw: Any, max_length: int | None) -> str | None:
    if raw is None:
        return None  # empty: each text parameter says what empty means
    if not isinstance(raw, str):
        return f"{shown(raw)} is not text"
    if max_length and len(raw) > max_length:
        return f"{len(raw):,} characters is over the limit of {max_length:,}"
    return None


def api_problem(block, raw: Any) -> str | None:
    """A gr.api parameter, by the JSON type its hint gave (text, optional text, a list of text)."""
    info = getattr(block, "_api_info", None) or {}
    kinds = {option.get("type") for option in info.get("anyOf") or info.get("oneOf") or [info]}
    if raw is None and "null" in kinds:
        return None
    if "string" in kinds and isinstance(raw, str):
        return None
    if "array" in kinds and isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return None
    wanted = {"string": "text", "array": "a list of text", "null": "null"}
    return f"{shown(raw)} is not {' or '.join(wanted.get(k, str(k)) for k in sorted(kinds) if k)}"


def shown(raw: Any) -> str:
    """A value as the caller sent it (JSON), cut short."""
    try:
        text = json.dumps(raw, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(raw)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"


def _listed(values: list) -> str:
    quoted = [json.dumps(v) for v in values]
    return ", ".join(quoted[:12]) + (f" (and {len(quoted) - 12} more)" if len(quoted) > 12 else "")
