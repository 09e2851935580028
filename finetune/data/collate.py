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

from .render import IGNORE


def plan_rows(lengths: list[int], row_tokens: int) -> list[list[int]]:
    """Indices of the examples in each row, rows balanced in length.

    About total / row_tokens rows (a soft target: rows are never shorter than
    the longest example); each example, longest first, joins the row with the
    fewest tokens so far. Balanced rows leave little padding when the rows are
    stacked into one [rows, width] tensor."""
    rows_needed = max(1, round(sum(lengths) / max(row_tokens, max(lengths))))
    rows: list[list[int]] = [[] for _ in range(rows_needed)]
    filled = [0] * rows_needed
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        shortest = filled.index(min(filled))
        rows[shortest].append(index)
        filled[shortest] += lengths[index]
    return [row for row in rows if row]


class PackingCollator:
    """Collates features with `input_ids` and `labels` (unshifted, -100 where
    not trained) into packed rows.

    Rows hold about `row_tokens` tokens: longer rows waste attention work on
    masked pairs (attention is quadratic in the row length, and a masked kernel
    computes every pair), more rows waste padding. With `pack=False` every
    example gets its own row (padding to the longest), the reference path.

    With `varlen=True` (a FlashAttention model) the whole micro-batch is one row
    and no mask is built: the examples' boundaries go to the kernel as
    cumulative lengths (`cu_seq_lens_q/k`, computed here on the host so no layer
    has to read them back from the position ids).
    """

    def __init__(self, pad_token_id: int, pack: bool = True, pad_to_multiple: int = 8, row_tokens: int = 256,
                 varlen: bool = False):
        self.pad_token_id = pad_token_id
        self.pack = pack or varlen
        self.varlen = varlen
        self.pad_to_multiple = max(1, pad_to_multiple)
        self.row_tokens = row_tokens

    def _round_up(self, n: int) -> int:
        return -(-n // self.pad_to_multiple) * self.pad_to_multiple

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        if self.varlen:
            rows = [list(range(len(features)))]
        elif self.pack:
            rows = plan_rows(lengths, self.row_tokens)
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
        if self.varlen:
            position_ids[0, sum(lengths):] = torch.arange(width - sum(lengths))  # the padding: a segment of its own
        attention = _varlen_boundaries(lengths, width) if self.varlen else {"attention_mask": mask}
        return {
            "input_ids": input_ids,
            **attention,
            "position_ids": position_ids,
            "labels": labels,
            "shift_labels": shift_labels,
            "target_positions": target_positions,
            "targets": shift_labels.flatten()[target_positions],
            "num_tokens": sum(lengths),  # a plain int: stays on the host, no device sync to read it
        }


def _varlen_boundaries(lengths: list[int], width: int) -> dict:
    """FlashAttention's varlen arguments for one row of examples (and its padding) laid end to end."""
    segments = lengths + ([width - sum(lengths)] if width > sum(lengths) else [])
    cumulative = torch.tensor([0] + segments, dtype=torch.int32).cumsum(0, dtype=torch.int32)
    longest = max(segments)
    return {"cu_seq_lens_q": cumulative, "cu_seq_lens_k": cumulative, "max_length_q": longest,
            "max_length_k": longest}
