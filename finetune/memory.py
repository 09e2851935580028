"""How much memory fine-tuning needs: the tutorial's arithmetic, term by term,
and a meter for the real peak to check the arithmetic against.

An estimate adds up what a training step holds: weights, gradients, optimizer
states, the activations kept for the backward pass, the output layer's loss
and a fixed overhead. Every term carries its arithmetic as text, so a reader
can redo it by hand, and every estimate lists the assumptions it makes.

    >>> print(format_breakdown(tutorial_7b()))   # the tutorial's 7B question
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

GIB = 2**30
FP32 = 4
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
METHODS = ("full", "lora", "qlora")
OPTIMIZERS = ("adamw", "adamw_8bit")
RECIPES = ("engine", "classic-mixed")

# AdamW keeps two moments (m and v) per trainable parameter, in the dtype of
# the weights it updates.
ADAM_MOMENTS = 2
# bitsandbytes' 8-bit AdamW: m and v in one byte each (block-wise constants are
# ~0.1% more and ignored).
ADAMW_8BIT_BYTES = 2
# NF4 stores 4 bits per weight; double quantisation (the QLoRA paper) adds an
# 8-bit absmax per block of 64 weights and an fp32 constant per 256 blocks.
NF4_BYTES = 0.5
NF4_CONSTANT_BYTES = (8 / 64 + 32 / (64 * 256)) / 8
# finetune/loss.py's CHUNK_TOKENS (a test keeps them equal): the loss never
# holds more than this many tokens' logits at once.
LOSS_CHUNK_TOKENS = 1024
# What a step needs besides the tensors counted here. On a GPU: the CUDA context
# and the caching allocator's slack. On a CPU: the tokenizer, the data, the
# libraries' working memory and pages the allocator keeps after freeing; measured
# ~0.4 GiB for SmolLM2-135M training on a CPU (tests/test_memory.py).
OVERHEAD_BYTES = 0.5 * GIB

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


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise EstimateError(f"{name}: expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise EstimateError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise EstimateError(f"{name}: must be a positive finite number, got {value!r}")
    return number


def _positive_int(name: str, value: Any) -> int:
    number = _number(name, value)
    if number != int(number):
        raise EstimateError(f"{name}: expected a whole number, got {value!r}")
    return int(number)


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
    layers, hidden = _positive_int("layers", layers), _positive_int("hidden", hidden)
    vocab = _positive_int("vocab", vocab)
    notes = list(assumptions)
    if heads is None:
        heads = _default_heads(hidden)
        notes.append(f"{heads} attention heads of {hidden // heads} (Llama-like default)")
    heads = _positive_int("heads", heads)
    if head_dim is None and hidden % heads:
        raise EstimateError(f"hidden size {hidden} is not divisible by {heads} attention heads")
    head_dim = _positive_int("head_dim", head_dim if head_dim is not None else hidden // heads)
    kv_heads = heads if kv_heads is None else _positive_int("kv_heads", kv_heads)
    if heads % kv_heads:
        raise EstimateError(f"{heads} attention heads cannot be shared by {kv_heads} key/value heads")
    shape = ModelShape(0, layers, hidden, 1, vocab, heads, kv_heads, head_dim, bool(tied_embeddings),
                       bool(attention_bias), bool(mlp_bias), name)
    if parameters is not None and intermediate is None:
        shape = _fit_intermediate(shape, _positive_int("parameters", parameters))
        notes.append(f"MLP width {shape.intermediate} chosen so the shape holds {_count(shape.parameters)} "
                     "parameters")
    else:
        if intermediate is None:
            intermediate = _llama_intermediate(hidden)
            notes.append(f"MLP width {intermediate} (Llama's 8/3 x hidden, rounded up to {LLAMA_MLP_MULTIPLE})")
        shape = replace(shape, intermediate=_positive_int("intermediate", intermediate))
        shape = replace(shape, parameters=_checked_count(shape, parameters))
    return replace(shape, assumptions=tuple(notes))


def _fit_intermediate(shape: ModelShape, parameters: int) -> ModelShape:
    fixed = replace(shape, intermediate=0).counted_parameters()
    per_unit = shape.layers * (3 * shape.hidden + 2 * shape.mlp_bias)  # gate, up, down grow with the width
    width = round((parameters - fixed) / per_unit)
    if width < 1:
        raise EstimateError(f"{_count(parameters)} parameters are fewer than the {_count(fixed)} that the "
                            f"embeddings, attention and norms of this shape hold alone")
    if width > MAX_MLP_RATIO * shape.hidden:
        raise EstimateError(f"{_count(parameters)} parameters do not fit {shape.layers} layers of hidden size "
                            f"{shape.hidden}: the MLP would be {width // shape.hidden}x the hidden size "
                            f"(dense models use under {MAX_MLP_RATIO}x)")
    return replace(shape, intermediate=width, parameters=parameters)


def _checked_count(shape: ModelShape, parameters) -> int:
    counted = shape.counted_parameters()
    if parameters is None:
        return counted
    given = _positive_int("parameters", parameters)
    if abs(given - counted) > PARAMETER_TOLERANCE * counted:
        raise EstimateError(f"this shape holds {_count(counted)} parameters, not {_count(given)}")
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
    from . import models

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


# --- the estimate -------------------------------------------------------------

# When a term's memory is alive during a step: the peak is what overlaps.
WHOLE_RUN = "whole run"
FORWARD_TO_BACKWARD = "forward to backward"
BACKWARD_TO_STEP = "backward to optimizer step"


@dataclass(frozen=True)
class Term:
    name: str
    bytes: float
    arithmetic: str
    lifetime: str = WHOLE_RUN


@dataclass(frozen=True)
class Estimate:
    shape: ModelShape
    settings: dict
    terms: tuple[Term, ...]
    assumptions: tuple[str, ...]
    gradients_persist: bool  # gradients still held in the forward (accumulation, or the textbook count)

    @property
    def total_bytes(self) -> float:
        """Every term at once: the textbook sum, an upper bound."""
        return sum(t.bytes for t in self.terms)

    @property
    def peak_bytes(self) -> float:
        """The worst moment of a step. Gradients freed after each optimizer step
        do not exist in the forward, and activations are gone by the step: the
        peak is then the larger of the backward's start and the optimizer step."""
        if self.gradients_persist:
            return self.total_bytes
        held = self._lifetime_bytes(WHOLE_RUN)
        return held + max(self._lifetime_bytes(FORWARD_TO_BACKWARD), self._lifetime_bytes(BACKWARD_TO_STEP))

    def _lifetime_bytes(self, lifetime: str) -> float:
        return sum(t.bytes for t in self.terms if t.lifetime == lifetime)

    def bytes_of(self, name: str) -> float:
        return sum(t.bytes for t in self.terms if t.name == name)


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise EstimateError(f"{name}: {value!r} is not one of {', '.join(choices)}")
    return value


