"""Mean-field signal propagation: predict vanishing and exploding gradients before training.

For a fully connected net with weights W ~ N(0, sw2/n) and biases b ~ N(0, sb2)
(Poole et al. 2016; Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017):

- length map    q^{l+1} = sw2 E[f(sqrt(q^l) z)^2] + sb2,  z ~ N(0, 1); q* its fixed point;
- chi1          = sw2 E[f'(sqrt(q*) z)^2]: the factor by which each layer scales the
                  squared backward signal; < 1 ordered (gradients vanish), > 1 chaotic
                  (they explode), = 1 critical (the edge of chaos);
- depth scales  xi_q = -1/log(dq^{l+1}/dq^l at q*), xi_c = -1/log chi_c (chi_c = chi1 in
                  the ordered phase), xi_grad = -1/log chi1 (negative: the gradient grows).

Gaussian expectations: composite Gauss-Legendre (24 nodes a piece, split at the
activation's kinks, at every integer z and at every unit step of x = sqrt(q) z; `_rule`).
Gauss-Hermite of order 101 was tried first and missed the erf kernel's closed form by
2e-7 at q = 4 (f(sqrt(q) z) saturates faster than the Hermite polynomials resolve) and
loses its spectral convergence at kinks; the 2-D correlation map uses a product of
composite rules too (`_rule_2d`). The derivative is the catalog's closed form, never a
numerical derivative of f.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from gradvet.activations import Activation, activation as get_activation
from gradvet.activations.cache import CATALOG_SOURCES, DiskTable
from gradvet.activations.properties import gauss_legendre_pieces
from gradvet.errors import GradvetError

MAX_ITER = 2000
TOL = 1e-12
DIVERGED = 1e12



def _act(act: Activation | str) -> Activation:
    return get_activation(act)


HALF_WIDTH = 40.0  # |z| <= 40: the Gaussian weight beyond is below 1e-347, zero in float64


def _gauss_pieces(base_cuts: set[float], breakpoints: tuple[float, ...], q: float, half_width: float,
                  legendre: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights (Gaussian density included) of composite Gauss-Legendre
    (`activations.properties.gauss_legendre_pieces`) over the pieces between `base_cuts`, the
    breakpoints and the unit steps of x = sqrt(q) z (|x| <= 40) that lie within |z| < half_width."""
    s = math.sqrt(max(q, 1e-300))
    cuts = set(base_cuts)
    cuts |= {c / s for c in list(breakpoints) + [float(k) for k in range(-40, 41)] if abs(c / s) < half_width}
    return gauss_legendre_pieces(sorted(cuts), legendre)


_CUTS_1D = {float(k) for k in range(-10, 11)} | {-40.0, -32.0, -24.0, -16.0, -12.0, 12.0, 16.0, 24.0, 32.0, 40.0}


@functools.lru_cache(maxsize=4096)
def _rule(breakpoints: tuple[float, ...], q: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes x = sqrt(q) z and weights (Gaussian density included) of composite Gauss-Legendre
    (24 nodes a piece) on |z| <= 40, split at the activation's breakpoints, at every integer z up
    to |z| = 10 (then at 12, 16, 24, 32, 40, where the weight is below 1e-22), and
    at every unit step of x (|x| <= 40), so a function that saturates within |x| ~ 1 is resolved
    at any q. q = 0 is taken as the limit q -> 0+ (ReLU's E[f'^2] stays 1/2 there)."""
    z, w = _gauss_pieces(_CUTS_1D, breakpoints, q, HALF_WIDTH)
    return math.sqrt(max(q, 1e-300)) * z, w


def expectations(act: Activation, g, qs) -> np.ndarray:
    """E[g(sqrt(q) z)] for z ~ N(0, 1) at every q in qs, with one call of g (torch -> torch) on
    all nodes together; g is f, f' or a function of them. See `_rule` for the quadrature."""
    qs = [float(q) for q in np.atleast_1d(qs)]
    if any(q < 0 for q in qs):
        raise GradvetError(f"variance q={min(qs):g} must be >= 0.")
    rules = [_rule(tuple(act.properties.breakpoints), q) for q in qs]
    x = np.concatenate([r[0] for r in rules])
    w = np.concatenate([r[1] for r in rules])
    with torch.no_grad():
        gx = g(torch.from_numpy(x)).to(torch.float64).numpy()
    starts = np.cumsum([0] + [len(r[0]) for r in rules[:-1]])
    return np.add.reduceat(gx * w, starts)


