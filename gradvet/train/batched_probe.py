"""The default probe trace of every run of a batched group, measured inside the batched step.

`train.batched` trains R runs of one MLP as one vectorised model. On a sampled step (every
`probe_every(steps)`-th, as `train.run` samples) it takes its gradients from
`BatchedProbe.gradients` instead of the plain batched call: the same call (the stacked twin of
`train.stacked` with plain autograd, or `vmap(grad_and_value(functional_call))`), on a copy of
the model whose forward hooks
- keep each activation's input z and output a, each block's input and output, and each watched
  module's input (where it is not the output of the module before) and output, for the checks
  that they are finite (`probe.nonfinite`);
- add a zero tensor e to each watched module's output, and to its input as that module alone
  sees it (where the input needs a gradient), and to each recorded block's input and output. The
  gradient with respect to such an e is the Probe's hook data: at an output, dL/d output (every
  path after it); at a module's input, J^T dL/d output through that module alone (a skip path
  around it adds nothing), as `probe.input_grads` reads it off autograd. Adding zeros changes no
  value (x + 0 = x), so the weights train bit for bit as on the other steps.
`record` then reduces these stacked (R, ...) tensors per run, one reduction over the trailing
dimensions each (no run is replayed), to the numbers a sequential `gradvet.Probe` records for
that run and step, each by the formula of its metric's file in `gradvet.probe.metrics`; the
parameter-gradient norms are those the trainer takes anyway (before clipping), the applied ones
and the update ratio come from the clipped gradients and the weights before and after the
update. All numbers of a step are copied to the host once. Persistent dead units are counted by
`probe.dead_units.DeadUnitTracker`, one per run. Which blocks carry a residual stream is what
a real `Probe` records on one step of the first run's model (`probe.block_hooks`'s rule).

`why_not` says when this cannot stand in for a sequential probe: a metric registered beyond
those computed here (`probe.metrics.register`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from gradvet.probe.dead_units import DeadUnitTracker, inactive_units
from gradvet.probe.layers import watched_modules
from gradvet.probe.metrics import registry
from gradvet.probe.metrics.bias_grad_norm import is_bias
from gradvet.probe.metrics.nonfinite import Nonfinite
from gradvet.probe.metrics.saturated_fraction import SATURATION_LEVEL, count_below
from gradvet.probe.metrics.unit import BLOCK, LAYER, MODEL
from gradvet.probe.nonfinite import NONFINITE_INPUT, NONFINITE_OUTPUT
from gradvet.probe.trace import INPUT as INPUT_LAYER
from gradvet.probe.trace import Row
from gradvet.train.stacked import stacked_twin

NONFINITE = Nonfinite.name
COMPUTED = {
    LAYER: {"output_grad_norm", "input_grad_norm", "weight_grad_norm", "bias_grad_norm", "applied_grad_norm",
            "gain", "mean", "std", "dead_fraction", "persistent_dead_fraction", "saturated_fraction",
            "update_ratio", "calls", "norm_layer", NONFINITE_INPUT, NONFINITE_OUTPUT, NONFINITE},
    MODEL: {"std"},
    BLOCK: {"stream_grad_norm", "block_gain", "stream_std", "branch_ratio"},
}


def why_not() -> str | None:
    """Why a batched group cannot record the default trace this way (None: it can)."""
    extra = [u.name for u in registry.metrics() if u.name not in COMPUTED[u.scope]]
    if extra:
        return f"probe metrics {', '.join(extra)} are recorded by a sequential Probe only"
    return None


def _norms(t: torch.Tensor) -> torch.Tensor:
    """||t[r]||_2 per run r of a stacked (R, ...) tensor."""
    return torch.linalg.vector_norm(t.flatten(1), dim=1)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den per run, NaN where den is 0 (gain's and block_gain's 0/0)."""
    return torch.where(den > 0, num / den, math.nan)


class _Capture:
    """One probed call: the zero tensors to add (by key) and what the hooks keep (by key)."""

    def __init__(self, zeros: dict[str, torch.Tensor] | None):
        self.zeros = zeros
        self.kept: dict[str, torch.Tensor] = {}
        self.last: torch.Tensor | None = None  # what the latest watched module returned
        self.shapes: dict[str, tuple[torch.Size, bool]] = {}  # only when zeros is None: key -> (shape, needs grad)

    def add(self, key: str, t: torch.Tensor) -> torch.Tensor:
        """t + its zero tensor (t itself when none; its shape noted when finding the shapes)."""
        if self.zeros is None:
            self.shapes[key] = (t.shape, t.requires_grad)
            return t
        e = self.zeros.get(key)
        return t if e is None else t + e


