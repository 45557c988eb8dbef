"""Mean-field signal propagation: predict vanishing and exploding gradients before training.

For a fully connected net with weights W ~ N(0, sw2/n) and biases b ~ N(0, sb2)
(Poole et al. 2016; Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017):

- length map    q^{l+1} = sw2 E[f(sqrt(q^l) z)^2] + sb2,  z ~ N(0, 1), iterated from the
                  input's q (q^1 = sw2 q0 + sb2, q0 = 1 by default): it goes to a fixed point
                  q* > 0, to 0 (the signal dies out) or to infinity (it diverges), `q_star`;
- chi1          = sw2 E[f'(sqrt(q) z)^2] where the map goes (at q*, at q -> 0+, or its limit
                  q -> inf): the factor by which each layer scales the squared backward
                  signal; < 1 ordered (gradients vanish), > 1 chaotic (they explode), = 1
                  critical (the edge of chaos), `phase`;
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

from gradvet.activations import Activation
from gradvet.activations import activation as get_activation
from gradvet.activations.cache import CATALOG_SOURCES, DiskTable
from gradvet.activations.properties import gauss_legendre_pieces
from gradvet.base import validation
from gradvet.base.errors import GradvetError

DIVERGED = 1e12  # the length map counts as diverging once the search for q* passes this q
NOISE = 1e-12  # |M(q) - q| below NOISE * q is quadrature rounding, not a sign (softplus at sw2 = 2: M(q) - q ~ q^-1/2)
Q_TINY = 1e-8  # below min(Q_TINY, Q_TINY * q) a map with f(0) = 0 and sb2 = 0 is its linear part sw2 E[f'(0)^2] q

# Which end of the length map, iterated from the input's q, a q* and its chi1 belong to.
FIXED_POINT = "fixed_point"  # a fixed point q* > 0
Q_TO_INFINITY = "q_to_infinity"  # the map diverges: chi1 is its limit for q -> inf
Q_TO_ZERO = "q_to_zero"  # the signal dies out, q* = 0: chi1 is its limit for q -> 0+
UNDEFINED = "undefined"  # the map is NaN (f undefined where the signal goes)
KIND_TEXT = {FIXED_POINT: "at the fixed point q*", Q_TO_INFINITY: "in the limit q -> inf (the length map diverges)",
             Q_TO_ZERO: "in the limit q -> 0+ (the signal dies out)", UNDEFINED: "undefined (the length map is NaN)"}


def _act(act: Activation | str) -> Activation:
    return get_activation(act)


HALF_WIDTH = 40.0  # |z| <= 40: the Gaussian weight beyond is below 1e-347, zero in float64
Q_ZERO_SCALE = 1e-300  # sqrt(q) that stands for q -> 0+ in the quadrature (`_rule`)


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
    at any q. q = 0 is taken as the limit q -> 0+: x = Q_ZERO_SCALE z, where f' takes its one-sided
    values at 0 (ReLU's E[f'^2] stays 1/2) and anything of order x^2 underflows to 0 (LiSHT's
    f'(x)^2 ~ 4x^2: chi = 0, not 4e-300)."""
    z, w = _gauss_pieces(_CUTS_1D, breakpoints, q, HALF_WIDTH)
    return (math.sqrt(q) if q > 0 else Q_ZERO_SCALE) * z, w


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
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf where f overflows: NaN, a result
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
    """Where the length map goes from the input's q: to a fixed point q* (`converged`; q* = 0 when
    the signal dies out) or nowhere (`converged` False, q = inf: it diverges; NaN where the map is
    not a number), with the evaluations of the map it took and a sentence saying which."""

    q: float
    iterations: int
    converged: bool
    message: str = ""
    q_last: float | None = None  # where the search stopped, when it diverged

    @property
    def kind(self) -> str:
        """FIXED_POINT, Q_TO_INFINITY, Q_TO_ZERO or UNDEFINED: which chi1 belongs to this map."""
        if math.isnan(self.q):
            return UNDEFINED
        if not self.converged:
            return Q_TO_INFINITY
        return Q_TO_ZERO if self.q == 0 else FIXED_POINT


