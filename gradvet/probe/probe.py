"""`Probe`: hooks on any nn.Module that record where gradients vanish or explode.

    with gradvet.Probe(model, optimizer) as probe:
        for x, y in loader:
            loss = loss_fn(model(x), y); loss.backward(); optimizer.step(); optimizer.zero_grad()
    diagnosis = gradvet.diagnose(probe)

Per step and watched layer (see `probe.layers`) it records the metrics of `probe.metrics`,
one file each with its formula: weight_grad_norm, bias_grad_norm (||dL/dW||, ||dL/db||),
output_grad_norm (the backward signal ||dL/d output||), input_grad_norm and gain (the factor
the module multiplies the backward signal by: the article's chain-rule product, measured);
for activations mean, std, dead_fraction (inactive on this batch), persistent_dead_fraction
(dead) and saturated_fraction; update_ratio over the optimiser step; calls (weight sharing,
recurrence); nonfinite flags; the model input's std. `Probe(..., metrics=...)` picks the
metrics, `probe.metrics.register` adds one of one's own; the probe gathers only the hook
data the metrics read, and its `_collect` and `_rows` are loops over them. On a model's
repeated blocks (`probe.blocks`: transformer layers, residual blocks) it records the block
metrics too, stream_grad_norm, block_gain, stream_std and branch_ratio (`probe.block_hooks`);
`Probe(..., blocks=False)` leaves them out, `blocks=[names]` picks the blocks.

A step ends on the optimiser's step (so k backward calls of gradient
accumulation make one step) or on `probe.step()` when there is no optimiser.
With every=N hooks are attached only for sampled steps. All reductions of a
step are stacked into one tensor and copied to the host once. Hooks are
removed on exit, exception or not (fastai's hook hygiene); entering a probe that
is already active is a no-op (its hooks stay as they are until the outer exit).
Forward passes under torch.no_grad() record nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from gradvet.base.errors import GradvetError
from gradvet.probe.block_hooks import BlockRecorder
from gradvet.probe.layers import Watched, watched_modules
from gradvet.probe.metrics import registry
from gradvet.probe.metrics.layer_step import LayerStep
from gradvet.probe.metrics.nonfinite import Nonfinite
from gradvet.probe.metrics.unit import (
    BLOCK,
    FINITE,
    INPUT,
    INPUT_GRAD,
    LAYER,
    MODEL,
    NOTHING,
    OUTPUT,
    OUTPUT_GRAD,
    UPDATE,
    Metric,
    Parts,
    Values,
    check,
)
from gradvet.probe.nonfinite import NonFinite, first_in_forward
from gradvet.probe.trace import INPUT as INPUT_LAYER
from gradvet.probe.trace import Row as TraceRow
from gradvet.probe.trace import Trace


class Probe:
    """Context manager recording per-layer gradient flow of `model` into `self.trace`.

    metrics: the metric classes to record (`probe.metrics`; the registered ones by default);
    update_ratio=False leaves out those that need the optimiser's before/after snapshot;
    blocks: the repeated blocks the block metrics are recorded on (None: found, `probe.blocks`;
    False: none; or a list of module names)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, every: int = 1,
                 update_ratio: bool = True, metrics: Iterable[type[Metric]] | None = None,
                 blocks: bool | Iterable[str] | None = None):
        if not isinstance(model, nn.Module):
            raise GradvetError(f"Probe needs a torch.nn.Module; got {type(model).__name__}.")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise GradvetError(f"every={every!r} must be a whole number >= 1.")
        units = registry.metrics() if metrics is None else tuple(metrics)
        for unit in units:
            check(unit)
        if not update_ratio:
            units = tuple(u for u in units if UPDATE not in u.reads)
        self.model, self.optimizer, self.every = model, optimizer, every
        self.metrics: list[Metric] = [unit() for unit in units]  # this probe's own instances (their state)
        self._layer_units = [m for m in self.metrics if m.scope == LAYER]
        self._model_units = [m for m in self.metrics if m.scope == MODEL]
        self._blocks, self._blocks_choice = BlockRecorder(m for m in self.metrics if m.scope == BLOCK), blocks
        self.record_updates = optimizer is not None and any(UPDATE in m.reads for m in self._layer_units)
        self.trace = Trace()
        self.step_index = 0  # index of the step in progress
        self.first_nonfinite: NonFinite | None = None
        self.shared: dict[str, int] = {}  # modules seen called more than once in a step: max calls
        self._watched: list[Watched] = []
        self._units_of: dict[str, list[Metric]] = {}  # kind -> the layer metrics measured on it
        self._needs: dict[str, frozenset[str]] = {}  # kind -> the hook data they read
        self._module_hooks: list = []
        self._params_of: dict[str, list[tuple[str, torch.Tensor]]] = {}
        self._updated: list[tuple[str, torch.Tensor]] = []  # (layer, parameter) whose update is recorded
        self._optimizer_hooks: list = []
        self._state: dict[str, LayerStep] = {}
        self._model_step = LayerStep(INPUT_LAYER, "model")
        self._order: list[str] = []
        self._backward_order: list[str] = []
        self._before: list[torch.Tensor] | None = None  # parameters before the optimiser step
        self._buffers: list[torch.Tensor] = []  # reused across steps: no allocation (or page faults) per step
        self._sizes: list[torch.Tensor] = []  # ||W|| before the step, per parameter (0-d)
        self._finite_checks: list[tuple[str, str]] = []  # (layer, 'input' | 'output') in forward order
        self._finite_flags: list[torch.Tensor] = []  # torch.isfinite(...).all() of each check, 0-d
        self._last_output: tuple[torch.Tensor, int] | None = None  # output checked last, its version
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
        kinds = {w.kind for w in self._watched}
        self._units_of = {kind: [m for m in self._layer_units if kind in m.kinds] for kind in kinds}
        self._needs = {kind: frozenset().union(*(m.needs(kind) for m in units)) for kind, units in self._units_of.items()}
        for w in self._watched:
            for unit in self._units_of[w.kind]:
                unit.prepare(w)  # e.g. max |f'| looked up now, not inside a timed step
        self.trace.kinds = {w.name: w.kind for w in self._watched}
        self._blocks.enter(self.model, self._blocks_choice)
        for name, _ in self._blocks.blocks:
            self.trace.kinds.setdefault(name, "block")
        self._params_of = {w.name: list(w.module.named_parameters(recurse=False))
                           for w in self._watched if w.kind != "activation"}
        self._updated = [(w.name, p) for w in self._watched if UPDATE in self._needs[w.kind]
                         for _, p in self._params_of.get(w.name, ())]
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
        self.step_index = step_index
        self._reset_state()
        if self._sampled(step_index):
            self._attach()
        else:
            self._detach()

    @property
    def hooks_attached(self) -> int:
        return len(self._module_hooks) + len(self._optimizer_hooks) + self._blocks.hooks_attached

    # -- hooks -------------------------------------------------------------------------------
    def _sampled(self, index: int) -> bool:
        return index % self.every == 0

    def _attach(self) -> None:
        if self._module_hooks:
            return
        self._reset_state()
        if self._model_units:
            self._module_hooks.append(self.model.register_forward_pre_hook(self._on_model_input))
        for w in self._watched:
            self._module_hooks.append(w.module.register_forward_pre_hook(self._input_hook(w)))
            self._module_hooks.append(w.module.register_forward_hook(self._forward_hook(w)))
        self._blocks.attach()

    def _detach(self) -> None:
        for handle in self._module_hooks:
            handle.remove()
        self._module_hooks = []
        self._blocks.detach()

    def _reset_state(self) -> None:
        self._state = {w.name: LayerStep(w.name, w.kind, self.step_index, w.activation, self._params_of.get(w.name, []))
                       for w in self._watched}
        self._model_step = LayerStep(INPUT_LAYER, "model", self.step_index)
        self._order, self._backward_order = [], []
        self._finite_checks, self._finite_flags, self._last_output = [], [], None
        self._blocks.reset(self.step_index)

    def _has_data(self) -> bool:
        return bool(self._module_hooks) and any(s.calls for s in self._state.values())

    def _on_model_input(self, module, args) -> None:
        """The model's input on the step's first forward pass (for the model-scope metrics)."""
        if not self._model_step.inputs and torch.is_grad_enabled() and args and torch.is_tensor(args[0]):
            self._model_step.inputs.append(args[0].detach())

    def _input_hook(self, w: Watched):
        """Keep the module's input where a metric reads it, and check that it is finite. Where a metric
        reads dL/d input, give the module a private copy of its input and hook that copy: its gradient
        is the part of dL/d input that flows through this module only (a skip path adds its own part
        to the original tensor, not to the copy). Tensor hooks, unlike full backward hooks, survive
        in-place operations on the module's output (ReLU(inplace=True), out += x)."""
        needs = self._needs[w.kind]

        def hook(module, args):
            if not torch.is_grad_enabled() or not args or not torch.is_tensor(args[0]):
                return None
            st = self._state.get(w.name)
            if st is None:
                return None
            x = args[0]
            if FINITE in needs and (self._last_output is None or x is not self._last_output[0]
                                    or x._version != self._last_output[1]):
                self._check_finite(w.name, "input", x)  # else checked as the module before's output, unchanged since
            if INPUT in needs:
                st.inputs.append(x.detach().clone() if getattr(module, "inplace", False) else x.detach())
            if INPUT_GRAD not in needs or not x.requires_grad:
                return None
            private = x.clone()
            private.register_hook(lambda g: st.grad_in.append(g.detach()))
            return (private, *args[1:])

        return hook

    def _forward_hook(self, w: Watched):
        needs = self._needs[w.kind]

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
            if FINITE in needs:
                self._check_finite(w.name, "output", out)
                self._last_output = (out, out._version)
            if OUTPUT in needs:
                st.outputs.append(out.detach())
            if OUTPUT_GRAD in needs and out.requires_grad:
                out.register_hook(self._output_grad_hook(st, st.calls - 1))

        return hook

    def _check_finite(self, name: str, where: str, tensor: torch.Tensor) -> None:
        """Queue whether `tensor` is all finite (a 0-d tensor on its device: no host sync here)."""
        self._finite_checks.append((name, where))
        self._finite_flags.append(torch.isfinite(tensor.detach()).all())

    def _output_grad_hook(self, st: LayerStep, call: int):
        def hook(g: torch.Tensor) -> None:
            st.grad_out.append(g.detach())
            st.grad_out_call.append(call)
            self._backward_order.append(st.name)

        return hook

    def _before_optimizer_step(self, optimizer, args, kwargs) -> None:
        if self._module_hooks and self.record_updates and self._updated:
            params = [p.detach() for _, p in self._updated]
            if len(self._buffers) != len(params) or any(b.shape != p.shape or b.dtype != p.dtype
                                                        for b, p in zip(self._buffers, params)):
                self._buffers = [torch.empty_like(p) for p in params]
            torch._foreach_copy_(self._buffers, params)
            self._sizes = list(torch._foreach_norm(params))
            self._before = self._buffers

    def _after_optimizer_step(self, optimizer, args, kwargs) -> None:
        self._finish_step()

    # -- one step's numbers ------------------------------------------------------------------
    def _finish_step(self) -> None:
        if not self._active:
            raise GradvetError("probe.step() called outside the `with Probe(...)` block.")
        collect = bool(self._module_hooks)
        if collect:
            self.trace.extend(self._collect())
        self._before = None
        self.step_index += 1
        if collect:
            self._reset_state()  # let go of this step's tensors now
        if self._sampled(self.step_index):
            self._attach()
        else:
            self._detach()

    def _take_updates(self) -> None:
        """W_before - W_after per parameter into the reused buffers, handed to each layer's step with ||W_before||."""
        if self._before is None:
            return
        torch._foreach_sub_(self._before, [p.detach() for _, p in self._updated])
        for (layer, _), delta, size in zip(self._updated, self._before, self._sizes):
            self._state[layer].update.append(delta)
            self._state[layer].sizes.append(size)

    def _collect(self) -> list[TraceRow]:
        """Every number of the step: each metric reduces its hook data to norms and 0-d tensors,
        all are stacked and copied to the host once, then each metric makes its value."""
        self._take_updates()
        order = self._order + [w.name for w in self._watched if w.name not in self._order]
        steps = [self._state[name] for name in order if self._state[name].calls or self._state[name].grad_out]
        layers = [(self._model_step, self._model_units)] if self._model_step.inputs else []
        layers += [(st, self._units_of[st.kind]) for st in steps]
        measured: list[tuple[LayerStep, list[tuple[Metric, Parts]]]] = []
        scalars: list[torch.Tensor] = []
        norms: list[torch.Tensor] = []
        for st, units in layers:
            parts = [(unit, unit.measure(st)) for unit in units]
            for _, part in parts:
                if part is not NOTHING:
                    scalars += part.scalars
                    norms += part.norms
            measured.append((st, parts))
        pieces = [torch.stack(scalars)] if scalars else []
        if norms:
            pieces.append(torch.stack(torch._foreach_norm(norms)))
        if self._finite_flags:
            pieces.append(torch.stack(self._finite_flags).float())
        blocks = self._blocks.tensors()
        if blocks:
            pieces.append(torch.stack(blocks))
        flat = torch.cat(pieces).tolist() if pieces else []  # the one host copy (cat promotes dtypes)
        at = len(scalars) + len(norms)
        forward = first_in_forward(self._finite_checks, flat[at: at + len(self._finite_flags)])
        return (self._rows(measured, flat[: len(scalars)], flat[len(scalars): at], forward)
                + self._blocks.rows(self.step_index, flat[at + len(self._finite_flags):]))

    def _rows(self, measured: list[tuple[LayerStep, list[tuple[Metric, Parts]]]], scalars: list[float],
              norms: list[float], forward: tuple[str, bool, str | None] | None) -> list[TraceRow]:
        """Each metric's value from its floats (in the order `_collect` laid them out), layer by layer
        in forward order (the model input's first)."""
        step = self.step_index
        rows: list[TraceRow] = []
        flagged = set()
        at_scalar = at_norm = 0
        for st, parts in measured:
            st.first_nonfinite_forward = forward
            values = Values()
            for unit, part in parts:
                got = part
                if part is not NOTHING:
                    got = Parts(norms[at_norm: at_norm + len(part.norms)], scalars[at_scalar: at_scalar + len(part.scalars)])
                    at_norm, at_scalar = at_norm + len(part.norms), at_scalar + len(part.scalars)
                value = unit.value(got, values, st)
                if value is not None:
                    values.put(unit, value)
            rows += [(step, st.name, metric, value) for metric, value in values.items()]
            if Nonfinite.name in values:
                flagged.add(st.name)
            if st.calls > 1:
                self.shared[st.name] = max(self.shared.get(st.name, 0), st.calls)
        if self.first_nonfinite is None and (flagged or forward is not None):
            backward = next((n for n in self._backward_order if n in flagged), None)
            layer, in_input, after = forward or (None, False, None)
            self.first_nonfinite = NonFinite(step, layer, in_input, after, backward)
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
