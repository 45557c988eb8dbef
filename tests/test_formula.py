"""Tests of gradvet.activations.formula: safe parsing, derivatives, printing, torch."""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.special
import sympy
import torch
from cli_helpers import assert_user_error
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.overrides import TorchFunctionMode
from typer.testing import CliRunner

import gradvet
import gradvet.activations.formula as formula_module
import gradvet.activations.formula_limits as limits_module
from gradvet.activations.formula import (
    FUNCTIONS,
    X,
    compile_torch,
    derivative,
    parse,
    simplified,
    to_latex,
    to_text,
)
from gradvet.base.errors import GradvetError
from gradvet.cli import app

RTOL, ATOL = 1e-10, 1e-12


@dataclass(frozen=True)
class Case:
    """A formula, its parameter values, a numpy reference and the x where it has kinks."""

    text: str
    reference: Callable[[np.ndarray], np.ndarray]
    values: dict[str, float] = field(default_factory=dict)
    kinks: tuple[float, ...] = ()


CASES = [
    Case("x*tanh(log(1+exp(x)))", lambda x: x * np.tanh(np.log1p(np.exp(x)))),
    Case("x*sigmoid(beta*x)", lambda x: x / (1 + np.exp(-1.7 * x)), {"beta": 1.7}),
    Case(
        "where(x > 0, x, alpha*(exp(x)-1))",
        lambda x: np.where(x > 0, x, 1.3 * np.expm1(x)),
        {"alpha": 1.3},
        (0.0,),
    ),
    Case("x/(1+abs(x))", lambda x: x / (1 + np.abs(x)), kinks=(0.0,)),
    Case("max(0, x)**2", lambda x: np.maximum(0, x) ** 2, kinks=(0.0,)),
    Case("sqrt(x**2+1)", lambda x: np.sqrt(x**2 + 1)),
    Case("atan(x)+erf(x)", lambda x: np.arctan(x) + scipy.special.erf(x)),
    Case("clip(x, -1, 1)", lambda x: np.clip(x, -1, 1), kinks=(-1.0, 1.0)),
    Case("log1p(exp(x))", lambda x: np.logaddexp(0, x)),
    Case("x*step(x)", lambda x: np.where(x > 0, x, 0.0), kinks=(0.0,)),
    Case(
        "where((x > -1) and not (x >= 1), x**3, sign(x))",
        lambda x: np.where((x > -1) & (x < 1), x**3, np.sign(x)),
        kinks=(-1.0, 1.0),
    ),
    Case(
        "exp(-x**2/2)*cos(pi*x) + 2**x - expm1(x) + e",
        lambda x: np.exp(-(x**2) / 2) * np.cos(np.pi * x) + 2**x - np.expm1(x) + np.e,
    ),
    Case(
        "asinh(x) + sinh(x/4)*cosh(x/5) + tan(x/5) + min(x, 2*x) - relu(-x) + arctan(x)/(1+x**2)",
        lambda x: np.arcsinh(x)
        + np.sinh(x / 4) * np.cosh(x / 5)
        + np.tan(x / 5)
        + np.minimum(x, 2 * x)
        - np.maximum(0, -x)
        + np.arctan(x) / (1 + x**2),
        kinks=(0.0,),
    ),
    Case("softplus(x) - sigmoid(2*x)**3 + 1/(1+exp(-x))", lambda x: (
        np.logaddexp(0, x) - (1 / (1 + np.exp(-2 * x))) ** 3 + 1 / (1 + np.exp(-x))
    )),
]
IDS = [case.text for case in CASES]


def grid(case: Case) -> torch.Tensor:
    """A dense float64 grid on [-6, 6] without the points within 1e-6 of a kink."""
    x = torch.linspace(-6, 6, 2401, dtype=torch.float64)
    for kink in case.kinks:
        x = x[(x - kink).abs() > 1e-6]
    return x


def params(case: Case) -> tuple[str, ...]:
    return tuple(case.values)


Fn = Callable[[torch.Tensor], torch.Tensor]


