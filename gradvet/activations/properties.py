"""Properties of an activation, computed from its `fn` and `grad`, never typed by hand.

All checks are numerical, in float64, on a window [-W, W] (W = 16, wider when a
parameter asks for it) sampled on a grid shifted off the "round" numbers where
kinks sit, plus tail points x = +-1e4 ... +-1e16 for limits:

- kinks and smoothness: a jump of f, f', f'' or f''' is found by cutting
  every grid interval whose change stands out from its neighbours into 16
  pieces, again and again, down to the resolution of float64; the first order with a jump gives the class
  (discontinuous, C0, C1, C2), none up to f''' gives "C-inf". f'' and f''' come
  from autograd of the closed-form f'.
- output range and max |f'|: grid extremum refined by bounded Brent search,
  compared with the tail limits. An end of the range is closed when it is
  reached at a finite x: an interior extremum, or a flat stretch where f' is
  exactly 0 (an asymptote reached only by float64 rounding has f' != 0 there).
- E[f(z)], E[f'(z)^2] for z ~ N(0, 1): composite Gauss-Legendre on [-40, 40]
  split at the breakpoints (exact to ~1e-15 for piecewise-analytic f).
- saturation: |f'| <= 1e-6 at every tail point on that side; dead region: an
  interval where f' is exactly 0, bounded by breakpoints.
- undefined regions: where f is NaN (log(x) and sqrt(x) for x < 0): runs of
  NaN on the grid, each end bisected to float64 resolution (a run reaching the
  window's edge goes on to +-inf if f is NaN at +-PROBE, about 1e4, else its
  end is bisected against that point and the window widened to take it in). Every other property is of f where it is defined:
  the ends of the domain are special points like the kinks (an extremum there
  counts), jumps are looked for only between defined points, and an end of
  the output range at +-inf is open. E[f(z)] and E[f'(z)^2] are NaN when f is
  undefined on a set of positive Gaussian probability: no number is true there.
  (Isolated points where f is defined inside such a region, as x**x at the
  negative integers, are not resolved.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gradvet.activations import cache
from gradvet.activations.cost import relative_cost

if TYPE_CHECKING:
    from gradvet.activations.protocol import ActivationLike

Fn = Callable[[torch.Tensor], torch.Tensor]
DTYPE = torch.float64
GRID_INTERVALS = 4096
TAIL = (1e4, 1e5, 1e6, 1e8, 1e16)
BISECTIONS = 64  # halvings that locate an end of an undefined region: 1e4 / 2**64 ~ 5e-16
PROBE = TAIL[0] + math.sqrt(2) - 1  # beyond the window, off the integers (x**x is defined at -10000)
SATURATION_TOL = 1e-6
GAUSS_HALF_WIDTH = 40.0
GAUSS_NODES = 24
SECTIONS = 13  # 16-way cuts: 16**13 shrinks a grid step below float64 resolution


@dataclass(frozen=True)
class Range:
    """An interval [lo, hi] with open or closed ends; +-inf for unbounded."""

    lo: float
    hi: float
    lo_closed: bool
    hi_closed: bool

    def __str__(self) -> str:
        left = "[" if self.lo_closed else "("
        right = "]" if self.hi_closed else ")"
        return f"{left}{_fmt(self.lo)}, {_fmt(self.hi)}{right}"


@dataclass(frozen=True)
class Properties:
    """What gradvet knows of an activation, all computed (see module docstring).

    `grad_sq_gauss` = E[f'(z)^2] is the factor by which one layer scales the
    squared backward signal at unit pre-activation variance (chi_1 of
    mean-field theory with sigma_w^2 = 1); below 1 gradients shrink with depth.
    """

    output_range: Range
    monotonic: bool
    increasing: bool
    derivative_monotonic: bool
    smoothness: str
    kinks: tuple[float, ...]
    breakpoints: tuple[float, ...]
    f0: float
    fprime0: float
    identity_near_0: bool
    max_grad: float
    max_grad_at: float
    mean_gauss: float
    grad_sq_gauss: float
    saturates_left: bool
    saturates_right: bool
    dead_regions: tuple[tuple[float, float], ...]
    window: float
    undefined: tuple[tuple[float, float], ...] = ()
    cost: float | None = field(default=None, compare=False)

    @property
    def zero_centred(self) -> bool:
        """|E[f(z)]| < 0.05 for z ~ N(0, 1)."""
        return abs(self.mean_gauss) < 0.05

    @property
    def saturation(self) -> str:
        """'both', 'left', 'right' or 'none'."""
        sides = {(True, True): "both", (True, False): "left", (False, True): "right"}
        return sides.get((self.saturates_left, self.saturates_right), "none")

    def dead_text(self) -> str:
        """Dead regions as text, e.g. '(-inf, 0)', or '-'."""
        return _intervals_text(self.dead_regions)

    @property
    def defined_everywhere(self) -> bool:
        """f is a number (not NaN) for every real x (see `undefined`)."""
        return not self.undefined

    def domain_text(self) -> str:
        """'all real x', or where f is undefined, e.g. 'f is NaN (undefined) for x in (-inf, 0)'."""
        if self.defined_everywhere:
            return "all real x"
        return f"f is NaN (undefined) for x in {_intervals_text(self.undefined)}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["output_range"] = str(self.output_range)
        data["range_lo"], data["range_hi"] = self.output_range.lo, self.output_range.hi
        data["zero_centred"] = self.zero_centred
        data["saturation"] = self.saturation
        data["defined_everywhere"] = self.defined_everywhere
        return data

    def to_cache(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> Properties:
        data = dict(data)
        data["output_range"] = Range(**data["output_range"])
        data["kinks"] = tuple(data["kinks"])
        data["breakpoints"] = tuple(data["breakpoints"])
        data["dead_regions"] = tuple(tuple(r) for r in data["dead_regions"])
        data["undefined"] = tuple(tuple(r) for r in data["undefined"])
        return cls(**data)


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.6g}"


def _intervals_text(intervals: tuple[tuple[float, float], ...]) -> str:
    """Open intervals as text, e.g. '(-inf, 0) u (1, 2)', or '-'."""
    if not intervals:
        return "-"
    return " u ".join(f"({_fmt(a)}, {_fmt(b)})" for a, b in intervals)


def _clean(v: float, digits: int = 15) -> float:
    """Round to `digits` significant digits and turn -0.0 into 0.0."""
    if not math.isfinite(v) or v == 0:
        return 0.0 if v == 0 else v
    return float(f"{v:.{digits}g}") + 0.0


def _t(values) -> torch.Tensor:
    return torch.as_tensor(values, dtype=DTYPE)


def _call(f: Fn, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return f(x).to(DTYPE)


def _grid(window: float) -> torch.Tensor:
    """Grid on [-W, W] shifted by an irrational fraction of a step, so no grid
    point sits on a round number (kinks live at 0, +-1, +-3, 6, ...)."""
    h = 2 * window / GRID_INTERVALS
    shift = h * (math.sqrt(2) - 1) / 7
    return torch.linspace(-window, window, GRID_INTERVALS + 1, dtype=DTYPE) + shift


def _d(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dy/dx for elementwise y(x), differentiable again."""
    if not y.requires_grad:
        return torch.zeros_like(x)
    (d,) = torch.autograd.grad(y.sum(), x, create_graph=True, allow_unused=True)
    return torch.zeros_like(x) if d is None else d


def derivatives(act: ActivationLike) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> stack [f(x), f'(x), f''(x), f'''(x)]: f' closed form, f'' and f''' by autograd of f'.

    One autograd graph serves both higher orders. Rows autograd cannot give
    (a callable with numpy inside) are NaN.
    """

    def orders(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            f = act.fn(x).to(DTYPE)
        with torch.enable_grad():
            xd = x.detach().requires_grad_(True)
            g1 = act.grad(xd)
            try:
                g2 = _d(g1, xd)
                g3 = _d(g2, xd)
            except RuntimeError:
                g2 = g3 = torch.full_like(x, math.nan)
        return torch.stack([f, g1.detach().to(DTYPE), g2.detach().to(DTYPE), g3.detach().to(DTYPE)])

    return orders


def _jump_points(orders: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> list[list[float]]:
    """For each order k = 0..3, the points in the grid's span where the k-th derivative jumps.

    Candidate intervals: the change of g exceeds 3x the smaller change of its
    neighbours (a steep but continuous g does not). Each candidate is cut into
    16 pieces and the piece with the largest change kept, until its width is
    below float64's resolution; a gap still there is a jump.
    """
    values = orders(x)
    n_orders = values.shape[0]
    finite = torch.isfinite(values)
    clean = torch.where(finite, values, torch.zeros_like(values))
    scale = 1.0 + clean.abs().amax(dim=1)
    d = (clean[:, 1:] - clean[:, :-1]).abs()
    inf = torch.full((n_orders, 1), math.inf, dtype=DTYPE)
    neighbour = torch.minimum(torch.cat([inf, d[:, :-1]], 1), torch.cat([d[:, 1:], inf], 1))
    bad = ~(finite[:, 1:] & finite[:, :-1]) & finite.any(dim=1, keepdim=True)
    defined = ~torch.isnan(values[0])  # where f is undefined there is nothing to jump
    cand = (((d > 3 * neighbour) & (d > 1e-10 * scale[:, None])) | bad) & (defined[1:] & defined[:-1])
    order, idx = torch.nonzero(cand, as_tuple=True)
    found: list[list[float]] = [[] for _ in range(n_orders)]
    if idx.numel() == 0:
        return found
    a, b = x[idx].clone(), x[idx + 1].clone()
    rows = torch.arange(len(idx))
    frac = torch.linspace(0, 1, 17, dtype=DTYPE)
    gap = d[order, idx]
    for _ in range(SECTIONS):
        t = a[:, None] + (b - a)[:, None] * frac[None, :]
        v = orders(t.flatten()).reshape(n_orders, len(idx), 17)[order, rows]
        step = (v[:, 1:] - v[:, :-1]).abs().nan_to_num(math.inf)
        j = step.argmax(dim=1)
        a, b = t[rows, j], t[rows, j + 1]
        gap = step[rows, j]
    jumps = gap > 1e-7 * scale[order]
    for k, i in zip(order[jumps].tolist(), torch.nonzero(jumps).flatten().tolist()):
        found[k].append(_snap((float(a[i]) + float(b[i])) / 2))
    return [sorted(set(pts)) for pts in found]


def _snap(v: float) -> float:
    """A located jump, rounded to 10 decimals (the search's last bits are noise)."""
    return round(v, 10) + 0.0


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(first, last) index of each run of True."""
    runs, i = [], 0
    while i < len(flags):
        if flags[i]:
            j = i
            while j + 1 < len(flags) and flags[j + 1]:
                j += 1
            runs.append((i, j))
            i = j + 1
        else:
            i += 1
    return runs


def _undefined_regions(f: Fn, window: float) -> tuple[tuple[tuple[float, float], ...], list[float]]:
    """Open intervals where f is NaN, and the points where f is defined at their finite ends.

    Each run of NaN on the grid is bounded by its defined neighbours, or at the window's edge by
    the point +-PROBE beyond it (f NaN there too: the run reaches +-inf); the boundary between
    the last defined point and the first NaN one is bisected BISECTIONS times and rounded to 10
    decimals. The point returned for an end is that rounded value if f is defined there (sqrt at
    0), else the last defined point found (within float64 resolution of the end).
    """
    x = _grid(window)
    nan = torch.isnan(_call(f, x)).tolist()
    if not any(nan):
        return (), []
    probe_nan = torch.isnan(_call(f, _t([-PROBE, PROBE]))).tolist()
    runs = _runs(nan)
    pairs = []  # (defined point, NaN point) around each end: None where the run reaches +-inf
    for i, j in runs:
        for side, k, edge, undefined_beyond in ((-1, i - 1, i == 0, probe_nan[0]),
                                                (1, j + 1, j == len(nan) - 1, probe_nan[1])):
            if edge and undefined_beyond:
                pairs.append(None)
            else:
                pairs.append((side * PROBE if edge else float(x[k]), float(x[i] if side < 0 else x[j])))
    finite = [p for p in pairs if p is not None]
    a, b = _t([p[0] for p in finite]), _t([p[1] for p in finite])
    for _ in range(BISECTIONS):
        mid = (a + b) / 2
        undefined = torch.isnan(_call(f, mid))
        a, b = torch.where(undefined, a, mid), torch.where(undefined, mid, b)
    located = [_snap((float(lo) + float(hi)) / 2) for lo, hi in zip(a, b)]
    undefined_there = torch.isnan(_call(f, _t(located))).tolist()
    points = [float(a[k]) if undefined_there[k] else located[k] for k in range(len(located))]
    found = iter(located)
    ends = [next(found) if p is not None else (-math.inf if k % 2 == 0 else math.inf) for k, p in enumerate(pairs)]
    return tuple(zip(ends[::2], ends[1::2])), points


def _restricted(act: ActivationLike, undefined: tuple[tuple[float, float], ...]) -> ActivationLike:
    """`act` with f and f' NaN on the undefined regions, so that every property sees one domain:
    f' of log(x) is 1/x for x < 0 as a formula, but f is not defined there; x**x is defined at
    the negative integers, which the regions do not resolve."""
    fn, grad = act.fn, act.grad

    def in_regions(x: torch.Tensor) -> torch.Tensor:
        inside = torch.zeros_like(x, dtype=torch.bool)
        for lo, hi in undefined:
            inside |= (x > lo) & (x < hi)
        return inside

    def restricted_fn(x: torch.Tensor) -> torch.Tensor:
        return torch.where(in_regions(x), math.nan, fn(x))

    def restricted_grad(x: torch.Tensor) -> torch.Tensor:
        g = grad(x)
        with torch.no_grad():
            undefined_here = torch.isnan(restricted_fn(x))
        return torch.where(undefined_here, math.nan, g)

    return replace(act, fn=restricted_fn, grad=restricted_grad)


def _nowhere_defined(window: float) -> Properties:
    """The properties of an f that is NaN for every x (sqrt(-1 - x**2)): none is a number."""
    nan = math.nan
    return Properties(
        output_range=Range(nan, nan, False, False), monotonic=False, increasing=False,
        derivative_monotonic=False, smoothness="undefined", kinks=(), breakpoints=(), f0=nan,
        fprime0=nan, identity_near_0=False, max_grad=nan, max_grad_at=nan, mean_gauss=nan,
        grad_sq_gauss=nan, saturates_left=False, saturates_right=False, dead_regions=(),
        window=window, undefined=((-math.inf, math.inf),),
    )


def _window(act: ActivationLike) -> float:
    """16, or wider (up to 24, where exp(-x^2) still does not underflow) for large parameters."""
    largest = max((abs(v) for v in act.params.values()), default=0.0)
    return float(min(24.0, max(16.0, 2 * largest + 2)))


def _smoothness(act: ActivationLike, x: torch.Tensor) -> tuple[str, list[float], list[float]]:
    """(class, kinks where f or f' jumps, breakpoints where any of f..f''' jumps)."""
    classes = ["discontinuous", "C0", "C1", "C2"]
    found = _jump_points(derivatives(act), x)
    kinks = sorted(set(found[0]) | set(found[1]))
    breakpoints = sorted({p for pts in found for p in pts})
    for order, pts in enumerate(found):
        if pts:
            return classes[order], kinks, breakpoints
    return "C-inf", kinks, breakpoints


def _tail_unbounded(ts: torch.Tensor, best: float) -> float:
    """+inf x-direction if sign*f grows without bound at a tail, else 0.

    ts holds sign*f at -TAIL then +TAIL. Unbounded: some tail value exceeds
    1e8 (oscillating growth such as x cos x included), or the values rise
    steadily out to 1e16, still move by > 1e-4 between 1e8 and 1e16 and end
    above the best value inside the window (logarithmic growth included;
    a bounded oscillation that happens to rise at the sample points not).
    """
    n = len(TAIL)
    for direction, side in ((-1.0, ts[:n]), (1.0, ts[n:])):
        vals = side[torch.isfinite(side) | (side == math.inf)]
        if vals.numel() == 0:
            continue
        if bool((vals > 1e8).any()):
            return direction
        rising = bool((vals[1:] >= vals[:-1]).all())
        moving = len(vals) >= 2 and float(vals[-1] - vals[-2]) > 1e-4 * (1 + abs(float(vals[-2])))
        if rising and moving and float(vals[-1]) > best + 1e-4 * (1 + abs(best)):
            return direction
    return 0.0


def _nan_lowest(values: torch.Tensor) -> torch.Tensor:
    """NaN (f undefined) as -inf, so that it never wins a maximum; +-inf kept (nan_to_num would
    turn them into +-1.8e308)."""
    return torch.where(torch.isnan(values), -math.inf, values)


def _extremum(f: Fn, x: torch.Tensor, fx: torch.Tensor, tail_x: torch.Tensor, sign: float,
              special: list[float], grad: Fn | None) -> tuple[float, bool, float]:
    """sup of sign*f over the real line: (value, attained at a finite x, where).

    Grid maximum refined by bounded Brent search; the special points (0 and
    the kinks) win ties, so a maximum at 0 is reported at 0 exactly. The tail
    limits decide unboundedness and asymptotes.
    """
    from scipy.optimize import minimize_scalar

    s = _nan_lowest(sign * fx)
    top = float(s.max())
    near_top = torch.nonzero(s >= (top - 1e-9 * (1 + abs(top)) if math.isfinite(top) else top)).flatten()
    i = int(near_top[torch.argmin(x[near_top].abs())])  # of equal maxima, the one nearest 0
    best, where = float(s[i]), float(x[i])
    if 0 < i < len(x) - 1:
        res = minimize_scalar(
            lambda t: -sign * float(_call(f, _t([t]))[0]),
            bounds=(float(x[i - 1]), float(x[i + 1])), method="bounded",
            options={"xatol": 1e-13, "maxiter": 200},
        )
        if -res.fun > best:
            best, where = float(-res.fun), float(res.x)
    inside = sorted((p for p in special if float(x[0]) <= p <= float(x[-1])), key=abs)
    if inside:
        sv = _nan_lowest(sign * _call(f, _t(inside)))
        k = int(torch.argmax(sv))
        if float(sv[k]) >= best - 1e-13 * (1 + abs(best)):
            best, where = max(best, float(sv[k])), inside[k]
    ts = sign * _call(f, tail_x)
    direction = _tail_unbounded(ts, best)
    if direction:
        return math.inf, False, direction * math.inf
    tail = _nan_lowest(ts)
    if float(tail.max()) > best:
        j = int(torch.argmax(tail))
        return float(tail[j]), False, math.copysign(math.inf, float(tail_x[j]))
    attained = True
    ties = torch.nonzero(s == s[i]).flatten()
    if grad is not None and where == float(x[i]) and (i in (0, len(x) - 1) or len(ties) > 1):
        # The maximum lies on a stretch of equal values: a true flat piece has f' = 0
        # exactly; an asymptote merely rounded to its limit has f' != 0 there.
        inner = ties[torch.argmin(x[ties].abs())]
        attained = float(_call(grad, x[inner : inner + 1])[0]) == 0.0
        where = float(x[inner])
    return best, attained, where


def _output_range(act: ActivationLike, x, fx, tail_x, special: list[float]) -> Range:
    hi, hi_closed, _ = _extremum(act.fn, x, fx, tail_x, 1.0, special, act.grad)
    lo, lo_closed, _ = _extremum(act.fn, x, fx, tail_x, -1.0, special, act.grad)
    # +-inf is a limit, never a value reached (log(0) = -inf is the limit at 0+)
    return Range(_clean(-lo), _clean(hi), lo_closed and math.isfinite(lo), hi_closed and math.isfinite(hi))


def _max_grad(act: ActivationLike, x, gx, tail_x, special: list[float]) -> tuple[float, float]:
    """max |f'| and a point where it is reached (on a plateau: the point nearest 0,
    snapped to a breakpoint; +-inf for a limit at the tails)."""
    value, _, where = _extremum(lambda t: act.grad(t).abs(), x, gx.abs(), tail_x, 1.0, special, None)
    if math.isfinite(where) and math.isfinite(value):
        plateau = torch.nonzero(gx.abs() >= value * (1 - 1e-12)).flatten()
        if len(plateau) > 2 and where not in special:
            where = _nearest(float(x[plateau[torch.argmin(x[plateau].abs())]]), special, float(x[1] - x[0]))
        near = [p for p in special if abs(p - where) <= 1e-6]  # a supremum at a kink, one-sided
        where = _clean(near[0] if near else where, 10)
    return _clean(value), where


def _monotone(values: torch.Tensor) -> tuple[bool, bool]:
    """(monotonic, non-decreasing) for values on an increasing grid.

    Each step may go against the direction by float noise only: 1e-12 of the
    magnitude of its two ends.
    """
    v = values[torch.isfinite(values)]
    d = v[1:] - v[:-1]
    tol = 1e-12 * (1 + v[1:].abs() + v[:-1].abs())
    up, down = bool((d >= -tol).all()), bool((d <= tol).all())
    return up or down, up


_LEGENDRE = np.polynomial.legendre.leggauss(GAUSS_NODES)  # nodes and weights on [-1, 1], computed once


def gauss_legendre_pieces(cuts, legendre=None) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights, the N(0, 1) density included, of composite Gauss-Legendre over the
    pieces between the sorted `cuts` (24 nodes a piece unless `legendre` gives other nodes and
    weights on [-1, 1]); nodes whose weight underflows to 0 are dropped."""
    cuts = np.asarray(cuts, dtype=float)
    nodes, weights = _LEGENDRE if legendre is None else legendre
    a, b = cuts[:-1], cuts[1:]
    half, mid = (b - a)[:, None] / 2, (a + b)[:, None] / 2
    z = (mid + half * nodes[None, :]).ravel()
    w = (half * weights[None, :]).ravel() * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    keep = w > 0
    return z[keep], w[keep]


def gauss_expectation(g: Fn, breakpoints: list[float] | tuple[float, ...] = ()) -> float:
    """E[g(z)] for z ~ N(0, 1) by composite Gauss-Legendre on [-40, 40].

    Pieces are split at `breakpoints` (where g or a derivative jumps) and at
    every integer, with 24 nodes each, so a piecewise-analytic g integrates to
    about machine precision.
    """
    L = GAUSS_HALF_WIDTH
    z, w = gauss_legendre_pieces(sorted({float(c) for c in range(-int(L), int(L) + 1)}
                                        | {b for b in breakpoints if -L < b < L}))
    with torch.no_grad():
        gz = g(_t(z)).to(DTYPE).numpy()
    with np.errstate(invalid="ignore", over="ignore"):  # inf far out (a weight of 1e-300 or so)
        return float(np.sum(gz * w))


def _dead_regions(gx: torch.Tensor, x: torch.Tensor, breakpoints: list[float], tail_grad: torch.Tensor
                  ) -> tuple[tuple[float, float], ...]:
    """Intervals where f' is exactly 0.

    A run of zero f' on the grid counts only if each finite end is a
    breakpoint: an analytic f' cannot vanish on an interval, so a run ending
    elsewhere is float64 underflow (tanh-GELU far left), not a dead region.
    """
    n = len(TAIL)
    h = float(x[1] - x[0])
    zero = (gx == 0).tolist()
    out = []
    for i, j in _runs(zero):
        if j - i >= 2:
            ends = []
            for at_edge, k, tail in ((i == 0, i, tail_grad[:n]), (j == len(zero) - 1, j, tail_grad[n:])):
                if at_edge and bool((tail == 0).all()):
                    ends.append(math.copysign(math.inf, float(x[k])))
                else:
                    ends.append(_nearest(float(x[k]), breakpoints, h, default=None))
            if None not in ends:
                out.append((ends[0], ends[1]))
    return tuple(out)


def _nearest(v: float, points: list[float], h: float, default: float | str = "value") -> float | None:
    """The point of `points` within 2h of v, else v itself (or `default` when given as None)."""
    near = [p for p in points if abs(p - v) <= 2 * h]
    if near:
        return min(near, key=lambda p: abs(p - v))
    return None if default is None else v


def compute(act: ActivationLike) -> Properties:
    """Compute every property of `act` (no cache; see `properties_of`).

    Runs on the threads the process has: the tensors are small, so one thread is
    fastest, and the command line sets that (GRADVET_THREADS, default 1); a library
    call leaves the caller's setting alone. Autograd is switched on (the higher
    derivatives come from it), so a caller inside `torch.no_grad()` gets the same answer.
    """
    with torch.enable_grad():
        return _compute(act)


@dataclass(frozen=True)
class _Setting:
    """Where an activation's properties are evaluated: f restricted to its domain, the window, the
    grid, the tail points, the jumps of f to f''' and the special points (0, breakpoints, domain ends)."""

    act: ActivationLike
    window: float
    undefined: tuple[tuple[float, float], ...]
    x: torch.Tensor
    tail_x: torch.Tensor
    smooth: str
    kinks: list[float]
    breakpoints: list[float]
    special: list[float]


def _setting(act: ActivationLike) -> _Setting | float:
    """The evaluation setting of `act`, or only the window when f is nowhere defined."""
    window = _window(act)
    undefined, domain_ends = _undefined_regions(act.fn, window)
    if undefined == ((-math.inf, math.inf),):
        return window
    if undefined:
        act = _restricted(act, undefined)
    if domain_ends:  # take in the ends of the domain (sqrt(x - 100)), up to the first tail point
        window = max(window, min(TAIL[0], 2 * max(abs(p) for p in domain_ends) + 2))
    x = _grid(window)
    tail_x = _t([-t for t in TAIL] + list(TAIL))
    smooth, kinks, breakpoints = _smoothness(act, x)
    special = sorted({0.0, *breakpoints, *domain_ends})
    return _Setting(act, window, undefined, x, tail_x, smooth, kinks, breakpoints, special)


def _compute(act: ActivationLike) -> Properties:
    setting = _setting(act)
    if not isinstance(setting, _Setting):
        return _nowhere_defined(setting)
    act, window, undefined, x, tail_x = setting.act, setting.window, setting.undefined, setting.x, setting.tail_x
    smooth, kinks, breakpoints, special = setting.smooth, setting.kinks, setting.breakpoints, setting.special
    n = len(TAIL)
    fx, gx = _call(act.fn, x), _call(act.grad, x)
    tail_f, tail_grad = _call(act.fn, tail_x), _call(act.grad, tail_x).abs()
    monotonic, increasing = _monotone(torch.cat([tail_f[:n].flip(0), fx, tail_f[n:]]))
    derivative_monotonic, _ = _monotone(gx)
    f0 = float(_call(act.fn, _t([0.0]))[0])
    fprime0 = float(_call(act.grad, _t([0.0]))[0])
    near0 = _call(act.grad, _t([-1e-9, 1e-9]))
    max_grad, max_grad_at = _max_grad(act, x, gx, tail_x, special)
    return Properties(
        output_range=_output_range(act, x, fx, tail_x, special),
        monotonic=monotonic,
        increasing=monotonic and increasing,
        derivative_monotonic=derivative_monotonic,
        smoothness=smooth,
        kinks=tuple(kinks),
        breakpoints=tuple(breakpoints),
        f0=_clean(f0),
        fprime0=_clean(fprime0),
        identity_near_0=abs(f0) <= 1e-12 and bool(((near0 - 1).abs() <= 1e-8).all()),
        max_grad=max_grad,
        max_grad_at=max_grad_at,
        mean_gauss=round(gauss_expectation(act.fn, breakpoints), 15) + 0.0,
        grad_sq_gauss=round(gauss_expectation(lambda t: act.grad(t) ** 2, breakpoints), 15) + 0.0,
        saturates_left=bool((tail_grad[:n] <= SATURATION_TOL).all()),
        saturates_right=bool((tail_grad[n:] <= SATURATION_TOL).all()),
        dead_regions=_dead_regions(gx, x, breakpoints, tail_grad),
        window=window,
        undefined=undefined,
    )


def compute_with_cost(act: ActivationLike) -> Properties:
    """`compute` plus the measured relative cost (see `activations.cost`; it times a backward pass,
    so autograd is switched on here too)."""
    with torch.enable_grad():
        return replace(compute(act), cost=relative_cost(act))


def properties_of(act: ActivationLike) -> Properties:
    """Properties of `act`, from the on-disk cache when it has them (see `cache`); computed and
    stored there when missing."""
    return cache.PROPERTIES.get(act, compute_with_cost, Properties.to_cache, Properties.from_cache)


def max_grad_of(act: ActivationLike) -> float:
    """max |f'| over the real line, the value `properties.max_grad` holds, without the other properties:
    read from the properties when they are at hand (computed already, or stored in the cache), else found
    by `compute`'s own steps for it (undefined regions, the jumps that give the special points, the grid
    maximum refined by Brent's method, the tail limits) and nothing more: no Gaussian moments, no range,
    no timing of the cost. NaN when f is nowhere defined."""
    known = getattr(act, "__dict__", {}).get("properties") or cache.PROPERTIES.stored(
        act, Properties.to_cache, Properties.from_cache)
    if known is not None:
        return known.max_grad
    with torch.enable_grad():  # the higher derivatives behind the breakpoints come from autograd
        setting = _setting(act)
        if not isinstance(setting, _Setting):
            return math.nan
        gx = _call(setting.act.grad, setting.x)
        return _max_grad(setting.act, setting.x, gx, setting.tail_x, setting.special)[0]
