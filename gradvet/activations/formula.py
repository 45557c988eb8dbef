"""Activation functions written as formulas in x, parsed safely.

A user writes an activation as text, for example ``"x*tanh(log(1+exp(x)))"``
or ``"where(x > 0, x, alpha*(exp(x) - 1))"``. This module

* parses the text into a SymPy expression (`parse`) WITHOUT evaluating it as
  Python: the text goes through ``ast.parse`` and a small walker that accepts
  only numbers, ``x``, declared parameters, ``pi``, ``e``, arithmetic and the
  functions in `FUNCTIONS`; every SymPy object is built with its constructor,
  one step at a time, each step kept within the limits of
  `activations.formula_limits` (no constant beyond 1e300, no exact number
  beyond 2**16, no huge exponent, bounded nesting and size);
* differentiates it symbolically (`derivative`) and simplifies it for display
  (`simplified`);
* prints it back as text in the same grammar (`to_text`) or as LaTeX
  (`to_latex`);
* turns it into a torch function (`compile_torch`): one step per distinct
  sub-expression, so a shared part (the inner tanh of tanh(tanh(x)) and its
  derivative) is computed once per call.

Conventions: ``step(0) = 1/2`` (SymPy's Heaviside); the derivative of a jump
(SymPy's DiracDelta) is taken to be 0; ``log(1 + exp(u))`` is rewritten to
``softplus(u)`` and ``1/(1 + exp(u))`` to ``sigmoid(-u)`` so that large inputs
do not overflow.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence

import sympy
import torch

from gradvet.activations import formula_limits as limits
from gradvet.activations.formula_limits import MAX_DEPTH, MAX_LENGTH
from gradvet.base.errors import GradvetError, unknown_name

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "X",
    "compile_torch",
    "derivative",
    "parse",
    "sigmoid",
    "simplified",
    "softplus",
    "to_latex",
    "to_text",
]

X = sympy.Symbol("x", real=True)
"""The variable of every formula (real, so that |x| differentiates to sign(x))."""

_SIMPLIFY_MAX_OPS = 12
"""`simplified` runs the full (slow) sympy.simplify only below this many operations."""


# --------------------------------------------------------------------------
# Numerically stable custom functions
# --------------------------------------------------------------------------


class _PositiveFunction(sympy.Function):
    """A one-argument function, real and positive for real arguments, printed in
    LaTeX as `latex_name`; numeric values come from its explicit form."""

    nargs = 1
    latex_name = ""

    def explicit(self) -> sympy.Expr:
        raise NotImplementedError

    def _eval_evalf(self, prec: int) -> sympy.Expr:
        return self.explicit()._eval_evalf(prec)

    def _eval_is_extended_real(self) -> bool | None:
        return self.args[0].is_extended_real

    def _eval_is_positive(self) -> bool | None:
        return True if self.args[0].is_extended_real else None

    def _latex(self, printer: sympy.printing.latex.LatexPrinter, exp: str | None = None) -> str:
        power = f"^{{{exp}}}" if exp else ""
        return rf"{self.latex_name}{power}\left({printer._print(self.args[0])}\right)"


class sigmoid(_PositiveFunction):  # noqa: N801  (lower case like sympy.exp)
    """The logistic function 1 / (1 + exp(-u)); its derivative is sigmoid*(1 - sigmoid)."""

    latex_name = r"\sigma"

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        """d sigmoid(u) / du = sigmoid(u) * (1 - sigmoid(u))."""
        s = sigmoid(self.args[0])
        return s * (1 - s)

    def explicit(self) -> sympy.Expr:
        return 1 / (1 + sympy.exp(-self.args[0]))

    def _eval_rewrite_as_exp(self, arg: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return 1 / (1 + sympy.exp(-arg))


class softplus(_PositiveFunction):  # noqa: N801
    """log(1 + exp(u)), computed without overflow; its derivative is sigmoid(u)."""

    latex_name = r"\operatorname{softplus}"

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        """d softplus(u) / du = sigmoid(u)."""
        return sigmoid(self.args[0])

    def explicit(self) -> sympy.Expr:
        return sympy.log(1 + sympy.exp(self.args[0]))

    def _eval_rewrite_as_log(self, arg: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return sympy.log(1 + sympy.exp(arg))


# --------------------------------------------------------------------------
# The grammar: functions a formula may call
# --------------------------------------------------------------------------


def _unary(f: Callable[[sympy.Expr], sympy.Expr]) -> tuple[int, Callable[..., sympy.Expr]]:
    return 1, f


_BUILDERS: dict[str, tuple[int, Callable[..., sympy.Expr]]] = {
    "exp": _unary(sympy.exp),
    "log": _unary(sympy.log),
    "log1p": _unary(lambda u: sympy.log(1 + u)),
    "expm1": _unary(lambda u: sympy.exp(u) - 1),
    "sqrt": _unary(sympy.sqrt),
    "abs": _unary(sympy.Abs),
    "sign": _unary(sympy.sign),
    "sin": _unary(sympy.sin),
    "cos": _unary(sympy.cos),
    "tan": _unary(sympy.tan),
    "sinh": _unary(sympy.sinh),
    "cosh": _unary(sympy.cosh),
    "tanh": _unary(sympy.tanh),
    "asinh": _unary(sympy.asinh),
    "atan": _unary(sympy.atan),
    "arctan": _unary(sympy.atan),
    "erf": _unary(sympy.erf),
    "sigmoid": _unary(sigmoid),
    "softplus": _unary(softplus),
    "relu": _unary(lambda u: sympy.Max(0, u)),
    "step": _unary(sympy.Heaviside),
    "max": (2, sympy.Max),
    "min": (2, sympy.Min),
    "where": (3, lambda c, a, b: sympy.Piecewise((a, c), (b, True))),
    "clip": (3, lambda u, lo, hi: sympy.Min(sympy.Max(u, lo), hi)),
}

FUNCTIONS: tuple[str, ...] = tuple(sorted(_BUILDERS))
"""The function names a formula may call, sorted."""

_CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "e": sympy.E}

_BINARY: dict[type[ast.operator], Callable[[sympy.Expr, sympy.Expr], sympy.Expr]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}

_FORBIDDEN_OPERATORS: dict[type[ast.AST], str] = {
    ast.FloorDiv: "'//'",
    ast.Mod: "'%'",
    ast.MatMult: "'@'",
    ast.BitOr: "'|' (inside a where condition use 'or')",
    ast.BitAnd: "'&' (inside a where condition use 'and')",
    ast.BitXor: "'^' (use ** for powers)",
    ast.LShift: "'<<'",
    ast.RShift: "'>>'",
    ast.Invert: "'~'",
}

_COMPARISONS: dict[type[ast.cmpop], Callable[[sympy.Expr, sympy.Expr], sympy.Basic]] = {
    ast.Lt: sympy.Lt,
    ast.LtE: sympy.Le,
    ast.Gt: sympy.Gt,
    ast.GtE: sympy.Ge,
    ast.Eq: sympy.Eq,
    ast.NotEq: sympy.Ne,
}

_KIND_NAMES: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "a subscript",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Set: "a set",
    ast.Dict: "a dictionary",
    ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string",
    ast.NamedExpr: "an assignment (:=)",
    ast.Starred: "a starred argument",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "a slice",
}


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def _quote(text: str, limit: int = 80) -> str:
    """`text` as a one-line repr, shortened to about `limit` characters."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def _hint(params: Sequence[str]) -> str:
    """What a formula may contain, for the end of an error message."""
    names = "x, numbers, pi, e"
    if params:
        names += ", the parameters " + ", ".join(params)
    return (
        f"a formula may use {names}, + - * / **, and the functions "
        + ", ".join(FUNCTIONS)
        + " (comparisons < <= > >= == != with and/or/not only as the condition of where)"
    )


