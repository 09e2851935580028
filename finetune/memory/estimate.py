"""How much memory fine-tuning needs: the tutorial's arithmetic, term by term.
The model's shape comes from model_shape.py, the measured peak to check the
arithmetic against from peak.py, the tutorial's 7B question from tutorial.py;
`python -m finetune estimate` is the command line's (finetune/cli/estimate.py).

An estimate adds up what a training step holds: weights, gradients, optimizer
states, the activations kept for the backward pass, the output layer's loss
and a fixed overhead. A preference run (DPO, KTO: TRL's trainers) also holds
its reference model's weights unless it has none (LoRA switches the adapters
off instead; precomputed reference log-probabilities need no model), DPO puts
two sequences per example through the model (the chosen and the rejected
reply, each after the prompt), and TRL's own fused output layer replaces the
lab's chunked loss. Every term carries its arithmetic as text, so a reader
can redo it by hand, and every estimate lists the assumptions it makes.

    >>> print(format_breakdown(estimate(LLAMA2_7B, method="lora")))   # LLAMA2_7B from model_shape.py
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .model_shape import EstimateError, ModelShape, format_count, positive_int, positive_number

GIB = 2**30
FP32 = 4
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
METHODS = ("full", "lora", "qlora")
OPTIMIZERS = ("adamw", "adamw_8bit")
RECIPES = ("engine", "classic-mixed")
OBJECTIVES = ("sft", "dpo", "kto")
DEVICES = ("cuda", "cpu", "mps")
# Sequences per example in the forward pass that keeps activations: DPO scores the
# chosen and the rejected reply, each after the prompt, in one batch; KTO one reply
# (its KL estimate runs without gradients).
SEQUENCES = {"sft": 1, "dpo": 2, "kto": 1}

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
# finetune/train/loss.py's CHUNK_TOKENS (a test keeps them equal): the loss never
# holds more than this many tokens' logits at once.
LOSS_CHUNK_TOKENS = 1024
# What a step needs besides the tensors counted here. On a GPU: the CUDA context
# and the caching allocator's slack. On a CPU: the tokenizer, the data, the
# libraries' working memory and pages the allocator keeps after freeing; measured
# ~0.4 GiB for SmolLM2-135M training on a CPU (tests/test_memory.py).
OVERHEAD_BYTES = 0.5 * GIB
# TRL's fused output layer (trl/kernels/chunked_logprob.py, trl 1.16) projects tiles of
# at most this many tokens x this many vocabulary entries at a time, never the whole
# [tokens, vocabulary] logits.
TRL_TOKEN_TILE = 4096
TRL_VOCAB_TILE = 32768
# Where Triton runs (CUDA) a kernel folds each tile in place; elsewhere TRL folds it with
# torch operations whose fp32 temporaries of the tile's size are alive together, at
# most (counted in _backward_tile: the logits, scaled, log-probabilities, probabilities,
# the gradient and two intermediates, all fp32; the target mask, 1 byte).
TRL_TORCH_TILE_BYTES = 7 * FP32 + 1


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


def format_gib(n: float) -> str:
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
             overhead_bytes: float = OVERHEAD_BYTES, objective: str = "sft", precompute_ref: bool = True,
             device: str = "cuda") -> Estimate:
    """Memory for fine-tuning `shape`, term by term.

    recipe 'engine' is this lab's: weights kept as loaded (fp32 master) with
    autocast, the loss in chunks over response tokens. 'classic-mixed' is the
    textbook count for fp16 mixed precision: a half-precision working copy and
    its gradients, fp32 master weights and AdamW states (16 bytes/param).
    Tokens per micro-batch are batch_size x seq_len: with packing, pass the
    mean example length as seq_len to count the real tokens.

    objective 'dpo' or 'kto' counts a preference run as TRL trains it: seq_len is
    then one sequence (the prompt and one reply, padded to the longest), DPO
    puts two per example through the model, the reference model is a copy of
    the weights in full fine-tuning unless precompute_ref (none with LoRA or
    QLoRA), and the output layer is TRL's fused one, which on a `device` other
    than cuda (no Triton) keeps torch temporaries of each tile it projects."""
    settings = _checked_settings(**{k: v for k, v in locals().items() if k != "shape"})
    precision = _precision(settings)
    trainable = shape.parameters if method == "full" else shape.lora_parameters(settings["lora_r"])
    terms = [*_weight_terms(shape, settings, precision, trainable),
             *_reference_terms(shape, settings, precision),
             _gradient_term(settings, precision, trainable),
             _optimizer_term(settings, precision, trainable),
             *_autocast_copy_terms(shape, settings, precision),
             _activation_term(shape, settings, precision),
             _loss_term(shape, settings, precision) if objective == "sft" else _fused_head_term(shape, settings,
                                                                                                 precision),
             Term("overhead", float(overhead_bytes), f"{format_gib(overhead_bytes)} fixed (CUDA context or libraries, "
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
    _choice("objective", s["objective"], OBJECTIVES)
    _choice("device", s["device"], DEVICES)
    s["precompute_ref"] = bool(s["precompute_ref"])
    for name in ("batch_size", "seq_len", "lora_r", "grad_accum"):
        s[name] = positive_int(name, s[name])
    s["overhead_bytes"] = float(s["overhead_bytes"])
    if not math.isfinite(s["overhead_bytes"]) or s["overhead_bytes"] < 0:
        raise EstimateError(f"overhead_bytes: must be a finite number >= 0, got {s['overhead_bytes']!r}")
    if not 0 < positive_number("response_fraction", s["response_fraction"]) <= 1:
        raise EstimateError(f"response_fraction: must be in (0, 1], got {s['response_fraction']!r}")
    if not (isinstance(s["lora_dropout"], (int, float)) and 0 <= s["lora_dropout"] < 1):
        raise EstimateError(f"lora_dropout: must be in [0, 1), got {s['lora_dropout']!r}")
    if s["recipe"] == "classic-mixed" and (s["method"] != "full" or s["weights"] == "fp32"):
        raise EstimateError("recipe classic-mixed is the textbook count for full fine-tuning with fp16 or bf16 "
                            "working weights: use method full and weights fp16 or bf16")
    if s["recipe"] == "classic-mixed" and s["objective"] != "sft":
        raise EstimateError("recipe classic-mixed is the textbook count for supervised fine-tuning: use recipe "
                            "engine for a preference objective")
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
        return [Term("weights", n * p.stored,
                     f"{format_count(n)} params x {p.stored} bytes ({s['weights']} working copy)"),
                Term("master weights", n * FP32,
                     f"{format_count(n)} params x 4 bytes (fp32 master copy the optimizer updates)")]
    if s["method"] == "full":
        return [Term("weights", n * p.stored, f"{format_count(n)} params x {p.stored} bytes "
                     f"({s['weights']} weights, the copy the optimizer updates)")]
    adapters = Term("adapter weights", trainable * FP32,
                    f"{format_count(trainable)} adapter params x 4 bytes (fp32, r={s['lora_r']} on every linear)")
    if s["method"] == "lora":
        return [Term("base weights", n * p.stored,
                     f"{format_count(n)} params x {p.stored} bytes (frozen {s['weights']})"),
                adapters]
    quantised = shape.layers * shape.layer_linear_parameters
    rest = n - quantised
    per = NF4_BYTES + NF4_CONSTANT_BYTES
    return [Term("base weights", quantised * per + rest * p.stored,
                 f"{format_count(quantised)} linear params x {per:.3f} bytes (NF4 + quantisation constants) + "
                 f"{format_count(rest)} embedding, head and norm params x {p.stored} bytes ({s['weights']})"),
            adapters]


def _reference_terms(shape, s, p) -> list[Term]:
    """A preference run's reference model: in full fine-tuning without precomputed
    log-probabilities TRL loads a second copy of the starting model, in the weights'
    dtype, frozen (no gradients, no optimizer states). LoRA's reference is the same
    model with its adapters off, and precomputed log-probabilities need no model."""
    if s["objective"] == "sft" or s["method"] != "full" or s["precompute_ref"]:
        return []
    n = shape.parameters
    return [Term("reference weights", n * p.stored,
                 f"{format_count(n)} params x {p.stored} bytes (a frozen {s['weights']} copy of the starting model: "
                 "weights only, no gradients or optimizer states)")]


def _gradient_term(s, p, trainable) -> Term:
    grad_bytes = p.stored if s["recipe"] == "classic-mixed" else p.master
    dtype = {4: "fp32", 2: s["weights"]}[grad_bytes]
    what = "params" if s["method"] == "full" else "adapter params"
    return Term("gradients", trainable * grad_bytes,
                f"{format_count(trainable)} {what} x {grad_bytes} bytes ({dtype})", BACKWARD_TO_STEP)


def _optimizer_term(s, p, trainable) -> Term:
    if s["optimizer"] == "adamw_8bit":
        per, how = ADAMW_8BIT_BYTES, "8-bit AdamW: m and v in 1 byte each"
    else:
        per = ADAM_MOMENTS * p.master
        how = f"AdamW m and v in {'fp32' if p.master == FP32 else s['weights']}"
    return Term("optimizer states", trainable * per,
                f"{format_count(trainable)} trainable params x {per} bytes ({how})")


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
                 f"{layers} layers x {format_count(per_layer)} linear params x {p.compute} bytes "
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


def _tokens(s: dict) -> int:
    """Tokens in one micro-batch's forward: batch x sequences per example x length."""
    return s["batch_size"] * SEQUENCES[s["objective"]] * s["seq_len"]