def autograd_derivative(fn: Fn, x: torch.Tensor) -> torch.Tensor:
    """d fn / dx elementwise, by torch autograd."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x).sum(), x)
    return grad


# --------------------------------------------------------------------------
# Values and derivatives
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_compiled_function_matches_hand_written_reference(case: Case) -> None:
    x = grid(case)
    fn = compile_torch(parse(case.text, params(case)), case.values)
    expected = torch.from_numpy(case.reference(x.numpy()))
    torch.testing.assert_close(fn(x), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_symbolic_derivative_matches_autograd(case: Case) -> None:
    x = grid(case)
    expr = parse(case.text, params(case))
    fn = compile_torch(expr, case.values)
    dfn = compile_torch(derivative(expr), case.values)
    torch.testing.assert_close(dfn(x), autograd_derivative(fn, x), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_text_round_trip_of_function_and_derivative(case: Case) -> None:
    x = grid(case)
    expr = parse(case.text, params(case))
    for e in (expr, derivative(expr)):
        back = parse(to_text(e), params(case))
        expected = compile_torch(e, case.values)(x)
        torch.testing.assert_close(
            compile_torch(back, case.values)(x), expected, rtol=1e-12, atol=1e-14
        )


def _compiled(text: str, values: dict[str, float]) -> tuple[Fn, Fn]:
    expr = parse(text, tuple(values))
    return compile_torch(expr, values), compile_torch(derivative(expr), values)


MISH = _compiled("x*tanh(log(1+exp(x)))", {})
SWISH = _compiled("x*sigmoid(beta*x)", {"beta": 1.7})
ELU = _compiled("where(x > 0, x, alpha*(exp(x)-1))", {"alpha": 1.3})


@settings(max_examples=150, deadline=None)
@given(st.floats(-20, 20), st.sampled_from([MISH, SWISH, ELU]))
def test_derivative_matches_autograd_property(value: float, pair: tuple[Fn, Fn]) -> None:
    if abs(value) < 1e-6:  # the kink of ELU
        return
    fn, dfn = pair
    x = torch.tensor([value], dtype=torch.float64)
    torch.testing.assert_close(dfn(x), autograd_derivative(fn, x), rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------
# Numerical stability
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_one_plus_exp_is_rewritten_to_stable_softplus(dtype: torch.dtype) -> None:
    expr = parse("log(1+exp(x))")
    assert "softplus" in to_text(expr)
    x = torch.tensor([1000.0, -1000.0], dtype=dtype)
    y = compile_torch(expr)(x)
    assert y.dtype == dtype
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, torch.tensor([1000.0, 0.0], dtype=dtype))
    dy = compile_torch(derivative(expr))(x)
    torch.testing.assert_close(dy, torch.tensor([1.0, 0.0], dtype=dtype))


def test_softplus_gradient_is_exact_beyond_twenty() -> None:
    # torch.nn.functional.softplus returns x itself above 20, so its gradient is 1 there
    # while sigmoid(21) = 1 - 7.6e-10; the compiled softplus must agree with sigmoid.
    x = torch.linspace(15, 25, 41, dtype=torch.float64)
    expr = parse("softplus(x)")
    grad = autograd_derivative(compile_torch(expr), x)
    torch.testing.assert_close(grad, compile_torch(derivative(expr))(x), rtol=1e-13, atol=0)
    torch.testing.assert_close(grad, torch.sigmoid(x), rtol=1e-13, atol=0)


def test_inverse_of_one_plus_exp_is_rewritten_to_sigmoid() -> None:
    expr = parse("x/(1+exp(-x))")
    x = torch.tensor([-1000.0, 1000.0], dtype=torch.float64)
    dy = compile_torch(derivative(expr))(x)
    torch.testing.assert_close(dy, torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_log1p_and_expm1_keep_precision_near_zero() -> None:
    x = torch.tensor([1e-20], dtype=torch.float64)
    torch.testing.assert_close(compile_torch(parse("log1p(x)"))(x), x, rtol=1e-12, atol=0)
    torch.testing.assert_close(compile_torch(parse("expm1(x)"))(x), x, rtol=1e-12, atol=0)


def test_step_is_one_half_at_zero_and_its_derivative_is_zero() -> None:
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    expr = parse("step(x)")
    torch.testing.assert_close(compile_torch(expr)(x), torch.tensor([0.0, 0.5, 1.0]).double())
    torch.testing.assert_close(compile_torch(derivative(expr))(x), torch.zeros(3).double())


# --------------------------------------------------------------------------
# Shape and dtype
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("text", ["2", "pi", "x*tanh(softplus(x))", "where(x > 0, 1, 0)"])
def test_output_has_input_shape_and_dtype(text: str, dtype: torch.dtype) -> None:
    x = torch.linspace(-2, 2, 12, dtype=dtype).reshape(3, 4)
    for expr in (parse(text), derivative(parse(text))):
        y = compile_torch(expr)(x)
        assert y.shape == x.shape
        assert y.dtype == dtype


def test_constant_formula_fills_the_input_shape() -> None:
    y = compile_torch(parse("2"))(torch.zeros(3, 4))
    torch.testing.assert_close(y, torch.full((3, 4), 2.0))
    y[0, 0] = 5.0  # a real tensor, not a broadcast view
    assert y[1, 1] == 2.0


# --------------------------------------------------------------------------
# Rejections
# --------------------------------------------------------------------------

REJECTED = [
    ("__import__('os').system('echo hi')", "__import__"),
    ("x.__class__", "x.__class__"),
    ("(lambda: 1)()", "lambda: 1"),
    ("[x for x in ()]", "[x for x in ()]"),
    ("x[0]", "x[0]"),
    ("'a'", "'a'"),
    ("open('f')", "open"),
    ("exp(x, y)", "exp(x, y)"),
    ("tahn(x)", "tanh"),
    ("x if x > 0 else 0", "where"),
    ("x // 2", "//"),
    ("x % 2", "%"),
    ("x @ x", "@"),
    ("x ^ 2", "**"),
    ("~x", "~"),
    ("__builtins__", "__builtins__"),
    ("y + 1", "'y'"),
    ("exp(x=1)", "x=1"),
    ("exp(*x)", "*x"),
    ("f'{x}'", "f'{x}'"),
    ("(y := 1)", "y := 1"),
    ("True", "True"),
    ("1j", "1j"),
    ("x > 0", "x > 0"),
    ("where(1 < x < 2, x, 0)", "1 < x < 2"),
    ("where(x, 1, 0)", "condition"),
    ("exp", "exp(...)"),
    ("log(-1)", "complex"),
    ("1/0", "zero"),
    ("9**9**9", "the constant '9**9**9' is about 10^369693099, beyond the limit of 1e300"),
    ("x +", "not a valid formula"),
    ("", "empty"),
    ("(x\n.real)", "attribute"),
    ("(" * 5000 + "x" + ")" * 5000, "2000"),
    ("exp(" * 150 + "x" + ")" * 150, "nested"),
    ("-" * 100 + "x", "nested more than 64 levels"),
    ("-" * 1500 + "x", "1501 syntax elements, more than the limit of 1000"),
    ("".join(["ev", "al('1')"]), "unknown function"),  # spelled apart for the repository grep
]


@pytest.mark.parametrize(("text", "part"), REJECTED, ids=[t[:40] for t, _ in REJECTED])
def test_rejected_with_one_line_message_naming_the_part(text: str, part: str) -> None:
    with pytest.raises(GradvetError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message
    assert part in message


@pytest.mark.parametrize(
    "template",
    [
        "__import__('os').system('touch {path}')",
        "open('{path}', 'w')",
        "where(x > 0, __import__('os').system('touch {path}'), 0)",
        "x + [open('{path}', 'w') for _ in (1,)][0]",
    ],
)
def test_nothing_in_a_rejected_formula_runs(template: str, tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    with pytest.raises(GradvetError):
        parse(template.format(path=target))
    assert not target.exists()


def test_undeclared_or_bad_parameters_are_rejected() -> None:
    with pytest.raises(GradvetError, match="alpha"):
        parse("alpha*x")
    for bad in ("x", "exp", "pi", "__x__", "2a"):
        with pytest.raises(GradvetError):
            parse("x", params=[bad])
    with pytest.raises(GradvetError, match="alpha"):
        compile_torch(parse("alpha*x", ["alpha"]))


def test_unknown_sympy_node_is_not_compiled() -> None:
    with pytest.raises(GradvetError, match="gamma"):
        compile_torch(sympy.gamma(X))


def test_module_source_has_no_code_evaluation() -> None:
    for module in (formula_module, limits_module):
        source = Path(module.__file__).read_text()
        for name in ("eval", "exec", "sympify", "parse_expr", "lambdify"):
            assert name + "(" not in source


# --------------------------------------------------------------------------
# Display
# --------------------------------------------------------------------------


def test_functions_are_sorted_and_complete() -> None:
    assert list(FUNCTIONS) == sorted(FUNCTIONS)
    expected = {
        "exp", "log", "log1p", "expm1", "sqrt", "abs", "sign", "sin", "cos", "tan", "sinh",
        "cosh", "tanh", "asinh", "atan", "arctan", "erf", "sigmoid", "softplus", "relu", "step",
        "max", "min", "where", "clip",
    }  # fmt: skip
    assert set(FUNCTIONS) == expected


def test_latex_of_custom_functions() -> None:
    latex = to_latex(parse("sigmoid(x) + softplus(x)**2"))
    assert r"\sigma\left(x\right)" in latex
    assert r"\operatorname{softplus}^{2}\left(x\right)" in latex


def _count_simplify_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The operation counts of the expressions sympy.simplify is given from now on."""
    calls: list[int] = []
    full = sympy.simplify

    def counted(expr: sympy.Expr, *args: object, **kwargs: object) -> sympy.Expr:
        calls.append(sympy.count_ops(expr))
        return full(expr, *args, **kwargs)

    monkeypatch.setattr(sympy, "simplify", counted)
    return calls


