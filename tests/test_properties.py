"""Computed properties checked against closed forms and independent numerics.

References: closed-form Gaussian integrals, scipy.integrate.quad (adaptive,
independent of the Gauss-Legendre rule gradvet uses), scipy's optimisers
on the formula, and textbook facts (sigmoid' <= 1/4, SELU's fixed point).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize

import gradvet
from gradvet.activations import names
from gradvet.activations.properties import gauss_expectation

SQRT_2PI = math.sqrt(2 * math.pi)


def scalar(fn):
    return lambda x: float(fn(torch.tensor([x], dtype=torch.float64))[0])


def quad_gauss(fn, points=()):
    """E[fn(z)], z ~ N(0,1), by adaptive quadrature split at `points`."""
    g = lambda z: fn(z) * math.exp(-0.5 * z * z) / SQRT_2PI  # noqa: E731
    cuts = [-40.0, *sorted(p for p in points if -40 < p < 40), 40.0]
    return sum(integrate.quad(g, a, b, epsabs=1e-14, epsrel=1e-13, limit=400)[0] for a, b in zip(cuts, cuts[1:]))


def props(name, **params):
    return gradvet.activation(name, **params).properties


@pytest.mark.parametrize("name", names())
def test_gaussian_moments_agree_with_adaptive_quadrature(name):
    act = gradvet.activation(name)
    p = act.properties
    mean = quad_gauss(scalar(act.fn), p.breakpoints)
    grad_sq = quad_gauss(lambda z: scalar(act.grad)(z) ** 2, p.breakpoints)
    assert p.mean_gauss == pytest.approx(mean, rel=1e-9, abs=1e-12)
    assert p.grad_sq_gauss == pytest.approx(grad_sq, rel=1e-9, abs=1e-12)


def test_gaussian_moments_closed_forms():
    assert props("relu").mean_gauss == pytest.approx(1 / SQRT_2PI, rel=1e-14)
    assert props("relu").grad_sq_gauss == pytest.approx(0.5, rel=1e-14)
    assert props("leaky_relu", negative_slope=0.2).grad_sq_gauss == pytest.approx((1 + 0.04) / 2, rel=1e-14)
    assert props("gelu").mean_gauss == pytest.approx(1 / (2 * math.sqrt(math.pi)), rel=1e-13)
    assert props("erf").grad_sq_gauss == pytest.approx(4 / (math.pi * math.sqrt(5)), rel=1e-13)
    assert props("sigmoid").mean_gauss == pytest.approx(0.5, abs=1e-15)
    assert props("tanh").mean_gauss == pytest.approx(0.0, abs=1e-15)
    assert props("identity").grad_sq_gauss == pytest.approx(1.0, abs=1e-15)
    assert props("cube").grad_sq_gauss == pytest.approx(9 * 3, rel=1e-14)  # E[(3z^2)^2] = 9 E[z^4] = 27
    assert props("gaussian").mean_gauss == pytest.approx(1 / math.sqrt(3), rel=1e-13)  # E[exp(-z^2)]
    hard = props("hardtanh")
    assert hard.grad_sq_gauss == pytest.approx(math.erf(1 / math.sqrt(2)), rel=1e-13)  # P(|z| < 1)


def test_selu_self_normalising_fixed_point():
    selu = gradvet.activation("selu")
    assert selu.properties.mean_gauss == pytest.approx(0.0, abs=1e-12)
    second_moment = gauss_expectation(lambda z: selu.fn(z) ** 2, selu.properties.breakpoints)
    assert second_moment == pytest.approx(1.0, abs=1e-12)


def test_sigmoid_and_tanh_textbook_facts():
    s = props("sigmoid")
    assert (s.output_range.lo, s.output_range.hi) == (0.0, 1.0)
    assert not s.output_range.lo_closed and not s.output_range.hi_closed
    assert s.max_grad == 0.25 and s.max_grad_at == 0.0
    assert s.saturates_left and s.saturates_right and s.monotonic and s.smoothness == "C-inf"
    t = props("tanh")
    assert t.max_grad == 1.0 and t.max_grad_at == 0.0 and t.identity_near_0
    assert str(t.output_range) == "(-1, 1)"
    assert t.saturates_left and t.saturates_right
    for name in ("softsign", "arctan", "erf", "isru"):
        p = props(name)
        assert p.saturates_left and p.saturates_right, name


def test_relu_family_facts():
    r = props("relu")
    assert str(r.output_range) == "[0, inf)"
    assert r.dead_regions == ((-math.inf, 0.0),)
    assert r.kinks == (0.0,) and r.smoothness == "C0"
    assert r.saturates_left and not r.saturates_right
    assert not props("leaky_relu").dead_regions
    assert props("relu6").dead_regions == ((-math.inf, 0.0), (6.0, math.inf))
    assert props("hardtanh").dead_regions == ((-math.inf, -1.0), (1.0, math.inf))
    assert props("hardshrink").dead_regions == ((-0.5, 0.5),)
    # Analytic functions have no dead region even where float64 underflows f' to 0.
    assert props("gelu_tanh").dead_regions == () and props("cloglog").dead_regions == ()


@pytest.mark.parametrize("name,expected", [
    ("relu", "C0"), ("elu", "C1"), ("celu", "C1"), ("selu", "C0"), ("gelu", "C-inf"), ("mish", "C-inf"),
    ("binary_step", "discontinuous"), ("hardshrink", "discontinuous"), ("squared_relu", "C1"),
    ("isrlu", "C2"), ("smelu", "C1"), ("sqnl", "C1"), ("softsign", "C1"), ("hardswish", "C0"),
])
def test_smoothness_class(name, expected):
    assert props(name).smoothness == expected


def test_elu_smoothness_depends_on_alpha():
    assert props("elu", alpha=1.0).smoothness == "C1"   # f'(0-) = alpha = f'(0+)
    assert props("elu", alpha=2.0).smoothness == "C0"
    assert props("elu", alpha=2.0).kinks == (0.0,)


def test_kinks_are_located_exactly():
    assert props("hard_sigmoid").kinks == (-3.0, 3.0)
    assert props("relu6").kinks == (0.0, 6.0)
    assert props("srelu", t_left=-0.4, t_right=2.5).kinks == (-0.4, 2.5)
    assert props("softshrink", lambd=1.3).kinks == (-1.3, 1.3)


def test_max_grad_matches_an_independent_optimiser():
    for name in ("silu", "gelu", "mish", "gaussian", "serf", "tanh_exp"):
        act = gradvet.activation(name)
        g = scalar(act.grad)
        res = optimize.minimize_scalar(lambda x, g=g: -abs(g(x)), bounds=(-4, 4), method="bounded",
                                       options={"xatol": 1e-12})
        assert act.properties.max_grad == pytest.approx(-res.fun, rel=1e-12), name
        assert abs(act.properties.max_grad_at - res.x) < 1e-5 or name == "gaussian"


def test_output_range_minimum_matches_an_independent_optimiser():
    for name in ("silu", "gelu", "mish", "elish", "dsilu"):
        act = gradvet.activation(name)
        f = scalar(act.fn)
        res = optimize.minimize_scalar(f, bounds=(-5, 5), method="bounded", options={"xatol": 1e-12})
        assert act.properties.output_range.lo == pytest.approx(res.fun, rel=1e-12), name
        assert act.properties.output_range.lo_closed


def test_limits_and_unbounded_sides():
    assert props("bent_identity").max_grad == 1.5 and props("bent_identity").max_grad_at == math.inf
    assert props("squared_relu").max_grad == math.inf
    assert str(props("log_sigmoid").output_range) == "(-inf, 0)"
    assert str(props("elu").output_range) == "(-1, inf)"
    assert str(props("sinusoid").output_range) == "[-1, 1]"
    assert str(props("gaussian").output_range) == "(0, 1]"
    assert props("snake").max_grad == pytest.approx(2.0, abs=1e-12)  # f' = 1 + sin(2x)
    assert props("lecun_tanh").output_range.hi == pytest.approx(1.7159, rel=1e-15)


def test_monotonicity():
    for name in ("sigmoid", "tanh", "relu", "elu", "softplus", "binary_step"):
        assert props(name).monotonic, name
    for name in ("gelu", "silu", "mish", "gaussian", "sinusoid", "abs", "lisht"):
        assert not props(name).monotonic, name
    assert props("sigmoid").increasing
    assert props("relu").derivative_monotonic and not props("sigmoid").derivative_monotonic


def test_identity_near_zero():
    yes = {"tanh", "arctan", "isru", "softsign", "identity", "elu", "celu", "hardtanh", "sqnl", "snake"}
    no = {"sigmoid", "relu", "gelu", "silu", "selu", "lecun_tanh", "leaky_relu", "erf", "mish"}
    for name in yes:
        assert props(name).identity_near_0, name
    for name in no:
        assert not props(name).identity_near_0, name


def test_properties_come_from_the_disk_cache_the_second_time(fresh_cache, monkeypatch):
    from gradvet.activations import cache, properties

    first = gradvet.activation("gelu").properties
    files = list(fresh_cache.glob("properties-*.json"))
    assert len(files) == 1
    cache.clear_memory()

    def fail(act):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(properties, "compute_with_cost", fail)
    again = properties.properties_of(gradvet.activation("gelu"))
    assert again == first
    assert again.cost is not None and again.cost > 0 and math.isfinite(again.cost)


def test_unwritable_cache_still_computes(monkeypatch, tmp_path):
    from gradvet.activations import cache

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GRADVET_CACHE_DIR", str(blocker / "cache"))
    cache.clear_memory()
    try:
        assert gradvet.activation("tanh").properties.max_grad == 1.0
    finally:
        cache.clear_memory()


def test_properties_to_dict_is_complete():
    data = props("relu").to_dict()
    for key in ("max_grad", "mean_gauss", "grad_sq_gauss", "monotonic", "output_range", "smoothness",
                "saturation", "dead_regions", "cost", "identity_near_0", "zero_centred"):
        assert key in data
    assert np.isfinite(data["mean_gauss"])


def test_properties_computed_inside_no_grad():
    from gradvet.activations.properties import compute

    act = gradvet.activation("x*tanh(x) + x")
    with torch.no_grad():
        inside = compute(act)
    assert inside == compute(act)
    with torch.no_grad():
        assert gradvet.activation("x*tanh(x) + x").properties.cost > 0


# Functions defined on part of the line, and constants (issue 12): NaN where f is undefined is a
# property to report, a constant is an activation with f' = 0.

@pytest.mark.parametrize("text,undefined", [
    ("log(x)", ((-math.inf, 0.0),)),
    ("sqrt(x-0.3)", ((-math.inf, 0.3),)),
    ("log(1-x)", ((1.0, math.inf),)),
    ("sqrt(1-x**2)", ((-math.inf, -1.0), (1.0, math.inf))),
    ("sqrt(x**2-4)", ((-2.0, 2.0),)),
    ("log(x-100)", ((-math.inf, 100.0),)),  # beyond the window [-16, 16]: found from the tail, window widened
    ("sqrt(-1-x**2)", ((-math.inf, math.inf),)),
    ("tanh(x)", ()),
])
def test_undefined_regions_are_located_exactly(text, undefined):
    p = props(text)
    assert p.undefined == undefined
    assert p.defined_everywhere == (undefined == ())
    for lo, hi in undefined:  # f is NaN just inside each region and a number just outside it
        for end, inward in ((lo, 1e-9), (hi, -1e-9)):
            if math.isfinite(end):
                f = gradvet.activation(text).fn(torch.tensor([end + inward, end - inward], dtype=torch.float64))
                assert math.isnan(f[0]) and not math.isnan(f[1]), (text, end)


def test_properties_on_the_domain_match_closed_forms():
    sqrt = props("sqrt(x)")  # [0, inf), f' = 1/(2 sqrt(x)) unbounded at 0+
    assert str(sqrt.output_range) == "[0, inf)" and sqrt.max_grad == math.inf and sqrt.max_grad_at == 0.0
    assert sqrt.smoothness == "C-inf" and sqrt.kinks == () and sqrt.monotonic and sqrt.increasing
    log = props("log(x)")  # every real value, -inf and inf only as limits
    assert str(log.output_range) == "(-inf, inf)" and log.f0 == -math.inf and log.fprime0 == math.inf
    cbrt = props("x**(1/3)")
    assert str(cbrt.output_range) == "[0, inf)" and cbrt.max_grad == math.inf
    xx = props("x**x")  # minimum e^(-1/e) at x = 1/e
    assert xx.output_range.lo == pytest.approx(math.exp(-1 / math.e), rel=1e-13) and xx.output_range.lo_closed
    assert not xx.monotonic and xx.f0 == 1.0  # 0**0 = 1
    disc = props("sqrt(1-x**2)")  # the upper half circle: [0, 1], both ends reached
    assert str(disc.output_range) == "[0, 1]" and disc.max_grad == math.inf
    far = props("sqrt(x-100)")
    assert str(far.output_range) == "[0, inf)" and far.window >= 200 and far.max_grad_at == 100.0
    for p in (sqrt, log, cbrt, xx, disc, far):  # N(0, 1) puts mass where f is NaN: no number is true
        assert math.isnan(p.mean_gauss) and math.isnan(p.grad_sq_gauss)
        assert not p.saturates_left and not p.dead_regions


def test_nowhere_defined_formula_has_no_numbers_and_does_not_crash():
    p = props("sqrt(-1-x**2)")
    assert p.undefined == ((-math.inf, math.inf),) and p.smoothness == "undefined"
    assert all(math.isnan(v) for v in (p.output_range.lo, p.output_range.hi, p.max_grad, p.mean_gauss, p.f0))
    assert p.domain_text() == "f is NaN (undefined) for x in (-inf, inf)"


@pytest.mark.parametrize("text,lo,hi,mean", [
    ("step(x)", 0.0, 1.0, 0.5), ("1", 1.0, 1.0, 1.0), ("x*0", 0.0, 0.0, 0.0), ("clip(x,1,-1)", -1.0, -1.0, -1.0),
])
def test_constant_formulas_have_zero_derivative_properties(text, lo, hi, mean):
    p = props(text)
    assert (p.output_range.lo, p.output_range.hi) == (lo, hi)
    assert p.output_range.lo_closed and p.output_range.hi_closed
    assert p.max_grad == 0.0 and p.fprime0 == 0.0 and p.grad_sq_gauss == 0.0
    assert p.mean_gauss == pytest.approx(mean, abs=1e-15)  # E[f(z)]: step's is P(z > 0) = 1/2
    assert p.dead_regions == ((-math.inf, math.inf),) and p.defined_everywhere
    assert p.cost is not None and p.cost > 0  # measured on a backward pass: autograd's f' = 0


def test_infinite_range_ends_are_open():
    assert str(props("log(x)").output_range) == "(-inf, inf)"  # log(0) = -inf is a limit, not a value
    assert str(props("exp(x)").output_range) == "(0, inf)"


def test_registered_constant_callable_has_zero_derivative_and_a_cost():
    from gradvet.activations import unregister

    gradvet.register("test_constant_two", lambda x: torch.full_like(x, 2.0))  # no autograd graph at all
    try:
        p = props("test_constant_two")
        assert p.max_grad == 0.0 and p.grad_sq_gauss == 0.0 and p.mean_gauss == 2.0
        assert p.cost is not None and p.cost > 0
    finally:
        unregister("test_constant_two")
