"""Greedy answers for held-out prompts, and how they score against references."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import defaultdict

import torch

from .dataset import HeldOutPrompt

GENERATION_BATCH = 8


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = GENERATION_BATCH,
             autocast_dtype: torch.dtype | None = None) -> list[str]:
    """Greedy continuations of already-rendered prompts, batched with left padding."""
    if not prompts:
        return []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                output = model.generate(
                    **batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                    eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                    temperature=None, top_p=None, top_k=None,
                )
            new_tokens = output[:, batch["input_ids"].shape[1]:]
            answers += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


def normalise_answer(text: str) -> str:
    """Lower case, no punctuation, single spaces: "Paris." == "paris"."""
    text = unicodedata.normalize("NFKC", text).lower().strip()
    text = text.translate(str.maketrans({c: " " for c in string.punctuation}))
    return re.sub(r"\s+", " ", text).strip()


def score(answer: str | None, reference: str) -> dict[str, bool]:
    if answer is None:
        return {"exact": False, "normalised": False, "contains": False}
    a, r = normalise_answer(answer), normalise_answer(reference)
    return {
        "exact": answer.strip() == reference.strip(),
        "normalised": a == r,
        "contains": bool(r) and f" {r} " in f" {a} ",
    }


def comparison_rows(held_out: list[HeldOutPrompt], before: list[str] | None, after: list[str] | None) -> list[dict]:
    rows = []
    for i, item in enumerate(held_out):
        b = before[i] if before else None
        a = after[i] if after else None
        rows.append({
            "prompt": item.question, "reference": item.reference, "category": item.category, "task": item.task,
            "before": b, "after": a, "before_score": score(b, item.reference) if before else None,
            "after_score": score(a, item.reference) if after else None,
        })
    return rows


def summarise_scores(rows: list[dict]) -> dict:
    """Share of prompts matched, per category ("all" plus e.g. "task", "general")."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups["all"].append(row)
        if row["category"]:
            groups[row["category"]].append(row)
    result = {}
    for name, members in groups.items():
        entry = {"prompts": len(members)}
        for side in ("before", "after"):
            scored = [m[f"{side}_score"] for m in members if m[f"{side}_score"] is not None]
            if scored:
                for metric in ("exact", "normalised", "contains"):
                    entry[f"{side}_{metric}"] = round(sum(s[metric] for s in scored) / len(scored), 4)
        result[name] = entry
    return result
