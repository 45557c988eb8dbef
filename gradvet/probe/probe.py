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
  5% of max |f'|), dead_fraction (units inactive on this step's batch: f'(z) = 0
  for every sample) and persistent_dead_fraction (units inactive on every recorded
  step for at least the last DEAD_SPAN steps: see `probe.dead_units`), once the
  module has been watched that long;
- update_ratio ||dW|| / ||W|| over the optimiser step;
- calls (when a module runs more than once per step: weight sharing,
  recurrence; norms then combine all calls), nonfinite (1 where a norm is NaN/Inf);
  nonfinite_input / nonfinite_output on the first watched module in forward order
  whose input / output held a NaN or Inf (see `probe.nonfinite`).

A step ends on the optimiser's step (so k backward calls of gradient
accumulation make one step) or on `probe.step()` when there is no optimiser.
With every=N hooks are attached only for sampled steps. All reductions of a
step are stacked into one tensor and copied to the host once. Hooks are
removed on exit, exception or not (fastai's hook hygiene); entering a probe that
is already active is a no-op (its hooks stay as they are until the outer exit).
Forward passes under torch.no_grad() record nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from gradvet.base.errors import GradvetError
from gradvet.probe.dead_units import DeadUnitTracker, inactive_units
from gradvet.probe.layers import Watched, watched_modules
from gradvet.probe.nonfinite import NONFINITE_INPUT, NONFINITE_OUTPUT, NonFinite, first_in_forward
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
    grad_out_call: list[int] = field(default_factory=list)  # forward call each grad_out belongs to
    samples: int = 0


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
        self.first_nonfinite: NonFinite | None = None
        self.shared: dict[str, int] = {}  # modules seen called more than once in a step: max calls
        self._watched: list[Watched] = []
        self._module_hooks: list = []
        self._params: list[tuple[str, str, torch.Tensor]] = []
        self._params_of: dict[str, list[tuple[str, torch.Tensor]]] = {}
        self._optimizer_hooks: list = []
        self._state: dict[str, _LayerStep] = {}
        self._order: list[str] = []
        self._backward_order: list[str] = []
        self._input_std: torch.Tensor | None = None
        self._before: list[torch.Tensor] | None = None  # parameters before the optimiser step
        self._buffers: list[torch.Tensor] = []  # reused across steps: no allocation (or page faults) per step
        self._size: torch.Tensor | None = None  # ||W|| before the step, per parameter
        self._finite_checks: list[tuple[str, str]] = []  # (layer, 'input' | 'output') in forward order
        self._finite_flags: list[torch.Tensor] = []  # torch.isfinite(...).all() of each check, 0-d
        self._last_output: tuple[torch.Tensor, int] | None = None  # output checked last, its version
        self._dead_units = DeadUnitTracker()  # kept across steps
        self._active = False
        self._depth = 0  # `with` blocks entered and not yet exited

    # -- context -------------------------------------------------------------------------------
    def __enter__(self) -> Probe:
        if self._active:  # re-entered inside its own block: already recording
            self._depth += 1
            return self
        self._watched = watched_modules(self.model)
        if not any(w.kind != "activation" for w in self._watched):
            raise GradvetError(
                f"model {type(self.model).__name__} has no parameters to watch; a probe needs layers with weights."
            )
        for w in self._watched:
            if w.activation is not None:
                w.activation.properties  # noqa: B018  (load max |f'| now, not inside a timed step)
        self.trace.kinds = {w.name: w.kind for w in self._watched}
        # (layer, metric, parameter) of every watched layer's own parameters, looked up once
        self._params = [(w.name, "bias_grad_norm" if pname.startswith("bias") else "weight_grad_norm", p)
                        for w in self._watched if w.kind != "activation"
                        for pname, p in w.module.named_parameters(recurse=False)]
        self._params_of: dict[str, list[tuple[str, torch.Tensor]]] = {}
        for layer, metric, p in self._params:
            self._params_of.setdefault(layer, []).append((metric, p))
        if self.optimizer is not None:
            self._optimizer_hooks = [self.optimizer.register_step_pre_hook(self._before_optimizer_step),
                                     self.optimizer.register_step_post_hook(self._after_optimizer_step)]
        self._active, self._depth = True, 1
        if self._sampled(self.step_index):
            self._attach()
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
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

    def skip_to(self, step_index: int) -> None:
        """Move the step counter forward to `step_index` over steps taken without this probe
        (a batched trainer only shows the probe the steps it samples); nothing is recorded for
        the skipped steps, and the hooks are attached when `step_index` is sampled."""
        if not self._active:
            raise GradvetError("probe.skip_to() called outside the `with Probe(...)` block.")
        if step_index < self.step_index:
            raise GradvetError(f"probe.skip_to({step_index}) would go back from step {self.step_index}.")
        if step_index == self.step_index:
            return
        self._reset_state()
        self.step_index = step_index
        if self._sampled(step_index):
            self._attach()
        else:
            self._detach()

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
        self._finite_checks, self._finite_flags, self._last_output = [], [], None

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
            if self._last_output is None or x is not self._last_output[0] or x._version != self._last_output[1]:
                self._check_finite(w.name, "input", x)  # else checked as the module before's output, unchanged since
            if w.kind == "activation":
                st.inputs.append(x.detach().clone() if getattr(module, "inplace", False) else x.detach())
                return None  # its input gradient is g_out * f'(z), computed at the step's end: no copy needed
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
            self._check_finite(w.name, "output", out)
            self._last_output = (out, out._version)
            if w.kind == "activation":
                st.outputs.append(out.detach())
            if out.requires_grad:
                out.register_hook(self._output_grad_hook(w.name, st, st.calls - 1))

        return hook

    def _check_finite(self, name: str, where: str, tensor: torch.Tensor) -> None:
        """Queue whether `tensor` is all finite (a 0-d tensor on its device: no host sync here)."""
        self._finite_checks.append((name, where))
        self._finite_flags.append(torch.isfinite(tensor.detach()).all())

    def _output_grad_hook(self, name: str, st: _LayerStep, call: int):
        def hook(g: torch.Tensor) -> None:
            st.grad_out.append(g.detach())
            st.grad_out_call.append(call)
            self._backward_order.append(name)

        return hook

    def _weight_params(self) -> list[torch.Tensor]:
        return [p for _, _, p in self._params]

    def _before_optimizer_step(self, optimizer, args, kwargs) -> None:
        if self._module_hooks and self.record_updates:
            params = [p.detach() for p in self._weight_params()]
            if len(self._buffers) != len(params) or any(b.shape != p.shape or b.dtype != p.dtype
                                                        for b, p in zip(self._buffers, params)):
                self._buffers = [torch.empty_like(p) for p in params]
            torch._foreach_copy_(self._buffers, params)
            self._size = torch.stack(torch._foreach_norm(params))
            self._before = self._buffers

    def _after_optimizer_step(self, optimizer, args, kwargs) -> None:
        self._finish_step()

    # -- one step's numbers ------------------------------------------------------------------
    def _finish_step(self) -> None:
        if not self._active:
            raise GradvetError("probe.step() called outside the `with Probe(...)` block.")
        if self._module_hooks:
            self.trace.extend(self._collect())
            self._reset_state()  # let go of this step's tensors now
        self._before = None
        self.step_index += 1
        if self._sampled(self.step_index):
            self._attach()
        else:
            self._detach()

    def _collect(self) -> list[Row]:
        """Every number of the step, computed as tensors, stacked and copied to the host once."""
        step = self.step_index
        scalars: list[torch.Tensor] = []
        slots: list[tuple[str, str]] = []  # (layer, metric) per entry of `scalars`

        def put(layer: str, metric: str, tensor: torch.Tensor) -> None:
            scalars.append(tensor.detach())
            slots.append((layer, metric))

        norms_of: list[torch.Tensor] = []
        norm_slots: list[tuple[str, str]] = []

        def norm_all(layer: str, metric: str, tensors: list[torch.Tensor]) -> None:
            norms_of.extend(tensors)
            norm_slots.extend((layer, metric) for _ in tensors)

        order = self._order + [w.name for w in self._watched if w.name not in self._order]
        by_name = {w.name: w for w in self._watched}
        for name in order:
            w, st = by_name[name], self._state[name]
            if st.calls == 0 and not st.grad_out:
                continue
            norm_all(name, "output_grad_norm", st.grad_out)
            norm_all(name, "input_grad_norm", st.grad_in)
            if w.kind != "activation":
                for metric, p in self._params_of.get(name, ()):
                    if p.grad is not None:
                        norm_all(name, metric, [p.grad])
            elif st.outputs:
                out = _rows_of(st.outputs)
                st.samples = out.numel()
                put(name, "mean", out.mean())
                put(name, "mean_sq", (out * out).mean())  # std from E[a^2] - E[a]^2: two fast reductions
                if st.inputs and w.activation is not None:
                    d = w.activation.grad(_rows_of(st.inputs)).abs()
                    if st.grad_out and len(st.grad_out) == len(st.inputs):
                        # dL/dz = dL/da * f'(z) elementwise: the activation's input gradient, without a copy
                        by_call = [st.grad_out[st.grad_out_call.index(k)] for k in range(len(st.inputs))]
                        norm_all(name, "input_grad_norm", [_rows_of(by_call) * d])
                    top = w.activation.properties.max_grad
                    if math.isfinite(top) and top > 0:
                        put(name, "saturated_fraction", (d < SATURATION_LEVEL * top).mean(dtype=out.dtype))
                    inactive = inactive_units(d)
                    put(name, "dead_fraction", inactive.mean(dtype=out.dtype))
                    dead = self._dead_units.update(name, step, inactive)
                    if dead is not None:
                        put(name, "persistent_dead_fraction", dead)
        if self._input_std is not None:
            put(INPUT, "std", self._input_std)
        pieces = [torch.stack(scalars)] if scalars else []
        n_updates = 0
        if self._before is not None:
            params = [p.detach() for p in self._weight_params()]
            torch._foreach_sub_(self._before, params)  # the buffers now hold W_before - W_after
            pieces += [torch.stack(torch._foreach_norm(self._before)), self._size]
            n_updates = len(params)
        if norms_of:
            pieces.append(torch.stack(torch._foreach_norm(norms_of)))
        n_checks = len(self._finite_flags)
        if n_checks:
            pieces.append(torch.stack(self._finite_flags).float())
        flat = torch.cat(pieces).tolist() if pieces else []  # the one host copy (cat promotes dtypes)
        finite = flat[len(flat) - n_checks:]
        flat = flat[: len(flat) - n_checks]
        owners = [layer for layer, _, _ in self._params] if n_updates else []
        forward = first_in_forward(self._finite_checks, finite)
        return self._rows(step, flat, slots, norm_slots, owners, order, forward)

    def _rows(self, step: int, flat: list[float], slots, norm_slots, owners: list[str], order: list[str],
              forward: tuple[str, bool, str | None] | None) -> list[Row]:
        plain: dict[str, dict[str, float]] = {}
        for (layer, metric), value in zip(slots, flat):
            plain.setdefault(layer, {})[metric] = value
        for layer, stats in plain.items():
            if "mean_sq" in stats:
                n = max(self._state[layer].samples, 2)
                var = max(stats.pop("mean_sq") - stats["mean"] ** 2, 0.0) if math.isfinite(stats["mean"]) else math.nan
                stats["std"] = math.sqrt(var * n / (n - 1))  # unbiased, as torch.std
        pos = len(slots)
        update: dict[str, float] = {}
        size: dict[str, float] = {}
        for target in (update, size):
            for layer, value in zip(owners, flat[pos : pos + len(owners)]):
                target[layer] = target.get(layer, 0.0) + value * value
            pos += len(owners)
        sums: dict[tuple[str, str], float] = {}
        for key, value in zip(norm_slots, flat[pos:]):
            sums[key] = sums.get(key, 0.0) + value * value
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
            if forward is not None and forward[0] == name:
                metrics[NONFINITE_INPUT if forward[1] else NONFINITE_OUTPUT] = 1.0
            if not metrics:
                continue
            bad = [m for m, v in metrics.items() if not math.isfinite(v) and m != "gain"]
            if bad:
                metrics["nonfinite"] = 1.0
            rows.extend((step, name, m, v) for m, v in metrics.items())
        if self.first_nonfinite is None:
            flagged = {r[1] for r in rows if r[2] == "nonfinite"}
            if flagged or forward is not None:
                backward = next((n for n in self._backward_order if n in flagged), None)
                layer, in_input, after = forward or (None, False, None)
                self.first_nonfinite = NonFinite(step, layer, in_input, after, backward)
        return rows


def _rows_of(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The tensors of every call as one (samples, units) matrix; no copy for a single call."""
    flat = [t.reshape(t.shape[0], -1) if t.dim() > 0 else t.reshape(1, 1) for t in tensors]
    return flat[0] if len(flat) == 1 else torch.cat(flat)


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
