"""A preference run's evidence from likelihoods: on pairs never trained on, how
often the model gives the chosen reply a higher length-normalised
log-likelihood than the rejected one, before training (the base model) and
after (the trained one), paired pair by pair, with the lab's interval and
exact test for a right/wrong score (significance.py: Newcombe and McNemar).

Which pairs: the held-out pairs, then the validation pairs. Neither is trained
on: TRL only evaluates its loss and rewards on the validation pairs, and the
model measured after training is the final one, which they do not choose. The
held-out split alone is 10 prompts by default, where the 95% interval of a
paired share spans about ±40 points; with the validation pairs (5% of the
data) a few hundred pairs give a few dozen, and an interval that can leave out zero.

What is scored: each reply's mean log-probability per token, on exactly the
tokens the preference loss trains (data.render.EncodedPair: prompt_ids +
chosen_ids against prompt_ids + rejected_ids, cut at max_length keeping the
start, as TRL does). Per token, because a summed log-probability prefers the
shorter reply whatever it says: every token costs probability.

    preference.json  {"measure": "...", "pairs": [{"id": "9f2c...", "split": "held_out", "prompt": "...",
                      "chosen_tokens": 7, "rejected_tokens": 9, "before": {"chosen": -1.92, "rejected": -1.71},
                      "after": {"chosen": -0.84, "rejected": -2.35}, "before_preferred": false,
                      "after_preferred": true}, ...]}

Its share before and after is scores["preference"]; its change, with the share of
held-out answers closer to the rejected reply (metrics.closer_change), is
changes["preference"], read by metrics.readings() like every other category.
"""

from __future__ import annotations

import hashlib
import json
import math

from .metrics import CLOSER, PREFERENCE, PREFERENCE_METRICS, PREFERRED, closer_change, read_category, where
from .significance import Difference, paired_difference

# Beyond this many pairs the interval is already narrow (±3 points), and a large
# validation set should not make the start and the end of a run slow.
MAX_PAIRS = 1000
# Sequences per forward pass (right-padded), as TRL batches a pair's two replies...
BATCH = 8
# ...fewer when their logits ([rows, length, vocabulary], float32 for the softmax) would pass
# this many numbers (256 MB): a 49k vocabulary and 512-token pairs fit two rows at a time.
LOGITS_BUDGET = 2**26
SPLITS = ("held_out", "validation")  # the pairs measured, in this order
MEASURE = ("the mean log-probability per reply token of the chosen and of the rejected reply, on the tokens the "
           "preference loss trains (prompt + reply, cut at max_length); a pair is preferred when the chosen "
           "reply's is higher")


# --------------------------------------------------------------------------- which pairs, which tokens


def unseen_pairs(prepared, limit: int = MAX_PAIRS) -> list[tuple[str, object, object]]:
    """(split, Example, EncodedPair) of the held-out then the validation pairs that have two
    replies (KTO's unpaired replies have no rejected one to compare), at most `limit`."""
    found = [(split, example, encoded) for split in SPLITS for example, encoded in getattr(prepared, f"{split}_pairs")
             if encoded.chosen_ids and encoded.rejected_ids]
    return found[:limit]


def reply_tokens(prompt_ids: list[int], reply_ids: list[int], max_length: int | None) -> tuple[list[int], int]:
    """The sequence TRL trains for one reply (prompt + reply, the first max_length tokens) and
    how many reply tokens are left in it."""
    ids = (list(prompt_ids) + list(reply_ids))[:max_length or None]
    return ids, max(len(ids) - len(prompt_ids), 0)


def pair_id(encoded) -> str:
    """A hash of the pair's tokens: runs that tokenised the same pair the same way share it."""
    tokens = [encoded.prompt_ids, encoded.chosen_ids, encoded.rejected_ids]
    return hashlib.blake2b(json.dumps(tokens).encode(), digest_size=8).hexdigest()


# --------------------------------------------------------------------------- the forward passes


def measure(model, pairs, max_length: int | None, autocast_dtype=None) -> list[tuple[float, float]]:
    """(chosen, rejected) mean log-probability per reply token of each pair under `model`."""
    sequences = [reply_tokens(encoded.prompt_ids, side, max_length)
                 for _, _, encoded in pairs for side in (encoded.chosen_ids, encoded.rejected_ids)]
    means = mean_logprobs(model, sequences, autocast_dtype)
    return [(means[2 * i], means[2 * i + 1]) for i in range(len(pairs))]


