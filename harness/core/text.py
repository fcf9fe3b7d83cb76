"""Small text helpers of the core layer: label normalisation and "did you mean" hints.

They live here, not in metrics or strategies, because suite validation (core) needs both and the
core must not import the layers above it.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Sequence


def normalize_label(text: str) -> str:
    """Case-, whitespace-, punctuation- and underscore-insensitive form of a label."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("_", " ").replace("-", " ")
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.split())


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