def _real(value):
    """A numpy or torch scalar as a Python float, for gradvet.base.validation; anything else as it is."""
    return float(value) if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 else value


def _check(sw2: float, sb2: float) -> None:
    validation.positive_number("sw2", _real(sw2))
    validation.finite_number("sb2", _real(sb2), low=0.0)


def _check_q0(q0: float) -> None:
    """q0, the input's second moment: a finite number >= 0."""
    validation.finite_number("q0", _real(q0), low=0.0)


@functools.lru_cache(maxsize=4096)
def _q_star(act: Activation, sw2: float, sb2: float, q1: float) -> FixedPoint:
    """The fixed point the length map M reaches from q1, the first layer's pre-activation variance.

    Where M increases (E[f(sqrt(q) z)^2] does for most f) the iterates q1, M(q1), M(M(q1)), ...
    move monotonically to the nearest root of F(q) = M(q) - q on the side F(q1) points to (where
    M decreases, as for the Gaussian bump, they circle that same root). So the root is bracketed
    from q1 by doubling (F(q1) > 0) or halving (F(q1) < 0), 8 steps to one quadrature call, and
    then found by Brent's method:

    - doubling past DIVERGED (F >= -NOISE q all the way) is a diverging map: no fixed point;
    - halving: F(0) = sw2 f(0)^2 + sb2 >= 0. F(0) > 0 brackets a root in (0, q]. F(0) = 0
      (f(0) = 0, sb2 = 0) with F < 0 down to Q_TINY and the map's slope at 0,
      chi(q -> 0+) = sw2 (f'(0-)^2 + f'(0+)^2) / 2, at most 1 is q* = 0: the signal dies out.
      (Deciding q* = 0 from that slope alone, without starting at q1, was issue 12's bug: GELU at
      sw2 = 3 has slope 3/4 at 0, yet from q = 3 its map diverges.)
    """
    from scipy.optimize import brentq

    evals = 0

    def excess(qs: list[float]) -> np.ndarray:
        """F at every q in qs, with one quadrature call."""
        nonlocal evals
        evals += len(qs)
        return sw2 * expectations(act, lambda x: act.fn(x) ** 2, qs) + sb2 - np.asarray(qs)

    def steps(factor: float):
        """(q, F(q)) at q1 factor^k, k = 1, 2, ..., computed 8 at a time."""
        k = 1
        while True:
            qs = [q1 * factor**j for j in range(k, k + 8)]
            yield from zip(qs, (float(v) for v in excess(qs)))
            k += 8

    def undefined(q: float) -> FixedPoint:
        return FixedPoint(math.nan, evals, False, f"the length map is not a number at q = {q:.3g}")

    f0 = float(act.fn(torch.zeros(1, dtype=torch.float64))[0])
    F0 = sw2 * f0 * f0 + sb2  # F(0) = M(0)
    if math.isnan(F0):
        return undefined(0.0)
    slope0 = chi(act, 0.0, sw2) if F0 == 0 else math.nan  # the map's slope at 0 when M(0) = 0
    if q1 == 0:
        if F0 == 0:
            return FixedPoint(0.0, evals, True, "q* = 0: the input is zero and so is every layer")
        q1 = F0  # one step of the map
    start = float(excess([q1])[0])
    if math.isnan(start):
        return undefined(q1)
    if abs(start) <= NOISE * q1:
        message = "every q is a fixed point (a scale-free activation at criticality)" \
            if F0 == 0 and abs(slope0 - 1) <= 1e-9 else ""
        return FixedPoint(q1, evals, True, message)
    tiny = min(Q_TINY, Q_TINY * q1)
    if start > 0:
        lo = q1
        for q, value in steps(2.0):
            if math.isnan(value):
                return undefined(q)
            if value <= -NOISE * q:
                hi = q
                break
            if value > 0:
                lo = q
            if q > DIVERGED:
                return FixedPoint(math.inf, evals, False, f"no fixed point: from q = {q1:.3g} the length map"
                                  f" grows past q = {DIVERGED:g} (it diverges)", q_last=lo)
    else:
        hi = q1
        for q, value in steps(0.5):
            if math.isnan(value):
                return undefined(q)
            if value >= 0:
                lo = q
                break
            hi = q
            if q < tiny and F0 > 0:
                lo = 0.0  # F(0) > 0: a root in (0, hi)
                break
            if (q < tiny and slope0 <= 1) or q < 1e-300:
                return FixedPoint(0.0, evals, True, f"q* = 0: from q = {q1:.3g} the signal dies out (the length"
                                  f" map's slope at 0 is {slope0:.3g})")
    q = brentq(lambda v: float(excess([v])[0]), lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=200)
    return FixedPoint(float(q), evals, True)


