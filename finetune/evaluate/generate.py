"""Greedy answers for rendered prompts, batched."""

from __future__ import annotations

from typing import Iterator

import torch

GENERATION_BATCH = 8


def left_padded_batches(model, tokenizer, prompts: list[str], batch_size: int) -> Iterator:
    """The prompts as tokenized batches padded on the left (so every prompt ends
    where generation or the next-token read starts), with the model in eval mode
    and both restored afterwards."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(prompts), batch_size):
            yield tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)


def autocast(model, dtype: torch.dtype | None):
    device = next(model.parameters()).device
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = GENERATION_BATCH,
             autocast_dtype: torch.dtype | None = None, max_time: float | None = None) -> list[str]:
    """Greedy continuations of already-rendered prompts, batched with left padding.
    `max_time` (seconds) stops each batch's generation at a deadline
    (transformers' MaxTimeCriteria): what it has by then is the answer."""
    answers = []
    for batch in left_padded_batches(model, tokenizer, prompts, batch_size):
        with autocast(model, autocast_dtype):
            output = model.generate(
                **batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                temperature=None, top_p=None, top_k=None, max_time=max_time,
            )
        new_tokens = output[:, batch["input_ids"].shape[1]:]
        answers += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return answers
