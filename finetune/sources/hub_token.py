"""A hub token typed into the app or set in HF_TOKEN is used for downloads
only: every message, log line and file the lab writes passes through redact()."""

from __future__ import annotations

MASK = "***"


def redact(text: str, token: str | None) -> str:
    """The text with the token masked."""
    return text.replace(token, MASK) if token else text
