"""The shape of a Llama-like decoder: the numbers the memory arithmetic
(estimate.py) needs, from a model's config, a model spec, or given by hand.

    >>> shape_from_spec("llama-2-7b").parameters   # the tutorial's 7B model
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# Llama-like defaults for a shape given only by its main numbers.
LLAMA_HEAD_DIMS = (128, 64)  # Llama, Mistral, Qwen use 128-wide heads; small models 64
LLAMA_MLP_MULTIPLE = 256  # Llama rounds its SwiGLU width 8h/3 up to a multiple of 256
# Dense models use an MLP 2.7-8x the hidden size; a parameter count that needs
# more than 16x does not fit the given layers and hidden size.
MAX_MLP_RATIO = 16
# A given parameter count and a fully given shape may differ by biases, extra
# norms, rounding; beyond 10% they describe different models.
PARAMETER_TOLERANCE = 0.10


class EstimateError(ValueError):
    """Settings or a shape the arithmetic cannot use; the message is one line."""


# --- the model's shape --------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """The numbers the memory arithmetic needs from a Llama-like decoder."""

    parameters: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    tied_embeddings: bool
    attention_bias: bool = False
    mlp_bias: bool = False
    name: str = "model"
    assumptions: tuple[str, ...] = ()

    def linears(self) -> list[tuple[str, int, int]]:
        """(name, in features, out features) of every linear in one layer."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return [("q_proj", h, q), ("k_proj", h, kv), ("v_proj", h, kv), ("o_proj", q, h),
                ("gate_proj", h, i), ("up_proj", h, i), ("down_proj", i, h)]

    @property
    def layer_linear_parameters(self) -> int:
        weights = sum(i * o for _, i, o in self.linears())
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        attention_biases = (q + 2 * kv + self.hidden) * self.attention_bias
        mlp_biases = (2 * self.intermediate + self.hidden) * self.mlp_bias
        return weights + attention_biases + mlp_biases

    @property
    def embedding_parameters(self) -> int:
        return self.vocab * self.hidden

    @property
    def head_parameters(self) -> int:
        return 0 if self.tied_embeddings else self.vocab * self.hidden

    @property
    def norm_parameters(self) -> int:
        return (2 * self.layers + 1) * self.hidden  # two RMSNorms per layer and a final one

    def counted_parameters(self) -> int:
        """The parameter count the shape implies (embeddings, attention with
        grouped kv heads, gated MLP, norms, an untied head)."""
        return (self.embedding_parameters + self.layers * self.layer_linear_parameters
                + self.norm_parameters + self.head_parameters)

    def lora_parameters(self, r: int) -> int:
        """Adapter size with all-linear targets: r x (in + out) per linear, every layer."""
        return self.layers * sum(r * (i + o) for _, i, o in self.linears())


def positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise EstimateError(f"{name}: expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise EstimateError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise EstimateError(f"{name}: must be a positive finite number, got {value!r}")
    return number


def positive_int(name: str, value: Any) -> int:
    number = positive_number(name, value)
    if number != int(number):
        raise EstimateError(f"{name}: expected a whole number, got {value!r}")
    return int(number)


def format_count(n: float) -> str:
    """6738415616 -> '6.74e9'; 134515008 -> '1.35e8': a count a reader can redo."""
    if n < 1e5:
        return f"{n:,.0f}"
    mantissa, exponent = f"{n:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _default_heads(hidden: int) -> int:
    for head_dim in LLAMA_HEAD_DIMS:
        if hidden % head_dim == 0:
            return hidden // head_dim
    return 1


def _llama_intermediate(hidden: int) -> int:
    return -(-(8 * hidden // 3) // LLAMA_MLP_MULTIPLE) * LLAMA_MLP_MULTIPLE


def make_shape(*, layers, hidden, vocab, intermediate=None, heads=None, kv_heads=None, head_dim=None,
               tied_embeddings=False, attention_bias=False, mlp_bias=False, parameters=None,
               name="model", assumptions=()) -> ModelShape:
    """A validated shape; the parameter count is counted from it unless given.
    A given count with no intermediate size sets the MLP width that holds it."""
    layers, hidden = positive_int("layers", layers), positive_int("hidden", hidden)
    vocab = positive_int("vocab", vocab)
    notes = list(assumptions)
    if heads is None:
        heads = _default_heads(hidden)
        notes.append(f"{heads} attention heads of {hidden // heads} (Llama-like default)")
    heads = positive_int("heads", heads)
    if head_dim is None and hidden % heads:
        raise EstimateError(f"hidden size {hidden} is not divisible by {heads} attention heads")
    head_dim = positive_int("head_dim", head_dim if head_dim is not None else hidden // heads)
    kv_heads = heads if kv_heads is None else positive_int("kv_heads", kv_heads)
    if heads % kv_heads:
        raise EstimateError(f"{heads} attention heads cannot be shared by {kv_heads} key/value heads")
    shape = ModelShape(0, layers, hidden, 1, vocab, heads, kv_heads, head_dim, bool(tied_embeddings),
                       bool(attention_bias), bool(mlp_bias), name)
    if parameters is not None and intermediate is None:
        shape = _fit_intermediate(shape, positive_int("parameters", parameters))
        notes.append(f"MLP width {shape.intermediate} chosen so the shape holds {format_count(shape.parameters)} "
                     "parameters")
    else:
        if intermediate is None:
            intermediate = _llama_intermediate(hidden)
            notes.append(f"MLP width {intermediate} (Llama's 8/3 x hidden, rounded up to {LLAMA_MLP_MULTIPLE})")
        shape = replace(shape, intermediate=positive_int("intermediate", intermediate))
        shape = replace(shape, parameters=_checked_count(shape, parameters))
    return replace(shape, assumptions=tuple(notes))


def _fit_intermediate(shape: ModelShape, parameters: int) -> ModelShape:
    fixed = replace(shape, intermediate=0).counted_parameters()
    per_unit = shape.layers * (3 * shape.hidden + 2 * shape.mlp_bias)  # gate, up, down grow with the width
    width = round((parameters - fixed) / per_unit)
    if width < 1:
        raise EstimateError(f"{format_count(parameters)} parameters are fewer than the {format_count(fixed)} that the "
                            f"embeddings, attention and norms of this shape hold alone")
    if width > MAX_MLP_RATIO * shape.hidden:
        raise EstimateError(f"{format_count(parameters)} parameters do not fit {shape.layers} layers of hidden size "
                            f"{shape.hidden}: the MLP would be {width // shape.hidden}x the hidden size "
                            f"(dense models use under {MAX_MLP_RATIO}x)")
    return replace(shape, intermediate=width, parameters=parameters)


def _checked_count(shape: ModelShape, parameters) -> int:
    counted = shape.counted_parameters()
    if parameters is None:
        return counted
    given = positive_int("parameters", parameters)
    if abs(given - counted) > PARAMETER_TOLERANCE * counted:
        raise EstimateError(f"this shape holds {format_count(counted)} parameters, not {format_count(given)}")
    return given


# Llama-2-7B's published shape: the model the tutorial's 7B question means.
LLAMA2_7B = make_shape(name="Llama-2-7B shape", layers=32, hidden=4096, intermediate=11008, vocab=32000,
                       heads=32, kv_heads=32, tied_embeddings=False)
KNOWN_SHAPES = {"llama-2-7b": LLAMA2_7B}


def _first(values: dict, *keys):
    for key in keys:
        if values.get(key) is not None:
            return values[key]
    return None


def _config_values(config) -> dict:
    """A config object or a config.json dict as a dict, with the model type's
    defaults filled in (a config.json omits values equal to the defaults)."""
    if hasattr(config, "to_dict"):
        return config.to_dict()
    if not isinstance(config, dict):
        raise EstimateError(f"expected a transformers config or a config.json dict, got {type(config).__name__}")
    try:
        from transformers import CONFIG_MAPPING

        return CONFIG_MAPPING[config["model_type"]].from_dict(config).to_dict()
    except Exception:  # an unknown or custom model type: the dict as written
        return dict(config)


def shape_from_config(config, name: str | None = None) -> ModelShape:
    """The shape of a transformers config object or a config.json dict."""
    values = _config_values(config)
    values = values.get("text_config") or values  # multimodal wrappers keep the decoder's shape here
    numbers = {
        "layers": _first(values, "num_hidden_layers", "n_layer", "num_layers"),
        "hidden": _first(values, "hidden_size", "n_embd", "d_model"),
        "vocab": _first(values, "vocab_size"),
        "heads": _first(values, "num_attention_heads", "n_head"),
    }
    missing = [k for k, v in numbers.items() if v is None]
    if missing:
        raise EstimateError(f"the config has no {', '.join(missing)}: not a decoder language model config")
    intermediate = _first(values, "intermediate_size", "n_inner", "ffn_dim") or 4 * int(numbers["hidden"])
    notes = ["Llama-like decoder: gated MLP, RMSNorm, rotary positions (a plain MLP or MoE is not modelled)"]
    return make_shape(**numbers, intermediate=intermediate, kv_heads=_first(values, "num_key_value_heads"),
                      head_dim=_first(values, "head_dim"),
                      tied_embeddings=values.get("tie_word_embeddings", True),
                      attention_bias=bool(values.get("attention_bias")), mlp_bias=bool(values.get("mlp_bias")),
                      name=name or values.get("_name_or_path") or values.get("model_type") or "model",
                      assumptions=notes)


def shape_from_spec(spec: str) -> ModelShape:
    """The shape of a model spec ('default', a local folder, a hub id, or a
    known shape such as 'llama-2-7b'), read from its config without loading weights."""
    from ..sources import models

    key = (spec or "").strip()
    if key.lower() in KNOWN_SHAPES:
        return KNOWN_SHAPES[key.lower()]
    if key.endswith(".json") and Path(key).is_file():  # a model's config.json on its own
        try:
            config = json.loads(Path(key).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise EstimateError(f"{key}: not a readable model config ({err})") from None
        return shape_from_config(config, Path(key).name)
    if key == models.DEFAULT_SPEC:
        config, label = _default_model_config(models)
        return shape_from_config(config, label)
    source = models.resolve(key)
    if source.kind == "local":
        return shape_from_config(json.loads((Path(source.location) / "config.json").read_text()), source.label)
    return shape_from_config(_hub_config(source.location), source.label)


def _default_model_config(models):
    # Without a converted copy, read the bundled GGUF's metadata: resolve('default')
    # would first convert the whole model (~15 s) to answer a question about its shape.
    folder = models.default_model_dir()
    if (folder / "config.json").is_file():
        return json.loads((folder / "config.json").read_text()), models.DEFAULT_NAME
    gguf = models.bundled_gguf_path()
    if gguf is not None:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name), models.DEFAULT_NAME
    return _hub_config(models.DEFAULT_HUB_ID), models.DEFAULT_HUB_ID


def _hub_config(repo_id: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(repo_id, trust_remote_code=False)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EstimateError(f"cannot read the config of {repo_id} (no network, or not cached locally): "
                            f"{first}") from None