def _activation_term(shape, s, p) -> Term:
    tokens = _tokens(s)
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
    tokens = _tokens(s)
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
        parts.append((v * h * p.compute, f"{format_count(v * h)} head params x {p.compute} bytes (cast)"))
    if s["method"] == "full":
        parts.append((v * h * FP32, f"{format_count(v * h)} x 4 bytes (head gradient, computed in the forward)"))
    parts.append((targets * h * p.stream, f"{targets:,} x {h} x {p.stream} bytes (hidden-state gradient)"))
    return Term("logits and loss", sum(b for b, _ in parts), " + ".join(t for _, t in parts), FORWARD_TO_BACKWARD)


def _fused_head_term(shape, s, p) -> Term:
    """TRL's fused output layer (preference objectives): the log-probability of each
    target token, projected in tiles of at most TRL_TOKEN_TILE tokens x TRL_VOCAB_TILE
    vocabulary entries and recomputed in the backward, which accumulates the hidden
    states' gradient (and, when the head trains, its own) in fp32. With Triton (CUDA)
    only the reply tokens are projected and a kernel folds each tile in place;
    elsewhere every position is projected and torch's temporaries of a tile coexist."""
    v, h = shape.vocab, shape.hidden
    positions = _tokens(s)
    triton = s["device"] == "cuda"
    scored = max(1, round(positions * s["response_fraction"])) if triton else positions
    rows, columns = min(scored, TRL_TOKEN_TILE), min(v, TRL_VOCAB_TILE)
    per = p.compute + (0 if triton else TRL_TORCH_TILE_BYTES)
    how = "the projection" if triton else \
        f"the projection ({p.compute}) and torch's temporaries ({TRL_TORCH_TILE_BYTES})"
    parts = [(rows * columns * per, f"{rows:,} tokens x {columns:,} vocabulary x {per} bytes ({how})")]
    if p.compute < p.stored:
        parts.append((columns * h * p.compute, f"{format_count(columns * h)} head params x {p.compute} bytes (cast)"))
    if s["method"] == "full":
        parts.append((v * h * FP32, f"{format_count(v * h)} x 4 bytes (head gradient, fp32)"))
    parts.append((scored * h * FP32, f"{scored:,} x {h} x 4 bytes (hidden-state gradient, fp32)"))
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


