"""`GradvetCallback` for Hugging Face's Trainer (a `transformers.TrainerCallback`; extra `gradvet[hf]`).

    from gradvet.integrations.transformers import GradvetCallback
    callback = GradvetCallback()
    Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()
    callback.diagnose()                    # or callback.trace, at any time

It finds the Trainer's model and optimiser when `train()` starts (the optimiser is built there;
accelerate's wrapper is looked through: `integrations.distributed.inner_optimizer`) and records
per optimiser step, the `gradient_accumulation_steps` micro-batches before it included, with the
parameter gradients read before clipping (`max_grad_norm`): its `gradvet/grad_norm` is the
`grad_norm` the Trainer logs. Steps are numbered as `state.global_step` counts them (1, 2, ...); one in `every` is
recorded (default: the Trainer's `logging_steps`, so each log has a recorded step).

Its numbers go into the Trainer's `logs` (`gradvet/grad_norm`, `gradvet/<layer>/<metric>`), so
every `report_to` integration (W&B, MLflow, TensorBoard, ...) receives them: the callback moves
itself to the front of the Trainer's callbacks, ahead of those integrations, when training starts,
and takes the per-layer numbers out again just before the console's printer (the progress bar's
log lines keep `gradvet/grad_norm` only).
At the end of `train()` the diagnosis is printed (`show`), written to `report` (.json or .html)
and the run saved into `store`, on the main process only. The Trainer has no event for an
exception: after a `train()` that raised, `callback.close()` removes the hooks (the next `train()`
does it too).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from gradvet.base.errors import GradvetError
from gradvet.base.validation import whole_number
from gradvet.integrations.ending import check_report, finish
from gradvet.integrations.extras import require
from gradvet.integrations.names import GRAD_NORM, LOGGED, PREFIX
from gradvet.integrations.session import Session, SessionReadings
from gradvet.probe.layers import Include
from gradvet.probe.metrics.unit import Metric

trainer_callback = require("transformers.trainer_callback", "hf", "gradvet.integrations.transformers")

DEFAULT_EVERY = 10  # when the Trainer does not log by steps


class GradvetCallback(SessionReadings, trainer_callback.TrainerCallback):
    """Records the Trainer's model's gradient flow during `train()` (see the module docstring).

    every: record one optimiser step in `every` (None: the Trainer's logging_steps); include: the modules
    to watch (glob patterns on module names, or a function); metrics: the metric classes to record;
    logged: the per-layer metrics put into the logs (None: all); show: print the diagnosis at the end;
    report: also write it to this .json or .html file; monitor: True (alerts as warnings) or a function taking each
    gradvet.Alert: a gradvet.Monitor on every step, its alerts in `callback.alerts`; store, name: also
    save the run into this runs.db
    store under `name`."""

    START = "trainer.train()"

    def __init__(self, every: int | None = None, include: Include = None,
                 metrics: Iterable[type[Metric]] | None = None, logged: Iterable[str] | None = LOGGED,
                 show: bool = True, report: str | os.PathLike[str] | None = None,
                 store: str | os.PathLike[str] | None = None, name: str | None = None,
                 monitor: bool | Callable[[Any], object] = False):
        if every is not None:
            whole_number("every", every, 1)
        self.every, self.include, self.metrics, self.logged = every, include, metrics, logged
        self.show, self.report, self.store, self.name = show, check_report(report), store, name
        self.monitor = monitor
        self.session: Session | None = None
        self._pending: dict[int, dict[str, float]] = {}  # step -> its numbers, until a log takes them

    def grad_norm(self, step: int) -> float:
        """gradvet's total gradient norm at a recorded step: the Trainer's `grad_norm` of that step."""
        if self.session is None:
            raise GradvetError("nothing recorded yet: call trainer.train() with this callback first.")
        return self.session.grad_norm(step)

    def close(self) -> None:
        """Remove the hooks (after a `train()` that raised; `train()` ending does it by itself)."""
        if self.session is not None:
            self.session.close()

    # -- the Trainer's events ------------------------------------------------------------------
    def on_init_end(self, args, state, control, **kwargs):
        _move_to_front(self)

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        _move_to_front(self)
        self.close()
        if model is None:
            raise GradvetError("GradvetCallback: the Trainer passed no model to on_train_begin.")
        every = self.every or _logging_interval(args, state)
        self.session = Session(model, optimizer, every=every, include=self.include, metrics=self.metrics,
                               logged=self.logged, source="transformers",
                               monitor=self.monitor)
        self.session.open(state.global_step + 1)
        self._pending = {}

    def on_step_end(self, args, state, control, **kwargs):
        if self.session is not None and self.session.is_open:
            self._pending.update(self.session.new_steps())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.session is None or logs is None:
            return
        if "loss" in logs and "eval_loss" not in logs:
            self.session.keep_loss(state.global_step, logs["loss"])
        numbers = self._pending.pop(state.global_step, None)
        if numbers is not None:
            logs.update(numbers)
        self._pending = {step: v for step, v in self._pending.items() if step > state.global_step}

    def on_train_end(self, args, state, control, **kwargs):
        if self.session is None or not self.session.is_open:
            return
        self.close()
        finish(self.session, self.show, self.report, self.store, self.name,
               f"Hugging Face Trainer, {type(self.session.model).__name__}")


def _logging_interval(args, state) -> int:
    """The Trainer's logging interval in steps (state.logging_steps holds it resolved when a fraction was
    given), or DEFAULT_EVERY when it does not log by steps."""
    if str(getattr(args, "logging_strategy", "steps")).rsplit(".", 1)[-1].lower() != "steps":
        return DEFAULT_EVERY
    steps = getattr(state, "logging_steps", None) or getattr(args, "logging_steps", None) or DEFAULT_EVERY
    return max(1, int(steps))


class ConsoleFilter(trainer_callback.TrainerCallback):
    """Placed just before the Trainer's console printer (progress bar or PrinterCallback): takes gradvet's
    per-layer numbers out of the logs it prints, once the integrations before it have them;
    gradvet/grad_norm stays."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in [k for k in (logs or {}) if k.startswith(f"{PREFIX}/") and k != GRAD_NORM]:
            del logs[key]


PRINTERS = (trainer_callback.PrinterCallback, trainer_callback.ProgressCallback)


def _move_to_front(callback: GradvetCallback) -> None:
    """Put `callback` first in the CallbackHandler that is calling it, so its additions to `logs` reach the
    report_to integrations (added before user callbacks), and a ConsoleFilter just before the console's
    printer. The Trainer gives callbacks no handle on its handler, so it is found as the caller's `self` a
    few frames up; when it cannot be found (another transformers version), the order is left as it is and
    only the callbacks after this one see its numbers. Moving elements ahead of the one the handler's loop
    is at keeps that loop in step (it goes on with the element after this one), and so does inserting among
the elements still to come."""
    frame = sys._getframe(1)
    for _ in range(4):
        frame = frame.f_back
        if frame is None:
            return
        handler = frame.f_locals.get("self")
        if isinstance(handler, trainer_callback.CallbackHandler):
            callbacks = handler.callbacks
            if callback not in callbacks:
                return
            here = callbacks.index(callback)  # where the handler's loop is: the elements after it are still to come
            callbacks.insert(0, callbacks.pop(here))
            if not any(isinstance(c, ConsoleFilter) for c in callbacks):
                at = next((i for i, c in enumerate(callbacks) if isinstance(c, PRINTERS)), None)
                if at is not None and at > here:  # only among those still to come, so none is called twice
                    callbacks.insert(at, ConsoleFilter())
            return
