"""The one exception type for user mistakes, and the one sentence for an unknown name.

A `GradvetError` carries a single sentence that names the bad value and what
is allowed; the command line prints it on one line and exits with status 2.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from typing import Any


class GradvetError(ValueError):
    """A user mistake: bad name, bad formula, parameter out of range, bad path."""


def shown(value: Any, limit: int = 200) -> str:
    """`value` as an error shows it, on one line: repr, cut to `limit` characters (a 1 MB string
    stays short); a path is shown whole."""
    if isinstance(value, os.PathLike):
        return repr(os.fspath(value))
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to `n` entries of `choices` that look like `word` (difflib ratio >= 0.6), trying the word
    as given and then folded (lower case, without spaces, '-' and '_'), so 'Leaky-ReLU' finds
    'leaky_relu'."""
    choices = list(choices)
    found = difflib.get_close_matches(word, choices, n=n, cutoff=0.6)
    if found:
        return found
    folded = {_fold(c): c for c in choices}
    return [folded[f] for f in difflib.get_close_matches(_fold(word), list(folded), n=n, cutoff=0.6)]


def _fold(word: str) -> str:
    return re.sub(r"[\s_\-]", "", word.lower())


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'a' or 'b'?)' when something is close, else ''."""
    matches = close_matches(word, choices)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"


def unknown_name(kind: str, value: object, choices: Iterable[object], spelled: str | None = None) -> str:
    """"unknown KIND 'value' (did you mean 'a' or 'b'?)": the start of `unknown`'s sentence, for a
    message that says what is allowed in its own words. `spelled` is the part of the value compared
    with the choices (default: all of it)."""
    names = [str(c) for c in choices if c is not None]
    return f"unknown {kind} {shown(value)}{did_you_mean(str(value) if spelled is None else spelled, names)}"


def unknown(kind: str, value: object, allowed: Iterable[object] | str, *, context: str = "",
            choices: Iterable[object] | None = None, spelled: str | None = None) -> GradvetError:
    """The one sentence for a name gradvet does not know:
    "[CONTEXT: ]unknown KIND 'value' (did you mean 'a' or 'b'?); allowed: a, b, c."

    `allowed` lists the names (None shown as 'none') or says in words what is allowed; close matches
    are sought among `choices` (default: the names in `allowed`), comparing `spelled` (default: the
    value) as given and folded. Returned, not raised: `raise unknown(...)`."""
    if isinstance(allowed, str):
        listing, names = allowed, list(choices or ())
    else:
        allowed = list(allowed)
        names = allowed if choices is None else list(choices)
        listing = ", ".join("none" if a is None else str(a) for a in allowed) or "none"
    prefix = f"{context}: " if context else ""
    return GradvetError(f"{prefix}{unknown_name(kind, value, names, spelled)}; allowed: {listing}.")
