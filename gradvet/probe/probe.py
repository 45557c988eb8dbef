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

Training loops as they are:
- A step ends on the optimiser's step, or on `probe.step()` when no optimiser is given. A loop
  with neither merges everything into one step, and says so once (a warning and a trace note).
- Parameter-gradient norms are ||p.grad|| read when backward has accumulated it
  (`probe.param_grads`): before clipping (clip_grad_norm_ runs after backward), and with
  gradient accumulation the norm of the gradient summed over the micro-batches, the one the
  optimiser steps with.
- k backward passes before one optimiser step are the micro-batches of one step, not weight
  sharing: `calls` counts the forward calls of a module between two backward passes (a module
  run twice in one forward pass), so micro-batches are one call each; the norms of activation
  gradients combine the micro-batches as one long vector, the forward statistics over all
  their samples.
- Activation checkpointing (torch.utils.checkpoint, use_reentrant False or True): the forward
  pass run again inside backward is no second call. A call made while a backward pass runs is
  a recomputation; it is skipped when the module was already recorded in the forward pass that
  backward belongs to (use_reentrant=False), recorded when not (use_reentrant=True runs the
  first forward pass under no_grad).
- A second backward pass through the same forward pass (retain_graph=True) is noted once; the
  activation-gradient norms are those of the first, parameter norms those of .grad (holding
  the sum of both, as the optimiser sees it).
