"""Batching: pack a micro-batch's examples into a few rows instead of padding
each to the longest.

Position ids alone do not isolate packed sequences under sdpa or eager attention
in transformers 5 (logits differ from unpacked by ~0.5), so each row carries a
4D block-diagonal causal mask [rows, 1, T, T]: a token sees only earlier tokens
of its own example. Position ids restart at 0 for every example, so rotary
embeddings match the unpacked computation. Labels are shifted here, per
example, so no example is trained to predict the first token of the next.
"""

from __future__ import annotations

import torch

IGNORE = -100


def plan_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: indices of the examples in each row, no row over
    `capacity` tokens (an example longer than that gets a row to itself)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[index] <= free:
                rows[r].append(index)
                room[r] -= lengths[index]
                break
        else:
            rows.append([index])
            room.append(capacity - lengths[index])
    return rows


class PackingCollator:
    """Collates features with `input_ids` and `labels` (unshifted, -100 where
    not trained) into packed rows.

    The row capacity adapts to the micro-batch: the longest example, rounded up
    to `pad_to_multiple`. That keeps attention (quadratic in the row length)
    close to the per-example cost while still filling rows. With `pack=False`
    every example gets its own row (padding to the longest), the reference path.
    """

    def __init__(self, pad_token_id: int, pack: bool = True, pad_to_multiple: int = 8):
        self.pad_token_id = pad_token_id
        self.pack = pack
        self.pad_to_multiple = max(1, pad_to_multiple)

    def _round_up(self, n: int) -> int:
        return -(-n // self.pad_to_multiple) * self.pad_to_multiple

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        if self.pack:
            rows = plan_rows(lengths, self._round_up(max(lengths)))
        else:
            rows = [[i] for i in range(len(features))]
        width = self._round_up(max(sum(lengths[i] for i in row) for row in rows))
        shape = (len(rows), width)
        input_ids = torch.full(shape, self.pad_token_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE, dtype=torch.long)
        shift_labels = torch.full(shape, IGNORE, dtype=torch.long)
        position_ids = torch.zeros(shape, dtype=torch.long)
        # Padding attends to itself only: an all-false mask row makes softmax NaN,
        # and NaN times a zero gradient is still NaN.
        mask = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1, 1)
        for r, row in enumerate(rows):
            offset = 0
            for i in row:
                n = lengths[i]
                end = offset + n
                input_ids[r, offset:end] = torch.as_tensor(features[i]["input_ids"])
                example_labels = torch.as_tensor(features[i]["labels"])
                labels[r, offset:end] = example_labels
                shift_labels[r, offset:end - 1] = example_labels[1:]
                position_ids[r, offset:end] = torch.arange(n)
                mask[r, 0, offset:end, offset:end] = torch.ones(n, n, dtype=torch.bool).tril_()
                offset = end
        target_positions = (shift_labels != IGNORE).flatten().nonzero().squeeze(1)
        return {
            "input_ids": input_ids,
            "attention_mask": mask,
            "position_ids": position_ids,
            "labels": labels,
            "shift_labels": shift_labels,
            "target_positions": target_positions,
            "targets": shift_labels.flatten()[target_positions],
            "num_tokens": sum(lengths),  # a plain int: stays on the host, no device sync to read it
        }