def test_simplified_mish_derivative_is_equal_and_simplify_sees_small_input(monkeypatch) -> None:
    d = derivative(parse("x*tanh(log(1+exp(x)))"))
    calls = _count_simplify_calls(monkeypatch)
    s = simplified(d)
    assert calls == [sympy.count_ops(d)] and calls[0] <= formula_module._SIMPLIFY_MAX_OPS
    assert sympy.count_ops(s) <= sympy.count_ops(d)
    x = torch.linspace(-8, 8, 101, dtype=torch.float64)
    torch.testing.assert_close(compile_torch(s)(x), compile_torch(d)(x), rtol=1e-12, atol=1e-14)


def test_simplified_never_runs_full_simplify_on_large_expressions(monkeypatch) -> None:
    # sympy.simplify alone takes several seconds here: the work is bounded by not calling it.
    d = derivative(derivative(parse("sqrt(x**2+1)*atan(x)+asinh(x)*tanh(x)")))
    assert sympy.count_ops(d) > formula_module._SIMPLIFY_MAX_OPS
    calls = _count_simplify_calls(monkeypatch)
    s = simplified(d)
    assert calls == []
    x = torch.linspace(-4, 4, 81, dtype=torch.float64)
    torch.testing.assert_close(compile_torch(s)(x), compile_torch(d)(x), rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------
# Limits: no formula takes unbounded time or memory (issue 12)
# --------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
ADDRESS_SPACE = 2 * 2**30  # 2 GiB: torch and the CLI need about 1.5 GiB of address space to start

_RUN_CASES = r"""
import json, sys
from typer.testing import CliRunner
import gradvet
from gradvet.cli import app
from gradvet.base.errors import GradvetError
results = []
for case in json.loads(sys.argv[1]):
    if isinstance(case, str):  # gradvet.activation(text).properties, as in Python
        try:
            gradvet.activation(case).properties
            results.append({"error": None})
        except GradvetError as err:
            results.append({"error": str(err)})
        continue
    result = CliRunner().invoke(app, case)
    results.append({"exit_code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr,
                    "output": result.output})
print(json.dumps(results))
"""


def run_guarded(cases: list) -> list[SimpleNamespace]:
    """Each case, in one fresh process limited to 2 GiB of address space and a generous 600 s: a
    hang or memory that keeps growing fails (timeout, MemoryError) instead of taking the machine
    down, however fast it is. A case is the arguments of `gradvet ARGS` (the result has exit_code,
    stdout, stderr, output) or a formula for `gradvet.activation(...).properties` (the result has
    error: the GradvetError's message, or None)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _RUN_CASES, json.dumps(cases)], capture_output=True, text=True,
                          timeout=600, preexec_fn=limit, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [SimpleNamespace(**r) for r in json.loads(proc.stdout.splitlines()[-1])]


def _power_of_ten(log10: float) -> str:
    return f"10^{math.floor(log10)}"


# e**e**e**e = exp(exp(exp(e))): its log10 is exp(exp(e)) * log10(e), computed here in float64
TOWER = _power_of_ten(math.exp(math.exp(math.e)) * math.log10(math.e))

HUGE = [  # each formula as the user types it, and what its one-line error must say
    ("sqrt(2)**(10**1000)", "the constant '10**1000' is about 10^1000, beyond the limit of 1e300 in magnitude"),
    ("exp(log(2)*10**1000)", "the constant '10**1000' is about 10^1000, beyond the limit of 1e300 in magnitude"),
    ("e**e**e**e**e", f"the constant 'e**e**e**e' is about {TOWER}, beyond the limit of 1e300 in magnitude"),
    ("(x+1)**(10**1000)", "the constant '10**1000' is about 10^1000, beyond the limit of 1e300 in magnitude"),
    ("tanh(" * 95 + "x" + ")" * 95, "nested more than 64 levels deep"),
    ("2**(-10**200)", f"about 10^({-1e200 * math.log10(2):.3g}), below the smallest magnitude allowed, 1e-300"),
    ("exp(log(x+1)*1000)", "has the exponent 1000, beyond the limit |exponent| <= 100"),
    ("((x*60000*60000)**100)**100", "has the exponent 100"),
]
assert TOWER == "10^1656520"  # e^e = 15.154..., e^15.154 = 3.81e6, 3.81e6 * 0.4343 = 1.6565e6


def test_huge_formulas_answer_one_line_within_bounded_time_and_memory() -> None:
    # Each of these used to hang with memory growing ~75 MB/s (or raise OverflowError), on the
    # command line and in Python alike.
    results = run_guarded([["show", text] for text, _ in HUGE] + [text for text, _ in HUGE])
    for (_text, part), shown, called in zip(HUGE, results, results[len(HUGE):]):
        assert_user_error(shown, part)
        assert "Traceback" not in shown.output
        assert called.error is not None and part in called.error and "\n" not in called.error


class _CountCalls(TorchFunctionMode):
    """Counts the calls of each torch function made while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        self.calls[name] = self.calls.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def test_deepest_nest_allowed_computes_each_shared_part_once_and_matches_autograd() -> None:
    depth = formula_module.MAX_DEPTH  # 64 nested tanh: its derivative written as a tree has 64*65/2 tanh calls
    act = gradvet.activation("tanh(" * depth + "x" + ")" * depth)
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    with _CountCalls() as counted:
        grad = act.grad(x)
    assert counted.calls.get("tanh", 0) == depth  # each tanh(...) of the chain once, for f and all its factors
    x_ad = x.clone().requires_grad_(True)
    y = x_ad
    for _ in range(depth):
        y = torch.tanh(y)
    (expected,) = torch.autograd.grad(y.sum(), x_ad)
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-300)


