"""Mean-field theory against closed forms, Monte Carlo on wide random nets, and the probe."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.optimize import brentq
from torch import nn

import gradvet
from gradvet import theory as T
from gradvet.models import mlp


def gauss_quad(g) -> float:
    """E[g(z)], z ~ N(0, 1), by scipy's adaptive quadrature (independent of gradvet's rules)."""
    from scipy.integrate import quad

    return quad(lambda z: g(z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi), -40, 40, points=[0], limit=400)[0]


def gelu(x: float) -> float:
    return x * (1 + math.erf(x / math.sqrt(2))) / 2


def test_relu_closed_forms():
    for sw2, sb2 in ((1.5, 0.1), (1.0, 0.5), (0.5, 0.2)):
        assert T.q_star("relu", sw2, sb2).q == pytest.approx(sb2 / (1 - sw2 / 2), rel=1e-10)
        assert T.chi1("relu", sw2, sb2) == pytest.approx(sw2 / 2, rel=1e-10)
    assert T.critical_sw2("relu") == pytest.approx(2.0, rel=1e-9)
    assert not T.q_star("relu", 3.0, 0.1).converged  # the length map diverges
    assert T.chi1("relu", 3.0, 0.0) == pytest.approx(1.5, rel=1e-9)
    assert T.critical_sw2("leaky_relu") == pytest.approx(2 / (1 + 0.01**2), rel=1e-8)
    assert T.chi1(gradvet.activation("leaky_relu", negative_slope=0.3), 1.2, 0.1) == pytest.approx(1.2 * (1 + 0.09) / 2, rel=1e-9)


def test_tanh_critical_point_and_ordered_phase():
    assert T.critical_sw2("tanh") == pytest.approx(1.0, abs=1e-12)
    assert T.q_star("tanh", 0.8, 0.0).q == 0.0
    assert T.chi1("tanh", 0.8, 0.0) == pytest.approx(0.8, rel=1e-10)  # tanh'(0)^2 = 1
    assert T.chi1("tanh", 1.5, 0.05) < 1 < T.chi1("tanh", 3.0, 0.05)


@pytest.mark.parametrize("q", [1e-6, 0.01, 0.3, 1.0, 4.0, 25.0, 1e4, 1e8])
def test_erf_kernel_closed_form(q):
    erf = gradvet.activation("erf")
    # E[erf(sqrt(q) z)^2] = (2/pi) arcsin(2q / (1 + 2q)); E[erf'(sqrt(q) z)^2] = 4 / (pi sqrt(1 + 4q))
    assert T.length_map(erf, q, 1.0, 0.0) == pytest.approx(2 / math.pi * math.asin(2 * q / (1 + 2 * q)), rel=1e-12)
    assert T.chi(erf, q, 1.0) == pytest.approx(4 / (math.pi * math.sqrt(1 + 4 * q)), rel=1e-12)


def test_expectations_at_many_q_equal_one_at_a_time():
    tanh = gradvet.activation("tanh")
    qs = [0.0, 1e-3, 0.5, 2.0, 1e3]
    together = T.expectations(tanh, lambda x: tanh.grad(x) ** 2, qs)
    for q, value in zip(qs, together):
        z = torch.linspace(-12, 12, 200001, dtype=torch.float64)  # brute force: trapezoid on a fine grid
        density = torch.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        brute = float(torch.trapezoid(tanh.grad(math.sqrt(q) * z) ** 2 * density, z))
        assert value == pytest.approx(brute, rel=1e-8)


def crosses_one(name, sw2, sb2, step=1e-3):
    return T.chi1(name, sw2 * (1 - step), sb2) < 1 < T.chi1(name, sw2 * (1 + step), sb2)


@pytest.mark.parametrize("name", ["tanh", "erf", "selu", "softsign", "x*sigmoid(x)", "elu"])
def test_critical_line_is_where_chi1_crosses_one(name):
    data = T.phase_diagram(name, [0.0, 0.05, 0.3, 1.0, 2.0])
    found = [(b, s) for b, s in zip(data["sb2"], data["critical_sw2"]) if s is not None]
    assert len(found) >= 2
    for sb2, sw2 in found:
        assert crosses_one(name, sw2, sb2), (sb2, sw2)


def test_edge_of_chaos_special_cases():
    # Schoenholz et al. 2017: tanh at sb2 = 0.05 is critical at sw2 ~ 1.76
    assert T.critical_sw2("tanh", 0.05) == pytest.approx(1.761, abs=1e-3)
    for name, slope in (("prelu", 0.25), ("leaky_relu", 0.01)):  # scale-free: 2 / (1 + a^2) at every sb2
        for sb2 in (0.0, 0.5):
            assert T.critical_sw2(name, sb2) == pytest.approx(2 / (1 + slope**2), rel=1e-12)
    assert T.critical_sw2("relu", 0.3) == pytest.approx(2.0, rel=1e-12)
    # SELU: kinked at 0, so q* = 0 loses stability at 2 / (lambda^2 + (lambda alpha)^2)
    lam, alpha = 1.0507009873554805, 1.6732632423543772
    assert T.critical_sw2("selu") == pytest.approx(2 / (lam**2 + (lam * alpha) ** 2), rel=1e-9)
    # GELU at sb2 = 0: from the input's q = 1 (q^1 = sw2) the signal dies out (chi1 = sw2 gelu'(0)^2 =
    # sw2/4) below the sw2 where M(sw2) = sw2, and the map diverges above (chi1 = sw2/2): chi1 jumps
    # over 1 there, no edge. That sw2 solves E[gelu(sqrt(sw2) z)^2] = 1 by scipy's quad + brentq.
    assert T.critical_sw2("gelu") is None
    jump = brentq(lambda s: gauss_quad(lambda z: gelu(math.sqrt(s) * z) ** 2) - 1, 1.5, 3.5, xtol=1e-13)
    assert T.chi1("gelu", jump * (1 - 1e-6), 0.0) == pytest.approx(jump * (1 - 1e-6) / 4, rel=1e-9)
    assert T.chi1("gelu", jump * (1 + 1e-6), 0.0) == pytest.approx(jump * (1 + 1e-6) / 2, rel=1e-9)
    # softplus: the boundary lies at q* -> inf, sw2 = 1 / lim E[f'^2] = 2
    assert T.critical_sw2("softplus") == pytest.approx(2.0, rel=1e-12) and crosses_one("softplus", 2.0, 0.0)
    # softexponential's critical fixed point is unstable (the map never reaches it): no boundary
    assert T.critical_sw2("softexponential") is None
    # sigmoid stays ordered up to sw2 = 100: no edge in the searched range
    assert T.critical_sw2("sigmoid") is None and T.chi1("sigmoid", 100.0, 0.0) < 1


def test_mean_field_numbers_are_cached_and_match_the_theory():
    from gradvet.activations import cache

    for name in ("tanh", "relu", "x*tanh(softplus(x))"):
        first = T.mean_field(name)
        cache.clear_memory()
        again = T.mean_field(name)
        assert first == again
        assert first.chi1_he == pytest.approx(T.chi1(name, 2.0, 0.0), rel=1e-12)
        assert first.chi1_xavier == pytest.approx(T.chi1(name, 1.0, 0.0), rel=1e-12)
    assert T.mean_field("relu").chi1_he == pytest.approx(1.0, rel=1e-12)
    assert T.mean_field("tanh").critical_sw2 == pytest.approx(1.0, abs=1e-12)


def test_linear_closed_form():
    assert T.q_star("identity", 0.5, 0.3).q == pytest.approx(0.3 / 0.5, rel=1e-10)
    assert T.chi1("identity", 0.5, 0.3) == pytest.approx(0.5, rel=1e-12)


def monte_carlo(act, sw2, sb2, width=1000, depth=40, seed=0):
    """Empirical q at the deep layers and the mean squared backward gain per layer of a wide random net."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(width, dtype=torch.float64, generator=g)
    weights, zs = [], []
    for _ in range(depth):
        w = torch.randn(width, width, dtype=torch.float64, generator=g) * math.sqrt(sw2 / width)
        b = torch.randn(width, dtype=torch.float64, generator=g) * math.sqrt(sb2)
        z = w @ h + b
        weights.append(w)
        zs.append(z)
        h = act.fn(z)
    q_emp = sum(float((z * z).mean()) for z in zs[depth // 2:]) / (depth - depth // 2)
    delta = torch.randn(width, dtype=torch.float64, generator=g) * act.grad(zs[-1])
    gains = []
    for layer in range(depth - 2, depth // 2, -1):
        new = act.grad(zs[layer]) * (weights[layer + 1].T @ delta)
        gains.append(float((new * new).sum() / (delta * delta).sum()))
        delta = new
    return q_emp, math.exp(sum(math.log(x) for x in gains) / len(gains))


@pytest.mark.parametrize("name,sw2,sb2", [
    ("tanh", 1.5, 0.05), ("relu", 1.5, 0.1), ("selu", 1.0, 0.0), ("x*sigmoid(x)", 2.0, 0.1),
])
@pytest.mark.slow
def test_monte_carlo_reproduces_q_star_and_chi1(name, sw2, sb2):
    act = gradvet.activation(name)
    q_emp, chi_emp = monte_carlo(act, sw2, sb2)
    assert q_emp == pytest.approx(T.q_star(act, sw2, sb2).q, rel=0.1)
    assert chi_emp == pytest.approx(T.chi1(act, sw2, sb2), rel=0.1)


@pytest.mark.parametrize("activation,sw2", [("tanh", 0.9), ("tanh", 1.0), ("tanh", 1.3), ("relu", 2.0)])
def test_predicted_profile_matches_the_probe_within_a_factor_of_2(activation, sw2):
    torch.manual_seed(0)
    depth, width = 20, 512
    model = mlp(width, 10, depth, width, activation, init="lecun")  # W ~ N(0, 1/n_in), b = 0
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.mul_(math.sqrt(sw2))
    x = torch.randn(256, width)
    y = torch.randint(0, 10, (256,))
    with gradvet.Probe(model) as probe:
        nn.functional.cross_entropy(model(x), y).backward()
        probe.step()
    row = probe.trace.at(0)
    measured = [row[f"hidden.{i}.linear"]["output_grad_norm"] for i in range(depth)]
    measured = [m / measured[-1] for m in measured]
    predicted = T.predict_profile(activation, depth, sw2, 0.0, q0=1.0)
    for layer, (m, p) in enumerate(zip(measured, predicted)):
        assert 0.5 <= m / p <= 2.0, (layer, m, p)


def test_depth_scales():
    scales = T.depth_scales("tanh", 1.5, 0.05)
    assert scales.xi_grad == pytest.approx(-1 / math.log(T.chi1("tanh", 1.5, 0.05)), rel=1e-12)
    assert scales.xi_c == scales.xi_grad  # ordered phase: c* = 1, chi_c = chi1
    assert T.depth_scales("tanh", 1.0, 0.0).xi_grad == math.inf  # critical
    chaotic = T.depth_scales("tanh", 3.0, 0.05)
    assert chaotic.xi_grad < 0 and math.isfinite(chaotic.xi_c) and chaotic.xi_c > 0


@pytest.mark.parametrize("sw2,sb2", [(2.5, 0.05), (4.0, 0.3), (20.0, 0.3)])
@pytest.mark.slow
def test_xi_c_in_the_chaotic_phase_against_a_brute_force_grid(sw2, sb2):
    """c* and chi_c = sw2 E[f'(u1) f'(u2)] by the trapezoid rule on a 1501 x 1501 grid (spectrally
    accurate for these smooth, Gaussian-weighted integrands), c* by plain iteration of the map."""
    import numpy as np

    q = T.q_star("tanh", sw2, sb2).q
    s = math.sqrt(q)
    z = np.linspace(-8.5, 8.5, 1501)
    wt = np.exp(-z * z / 2) / math.sqrt(2 * math.pi) * (z[1] - z[0])
    w = np.outer(wt, wt)
    f1 = np.tanh(s * z)[:, None]
    q_grid = sw2 * float(np.sum(wt * np.tanh(s * z) ** 2)) + sb2
    c = 0.5
    for _ in range(300):
        c = (sw2 * float(np.sum(w * f1 * np.tanh(s * (c * z[:, None] + math.sqrt(1 - c * c) * z[None, :])))) + sb2) / q_grid
    u2 = s * (c * z[:, None] + math.sqrt(1 - c * c) * z[None, :])
    chi_c = sw2 * float(np.sum(w * (1 - f1**2) * (1 - np.tanh(u2) ** 2)))
    scales = T.depth_scales("tanh", sw2, sb2)
    assert scales.chi1 > 1 and 0 < scales.xi_c < math.inf
    assert scales.xi_c == pytest.approx(-1 / math.log(chi_c), rel=1e-6)


def test_window_width_and_chain():
    assert T.window_width(3.9) == 0.0
    widths = {w: T.window_width(w) for w in (5.0, 6.9, 10.0, 50.0)}
    assert max(widths, key=widths.get) == 6.9 and widths[6.9] == pytest.approx(0.448, abs=1e-3)
    # brute force: the set of a with |w sigma'(w a)| >= 1 on a fine grid (b = 0)
    w = 10.0
    a = torch.linspace(-2, 2, 400001, dtype=torch.float64)
    s = torch.sigmoid(w * a)
    inside = (w * s * (1 - s)).abs() >= 1
    assert float(inside.double().sum() * (a[1] - a[0])) == pytest.approx(T.window_width(w), abs=1e-4)
    chain = T.chain_bound([1.0, 0.5, 2.0], [0.0, 0.1, -0.3], x=0.2)
    assert chain["product"] <= 2.0 * 0.5 * 0.25**3 * 16 and chain["bound"] == 0.25**3


def test_jacobian_spectrum_isometry_and_spread():
    torch.manual_seed(0)
    linear = mlp(32, 32, depth=10, width=32, activation="identity", init="orthogonal")
    spec = T.jacobian_spectrum(linear, torch.randn(3, 32))
    assert all(abs(v - 1) < 1e-4 for v in spec.singular_values)
    x = torch.randn(4, 64)
    relu5 = T.jacobian_spectrum(mlp(64, 64, 5, 64, "relu", "he"), x)
    relu20 = T.jacobian_spectrum(mlp(64, 64, 20, 64, "relu", "he"), x)
    assert relu20.std / relu20.mean > relu5.std / relu5.mean
    tanh20 = T.jacobian_spectrum(mlp(64, 64, 20, 64, "tanh", "orthogonal"), x)
    assert tanh20.std / tanh20.mean < relu20.std / relu20.mean


def test_bad_input():
    with pytest.raises(gradvet.GradvetError, match="sw2"):
        T.q_star("tanh", -1.0, 0.0)
    with pytest.raises(gradvet.GradvetError, match="depth"):
        T.predict_profile("tanh", 0, 1.0, 0.0)


def test_critical_init_uses_the_edge_of_chaos():
    torch.manual_seed(0)
    for name, expected in (("tanh", 1.0), ("relu", 2.0)):
        model = mlp(400, 10, 3, 400, name, "critical")
        var = float(model.hidden[1].linear.weight.detach().double().var()) * 400
        assert var == pytest.approx(expected, rel=0.03)
        assert float(model.hidden[1].linear.bias.detach().abs().max()) == 0.0
    with pytest.raises(gradvet.GradvetError, match="no edge of chaos"):
        mlp(10, 2, 2, 8, "sigmoid", "critical")


@pytest.mark.slow
def test_theory_command(tmp_path):
    import json

    from typer.testing import CliRunner

    from gradvet.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["theory", "tanh", "--sw2", "1.5", "--sb2", "0.05", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["chi1"] == pytest.approx(T.chi1("tanh", 1.5, 0.05)) and data["phase"].startswith("ordered")
    assert runner.invoke(app, ["theory", "relu"]).stdout.count("edge of chaos at sb2 = 0: sw2 = 2") == 1
    out = tmp_path / "pd.png"
    result = runner.invoke(app, ["theory", "relu", "--phase-diagram", "--out", str(out)])
    assert result.exit_code == 0 and out.read_bytes()[:4] == b"\x89PNG"
    bad = runner.invoke(app, ["theory", "tanh", "--sw2", "-1"])
    assert bad.exit_code == 2 and "sw2" in bad.stderr


# -- issue 12: the phase, q* and chi1 are those of the length map iterated from the input's q ---------

def wide_net(act, sw2, sb2, depth, width=1000, batch=32, seed=0):
    """A random net x -> W_1 x + b_1 -> f -> ... in float64 (W ~ N(0, sw2/width), b ~ N(0, sb2),
    x ~ N(0, 1): the input's q is 1), differentiated by torch's autograd through f itself.

    Returns the measured q^l = mean(z_l^2) of each layer's pre-activations and the measured gain
    ||dL/dh_{l-1}||^2 / ||dL/dh_l||^2 through each layer l (L = sum(h_depth * r), r ~ N(0, 1)),
    over the whole batch: the factor mean-field theory calls sw2 E[f'(sqrt(q^l) z)^2]."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, width, dtype=torch.float64, generator=g)
    inputs, zs = [], []
    for _ in range(depth):
        w = torch.randn(width, width, dtype=torch.float64, generator=g) * math.sqrt(sw2 / width)
        b = torch.randn(width, dtype=torch.float64, generator=g) * math.sqrt(sb2)
        h.requires_grad_(True)
        inputs.append(h)
        z = h @ w.T + b
        zs.append(z)
        h = act.fn(z)
    r = torch.randn(batch, width, dtype=torch.float64, generator=g)
    norms = [float(gr.pow(2).sum()) for gr in torch.autograd.grad((h * r).sum(), inputs)] + [float(r.pow(2).sum())]
    return [float(z.detach().pow(2).mean()) for z in zs], [norms[i] / norms[i + 1] for i in range(depth)]


# The tolerance of a Monte Carlo number, relative: 3 sigma with sigma = sqrt(2 / width), the relative
# spread of ||W v||^2 / (sw2 ||v||^2) for one direction v (W ~ N(0, sw2/width)). It bounds the spread of
# a measured q or gain from above when the batch's samples are fully correlated (then the batch
# averages nothing out); measured spreads here are 0.2-4.5% at width 1000 (13.4% allowed). The
# numbers compared differ by a factor of 2 or more when the theory is wrong (issue 12: chi1 0.75 for 1.5,
# 0 for 2).
MC_WIDTH = 1000
MC_TOL = 3 * math.sqrt(2 / MC_WIDTH)


@pytest.mark.parametrize("name,sw2,depth", [
    ("gelu", 3.0, 5), ("silu", 3.0, 5), ("mish", 3.0, 5),  # issue 12: reported ordered, chi1 = 0.75
    ("hardshrink", 2.0, 12), ("softshrink", 2.0, 14), ("lisht", 2.0, 12),  # He init; reported chi1 = 0
])
def test_a_diverging_map_against_a_wide_random_net(name, sw2, depth):
    act = gradvet.activation(name)
    fp = T.q_star(act, sw2, 0.0)
    c1 = T.chi1(act, sw2, 0.0)
    scales = T.depth_scales(act, sw2, 0.0)
    q, gains = wide_net(act, sw2, 0.0, depth, MC_WIDTH)
    # the verdict: the net's q grows at every layer and so does its backward signal
    assert all(b > a for a, b in zip(q, q[1:])) and all(gain > 1 for gain in gains), (q, gains)
    assert fp.kind == T.Q_TO_INFINITY and not fp.converged and math.isinf(fp.q)
    assert T.phase(c1) == "chaotic" and scales.xi_grad < 0 and scales.xi_q < 0
    # chi1 is the limit of the per-layer gain as q grows; by the deepest layer (q in the hundreds or
    # more) the net's gain is there, as is q's growth per layer exp(-1/xi_q)
    assert gains[-1] == pytest.approx(c1, rel=MC_TOL)
    assert q[-1] / q[-2] == pytest.approx(math.exp(-1 / scales.xi_q), rel=MC_TOL)
    # and layer by layer, the theory's map and gain at the measured q
    for i in range(depth):
        assert gains[i] == pytest.approx(T.chi(act, q[i], sw2), rel=MC_TOL), i
        if i + 1 < depth:
            assert q[i + 1] == pytest.approx(T.length_map(act, q[i], sw2, 0.0), rel=MC_TOL), i


@pytest.mark.parametrize("name,depth", [("cube", 4), ("squared_relu", 6)])
def test_a_map_that_explodes_faster_than_exponentially(name, depth):
    """f' unbounded (cube: 3x^2, squared ReLU: 2 relu(x)): chi(q) grows with q, so chi1 in the limit is
    inf. At finite width the net's units are far from Gaussian (a few units dominate each sum), so the
    measured gains exceed mean-field's per layer; what both say is growth without bound."""
    act = gradvet.activation(name)
    q, gains = wide_net(act, 2.0, 0.0, depth, MC_WIDTH)
    assert all(1 < a < b for a, b in zip(gains, gains[1:])) and gains[-1] > 1e20, gains
    assert all(b > a for a, b in zip(q, q[1:]))
    assert T.chi1(act, 2.0, 0.0) == math.inf and T.phase(math.inf) == "chaotic"
    assert T.q_star(act, 2.0, 0.0).kind == T.Q_TO_INFINITY
    profile = T.predict_profile(act, depth, 2.0, 0.0)
    assert all(not math.isnan(p) for p in profile) and profile[0] ** 2 > 1e20  # squared, as the gains
    assert T.predict_profile(act, 20, 2.0, 0.0)[0] == math.inf  # q overflows float64: kept at inf, no NaN


def test_limits_at_infinity_against_closed_forms():
    """lim E[f'(sqrt(q) z)^2] and lim E[f(sqrt(q) z)^2] / q: (a+^2 + a-^2) / 2 for f' -> a+- at +-inf."""
    cases = {"relu": (0.5, 0.5), "gelu": (0.5, 0.5), "hardshrink": (1.0, 1.0), "lisht": (1.0, 1.0),
             "identity": (1.0, 1.0), "softplus": (0.5, 0.5), "tanh": (0.0, 0.0), "cube": (math.inf, math.inf)}
    for name, (d2, f2) in cases.items():
        got = T.at_infinity(gradvet.activation(name))
        assert got == pytest.approx((d2, f2), abs=1e-15), name
    lam = 0.3
    elu = gradvet.activation("leaky_relu", negative_slope=lam)
    assert T.at_infinity(elu) == pytest.approx(((1 + lam**2) / 2,) * 2, rel=1e-15)


def test_the_signal_dies_out_with_chi1_at_zero():
    """From q^1 = sw2 q0 the map goes to 0: chi1 is sw2 (f'(0-)^2 + f'(0+)^2) / 2, exactly."""
    for name, sw2, slope0 in (("hardshrink", 1.0, 0.0), ("lisht", 1.0, 0.0), ("tanhshrink", 2.0, 0.0),
                              ("gelu", 2.0, 0.25), ("silu", 2.0, 0.25), ("tanh", 0.8, 1.0), ("relu", 1.0, 0.5)):
        fp = T.q_star(name, sw2, 0.0)
        assert fp.kind == T.Q_TO_ZERO and fp.q == 0.0 and fp.converged, name
        assert T.chi1(name, sw2, 0.0) == pytest.approx(sw2 * slope0, rel=1e-15, abs=0), name  # LiSHT: not 4e-300
    # tanh at its edge (sw2 = 1): q -> 0 like 1/l, chi1 = 1: critical
    assert T.phase(T.chi1("tanh", 1.0, 0.0)) == "critical" and T.q_star("tanh", 1.0, 0.0).kind == T.Q_TO_ZERO


def test_where_the_map_starts_decides_where_it_goes():
    """GELU at sw2 = 3, sb2 = 0: an unstable fixed point u with 3 E[gelu(sqrt(u) z)^2] = u (scipy quad +
    brentq). Inputs with q^1 = 3 q0 below u die out (chi1 = 3 gelu'(0)^2 = 3/4), above it they diverge
    (chi1 = 3 lim E[gelu'^2] = 3/2); the issue's q0 = 1 is above."""
    u = brentq(lambda q: 3 * gauss_quad(lambda z: gelu(math.sqrt(q) * z) ** 2) - q, 1e-3, 1.0, xtol=1e-15)
    below, above = u / 3 * (1 - 1e-6), u / 3 * (1 + 1e-6)
    assert T.q_star("gelu", 3.0, 0.0, q0=below).kind == T.Q_TO_ZERO
    assert T.chi1("gelu", 3.0, 0.0, q0=below) == pytest.approx(0.75, rel=1e-12)
    assert T.q_star("gelu", 3.0, 0.0, q0=above).kind == T.Q_TO_INFINITY
    assert T.chi1("gelu", 3.0, 0.0, q0=above) == pytest.approx(1.5, rel=1e-12)
    # predict_profile starts from the same q0 and agrees: deep down its gain per layer is 3/4 or 3/2
    for q0, target in ((below, 0.75), (above, 1.5)):
        p = T.predict_profile("gelu", 400, 3.0, 0.0, q0=q0)
        assert (p[-2] / p[-1]) ** 2 == pytest.approx(target, rel=1e-3)
    with pytest.raises(gradvet.GradvetError, match="q0"):
        T.q_star("gelu", 3.0, 0.0, q0=-1.0)


def test_depth_scales_of_a_diverging_map_against_closed_forms():
    relu = T.depth_scales("relu", 3.0, 0.0)  # q and the gradient grow by 1.5 a layer; c* = 1, C'(1) = 1
    assert relu.chi1 == pytest.approx(1.5, rel=1e-12) and relu.xi_c == math.inf
    assert relu.xi_grad == pytest.approx(-1 / math.log(1.5), rel=1e-12)
    assert relu.xi_q == pytest.approx(-1 / math.log(1.5), rel=1e-12)
    # cube: E[f(u1) f(u2)] = q^3 (9c + 6c^3) (Hermite: z^3 = He_3 + 3 He_1), so the normalised correlation
    # map is C(c) = (9c + 6c^3) / 15, c* = 0 and xi_c = -1 / log C'(0) = -1 / log(9/15)
    assert T.depth_scales("cube", 2.0, 0.0).xi_c == pytest.approx(-1 / math.log(0.6), rel=1e-9)


@pytest.mark.parametrize("name,sw2,sb2", [
    ("gelu", 3.0, 0.0), ("gelu", 2.0, 0.0), ("hardshrink", 2.0, 0.0), ("hardshrink", 1.0, 0.0), ("tanh", 1.5, 0.05),
    ("tanh", 0.8, 0.0), ("relu", 3.0, 0.0), ("softsign", 2.0, 0.0), ("selu", 1.0, 0.0), ("mish", 2.0, 0.0),
])
def test_phase_and_the_profile_agree_in_depth(name, sw2, sb2):
    """Deep enough, the predicted profile's gain per layer is chi1: the phase and the profile never part."""
    c1 = T.chi1(name, sw2, sb2)
    p = T.predict_profile(name, 300, sw2, sb2)
    deep = (p[-2] / p[-1]) ** 2  # the gain per layer at q^299, where the map has gone
    assert deep == pytest.approx(c1, rel=1e-2)
    assert (T.phase(c1) == "chaotic") == (deep > 1) and (T.phase(c1) == "ordered") == (deep < 1)


def test_phase_has_one_tolerance():
    assert T.phase(1 + T.PHASE_TOLERANCE / 2) == T.phase(1 - T.PHASE_TOLERANCE / 2) == "critical"
    assert T.phase(1 + 2 * T.PHASE_TOLERANCE) == "chaotic" and T.phase(1 - 2 * T.PHASE_TOLERANCE) == "ordered"
    assert T.phase(math.nan) == "undetermined" and T.phase(0.0) == "ordered"
    assert T.FixedPoint(math.nan, 1, False).kind == T.UNDEFINED


def test_theory_command_on_a_diverging_gelu():
    """Issue 12: `gradvet theory gelu --sw2 3 --sb2 0` said 'ordered: gradients vanish' beside a
    predicted delta_1/delta_L of 52. chi1 = 3 (gelu'(inf)^2 + gelu'(-inf)^2) / 2 = 1.5."""
    import json

    from typer.testing import CliRunner

    from gradvet.cli import app

    runner = CliRunner()
    text = runner.invoke(app, ["theory", "gelu", "--sw2", "3", "--sb2", "0"])
    assert text.exit_code == 0 and "ordered" not in text.stdout and "chaotic: gradients explode" in text.stdout
    assert "in the limit q -> inf (the length map diverges)" in text.stdout
    data = json.loads(runner.invoke(app, ["theory", "gelu", "--sw2", "3", "--sb2", "0", "--json"]).stdout)
    assert data["chi1"] == pytest.approx(1.5, rel=1e-12) and data["phase"].startswith("chaotic")
    assert data["q_star"] == "inf" and data["q_star_kind"] == "q_to_infinity" and not data["q_star_converged"]
    assert data["predicted_delta_1_over_delta_L"] > 1 and data["xi_grad"] < 0 and data["transient_note"] == ""
    # a finite depth that goes against the phase says so (softsign at sw2 = 2: q* = 0.08, the first layers shrink)
    note = runner.invoke(app, ["theory", "softsign", "--sw2", "2"]).stdout
    assert "chaotic" in note and "the gradient shrinks on the way" in note


def test_catalog_says_which_kind_each_mean_field_number_is():
    """Issue 12: the catalog's chi1 He for hardshrink was 0. With He init its map diverges and
    chi1 = 2 lim E[f'^2] = 2 P(|x| > 1/2) -> 2; at Xavier's sw2 = 1 the signal dies out, chi1 = 0."""
    import json

    from typer.testing import CliRunner

    from gradvet.cli import app

    runner = CliRunner()
    data = json.loads(runner.invoke(app, ["activations", "--family", "shrink", "--json"]).stdout)
    hard = next(d for d in data if d["name"] == "hardshrink")["mean_field"]
    assert hard["chi1_he"] == pytest.approx(2.0, rel=1e-12) and hard["chi1_he_kind"] == "q_to_infinity"
    assert hard["chi1_xavier"] == 0.0 and hard["chi1_xavier_kind"] == "q_to_zero"
    assert hard["critical_sw2"] is None and hard["critical_sw2_kind"] is None
    table = runner.invoke(app, ["activations", "--family", "shrink"]).stdout
    assert "2↑" in table and "in the limit q -> inf" in table
    shown = runner.invoke(app, ["show", "hardshrink"]).stdout
    assert "in the limit q -> inf (the length map diverges)" in shown and "in the limit q -> 0+" in shown
    # the edge of chaos and what the map does there: tanh's q* = 0 loses stability at sw2 = 1; ReLU's
    # every q is a fixed point at 2; softplus's boundary lies at q* -> inf, sw2 = 1 / lim E[sigmoid^2] = 2
    for name, edge, kind in (("tanh", 1.0, "q_to_zero"), ("relu", 2.0, "fixed_point"), ("softplus", 2.0, "q_to_infinity")):
        mf = T.mean_field(name)
        assert mf.critical_sw2 == pytest.approx(edge, rel=1e-9) and mf.critical_sw2_kind == kind, name
