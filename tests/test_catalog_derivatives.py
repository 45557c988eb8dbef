"""Every catalog entry: its closed-form derivative equals autograd, in float64.

The reference is torch autograd of `fn` (an independent computation: the
closed forms are written by hand). Grids are dense and include points just
beside every breakpoint the property code found; the breakpoints themselves
are excluded. Parameterised entries are checked at their defaults and at a
second parameter set.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gradvet
from gradvet.activations import catalog, entry, names

REQUIRED = """identity binary_step sigmoid hard_sigmoid log_sigmoid bipolar_sigmoid silu swish dsilu tanh
hardtanh softsign lecun_tanh penalized_tanh tanhshrink isru arctan relu leaky_relu prelu rrelu elu selu
celu gelu gelu_tanh mish softplus relu6 hardswish hardshrink softshrink squared_relu bent_identity
gaussian sinusoid snake erf elliott lisht softexponential sqnl srelu""".split()


def autograd(fn, x):
    xd = x.detach().clone().requires_grad_(True)
    y = fn(xd)
    if not y.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(y.sum(), xd)
    return g


def other_params(name: str) -> dict[str, float]:
    """A second, valid, non-default parameter set: each parameter moved inside its range."""
    e = entry(name)
    values = {}
    for p in e.params:
        lo = p.low if p.low is not None else p.default - 2
        hi = p.high if p.high is not None else p.default + 2
        values[p.name] = p.default + 0.37 * ((hi if hi - p.default > p.default - lo else lo) - p.default)
    if name == "srelu":
        values = {"t_left": -0.4, "a_left": 0.3, "t_right": 2.5, "a_right": 2.0}
    if name == "hardtanh":
        values = {"min_val": -2.0, "max_val": 0.5}
    if name == "rrelu":
        values = {"lower": 0.05, "upper": 0.4}
    values = {k: round(v, 6) for k, v in values.items()}
    e.bind(values)  # valid by construction
    return values


def grid_near_breakpoints(act) -> torch.Tensor:
    base = torch.linspace(-12, 12, 24001, dtype=torch.float64) + 1e-4 / 3
    near = [k + d for k in act.properties.breakpoints for d in (-1e-3, -1e-6, 1e-6, 1e-3)]
    x = torch.cat([base, torch.tensor(near, dtype=torch.float64)])
    for k in act.properties.breakpoints:
        x = x[(x - k).abs() > 1e-9]
    return x


def test_catalog_has_at_least_45_entries_and_every_required_name():
    got = names()
    assert len(got) >= 45
    missing = [n for n in REQUIRED if n not in got]
    assert not missing


@pytest.mark.parametrize("name", names())
def test_closed_form_grad_equals_autograd(name):
    for params in ({}, other_params(name)):
        act = gradvet.activation(name, **params)
        x = grid_near_breakpoints(act)
        expected = autograd(act.fn, x)
        got = act.grad(x)
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12, msg=lambda m, act=act: f"{act.label()}: {m}")


@pytest.mark.parametrize("name", names())
def test_float32_matches_float64(name):
    act = gradvet.activation(name)
    x64 = torch.linspace(-6, 6, 1201, dtype=torch.float64) + 1e-3 / 3
    x32 = x64.float()
    f64 = act.fn(x32.double())
    f32 = act.fn(x32)
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32.double(), f64, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(act.grad(x32).double(), act.grad(x32.double()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", names())
def test_module_computes_fn_and_backpropagates_grad(name):
    act = gradvet.activation(name)
    module = act.module().double().eval()
    assert isinstance(module, torch.nn.Module)
    x = torch.linspace(-5, 5, 501, dtype=torch.float64) + 1e-3 / 3
    xd = x.clone().requires_grad_(True)
    y = module(xd)
    torch.testing.assert_close(y.detach(), act.fn(x), rtol=1e-8, atol=1e-8)
    y.sum().backward()
    torch.testing.assert_close(xd.grad, act.grad(x), rtol=1e-8, atol=1e-8)


def test_pytorch_modules_are_used_where_pytorch_has_one():
    expected = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "silu": torch.nn.SiLU, "elu": torch.nn.ELU,
                "selu": torch.nn.SELU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "mish": torch.nn.Mish,
                "prelu": torch.nn.PReLU, "rrelu": torch.nn.RReLU, "softplus": torch.nn.Softplus,
                "hardswish": torch.nn.Hardswish, "leaky_relu": torch.nn.LeakyReLU, "identity": torch.nn.Identity}
    for name, cls in expected.items():
        assert type(gradvet.activation(name).module()) is cls, name
    assert gradvet.activation("leaky_relu", negative_slope=0.2).module().negative_slope == 0.2


def test_prelu_slope_is_learnable_and_rrelu_is_random_only_in_training():
    prelu = gradvet.activation("prelu", slope=0.1).module()
    assert any(p.requires_grad for p in prelu.parameters())
    assert float(next(prelu.parameters()).detach()) == pytest.approx(0.1)
    rrelu = gradvet.activation("rrelu").module()
    x = -torch.ones(10000)
    torch.manual_seed(0)
    train_out = rrelu.train()(x)
    assert train_out.std() > 0.01  # random slopes
    eval_out = rrelu.eval()(x)
    assert torch.allclose(eval_out, torch.full_like(x, -(1 / 8 + 1 / 3) / 2))


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(names()), x=st.floats(-30, 30, allow_nan=False))
def test_grad_equals_autograd_property(name, x):
    act = gradvet.activation(name)
    if any(abs(x - k) < 1e-6 for k in act.properties.breakpoints):
        return
    t = torch.tensor([x], dtype=torch.float64)
    expected = autograd(act.fn, t)
    if not torch.isfinite(expected).all():
        return  # overflow in autograd's own graph, not a statement about f'
    torch.testing.assert_close(act.grad(t), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", names())
def test_formula_text_matches_fn(name):
    """The catalog's plain-text formula, parsed by the safe parser, computes the same f."""
    from gradvet.activations import formula as F

    act = gradvet.activation(name)
    expr = F.parse(act.formula, act.params.keys())
    fn = F.compile_torch(expr, act.params)
    x = torch.linspace(-20, 20, 4001, dtype=torch.float64) + 1e-3 / 3
    torch.testing.assert_close(fn(x), act.fn(x), rtol=1e-12, atol=1e-12)


def test_parameters_are_bound_by_keyword():
    act = gradvet.activation("leaky_relu", negative_slope=0.2)
    assert act.params == {"negative_slope": 0.2}
    assert float(act.fn(torch.tensor([-1.0]))) == pytest.approx(-0.2)
    assert math.isclose(float(gradvet.activation("softplus", beta=2.0).grad(torch.tensor([0.3]))),
                        1 / (1 + math.exp(-0.6)), rel_tol=1e-6)


def test_every_entry_has_the_documented_fields():
    for act in catalog():
        assert act.name and act.family in ("relu", "tanh", "sigmoid", "shrink", "other")
        assert act.formula and (act.pros or act.cons) and act.paper
        assert act.latex  # produced by SymPy from the formula