def _count(n: float) -> str:
    """6738415616 -> '6.74e9'; 134515008 -> '1.35e8': a count a reader can redo."""
    if n < 1e5:
        return f"{n:,.0f}"
    mantissa, exponent = f"{n:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


@dataclass(frozen=True)
class _Precision:
    """Bytes per element of each copy a recipe keeps."""

    stored: int  # the weights as loaded (frozen base for LoRA; the working copy in classic-mixed)
    master: int  # the weights the optimizer updates (and their gradients' dtype, except classic-mixed)
    compute: int  # matmul dtype under autocast
    stream: int  # the residual stream between layers: the embeddings' dtype


def estimate(shape: ModelShape, *, method: str = "full", weights: str = "fp32", autocast: str = "bf16",
             optimizer: str = "adamw", batch_size: int = 1, seq_len: int = 512,
             gradient_checkpointing: bool = False, lora_r: int = 16, lora_dropout: float = 0.05,
             recipe: str = "engine", grad_accum: int = 1, response_fraction: float = 1.0,
             overhead_bytes: float = OVERHEAD_BYTES) -> Estimate:
    """Memory for fine-tuning `shape`, term by term.

    recipe 'engine' is this lab's: weights kept as loaded (fp32 master) with
    autocast, the loss in chunks over response tokens. 'classic-mixed' is the
    textbook count for fp16 mixed precision: a half-precision working copy and
    its gradients, fp32 master weights and AdamW states (16 bytes/param).
    Tokens per micro-batch are batch_size x seq_len: with packing, pass the
    mean example length as seq_len to count the real tokens."""
    settings = _checked_settings(**{k: v for k, v in locals().items() if k != "shape"})
    precision = _precision(settings)
    trainable = shape.parameters if method == "full" else shape.lora_parameters(settings["lora_r"])
    terms = [*_weight_terms(shape, settings, precision, trainable),
             _gradient_term(settings, precision, trainable),
             _optimizer_term(settings, precision, trainable),
             *_autocast_copy_terms(shape, settings, precision),
             _activation_term(shape, settings, precision),
             _loss_term(shape, settings, precision),
             Term("overhead", float(overhead_bytes), f"{_gib(overhead_bytes)} fixed (CUDA context or libraries, "
                  "tokenizer and data, allocator slack)")]
    persist = recipe == "classic-mixed" or settings["grad_accum"] > 1
    return Estimate(shape, settings, tuple(terms),
                    _assumptions(shape, settings, precision, persist), persist)


