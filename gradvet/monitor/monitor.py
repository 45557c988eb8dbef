"""`Monitor`: cheap every-step gradient signals and online detectors that warn before a run is lost.

    with Monitor(model, optimizer, on_alert=print) as monitor:
        for x, y in loader:
            loss = loss_fn(model(x), y); loss.backward()
            monitor.observe(loss)                      # optional: alerts work from gradients alone
            clip_grad_norm_(model.parameters(), 1.0)   # the monitor saw the norms before this
            optimizer.step(); optimizer.zero_grad()
    monitor.alerts                                     # [Alert(step, kind, layer, message, remedy, ...)]

Per optimiser step it reads (see `StepSignals`): the total and per-layer
gradient norms from one fused norm at the end of each backward pass (so before
clipping, and over the accumulated gradient of several micro-batches), update
ratios ||dW|| / ||W|| per layer on every `update_every`-th step (and when the
learning rate jumps; see `gradvet.monitor.updates`), the
learning rate, and the loss when given. A step ends at `optimizer.step()` (or
at `monitor.step()` when no optimiser is given; call it after the update). The
step's numbers reach the host in one copy and go to the detectors (`Alarms`);
each new alert is appended to `monitor.alerts` and passed to `on_alert`, which
may log it, set a flag, or raise to stop training (the hooks are removed on the
way out). The monitor keeps numbers, not tensors (besides the buffers for the
sampled update ratios), never writes to the model, its gradients or the
optimiser, and so never changes a bit of training. Entering a monitor that is
already active is a no-op.

Mixed precision: with a `torch.amp.GradScaler`, the gradients autograd leaves
are those of the scaled loss (S x the true ones). Give the scaler
(`Monitor(..., scaler=scaler)`) and the norms are divided by the scale the
step's last backward pass used (`scaler.get_scale()` read when that pass ends:
a host read of one number per backward pass on an accelerator), so they are the
true gradient's whatever the scale does. A step the scaler skips (Inf/NaN in the
scaled gradients, the routine overflow of float16) calls no `optimizer.step()`:
its backward pass merges into the next step, whose norms are read afresh. Without
an optimiser, a `monitor.step()` whose gradient norms are not finite while the
loss is (or was not given) is taken for such a skipped step: dropped, not
counted; so is a last such pass when the block exits. A routine overflow raises
no `nonfinite` alert; a loss that is itself NaN/Inf still does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from gradvet.base import validation
from gradvet.base.errors import GradvetError
from gradvet.monitor.alarms import Alarms
from gradvet.monitor.alert import Alert
from gradvet.monitor.detectors import Detector
from gradvet.monitor.gradients import GradientNorms
from gradvet.monitor.signals import StepSignals
from gradvet.monitor.updates import UpdateNorms

UPDATE_EVERY = 10  # update ratios on the first steps and every 10th step after (the copy is the costly part)


class Monitor:
    """Context manager watching `model` (and `optimizer`) for exploding, vanishing and non-finite gradients."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                 update_every: int = UPDATE_EVERY, detectors: Sequence[Detector] | None = None,
                 on_alert: Callable[[Alert], object] | None = None, keep_signals: bool = False,
                 scaler: object | None = None):
        if not isinstance(model, nn.Module):
            raise GradvetError(f"Monitor needs a torch.nn.Module; got {type(model).__name__}.")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise GradvetError(f"optimizer must be a torch.optim.Optimizer or None; got {type(optimizer).__name__}.")
        validation.whole_number("update_every", update_every, 1)
        if on_alert is not None and not callable(on_alert):
            raise GradvetError(f"on_alert must be a function taking an Alert, or None; got {type(on_alert).__name__}.")
        if scaler is not None and not (callable(getattr(scaler, "get_scale", None))
                                       and callable(getattr(scaler, "is_enabled", None))):
            raise GradvetError(f"scaler must be a torch.amp.GradScaler (with get_scale and is_enabled) or None; got "
                               f"{type(scaler).__name__}.")
        self.model, self.optimizer, self.on_alert, self.scaler = model, optimizer, on_alert, scaler
        self.update_every = update_every
        self.alarms = Alarms(detectors)
        self.keep_signals = bool(keep_signals)
        self.signals: list[StepSignals] = []  # every step's numbers, when keep_signals
        self.last: StepSignals | None = None  # the latest step's numbers
        self.step_index = 0  # the step in progress, counted from 0
        self._grads: GradientNorms | None = None
        self._updates: UpdateNorms | None = None
        self._optimizer_hooks: list = []
        self._losses: list[torch.Tensor | float] = []
        self._active = False
        self._depth = 0

    @property
    def alerts(self) -> list[Alert]:
        return self.alarms.alerts

    @property
    def layers(self) -> list[str]:
        """The watched layers (modules owning trainable parameters), in model order."""
        return list(self._grads.layers) if self._grads is not None else []

    @property
    def hooks_attached(self) -> int:
        return (self._grads.hooks_attached if self._grads is not None else 0) + len(self._optimizer_hooks)

    # -- context ------------------------------------------------------------------------------
    def __enter__(self) -> Monitor:
        if self._active:
            self._depth += 1
            return self
        grads = GradientNorms(self.model)
        if not grads.params:
            raise GradvetError(f"model {type(self.model).__name__} has no trainable parameters; "
                               "a monitor needs parameters that receive gradients.")
        if self.scaler is not None and self.scaler.is_enabled():
            grads.loss_scale = self.scaler.get_scale
        self._grads, self._updates = grads, UpdateNorms(grads.params, self.update_every)
        try:
            grads.attach()
            if self.optimizer is not None:
                self._optimizer_hooks = [self.optimizer.register_step_pre_hook(self._before_optimizer_step),
                                         self.optimizer.register_step_post_hook(self._after_optimizer_step)]
            elif self._updates.sampled(self.step_index):
                self._updates.before()  # without an optimiser: the update is W at this step's end minus W now
        except BaseException:
            self._remove_hooks()
            raise
        self._active, self._depth = True, 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        try:
            if exc[0] is None and self._grads is not None and (self._grads.passes or self._losses):
                self._end_step(updates=False)  # a last step without optimizer.step(): a diverged run's last numbers
        finally:
            self._remove_hooks()
            self._active = False

    def _remove_hooks(self) -> None:
        if self._grads is not None:
            self._grads.detach()
        for handle in self._optimizer_hooks:
            handle.remove()
        self._optimizer_hooks = []
        if self._updates is not None:
            self._updates.forget()

    # -- the user's calls -----------------------------------------------------------------------
    def observe(self, loss: torch.Tensor | float) -> None:
        """Give the monitor this step's loss (a number or a one-element tensor; read at the step's end,
        so no host sync here). Several calls in one step (micro-batches) are averaged."""
        if not self._active:
            raise GradvetError("monitor.observe() called outside the `with Monitor(...)` block.")
        if torch.is_tensor(loss):
            if loss.numel() != 1:
                raise GradvetError(f"monitor.observe() takes the loss as one number; got a tensor of shape "
                                   f"{tuple(loss.shape)}.")
            self._losses.append(loss.detach())
        elif isinstance(loss, (int, float)) and not isinstance(loss, bool):
            self._losses.append(float(loss))
        else:
            raise GradvetError(f"monitor.observe() takes the loss as a number or a one-element tensor; got "
                               f"{type(loss).__name__}.")

    def step(self) -> None:
        """End the current step (for loops without an optimiser given to the Monitor), after the update."""
        if not self._active:
            raise GradvetError("monitor.step() called outside the `with Monitor(...)` block.")
        if self.optimizer is not None:
            raise GradvetError("monitor.step() is for loops without an optimizer given to the Monitor; this one "
                               "ends each step at optimizer.step().")
        self._end_step(updates=True)

    # -- hooks ----------------------------------------------------------------------------------
    def _before_optimizer_step(self, optimizer, args, kwargs) -> None:
        if self._updates.sampled(self.step_index, self._learning_rate()):
            self._updates.before()

    def _after_optimizer_step(self, optimizer, args, kwargs) -> None:
        self._end_step(updates=True)

    # -- one step -------------------------------------------------------------------------------
    def _end_step(self, updates: bool) -> None:
        present, norms, passes = self._grads.take()
        update_norms = self._updates.after() if updates else None
        losses, self._losses = self._losses, []
        loss_tensors = [t.reshape(1) for t in losses if torch.is_tensor(t)]
        pieces = [t for t in (norms, update_norms) if t is not None] + loss_tensors
        flat: list[float] = []
        if pieces:
            device = pieces[0].device
            if any(p.device != device for p in pieces):
                pieces = [p.to(device) for p in pieces]
            flat = torch.cat(pieces).tolist()  # the one host copy (cat promotes to the widest dtype)
        signals = StepSignals(step=self.step_index, backward_passes=passes, lr=self._learning_rate())
        pos = 0
        if norms is not None:
            values = [v / self._grads.pending_scale for v in flat[: len(present)]]
            pos = len(present)
            signals.layer_grad_norms = self._per_layer([(i, v) for i, v in zip(present, values)])
            signals.grad_norm = math.sqrt(sum(v * v for v in values))
        if update_norms is not None:
            n = len(self._grads.params)
            delta, size = flat[pos : pos + n], flat[pos + n : pos + 2 * n]
            pos += 2 * n
            moved = self._per_layer(list(enumerate(delta)))
            sizes = self._per_layer(list(enumerate(size)))
            signals.update_ratios = {layer: moved[layer] / sizes[layer] for layer in moved if sizes[layer] > 0}
        observed = flat[pos:] + [v for v in losses if not torch.is_tensor(v)]
        if observed:
            signals.loss = sum(observed) / len(observed)
        skipped = self._overflow_skipped(signals)  # the scaler's routine overflow: no step taken, none counted
        new = [] if skipped else self._count(signals)
        if self.optimizer is None and self._updates.sampled(self.step_index) and self._active:
            self._updates.before()
        if self.on_alert is not None:
            for alert in new:
                self.on_alert(alert)

    def _count(self, signals: StepSignals) -> list[Alert]:
        """Keep the step's signals, feed them to the detectors, move to the next step; the new alerts."""
        self.last = signals
        if self.keep_signals:
            self.signals.append(signals)
        new = self.alarms.update(signals)
        self.step_index += 1
        return new

    def _overflow_skipped(self, signals: StepSignals) -> bool:
        """Whether this step is one a GradScaler skipped: a scaler is given, the gradient norm is not
        finite and the loss is (or was not given)."""
        return (self.scaler is not None and self.scaler.is_enabled() and signals.has_gradient
                and not math.isfinite(signals.grad_norm) and (signals.loss is None or math.isfinite(signals.loss)))

    def _per_layer(self, values: list[tuple[int, float]]) -> dict[str, float]:
        """sqrt of the sum of squares of the parameters' norms, per layer, in model order."""
        sums: dict[int, float] = {}
        index = self._grads.layer_index
        for i, v in values:
            sums[index[i]] = sums.get(index[i], 0.0) + v * v
        layers = self._grads.layers
        return {layers[k]: math.sqrt(sums[k]) for k in sorted(sums)}

    def _learning_rate(self) -> float | None:
        if self.optimizer is None:
            return None
        rates = [float(group["lr"]) for group in self.optimizer.param_groups if "lr" in group]
        return max(rates) if rates else None