def expectation(act: Activation, g, q: float) -> float:
    """E[g(sqrt(q) z)] for z ~ N(0, 1), where g is f, f' or a function of them (torch -> torch)."""
    return float(expectations(act, g, [q])[0])


def length_map(act: Activation, q: float, sw2: float, sb2: float) -> float:
    """q -> sw2 E[f(sqrt(q) z)^2] + sb2."""
    return sw2 * expectation(act, lambda x: act.fn(x) ** 2, q) + sb2


def chi(act: Activation, q: float, sw2: float) -> float:
    """sw2 E[f'(sqrt(q) z)^2]: the squared backward gain of one layer at variance q."""
    return sw2 * expectation(act, lambda x: act.grad(x) ** 2, q)


@dataclass(frozen=True)
class FixedPoint:
    """q*, the iterations it took, and whether the length map converged (else it diverged)."""

    q: float
    iterations: int
    converged: bool
    message: str = ""
    q_last: float | None = None  # where the search stopped, when it diverged


def _check(sw2: float, sb2: float) -> None:
    if not (math.isfinite(sw2) and sw2 > 0):
        raise GradvetError(f"sw2={sw2!r} must be a finite number > 0.")
    if not (math.isfinite(sb2) and sb2 >= 0):
        raise GradvetError(f"sb2={sb2!r} must be a finite number >= 0.")


@functools.lru_cache(maxsize=4096)
def _q_star(act: Activation, sw2: float, sb2: float, q0: float) -> FixedPoint:
    """Root of F(q) = M(q) - q, bracketed from q0 by doubling or halving, then Brent's method.

    F(0) = sw2 f(0)^2 + sb2 >= 0. With f(0) = 0 and sb2 = 0, q* = 0 when that fixed point is
    stable (sw2 f'(0)^2 <= 1); a map that stays above the diagonal has no fixed point (it diverges).
    """
    from scipy.optimize import brentq

    evals = 0

    def F(q: float) -> float:
        nonlocal evals
        evals += 1
        return length_map(act, q, sw2, sb2) - q

    f0 = float(act.fn(torch.zeros(1, dtype=torch.float64))[0])
    if sb2 == 0 and f0 == 0:
        eps = 1e-8
        slope0 = length_map(act, eps, sw2, 0.0) / eps  # the map's slope at q = 0
        if slope0 < 1 - 1e-9:
            return FixedPoint(0.0, 0, True, f"q* = 0: the signal dies out (slope of the length map at 0 is {slope0:.3g})")
        if abs(slope0 - 1) <= 1e-9 and abs(length_map(act, q0, sw2, 0.0) - q0) <= 1e-9 * q0:
            return FixedPoint(q0, 0, True, "every q is a fixed point (a scale-free activation at criticality)")
    lo, hi = q0, q0
    if F(q0) > 0:
        while F(hi) > 0:
            lo, hi = hi, hi * 2
            if hi > DIVERGED:
                return FixedPoint(math.inf, evals, False,
                                  f"no fixed point: the length map stays above q up to q = {DIVERGED:g} (it diverges)",
                                  q_last=lo)
    else:
        while F(lo) < 0:
            hi, lo = lo, lo / 2
            if lo < 1e-300:
                return FixedPoint(0.0, evals, True, "q* = 0")
    q = brentq(F, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=200)
    return FixedPoint(float(q), evals, True)


def q_star(act: Activation | str, sw2: float, sb2: float, q0: float = 1.0) -> FixedPoint:
    """The fixed point of the length map, iterated from q0."""
    _check(sw2, sb2)
    return _q_star(_act(act), float(sw2), float(sb2), float(q0))


