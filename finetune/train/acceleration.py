"""torch.compile for training, done so it pays off on a 2-core CPU too.

The decoder's layers share one code path, so each layer is compiled with
dynamic shapes and they all reuse one graph ("regional compilation"): seconds
of compile work instead of minutes for the whole unrolled model, and no
recompiles as packed batches change shape. A probe step runs before training;
if compilation fails (no C++ compiler, an unsupported model), the layers go
back to eager and the run continues.
"""

from __future__ import annotations

import logging
import shutil

import torch

log = logging.getLogger(__name__)


def can_compile(device: str) -> bool:
    """Inductor needs a C++ compiler for CPU code; GPUs use Triton."""
    return device == "cuda" or shutil.which("c++") is not None or shutil.which("g++") is not None


def compile_layers(model, device: str, autocast_dtype: torch.dtype | None) -> bool:
    """Compile every decoder layer in place; True when the probe step worked."""
    layers = _decoder_layers(model)
    if not layers or not can_compile(device):
        return False
    for layer in layers:
        layer.compile(dynamic=True)
    try:
        _probe(model, device, autocast_dtype)
    except Exception as err:  # compile errors come in many types; eager always works
        log.warning("torch.compile failed (%s); training without it", str(err).splitlines()[0] if str(err) else err)
        for layer in layers:
            layer._compiled_call_impl = None  # what Module.compile set: back to the eager forward
        return False
    return True


def _decoder_layers(model) -> list[torch.nn.Module]:
    try:
        layers = getattr(model.get_decoder(), "layers", None)
    except (AttributeError, NotImplementedError):
        return []
    return list(layers) if isinstance(layers, torch.nn.ModuleList) else []


def _probe(model, device: str, autocast_dtype: torch.dtype | None) -> None:
    """One forward and backward through the decoder on two packed rows, so the
    compile work happens now, where a failure can still fall back."""
    from ..data.collate import PackingCollator
    from .levers import uses_varlen_attention
    from .loss import MODEL_INPUTS

    features = [{"input_ids": [1, 2, 3, 4, 5], "labels": [-100, -100, 3, 4, 5]},
                {"input_ids": [6, 7, 8], "labels": [-100, 7, 8]}]
    batch = PackingCollator(pad_token_id=0, pack=False, varlen=uses_varlen_attention(model))(features)
    inputs = {k: batch[k].to(device) if torch.is_tensor(batch[k]) else batch[k] for k in MODEL_INPUTS if k in batch}
    was_training = model.training
    model.train()
    with torch.autocast(device, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        hidden = model.get_decoder()(**inputs, use_cache=False).last_hidden_state
    hidden.float().sum().backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
