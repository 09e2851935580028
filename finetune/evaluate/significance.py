"""Is a change bigger than the noise? With 10 to 50 held-out prompts, 40% ->
55% can be luck. Every comparison of two models (before and after training,
or two runs) on the same prompts goes through paired_difference(): the change
in the mean score and a 95% interval for it. The verdict reads the interval:
better or worse only when it excludes zero.

- Scores from 0 to 1 (token F1, ROUGE-L, BLEU): a paired bootstrap over the
  prompts (scipy.stats.bootstrap, percentile interval).
- Right/wrong scores (exact, contains, a benchmark's accuracy): Newcombe's score
  interval for a difference of paired proportions (his method 10, from Wilson
  intervals; scipy.stats.binomtest), and McNemar's exact test on the prompts
  that changed; such a change is called better or worse only when both agree
  (at the edge, an interval just clear of zero can come with p = 0.07).
  Measured on simulated runs of 10-50 prompts, the bootstrap covers the true
  change only 80-90% of the time at this size and gives [0, 0] when no prompt
  changed; Newcombe's interval covers it 85-95% and never called an unchanged
  model better.
- A bootstrap whose paired differences are all equal (every prompt changed by
  the same amount, or none changed) has no spread to resample: its interval
  has no width and measures nothing, so its verdict is "no verdict", and the
  sentence says why, instead of an interval of zero width.

    >>> paired_difference([0, 0, 1, 0] * 5, [1, 1, 1, 0] * 5).sentence()
    'better on this task: +50 points, 95% interval +25 to +66 (exact test p = 0.002)'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

CONFIDENCE = 0.95
RESAMPLES = 10_000  # enough for a stable 95% interval's ends to about half a point
SEED = 0  # the same scores always give the same interval
MIN_PAIRS = 2  # one prompt has no spread to resample
# Paired differences this close are equal: scores computed along different paths
# (0.7 - 0.6 and 0.3 - 0.2) differ in their last bits, not in anything measured.
SAME = 1e-9

BETTER, WORSE, UNCHANGED, TOO_FEW = "better", "worse", "no measurable change", "too few prompts"
NO_VERDICT = "no verdict"  # a measure that cannot decide (a bootstrap without spread, a judge without a preference)
BOOTSTRAP = "paired bootstrap"
NUMBERS = ("before", "after", "change", "low", "high")  # the fields a JSON file may hold as null


@dataclass(frozen=True)
class Difference:
    """The change from `before` to `after` (means of scores from 0 to 1) and
    its interval; `p_value` only for 0/1 scores (exact McNemar)."""

    n: int
    before: float
    after: float
    change: float
    low: float
    high: float
    p_value: float | None = None
    confidence: float = CONFIDENCE
    method: str = BOOTSTRAP

    @property
    def no_spread(self) -> bool:
        """A bootstrap over differences that are all equal: every resample has the
        same mean, so its interval has no width and says nothing about the noise."""
        return self.p_value is None and self.n >= MIN_PAIRS and self.low == self.high

    @property
    def verdict(self) -> str:
        if self.n < MIN_PAIRS:
            return TOO_FEW
        if self.no_spread:
            return NO_VERDICT
        if self.p_value is not None and self.p_value >= 1 - self.confidence:
            return UNCHANGED  # right/wrong scores: the interval and the exact test must both say so
        if self.low > 0:
            return BETTER
        if self.high < 0:
            return WORSE
        return UNCHANGED

    def sentence(self, where: str = "on this task", unit: str = "points") -> str:
        """One line for people: "better on this task: +15 points, 95% interval +3 to +27"."""
        if self.verdict == TOO_FEW:
            return f"too few prompts to tell {where} ({self.n})"
        if self.verdict == NO_VERDICT:
            return f"{NO_VERDICT} {where}: {self.why_no_verdict()}"
        exact = f" (exact test p = {self.p_value:.2g})" if self.p_value is not None else ""
        return f"{self.verdict} {where}: {self.numbers(unit)}{exact}"

    def numbers(self, unit: str = "points") -> str:
        """The change and its interval, for a table cell: "+15 points, 95% interval +3 to +27"."""
        if self.verdict == TOO_FEW:
            return f"too few prompts ({self.n})"
        if self.verdict == NO_VERDICT:
            return f"{points(self.change)} {unit}, no interval (no spread to measure the noise with)"
        return f"{points(self.change)} {unit}, {self.confidence:.0%} interval {points(self.low)} to {points(self.high)}"

    def why_no_verdict(self) -> str:
        if round(100 * self.change) == 0:
            moved = f"all {self.n} prompts scored the same before and after"
        else:
            moved = f"every one of the {self.n} prompts changed by the same {points(self.change)} points"
        return f"{moved}, so there is no spread to tell a change from the noise (a bootstrap interval has no width)"

    def to_dict(self, where: str = "on this task") -> dict:
        """For JSON files: numbers that are not finite (no prompts) become null;
        `where` names the prompts in the sentence ("on the general prompts")."""
        values = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}
        return {**values, "verdict": self.verdict, "sentence": self.sentence(where)}

    @classmethod
    def from_dict(cls, data) -> "Difference | None":
        """A Difference read back from to_dict()'s JSON (null numbers become NaN);
        None for anything else, so a damaged file shows as unknown, never a crash."""
        if not isinstance(data, dict) or not isinstance(data.get("n"), int):
            return None
        values = {}
        for name in NUMBERS:
            value = data.get(name)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                return None
            values[name] = math.nan if value is None else float(value)
        p_value, confidence = data.get("p_value"), data.get("confidence", CONFIDENCE)
        if not isinstance(p_value, (int, float, type(None))) or not isinstance(confidence, (int, float)):
            return None
        if data["n"] >= MIN_PAIRS and not all(math.isfinite(values[k]) for k in ("change", "low", "high")):
            return None
        return cls(data["n"], **values, p_value=p_value, confidence=confidence,
                   method=str(data.get("method", BOOTSTRAP)))


def points(share: float) -> str:
    """A change of a 0..1 score in percentage points, signed: +15, -3, +0."""
    value = round(100 * share)
    return f"+{value}" if value >= 0 else str(value)


def paired_difference(before: Sequence[float], after: Sequence[float], *, confidence: float = CONFIDENCE,
                      resamples: int = RESAMPLES, seed: int = SEED) -> Difference:
    """The change in mean score over the same items scored twice (item i of
    `before` pairs with item i of `after`), with a paired-bootstrap interval."""
    if len(before) != len(after):
        raise ValueError(f"paired scores need the same items: {len(before)} before, {len(after)} after")
    n = len(before)
    if n == 0:
        return Difference(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    mean_before, mean_after = sum(before) / n, sum(after) / n
    if _right_or_wrong(before) and _right_or_wrong(after):
        low, high = _paired_proportions_interval(before, after, confidence)
        return Difference(n, mean_before, mean_after, mean_after - mean_before, low, high,
                          _mcnemar_exact_p(before, after), confidence, "Newcombe interval, exact McNemar test")
    low, high = _bootstrap_interval([a - b for a, b in zip(after, before)], confidence, resamples, seed)
    return Difference(n, mean_before, mean_after, mean_after - mean_before, low, high, None, confidence)


def share_difference(successes: int, n: int, *, against: float = 0.5,
                     confidence: float = CONFIDENCE) -> Difference:
    """A share of n items (`successes` of them) against a fixed `against`, with
    Wilson's interval and the exact binomial test: for a judge whose prompts all
    came out the same (all won, or all lost), where a bootstrap has no spread to
    resample but the count itself decides (20 wins of 20: p = 2e-06)."""
    from scipy.stats import binomtest

    if n < MIN_PAIRS:
        return Difference(n, against, successes / n if n else math.nan, math.nan, math.nan, math.nan)
    low, high = _wilson(successes, n, confidence)
    share = successes / n
    p_value = float(binomtest(successes, n, against).pvalue)
    return Difference(n, against, share, share - against, low - against, high - against, p_value, confidence,
                      "Wilson interval, exact binomial test")


def _right_or_wrong(scores: Sequence[float]) -> bool:
    return all(v in (0, 1) for v in scores)


def _bootstrap_interval(differences: list[float], confidence: float, resamples: int, seed: int) -> tuple[float, float]:
    import numpy as np
    from scipy.stats import bootstrap

    if len(differences) < MIN_PAIRS:
        return -math.inf, math.inf
    values = np.asarray(differences, dtype=float)
    if np.allclose(values, values[0], rtol=0, atol=SAME):  # no spread: every resample has the same mean
        return float(values[0]), float(values[0])
    result = bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=resamples,
                       method="percentile", rng=np.random.default_rng(seed))
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def _paired_proportions_interval(before: Sequence[float], after: Sequence[float],
                                 confidence: float) -> tuple[float, float]:
    """Newcombe (1998), method 10: the difference of two paired proportions,
    from each one's Wilson interval and the correlation of the pairs."""
    n = len(before)
    both = sum(1 for b, a in zip(before, after) if a and b)
    lost = sum(1 for b, a in zip(before, after) if b and not a)
    gained = sum(1 for b, a in zip(before, after) if a and not b)
    neither = n - both - lost - gained
    p1, p2 = (both + lost) / n, (both + gained) / n
    l1, u1 = _wilson(both + lost, n, confidence)
    l2, u2 = _wilson(both + gained, n, confidence)
    spread = (both + lost) * (gained + neither) * (both + gained) * (lost + neither)
    phi = (both * neither - lost * gained) / math.sqrt(spread) if spread else 0.0
    change = p2 - p1
    low = change - math.sqrt(max((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0.0))
    high = change + math.sqrt(max((u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2, 0.0))
    return low, high


def _wilson(successes: int, n: int, confidence: float) -> tuple[float, float]:
    from scipy.stats import binomtest

    interval = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def _mcnemar_exact_p(before: Sequence[float], after: Sequence[float]) -> float:
    """Of the prompts that changed, are gains and losses a fair coin?"""
    from scipy.stats import binomtest

    gained = sum(1 for b, a in zip(before, after) if a > b)
    lost = sum(1 for b, a in zip(before, after) if a < b)
    return 1.0 if gained + lost == 0 else float(binomtest(gained, gained + lost, 0.5).pvalue)
