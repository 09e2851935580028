"""`python -m finetune estimate`: the memory arithmetic for a model and
settings given on the command line (a model spec, or its numbers), printed
term by term; `--tutorial` prints the tutorial's 7B answer."""

from __future__ import annotations

from ..memory.estimate import estimate, format_breakdown
from ..memory.model_shape import EstimateError, ModelShape, make_shape, shape_from_spec
from ..memory.tutorial import tutorial_text

COMMAND_KEYS = {"model", "params", "layers", "hidden", "vocab", "intermediate", "heads", "kv_heads", "tied",
                "precision", "weights", "method", "batch", "length", "checkpointing", "optimizer", "lora_r",
                "recipe", "grad_accum", "tutorial", "objective", "precompute_ref", "device"}


def estimate_command(args: dict) -> str:
    """The text `python -m finetune estimate` prints. `args` holds plain values
    (None: not given): a model spec OR params/layers/hidden/vocab (optional
    intermediate, heads, kv_heads, tied), and precision (autocast; 'auto' is the
    engine's choice on this machine), weights, method, batch, length,
    checkpointing, optimizer, lora_r, recipe, grad_accum, objective (sft, dpo,
    kto), precompute_ref and device (the engine's on this machine when unset);
    tutorial=True prints the tutorial's 7B answer. `length` is tokens per example: max_length for
    the worst case, the mean example length for packed rows. Unset values are
    the engine's defaults (TrainConfig). Raises EstimateError (a ValueError)
    in one line."""
    given = {k: v for k, v in args.items() if v is not None}
    unknown = sorted(set(given) - COMMAND_KEYS)
    if unknown:
        raise EstimateError(f"unknown estimate settings: {', '.join(unknown)}")
    if _flag(given.get("tutorial", False)):
        return tutorial_text()
    from ..train.config import TrainConfig

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
                      grad_accum=given.get("grad_accum", engine.grad_accum),
                      objective=given.get("objective", engine.objective),
                      precompute_ref=_flag(given.get("precompute_ref", engine.precompute_ref)),
                      device=given.get("device") or _engine_device())
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
        from ..sources.models import ModelError

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


def _engine_device() -> str:
    from ..train.device import detect

    return detect("auto").device


def _engine_precision() -> str:
    from ..train.device import detect

    return detect("auto").precision