def mean_logprobs(model, sequences: list[tuple[list[int], int]], autocast_dtype=None) -> list[float]:
    """Each sequence's mean log-probability of its last `count` tokens (NaN when none),
    longest first in right-padded batches so a batch pads little."""
    import torch

    from .generate import autocast

    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i][0]))
    vocabulary = getattr(getattr(model, "config", None), "vocab_size", None) or 2**16
    found: list[float] = [math.nan] * len(sequences)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        start = 0
        while start < len(order):
            width = len(sequences[order[start]][0])
            rows = max(1, min(BATCH, LOGITS_BUDGET // max(width * vocabulary, 1)))
            chunk = order[start:start + rows]
            with torch.no_grad(), autocast(model, autocast_dtype):
                means = _batch_means(model, [sequences[i] for i in chunk], width, device)
            for i, value in zip(chunk, means):
                found[i] = value
            start += rows
    finally:
        model.train(was_training)
    return found


def _batch_means(model, chunk: list[tuple[list[int], int]], width: int, device) -> list[float]:
    """One right-padded forward pass: each row's mean log-probability of its reply tokens."""
    import torch

    input_ids = torch.zeros((len(chunk), width), dtype=torch.long)
    mask = torch.zeros((len(chunk), width), dtype=torch.long)
    for row, (ids, _) in enumerate(chunk):
        input_ids[row, :len(ids)] = torch.as_tensor(ids)
        mask[row, :len(ids)] = 1
    logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
    means = []
    for row, (ids, count) in enumerate(chunk):
        if count == 0:
            means.append(math.nan)
            continue
        # Position i predicts token i + 1: the reply's tokens are predicted from the one before each.
        start = len(ids) - count
        predicted = torch.log_softmax(logits[row, start - 1:len(ids) - 1].float(), dim=-1)
        targets = torch.as_tensor(ids[start:], device=predicted.device)
        means.append(float(predicted.gather(1, targets[:, None]).mean()))
    return means


# --------------------------------------------------------------------------- the record and what it says


def preferred(side: tuple[float, float] | None) -> bool | None:
    """The chosen reply is the likelier per token (a tie is not a preference); None unmeasured."""
    if side is None or not all(math.isfinite(v) for v in side):
        return None
    return side[0] > side[1]


def _question(example) -> str:
    users = [m.get("content") for m in getattr(example, "messages", ()) if m.get("role") == "user"]
    return str(users[-1]) if users else str(getattr(example, "text", ""))


def preference_record(pairs, before: list | None, after: list | None) -> dict:
    """preference.json: each pair's split, prompt, reply lengths and scores before and after."""
    rows = []
    for i, (split, example, encoded) in enumerate(pairs):
        row = {"id": pair_id(encoded), "split": split, "prompt": _question(example),
               "chosen_tokens": len(encoded.chosen_ids), "rejected_tokens": len(encoded.rejected_ids)}
        for name, sides in (("before", before), ("after", after)):
            side = sides[i] if sides else None
            row[name] = {"chosen": round(side[0], 6), "rejected": round(side[1], 6)} if side else None
            row[f"{name}_preferred"] = preferred(side)
        rows.append(row)
    return {"measure": MEASURE, "pairs": rows}


def _pairs(record) -> list[dict]:
    rows = record.get("pairs") if isinstance(record, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _paired(record) -> list[dict]:
    return [r for r in _pairs(record) if all(isinstance(r.get(f"{s}_preferred"), bool) for s in ("before", "after"))]


def preferred_difference(record) -> Difference:
    """The paired change in the share of pairs whose chosen reply is preferred (Newcombe's
    interval and McNemar's exact test: each pair is right or wrong, before and after)."""
    paired = _paired(record)
    return paired_difference([float(r["before_preferred"]) for r in paired],
                             [float(r["after_preferred"]) for r in paired])


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mean_margin(rows: list[dict], side: str) -> float | None:
    margins = [r[side]["chosen"] - r[side]["rejected"] for r in rows if isinstance(r.get(side), dict)
               and _number(r[side].get("chosen")) and _number(r[side].get("rejected"))]
    return round(sum(margins) / len(margins), 4) if margins else None


def scores_entry(record) -> dict:
    """The evidence as one more row of a run's scores: how many pairs of each split, the share
    preferred before and after, and the mean per-token margin (chosen minus rejected, nats)."""
    rows = _pairs(record)
    entry: dict = {"pairs": len(rows), **{f"{split}_pairs": sum(r.get("split") == split for r in rows)
                                          for split in SPLITS}}
    for side in ("before", "after"):
        flags = [r[f"{side}_preferred"] for r in rows if isinstance(r.get(f"{side}_preferred"), bool)]
        if flags:
            entry[f"{side}_{PREFERRED}"] = round(sum(flags) / len(flags), 4)
            entry[f"{side}_margin"] = _mean_margin(rows, side)
    return entry


def preference_changes(record, rows: list[dict], degraded=()) -> dict:
    """summary.json's changes["preference"]: the chosen-preferred change with its interval, the
    change in held-out answers closer to the rejected reply (when there are such rows), and the
    category's one reading of them (metrics.read_category), `degraded` being what the detectors
    found degraded here (sentences)."""
    label = PREFERENCE_METRICS[PREFERRED].label
    entry: dict = {PREFERRED: preferred_difference(record).to_dict(f"{where(PREFERENCE)} ({label})")}
    leaning = closer_change(rows)
    if leaning is not None:
        entry[CLOSER] = leaning
    entry["reading"] = {"metric": PREFERRED, "words": None, "degraded": [str(d) for d in degraded]}
    found = read_category(PREFERENCE, entry)
    if found is not None:
        entry["reading"] = found.to_dict()
    return entry
