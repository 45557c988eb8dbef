"""`Session`: a Probe kept open over a training loop that is not one `with` block.

A framework calls back into gradvet (Lightning's and Hugging Face's callbacks) or the user makes
one call before the loop (`gradvet.watch`); either way the probe is entered at the start and left
at the end or on an exception, its hooks removed. Each integration then does the same things with
it, here: hands out the numbers of the steps recorded since it last asked (`new_steps`, named as
`integrations.names` says), keeps the losses it is given, diagnoses (`diagnose`) and saves the run
into a store (`save`, on the main process only: see `integrations.distributed`). With
`monitor=True` (or a function taking an Alert) a `gradvet.Monitor` watches every step beside the
probe (which may record one step in `every`): its alerts are in `session.alerts`, passed to the
function (by default shown as a warning, one line with the numbers and the remedy) and saved with
the run.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from gradvet.base.errors import GradvetError
from gradvet.integrations.distributed import inner_optimizer, is_main, unwrap
from gradvet.integrations.names import LOGGED, by_step, grad_norm, parameters_outside, shared_layers, step_metrics
from gradvet.integrations.runs import save_run
from gradvet.monitor import Alert, Monitor
from gradvet.probe import Diagnosis, Probe, Trace, diagnose, watched_modules
from gradvet.probe.layers import Include
from gradvet.probe.metrics.unit import Metric


class Session:
    """A probe of `model` (unwrapped from DDP or torch.compile) entered by `open` and left by `close`.

    every: record one optimiser step in `every`; include: the modules to watch (`Probe`); metrics: the
    metric classes to record; logged: the metrics `new_steps` hands out per layer (None: all);
    source: where the run came from, as a store shows it ('watch', 'lightning', 'transformers');
    monitor: True (alerts shown as warnings) or a function taking each `gradvet.Alert`: early warnings
    from a `gradvet.Monitor` on every step (see the module docstring); False: none."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *, every: int = 1,
                 include: Include = None, metrics: Iterable[type[Metric]] | None = None,
                 logged: Iterable[str] | None = LOGGED, source: str = "watch",
                 monitor: bool | Callable[[Alert], object] = False):
        self.model = unwrap(model)
        inner = inner_optimizer(optimizer) if optimizer is not None else None
        self.probe = Probe(self.model, inner, every=every, include=include, metrics=metrics)
        self.monitor = _monitor(self.model, inner, monitor)
        self.logged = None if logged is None else (logged,) if isinstance(logged, str) else tuple(logged)
        self.source = source
        self.losses: dict[int, Any] = {}  # step -> loss (a number, or a 0-d tensor read when saved)
        self.started: float | None = None
        self.shared: set[str] = set()  # layers holding only parameters of an earlier layer (tied weights)
        self.outside = 0  # trainable parameters in no watched layer
        self._sent = 0  # trace rows already handed out by new_steps
        self._open = False

    @property
    def trace(self) -> Trace:
        return self.probe.trace

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self, step: int = 0) -> Session:
        """Enter the probe, its first step numbered `step` (a framework's own count, when it resumes)."""
        self.probe.__enter__()
        if self.monitor is not None:
            self.monitor.__enter__()
        self._open, self.started = True, time.perf_counter()
        inner = getattr(self.model, "_orig_mod", self.model)  # a torch.compile'd model: the probe watches the module inside
        watched = watched_modules(inner, self.probe.include)
        self.shared, self.outside = shared_layers(watched), parameters_outside(self.model, watched)
        if step:
            self.probe.skip_to(step)
        return self

    def close(self, error: BaseException | None = None) -> None:
        """Leave the probe (its hooks removed); a step left unfinished is recorded unless `error` ended it."""
        if not self._open:
            return
        self._open = False
        exc = (None, None, None) if error is None else (type(error), error, error.__traceback__)
        try:
            if self.monitor is not None:
                self.monitor.__exit__(*exc)
        finally:
            self.probe.__exit__(*exc)

    @property
    def alerts(self) -> list[Alert]:
        """The monitor's alerts so far (none without `monitor=`)."""
        return list(self.monitor.alerts) if self.monitor is not None else []

    def observe(self, loss: Any) -> None:
        """Give the monitor this step's loss (before the optimiser's step), for the loss detectors;
        alerts work from the gradients alone without it. Nothing without `monitor=`."""
        if self.monitor is not None and self._open:
            self.monitor.observe(loss)

    def new_steps(self) -> list[tuple[int, dict[str, float]]]:
        """(step, {name: value}) of each step recorded since the last call."""
        rows = self.trace.rows[self._sent:]
        self._sent = len(self.trace.rows)
        return [(step, step_metrics(group, self.logged, self.shared)) for step, group in by_step(rows).items()]

    def grad_norm(self, step: int) -> float:
        """gradvet's total gradient norm at a recorded step (`integrations.names.grad_norm`)."""
        return grad_norm([row for row in self.trace.rows if row[0] == step], self.shared)

    def keep_loss(self, step: int, loss: Any) -> None:
        """Keep the loss of `step` for the run's history (a tensor is detached and read only when saved)."""
        self.losses[step] = loss.detach() if torch.is_tensor(loss) else loss

    def diagnose(self, step: int | str = "last") -> Diagnosis:
        """`gradvet.diagnose` of what was recorded, at `step` ('last', 'first' or a step number)."""
        return diagnose(self.probe, step)

    def save(self, store: str | os.PathLike[str] = "runs.db", name: str | None = None) -> str | None:
        """Save the run into `store` (`integrations.runs.save_run`) and return its key; on a process other
        than the main one (DDP rank > 0) nothing is saved and None is returned."""
        if not is_main():
            return None
        losses = {step: float(loss) for step, loss in self.losses.items()}
        wall = time.perf_counter() - self.started if self.started is not None else None
        return save_run(self, store, name, losses=losses, wall_time=wall)


