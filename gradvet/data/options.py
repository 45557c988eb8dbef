"""Checking the keyword options given to a dataset loader.

Every loader takes its options as keyword-only parameters; `check_names`
turns an unknown one into `gradvet.base.errors.unknown`'s sentence, and the
`as_*` helpers check values with `gradvet.base.validation`, naming the option
"DATASET option NAME".
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gradvet.base import validation
from gradvet.base.errors import unknown


def option_names(loader: Callable[..., Any]) -> tuple[str, ...]:
    """The keyword-only parameters of `loader`, i.e. the options it accepts."""
    params = inspect.signature(loader).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def check_names(dataset: str, options: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Raise GradvetError for the first option of `options` not in `allowed`."""
    for key in options:
        if key not in allowed:
            raise unknown("option", key, allowed, context=f"dataset {dataset!r}")


def _name(dataset: str, option: str) -> str:
    return f"{dataset} option {option}"


def as_int(dataset: str, option: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """`value` as an int in [minimum, maximum] (a numpy integer too); bools and non-integers are refused."""
    if isinstance(value, np.integer):
        value = int(value)
    return validation.whole_number(_name(dataset, option), value, minimum, maximum)


def as_fraction(dataset: str, option: str, value: Any) -> float:
    """`value` as a float strictly between 0 and 1."""
    return validation.finite_number(_name(dataset, option), value, low=0.0, above=True, high=1.0, below=True)


def as_bool(dataset: str, option: str, value: Any) -> bool:
    """`value` as a bool (only True or False are accepted)."""
    return validation.boolean(_name(dataset, option), value)