class BatchedProbe:
    """Records the default probe trace of R batched runs (see the module docstring).

    model: the first run's module (its structure; it is not changed); base: the module on the
    meta device that the trainer's functional calls use; sample: one run's mini-batch (its shape);
    every: the sampling interval."""

    def __init__(self, model: nn.Module, base: nn.Module, loss_fn: nn.Module, runs: int, every: int,
                 sample: tuple[torch.Tensor, torch.Tensor], params: dict[str, torch.Tensor] | None = None):
        self.runs, self.every = runs, every
        self.watched = watched_modules(model)
        self.blocks = _recorded_blocks(model, loss_fn, sample)
        self.rows: list[list[Row]] = [[] for _ in range(runs)]
        self.trackers = [DeadUnitTracker() for _ in range(runs)]
        self._order = {scope: [u.name for u in registry.metrics() if u.scope == scope] for scope in (LAYER, BLOCK)}
        self._overflow = {u.name for u in registry.metrics() if u.scope == LAYER and u.nonfinite_is_overflow}
        self._capture: _Capture | None = None
        twin = stacked_twin(model, params) if params is not None else None
        probed = twin if twin is not None else copy.deepcopy(base)
        modules = dict(probed.named_modules())
        for w in self.watched:
            modules[w.name].register_forward_pre_hook(self._module_input(w.name, w.kind == "activation"))
            modules[w.name].register_forward_hook(self._module_output(w.name, w.kind == "activation"))
        for name in self.blocks:
            modules[name].register_forward_pre_hook(self._block_input(name))
            modules[name].register_forward_hook(self._block_output(name))
        self._zeros = self._zero_tensors(probed, sample, twin is not None)
        self._gradients: Callable[..., tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, Any]]]
        if twin is not None and params is not None:  # plain autograd through the stacked twin (`train.stacked`)
            self._gradients = self._twin_gradients(twin, loss_fn, params)
            return

        def one_loss(p, b, zeros, x, y):
            self._capture = _Capture(zeros)
            try:
                loss = loss_fn(functional_call(probed, (p, b), (x,)), y)
                return loss, self._capture.kept
            finally:
                self._capture = None

        batched = vmap(grad_and_value(one_loss, argnums=(0, 2), has_aux=True))

        def gradients(p, b, x, y):
            (grads, at), (losses, kept) = batched(p, b, self._zeros, x, y)
            return grads, losses, {"kept": kept, "at": at}

        self._gradients = gradients

    def _twin_gradients(self, twin: nn.Module, loss_fn: nn.Module, params: dict[str, torch.Tensor]) -> Callable:
        per_run_loss = vmap(loss_fn)
        names, keys = list(params), list(self._zeros)
        inputs = [params[k] for k in names] + [self._zeros[k] for k in keys]

        def gradients(p, b, x, y):
            self._capture = capture = _Capture(self._zeros)
            try:
                losses = per_run_loss(twin(x), y)
            finally:
                self._capture = None
            grads = torch.autograd.grad(losses.sum(), inputs)
            kept = {k: t.detach() for k, t in capture.kept.items()}
            return (dict(zip(names, grads[: len(names)])), losses.detach(),
                    {"kept": kept, "at": dict(zip(keys, grads[len(names):]))})

        return gradients

    def sampled(self, index: int) -> bool:
        """Whether the step of 0-based index `index` is recorded."""
        return index % self.every == 0

    # -- the probed call -----------------------------------------------------------------------
    def gradients(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor,
                  y: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, Any]]:
        """(d loss / d params, losses, what the step's records need), all runs in one call."""
        return self._gradients(params, buffers, x, y)

    def _zero_tensors(self, probed: nn.Module, sample: tuple[torch.Tensor, torch.Tensor],
                      stacked: bool) -> dict[str, torch.Tensor]:
        """The zero tensors added in a probed call, one per key whose gradient is read (found by one
        call: shapes, and which inputs need a gradient; on the meta device unless `probed` is a
        stacked twin, whose inputs are (R, ...) and whose zeros are leaves autograd differentiates)."""
        self._capture = capture = _Capture(None)
        x = torch.zeros(self.runs, *sample[0].shape) if stacked else torch.empty(sample[0].shape, device="meta")
        try:
            with torch.enable_grad():
                probed(x)
        finally:
            self._capture = None
        if stacked:
            return {key: torch.zeros(shape, requires_grad=True) for key, (shape, needs) in capture.shapes.items() if needs}
        return {key: torch.zeros(self.runs, *shape) for key, (shape, needs) in capture.shapes.items() if needs}

    def _module_input(self, name: str, activation: bool) -> Callable:
        def hook(module, args):
            capture = self._capture
            if capture is None or not args:
                return None
            x = args[0]
            if capture.zeros is not None:
                if x is not capture.last:  # else checked as the output of the module before, unchanged
                    capture.kept[f"{name}|in"] = x
                if activation:
                    capture.kept[f"{name}|z"] = x
            return (capture.add(f"{name}|in", x), *args[1:])

        return hook

    def _module_output(self, name: str, activation: bool) -> Callable:
        def hook(module, args, out):
            capture = self._capture
            if capture is None:
                return None
            if capture.zeros is not None:
                capture.kept[f"{name}|out"] = out
            capture.last = capture.add(f"{name}|out", out)
            return capture.last

        return hook

    def _block_input(self, name: str) -> Callable:
        def hook(module, args):
            capture = self._capture
            if capture is None or not args:
                return None
            if capture.zeros is not None:
                capture.kept[f"{name}|x"] = args[0]
            return (capture.add(f"{name}|in", args[0]), *args[1:])

        return hook

    def _block_output(self, name: str) -> Callable:
        def hook(module, args, out):
            capture = self._capture
            if capture is None:
                return None
            if capture.zeros is not None:
                capture.kept[f"{name}|h"] = out
            return capture.add(f"{name}|out", out)

        return hook

    # -- one step's records --------------------------------------------------------------------
    def record(self, index: int, runs: Sequence[int], stepping: Sequence[int], probed: dict[str, Any],
               x: torch.Tensor, names: Sequence[str], grad_norms: torch.Tensor, applied: torch.Tensor,
               before: Sequence[torch.Tensor], after: Sequence[torch.Tensor]) -> None:
        """Append step `index`'s rows of every run in `runs` (those still training when it began).

        probed: from `gradients`; x: the runs' inputs (R, B, ...); names: the parameter names, in the
        order of the columns of grad_norms ((R, parameters), before clipping) and `applied` (the
        same after clipping: the gradients the update applied), of `before` and `after` (the
        weights around the update; recorded for the runs in `stepping`, those that took it)."""
        kept, at = probed["kept"], probed["at"]
        table = _Table(self.runs)
        table.put(INPUT_LAYER, "std", x.flatten(1).std(dim=1))
        owned: dict[str, list[int]] = {}
        for k, name in enumerate(names):
            owned.setdefault(name.rsplit(".", 1)[0], []).append(k)
        stepped = torch.zeros(self.runs, dtype=torch.bool)
        stepped[list(stepping)] = True
        for w in self.watched:
            self._gradient_flow(table, w.name, at)
            if w.kind == "activation":
                self._activation(table, w, kept, index, runs)
            else:
                self._weights(table, w.name, owned.get(w.name, []), names, grad_norms, applied, before, after, stepped)
                if w.kind == "norm":
                    table.put(w.name, "norm_layer", torch.ones(self.runs))
        for name in self.blocks:
            self._block(table, name, kept, at)
        checks = [(w.name, where) for w in self.watched for where in ("in", "out") if f"{w.name}|{where}" in kept]
        values, present, finite = table.host(_finite([kept[f"{layer}|{where}"] for layer, where in checks]))
        layout = self._layout(table.keys)
        for i in runs:
            self.rows[i] += self._run_rows(index, layout, values[i], present[i], checks, finite[i])

    def _gradient_flow(self, table: _Table, name: str, at: dict[str, torch.Tensor]) -> None:
        """output_grad_norm, input_grad_norm and gain (`probe.metrics.output_grad_norm`, `input_grad_norm`, `gain`)."""
        out = _norms(at[f"{name}|out"])
        table.put(name, "output_grad_norm", out)
        g = at.get(f"{name}|in")
        if g is not None:
            inp = _norms(g)
            table.put(name, "input_grad_norm", inp)
            table.put(name, "gain", _ratio(inp.double(), out.double()))

    def _activation(self, table: _Table, w, kept: dict[str, torch.Tensor], index: int, runs: Sequence[int]) -> None:
        """mean, std (unbiased), dead_fraction, persistent_dead_fraction and saturated_fraction of one
        activation, as `probe.metrics.mean`, `std`, `dead_fraction`, `persistent_dead_fraction` and
        `saturated_fraction` compute them from the output a and |f'(z)| at the input z."""
        a = kept[f"{w.name}|out"].flatten(1)
        n = a.shape[1]
        mean = a.sum(dim=1).double() / max(n, 1)
        table.put(w.name, "mean", mean)
        mean_sq = (a * a).sum(dim=1).double() / max(n, 1)
        m = max(n, 2)
        var = torch.where(torch.isfinite(mean), (mean_sq - mean**2).clamp(min=0.0), math.nan)
        table.put(w.name, "std", (var * m / (m - 1)).sqrt())
        z = kept[f"{w.name}|z"]
        act = w.activation
        if act is None or not z.is_floating_point():
            return
        slopes = act.grad(z.reshape(z.shape[0], z.shape[1], -1)).abs()  # per run (samples, units), as Seen.rows
        inactive = inactive_units(slopes, samples=1)  # per run: f'(z) = 0 on every sample
        table.put(w.name, "dead_fraction", inactive.sum(dim=1).double() / max(inactive.shape[1], 1))
        dead = [self.trackers[i].update(w.name, index, inactive[i]) if i in runs else None for i in range(self.runs)]
        if any(d is not None for d in dead):
            table.put(w.name, "persistent_dead_fraction", torch.stack([d if d is not None else torch.zeros(())
                                                                      for d in dead]),
                      torch.tensor([d is not None for d in dead]))
        top = act.max_grad
        if math.isfinite(top) and top > 0:
            flat = slopes.flatten(1)
            table.put(w.name, "saturated_fraction",
                      count_below(flat, SATURATION_LEVEL * top, dim=1).double() / flat.shape[1])

    def _weights(self, table: _Table, name: str, own: list[int], names: Sequence[str], grad_norms: torch.Tensor,
                 applied: torch.Tensor, before: Sequence[torch.Tensor], after: Sequence[torch.Tensor],
                 stepped: torch.Tensor) -> None:
        """weight_grad_norm, bias_grad_norm (before clipping), applied_grad_norm (after) and update_ratio
        of one layer's own parameters (roots of sums of squares, `probe.metrics.shapes.ParameterGradNorm`)."""
        if not own:
            return
        squares = grad_norms.double() ** 2
        weights = [k for k in own if not is_bias(names[k].rsplit(".", 1)[1])]
        biases = [k for k in own if k not in weights]
        for metric, ks in (("weight_grad_norm", weights), ("bias_grad_norm", biases)):
            if ks:
                table.put(name, metric, squares[:, ks].sum(dim=1).sqrt())
        table.put(name, "applied_grad_norm", (applied[:, own].double() ** 2).sum(dim=1).sqrt())
        change = torch.stack([_norms(before[k] - after[k]).double() for k in own]).pow(2).sum(0).sqrt()
        size = torch.stack([_norms(before[k]).double() for k in own]).pow(2).sum(0).sqrt()
        table.put(name, "update_ratio", change / size.clamp(min=1e-300), stepped & (size > 0))

    def _block(self, table: _Table, name: str, kept: dict[str, torch.Tensor], at: dict[str, torch.Tensor]) -> None:
        """stream_grad_norm, block_gain, stream_std and branch_ratio of one block (`probe.metrics.stream_grad_norm`,
        `block_gain`, `stream_std`, `branch_ratio`)."""
        out_grad = _norms(at[f"{name}|out"]).double()
        table.put(name, "stream_grad_norm", out_grad)
        g = at.get(f"{name}|in")
        if g is not None:
            table.put(name, "block_gain", _ratio(_norms(g).double(), out_grad))
        x, h = kept[f"{name}|x"], kept[f"{name}|h"]
        if h[0].numel() > 1:
            table.put(name, "stream_std", h.flatten(1).double().std(dim=1))
        if x.shape == h.shape:
            change, size = _norms(h - x).double(), _norms(x).double()
            table.put(name, "branch_ratio", torch.where(size > 0, change / size, torch.where(change == 0, math.nan,
                                                                                              math.inf)))

    def _layout(self, keys: list[tuple[str, str]]) -> list[tuple[str, bool, list[tuple[str, int]]]]:
        """The step's rows as (layer, watched, [(metric, column in `keys`)]): the model input, the
        watched layers in forward order (metrics in the registry's order; the non-finite flags are
        added per run), the blocks."""
        column = {key: k for k, key in enumerate(keys)}
        layout = [(INPUT_LAYER, False, [("std", column[(INPUT_LAYER, "std")])])]
        for names, watched, order in (([w.name for w in self.watched], True, self._order[LAYER]),
                                      (self.blocks, False, self._order[BLOCK])):
            for name in names:
                layout.append((name, watched, [(m, column[(name, m)]) for m in order if (name, m) in column]))
        return layout

    def _run_rows(self, index: int, layout: list[tuple[str, bool, list[tuple[str, int]]]], values: list[float],
                  present: list[float], checks: list[tuple[str, str]], finite: list[float]) -> list[Row]:
        """One run's rows of the step (`values`, `present` and `finite` are that run's floats)."""
        first = None  # the first check in forward order that failed (`probe.nonfinite`)
        for (layer, where), ok in zip(checks, finite):
            if not ok:
                first = (layer, NONFINITE_INPUT if where == "in" else NONFINITE_OUTPUT)
                break
        rows: list[Row] = []
        for layer, watched, items in layout:
            row = [(index, layer, metric, values[k]) for metric, k in items if present[k]]
            if watched:
                if first is not None and first[0] == layer:
                    row.append((index, layer, first[1], 1.0))
                if any(not math.isfinite(r[3]) for r in row if r[2] in self._overflow):
                    row.append((index, layer, NONFINITE, 1.0))
            rows += row
        return rows


