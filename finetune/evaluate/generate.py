"""Greedy answers for rendered prompts, batched."""

from __future__ import annotations

import torch

GENERATION_BATCH = 8


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = GENERATION_BATCH,
             autocast_dtype: torch.dtype | None = None, max_time: float | None = None) -> list[str]:
    """Greedy continuations of already-rendered prompts, batched with left padding.
    `max_time` (seconds) stops each batch's generation at a deadline
    (transformers' MaxTimeCriteria): what it has by then is the answer."""
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
                    temperature=None, top_p=None, top_k=None, max_time=max_time,
                )
            new_tokens = output[:, batch["input_ids"].shape[1]:]
            answers += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers
