"""Post-mortem of a stored run: how it was lost, told from its own numbers (plain data in, no store).

Steps are optimiser steps counted from 0, as the alerts and the probe's records count them (the
engine's history counts from 1: history step h is step h - 1). From the run's history (per step
loss and total gradient norm before clipping), its probe records (per layer weight_grad_norm and
update_ratio on the recorded steps) and its alerts:

- lost: the first step whose loss or gradient norm is NaN or Inf, or whose loss exceeds
  LOSS_FACTOR times the median loss of the first EARLY_STEPS steps (the early-warning benchmark's
  definition of divergence), whichever comes first;
- the growth: the early norm g0 is the median of the total gradient norm over the first
  EARLY_STEPS steps before the loss; growth_start is the first step whose norm exceeds
  GROWTH_FACTOR x g0; the climb began at climb_from, the last step before it whose norm was at
  most g0, and its rate is the geometric mean factor per step over the climb,
  (||g||_start / ||g||_from)^(1 / (start - from));
- the first layer to blow up: per layer, its early level is the median of its weight_grad_norm
  over the recorded steps of the early window (its first record when there is none); a layer
  blows up at the first recorded step where its norm exceeds GROWTH_FACTOR x its early level (or
  is not finite); the first such step names the layer (a tie: the larger factor);
- what preceded it: the learning rate and optimiser of the spec, and the update ratio
  ||dW||/||W|| (the largest over layers per recorded step, its median over the recorded steps
  before the growth; healthy about 1e-3);
- what would have prevented it: a clip value, the 90th percentile of the norms of the steps
  before the climb (`gradvet.monitor.remedies.clip_value`, as the alerts quote it); a learning
  rate ten times lower; a warm-up when the run was lost in its first WARMUP_HORIZON steps
  (Goyal et al. 2017); a scaled initialisation when the first step already changed a layer by
  more than its size.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from gradvet.monitor.remedies import CLIP_PERCENTILE, clip_value

EARLY_STEPS = 10
LOSS_FACTOR = 10.0
GROWTH_FACTOR = 10.0
WARMUP_HORIZON = 200  # a run lost this early would likely have survived a warm-up of the learning rate
HEALTHY_RATIO = 1e-3  # ||dW||/||W|| per step (Karpathy, CS231n notes)
WEIGHT_NORM, UPDATE_RATIO = "weight_grad_norm", "update_ratio"
RELU_LIKE = ("relu", "leaky_relu", "prelu", "rrelu", "elu", "selu", "gelu", "silu", "swish", "mish", "softplus")


@dataclass
class PostMortem:
    key: str
    label: str
    status: str
    steps: int  # steps the history holds
    lost_at: int | None = None
    lost_how: str | None = None  # 'nan' or 'loss x10'
    early_norm: float | None = None
    growth_start: int | None = None
    growth_norm: float | None = None
    climb_from: int | None = None
    growth_rate: float | None = None  # factor per step over the climb
    peak_step: int | None = None
    peak_norm: float | None = None
    first_layer: str | None = None
    first_layer_step: int | None = None
    first_layer_factor: float | None = None
    layer_order: list[tuple[str, int]] = field(default_factory=list)
    lr: float | None = None
    optimizer: str | None = None
    clip: float | None = None
    update_ratio_before: float | None = None
    update_ratio_first: float | None = None  # the largest over layers at step 0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    clip_value: float | None = None
    healthy_steps: int = 0
    prevention: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def story(self) -> list[str]:
        """The post-mortem in sentences, in the order things happened."""
        out = []
        if self.lost_at is None:
            out.append(f"The run was not lost: no NaN or Inf and no loss above {LOSS_FACTOR:g}x its early level "
                       f"in {self.steps} steps (status {self.status}).")
        else:
            how = "its loss or gradient norm turned NaN/Inf" if self.lost_how == "nan" else \
                f"its loss rose above {LOSS_FACTOR:g}x its early median"
            out.append(f"The run was lost at step {self.lost_at}: {how}.")
        if self.growth_start is not None:
            climb = ""
            if self.climb_from is not None and self.growth_rate is not None:
                climb = (f"; it had been climbing since step {self.climb_from}, x{self.growth_rate:.3g} per step"
                         + (f" (doubling every {math.log(2) / math.log(self.growth_rate):.3g} steps)"
                            if self.growth_rate > 1 else ""))
            out.append(f"The growth: the gradient norm first exceeded {GROWTH_FACTOR:g}x its early median "
                       f"({self.early_norm:.3g}) at step {self.growth_start} ({self.growth_norm:.3g}){climb}.")
            if self.peak_step is not None:
                out.append(f"Its last finite value was {self.peak_norm:.3g} at step {self.peak_step}.")
        elif self.lost_at is not None and self.early_norm is not None:
            out.append(f"No slow build-up: the gradient norm never rose {GROWTH_FACTOR:g}x above its early median "
                       f"({self.early_norm:.3g}) before the run was lost.")
        if self.first_layer is not None:
            factor = "not finite" if not math.isfinite(self.first_layer_factor) else \
                f"x{self.first_layer_factor:.3g} its early level"
            then = [f"{layer} ({step})" for layer, step in self.layer_order[1:4]]
            out.append(f"The first layer to blow up: {self.first_layer}, at step {self.first_layer_step} "
                       f"({factor})" + (f"; then {', '.join(then)}" if then else "") + ".")
        before = []
        if self.lr is not None:
            before.append(f"learning rate {self.lr:.3g} ({self.optimizer})")
        if self.update_ratio_before is not None:
            until = "the growth" if self.growth_start is not None else "the loss" if self.lost_at is not None else "the end"
            before.append(f"update ratio ||dW||/||W|| {self.update_ratio_before:.3g} per step (the largest layer's, "
                          f"median over the recorded steps before {until}; healthy about {HEALTHY_RATIO:g})")
        if self.update_ratio_first is not None and self.update_ratio_first > 1:
            before.append(f"the very first step changed a layer by {self.update_ratio_first:.3g} times its size")
        if self.clip is not None:
            before.append(f"gradient clipping at {self.clip:g} was on")
        if before:
            out.append(("What preceded it: " if self.lost_at is not None else "Its settings and steps: ")
                       + "; ".join(before) + ".")
        if self.alerts:
            first = self.alerts[0]
            lead = (f", {_steps(self.lost_at - first['step'])} before the run was lost"
                    if self.lost_at is not None and first["step"] < self.lost_at else "")
            listed = ", ".join(f"{a['kind']}{' in ' + a['layer'] if a.get('layer') else ''} at {a['step']}"
                               for a in self.alerts[:8])
            more = f" and {len(self.alerts) - 8} more" if len(self.alerts) > 8 else ""
            out.append(f"The monitor's alerts: {listed}{more}; the first came at step {first['step']}{lead}.")
        if self.prevention:
            out.append("What would have prevented it: " + "; ".join(self.prevention) + ".")
        return out


def _steps(n: int) -> str:
    return f"{n} step" + ("" if n == 1 else "s")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _lost(loss: list, norm: list) -> tuple[int | None, str | None]:
    for t in range(len(loss)):
        if not _finite(loss[t]) or (norm[t] is not None and not _finite(norm[t])):  # None: not recorded
            return t, "nan"
        early = [v for v in loss[: min(t, EARLY_STEPS)] if _finite(v)]
        if early and loss[t] > LOSS_FACTOR * statistics.median(early):
            return t, "loss x10"
    return None, None


def _layers(records: list, metric: str) -> dict[str, list[tuple[int, float]]]:
    """{layer: [(step, value)] in step order} of one metric (values of other types left out)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for step, layer, name, value in records:
        if name == metric and isinstance(step, int) and isinstance(value, (int, float)) and isinstance(layer, str):
            out.setdefault(layer, []).append((step, float(value)))
    for values in out.values():
        values.sort()
    return out