class _Table:
    """Per (layer, metric): a value per run (R,) and which runs have it; copied to the host at once."""

    def __init__(self, runs: int):
        self.runs = runs
        self.keys: list[tuple[str, str]] = []
        self._values: list[torch.Tensor] = []
        self._present: list[torch.Tensor] = []

    def put(self, layer: str, metric: str, values: torch.Tensor, present: torch.Tensor | None = None) -> None:
        self.keys.append((layer, metric))
        self._values.append(values.detach().double())
        self._present.append(torch.ones(self.runs, dtype=torch.bool) if present is None else present)

    def host(self, finite: torch.Tensor) -> tuple[list[list[float]], list[list[float]], list[list[float]]]:
        """Per run: its values, whether it has each (1.0 or 0.0), and `finite` ((checks, R)) as floats;
        one copy to the host."""
        parts = [torch.stack(self._values, 1), torch.stack(self._present, 1).double(), finite.t().double()]
        flat = torch.cat(parts, 1).tolist()
        k, c = parts[0].shape[1], parts[2].shape[1]
        return [r[:k] for r in flat], [r[k: 2 * k] for r in flat], [r[2 * k: 2 * k + c] for r in flat]


def _finite(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Per tensor and run, 1 where every value is finite: (tensors, R). A finite sum means finite
    values, so the values are looked at one by one only at a step where some sum is not finite."""
    sums = torch.stack([t.flatten(1).sum(dim=1) for t in tensors])
    if bool(torch.isfinite(sums).all()):
        return torch.ones(sums.shape)
    return torch.stack([torch.isfinite(t.flatten(1)).all(dim=1) for t in tensors])


def _recorded_blocks(model: nn.Module, loss_fn: nn.Module, sample: tuple[torch.Tensor, torch.Tensor]) -> list[str]:
    """The blocks a `gradvet.Probe` records on `model` (those carrying a residual stream,
    `probe.block_hooks`), read off the trace of one probed step of a copy of it."""
    from gradvet.probe import Probe
    from gradvet.probe.blocks import find_blocks

    names = [name for name, _ in find_blocks(model)]
    if not names:
        return []
    twin = copy.deepcopy(model)
    with Probe(twin, metrics=[u for u in registry.metrics() if u.scope == BLOCK]) as probe:
        loss_fn(twin(sample[0]), sample[1]).backward()
        probe.step()
    seen = {layer for _, layer, _, _ in probe.trace.rows}
    return [name for name in names if name in seen]