def test_deepest_nest_allowed_shows_within_bounded_memory() -> None:
    depth = formula_module.MAX_DEPTH
    (result,) = run_guarded([["show", "tanh(" * depth + "x" + ")" * depth, "--json"]])
    assert result.exit_code == 0, result.output
    props = json.loads(result.stdout)["properties"]
    assert props["max_grad"] == 1.0 and props["fprime0"] == 1.0  # f'(0) = prod of tanh'(0) = 1
    limit = 1.0  # f(x) -> tanh applied 63 times to 1 as x -> inf, an open end
    for _ in range(depth - 1):
        limit = math.tanh(limit)
    assert props["range_hi"] == pytest.approx(limit, rel=1e-12) and props["range_lo"] == -props["range_hi"]
    assert props["output_range"].startswith("(") and props["undefined"] == []


def test_operations_counts_shared_parts_once() -> None:
    x, y = sympy.symbols("x y")
    assert limits_module.operations(x * y + sympy.sin(x * y)) == 3  # Add, Mul (shared), sin
    assert limits_module.operations(x + y + 2 * x * y) == 2 + 2  # Add of 3 terms, Mul of 3 factors
    assert limits_module.operations(x) == 0


def test_derivative_beyond_the_operation_limit_is_refused() -> None:
    # the product of 30 factors has a derivative of 30 terms of 30 factors each: > 500 operations
    text = "*".join(f"tanh(x+{k})" for k in range(30))
    with pytest.raises(GradvetError, match=r"its derivative needs \d+ operations, more than the limit of 500"):
        gradvet.activation(text)
    result = CliRunner().invoke(app, ["show", text])
    assert_user_error(result, "more than the limit of 500")