def chi1(act: Activation | str, sw2: float, sb2: float) -> float:
    """sw2 E[f'(sqrt(q*) z)^2]. Without a fixed point (the map diverges) it is the gain at the
    largest q reached, the limit for scale-free activations (ReLU: sw2/2 at every q)."""
    a = _act(act)
    fp = q_star(a, sw2, sb2)
    return chi(a, fp.q if math.isfinite(fp.q) else fp.q_last, sw2)


@dataclass(frozen=True)
class DepthScales:
    xi_q: float
    xi_c: float
    xi_grad: float
    chi1: float
    q_star: float


def _xi(factor: float) -> float:
    """-1/log(factor): the depth over which a factor per layer changes a signal by e."""
    if factor <= 0:
        return 0.0
    if factor == 1:
        return math.inf
    return -1.0 / math.log(factor)


def depth_scales(act: Activation | str, sw2: float, sb2: float) -> DepthScales:
    """xi_q, xi_c, xi_grad at the fixed point (Schoenholz et al. 2017, eqs. 5, 9, 13)."""
    a = _act(act)
    fp = q_star(a, sw2, sb2)
    if not math.isfinite(fp.q):
        return DepthScales(0.0, 0.0, -0.0, math.inf, math.inf)
    c1 = chi(a, fp.q, sw2)
    h = 1e-5 * max(fp.q, 1e-3)
    lo = max(fp.q - h, 0.0)
    slope = (length_map(a, fp.q + h, sw2, sb2) - length_map(a, lo, sw2, sb2)) / (fp.q + h - lo)
    chi_c = c1 if c1 <= 1 else _chi_c(a, fp.q, sw2, sb2)
    xi_c = _xi(chi_c) if chi_c < 1 else math.inf  # chi_c >= 1: c* is 1 to our resolution (next to the edge)
    return DepthScales(_xi(abs(slope)), xi_c, _xi(c1), c1, fp.q)


_LEGENDRE_8 = np.polynomial.legendre.leggauss(8)


@functools.lru_cache(maxsize=1024)
def _rule_2d(breakpoints: tuple[float, ...], q: float) -> tuple[np.ndarray, np.ndarray]:
    """One dimension of the correlation map's product rule: nodes z and weights (density
    included) of composite Gauss-Legendre with 8 nodes a piece on |z| <= 10 (the weight beyond
    is below 1e-22), split at integers, at the breakpoints and at unit steps of x = sqrt(q) z
    (|x| <= 40), so that saturation within |x| ~ 1 is resolved; at most ~900 nodes."""
    return _gauss_pieces({float(k) for k in range(-10, 11)}, breakpoints, q, 10.0, _LEGENDRE_8)


def _chi_c(act: Activation, q: float, sw2: float, sb2: float) -> float:
    """In the chaotic phase: sw2 E[f'(u1) f'(u2)] at the stable correlation c* < 1.

    u1 = sqrt(q) z1, u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2), by the product of `_rule_2d` with
    itself. The correlation map C(c) = (sw2 E[f(u1) f(u2)] + sb2) / q is divided by the same
    rule's q (sw2 E[f(u1)^2] + sb2), so that C(1) = 1 exactly, as it must be. C(1) = 1 with slope
    chi1 > 1, so C(c) < c just below 1; C(0) >= 0, and C rises on [0, 1] (its Hermite series has
    non-negative coefficients). c* is the root of C(c) - c in [0, 1) by Brent's method; c* = 0
    when C(0) = 0 (odd f, sb2 = 0). Checked against a brute-force 3001 x 3001 grid (tests).
    """
    from scipy.optimize import brentq

    z, wz = _rule_2d(tuple(act.properties.breakpoints), q)
    s = math.sqrt(q)
    z1, z2 = z[:, None], z[None, :]
    w = np.outer(wz, wz)
    with torch.no_grad():
        x = torch.from_numpy(s * z)
        f1, d1 = act.fn(x).numpy(), act.grad(x).numpy()
    q_rule = sw2 * float((wz * f1 * f1).sum()) + sb2
    f1, d1 = f1[:, None], d1[:, None]

    def u2(c: float) -> torch.Tensor:
        return torch.from_numpy(s * (c * z1 + math.sqrt(max(1 - c * c, 0.0)) * z2))

    def excess(c: float) -> float:
        with torch.no_grad():
            return (sw2 * float((w * f1 * act.fn(u2(c)).numpy()).sum()) + sb2) / q_rule - c

    top = 1 - 1e-7
    c = 0.0 if excess(0.0) <= 0 else (brentq(excess, 0.0, top, xtol=1e-13) if excess(top) < 0 else top)
    with torch.no_grad():
        return sw2 * float((w * d1 * act.grad(u2(c)).numpy()).sum())


