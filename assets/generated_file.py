"""What the asset generators share: write the file they generate, or check the committed one.

`--check` lets a test (or a reviewer) confirm that a bundled file is exactly what its
generator makes, so nobody hand-edits generated data by accident.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def write_or_check(output: Path, text: str, argv: list[str] | None, description: str, unit: str) -> int:
    """Write `text` to `output`, or with --check compare them; the exit status says which."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = parser.parse_args(argv)
    if args.check:
        same = output.is_file() and output.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{output} differs from the generator's output")
        return 0 if same else 1
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output} ({len(text.splitlines())} {unit})")
    return 0