def _checked_settings(**s) -> dict:
    _choice("method", s["method"], METHODS)
    _choice("weights", s["weights"], tuple(DTYPE_BYTES))
    _choice("autocast", s["autocast"], tuple(DTYPE_BYTES))
    _choice("optimizer", s["optimizer"], OPTIMIZERS)
    _choice("recipe", s["recipe"], RECIPES)
    for name in ("batch_size", "seq_len", "lora_r", "grad_accum"):
        s[name] = _positive_int(name, s[name])
    s["overhead_bytes"] = float(s["overhead_bytes"])
    if not math.isfinite(s["overhead_bytes"]) or s["overhead_bytes"] < 0:
        raise EstimateError(f"overhead_bytes: must be a finite number >= 0, got {s['overhead_bytes']!r}")
    if not 0 < _number("response_fraction", s["response_fraction"]) <= 1:
        raise EstimateError(f"response_fraction: must be in (0, 1], got {s['response_fraction']!r}")
    if not (isinstance(s["lora_dropout"], (int, float)) and 0 <= s["lora_dropout"] < 1):
        raise EstimateError(f"lora_dropout: must be in [0, 1), got {s['lora_dropout']!r}")
    if s["recipe"] == "classic-mixed" and (s["method"] != "full" or s["weights"] == "fp32"):
        raise EstimateError("recipe classic-mixed is the textbook count for full fine-tuning with fp16 or bf16 "
                            "working weights: use method full and weights fp16 or bf16")
    s["gradient_checkpointing"] = bool(s["gradient_checkpointing"])
    return s


def _precision(s: dict) -> _Precision:
    stored = DTYPE_BYTES[s["weights"]]
    if s["recipe"] == "classic-mixed":  # the half working copy computes; fp32 master only for the update
        return _Precision(stored=stored, master=FP32, compute=stored, stream=stored)
    # Full fine-tuning updates the weights as loaded; peft keeps LoRA adapters in fp32 whatever the base's dtype.
    master = stored if s["method"] == "full" else FP32
    return _Precision(stored=stored, master=master, compute=min(stored, DTYPE_BYTES[s["autocast"]]), stream=stored)