CURVE_Q = np.geomspace(1e-8, 1e8, 81)  # q* values at which the critical line is tabulated


@dataclass(frozen=True)
class CriticalLine:
    """The edge of chaos parametrised by the fixed point q* (Schoenholz et al. 2017, sec. 3).

    At a fixed point q = sw2 E[f(sqrt(q) z)^2] + sb2 with chi1 = sw2 E[f'(sqrt(q) z)^2] = 1:
    sw2(q) = 1 / E[f'^2](q) and sb2(q) = q - E[f^2](q) / E[f'^2](q). One pass over a grid of q
    gives the whole order-chaos boundary; a given sb2 is then one root in q.
    """

    q: np.ndarray
    f2: np.ndarray
    d2: np.ndarray
    d2_infinity: float  # lim E[f'^2](q) for q -> inf: (f'(+inf)^2 + f'(-inf)^2) / 2

    def sb2(self) -> np.ndarray:
        """sb2(q) at every tabulated q (NaN where E[f'^2] = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.q - self.f2 / self.d2


@functools.lru_cache(maxsize=256)
def critical_line(act: Activation) -> CriticalLine:
    """Tabulate E[f^2] and E[f'^2] at every q in CURVE_Q (cached per activation)."""
    f2 = expectations(act, lambda x: act.fn(x) ** 2, CURVE_Q)
    d2 = expectations(act, lambda x: act.grad(x) ** 2, CURVE_Q)
    tails = act.grad(torch.tensor([-1e16, 1e16], dtype=torch.float64))
    d2_inf = float((tails**2).mean()) if bool(torch.isfinite(tails).all()) else math.nan
    return CriticalLine(CURVE_Q, f2, d2, d2_inf)


def _sb2_at(act: Activation, q: float) -> tuple[float, float]:
    """(sb2, sw2) of the critical point whose fixed point is q."""
    d2 = expectation(act, lambda x: act.grad(x) ** 2, q)
    f2 = expectation(act, lambda x: act.fn(x) ** 2, q)
    return q - f2 / d2, 1 / d2


def critical_sw2(act: Activation | str, sb2: float = 0.0, low: float = 1e-2, high: float = 100.0) -> float | None:
    """The sw2 at which chi1 = 1 (the edge of chaos) for bias variance sb2, or None where there
    is none with sw2 in [low, high].

    - Scale-free f (chi the same at every q): sw2 = 1/E[f'(z)^2] at every sb2 (ReLU: 2).
    - sb2 = 0 and f(0) = 0: q* = 0 loses stability at sw2 = 1/f'(0)^2 (tanh: 1), or
      2/(f'(0-)^2 + f'(0+)^2) at a kink, where chi1 crosses 1 continuously. Where it jumps
      instead (GELU, swish: q* leaps from 0 to a diverging map with chi1 near sw2/2), that sw2
      is no edge of chaos and the search goes on.
    - Otherwise the root in q of sb2(q) = sb2 on the critical line (`critical_line`), refined by
      Brent's method, kept only where the length map reaches that fixed point from q = 1 (an
      unstable fixed point is no phase boundary).
    - Where sb2(q) stays below sb2 up to q = 1e8 while E[f'^2] tends to a limit (softplus), the
      boundary lies at q* -> inf: sw2 = 1/lim E[f'^2], kept when chi1 crosses 1 there.
    """
    from scipy.optimize import brentq

    _check(1.0, sb2)
    a = _act(act)

    def within(value: float | None) -> float | None:
        return float(value) if value is not None and math.isfinite(value) and low <= value <= high else None

    def crosses(s: float, step: float = 1e-4) -> bool:
        """chi1 rises through 1 at s, continuously (no jump to a far fixed point)."""
        return chi1(a, s * (1 - step), sb2) < 1 and abs(chi1(a, s * (1 + step), sb2) - 1) < 100 * step

    probe_q = (1e-6, 1.0, 1e6)
    d2 = expectations(a, lambda x: a.grad(x) ** 2, probe_q)
    if np.all(np.isfinite(d2)) and d2.min() > 0 and np.ptp(d2) <= 1e-9 * d2.max():  # scale-free
        return within(1 / d2[1])
    tiny = torch.tensor([-1e-300, 0.0, 1e-300], dtype=torch.float64)
    f0, slopes0 = float(a.fn(tiny)[1]), a.grad(tiny)[[0, 2]]
    if sb2 == 0 and f0 == 0:
        slope_sq = float((slopes0**2).mean())
        edge0 = 1 / slope_sq if slope_sq > 0 else None
        if within(edge0) is not None and crosses(edge0):
            return edge0
    line = critical_line(a)
    gap = line.sb2() - sb2
    roots = []
    for i in range(len(gap) - 1):
        g0, g1 = gap[i], gap[i + 1]
        if not (math.isfinite(g0) and math.isfinite(g1)):
            continue
        if g0 == 0:
            roots.append(float(line.q[i]))
        elif g0 * g1 < 0:
            roots.append(float(brentq(lambda q: _sb2_at(a, q)[0] - sb2, line.q[i], line.q[i + 1], xtol=1e-300, rtol=1e-14)))
    candidates = [(q, _sb2_at(a, q)[1]) for q in roots]
    candidates = [(q, s) for q, s in candidates if within(s) is not None]
    for q, s in candidates:  # keep a critical fixed point only where the length map reaches it from q = 1
        if math.isclose(q_star(a, s, sb2).q, q, rel_tol=1e-6):
            return s
    finite = np.isfinite(gap)
    if finite.any() and gap[finite][-1] < 0 and line.d2_infinity > 0:
        edge = within(1 / line.d2_infinity)
        if edge is not None and chi1(a, edge * (1 - 1e-3), sb2) < 1 <= chi1(a, edge * (1 + 1e-3), sb2):
            return edge
    return None


def phase_diagram(act: Activation | str, sb2_values=None) -> dict[str, list]:
    """The order-chaos boundary: critical sw2 for each sb2 (None where there is none). By default
    50 values of sb2 in [0, 2]: 0 and 49 spaced geometrically from 1e-3, since the boundary is
    steepest near sb2 = 0 (tanh: sw2 = 1 at 0, 1.76 at 0.05)."""
    sb2s = np.concatenate([[0.0], np.geomspace(1e-3, 2.0, 49)]) if sb2_values is None \
        else np.asarray(sb2_values, dtype=float)
    return {"sb2": [float(v) for v in sb2s], "critical_sw2": [critical_sw2(act, float(v)) for v in sb2s]}


@dataclass(frozen=True)
class MeanField:
    """The catalog's mean-field numbers for one activation, all at sb2 = 0: the edge of chaos and
    chi1 at He's (sw2 = 2) and Xavier's (sw2 = 1 for square layers) weight variance."""

    critical_sw2: float | None
    chi1_he: float
    chi1_xavier: float

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


_MEAN_FIELD = DiskTable("mean-field", CATALOG_SOURCES + (Path(__file__),))


def _compute_mean_field(act: Activation) -> MeanField:
    return MeanField(critical_sw2(act, 0.0), chi1(act, 2.0, 0.0), chi1(act, 1.0, 0.0))


def mean_field(act: Activation | str) -> MeanField:
    """`MeanField` of `act`, cached on disk beside its properties (see `activations.cache`)."""
    return _MEAN_FIELD.get(_act(act), _compute_mean_field, MeanField.to_dict, lambda d: MeanField(**d))


def _per_layer(value, depth: int, name: str) -> list[float]:
    values = [float(value)] * depth if np.isscalar(value) else [float(v) for v in value]
    if len(values) != depth:
        raise GradvetError(f"{name} has {len(values)} values; give one number or one per hidden layer ({depth}).")
    return values


def predict_profile(act: Activation | str, depth: int, sw2, sb2, q0: float = 1.0) -> list[float]:
    """Expected ||delta_l|| / ||delta_L|| for hidden layers l = 1..depth.

    sw2 and sb2 are one number, or one per hidden layer (a layer's n_in Var(W) and Var(b), as
    measured on a real net). The length map is iterated layer by layer from the input's second
    moment q0 (q^1 = sw2_1 q0 + sb2_1, q^{l+1} = sw2_{l+1} E[f(sqrt(q^l) z)^2] + sb2_{l+1}): a real
    net need not start at q*. Backward, delta_l = f'(z_l) * W_{l+1}^T delta_{l+1}, so
    ||delta_l||^2 ~ sw2_{l+1} E[f'(sqrt(q^l) z)^2] ||delta_{l+1}||^2.
    """
    if not isinstance(depth, int) or depth < 1:
        raise GradvetError(f"depth={depth!r} must be a whole number >= 1.")
    sw2s, sb2s = _per_layer(sw2, depth, "sw2"), _per_layer(sb2, depth, "sb2")
    for w, b in zip(sw2s, sb2s):
        _check(w, b)
    if not (math.isfinite(q0) and q0 >= 0):
        raise GradvetError(f"q0={q0!r} must be a finite number >= 0.")
    a = _act(act)
    qs = [sw2s[0] * q0 + sb2s[0]]
    for l in range(1, depth):
        qs.append(length_map(a, qs[-1], sw2s[l], sb2s[l]))
    d2 = expectations(a, lambda x: a.grad(x) ** 2, qs)
    profile = [1.0] * depth
    for l in range(depth - 2, -1, -1):
        profile[l] = profile[l + 1] * math.sqrt(sw2s[l + 1] * d2[l])
    return profile


def chain_bound(weights, biases, x: float = 0.0) -> dict[str, list[float] | float]:
    """The article's single-neuron sigmoid chain: per neuron z, sigma'(z), |w sigma'(z)| and the
    product of the factors above it; and the (1/4)^depth bound on the sigma' product."""
    w = [float(v) for v in weights]
    b = [float(v) for v in biases]
    if len(w) != len(b) or not w:
        raise GradvetError("chain_bound needs as many biases as weights, at least one.")
    a, zs = x, []
    for wi, bi in zip(w, b):
        z = wi * a + bi
        zs.append(z)
        a = 1 / (1 + math.exp(-z))
    d = [math.exp(-z) / (1 + math.exp(-z)) ** 2 for z in zs]
    factors = [abs(wi * di) for wi, di in zip(w, d)]
    return {"z": zs, "sigma_prime": d, "factors": factors, "product": math.prod(d[:1]) * math.prod(factors[1:]),
            "bound": 0.25 ** len(w)}


def window_width(w: float) -> float:
    """Nielsen's width of the input window where |w sigma'(wa + b)| >= 1:
    (2/|w|) ln(|w|(1 + sqrt(1 - 4/|w|))/2 - 1); 0 for |w| < 4."""
    w = abs(w)
    if w < 4:
        return 0.0
    return (2 / w) * math.log(w * (1 + math.sqrt(1 - 4 / w)) / 2 - 1)


@dataclass(frozen=True)
class Spectrum:
    singular_values: list[float]
    mean: float
    std: float
    max: float


def jacobian_spectrum(model: torch.nn.Module, x: torch.Tensor) -> Spectrum:
    """Singular values of the input-output Jacobian d model(x) / dx, over every sample of x
    (dynamical isometry: all near 1; Pennington, Schoenholz & Ganguli 2017)."""
    if x.dim() == 1:
        x = x.unsqueeze(0)
    values = []
    was_training = model.training
    model.eval()
    try:
        for sample in x:
            jac = torch.autograd.functional.jacobian(lambda v: model(v.unsqueeze(0)).squeeze(0), sample)
            values.append(torch.linalg.svdvals(jac.reshape(jac.shape[0], -1)))
    finally:
        model.train(was_training)
    sv = torch.cat(values).double()
    return Spectrum(sv.tolist(), float(sv.mean()), float(sv.std()) if sv.numel() > 1 else 0.0, float(sv.max()))
