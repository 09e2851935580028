"""Each validation example's loss under the final model, kept in the run folder
(validation_losses.json; outputs.read_validation_losses reads it back) so two
runs can be compared example by example.

A sweep's verdict ranks runs by validation loss. Whether 1.231 beats 1.236
depends on which examples happened to land in the validation set; with each
example's loss under both runs, the difference is paired example by example
and its noise measured (experiments/compare.py). The loss is the training
loss's own (train/loss.py: cross-entropy on the response tokens), so the
numbers are the validation loss's, split by example.

    {"ids": ["9f2c...", ...], "losses": [1.23, ...], "tokens": [41, ...]}

An id is a hash of the example's tokens: runs that tokenised the same example
the same way share it, whatever order or subset they kept.
"""

from __future__ import annotations

import hashlib
import json

import torch
import torch.nn.functional as F

from ..data.render import IGNORE
from ..train.loss import linear_cross_entropy_sum, supports_hidden_state_loss

# Beyond this many examples the interval is already narrow, and a large
# validation set should not make the end of a run slow.
MAX_EXAMPLES = 1000
# Examples per forward pass (right-padded), as an evaluation batches them: on a
# busy CPU each pass costs far more than its share of the arithmetic.
BATCH = 8


def example_id(input_ids) -> str:
    return hashlib.blake2b(json.dumps(list(input_ids)).encode(), digest_size=8).hexdigest()


def _targets(example) -> tuple[list[int], list[int]]:
    """Where the response tokens are predicted (position i predicts token i + 1) and which they are."""
    shifted = list(example.labels[1:]) + [IGNORE]
    positions = [i for i, target in enumerate(shifted) if target != IGNORE]
    return positions, [shifted[i] for i in positions]


@torch.no_grad()
def per_example_losses(model, validation, autocast_dtype: torch.dtype | None = None,
                       limit: int = MAX_EXAMPLES) -> dict:
    """The mean response-token loss of each of the first `limit` validation
    examples (tokenised: data.render.Encoded), as train/loss.py computes the
    training loss; examples with no response token have no loss and are left out."""
    scored = [(example, _targets(example)) for example in list(validation)[:limit]]
    scored = [(example, targets) for example, targets in scored if targets[0]]
    # The chunked head needs only the hidden states; a model without it gives
    # logits, whose [batch, length, vocabulary] tensor is kept to one example.
    from_hidden = supports_hidden_state_loss(model)
    step = BATCH if from_hidden else 1
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses = []
    try:
        for start in range(0, len(scored), step):
            chunk = scored[start:start + step]
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                losses += _batch_losses(model, chunk, device, from_hidden)
    finally:
        model.train(was_training)
    return {"ids": [example_id(example.input_ids) for example, _ in scored],
            "losses": [round(loss, 6) for loss in losses],
            "tokens": [len(targets[0]) for _, targets in scored]}


def _batch_losses(model, chunk, device, from_hidden: bool) -> list[float]:
    """One right-padded forward pass for the chunk's examples; each example's mean loss."""
    width = max(len(example.input_ids) for example, _ in chunk)
    input_ids = torch.zeros((len(chunk), width), dtype=torch.long)
    mask = torch.zeros((len(chunk), width), dtype=torch.long)
    for row, (example, _) in enumerate(chunk):
        input_ids[row, :len(example.input_ids)] = torch.as_tensor(example.input_ids)
        mask[row, :len(example.input_ids)] = 1
    inputs = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "use_cache": False}
    if from_hidden:
        states, weight = model.get_decoder()(**inputs).last_hidden_state, model.get_output_embeddings().weight
    else:
        states = model(**inputs).logits
    losses = []
    for row, (_, (positions, targets)) in enumerate(chunk):
        selected = states[row, torch.tensor(positions, device=device)]
        wanted = torch.tensor(targets, device=device)
        total = linear_cross_entropy_sum(selected, weight, wanted) if from_hidden else \
            F.cross_entropy(selected.float(), wanted, reduction="sum")
        losses.append(float(total) / len(positions))
    return losses
