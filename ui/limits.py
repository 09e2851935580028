"""What one question may cost the server, checked on the server whatever the
client sends (an API client skips every widget's bounds; NaN even passes
Gradio's slider check, since NaN < min and NaN > max are both false).

The text caps on settings (system prompt, column names) are hard limits of the
engine (finetune.train.config), enforced everywhere; the question's length cap is the
engine's too (finetune.evaluate.ask). What is here is a public deployment's tighter budget.
"""

from __future__ import annotations

from finetune.train import config as cfg

# A public answer is at most this many tokens, whatever the slider says (the
# engine's public cap, which public runs obey too).
PUBLIC_MAX_NEW_TOKENS = cfg.PUBLIC_MAX_NEW_TOKENS
# Each model's answer stops at this deadline in public mode (transformers'
# MaxTimeCriteria, checked after each token), however slow the hardware: on a
# busy 2-core VM the default model took 178 s for 256 tokens.
PUBLIC_ANSWER_SECONDS = 30.0
# Questions run one at a time per process: each loads two models for its answer,
# and two at once on a small server would only make both slow. The rest queue.
ASK_CONCURRENCY = 1


def answer_tokens(value, public: bool) -> int:
    """The max_new_tokens a question gets: a finite whole number within the
    setting's hard limits (ConfigError otherwise), capped in public mode."""
    f = cfg.field_by_name("max_new_tokens")
    tokens = cfg.coerce(f, value)
    if not f.metadata["hard_min"] <= tokens <= f.metadata["hard_max"]:
        raise cfg.ConfigError(f"max_new_tokens: {tokens} is outside the possible range "
                              f"{f.metadata['hard_min']}..{f.metadata['hard_max']}")
    return min(tokens, PUBLIC_MAX_NEW_TOKENS) if public else tokens


def answer_seconds(public: bool) -> float | None:
    """The deadline for each model's answer: public mode only (locally, the user's own time)."""
    return PUBLIC_ANSWER_SECONDS if public else None


def check_settings(**values) -> None:
    """The settings a question is rendered with (model, template, system prompt),
    checked like a run's: a 200,000-character system prompt is refused here too."""
    cfg.build({name: value for name, value in values.items() if value is not None}, allow_out_of_range=True)
