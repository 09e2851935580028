"""When two texts say the same thing: the one normalisation that the data
advice (duplicate and conflicting prompts) and the answer metrics (exact after
normalising, contains) share, so "the same answer" means one thing everywhere."""

from __future__ import annotations

import re
import string
import unicodedata

PUNCTUATION_TO_SPACE = str.maketrans({c: " " for c in string.punctuation})


def normalise_answer(text: str) -> str:
    """Lower case, no punctuation, single spaces: "Paris." == "paris"."""
    text = unicodedata.normalize("NFKC", text).lower().strip()
    text = text.translate(PUNCTUATION_TO_SPACE)
    return re.sub(r"\s+", " ", text).strip()
