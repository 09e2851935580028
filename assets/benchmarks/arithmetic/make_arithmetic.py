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

import argparse
import json
import random
import sys
from pathlib import Path

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = parser.parse_args(argv)
    text = render(generate())
    if args.check:
        same = OUTPUT.is_file() and OUTPUT.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{OUTPUT} differs from the generator's output")
        return 0 if same else 1
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(text.splitlines())} items)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
