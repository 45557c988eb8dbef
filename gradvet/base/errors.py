"""The one exception type for user mistakes.

A `GradvetError` carries a single sentence that names the bad value and what
is allowed; the command line prints it on one line and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GradvetError(ValueError):
    """A user mistake: bad name, bad formula, parameter out of range, bad path."""


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to `n` entries of `choices` that look like `word` (difflib ratio >= 0.6)."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean a or b?)' when something is close, else ''."""
    matches = close_matches(word, choices)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"
