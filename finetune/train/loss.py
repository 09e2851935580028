"""The training loss: cross-entropy on the response tokens only, computed from
the final hidden states in chunks so the full [tokens, vocabulary] logits never
exist at once.

Only positions with a target (the assistant's tokens) go through the output
layer at all: the prompt's logits would be thrown away. For a 49k-128k
vocabulary the logits are the largest activation of a small model, so each
chunk's gradient is computed in the forward pass and the chunk's logits freed
(the approach of fused linear cross-entropy kernels, here in plain PyTorch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK_TOKENS = 1024
# What the collator gives the model: a block-diagonal mask, or a varlen kernel's boundaries.
MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q",
                "max_length_k")


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """sum over rows of CE(hidden @ weight.T, targets), with gradients computed
    chunk by chunk during the forward pass."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, compute_dtype, chunk):
        grad_hidden = torch.empty_like(hidden) if hidden.requires_grad else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if weight.requires_grad else None
        w = weight.to(compute_dtype)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start:start + chunk].to(compute_dtype)
            t = targets[start:start + chunk]
            # One fused log-softmax kernel over the [chunk, vocabulary] logits, in
            # fp32; its exp, in place, is the softmax the gradient needs. (logsumexp
            # then softmax made ~25% more passes over the largest tensor.)
            log_probs = torch.log_softmax(h @ w.T, dim=-1, dtype=torch.float32)
            total -= log_probs.gather(1, t[:, None]).sum()
            if grad_hidden is None and grad_weight is None:
                continue
            # d(CE)/d(logits) = softmax - onehot
            grad_logits = log_probs.exp_()
            grad_logits[torch.arange(t.shape[0], device=t.device), t] -= 1.0
            grad_logits = grad_logits.to(compute_dtype)
            if grad_hidden is not None:
                grad_hidden[start:start + chunk] = (grad_logits @ w).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight += (grad_logits.T @ h).float()
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight = ctx.saved_tensors
        gh = grad_hidden * grad_output.to(grad_hidden.dtype) if grad_hidden is not None else None
        gw = (grad_weight * grad_output).to(ctx.weight_dtype) if grad_weight is not None else None
        return gh, gw, None, None, None


def linear_cross_entropy_sum(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                             chunk: int = CHUNK_TOKENS) -> torch.Tensor:
    """Summed CE of `hidden @ weight.T` against `targets` ([N, d], [V, d], [N])."""
    device_type = hidden.device.type
    compute_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden.dtype
    with torch.autocast(device_type, enabled=False):
        return _ChunkedLinearCrossEntropy.apply(hidden, weight, targets, compute_dtype, chunk)


def is_distributed_wrapper(model) -> bool:
    """DDP or FSDP: their forward does the gradient sync or the unsharding, so the
    decoder must not be called around it (FSDP1 even forwards attribute look-ups)."""
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel
    from torch.nn.parallel import DistributedDataParallel

    return isinstance(model, (DistributedDataParallel, FullyShardedDataParallel, FSDPModule))


def supports_hidden_state_loss(model) -> bool:
    """The fast path needs a plain decoder + linear head with no logit
    post-processing (softcapping, scaling) and no bias on the head."""
    if is_distributed_wrapper(model):
        return False
    config = getattr(model, "config", None)
    try:
        head = model.get_output_embeddings()
        model.get_decoder()
    except (AttributeError, NotImplementedError):
        return False
    if not isinstance(head, torch.nn.Linear) or head.bias is not None:
        return False
    return not any(getattr(config, k, None) for k in ("final_logit_softcapping", "logit_scale", "logits_scaling"))


def response_loss(model, batch: dict, num_items: torch.Tensor | int | None = None) -> torch.Tensor:
    """Mean CE over the batch's targets, or sum / num_items when the targets of
    several accumulated micro-batches are counted together.

    `target_positions` (flat indices into the [rows, T] batch) and `targets`
    come from the collator, computed on the CPU: selecting on the device with a
    boolean mask would wait for the GPU."""
    positions, targets = batch["target_positions"], batch["targets"]
    # No KV cache in training: it only costs memory, and its per-layer state
    # would make a compiled layer recompile for every layer index.
    model_inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch} | {"use_cache": False}
    if supports_hidden_state_loss(model):
        hidden = model.get_decoder()(**model_inputs).last_hidden_state
        selected = hidden.flatten(0, 1).index_select(0, positions)
        total = linear_cross_entropy_sum(selected, model.get_output_embeddings().weight, targets)
    else:
        logits = model(**model_inputs).logits
        total = F.cross_entropy(logits.flatten(0, 1).index_select(0, positions).float(), targets, reduction="sum")
    denominator = num_items if num_items is not None else max(targets.numel(), 1)
    return total / denominator