- A parameter shared by several modules (tied embeddings, GPT-2's wte and lm_head) is listed
  once, under the first module that has it, with a note. A torch.compile'd model is watched
  through its original module: layer names without `_orig_mod.`, and a note says how many
  graph breaks dynamo counted while the hooks were attached.

Nothing the probe does changes training: hooks only read (input gradients are read off
autograd's own backward nodes, `probe.input_grads`), and hold no activation or gradient
tensor beyond a hook's run: every metric reduces its data in the hook to 0-d tensors or
per-unit masks (`probe.metrics.unit`), so the probe's memory is O(layers x units), not O(batch)
or O(micro-batches). With every=N hooks are attached only for sampled steps. All numbers of a
step are stacked into one tensor and copied to the host once. Hooks are removed on exit,
exception or not (fastai's hook hygiene); entering a probe that is already active is a no-op
(its hooks stay as they are until the outer exit). Forward passes under torch.no_grad()
record nothing.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable

import torch
from torch import nn

from gradvet.base.errors import GradvetError
from gradvet.probe import input_grads
from gradvet.probe.block_hooks import BlockRecorder
from gradvet.probe.compiled import GraphBreaks, eager, unwrap
from gradvet.probe.layers import Include, Watched, watched_modules
from gradvet.probe.metrics import registry
from gradvet.probe.metrics.layer_step import LayerStep, Seen
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
    PARAMS,
    UPDATE,
    Metric,
    Parts,
    Values,
    check,
)
from gradvet.probe.nonfinite import NonFinite, extremes, first_in_forward
from gradvet.probe.param_grads import ParamGradReader
from gradvet.probe.tensors import first_tensor, tensors
from gradvet.probe.trace import INPUT as INPUT_LAYER
from gradvet.probe.trace import Row as TraceRow
from gradvet.probe.trace import Trace

NO_STEP_BOUNDARY = ("Probe: no optimizer was given and probe.step() was not called, so {n} backward passes were "
                    "recorded as one step; pass the optimizer (Probe(model, optimizer)) or call probe.step() after "
                    "each optimizer step.")


_graph_task_id = getattr(torch._C, "_current_graph_task_id", lambda: -1)


def _in_backward() -> bool:
    """Whether autograd's engine is running a backward pass on this thread (a forward call now is
    activation checkpointing's recomputation)."""
    return _graph_task_id() != -1


class _Call:
    """One recorded forward call between the module's pre-hook and its forward hook."""

    __slots__ = ("inputs",)

    def __init__(self, inputs: input_grads.Inputs | None):
        self.inputs = inputs


class Probe:
    """Context manager recording per-layer gradient flow of `model` into `self.trace`.

    metrics: the metric classes to record (`probe.metrics`; the registered ones by default);
    update_ratio=False leaves out those that need the optimiser's before/after snapshot;
    blocks: the repeated blocks the block metrics are recorded on (None: found, `probe.blocks`;
    False: none; or a list of module names);
    include: watch only the modules it selects (glob patterns on module names, or a function;
    `probe.layers.watched_modules`)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, every: int = 1,
                 update_ratio: bool = True, metrics: Iterable[type[Metric]] | None = None,
                 blocks: bool | Iterable[str] | None = None, include: Include = None):
        if not isinstance(model, nn.Module):
            raise GradvetError(f"Probe needs a torch.nn.Module; got {type(model).__name__}.")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise GradvetError(f"every={every!r} must be a whole number >= 1.")
        if optimizer is not None and not callable(getattr(optimizer, "register_step_pre_hook", None)):
            raise GradvetError(f"optimizer={optimizer!r} must be a torch.optim.Optimizer (or None: end each step "
                               "with probe.step()).")
        blocks = _check_blocks(blocks)
        units = registry.metrics() if metrics is None else tuple(metrics)
        for unit in units:
            check(unit)
        if not update_ratio:
            units = tuple(u for u in units if UPDATE not in u.reads)
        self.model, self.optimizer, self.every, self.include = model, optimizer, every, include
        self.metrics: list[Metric] = [unit() for unit in units]  # this probe's own instances (their state)
        self._layer_units = [m for m in self.metrics if m.scope == LAYER]
        self._model_units = [m for m in self.metrics if m.scope == MODEL]
        self._blocks, self._blocks_choice = BlockRecorder(m for m in self.metrics if m.scope == BLOCK), blocks
        self.record_updates = optimizer is not None and any(UPDATE in m.reads for m in self._layer_units)
        self.trace = Trace()
        self.step_index = 0  # index of the step in progress
        self.first_nonfinite: NonFinite | None = None
        self.shared: dict[str, int] = {}  # modules called more than once between two backward passes: max calls
        self.tied: dict[str, str] = {}  # parameter -> the parameter it is (listed under the latter's module)
        self._watched: list[Watched] = []
        self._units_of: dict[str, list[Metric]] = {}  # kind -> the layer metrics measured on it
        self._needs: dict[str, frozenset[str]] = {}  # kind -> the hook data they read
        self._on: dict[tuple[str, str], list[Metric]] = {}  # (kind, hook data) -> the metrics it goes to
        self._module_hooks: list = []
        self._params_of: dict[str, list[tuple[str, torch.Tensor]]] = {}
        self._reader: ParamGradReader | None = None
        self._param_owner: list[tuple[str, str]] = []  # per reader parameter: (layer, parameter name)
        self._updated: list[tuple[str, torch.Tensor]] = []  # (layer, parameter) whose update is recorded
        self._optimizer_hooks: list = []
        self._state: dict[str, LayerStep] = {}
        self._model_step = LayerStep(INPUT_LAYER, "model")
        self._order: dict[str, None] = {}  # watched modules in the order of their first call in the step
        self._backward_order: dict[str, None] = {}  # layers in the order the backward pass reached them
        self._interval = 0  # backward intervals of the step: a forward call after a backward pass starts one
        self._backward_seen = False  # a backward pass ran since the latest forward call
        self._pending: set[input_grads.Pending] = set()  # input gradients whose consumers have not all run
        self._finite: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}  # (layer, input|output) -> min, max so far
        self._last_output: tuple[weakref.ref, int] | None = None  # output checked last, its version
        self._last_hooked_view: tuple[weakref.ref, str] | None = None  # a view output with a gradient hook, its layer
        self._view_noted: set[str] = set()
        self._before: list[torch.Tensor] | None = None  # parameters before the optimiser step
        self._buffers: list[torch.Tensor] = []  # reused across steps: no allocation (or page faults) per step
        self._sizes: list[torch.Tensor] = []  # ||W|| before the step, per parameter (0-d)
        self._stepped = False  # probe.step() was called at least once
        self._warned = False
        self._retain_noted = False
        self._compiled = False
        self._breaks: GraphBreaks | None = None
        self._active = False
        self._depth = 0  # `with` blocks entered and not yet exited

    # -- context -------------------------------------------------------------------------------
    def __enter__(self) -> Probe:
        if self._active:  # re-entered inside its own block: already recording
            self._depth += 1
            return self
        target, self._compiled = unwrap(self.model)
        self._watched = watched_modules(target, self.include)
        if not any(w.kind != "activation" for w in self._watched):
            where = "" if self.include is None else f" among the modules include={self.include!r} selects"
            raise GradvetError(
                f"model {type(self.model).__name__} has no parameters to watch{where}; a probe needs layers with weights."
            )
        kinds = {w.kind for w in self._watched}
        self._units_of = {kind: [m for m in self._layer_units if kind in m.kinds] for kind in kinds}
        self._needs = {kind: frozenset().union(*(m.needs(kind) for m in units)) for kind, units in self._units_of.items()}
        self._on = {(kind, data): [m for m in units if data in m.needs(kind)]
                    for kind, units in self._units_of.items() for data in (INPUT, OUTPUT, OUTPUT_GRAD, INPUT_GRAD)}
        self._on.update({("model", INPUT): [m for m in self._model_units if INPUT in m.reads]})
        for w in self._watched:
            for unit in self._units_of[w.kind]:
                unit.prepare(w)  # e.g. max |f'| looked up now, not inside a timed step
        self.trace.kinds = {w.name: w.kind for w in self._watched}
        self._blocks.enter(self.model, self._blocks_choice)
        for name, _ in self._blocks.blocks:
            self.trace.kinds.setdefault(name, "block")
        self._own_parameters()
        self._updated = [(w.name, p) for w in self._watched if UPDATE in self._needs[w.kind]
                         for _, p in self._params_of.get(w.name, ())]
        if self.optimizer is not None:
            self._optimizer_hooks = [self.optimizer.register_step_pre_hook(self._before_optimizer_step),
                                     self.optimizer.register_step_post_hook(self._after_optimizer_step)]
        if self._compiled:
            self._breaks = GraphBreaks()
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
                if self.optimizer is None and not self._stepped and self._interval > 0:
                    self._no_step_boundary()
                self._finish_step()  # a last step without optimizer.step()/probe.step()
            if exc[0] is None and self._breaks is not None:
                self._note(self._breaks.note())
        finally:
            self._detach()
            for handle in self._optimizer_hooks:
                handle.remove()
            self._optimizer_hooks = []
            self._active = False

    def step(self) -> None:
        """End the current step (for loops without an optimizer passed to the Probe)."""
        self._stepped = True
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
        return (len(self._module_hooks) + len(self._optimizer_hooks) + (self._reader.hooks if self._reader else 0)
                + self._blocks.hooks_attached)

    # -- notes ---------------------------------------------------------------------------------
    def _note(self, text: str | None) -> None:
        if text and text not in self.trace.notes:
            self.trace.notes.append(text)

    def _no_step_boundary(self) -> None:
        text = NO_STEP_BOUNDARY.format(n=self._interval + 1)
        self._note(text)
        if not self._warned:
            self._warned = True
            warnings.warn(text, stacklevel=3)

    def _second_backward(self) -> None:
        if not self._retain_noted:
            self._retain_noted = True
            self._note(f"a second backward pass went through the same forward pass (retain_graph=True) at step "
                       f"{self.step_index}: the activation-gradient norms (output_grad_norm, input_grad_norm) are "
                       "those of the first backward pass; parameter-gradient norms are those of .grad, which sums "
                       "both.")

    def _own_parameters(self) -> None:
        """Each watched module's own parameters; one shared with an earlier module (tied weights)
        is listed there only, and noted."""
        owner: dict[int, str] = {}
        self._params_of, tied = {}, {}
        for w in self._watched:
            if w.kind == "activation":
                continue
            own: list[tuple[str, torch.Tensor]] = []
            for pname, p in w.module.named_parameters(recurse=False):
                full = f"{w.name}.{pname}" if w.name else pname
                if id(p) in owner:
                    tied[full] = owner[id(p)]
                    continue
                owner[id(p)] = full
                own.append((pname, p))
            self._params_of[w.name] = own
        self.tied = tied
        if tied:
            listed = ", ".join(f"{a} is {b}" for a, b in tied.items())
            self._note(f"tied parameters, listed once (under the first module that has them): {listed}.")
        params = [(name, pname, p) for name, own in self._params_of.items() for pname, p in own]
        self._param_owner = [(name, pname) for name, pname, _ in params]
        self._reader = ParamGradReader([p for _, _, p in params], self._store_grad_norm)
        self._reader.on_backward = self._on_backward
        self._reader.read_norms = any(PARAMS in needs for needs in self._needs.values())

    # -- hooks -------------------------------------------------------------------------------
    def _sampled(self, index: int) -> bool:
        return index % self.every == 0

    def _attach(self) -> None:
        if self._module_hooks:
            return
        self._reset_state()
        if self._model_units:
            self._module_hooks.append(self.model.register_forward_pre_hook(self._on_model_input))
        wrap = eager if self._compiled else (lambda fn: fn)
        for w in self._watched:
            self._module_hooks.append(w.module.register_forward_pre_hook(wrap(self._input_hook(w)), with_kwargs=True))
            self._module_hooks.append(w.module.register_forward_hook(wrap(self._forward_hook(w))))
        if self._reader is not None:
            self._reader.attach()
        self._blocks.attach()

    def _detach(self) -> None:
        for handle in self._module_hooks:
            handle.remove()
        self._module_hooks = []
        if self._reader is not None:
            self._reader.detach()
        self._blocks.detach()

    def _reset_state(self) -> None:
        self._state = {w.name: LayerStep(w.name, w.kind, self.step_index, w.activation, self._params_of.get(w.name, []))
                       for w in self._watched}
        self._model_step = LayerStep(INPUT_LAYER, "model", self.step_index)
        self._order, self._backward_order = {}, {}
        self._interval, self._backward_seen = 0, False
        self._pending = set()
        self._finite, self._last_output = {}, None
        self._blocks.reset(self.step_index)

    def _has_data(self) -> bool:
        return bool(self._module_hooks) and any(s.has_data() for s in self._state.values())

    def _on_backward(self) -> None:
        self._backward_seen = True

    def _store_grad_norm(self, index: int, norm: torch.Tensor) -> None:
        layer, pname = self._param_owner[index]
        st = self._state.get(layer)
        if st is not None:
            st.grad_norms[pname] = norm

    def _on_model_input(self, module, args) -> None:
        """The model's input (for the model-scope metrics)."""
        if not torch.is_grad_enabled() or _in_backward() or not args or not torch.is_tensor(args[0]):
            return
        seen = Seen(args[0].detach())
        for unit in self._on[("model", INPUT)]:
            unit.on_input(self._model_step, seen)
        self._model_step.forwards += 1

    def _count_call(self, st: LayerStep) -> bool:
        """Count a forward call of `st`'s module; False for a recomputation of one already counted.

        A forward call after a backward pass starts a new backward interval; `calls` is the most
        calls of the module within one interval. A call made during a backward pass belongs to the
        interval of the forward pass being differentiated."""
        if _in_backward():
            if st.interval == self._interval and st.interval_calls > 0:
                return False  # use_reentrant=False: the forward pass recorded it already
        elif self._backward_seen:
            self._interval += 1
            self._backward_seen = False
        if st.interval != self._interval:
            st.interval, st.interval_calls = self._interval, 0
        st.interval_calls += 1
        st.calls = max(st.calls, st.interval_calls)
        st.forwards += 1
        if st.name not in self._order:
            self._order[st.name] = None
        return True

    def _input_hook(self, w: Watched):
        """Count the call, check that the input is finite, hand it to the metrics that read it, and
        note the inputs whose gradient through the module is wanted (`probe.input_grads`)."""
        needs = self._needs[w.kind]
        on_input = self._on[(w.kind, INPUT)]
        wants_grad = INPUT_GRAD in needs

        def hook(module, args, kwargs):
            if not torch.is_grad_enabled():
                if w.name not in self._order:  # forward order, also where the first pass runs under no_grad
                    self._order[w.name] = None  # (use_reentrant=True checkpointing), records nothing else
                return None
            st = self._state.get(w.name)
            if st is None:
                return None
            if not self._count_call(st):
                st.open.append(None)
                return None
            x = first_tensor(args) if args else first_tensor(list(kwargs.values()))  # module(input=x) too
            if x is not None:
                if getattr(module, "inplace", False):
                    self._check_view_changed_in_place(x, w.name)
                if FINITE in needs and not self._is_last_output(x):
                    self._check_finite(w.name, "input", x)  # else checked as the module before's output, unchanged since
                if on_input:
                    seen = Seen(x.detach(), w.activation)
                    for unit in on_input:
                        unit.on_input(st, seen)
            st.open.append(_Call(input_grads.of_call(args, kwargs) if wants_grad else None))
            return None

        return hook

    def _forward_hook(self, w: Watched):
        needs = self._needs[w.kind]
        on_output = self._on[(w.kind, OUTPUT)]
        on_output_grad = self._on[(w.kind, OUTPUT_GRAD)]
        on_input_grad = self._on[(w.kind, INPUT_GRAD)]

        def hook(module, inputs, output):
            if not torch.is_grad_enabled():
                return
            st = self._state.get(w.name)
            if st is None or not st.open:
                return
            call = st.open.pop()
            if call is None:  # a recomputation
                return
            outs = tensors(output)
            if not outs:
                return
            out = outs[0]
            if FINITE in needs:
                self._check_finite(w.name, "output", out)
                self._last_output = (weakref.ref(out), out._version)
            if on_output:
                seen = Seen(out.detach())
                for unit in on_output:
                    unit.on_output(st, seen)
            if on_output_grad and out.requires_grad:
                out.register_hook(self._output_grad_hook(st, on_output_grad))
                self._last_hooked_view = (weakref.ref(out), w.name) if out._base is not None else None
            if on_input_grad and call.inputs is not None:
                self._watch_input_grads(st, call.inputs, [o for o in outs if o.requires_grad], on_input_grad)

        return hook

    def _watch_input_grads(self, st: LayerStep, inputs: input_grads.Inputs, outs: list[torch.Tensor],
                           units: list[Metric]) -> None:
        pending: input_grads.Pending | None = None

        def emit(g: torch.Tensor) -> None:
            for unit in units:
                unit.on_input_grad(st, g)
            if pending is not None and pending.done():
                self._pending.discard(pending)

        pending = input_grads.watch(outs, inputs, emit, self._second_backward)
        if pending is not None:  # an input with several consumers: summed as they run, flushed at the latest when the step ends
            self._pending.add(pending)

    def _check_view_changed_in_place(self, x: torch.Tensor, by: str) -> None:
        """Note it when an in-place module (ReLU(inplace=True)) is about to change a layer's output that is
        a view (a Linear on a 3-D input returns one): torch then calls no tensor hook on it, so that layer's
        output-gradient numbers (output_grad_norm, gain) go unrecorded."""
        last = self._last_hooked_view
        if last is None or last[0]() is not x or last[1] in self._view_noted:
            return
        self._view_noted.add(last[1])
        self._note(f"the output of '{last[1]}' is a view that '{by}' changes in place, so torch calls no gradient "
                   f"hook on it: its output_grad_norm and gain are not recorded (use inplace=False there to record "
                   "them; training is the same).")

    def _is_last_output(self, x: torch.Tensor) -> bool:
        last = self._last_output
        return last is not None and last[0]() is x and x._version == last[1]

    def _check_finite(self, name: str, where: str, tensor: torch.Tensor) -> None:
        """Fold `tensor`'s extremes into its check (`probe.nonfinite.extremes`: 0-d tensors on its device, no
        host sync here): the running minimum and maximum over the calls, all finite iff every value was."""
        found = extremes(tensor.detach())
        key = (name, where)
        old = self._finite.get(key)
        self._finite[key] = found if old is None else (torch.minimum(old[0], found[0]), torch.maximum(old[1], found[1]))

    def _output_grad_hook(self, st: LayerStep, units: list[Metric]):
        received = False

        def hook(g: torch.Tensor) -> None:
            nonlocal received
            self._backward_seen = True
            if received:
                self._second_backward()
                return
            received = True
            if st.name not in self._backward_order:
                self._backward_order[st.name] = None
            g = g.detach()
            for unit in units:
                unit.on_output_grad(st, g)

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
            if (self._breaks is not None and not any(s.forwards for s in self._state.values())
                    and any(s.grad_norms for s in self._state.values())):  # a backward pass ran, no forward hook
                self._note(self._breaks.unseen())
        self._before = None
        self.step_index += 1
        if collect:
            self._reset_state()  # let go of this step's numbers now
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
        """Every number of the step: each metric gives its running results as 0-d tensors (and the
        tensors whose norms it wants), all are stacked and copied to the host once, then each metric
        makes its value."""
        for pending in list(self._pending):
            pending.flush_all()
        self._pending = set()
        self._take_updates()
        order = list(self._order) + [w.name for w in self._watched if w.name not in self._order]
        steps = [self._state[name] for name in order if self._state[name].has_data()]
        layers = [(self._model_step, self._model_units)] if self._model_step.forwards else []
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
        rank = {name: i for i, name in enumerate(order)}
        checks = sorted(self._finite, key=lambda k: (rank.get(k[0], len(rank)), k[1] == "output"))
        pieces = [torch.stack(scalars)] if scalars else []
        if norms:
            pieces.append(torch.stack(torch._foreach_norm(norms)))
        if checks:
            ends = torch.stack([end for k in checks for end in self._finite[k]])
            pieces.append(torch.isfinite(ends).view(-1, 2).all(dim=1).float())
        blocks = self._blocks.tensors()
        if blocks:
            pieces.append(torch.stack(blocks))
        flat = torch.cat(pieces).tolist() if pieces else []  # the one host copy (cat promotes dtypes)
        at = len(scalars) + len(norms)
        forward = first_in_forward(checks, flat[at: at + len(checks)])
        return (self._rows(measured, flat[: len(scalars)], flat[len(scalars): at], forward)
                + self._blocks.rows(self.step_index, flat[at + len(checks):]))

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




def _check_blocks(blocks):
    """`blocks` as Probe takes it: None, True, False, or a list of module names (one GradvetError sentence
    otherwise)."""
    if blocks is None or isinstance(blocks, bool):
        return blocks
    names = [blocks] if isinstance(blocks, str) else blocks
    try:
        names = list(names)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        raise GradvetError(f"blocks={blocks!r} must be None (found), True, False (none) or a list of module names.")
    return names