def _weight_terms(shape, s, p, trainable) -> list[Term]:
    n = shape.parameters
    if s["recipe"] == "classic-mixed":
        return [Term("weights", n * p.stored, f"{_count(n)} params x {p.stored} bytes ({s['weights']} working copy)"),
                Term("master weights", n * FP32,
                     f"{_count(n)} params x 4 bytes (fp32 master copy the optimizer updates)")]
    if s["method"] == "full":
        return [Term("weights", n * p.stored, f"{_count(n)} params x {p.stored} bytes "
                     f"({s['weights']} weights, the copy the optimizer updates)")]
    adapters = Term("adapter weights", trainable * FP32,
                    f"{_count(trainable)} adapter params x 4 bytes (fp32, r={s['lora_r']} on every linear)")
    if s["method"] == "lora":
        return [Term("base weights", n * p.stored, f"{_count(n)} params x {p.stored} bytes (frozen {s['weights']})"),
                adapters]
    quantised = shape.layers * shape.layer_linear_parameters
    rest = n - quantised
    per = NF4_BYTES + NF4_CONSTANT_BYTES
    return [Term("base weights", quantised * per + rest * p.stored,
                 f"{_count(quantised)} linear params x {per:.3f} bytes (NF4 + quantisation constants) + "
                 f"{_count(rest)} embedding, head and norm params x {p.stored} bytes ({s['weights']})"),
            adapters]


def _gradient_term(s, p, trainable) -> Term:
    grad_bytes = p.stored if s["recipe"] == "classic-mixed" else p.master
    dtype = {4: "fp32", 2: s["weights"]}[grad_bytes]
    what = "params" if s["method"] == "full" else "adapter params"
    return Term("gradients", trainable * grad_bytes, f"{_count(trainable)} {what} x {grad_bytes} bytes ({dtype})",
                BACKWARD_TO_STEP)


def _optimizer_term(s, p, trainable) -> Term:
    if s["optimizer"] == "adamw_8bit":
        per, how = ADAMW_8BIT_BYTES, "8-bit AdamW: m and v in 1 byte each"
    else:
        per = ADAM_MOMENTS * p.master
        how = f"AdamW m and v in {'fp32' if p.master == FP32 else s['weights']}"
    return Term("optimizer states", trainable * per, f"{_count(trainable)} trainable params x {per} bytes ({how})")


def _autocast_copy_terms(shape, s, p) -> list[Term]:
    """Autocast casts each weight to the compute dtype for its matmul and the
    copy is kept for the backward. Full fine-tuning: autocast caches the copies
    of trainable weights for the whole forward. LoRA: each frozen layer's copies
    are saved by its matmuls (one layer's with checkpointing). QLoRA
    dequantises one matrix at a time and saves none."""
    if s["recipe"] == "classic-mixed" or s["method"] == "qlora" or p.compute >= p.stored:
        return []
    per_layer = shape.layer_linear_parameters
    layers = 1 if (s["method"] == "lora" and s["gradient_checkpointing"]) else shape.layers
    n = layers * per_layer
    return [Term("autocast copies", n * p.compute,
                 f"{layers} layers x {_count(per_layer)} linear params x {p.compute} bytes "
                 f"({s['autocast']} copies of the {s['weights']} weights, kept for the backward)",
                 FORWARD_TO_BACKWARD)]


def layer_activation_bytes_per_token(shape: ModelShape, stream: int, compute: int) -> int:
    """Bytes one decoder layer saves for the backward, per token (matched to
    autograd's saved tensors for SmolLM2 within ~2% in bf16, ~7% in fp32)."""
    h, width, i = shape.hidden, shape.heads * shape.head_dim, shape.intermediate
    norms = 2 * (FP32 * h + stream * h)  # each RMSNorm keeps its input upcast to fp32 and its output
    casts = 5 * h * compute if compute < stream else 0  # autocast copies the input of q, k, v, gate, up separately
    attention = 5 * width * compute  # q, k, v (repeated to every head under a mask), the output, o_proj's input
    mlp = 4 * i * compute  # gate, silu(gate), up, and their product (down's input)
    return norms + casts + attention + mlp