def q_star(act: Activation | str, sw2: float, sb2: float, q0: float = 1.0) -> FixedPoint:
    """The fixed point of the length map iterated from the input's second moment q0 (the first
    layer's pre-activation variance is q^1 = sw2 q0 + sb2, as in `predict_profile`), or the
    diverging map's report (see `_q_star`)."""
    _check(sw2, sb2)
    _check_q0(q0)
    return _q_star(_act(act), float(sw2), float(sb2), float(sw2) * float(q0) + float(sb2))


LADDER_Q = (1e16, 1e32)  # where lim q -> inf is read; E[g] approaches its limit like q^-1/2 (1e-16 at 1e32)
GROWS = 1.1  # a rise by more than this factor from 1e16 to 1e32 is growth without bound
LIMITS_AGREE = 1e-9  # two limits at q = 1e32 that are equal analytically agree to ~1e-16: within this, equal


@functools.lru_cache(maxsize=256)
def at_infinity(act: Activation) -> tuple[float, float]:
    """(lim E[f'(sqrt(q) z)^2], lim E[f(sqrt(q) z)^2] / q) for q -> inf: the backward gain per
    unit sw2 and the length map's growth per unit sw2 of a diverging map, computed by the same
    quadrature at q = 1e16 and 1e32 (`LADDER_Q`).

    For f' with limits a+- at +-inf, both tend to (a+^2 + a-^2) / 2 with an error of order
    q^-1/2 (the width of the region around 0 where f' differs), below 1e-16 at q = 1e32, whose
    value is returned; where the value at 1e32 is more than `GROWS` times the one at 1e16, or
    overflows, f' grows without bound (cube: 27 q^2) and the limit is inf. An f' that oscillates
    for ever (snake: 1 + sin 2x) gives its average to about 3%.
    """
    def limit(values: np.ndarray) -> float:
        near, far = (float(v) for v in values)
        if math.isnan(far) or math.isnan(near):
            return math.nan
        return math.inf if math.isinf(far) or far > GROWS * near else far

    d2 = expectations(act, lambda x: act.grad(x) ** 2, LADDER_Q)
    f2 = expectations(act, lambda x: act.fn(x) ** 2, LADDER_Q) / np.asarray(LADDER_Q)
    return limit(d2), limit(f2)


def _chi1_at(act: Activation, fp: FixedPoint, sw2: float) -> float:
    """chi1 of the map whose end `fp` describes: at q*, at q -> 0+ (`_rule`), or in the limit q -> inf."""
    if fp.kind == UNDEFINED:
        return math.nan
    if fp.kind == Q_TO_INFINITY:
        return sw2 * at_infinity(act)[0]
    return chi(act, fp.q, sw2)


def chi1(act: Activation | str, sw2: float, sb2: float, q0: float = 1.0) -> float:
    """sw2 E[f'(sqrt(q) z)^2] where the length map goes from the input's q0 (`q_star`): at the
    fixed point q*, at q -> 0+ when the signal dies out, and in the limit q -> inf when the map
    diverges (ReLU: sw2/2 at every q; hardshrink: sw2, since f' -> 1 at both ends)."""
    a = _act(act)
    return _chi1_at(a, q_star(a, sw2, sb2, q0), sw2)


