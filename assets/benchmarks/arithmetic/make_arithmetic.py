"""Generate the bundled two-digit addition items, assets/benchmarks/arithmetic/validation.jsonl.

    python assets/benchmarks/arithmetic/make_arithmetic.py           # rewrites validation.jsonl
    python assets/benchmarks/arithmetic/make_arithmetic.py --check   # exits 1 if the file differs

The GPT-3 arithmetic data that lm-eval's `arithmetic_2da` reads carries no
licence, so these items are made here instead, in the same shape: two integers
drawn uniformly from [0, 100) (as the GPT-3 paper describes its "2D+" task),
the context after lm-eval's own normalisation ("Q:" -> "Question:", "A:" ->
"Answer:", one newline) and the completion with its leading space. Licensed
with the project.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # assets/, for the shared writer
from generated_file import write_or_check  # noqa: E402

OUTPUT = Path(__file__).parent / "validation.jsonl"
SEED = 2026
ITEMS = 100


def generate(seed: int = SEED, items: int = ITEMS) -> list[dict]:
    """`items` distinct additions: the same question twice would count twice."""
    rng, seen, records = random.Random(seed), set(), []
    while len(records) < items:
        a, b = rng.randrange(100), rng.randrange(100)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        records.append({"context": f"Question: What is {a} plus {b}?\nAnswer:", "completion": f" {a + b}"})
    return records


def render(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main(argv: list[str] | None = None) -> int:
    return write_or_check(OUTPUT, render(generate()), argv, __doc__.splitlines()[0], "items")


if __name__ == "__main__":
    sys.exit(main())