def _activation_term(shape, s, p) -> Term:
    tokens = s["batch_size"] * s["seq_len"]
    per_layer = layer_activation_bytes_per_token(shape, p.stream, p.compute)
    dropout = 0
    if s["method"] != "full" and s["lora_dropout"] > 0:
        # Each adapter's dropout keeps its own copy of the linear's input
        # (measured: 4 bytes per element with fp32 weights): q, k, v, gate, up
        # read the hidden size, o_proj the attention width, down_proj the MLP width.
        dropout = (5 * shape.hidden + shape.heads * shape.head_dim + shape.intermediate) * p.stream
    full = per_layer + dropout
    if not s["gradient_checkpointing"]:
        return Term("activations", shape.layers * tokens * full,
                    f"{shape.layers} layers x {tokens:,} tokens x {full:,} bytes per token and layer",
                    FORWARD_TO_BACKWARD)
    kept = shape.layers * tokens * shape.hidden * p.stream
    return Term("activations", kept + tokens * full,
                f"{shape.layers} layers x {tokens:,} tokens x {shape.hidden} hidden x {p.stream} bytes "
                f"(each layer's input) + {tokens:,} tokens x {full:,} bytes (one layer recomputed in the backward)",
                FORWARD_TO_BACKWARD)


def _loss_term(shape, s, p) -> Term:
    v, h = shape.vocab, shape.hidden
    tokens = s["batch_size"] * s["seq_len"]
    if s["recipe"] == "classic-mixed":
        per = p.compute + 2 * FP32  # logits, their fp32 upcast for the cross-entropy, its fp32 gradient
        return Term("logits and loss", tokens * v * per,
                    f"{tokens:,} tokens x {v:,} vocabulary x {per} bytes (whole logits in {s['weights']}, "
                    "an fp32 copy and its gradient)", FORWARD_TO_BACKWARD)
    targets = max(1, round(tokens * s["response_fraction"]))
    chunk = min(targets, LOSS_CHUNK_TOKENS)
    alive = 2 if targets > LOSS_CHUNK_TOKENS else 1  # a chunk's logits are freed only once the next replace them
    per = FP32 + p.compute  # fp32 log-probs (reused in place as the gradient) + the matmul or its cast
    parts = [(alive * chunk * v * per, f"{alive} x {chunk:,} tokens x {v:,} vocabulary x {per} bytes")]
    if p.compute < p.stored:
        parts.append((v * h * p.compute, f"{_count(v * h)} head params x {p.compute} bytes (cast)"))
    if s["method"] == "full":
        parts.append((v * h * FP32, f"{_count(v * h)} x 4 bytes (head gradient, computed in the forward)"))
    parts.append((targets * h * p.stream, f"{targets:,} x {h} x {p.stream} bytes (hidden-state gradient)"))
    return Term("logits and loss", sum(b for b, _ in parts), " + ".join(t for _, t in parts), FORWARD_TO_BACKWARD)


def _engine_note(s, p) -> str:
    autocast = f"matmuls under {s['autocast']} autocast" + (
        " (no copies: the weights are already that narrow)" if p.compute >= p.stored else "")
    if s["method"] == "full":
        return (f"this lab's engine: the {s['weights']} weights are the copy the optimizer updates, with "
                f"gradients and AdamW states in the same dtype; {autocast}")
    base = "an NF4 base (embeddings and norms in " + s["weights"] + ")" if s["method"] == "qlora" else \
        f"a frozen {s['weights']} base"
    return (f"this lab's engine: {base}; adapters, their gradients and AdamW states in fp32 (as peft keeps "
            f"them); {autocast}")