def _monitor(model: nn.Module, optimizer: torch.optim.Optimizer | None,
             monitor: bool | Callable[[Alert], object]) -> Monitor | None:
    """The Monitor `monitor=` asks for: None for False; alerts to `monitor` when it is a function,
    else shown as warnings."""
    if monitor is False or monitor is None:
        return None
    if monitor is True:
        return Monitor(model, optimizer, on_alert=_warn)
    if not callable(monitor):
        raise GradvetError(f"monitor={monitor!r} must be True, False or a function taking a gradvet.Alert.")
    return Monitor(model, optimizer, on_alert=monitor)


def _warn(alert: Alert) -> None:
    warnings.warn(f"gradvet: {alert}", stacklevel=2)


class SessionReadings:
    """What a framework's callback gives to read at any time, from its `session` (None before training
    starts): `trace`, `alerts`, `diagnose()`, `save()`. `START` says how training starts, for the
    sentence when nothing was recorded yet."""

    session: Session | None = None
    START = "training"

    @property
    def trace(self) -> Trace:
        """The recorded (step, layer, metric, value) rows (empty before training)."""
        return self.session.trace if self.session is not None else Trace()

    @property
    def alerts(self) -> list[Alert]:
        """The early warnings of `monitor=` so far (none without it)."""
        return self.session.alerts if self.session is not None else []

    def diagnose(self, step: int | str = "last") -> Diagnosis:
        """`gradvet.diagnose` of what was recorded so far, at `step` ('last', 'first' or a step number)."""
        return self._started().diagnose(step)

    def save(self, store: str | os.PathLike[str] = "runs.db", name: str | None = None) -> str | None:
        """Save the run into a runs.db store (the main process only; None elsewhere)."""
        return self._started().save(store, name)

    def _started(self) -> Session:
        if self.session is None:
            raise GradvetError(f"nothing recorded yet: call {self.START} with this callback first.")
        return self.session