PHASE_TOLERANCE = 1e-6
PHASE_MEANING = {"ordered": "gradients vanish", "critical": "gradients neither vanish nor explode exponentially",
                 "chaotic": "gradients explode", "undetermined": "chi1 is not a number"}


def phase(chi1_value: float) -> str:
    """The phase of a net whose backward gain per layer is chi1: 'critical' within
    PHASE_TOLERANCE of 1, 'ordered' below (gradients vanish), 'chaotic' above (they explode),
    'undetermined' where chi1 is NaN (`PHASE_MEANING` says it in words).

    1e-6: chi1 and the edge of chaos are computed to about 1e-12, so the tolerance is far above
    their rounding, and within it the gradient's depth scale |xi_grad| = 1/|log chi1| exceeds
    10^6 layers, deeper than any net; whether a given depth vanishes or explodes is then the
    predicted profile's to say (`predict_profile`).
    """
    if math.isnan(chi1_value):
        return "undetermined"
    if abs(chi1_value - 1) <= PHASE_TOLERANCE:
        return "critical"
    return "ordered" if chi1_value < 1 else "chaotic"


def transient_note(chi1_value: float, profile: list[float]) -> str:
    """One sentence where a finite-depth profile (`predict_profile`) goes against the phase of
    chi1, else ''. The layers near the input sit at q^l far from where the length map ends (q*,
    0 or inf), so their gains sw2 E[f'(sqrt(q^l) z)^2] can lie on the other side of 1 (softsign
    at sw2 = 2: chi1 = 1.04 at q* = 0.08, but the first layers, at q ~ 2, shrink the gradient)."""
    name, ratio = phase(chi1_value), profile[0]
    if not ((name == "ordered" and ratio > 1) or (name == "chaotic" and ratio < 1)):
        return ""
    return (f"over these {len(profile)} layers the signal is still on its way from the input's q to where the length"
            f" map ends, and the gradient {'grows' if ratio > 1 else 'shrinks'} on the way (delta_1/delta_L ="
            f" {ratio:.3g}); deeper nets follow chi1")


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


def depth_scales(act: Activation | str, sw2: float, sb2: float, q0: float = 1.0) -> DepthScales:
    """xi_q, xi_c, xi_grad where the length map goes from the input's q0 (Schoenholz et al. 2017,
    eqs. 5, 9, 13), with chi1 as `chi1` gives it.

    Where the map diverges there is no q* to approach and every number is its limit q -> inf
    (`at_infinity`): xi_q = -1/log g with g = sw2 lim E[f^2]/q the factor by which q grows per
    layer (negative: q grows e-fold every |xi_q| layers); the correlation map's slope at c = 1 is
    C'(1) = sw2 E[f'^2] q^l / q^{l+1} -> lim E[f'^2] / lim (E[f^2]/q), which is 1 for every f' with
    limits at +-inf (both are (a+^2 + a-^2) / 2): c* = 1 and xi_c = inf. Where C'(1) > 1 (cube,
    snake's ripple) c* < 1 and chi_c is taken at the largest q the search reached (`_chi_c`).
    """
    a = _act(act)
    fp = q_star(a, sw2, sb2, q0)
    c1 = _chi1_at(a, fp, sw2)
    if math.isnan(c1):
        return DepthScales(math.nan, math.nan, math.nan, c1, fp.q)
    if fp.kind == Q_TO_INFINITY:
        d2_inf, f2_inf = at_infinity(a)
        xi_q = _xi(sw2 * f2_inf)
        slope_at_1 = 1.0 if math.isfinite(d2_inf) and math.isclose(d2_inf, f2_inf, rel_tol=LIMITS_AGREE) \
            else d2_inf / f2_inf  # inf / inf (cube) is NaN: computed below
        if slope_at_1 <= 1:
            chi_c = slope_at_1
        else:
            with np.errstate(invalid="ignore", over="ignore"):  # f overflowing there (exp-like) is NaN: reported
                chi_c = _chi_c(a, fp.q_last, sw2, sb2, length_map(a, fp.q_last, sw2, sb2))
    else:
        q = fp.q
        h = 1e-5 * max(q, 1e-3)
        lo = max(q - h, 0.0)
        slope = (length_map(a, q + h, sw2, sb2) - length_map(a, lo, sw2, sb2)) / (q + h - lo)
        xi_q = _xi(abs(slope))
        chi_c = c1 if c1 <= 1 else _chi_c(a, q, sw2, sb2)
    xi_c = _xi(chi_c) if not chi_c >= 1 else math.inf  # chi_c >= 1: c* is 1 to our resolution (next to the edge)
    return DepthScales(xi_q, xi_c, _xi(c1), c1, fp.q)