def _assumptions(shape, s, p, persist) -> tuple[str, ...]:
    notes = list(shape.assumptions)
    if s["recipe"] == "classic-mixed":
        notes.append(f"classic mixed precision: {s['weights']} working weights and gradients, an fp32 master copy "
                     f"and fp32 AdamW states: {p.stored} + 4 + {p.stored} + 8 = {2 * p.stored + 12} bytes per "
                     "parameter before activations")
        notes.append("the loss is the textbook one: whole [tokens, vocabulary] logits; this lab's engine computes "
                     f"it in chunks of {LOSS_CHUNK_TOKENS} response tokens, so its logits never exist whole")
    else:
        notes.append(_engine_note(s, p))
        notes.append(f"the loss is computed in chunks of {LOSS_CHUNK_TOKENS} tokens over the response tokens only "
                     f"(finetune/loss.py; {s['response_fraction']:.0%} of the tokens here), so the whole "
                     "[tokens, vocabulary] logits never exist")
    notes.append(f"tokens per micro-batch = batch {s['batch_size']} x length {s['seq_len']}; with packing, the "
                 "length to give is the mean example length (padding is not counted)")
    notes.append("activations per layer and token: both RMSNorms' inputs (fp32) and outputs, autocast's input "
                 "copies, q/k/v (k and v repeated to every head), the attention output, four MLP tensors; "
                 "a flash-style attention kernel keeps no [tokens x tokens] scores")
    if s["gradient_checkpointing"]:
        notes.append("gradient checkpointing keeps each layer's input and recomputes one layer at a time "
                     "in the backward")
    notes.append("all terms counted at once (gradients held through the forward)" if persist else
                 "gradients are freed after each optimizer step (no accumulation): the peak is the larger of "
                 "the backward's start (activations, no gradients) and the optimizer step (gradients, "
                 "no activations)")
    return tuple(notes)


# --- presenting an estimate ---------------------------------------------------


def _headline(e: Estimate) -> str:
    s = e.settings
    recipe = ("classic mixed precision (half working copy + fp32 master)" if s["recipe"] == "classic-mixed"
              else f"{s['weights']} weights, {s['autocast']} autocast")
    method = {"full": "full fine-tuning", "lora": f"LoRA r={s['lora_r']}", "qlora": f"QLoRA r={s['lora_r']}"}
    return (f"{e.shape.name} ({_count(e.shape.parameters)} parameters): {method[s['method']]}, {recipe}, "
            f"{'8-bit AdamW' if s['optimizer'] == 'adamw_8bit' else 'AdamW'}, batch {s['batch_size']} x "
            f"{s['seq_len']} tokens, gradient checkpointing {'on' if s['gradient_checkpointing'] else 'off'}")


def format_breakdown(e: Estimate) -> str:
    """A plain-text table: each term, its GiB and arithmetic, the totals, the assumptions."""
    width = max(len(t.name) for t in e.terms + (Term("estimated peak", 0, ""),))
    lines = [_headline(e), ""]
    lines += [f"{t.name:<{width}}  {t.bytes / GIB:9.2f} GiB  {t.arithmetic}" for t in e.terms]
    lines.append("-" * (width + 15))
    lines.append(f"{'total':<{width}}  {e.total_bytes / GIB:9.2f} GiB  every term at once")
    if e.peak_bytes != e.total_bytes:
        lines.append(f"{'estimated peak':<{width}}  {e.peak_bytes / GIB:9.2f} GiB  "
                     "gradients and activations never coexist whole (see below)")
    lines += ["", "Assumptions:"] + [f"- {a}" for a in e.assumptions]
    return "\n".join(lines)


def tutorial_7b(gradient_checkpointing: bool = True) -> Estimate:
    """The tutorial's exercise: a 7B model (Llama-2-7B's shape), fp16 mixed
    precision with AdamW, gradient checkpointing, sequence 2048, batch 4."""
    return estimate(LLAMA2_7B, method="full", recipe="classic-mixed", weights="fp16", autocast="fp16",
                    optimizer="adamw", batch_size=4, seq_len=2048, gradient_checkpointing=gradient_checkpointing)


