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
activation's kinks and at every unit step of x = sqrt(q) z;
`activations.properties.gauss_expectation`). Gauss-Hermite of order 101 was tried
first and missed the erf kernel's closed form by 2e-7 at q = 4 (f(sqrt(q) z)
saturates faster than the Hermite polynomials resolve) and loses its spectral
convergence at kinks; it remains for the 2-D correlation map, whose integrand is
smooth at the fixed point. The derivative is the catalog's closed form, never a
numerical derivative of f.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from gradvet.activations import Activation, activation as get_activation
from gradvet.activations.properties import gauss_expectation
from gradvet.errors import GradvetError

HERMITE_ORDER = 101
MAX_ITER = 2000
TOL = 1e-12
DIVERGED = 1e12

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(HERMITE_ORDER)
_WEIGHTS = _WEIGHTS / math.sqrt(2 * math.pi)


def _act(act: Activation | str) -> Activation:
    return get_activation(act)


def expectation(act: Activation, g, q: float) -> float:
    """E[g(sqrt(q) z)] for z ~ N(0, 1), where g is f, f' or a function of them (torch -> torch)."""
    if q < 0:
        raise GradvetError(f"variance q={q:g} must be >= 0.")
    s = math.sqrt(max(q, 1e-300))  # q = 0 as the limit q -> 0+: ReLU's E[f'^2] stays 1/2 there
    # Pieces split at the kinks and at every unit step of x = sqrt(q) z (|x| <= 40), so a
    # function saturating within |x| ~ 1 is resolved at any q.
    cuts = list(act.properties.breakpoints) + [float(k) for k in range(-40, 41)]
    return gauss_expectation(lambda z: g(s * z), [c / s for c in cuts])


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
    return DepthScales(_xi(abs(slope)), _xi(chi_c), _xi(c1), c1, fp.q)


def _chi_c(act: Activation, q: float, sw2: float, sb2: float) -> float:
    """In the chaotic phase: sw2 E[f'(u1) f'(u2)] at the stable correlation c* < 1 (2-D Gauss-Hermite)."""
    z1, z2 = np.meshgrid(_NODES[::2], _NODES[::2], indexing="ij")
    w = np.outer(_WEIGHTS[::2], _WEIGHTS[::2])
    w = w / w.sum()
    s = math.sqrt(q)
    u1 = torch.as_tensor(s * z1, dtype=torch.float64)
    c = 0.5
    for _ in range(500):
        u2 = torch.as_tensor(s * (c * z1 + math.sqrt(max(1 - c * c, 0.0)) * z2), dtype=torch.float64)
        new = (sw2 * float((w * (act.fn(u1) * act.fn(u2)).numpy()).sum()) + sb2) / q
        new = min(max(new, -1.0), 1.0)
        if abs(new - c) < 1e-12:
            break
        c = new
    u2 = torch.as_tensor(s * (c * z1 + math.sqrt(max(1 - c * c, 0.0)) * z2), dtype=torch.float64)
    return sw2 * float((w * (act.grad(u1) * act.grad(u2)).numpy()).sum())


def critical_sw2(act: Activation | str, sb2: float = 0.0, low: float = 1e-2, high: float = 100.0) -> float | None:
    """The sw2 at which chi1 = 1 (the edge of chaos), or None where chi1 never crosses 1 in [low, high]."""
    from scipy.optimize import brentq

    a = _act(act)
    f0 = float(a.fn(torch.zeros(1, dtype=torch.float64))[0])
    d0 = float(a.grad(torch.zeros(1, dtype=torch.float64))[0])
    if sb2 == 0 and f0 == 0 and d0 != 0 and low <= 1 / d0**2 <= high:
        # q* = 0 loses stability at sw2 f'(0)^2 = 1, where chi1 = sw2 f'(0)^2 crosses 1 (tanh: sw2 = 1)
        above = chi1(a, (1 / d0**2) * (1 + 1e-3), sb2)
        if above >= 1 - 1e-6:
            return 1 / d0**2
    grid = np.geomspace(low, high, 24)
    values = [chi1(a, float(s), sb2) - 1 for s in grid]
    for (s0, v0), (s1, v1) in zip(zip(grid, values), zip(grid[1:], values[1:])):
        if v0 == 0:
            return float(s0)
        if math.isfinite(v0) and math.isfinite(v1) and v0 < 0 < v1:
            return float(brentq(lambda s: chi1(a, s, sb2) - 1, s0, s1, xtol=1e-12, rtol=1e-12))
    return None


def phase_diagram(act: Activation | str, sb2_values=None) -> dict[str, list]:
    """The order-chaos boundary: critical sw2 for each sb2 (None where there is none)."""
    sb2s = np.linspace(0.0, 2.0, 50) if sb2_values is None else np.asarray(sb2_values, dtype=float)
    return {"sb2": [float(v) for v in sb2s], "critical_sw2": [critical_sw2(act, float(v)) for v in sb2s]}


def predict_profile(act: Activation | str, depth: int, sw2: float, sb2: float, q0: float = 1.0) -> list[float]:
    """Expected ||delta_l|| / ||delta_L|| for hidden layers l = 1..depth.

    The length map is iterated layer by layer from the input's second moment q0
    (q^1 = sw2 q0 + sb2), and each layer uses its own chi(q^l): a real net need
    not start at q*. Backward, ||delta_l||^2 ~ chi(q^l) ||delta_{l+1}||^2.
    """
    _check(sw2, sb2)
    if not isinstance(depth, int) or depth < 1:
        raise GradvetError(f"depth={depth!r} must be a whole number >= 1.")
    a = _act(act)
    qs = [sw2 * q0 + sb2]
    for _ in range(depth - 1):
        qs.append(length_map(a, qs[-1], sw2, sb2))
    gains = [math.sqrt(chi(a, q, sw2)) for q in qs]
    profile = [1.0] * depth
    for l in range(depth - 2, -1, -1):
        profile[l] = profile[l + 1] * gains[l]
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