def _layer_blowups(records: list, early_end: int) -> list[tuple[int, float, str]]:
    """(step, factor, layer) of each layer's first blow-up (see the module's docstring), earliest first."""
    found = []
    for layer, values in _layers(records, WEIGHT_NORM).items():
        early = [v for s, v in values if s < early_end and _finite(v)] or [v for _, v in values[:1] if _finite(v)]
        if not early:
            continue
        level = statistics.median(early)
        for step, v in values:
            if not _finite(v) or (level > 0 and v > GROWTH_FACTOR * level):
                found.append((step, math.inf if not _finite(v) else v / level, layer))
                break
    return sorted(found, key=lambda f: (f[0], -f[1]))


def _largest_ratio_per_step(records: list) -> dict[int, float]:
    per: dict[int, float] = {}
    for values in _layers(records, UPDATE_RATIO).values():
        for step, v in values:
            if _finite(v):
                per[step] = max(per.get(step, 0.0), v)
    return per


def postmortem(run: dict[str, Any], layer_records: list[tuple]) -> PostMortem:
    """The post-mortem of one stored run: `run` as `Store.get` gives it (spec, status, history, alerts)."""
    spec = run.get("spec") or {}
    history = run.get("history") or {}
    loss, norm = list(history.get("loss") or []), list(history.get("grad_norm") or [])
    if loss and not norm:  # a run saved from the user's own loop (`gradvet.save_run`): losses only
        norm = [None] * len(loss)
    n = min(len(loss), len(norm))
    loss, norm = loss[:n], norm[:n]
    pm = PostMortem(key=str(run.get("key")), label=str(run.get("label")), status=str(run.get("status")), steps=n,
                    lr=spec.get("lr") if _finite(spec.get("lr")) else None, optimizer=spec.get("optimizer"),
                    clip=spec.get("clip") if _finite(spec.get("clip")) else None,
                    alerts=[a for a in run.get("alerts") or [] if isinstance(a.get("step"), int)])
    pm.lost_at, pm.lost_how = _lost(loss, norm)
    end = pm.lost_at if pm.lost_at is not None else n
    early = [v for v in norm[: min(EARLY_STEPS, end)] if _finite(v)]
    if early:
        pm.early_norm = statistics.median(early)
        pm.growth_start = next((t for t in range(end) if _finite(norm[t]) and norm[t] > GROWTH_FACTOR * pm.early_norm),
                               None)
    if pm.growth_start is not None:
        g = pm.growth_start
        pm.growth_norm = norm[g]
        pm.climb_from = next((t for t in range(g - 1, -1, -1) if _finite(norm[t]) and norm[t] <= pm.early_norm), None)
        if pm.climb_from is not None and norm[pm.climb_from] > 0:
            pm.growth_rate = (norm[g] / norm[pm.climb_from]) ** (1.0 / (g - pm.climb_from))
    finite_before = [t for t in range(end) if _finite(norm[t])]
    if pm.lost_at is not None and finite_before:
        pm.peak_step = finite_before[-1]
        pm.peak_norm = norm[pm.peak_step]
    blowups = [b for b in _layer_blowups(layer_records, min(EARLY_STEPS, end)) if pm.lost_at is None or b[0] <= end]
    if blowups:
        pm.first_layer_step, pm.first_layer_factor, pm.first_layer = blowups[0]
        pm.layer_order = [(layer, step) for step, _, layer in blowups]
    ratios = _largest_ratio_per_step(layer_records)
    horizon = pm.growth_start if pm.growth_start is not None else end
    before = [r for s, r in sorted(ratios.items()) if s < horizon]
    pm.update_ratio_before = statistics.median(before) if before else None
    pm.update_ratio_first = ratios.get(0)
    calm_end = pm.climb_from if pm.climb_from is not None else horizon
    healthy = [norm[t] for t in range(min(calm_end, end)) if _finite(norm[t])]
    pm.clip_value, pm.healthy_steps = clip_value(healthy), len(healthy)
    pm.prevention = _prevention(pm, spec)
    return pm