def tutorial_text() -> str:
    """The tutorial's answer, with and without checkpointing for contrast."""
    with_ckpt, without = tutorial_7b(True), tutorial_7b(False)
    return (format_breakdown(with_ckpt) + "\n\nWithout gradient checkpointing the activations would be "
            f"{_gib(without.bytes_of('activations'))} instead of {_gib(with_ckpt.bytes_of('activations'))}: "
            f"a total of {_gib(without.total_bytes)}.")


# --- the command line's entry point ---------------------------------------------

COMMAND_KEYS = {"model", "params", "layers", "hidden", "vocab", "intermediate", "heads", "kv_heads", "tied",
                "precision", "weights", "method", "batch", "length", "checkpointing", "optimizer", "lora_r",
                "recipe", "grad_accum", "tutorial"}


def estimate_command(args: dict) -> str:
    """The text `python -m finetune estimate` prints. `args` holds plain values
    (None: not given): a model spec OR params/layers/hidden/vocab (optional
    intermediate, heads, kv_heads, tied), and precision (autocast; 'auto' is the
    engine's choice on this machine), weights, method, batch, length,
    checkpointing, optimizer, lora_r, recipe, grad_accum; tutorial=True prints
    the tutorial's 7B answer. `length` is tokens per example: max_length for
    the worst case, the mean example length for packed rows. Unset values are
    the engine's defaults (TrainConfig). Raises EstimateError (a ValueError)
    in one line."""
    given = {k: v for k, v in args.items() if v is not None}
    unknown = sorted(set(given) - COMMAND_KEYS)
    if unknown:
        raise EstimateError(f"unknown estimate settings: {', '.join(unknown)}")
    if _flag(given.get("tutorial", False)):
        return tutorial_text()
    from .config import TrainConfig

    engine = TrainConfig()  # unset values are the engine's defaults
    shape = _command_shape(given)
    recipe = given.get("recipe", "engine")
    precision = given.get("precision", "auto")
    if precision == "auto":
        precision = "fp16" if recipe == "classic-mixed" else _engine_precision()
    weights = given.get("weights", precision if recipe == "classic-mixed" else "fp32")
    result = estimate(shape, method=given.get("method", engine.method), weights=weights, autocast=precision,
                      optimizer=given.get("optimizer", "adamw"), batch_size=given.get("batch", engine.batch_size),
                      seq_len=given.get("length", engine.max_length),
                      gradient_checkpointing=_flag(given.get("checkpointing", False)),
                      lora_r=given.get("lora_r", engine.lora_r), recipe=recipe,
                      grad_accum=given.get("grad_accum", engine.grad_accum))
    return format_breakdown(result)


def _flag(value) -> bool:
    if isinstance(value, str):
        if value.lower() not in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            raise EstimateError(f"expected true or false, got {value!r}")
        return value.lower() in ("true", "1", "yes", "on")
    return bool(value)


def _command_shape(given: dict) -> ModelShape:
    numbers = [k for k in ("params", "layers", "hidden", "vocab") if k in given]
    if "model" in given and numbers:
        raise EstimateError("give either a model or its numbers (params, layers, hidden, vocab), not both")
    if "model" in given:
        from .models import ModelError

        try:
            return shape_from_spec(str(given["model"]))
        except ModelError as err:
            raise EstimateError(str(err)) from None
    missing = [k for k in ("layers", "hidden", "vocab") if k not in given]
    if missing:
        raise EstimateError(f"give a model, or layers, hidden and vocab (missing: {', '.join(missing)})")
    return make_shape(parameters=given.get("params"), layers=given["layers"], hidden=given["hidden"],
                      vocab=given["vocab"], intermediate=given.get("intermediate"), heads=given.get("heads"),
                      kv_heads=given.get("kv_heads"), tied_embeddings=_flag(given.get("tied", False)),
                      name="given shape")


def _engine_precision() -> str:
    from .device import detect

    return detect("auto").precision
