"""`GradvetCallback` for Lightning's Trainer (`lightning.pytorch`; extra `gradvet[lightning]`).

    from gradvet.integrations.lightning import GradvetCallback
    callback = GradvetCallback()
    trainer = lightning.pytorch.Trainer(callbacks=[callback], gradient_clip_val=1.0, accumulate_grad_batches=4)
    trainer.fit(model, loader)
    callback.diagnose()                    # or callback.trace, at any time

It probes the LightningModule with its optimiser (the first, or `optimizer=i` of several) from
the start of `fit` to its end: a step is one optimiser step, the `accumulate_grad_batches`
micro-batches before it included, numbered as `trainer.global_step` counts them after the step
(1, 2, ...). One step in `every` (default: the Trainer's `log_every_n_steps`) is recorded, and
its numbers go to the Trainer's loggers under `gradvet/<layer>/<metric>` and `gradvet/grad_norm`
(at Lightning's step for that optimiser step, as its own `grad_norm` logging). Hooks are removed
when `fit` ends or raises (`on_exception`). At the end the diagnosis is printed (`show`), written
to `report` (.json or .html) and the run saved into `store`, on global rank 0 only.

The parameter-gradient norms are those before gradient clipping (`gradient_clip_val`), as the
probe reads them (`gradvet.Probe`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from gradvet.base.errors import GradvetError
from gradvet.base.validation import whole_number
from gradvet.integrations.ending import check_report, finish
from gradvet.integrations.extras import require
from gradvet.integrations.names import LOGGED
from gradvet.integrations.session import Session, SessionReadings
from gradvet.probe.layers import Include
from gradvet.probe.metrics.unit import Metric

pl = require("lightning.pytorch", "lightning", "gradvet.integrations.lightning")


class GradvetCallback(SessionReadings, pl.Callback):
    """Records the LightningModule's gradient flow during `fit` (see the module docstring).

    every: record one optimiser step in `every` (None: the Trainer's log_every_n_steps); include: the
    modules to watch (glob patterns on module names, or a function); metrics: the metric classes to
    record; logged: the per-layer metrics sent to the loggers (None: all); optimizer: which of the
    module's optimisers ends a step; show: print the diagnosis at the end; report: also write it to
    this .json or .html file; monitor: True (alerts as warnings) or a function taking each
    gradvet.Alert: a gradvet.Monitor on every step, its alerts in `callback.alerts`; store, name: also
    save the run into this runs.db store under `name`."""

    START = "trainer.fit(...)"

    def __init__(self, every: int | None = None, include: Include = None,
                 metrics: Iterable[type[Metric]] | None = None, logged: Iterable[str] | None = LOGGED,
                 optimizer: int = 0, show: bool = True, report: str | os.PathLike[str] | None = None,
                 store: str | os.PathLike[str] | None = None, name: str | None = None,
                 monitor: bool | Callable[[Any], object] = False):
        if every is not None:
            whole_number("every", every, 1)
        self.every, self.include, self.metrics, self.logged = every, include, metrics, logged
        self.optimizer = whole_number("optimizer", optimizer, 0)
        self.show, self.report, self.store, self.name = show, check_report(report), store, name
        self.monitor = monitor
        self.session: Session | None = None
        self._stepped = 0  # trainer.global_step when the last optimiser step was seen

    # -- Lightning's hooks ---------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._close()  # hooks left by a fit that ended in a way Lightning did not report
        optimizers = trainer.optimizers
        if optimizers and self.optimizer >= len(optimizers):
            raise GradvetError(f"GradvetCallback(optimizer={self.optimizer}): the module has {len(optimizers)} "
                               f"optimizer(s); allowed: 0 to {len(optimizers) - 1}.")
        every = self.every if self.every is not None else max(1, int(trainer.log_every_n_steps or 1))
        self.session = Session(pl_module, optimizers[self.optimizer] if optimizers else None, every=every,
                               include=self.include, metrics=self.metrics, logged=self.logged, source="lightning",
                               monitor=self.monitor)
        self.session.open(trainer.global_step + 1)
        self._stepped = trainer.global_step

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        session = self.session
        if session is None or not session.is_open:
            return
        if session.probe.optimizer is None:  # no optimiser to end steps: one batch is one step
            session.probe.step()
        if trainer.global_step > self._stepped:  # an optimiser step ended with this batch
            self._stepped = trainer.global_step
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if loss is not None:
                session.keep_loss(trainer.global_step, loss)
        self._publish(trainer)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.session is None or not self.session.is_open:
            return
        self._close()
        self._publish(trainer)
        finish(self.session, self.show, self.report, self.store, self.name, f"Lightning, {type(pl_module).__name__}")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._close(exception)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._close()

    def _close(self, error: BaseException | None = None) -> None:
        if self.session is not None:
            self.session.close(error)

    def _publish(self, trainer: Any) -> None:
        """The steps recorded since the last call, to the Trainer's loggers (which log on rank 0 only) at
        Lightning's step of each: the optimiser step's index, from 0."""
        for step, metrics in self.session.new_steps():
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step - 1)
