"""Benchmarks: each prints ratios against a baseline run in the same process."""

from pathlib import Path


def folder_bytes(folder: Path) -> int:
    """The size of everything under a folder, in bytes (what a save or an export costs on disk)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
