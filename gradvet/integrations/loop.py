"""`gradvet.watch`: one line before a plain training loop.

    handle = gradvet.watch(model, optimizer, every=10, include="encoder", log_to="wandb")
    for x, y in loader:
        loss = loss_fn(model(x), y); loss.backward(); optimizer.step(); optimizer.zero_grad()
    handle.close()
    print(handle.diagnose()); handle.save("runs.db", name="my run")

A step ends on the optimiser's step (k backward passes before it are one step), or on
`handle.step()` when no optimiser is given. Each recorded step goes to the loggers of `log_to`
(`integrations.loggers`) right away; under DDP only rank 0 logs and saves
(`integrations.distributed`). `with gradvet.watch(...) as handle:` closes it even on an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from gradvet.integrations.distributed import is_main
from gradvet.integrations.loggers import close_all, make_loggers
from gradvet.integrations.names import LOGGED
from gradvet.integrations.session import Session
from gradvet.monitor import Alert
from gradvet.probe.layers import Include
from gradvet.probe.metrics.unit import Metric

EVERY = 10  # record one optimiser step in ten by default: a recorded step costs a few plain ones


class Watch(Session):
    """The handle `gradvet.watch` returns: `.trace`, `.diagnose()`, `.save()`, `.step()`, `.close()`."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, every: int = EVERY,
                 include: Include = None, log_to: Any = None, metrics: Iterable[type[Metric]] | None = None,
                 logged: Iterable[str] | None = LOGGED, monitor: bool | Callable[[Alert], object] = False):
        super().__init__(model, optimizer, every=every, include=include, metrics=metrics, logged=logged,
                         source="watch", monitor=monitor)
        self.optimizer = self.probe.optimizer  # the torch optimiser (inside accelerate's wrapper, if any)
        self.loggers = make_loggers(log_to) if is_main() else []
        self._hook = None

    def open(self, step: int = 0) -> Watch:
        super().open(step)
        if self.optimizer is not None:  # after the probe's own hook, which ends the step
            self._hook = self.optimizer.register_step_post_hook(lambda *args: self.publish())
        return self

    def step(self, loss: Any = None) -> None:
        """End the current step when no optimiser was given (with one, its step() does); `loss`, if given,
        is kept as the loss of the step just ended (the run's history in a store)."""
        if self.optimizer is None:
            self.probe.step()
            self.publish()
        if loss is not None:
            self.keep_loss(self.probe.step_index - 1, loss)

    def publish(self) -> None:
        """Send the steps recorded since the last call to the loggers."""
        for step, metrics in self.new_steps():
            for logger in self.loggers:
                logger.log(metrics, step)

    def close(self, error: BaseException | None = None) -> None:
        """Remove every hook, send what is left to the loggers and close those gradvet made."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        was_open = self.is_open
        super().close(error)
        if was_open:
            self.publish()
            close_all(self.loggers)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.close(error)


def watch(model: nn.Module, optimizer: torch.optim.Optimizer | None = None, every: int = EVERY,
          include: Include = None, log_to: Any = None, metrics: Iterable[type[Metric]] | None = None,
          logged: Iterable[str] | None = LOGGED, monitor: bool | Callable[[Alert], object] = False) -> Watch:
    """Start recording `model`'s gradient flow in a plain training loop (see the module docstring).

    every: record one step in `every`; include: the modules to watch (glob patterns on module names,
    e.g. "encoder" or ["*.attn.*", "lm_head"], or a function (name, module) -> bool); log_to:
    'tensorboard', 'wandb', 'mlflow', a logger or a function (metrics, step), or a list of them;
    metrics: the metric classes to record (all registered ones by default); logged: the metrics sent
    to the loggers per layer (None: all), beside gradvet/grad_norm; monitor: True (alerts shown as
    warnings) or a function taking each gradvet.Alert: a gradvet.Monitor on every step, its alerts in
    `handle.alerts` and saved with the run (`handle.observe(loss)` before the optimiser's step adds the
    loss detectors)."""
    return Watch(model, optimizer, every, include, log_to, metrics, logged, monitor).open()