def _preference_notes(s: dict) -> list[str]:
    """What a preference run (TRL's DPOTrainer or KTOTrainer) holds beyond a supervised one, in words."""
    name = s["objective"].upper()
    sequences = SEQUENCES[s["objective"]]
    notes = [f"{name} (TRL): tokens per micro-batch = batch {s['batch_size']} x {sequences} sequence"
             f"{'s' * (sequences > 1)} x length {s['seq_len']}"
             + (" (the chosen and the rejected reply, each after the prompt, padded to the longest)"
                if sequences > 1 else " (one reply after its prompt; the KL estimate's pass keeps no activations)")]
    if s["method"] != "full":
        notes.append("the reference model is the same model with its adapters switched off: no copy")
    elif s["precompute_ref"]:
        notes.append("the reference model's log-probabilities are computed once before training: no copy is held")
    else:
        notes.append(f"the reference model is a frozen copy of the starting weights ({s['weights']}); its forward pass "
                     "runs without gradients after the model's own, one layer's activations at a time")
    where = ("only the reply tokens are projected, each tile folded in place by a Triton kernel"
             if s["device"] == "cuda" else
             f"on {s['device']} every position is projected and torch's fp32 temporaries of a tile coexist")
    notes.append(f"the loss is TRL's fused output layer: tiles of at most {TRL_TOKEN_TILE} tokens x "
                 f"{TRL_VOCAB_TILE} vocabulary entries, recomputed in the backward; {where}")
    return notes


def _assumptions(shape, s, p, persist) -> tuple[str, ...]:
    notes = list(shape.assumptions)
    if s["recipe"] == "classic-mixed":
        notes.append(f"classic mixed precision: {s['weights']} working weights and gradients, an fp32 master copy "
                     f"and fp32 AdamW states: {p.stored} + 4 + {p.stored} + 8 = {2 * p.stored + 12} bytes per "
                     "parameter before activations")
        notes.append("the loss is the textbook one: whole [tokens, vocabulary] logits; this lab's engine computes "
                     f"it in chunks of {LOSS_CHUNK_TOKENS} response tokens, so its logits never exist whole")
    elif s["objective"] == "sft":
        notes.append(_engine_note(s, p))
        notes.append(f"the loss is computed in chunks of {LOSS_CHUNK_TOKENS} tokens over the response tokens only "
                     f"(finetune/train/loss.py; {s['response_fraction']:.0%} of the tokens here), so the whole "
                     "[tokens, vocabulary] logits never exist")
    else:
        notes.append(_engine_note(s, p))
        notes += _preference_notes(s)
    if s["objective"] == "sft":
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


def _reference_words(s: dict) -> str:
    if s["method"] != "full":
        return "the adapters switched off"
    return "precomputed once" if s["precompute_ref"] else "a copy of the weights"


def _headline(e: Estimate) -> str:
    s = e.settings
    recipe = ("classic mixed precision (half working copy + fp32 master)" if s["recipe"] == "classic-mixed"
              else f"{s['weights']} weights, {s['autocast']} autocast")
    method = {"full": "full fine-tuning", "lora": f"LoRA r={s['lora_r']}", "qlora": f"QLoRA r={s['lora_r']}"}
    objective = "" if s["objective"] == "sft" else f"{s['objective'].upper()} (reference: {_reference_words(s)}), "
    return (f"{e.shape.name} ({format_count(e.shape.parameters)} parameters): {method[s['method']]}, {objective}"
            f"{recipe}, "
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
