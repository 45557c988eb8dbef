"""How large a formula may be, so that parsing, differentiating and evaluating it stay bounded.

A formula is text, so it can describe numbers and expressions far beyond what
any machine can hold: ``10**1000`` is exact in SymPy (a 3,322-bit integer, and
``10**10**6`` a 3-million-bit one), ``e**e**e**e**e`` is about 10^(10^1656520),
and a 95-deep nest of ``tanh(`` has a derivative of 95 factors with 4,560
``tanh`` calls when written out as a tree. The limits below are checked while
the formula is built (`activations.formula`), step by step, before SymPy or
torch can spend time or memory on anything larger:

- the text: at most MAX_LENGTH characters, MAX_NODES syntax elements and
  MAX_DEPTH levels of nesting;
- every constant sub-expression (no x, no parameter) is evaluated to 15
  digits as soon as it is built, and must be 0 or within
  [1/MAX_MAGNITUDE, MAX_MAGNITUDE] in magnitude; SymPy builds the next step
  only from such bounded parts;
- exact integers and fractions beyond MAX_EXACT become 15-digit floats
  (`inexact`), so no exact power SymPy computes on its own in one step can
  exceed about 17 * 2**16 bits (SymPy turns exp(n*log(r)) into r**n, and
  (c*x)**n into c**n * x**n, exactly);
- a power of an expression in x has a constant exponent of at most
  MAX_EXPONENT in magnitude (x**100 already overflows float64 for |x| > 1200,
  and SymPy needs seconds to simplify the derivative of (x+1)**1000);
- f and its derivative each need at most MAX_OPERATIONS torch operations
  (`operations`, counted on the expression with shared parts counted once,
  as `compile_torch` evaluates them).
"""

from __future__ import annotations

import ast
import math

import sympy

MAX_LENGTH = 2000
"""Longest formula text accepted, in characters."""

MAX_NODES = 1000
"""Most syntax elements (numbers, names, operations, calls) a formula may have."""

MAX_DEPTH = 64
"""Deepest nesting of calls and operators (a chain a + b - c counts as one level)."""

MAX_MAGNITUDE = 1e300
"""Largest magnitude of a constant (float64 ends at 1.8e308); the smallest non-zero one is its inverse."""

MAX_EXACT = 2**16
"""Largest numerator or denominator kept exact; larger numbers are kept as 15-digit floats."""

MAX_EXPONENT = 100
"""Largest |constant exponent| of a power whose base depends on x or a parameter."""

MAX_OPERATIONS = 500
"""Most torch operations f, or f', may take per call (shared sub-expressions counted once)."""

DIGITS = 15
"""Significant digits of the floating-point value of a constant."""


_NOT_COUNTED = (ast.mod, ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


def syntax_nodes(tree: ast.AST) -> int:
    """The numbers, names, operations and calls of a Python syntax tree (walked without
    recursion; the operator tokens and load contexts ast also holds are not counted)."""
    return sum(1 for node in ast.walk(tree) if not isinstance(node, _NOT_COUNTED))


def _about(size: sympy.Float) -> str:
    """A magnitude as a power of ten, e.g. '10^1000' or '10^(-3.01e+199)'."""
    log10 = float(sympy.log(size).evalf(DIGITS)) / math.log(10)  # the log of a Float does not overflow
    nearest = round(log10)  # 10**1000 is 10^1000, not 10^999 by float rounding
    exponent = nearest if abs(log10 - nearest) <= 1e-9 + 1e-14 * abs(log10) else math.floor(log10)
    return f"10^{exponent:.0f}" if abs(exponent) < 1e9 else f"10^({exponent:.3g})"


def _text(number: float) -> str:
    """1e300 as '1e300' (not '1e+300')."""
    return f"{number:g}".replace("e+", "e")


def constant_problem(expr: sympy.Expr) -> str | None:
    """Why the constant `expr` is not allowed (complex, not finite, or out of
    [1/MAX_MAGNITUDE, MAX_MAGNITUDE]), or None. Its parts must already be bounded: the value is
    computed to DIGITS digits by SymPy's evalf (mpmath, whose exponents do not overflow)."""
    value = expr.evalf(DIGITS)
    if value.has(sympy.I):
        return "has a complex value (a root or log of a negative number)"
    if not value.is_Number or value.is_finite is not True:
        return "has no finite value (a division by zero, a log of zero or a pole)"
    size = abs(value)
    if size > MAX_MAGNITUDE:
        return f"is about {_about(size)}, beyond the limit of {_text(MAX_MAGNITUDE)} in magnitude"
    if 0 < size < 1 / MAX_MAGNITUDE:
        return (f"is about {_about(size)}, below the smallest magnitude allowed, {_text(1 / MAX_MAGNITUDE)}"
                " (write 0 if zero is meant)")
    return None


def inexact(expr: sympy.Expr) -> sympy.Expr:
    """`expr` with every integer or fraction whose numerator or denominator exceeds MAX_EXACT
    replaced by its 15-digit float."""
    big = {r: sympy.Float(r, DIGITS) for r in expr.atoms(sympy.Rational)
           if max(abs(r.p), abs(r.q)) > MAX_EXACT}
    return expr.xreplace(big) if big else expr


def exponent_problem(base: sympy.Expr, exponent: sympy.Expr) -> str | None:
    """Why base**exponent is not allowed (a constant exponent beyond MAX_EXPONENT on a base in
    x or a parameter), or None."""
    if base.free_symbols and not exponent.free_symbols:
        value = exponent.evalf(DIGITS)  # a bounded constant (see constant_problem)
        if value.is_Number and abs(value) > MAX_EXPONENT:
            return (f"has the exponent {sympy.sstr(exponent)}, beyond the limit |exponent| <= {MAX_EXPONENT}"
                    " for a power of an expression in x or a parameter")
    return None


def operations(expr: sympy.Basic) -> int:
    """Operations needed to evaluate `expr` once, each distinct sub-expression counted once:
    a node of k arguments is k - 1 operations (a sum of k terms, say), and at least 1."""
    seen: set[sympy.Basic] = set()
    stack = [expr]
    total = 0
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.args:
            total += max(1, len(node.args) - 1)
            stack.extend(node.args)
    return total


def operations_problem(expr: sympy.Basic, what: str) -> str | None:
    """Why `expr` (described as `what`, e.g. 'its derivative') is too large to evaluate, or None."""
    count = operations(expr)
    if count > MAX_OPERATIONS:
        return f"{what} needs {count} operations, more than the limit of {MAX_OPERATIONS}"
    return None