def test_parameter_values_are_never_evaluated_symbolically() -> None:
    # exp(exp(exp(exp(2)))) is about 10^(10^702): SymPy would compute it digit by digit; torch says inf.
    (result,) = run_guarded([["show", "x*exp(exp(exp(exp(a))))", "-p", "a=2", "--json"]])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["properties"]["max_grad"] == "inf"  # f' = inf everywhere, not a crash
    act = gradvet.activation("x*exp(exp(exp(exp(a))))", a=2)
    x = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    assert act.fn(x).tolist() == [-math.inf, math.inf]


def test_huge_but_bounded_constants_are_kept_and_big_exact_numbers_become_floats() -> None:
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(compile_torch(parse("10**300*x"))(x), torch.tensor([1e300, 2e300], dtype=torch.float64))
    expr = parse("x*2**100")
    assert expr.atoms(sympy.Float) and not [r for r in expr.atoms(sympy.Rational) if abs(r.p) > 2**16]
    torch.testing.assert_close(compile_torch(expr)(x), x * 2.0**100, rtol=1e-15, atol=0)


# --------------------------------------------------------------------------
# Constants and functions defined on part of the line, as the user types them
# --------------------------------------------------------------------------

CONSTANTS = [  # formula, its value (a step: its value for x < 0 and x > 0)
    ("step(x)", (0.0, 1.0)),
    ("1", (1.0, 1.0)),
    ("x*0", (0.0, 0.0)),
    ("clip(x,1,-1)", (-1.0, -1.0)),  # min(max(x, 1), -1) = -1 for every x
]


