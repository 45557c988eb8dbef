"""Checking the keyword options given to a dataset loader.

Every loader takes its options as keyword-only parameters; `check_names`
turns an unknown one into a one-sentence `GradvetError`, and the `as_*`
helpers validate values the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gradvet.base.errors import GradvetError, did_you_mean


def option_names(loader: Callable[..., Any]) -> tuple[str, ...]:
    """The keyword-only parameters of `loader`, i.e. the options it accepts."""
    params = inspect.signature(loader).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def check_names(dataset: str, options: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Raise GradvetError for the first option of `options` not in `allowed`."""
    for key in options:
        if key not in allowed:
            listing = ", ".join(allowed) if allowed else "none"
            raise GradvetError(
                f"unknown option {key!r} for dataset {dataset!r}{did_you_mean(key, allowed)}; "
                f"allowed options: {listing}."
            )


def as_int(dataset: str, option: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """`value` as an int in [minimum, maximum]; bools and non-integers are refused."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise GradvetError(
            f"option {option}={value!r} of dataset {dataset!r} must be an integer of at least {minimum}{upper}."
        )
    return int(value)


def as_fraction(dataset: str, option: str, value: Any) -> float:
    """`value` as a float strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise GradvetError(
            f"option {option}={value!r} of dataset {dataset!r} must be a number strictly between 0 and 1."
        )
    return float(value)


def as_bool(dataset: str, option: str, value: Any) -> bool:
    """`value` as a bool (only True or False are accepted)."""
    if not isinstance(value, bool):
        raise GradvetError(f"option {option}={value!r} of dataset {dataset!r} must be True or False.")
    return value
