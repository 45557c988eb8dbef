"""`Probe`: hooks on any nn.Module that record where gradients vanish or explode.

    with gradvet.Probe(model, optimizer) as probe:
        for x, y in loader:
            loss = loss_fn(model(x), y); loss.backward(); optimizer.step(); optimizer.zero_grad()
    diagnosis = gradvet.diagnose(probe)

Per step and watched layer (see `probe.layers`) it records:
- weight_grad_norm, bias_grad_norm: ||dL/dW||, ||dL/db|| (the bias gradient is
  Nielsen's "speed of learning" of a layer);
- output_grad_norm: ||dL/d output||, the backward signal at that depth;
  input_grad_norm and gain = ||dL/d input|| / ||dL/d output||, the factor the
  module multiplies the backward signal by (activation factor f'(z), or weight
  factor W^T): the article's chain-rule product, measured;
- for activations: mean, std of the output, saturated_fraction (|f'(z)| below
  5% of max |f'|) and dead_fraction (units whose f'(z) = 0 for every sample);
- update_ratio ||dW|| / ||W|| over the optimiser step;
- calls (when a module runs more than once per step: weight sharing,
  recurrence; norms then combine all calls), nonfinite (1 where a norm is NaN/Inf).

A step ends on the optimiser's step (so k backward calls of gradient
accumulation make one step) or on `probe.step()` when there is no optimiser.
With every=N hooks are attached only for sampled steps. All reductions of a
step are stacked into one tensor and copied to the host once. Hooks are
removed on exit, exception or not (fastai's hook hygiene). Forward passes
under torch.no_grad() record nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from gradvet.errors import GradvetError
from gradvet.probe.layers import Watched, watched_modules
from gradvet.probe.trace import INPUT, Row, Trace

SATURATION_LEVEL = 0.05



@dataclass
class _LayerStep:
    """What one watched module saw during the current step."""

    calls: int = 0
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    grad_out: list[torch.Tensor] = field(default_factory=list)
    grad_in: list[torch.Tensor] = field(default_factory=list)


class Probe:
    """Context manager recording per-layer gradient flow of `model` into `self.trace`."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, every: int = 1,
                 update_ratio: bool = True):
        if not isinstance(model, nn.Module):
            raise GradvetError(f"Probe needs a torch.nn.Module; got {type(model).__name__}.")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise GradvetError(f"every={every!r} must be a whole number >= 1.")
        self.model, self.optimizer, self.every = model, optimizer, every
        self.record_updates = update_ratio and optimizer is not None
        self.trace = Trace()
        self.step_index = 0  # index of the step in progress
        self.first_nonfinite: tuple[int, str] | None = None
        self.shared: dict[str, int] = {}  # modules seen called more than once in a step: max calls
        self._watched: list[Watched] = []
        self._module_hooks: list = []
        self._optimizer_hooks: list = []
        self._state: dict[str, _LayerStep] = {}
        self._order: list[str] = []
        self._backward_order: list[str] = []
        self._input_std: torch.Tensor | None = None
        self._before: list[torch.Tensor] | None = None
        self._active = False

    # -- context -------------------------------------------------------------------------------
    def __enter__(self) -> Probe:
        self._watched = watched_modules(self.model)
        if not any(w.kind != "activation" for w in self._watched):
            raise GradvetError(
                f"model {type(self.model).__name__} has no parameters to watch; a probe needs layers with weights."
            )
        for w in self._watched:
            if w.activation is not None:
                w.activation.properties  # noqa: B018  (load max |f'| now, not inside a timed step)
        self.trace.kinds = {w.name: w.kind for w in self._watched}
        if self.optimizer is not None:
            self._optimizer_hooks = [self.optimizer.register_step_pre_hook(self._before_optimizer_step),
                                     self.optimizer.register_step_post_hook(self._after_optimizer_step)]
        self._active = True
        if self._sampled(self.step_index):
            self._attach()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None and self._has_data():
                self._finish_step()  # a last step without optimizer.step()/probe.step()
        finally:
            self._detach()
            for handle in self._optimizer_hooks:
                handle.remove()
            self._optimizer_hooks = []
            self._active = False

    def step(self) -> None:
        """End the current step (for loops without an optimizer passed to the Probe)."""
        self._finish_step()

    @property
    def hooks_attached(self) -> int:
        return len(self._module_hooks) + len(self._optimizer_hooks)

    # -- hooks -------------------------------------------------------------------------------
    def _sampled(self, index: int) -> bool:
        return index % self.every == 0

    def _attach(self) -> None:
        if self._module_hooks:
            return
        self._reset_state()
        self._module_hooks.append(self.model.register_forward_pre_hook(self._on_model_input))
        for w in self._watched:
            self._module_hooks.append(w.module.register_forward_pre_hook(self._input_hook(w)))
            self._module_hooks.append(w.module.register_forward_hook(self._forward_hook(w)))

    def _detach(self) -> None:
        for handle in self._module_hooks:
            handle.remove()
        self._module_hooks = []

    def _reset_state(self) -> None:
        self._state = {w.name: _LayerStep() for w in self._watched}
        self._order, self._backward_order = [], []
        self._input_std = None

    def _has_data(self) -> bool:
        return bool(self._module_hooks) and any(s.calls for s in self._state.values())

    def _on_model_input(self, module, args) -> None:
        if self._input_std is None and torch.is_grad_enabled() and args and torch.is_tensor(args[0]):
            x = args[0].detach()
            if x.is_floating_point():
                self._input_std = x.std() if x.numel() > 1 else x.new_zeros(())

    def _input_hook(self, w: Watched):
        """Give the module a private copy of its input and hook that copy: its gradient is the
        part of dL/d input that flows through this module only (a skip path adds its own part
        to the original tensor, not to the copy). Tensor hooks, unlike full backward hooks,
        survive in-place operations on the module's output (ReLU(inplace=True), out += x)."""

        def hook(module, args):
            if not torch.is_grad_enabled() or not args or not torch.is_tensor(args[0]):
                return None
            st = self._state.get(w.name)
            if st is None:
                return None
            x = args[0]
            if w.kind == "activation":
                st.inputs.append(x.detach().clone() if getattr(module, "inplace", False) else x.detach())
            if not x.requires_grad:
                return None
            private = x.clone()
            private.register_hook(lambda g: st.grad_in.append(g.detach()))
            return (private, *args[1:])

        return hook

    def _forward_hook(self, w: Watched):
        def hook(module, inputs, output):
            if not torch.is_grad_enabled():
                return
            st = self._state.get(w.name)
            if st is None:
                return
            if st.calls == 0:
                self._order.append(w.name)
            st.calls += 1
            out = _first_tensor(output)
            if out is None:
                return
            if w.kind == "activation":
                st.outputs.append(out.detach())
            if out.requires_grad:
                out.register_hook(self._output_grad_hook(w.name, st))

        return hook

    def _output_grad_hook(self, name: str, st: _LayerStep):
        def hook(g: torch.Tensor) -> None:
            st.grad_out.append(g.detach())
            self._backward_order.append(name)

        return hook

    def _weight_params(self) -> list[torch.Tensor]:
        return [p for w in self._watched if w.kind != "activation" for p in w.module.parameters(recurse=False)]

    def _before_optimizer_step(self, optimizer, args, kwargs) -> None:
        if self._module_hooks and self.record_updates:
            self._before = [p.detach().clone() for p in self._weight_params()]

    def _after_optimizer_step(self, optimizer, args, kwargs) -> None:
        self._finish_step()

    # -- one step's numbers ------------------------------------------------------------------
    def _finish_step(self) -> None:
        if not self._active:
            raise GradvetError("probe.step() called outside the `with Probe(...)` block.")
        if self._module_hooks:
            self.trace.extend(self._collect())
        self._before = None
        self.step_index += 1
        if self._sampled(self.step_index):
            self._attach()
            self._reset_state()
        else:
            self._detach()

    def _collect(self) -> list[Row]:
        """Every number of the step, computed as tensors, stacked and copied to the host once."""
        step = self.step_index
        values: list[torch.Tensor] = []
        slots: list[tuple[str, str, str]] = []  # (layer, metric, how) per entry of `values`

        def put(layer: str, metric: str, tensor: torch.Tensor, how: str = "plain") -> None:
            values.append(tensor.detach().reshape(()).to(torch.float64))
            slots.append((layer, metric, how))

        norms_of: list[torch.Tensor] = []
        norm_slots: list[tuple[str, str]] = []

        def norm_all(layer: str, metric: str, tensors: list[torch.Tensor]) -> None:
            for t in tensors:
                norms_of.append(t.reshape(-1))
                norm_slots.append((layer, metric))

        order = self._order + [w.name for w in self._watched if w.name not in self._order]
        by_name = {w.name: w for w in self._watched}
        params_before = self._before
        weight_params = self._weight_params() if params_before is not None else []
        for name in order:
            w, st = by_name[name], self._state[name]
            if st.calls == 0 and not st.grad_out:
                continue
            norm_all(name, "output_grad_norm", st.grad_out)
            norm_all(name, "input_grad_norm", st.grad_in)
            if w.kind != "activation":
                for pname, p in w.module.named_parameters(recurse=False):
                    if p.grad is not None:
                        metric = "bias_grad_norm" if pname.startswith("bias") else "weight_grad_norm"
                        norm_all(name, metric, [p.grad])
            if w.kind == "activation" and st.outputs:
                out = torch.cat([o.reshape(o.shape[0], -1) if o.dim() > 0 else o.reshape(1, 1) for o in st.outputs])
                put(name, "mean", out.float().mean())
                put(name, "std", out.float().std() if out.numel() > 1 else out.new_zeros(()))
                if st.inputs and w.activation is not None:
                    z = torch.cat([i.reshape(i.shape[0], -1) if i.dim() > 0 else i.reshape(1, 1) for i in st.inputs])
                    d = w.activation.grad(z).abs()
                    top = w.activation.properties.max_grad
                    if math.isfinite(top) and top > 0:
                        put(name, "saturated_fraction", (d < SATURATION_LEVEL * top).float().mean())
                    put(name, "dead_fraction", (d == 0).all(dim=0).float().mean())
        if self._input_std is not None:
            put(INPUT, "std", self._input_std)
        if weight_params:
            deltas = torch._foreach_sub([p.detach() for p in weight_params], params_before)
            update = torch.stack(torch._foreach_norm(deltas))
            size = torch.stack(torch._foreach_norm(params_before))
            owner = [w.name for w in self._watched if w.kind != "activation"
                     for _ in w.module.parameters(recurse=False)]
            values.append(update.double())
            slots.append(("", "update", "vector"))
            values.append(size.double())
            slots.append(("", "size", "vector"))
        if norms_of:
            values.append(torch.stack(torch._foreach_norm(norms_of)).double())
            slots.append(("", "norms", "vector"))
        flat = torch.cat([v.reshape(-1) for v in values]).tolist() if values else []  # the one host copy
        return self._rows(step, flat, slots, norm_slots, owner if weight_params else [], order)

    def _rows(self, step: int, flat: list[float], slots, norm_slots, owners: list[str], order: list[str]) -> list[Row]:
        plain: dict[str, dict[str, float]] = {}
        sums: dict[tuple[str, str], float] = {}
        update: dict[str, float] = {}
        size: dict[str, float] = {}
        pos = 0
        for layer, metric, how in slots:
            if how == "plain":
                plain.setdefault(layer, {})[metric] = flat[pos]
                pos += 1
                continue
            n = len(norm_slots) if metric == "norms" else len(owners)
            chunk = flat[pos : pos + n]
            pos += n
            if metric == "norms":
                for (lay, met), v in zip(norm_slots, chunk):
                    sums[(lay, met)] = sums.get((lay, met), 0.0) + v * v
            else:
                target = update if metric == "update" else size
                for lay, v in zip(owners, chunk):
                    target[lay] = target.get(lay, 0.0) + v * v
        rows: list[Row] = []
        if INPUT in plain:
            rows.append((step, INPUT, "std", plain[INPUT]["std"]))
        kinds = self.trace.kinds
        for name in order:
            metrics: dict[str, float] = {}
            for met in ("output_grad_norm", "input_grad_norm", "weight_grad_norm", "bias_grad_norm"):
                if (name, met) in sums:
                    metrics[met] = math.sqrt(sums[(name, met)])
            if "output_grad_norm" in metrics and "input_grad_norm" in metrics:
                out_norm = metrics["output_grad_norm"]
                metrics["gain"] = metrics["input_grad_norm"] / out_norm if out_norm > 0 else math.nan
            metrics.update(plain.get(name, {}))
            if name in update and size.get(name, 0.0) > 0:
                metrics["update_ratio"] = math.sqrt(update[name]) / math.sqrt(size[name])
            calls = self._state[name].calls
            if calls > 1:
                metrics["calls"] = float(calls)
                self.shared[name] = max(self.shared.get(name, 0), calls)
            if kinds.get(name) == "norm":
                metrics["norm_layer"] = 1.0
            if not metrics:
                continue
            bad = [m for m, v in metrics.items() if not math.isfinite(v) and m != "gain"]
            if bad:
                metrics["nonfinite"] = 1.0
            rows.extend((step, name, m, v) for m, v in metrics.items())
        if self.first_nonfinite is None:
            flagged = {r[1] for r in rows if r[2] == "nonfinite"}
            if flagged:
                first = next((n for n in self._backward_order if n in flagged), None)
                self.first_nonfinite = (step, first or next(n for n in order if n in flagged))
        return rows


def _first_tensor(value) -> torch.Tensor | None:
    """The first tensor in a module's input/output (a tensor, or a tuple such as LSTM's)."""
    if torch.is_tensor(value):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None