def _check_params(params: Iterable[str]) -> tuple[str, ...]:
    """The parameter names as a tuple; each must be a plain, unused identifier."""
    if isinstance(params, str):
        params = (params,)
    names = tuple(params)
    for name in names:
        if (
            not isinstance(name, str)
            or not name.isidentifier()
            or name.startswith("__")
            or name in ("x", *_CONSTANTS, *FUNCTIONS)
        ):
            raise GradvetError(
                f"parameter name {name!r} is not allowed; a parameter must be an identifier"
                " other than x, pi, e, a function name or a __dunder__ name"
            )
    return names


class _Builder:
    """Walks a Python syntax tree and builds the SymPy expression, rejecting anything else."""

    def __init__(self, text: str, params: tuple[str, ...]) -> None:
        self.text = text
        self.params = params
        self.symbols = {name: sympy.Symbol(name, real=True) for name in params}

    # -- errors ------------------------------------------------------------

    def segment(self, node: ast.AST) -> str:
        """The source text of `node` (unparsed if the source is unavailable)."""
        part = ast.get_source_segment(self.text, node)
        return part if part is not None else ast.unparse(node)

    def fail(self, problem: str) -> GradvetError:
        """An error naming the formula and the problem, ending with what is allowed."""
        return GradvetError(f"formula {_quote(self.text)}: {problem}; {_hint(self.params)}")

    def not_allowed(self, node: ast.AST, what: str) -> GradvetError:
        """An error saying that `what`, the construct at `node`, is not allowed."""
        return self.fail(f"{what} ({_quote(self.segment(node))}) is not allowed")

    def bad_operator(self, node: ast.BinOp | ast.UnaryOp) -> GradvetError:
        """An error naming a forbidden operator and where it is."""
        return self.fail(
            f"the operator {_FORBIDDEN_OPERATORS[type(node.op)]} in"
            f" {_quote(self.segment(node))} is not allowed"
        )

    def too_large(self, problem: str) -> GradvetError:
        """An error naming the formula and the limit it passes (the grammar is not the issue)."""
        return GradvetError(f"formula {_quote(self.text)}: {problem}")

    def too_deep(self, node: ast.AST) -> GradvetError:
        return self.too_large(
            f"it is nested more than {MAX_DEPTH} levels deep (at {_quote(self.segment(node))})"
        )

    # -- limits --------------------------------------------------------------

    def bounded(self, node: ast.AST, expr: sympy.Expr) -> sympy.Expr:
        """`expr`, just built for `node`, checked against `formula_limits` before anything is
        built on it: a constant must be real, finite and of bounded magnitude, a power of an
        expression in x must have a bounded exponent; big exact numbers become floats."""
        if not expr.free_symbols:
            problem = limits.constant_problem(expr)
            if problem:
                raise self.too_large(f"the constant {_quote(self.segment(node))} {problem}")
        for power in expr.atoms(sympy.Pow):
            problem = limits.exponent_problem(power.base, power.exp)
            if problem:
                raise self.too_large(
                    f"{_quote(self.segment(node))} {problem}"
                    + ("" if power == expr else f" (in {_quote(sympy.sstr(power))})")
                )
        return limits.inexact(expr)

    # -- values --------------------------------------------------------------

    def value(self, node: ast.AST, depth: int) -> sympy.Expr:
        """A numeric sub-expression."""
        if depth > MAX_DEPTH:
            raise self.too_deep(node)
        if isinstance(node, ast.Constant):
            return self.bounded(node, self.constant(node))
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp):
            return self.binary(node, depth)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return self.bounded(node, -self.value(node.operand, depth + 1))
            if isinstance(node.op, ast.UAdd):
                return self.value(node.operand, depth + 1)
            if isinstance(node.op, ast.Not):
                raise self.fail(
                    f"'not' ({_quote(self.segment(node))}) can only be used in the condition of"
                    " where(condition, a, b)"
                )
            raise self.bad_operator(node)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            raise self.fail(
                f"the condition {_quote(self.segment(node))} can only be used as the condition of"
                " where(condition, a, b)"
            )
        if isinstance(node, ast.IfExp):
            raise self.fail(
                f"conditional expressions ({_quote(self.segment(node))}) are not allowed,"
                " write where(condition, a, b) instead"
            )
        what = _KIND_NAMES.get(type(node), f"the construct {type(node).__name__}")
        raise self.not_allowed(node, what)

    def constant(self, node: ast.Constant) -> sympy.Expr:
        """An int or a finite float literal."""
        value = node.value
        if isinstance(value, bool) or value is None or value is Ellipsis:
            raise self.fail(f"the constant {_quote(self.segment(node))} is not allowed")
        if isinstance(value, int):
            return sympy.Integer(value)
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise self.not_allowed(node, "a number too large for floating point")
            return sympy.Float(value)
        if isinstance(value, complex):
            raise self.not_allowed(node, "a complex number")
        raise self.not_allowed(node, "a string")

    def name(self, node: ast.Name) -> sympy.Expr:
        """x, a declared parameter, pi or e."""
        ident = node.id
        if ident == "x":
            return X
        if ident in self.symbols:
            return self.symbols[ident]
        if ident in _CONSTANTS:
            return _CONSTANTS[ident]
        if ident.startswith("__"):
            raise self.fail(f"the name {ident!r} is not allowed")
        if ident in _BUILDERS:
            raise self.fail(f"{ident!r} is a function, call it as {ident}(...)")
        known = ["x", *self.params, *_CONSTANTS, *FUNCTIONS]
        raise self.fail(unknown_name("name", ident, known))

    def binary(self, node: ast.BinOp, depth: int) -> sympy.Expr:
        """+ - * / **; a left-leaning chain like a + b - c is walked without recursion."""
        if type(node.op) not in _BINARY:
            raise self.bad_operator(node)
        if isinstance(node.op, ast.Pow):
            base = self.value(node.left, depth + 1)
            exponent = self.value(node.right, depth + 1)
            problem = limits.exponent_problem(base, exponent)
            if problem:  # before SymPy multiplies out (2*x)**n into 2**n * x**n
                raise self.too_large(f"{_quote(self.segment(node))} {problem}")
            return self.bounded(node, base**exponent)
        additive = isinstance(node.op, (ast.Add, ast.Sub))
        group = (ast.Add, ast.Sub) if additive else (ast.Mult, ast.Div)
        chain: list[ast.BinOp] = []
        left: ast.AST = node
        while isinstance(left, ast.BinOp) and isinstance(left.op, group):
            chain.append(left)
            left = left.left
        result = self.value(left, depth + 1)
        for step in reversed(chain):
            right = self.value(step.right, depth + 1)
            result = self.bounded(step, _BINARY[type(step.op)](result, right))
        return result

    def call(self, node: ast.Call, depth: int) -> sympy.Expr:
        """f(args) with f in FUNCTIONS, the right number of positional arguments, no keywords."""
        if not isinstance(node.func, ast.Name):
            raise self.fail(
                f"calling {_quote(self.segment(node.func))} is not allowed, only the named"
                " functions can be called"
            )
        fname = node.func.id
        if fname not in _BUILDERS:
            if fname.startswith("__"):
                raise self.fail(f"the name {fname!r} is not allowed")
            raise self.fail(unknown_name("function", fname, FUNCTIONS))
        if node.keywords:
            raise self.not_allowed(node.keywords[0], "a keyword argument")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.not_allowed(arg, "a starred argument")
        arity, build = _BUILDERS[fname]
        if len(node.args) != arity:
            plural = "argument" if arity == 1 else "arguments"
            raise self.fail(
                f"{fname} takes {arity} {plural} but {_quote(self.segment(node))} gives"
                f" {len(node.args)}"
            )
        if fname == "where":
            args = [self.condition(node.args[0], depth + 1)]
            args += [self.value(arg, depth + 1) for arg in node.args[1:]]
        else:
            args = [self.value(arg, depth + 1) for arg in node.args]
        return self.bounded(node, build(*args))

    # -- conditions ----------------------------------------------------------

    def condition(self, node: ast.AST, depth: int) -> sympy.Basic:
        """The first argument of where: a comparison, possibly combined with and/or/not."""
        if depth > MAX_DEPTH:
            raise self.too_deep(node)
        if isinstance(node, ast.BoolOp):
            parts = [self.condition(v, depth + 1) for v in node.values]
            return sympy.And(*parts) if isinstance(node.op, ast.And) else sympy.Or(*parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return sympy.Not(self.condition(node.operand, depth + 1))
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise self.fail(
                    f"the chained comparison {_quote(self.segment(node))} is not allowed,"
                    " write (a < x) and (x < b) instead"
                )
            op = type(node.ops[0])
            if op not in _COMPARISONS:
                raise self.not_allowed(node, "the comparison")
            left = self.value(node.left, depth + 1)
            right = self.value(node.comparators[0], depth + 1)
            return _COMPARISONS[op](left, right)
        raise self.fail(
            f"the condition of where must be a comparison such as x > 0, not"
            f" {_quote(self.segment(node))}"
        )


def parse(text: str, params: Iterable[str] = ()) -> sympy.Expr:
    """The SymPy expression of formula `text` in x and the parameters `params`.

    Raises GradvetError, with one sentence naming the offending part, for
    anything outside the grammar. The text is never evaluated as Python.
    """
    names = _check_params(params)
    if not isinstance(text, str):
        raise GradvetError(f"a formula must be text, not {type(text).__name__}")
    source = text.strip()
    if not source:
        raise GradvetError(f"formula {_quote(text)} is empty; {_hint(names)}")
    if len(source) > MAX_LENGTH:
        raise GradvetError(
            f"formula {_quote(source, 40)} is {len(source)} characters long, more than the"
            f" limit of {MAX_LENGTH}"
        )
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        raise GradvetError(
            f"formula {_quote(source)} is not a valid formula ({err.msg}); {_hint(names)}"
        ) from None
    except (ValueError, RecursionError, MemoryError):
        raise GradvetError(
            f"formula {_quote(source)} is not a valid formula (too deeply nested or unreadable)"
        ) from None
    builder = _Builder(source, names)
    nodes = limits.syntax_nodes(tree)
    if nodes > limits.MAX_NODES:
        raise builder.too_large(
            f"it has {nodes} syntax elements, more than the limit of {limits.MAX_NODES}"
        )
    try:
        expr = builder.value(tree.body, 0)
    except GradvetError:
        raise
    except (RecursionError, MemoryError):
        raise builder.fail("it is too deeply nested or too large") from None
    except (TypeError, ValueError, ArithmeticError) as err:
        raise builder.fail(f"it cannot be built ({type(err).__name__})") from None
    if expr.has(sympy.zoo, sympy.nan):
        raise builder.fail("it divides by zero, so its value is undefined")
    if expr.has(sympy.I):
        raise builder.fail("it has a complex value (a root or log of a negative number)")
    problem = limits.operations_problem(expr, "it")
    if problem:
        raise builder.too_large(problem)
    return _stabilize(expr)


# --------------------------------------------------------------------------
# Rewrites, derivative, display
# --------------------------------------------------------------------------


def _exp_argument_of_one_plus_exp(expr: sympy.Basic) -> sympy.Expr | None:
    """u when `expr` is 1 + exp(u), else None."""
    if isinstance(expr, sympy.Add) and len(expr.args) == 2 and sympy.S.One in expr.args:
        other = expr.args[0] if expr.args[1] == sympy.S.One else expr.args[1]
        if isinstance(other, sympy.exp):
            return other.args[0]
    return None


def _is_log_one_plus_exp(expr: sympy.Basic) -> bool:
    return isinstance(expr, sympy.log) and _exp_argument_of_one_plus_exp(expr.args[0]) is not None


def _is_inverse_one_plus_exp(expr: sympy.Basic) -> bool:
    return (
        isinstance(expr, sympy.Pow)
        and expr.exp == -1
        and _exp_argument_of_one_plus_exp(expr.base) is not None
    )


def _stabilize(expr: sympy.Expr) -> sympy.Expr:
    """Rewrite log(1 + exp(u)) to softplus(u) and 1/(1 + exp(u)) to sigmoid(-u)."""
    expr = expr.replace(
        _is_log_one_plus_exp, lambda e: softplus(_exp_argument_of_one_plus_exp(e.args[0]))
    )
    return expr.replace(
        _is_inverse_one_plus_exp, lambda e: sigmoid(-_exp_argument_of_one_plus_exp(e.base))
    )


def derivative(expr: sympy.Expr) -> sympy.Expr:
    """d expr / dx, with the same stabilizing rewrites as `parse`; a GradvetError when it needs
    more than `formula_limits.MAX_OPERATIONS` operations."""
    d = sympy.diff(expr, X)
    problem = limits.operations_problem(d, "its derivative")
    if problem:
        raise GradvetError(f"formula {_quote(to_text(expr))}: {problem}")
    return _stabilize(d)


def _tanh_argument_of_one_minus_tanh_squared(expr: sympy.Basic) -> sympy.Expr | None:
    """u when `expr` is 1 - tanh(u)**2, else None."""
    if isinstance(expr, sympy.Add) and len(expr.args) == 2 and sympy.S.One in expr.args:
        other = expr.args[0] if expr.args[1] == sympy.S.One else expr.args[1]
        square = -other
        if (
            isinstance(square, sympy.Pow)
            and square.exp == 2
            and isinstance(square.base, sympy.tanh)
        ):
            return square.base.args[0]
    return None


def _sech_squared(expr: sympy.Expr) -> sympy.Expr:
    """Rewrite 1 - tanh(u)**2 to 1/cosh(u)**2 (what sympy.simplify finds, but cheaply)."""
    return expr.replace(
        lambda e: _tanh_argument_of_one_minus_tanh_squared(e) is not None,
        lambda e: 1 / sympy.cosh(_tanh_argument_of_one_minus_tanh_squared(e)) ** 2,
    )


def simplified(expr: sympy.Expr) -> sympy.Expr:
    """A simpler equal form for display: the candidate with the fewest operations.

    sympy.simplify takes 0.3 s on the derivative of mish (10 operations) and
    up to about 1 s on other expressions of 12 operations, but minutes on
    some of 40, so it runs only up to _SIMPLIFY_MAX_OPS operations. Every
    expression also gets cheap rewrites: 1 - tanh(u)**2 -> 1/cosh(u)**2, then
    sympy.together and sympy.factor_terms.
    """
    rewritten = _sech_squared(expr)
    candidates = [expr, rewritten, sympy.factor_terms(sympy.together(rewritten))]
    if sympy.count_ops(expr) <= _SIMPLIFY_MAX_OPS:
        candidates.append(sympy.simplify(expr))
    return min(candidates, key=sympy.count_ops)


class _TextPrinter(sympy.printing.str.StrPrinter):
    """Prints an expression in the formula grammar, so that `parse` reads it back."""

    def _print_Float(self, expr: sympy.Float) -> str:
        return repr(float(expr))

    def _print_Exp1(self, expr: sympy.Basic) -> str:
        return "e"

    def _print_Abs(self, expr: sympy.Abs) -> str:
        return f"abs({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr: sympy.Heaviside) -> str:
        u = self._print(expr.args[0])
        h0 = expr.args[1] if len(expr.args) > 1 else sympy.Rational(1, 2)
        if h0 == sympy.Rational(1, 2):
            return f"step({u})"
        return f"where({u} > 0, 1, where({u} < 0, 0, {self._print(h0)}))"

    def _print_MinMax(self, name: str, args: Sequence[sympy.Expr]) -> str:
        if len(args) == 1:
            return self._print(args[0])
        return f"{name}({self._print(args[0])}, {self._print_MinMax(name, args[1:])})"

    def _print_Max(self, expr: sympy.Max) -> str:
        return self._print_MinMax("max", expr.args)

    def _print_Min(self, expr: sympy.Min) -> str:
        return self._print_MinMax("min", expr.args)

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        *pieces, (last, last_cond) = expr.args
        if last_cond != sympy.true:
            raise GradvetError(
                f"the piecewise expression {expr} has no otherwise branch and cannot be written"
                " as where(...)"
            )
        text = self._print(last)
        for value, cond in reversed(pieces):
            text = f"where({self._print(cond)}, {self._print(value)}, {text})"
        return text

    def _print_Relational(self, expr: sympy.core.relational.Relational) -> str:
        return f"{self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)}"

    def _print_And(self, expr: sympy.And) -> str:
        return " and ".join(f"({self._print(a)})" for a in expr.args)

    def _print_Or(self, expr: sympy.Or) -> str:
        return " or ".join(f"({self._print(a)})" for a in expr.args)

    def _print_Not(self, expr: sympy.Not) -> str:
        return f"not ({self._print(expr.args[0])})"

    def _print_BooleanTrue(self, expr: sympy.Basic) -> str:
        return "0 == 0"

    def _print_BooleanFalse(self, expr: sympy.Basic) -> str:
        return "0 != 0"

    def _reciprocal(self, name: str, expr: sympy.Function) -> str:
        return f"(1/{name}({self._print(expr.args[0])}))"

    def _print_sech(self, expr: sympy.Function) -> str:
        return self._reciprocal("cosh", expr)

    def _print_csch(self, expr: sympy.Function) -> str:
        return self._reciprocal("sinh", expr)

    def _print_coth(self, expr: sympy.Function) -> str:
        return self._reciprocal("tanh", expr)

    def _print_sec(self, expr: sympy.Function) -> str:
        return self._reciprocal("cos", expr)

    def _print_csc(self, expr: sympy.Function) -> str:
        return self._reciprocal("sin", expr)

    def _print_cot(self, expr: sympy.Function) -> str:
        return self._reciprocal("tan", expr)


def to_text(expr: sympy.Expr) -> str:
    """`expr` as formula text that `parse` reads back (jumps' DiracDelta terms become 0)."""
    expr = expr.replace(lambda e: isinstance(e, sympy.DiracDelta), lambda e: sympy.S.Zero)
    return _TextPrinter().doprint(expr)


def to_latex(expr: sympy.Expr) -> str:
    r"""LaTeX of `expr`; sigmoid prints as \sigma(u), softplus as \operatorname{softplus}(u)."""
    return sympy.latex(expr)


# --------------------------------------------------------------------------
# Compiling to torch
# --------------------------------------------------------------------------

Step = tuple[Callable[..., torch.Tensor], tuple[int, ...]]
"""One compiled operation: a function of x and of the results of earlier steps (their indices)."""


def _softplus(u: torch.Tensor) -> torch.Tensor:
    # torch.nn.functional.softplus returns u itself above u = 20, which is off by
    # exp(-20) ~ 2e-9 and has gradient exactly 1; logaddexp(u, 0) is stable and exact.
    return torch.logaddexp(u, torch.zeros((), dtype=u.dtype, device=u.device))


_UNARY: dict[type[sympy.Basic], Callable[[torch.Tensor], torch.Tensor]] = {
    sympy.exp: torch.exp,
    sympy.log: torch.log,
    sympy.sin: torch.sin,
    sympy.cos: torch.cos,
    sympy.tan: torch.tan,
    sympy.sinh: torch.sinh,
    sympy.cosh: torch.cosh,
    sympy.tanh: torch.tanh,
    sympy.asinh: torch.asinh,
    sympy.atan: torch.atan,
    sympy.erf: torch.erf,
    sympy.Abs: torch.abs,
    sympy.sign: torch.sign,
    sympy.sech: lambda u: 1 / torch.cosh(u),
    sympy.csch: lambda u: 1 / torch.sinh(u),
    sympy.coth: lambda u: 1 / torch.tanh(u),
    sympy.sec: lambda u: 1 / torch.cos(u),
    sympy.csc: lambda u: 1 / torch.sin(u),
    sympy.cot: lambda u: 1 / torch.tan(u),
    sigmoid: torch.sigmoid,
    softplus: _softplus,
    sympy.Not: torch.logical_not,
}

_FOLDS: dict[type[sympy.Basic], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    sympy.Add: torch.add,
    sympy.Mul: torch.mul,
    sympy.Max: torch.maximum,
    sympy.Min: torch.minimum,
    sympy.And: torch.logical_and,
    sympy.Or: torch.logical_or,
}

_RELATIONS: dict[type[sympy.Basic], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    sympy.StrictGreaterThan: torch.gt,
    sympy.GreaterThan: torch.ge,
    sympy.StrictLessThan: torch.lt,
    sympy.LessThan: torch.le,
    sympy.Equality: torch.eq,
    sympy.Unequality: torch.ne,
}


def _constant(value: float | bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """A 0-dim tensor of x's dtype (or bool) and device, which broadcasts to x."""
    if isinstance(value, bool):
        return lambda x: torch.tensor(value, dtype=torch.bool, device=x.device)
    return lambda x: torch.tensor(value, dtype=x.dtype, device=x.device)


def _unary(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
    return lambda x, u: f(u)


def _fold(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
    return lambda x, *args: functools.reduce(f, args)


def _zeros(x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


class _Compiler:
    """Turns a SymPy expression into a list of `Step`s, one per distinct sub-expression, in an
    order where every step comes after the steps it uses; the last step is the expression."""

    def __init__(self, values: Mapping[str, float]) -> None:
        self.values = values
        self.steps: list[Step] = []
        self.index: dict[sympy.Basic, int] = {}

    def slot(self, expr: sympy.Basic) -> int:
        """The index of the step computing `expr`, compiled on first sight."""
        if expr not in self.index:
            fn, args = self.step(expr)
            self.steps.append((fn, tuple(args)))
            self.index[expr] = len(self.steps) - 1
        return self.index[expr]

    def step(self, expr: sympy.Basic) -> tuple[Callable[..., torch.Tensor], list[int]]:
        """The function computing `expr` and the indices of the steps it takes as arguments."""
        if expr is sympy.true or expr is sympy.false:
            return _constant(bool(expr)), []
        if isinstance(expr, sympy.Expr) and not expr.free_symbols:
            try:
                return _constant(float(expr)), []
            except OverflowError:
                return _constant(float(expr.evalf())), []  # a huge number: +-inf
            except (TypeError, ValueError):
                pass  # e.g. DiracDelta(0): handled below
        if isinstance(expr, sympy.Symbol):
            if expr.name == "x":
                return (lambda x: x), []
            return _constant(float(self.values[expr.name])), []
        kind = type(expr)
        if kind is sympy.Pow:
            return self.power(expr)
        if kind is sympy.Add:
            return self.add(expr)
        if kind is sympy.log:
            rest = _one_plus(expr.args[0])
            if rest is not None:
                return _unary(torch.log1p), [self.slot(rest)]
        if kind in _UNARY:
            return _unary(_UNARY[kind]), [self.slot(expr.args[0])]
        if kind in _FOLDS:
            return _fold(_FOLDS[kind]), [self.slot(a) for a in expr.args]
        if kind in _RELATIONS:
            return _fold(_RELATIONS[kind]), [self.slot(expr.lhs), self.slot(expr.rhs)]
        if kind is sympy.Heaviside:
            return _heaviside(expr), [self.slot(expr.args[0])]
        if kind is sympy.DiracDelta:
            return _zeros, []  # the derivative at a jump is taken to be 0
        if kind is sympy.Piecewise:
            return _piecewise, [self.slot(part) for pair in expr.args for part in pair]
        raise GradvetError(f"cannot compile {kind.__name__} ({_quote(str(expr))}) to torch")

    def power(self, expr: sympy.Pow) -> tuple[Callable[..., torch.Tensor], list[int]]:
        base, exponent = expr.args
        if base is sympy.E:
            return _unary(torch.exp), [self.slot(exponent)]
        b = [self.slot(base)]
        if exponent.is_Integer:
            n = int(exponent)
            if n == 2:
                return _unary(torch.square), b
            if n == -1:
                return _unary(torch.reciprocal), b
            return (lambda x, u: torch.pow(u, n)), b
        if exponent == sympy.Rational(1, 2):
            return _unary(torch.sqrt), b
        if exponent == sympy.Rational(-1, 2):
            return _unary(torch.rsqrt), b
        if not exponent.free_symbols:
            p = float(exponent)
            return (lambda x, u: torch.pow(u, p)), b
        return _fold(torch.pow), b + [self.slot(exponent)]

    def add(self, expr: sympy.Add) -> tuple[Callable[..., torch.Tensor], list[int]]:
        """A sum; a pair exp(u) - 1 inside it is computed as expm1(u)."""
        args = list(expr.args)
        if sympy.S.NegativeOne in args:
            for term in args:
                if isinstance(term, sympy.exp):
                    args.remove(sympy.S.NegativeOne)
                    args.remove(term)
                    return _expm1_plus, [self.slot(term.args[0]), *(self.slot(a) for a in args)]
        return _fold(torch.add), [self.slot(a) for a in args]


def _expm1_plus(x: torch.Tensor, u: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
    """expm1(u) plus the other terms of a sum."""
    return functools.reduce(torch.add, rest, torch.expm1(u))


def _one_plus(arg: sympy.Expr) -> sympy.Expr | None:
    """u when `arg` is 1 + u (so that log(1 + u) can use log1p(u)), else None."""
    if isinstance(arg, sympy.Add) and sympy.S.One in arg.args:
        rest = list(arg.args)
        rest.remove(sympy.S.One)
        return sympy.Add(*rest)
    return None


def _heaviside(expr: sympy.Heaviside) -> Callable[..., torch.Tensor]:
    """step(u): 1 above 0, 0 below, SymPy's H(0) (default 1/2) at 0."""
    h0 = float(expr.args[1]) if len(expr.args) > 1 else 0.5

    def step(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        one, zero, half = (torch.tensor(v, dtype=t.dtype, device=t.device) for v in (1.0, 0.0, h0))
        return torch.where(t > 0, one, torch.where(t < 0, zero, half))

    return step


def _piecewise(x: torch.Tensor, *parts: torch.Tensor) -> torch.Tensor:
    """Nested torch.where over (value, condition) pairs tried in order; NaN where none holds."""
    result = torch.tensor(float("nan"), dtype=x.dtype, device=x.device)
    for i in range(len(parts) - 2, -1, -2):
        result = torch.where(parts[i + 1], parts[i], result)
    return result


def _last_uses(steps: Sequence[Step]) -> list[tuple[int, ...]]:
    """For each step, the earlier results it is the last to use (freed once it has run)."""
    last: dict[int, int] = {}
    for i, (_, args) in enumerate(steps):
        for a in args:
            last[a] = i
    frees: list[list[int]] = [[] for _ in steps]
    for a, i in last.items():
        frees[i].append(a)
    return [tuple(f) for f in frees]


def _zero_gradient(x: torch.Tensor) -> torch.Tensor:
    """0 everywhere, with x in its autograd graph and gradient 0 (inf * 0 is avoided)."""
    return torch.where(torch.isfinite(x), x, 0.0) * 0.0


def compile_torch(
    expr: sympy.Expr, values: Mapping[str, float] = {}  # noqa: B006  (never mutated)
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A torch function computing `expr` elementwise, with parameters set from `values`.

    Each distinct sub-expression is computed once per call (f' of tanh(tanh(...(x))), 64 deep,
    is 64 tanh calls, not 2,080), and a result is freed after its last use. Parameters are
    torch constants, never substituted into SymPy (which could evaluate huge numbers exactly).
    The result has the shape and dtype of the input (integer inputs are first converted to the
    default float dtype), also for constant formulas, and supports autograd: where f does not
    depend on x (a constant, a step), autograd gives f' = 0, as `derivative` does. Raises
    GradvetError for a missing parameter value or a SymPy node that has no torch counterpart.
    Extra entries in `values` are ignored.
    """
    missing = sorted(s.name for s in expr.free_symbols if s.name != "x" and s.name not in values)
    if missing:
        raise GradvetError(
            "the formula needs values for the parameters " + ", ".join(repr(m) for m in missing)
        )
    compiler = _Compiler(values)
    compiler.slot(expr)
    steps = compiler.steps
    frees = _last_uses(steps)

    def fn(x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            x = x.to(torch.get_default_dtype())
        results: list[torch.Tensor | None] = [None] * len(steps)
        for i, (f, args) in enumerate(steps):
            results[i] = f(x, *(results[a] for a in args))
            for a in frees[i]:
                results[a] = None
        out = results[-1]
        if out.dtype != x.dtype:
            out = out.to(x.dtype)
        if out.shape != x.shape:
            out = out.expand(x.shape).clone()
        if x.requires_grad and not out.requires_grad and torch.is_grad_enabled():
            out = out + _zero_gradient(x)
        return out

    return fn