_LEGENDRE_8 = np.polynomial.legendre.leggauss(8)


@functools.lru_cache(maxsize=1024)
def _rule_2d(breakpoints: tuple[float, ...], q: float) -> tuple[np.ndarray, np.ndarray]:
    """One dimension of the correlation map's product rule: nodes z and weights (density
    included) of composite Gauss-Legendre with 8 nodes a piece on |z| <= 10 (the weight beyond
    is below 1e-22), split at integers, at the breakpoints and at unit steps of x = sqrt(q) z
    (|x| <= 40), so that saturation within |x| ~ 1 is resolved; at most ~900 nodes."""
    return _gauss_pieces({float(k) for k in range(-10, 11)}, breakpoints, q, 10.0, _LEGENDRE_8)


def _chi_c(act: Activation, q: float, sw2: float, sb2: float, q_next: float | None = None) -> float:
    """In the chaotic phase: sw2 E[f'(u1) f'(u2)] at the stable correlation c* < 1, times
    q / q_next where the next layer's variance q_next = M(q) differs from q (a diverging map: the
    slope of c^{l+1} = (sw2 E[f(u1) f(u2)] + sb2) / q^{l+1} in c^l); at a fixed point q_next = q.

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
    ratio = 1.0 if q_next is None else q / q_next
    at_0 = excess(0.0)
    at_top = excess(top) if at_0 > 0 else -1.0
    if math.isnan(at_0) or math.isnan(at_top):  # f overflows where the signal goes (exp-like growth)
        return math.nan
    if at_top >= 0:  # c* = 1 to this resolution: the slope there, C'(1)
        return sw2 * float((wz * d1[:, 0] ** 2).sum()) * ratio
    c = 0.0 if at_0 <= 0 else brentq(excess, 0.0, top, xtol=1e-13)
    with torch.no_grad():
        return sw2 * float((w * d1 * act.grad(u2(c)).numpy()).sum()) * ratio


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
    d2_infinity: float  # lim E[f'^2](q) for q -> inf (`at_infinity`): (f'(+inf)^2 + f'(-inf)^2) / 2

    def sb2(self) -> np.ndarray:
        """sb2(q) at every tabulated q (NaN where E[f'^2] = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.q - self.f2 / self.d2


@functools.lru_cache(maxsize=256)
def critical_line(act: Activation) -> CriticalLine:
    """Tabulate E[f^2] and E[f'^2] at every q in CURVE_Q (cached per activation)."""
    f2 = expectations(act, lambda x: act.fn(x) ** 2, CURVE_Q)
    d2 = expectations(act, lambda x: act.grad(x) ** 2, CURVE_Q)
    return CriticalLine(CURVE_Q, f2, d2, at_infinity(act)[0])


def _sb2_at(act: Activation, q: float) -> tuple[float, float]:
    """(sb2, sw2) of the critical point whose fixed point is q."""
    d2 = expectation(act, lambda x: act.grad(x) ** 2, q)
    f2 = expectation(act, lambda x: act.fn(x) ** 2, q)
    return q - f2 / d2, 1 / d2


def critical_sw2(act: Activation | str, sb2: float = 0.0, low: float = 1e-2, high: float = 100.0) -> float | None:
    """The sw2 at which chi1 = 1 (the edge of chaos) for bias variance sb2, or None where there
    is none with sw2 in [low, high]. chi1 is `chi1`'s, where the length map goes from the input's
    q0 = 1, so that the edge is where that chi1 passes through 1 continuously.

    - Scale-free f (chi the same at every q): sw2 = 1/E[f'(z)^2] at every sb2 (ReLU: 2).
    - sb2 = 0 and f(0) = 0: q* = 0 loses stability at sw2 = 1/f'(0)^2 (tanh: 1), or
      2/(f'(0-)^2 + f'(0+)^2) at a kink, where chi1 crosses 1 continuously. Where it jumps
      instead (GELU, swish: from q = 1 the map already diverges there, chi1 = sw2/2 = 2), that
      sw2 is no edge of chaos and the search goes on.
    - Otherwise the root in q of sb2(q) = sb2 on the critical line (`critical_line`), refined by
      Brent's method, kept only where the length map reaches that fixed point from the input's
      q = 1 (an unstable fixed point is no phase boundary).
    - Where sb2(q) stays below sb2 up to q = 1e8 while E[f'^2] tends to a limit (softplus), the
      boundary lies at q* -> inf: sw2 = 1/lim E[f'^2] (`at_infinity`), kept when chi1 crosses 1
      there.
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
    """The catalog's mean-field numbers for one activation, all at sb2 = 0 and from the input's
    q0 = 1: the edge of chaos and chi1 at He's (sw2 = 2) and Xavier's (sw2 = 1 for square layers)
    weight variance, each with its kind (FIXED_POINT, Q_TO_INFINITY, Q_TO_ZERO, UNDEFINED: where
    the length map goes at that sw2; None without an edge)."""

    critical_sw2: float | None
    chi1_he: float
    chi1_xavier: float
    critical_sw2_kind: str | None
    chi1_he_kind: str
    chi1_xavier_kind: str

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


_MEAN_FIELD = DiskTable("mean-field", CATALOG_SOURCES + (Path(__file__),))


def _compute_mean_field(act: Activation) -> MeanField:
    edge = critical_sw2(act, 0.0)
    he, xavier = q_star(act, 2.0, 0.0), q_star(act, 1.0, 0.0)
    return MeanField(edge, _chi1_at(act, he, 2.0), _chi1_at(act, xavier, 1.0),
                     None if edge is None else q_star(act, edge, 0.0).kind, he.kind, xavier.kind)


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
    ||delta_l||^2 ~ sw2_{l+1} E[f'(sqrt(q^l) z)^2] ||delta_{l+1}||^2. A q that overflows float64
    (cube, squared ReLU: q^{l+1} ~ q^3, q^2) stays inf, its E[f'^2] the limit `at_infinity`.
    """
    validation.network_depth("depth", depth)
    sw2s, sb2s = _per_layer(sw2, depth, "sw2"), _per_layer(sb2, depth, "sb2")
    for w, b in zip(sw2s, sb2s):
        _check(w, b)
    _check_q0(q0)
    a = _act(act)
    qs = [sw2s[0] * q0 + sb2s[0]]
    for i in range(1, depth):
        qs.append(math.inf if math.isinf(qs[-1]) else length_map(a, qs[-1], sw2s[i], sb2s[i]))
    finite = [q for q in qs if not math.isinf(q)]
    d2 = list(expectations(a, lambda x: a.grad(x) ** 2, finite)) + [at_infinity(a)[0]] * (depth - len(finite))
    profile = [1.0] * depth
    for i in range(depth - 2, -1, -1):
        profile[i] = profile[i + 1] * math.sqrt(sw2s[i + 1] * d2[i])
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
