"""How a chat answer is drawn: greedy, or sampled with a temperature, a top-p
cut and a seed, under a repetition penalty and a length limit. Each setting
with its range and its meaning in words (SAMPLING_HELP), as the Chat tab and the command
line show them. Light on purpose (no torch): the command line's --help reads it."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_NEW_TOKENS = 4096  # the max_new_tokens setting's hard limit (train.config); public mode lowers it
SEED_MAX = 2**31 - 1
# Each setting's range and meaning, as the Chat tab and the command line show them.
SAMPLING_HELP = {
    "greedy": "always take the likeliest next token: the same answer every time, often repetitive",
    "temperature": "how adventurous the sampling is: below 1 sharper (closer to greedy), above 1 wilder",
    "top_p": "sample only among the likeliest tokens that together hold this much probability (1: all)",
    "max_new_tokens": "the longest answer, in tokens",
    "repetition_penalty": "how much less likely a token already said becomes (1: no penalty)",
    "seed": "where the sampling's randomness starts: the same seed and settings give the same answer",
}
RANGES = {"temperature": (0.05, 2.0), "top_p": (0.05, 1.0), "repetition_penalty": (1.0, 2.0)}


@dataclass(frozen=True)
class Sampling:
    greedy: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 256
    repetition_penalty: float = 1.1
    seed: int = 0

    def checked(self) -> "Sampling":
        """Itself, each value checked (a client may send anything: NaN passes a slider's
        bounds); a ValueError naming the first bad one."""
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: {value!r} is not a finite number")
            if not low <= value <= high:
                raise ValueError(f"{name}: {value:g} is outside {low:g}..{high:g}")
        for name, high in (("max_new_tokens", MAX_NEW_TOKENS), ("seed", SEED_MAX)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
                raise ValueError(f"{name}: {value!r} is not a whole number from 0 to {high:,}")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens: give at least 1")
        if not isinstance(self.greedy, bool):
            raise ValueError(f"greedy: {self.greedy!r} is not true or false")
        return self

    def describe(self) -> str:
        if self.greedy:
            return f"greedy, repetition penalty {self.repetition_penalty:g}, at most {self.max_new_tokens} tokens"
        return (f"temperature {self.temperature:g}, top p {self.top_p:g}, repetition penalty "
                f"{self.repetition_penalty:g}, seed {self.seed}, at most {self.max_new_tokens} tokens")