def _prevention(pm: PostMortem, spec: dict[str, Any]) -> list[str]:
    if pm.lost_at is None:
        return []
    out = []
    if (pm.update_ratio_first is not None and pm.update_ratio_first > 1) or (pm.lost_at is not None and pm.lost_at < 3):
        activation, model = str(spec.get("activation", "")), str(spec.get("model", "mlp"))
        scheme = "orthogonal recurrent weights" if model != "mlp" else \
            "He initialisation" if activation in RELU_LIKE else "Xavier initialisation"
        out.append(f"a scaled starting point ({scheme}; the init was {spec.get('init', '?')}): the first step "
                   "already moved the weights by more than their size")
    if pm.clip_value is not None:
        out.append(f"clipping the gradient norm at {pm.clip_value:.3g} (the {CLIP_PERCENTILE}th percentile of the "
                   f"{pm.healthy_steps} steps before the climb)")
    if pm.lr is not None:
        out.append(f"a learning rate ten times lower, {pm.lr / 10:.3g}" + (
            f" (the update ratio, {pm.update_ratio_before:.3g}, scales with it)" if pm.update_ratio_before else ""))
    if pm.lost_at is not None and pm.lost_at < WARMUP_HORIZON:
        out.append(f"a warm-up: the learning rate raised from about a hundredth over the first "
                   f"{max(100, 2 * pm.lost_at)} steps, since the run was lost at step {pm.lost_at}")
    return out
