"""Symbolic views of an activation: its LaTeX and its derivative as a formula.

Both come from SymPy applied to the plain-text formula (parsed safely by
`activations.formula`), so they cannot disagree with it. Registered Python
callables have no formula; their LaTeX is empty and their derivative is
'autograd' unless they gave one.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from gradvet.activations import formula as F
from gradvet.base.errors import GradvetError

if TYPE_CHECKING:
    from gradvet.activations.protocol import ActivationLike


@functools.lru_cache(maxsize=256)
def _expr(text: str, params: tuple[str, ...]):
    return F.parse(text, params)


def _parsed(act: ActivationLike):
    if act.source == "registered":
        return None
    try:
        return _expr(act.formula, tuple(act.params))
    except GradvetError:
        return None


def latex_of(act: ActivationLike) -> str:
    """LaTeX of f(x) with its parameters as symbols; '' when there is no formula."""
    expr = _parsed(act)
    return "" if expr is None else F.to_latex(expr)


def derivative_text_of(act: ActivationLike) -> str:
    """f'(x) as simplified plain text; 'autograd' for a callable without a formula."""
    expr = _parsed(act)
    if expr is None:
        return "autograd"
    return F.to_text(F.simplified(F.derivative(expr)))
