"""Activations built from a formula in x: `gradvet.activation("x*tanh(softplus(x))")`.

The text is parsed by `activations.formula` (Python's ast with a whitelist,
never eval or sympify), differentiated symbolically by SymPy, and both f and
f' are compiled into torch functions by walking the SymPy tree.
"""

from __future__ import annotations

import math
from typing import Any

from gradvet.activations import formula as F
from gradvet.activations.core import Activation
from gradvet.base.errors import GradvetError


def _values(text: str, params: dict[str, Any]) -> dict[str, float]:
    values = {}
    for key, value in params.items():
        if not key.isidentifier() or key in ("x", "e", "pi") or key in F.FUNCTIONS:
            raise GradvetError(
                f"formula {text!r}: parameter name {key!r} is not allowed; use a plain name other than x, e, pi "
                "and the function names."
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise GradvetError(f"formula {text!r}: parameter {key}={value!r} must be a finite number.")
        values[key] = number
    return values


def formula_activation(text: str, **params: Any) -> Activation:
    """A full Activation (fn, symbolic grad, properties, figures) from formula text."""
    values = _values(text, params)
    expr = F.parse(text, values.keys())
    unused = sorted(set(values) - {s.name for s in expr.free_symbols})
    if unused:
        raise GradvetError(
            f"formula {text!r}: parameter {unused[0]!r} does not appear in it; parameters must be used by the formula."
        )
    fn = F.compile_torch(expr, values)
    grad = F.compile_torch(F.derivative(expr), values)
    key = "formula|" + text + "|" + ",".join(f"{k}={v!r}" for k, v in sorted(values.items()))
    return Activation(
        name=text,
        family="custom",
        formula=text,
        fn=fn,
        grad=grad,
        params=values,
        source="formula",
        cache_key=key,
    )