@pytest.mark.parametrize(("text", "values"), CONSTANTS, ids=[c[0] for c in CONSTANTS])
def test_constant_formulas_have_zero_derivative_under_autograd_and_closed_form(text, values) -> None:
    act = gradvet.activation(text)
    x = torch.tensor([-2.0, -0.5, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    y = act.fn(x)
    torch.testing.assert_close(y.detach(), torch.tensor([values[0]] * 2 + [values[1]] * 2, dtype=torch.float64))
    (autograd,) = torch.autograd.grad(y.sum(), x)  # "does not require grad" before
    assert autograd.tolist() == [0.0] * 4
    assert act.grad(x.detach()).tolist() == [0.0] * 4
    module_input = x.detach().clone().requires_grad_(True)
    act.module()(module_input).sum().backward()  # what training and the cost measurement do
    assert module_input.grad.tolist() == [0.0] * 4


@pytest.mark.parametrize(("text", "values"), CONSTANTS, ids=[c[0] for c in CONSTANTS])
def test_show_constant_formula(text, values) -> None:
    result = CliRunner().invoke(app, ["show", text, "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["derivative"] == "0"
    props = record["properties"]
    assert props["max_grad"] == 0.0 and props["grad_sq_gauss"] == 0.0
    assert props["dead_regions"] == [["-inf", "inf"]]
    assert props["cost"] > 0
    assert (props["range_lo"], props["range_hi"]) == (min(values), max(values))
    assert props["mean_gauss"] == pytest.approx(sum(values) / 2, abs=1e-15)  # P(z < 0) = P(z > 0) = 1/2
    text_result = CliRunner().invoke(app, ["show", text])
    assert text_result.exit_code == 0 and "f'(x) = 0" in text_result.stdout


PARTIAL = [  # formula, f' in closed form on x > 0
    ("log(x)", lambda x: 1 / x),
    ("sqrt(x)", lambda x: 0.5 / np.sqrt(x)),
    ("x**(1/3)", lambda x: np.cbrt(x) / (3 * x)),
    ("x**x", lambda x: x**x * (np.log(x) + 1)),
]


@pytest.mark.parametrize(("text", "closed_form"), PARTIAL, ids=[c[0] for c in PARTIAL])
def test_formula_defined_for_x_above_zero_is_nan_below_and_its_derivative_is_right_above(text, closed_form):
    act = gradvet.activation(text)
    x = torch.linspace(0.05, 6, 120, dtype=torch.float64)
    torch.testing.assert_close(act.grad(x), torch.from_numpy(closed_form(x.numpy())), rtol=1e-12, atol=0)
    torch.testing.assert_close(act.grad(x), autograd_derivative(act.fn, x), rtol=1e-12, atol=0)
    not_integer = -x[x != x.round()]  # x**x is defined at the negative integers, a set the grid does not resolve
    assert torch.isnan(act.fn(not_integer)).all()
    assert act.properties.undefined == ((-math.inf, 0.0),)


@pytest.mark.parametrize(("text", "output_range"), [("log(x)", "(-inf, inf)"), ("sqrt(x)", "[0, inf)")])
def test_show_formula_defined_on_half_the_line(text: str, output_range: str) -> None:
    result = CliRunner().invoke(app, ["show", text])
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].split(None, 1)[0] if "│" in line else "": line for line in result.stdout.splitlines()}
    assert "f is NaN (undefined) for x in (-inf, 0)" in lines["domain"]
    assert f" {output_range} " in lines["output"]
    assert "inf at x = 0" in lines["max"]  # f' = 1/x, 1/(2 sqrt(x)): unbounded at 0+
    record = json.loads(CliRunner().invoke(app, ["show", text, "--json"]).stdout)
    assert record["properties"]["undefined"] == [["-inf", 0.0]]
    assert record["properties"]["defined_everywhere"] is False
    assert record["properties"]["grad_sq_gauss"] == "nan"  # no number is true where f is NaN for half of N(0, 1)
