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

from ..data.render import IGNORE
from ..train.loss import response_loss

# One forward pass per example: an evaluation's worth of work. Beyond this many
# the interval is already narrow, and a large validation set should not make
# the end of a run slow.
MAX_EXAMPLES = 1000


def example_id(input_ids) -> str:
    return hashlib.blake2b(json.dumps(list(input_ids)).encode(), digest_size=8).hexdigest()


@torch.no_grad()
def per_example_losses(model, validation, autocast_dtype: torch.dtype | None = None,
                       limit: int = MAX_EXAMPLES) -> dict:
    """The mean response-token loss of each of the first `limit` validation
    examples (tokenised: data.render.Encoded); examples with no response token
    have no loss and are left out."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids, losses, tokens = [], [], []
    try:
        for example in list(validation)[:limit]:
            shifted = list(example.labels[1:]) + [IGNORE]  # the target at a position is the next token
            positions = [i for i, target in enumerate(shifted) if target != IGNORE]
            if not positions:
                continue
            batch = {"input_ids": torch.tensor([example.input_ids], device=device),
                     "target_positions": torch.tensor(positions, device=device),
                     "targets": torch.tensor([shifted[i] for i in positions], device=device)}
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                loss = response_loss(model, batch)
            ids.append(example_id(example.input_ids))
            losses.append(round(float(loss), 6))
            tokens.append(len(positions))
    finally:
        model.train(was_training)
    return {"ids": ids, "losses": losses, "tokens": tokens}
