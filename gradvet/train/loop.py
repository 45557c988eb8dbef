"""One training run: `run(spec) -> Run`, deterministic for a given spec.

The loop: seeded model and batches, forward, loss, backward, total gradient
norm (before clipping), optional clipping by norm and by value, NaN/Inf
check (a diverged run stops, keeps what it recorded and says at which step),
optimiser step, periodic test evaluation.

Per-layer recording is gradvet's Probe (`gradvet.probe`): by default a run
records a probe trace, every step for runs of up to 100 steps and every
ceil(steps / 100)-th step beyond, so every experiment and sweep has per-layer
learning speeds. `probe=None` records none; any object with
    start(model, optimizer), after_backward(step), finish() -> rows
may be passed instead (a custom observer).

`spec.monitor` watches the run with `gradvet.Monitor` (every step; the loss is
observed): its alerts land in `Run.alerts` (each a dict of the Alert's fields, steps
counted from 0 as the probe's, so history step = alert step + 1).
`on_progress` gets a `Heartbeat` now and then (`gradvet.train.heartbeat`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from gradvet.base.errors import GradvetError
from gradvet.spec import RunSpec
from gradvet.train.result import Run


class StepObserver(Protocol):
    def start(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None: ...
    def after_backward(self, step: int) -> None: ...
    def finish(self) -> list[tuple[int, str, str, float]]: ...


def evaluate(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str) -> tuple[float, float | None]:
    """(loss, accuracy) on (x, y) in eval mode; accuracy None for regression."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(x)
        loss = float(loss_fn(out, y))
        acc = None if task == "regression" else float((out.argmax(dim=1) == y).float().mean())
    model.train(was_training)
    return loss, acc


class BatchSampler:
    """Shuffled mini-batches, epoch after epoch, from a seeded generator."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        self.n, self.batch_size, self.generator = n, min(batch_size, n), generator
        self.order = torch.randperm(n, generator=generator)
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > self.n:
            self.order = torch.randperm(self.n, generator=self.generator)
            self.pos = 0
        idx = self.order[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx


def _total_norm(params: list[torch.Tensor], clip: float | None) -> torch.Tensor:
    """Total gradient norm sqrt(sum ||g||^2) before clipping (clipping in place when asked)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, clip)  # returns the norm before clipping
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


AUTO = "auto"
PROBE_RECORDS = 50


def probe_every(steps: int) -> int:
    """Probe sampling interval for a run of `steps` steps: about PROBE_RECORDS recorded steps."""
    return max(1, math.ceil(steps / PROBE_RECORDS))


def check_probe(probe: object) -> None:
    """`probe` as the engine takes it: 'auto' (gradvet's Probe, the default trace), None (no trace) or a
    step observer; any other string is one GradvetError sentence."""
    if isinstance(probe, str) and probe != AUTO:
        raise GradvetError(f"probe={probe!r} must be {AUTO!r}, None or a step observer (start, after_backward, "
                           f"finish).")


def run(spec: RunSpec, probe: StepObserver | str | None = AUTO, progress: bool = False, dataset=None,
        on_progress: Callable[[dict[str, Any]], object] | None = None) -> Run:
    """Train the model `spec` describes and return its Run (history, metrics, profiles,
    per-layer probe records, the monitor's alerts). `dataset` may be passed to skip loading;
    `on_progress` receives the run's heartbeats (`gradvet.train.heartbeat`)."""
    from gradvet.data import load
    from gradvet.models.build import build
    from gradvet.train.optim import make_loss, make_optimizer

    check_probe(probe)
    start_time = time.perf_counter()
    data = dataset if dataset is not None else load(spec.data, **dict(spec.data_options))
    generator = torch.Generator().manual_seed(spec.seed)
    n_out = 1 if data.task == "regression" else data.n_classes
    sample = data.x_train[torch.randperm(data.x_train.shape[0], generator=generator)[:512]]
    model = build(spec, data.n_features, n_out, data.sequence, sample=sample)
    model.train()
    loss_fn = make_loss(spec, data.task)
    result = Run(spec=spec, status="done")
    if spec.model != "mlp":
        model.tbptt = spec.tbptt
        result.through_time["init"] = _profile(model, loss_fn, data)
    if spec.pretrain:
        from gradvet.train.pretrain import pretrain

        result.pretrain = pretrain(model, spec, data.x_train, generator)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(spec, params)
    gradvet_probe = None
    if probe == AUTO:
        from gradvet.probe import Probe

        gradvet_probe = Probe(model, optimizer, every=probe_every(spec.steps))
        probe = None
    elif probe is not None:
        probe.start(model, optimizer)
    monitor = None
    if spec.monitor:
        from gradvet.monitor import Monitor

        monitor = Monitor(model, optimizer)
    heartbeat = None
    if on_progress is not None:
        from gradvet.train.heartbeat import Heartbeat

        heartbeat = Heartbeat(on_progress, spec.steps, monitor)
    history: dict[str, list[Any]] = {"step": [], "loss": [], "grad_norm": [],
                                     "eval_step": [], "test_loss": [], "test_accuracy": []}
    sampler = BatchSampler(data.x_train.shape[0], spec.batch_size, generator)
    bar = _progress(progress, spec)
    train_start = time.perf_counter()
    # a Probe's (and a Monitor's) exit removes its hooks, and records a diverged step's numbers too
    with gradvet_probe or contextlib.nullcontext(), monitor or contextlib.nullcontext():
        step, diverged_at = _steps(spec, model, data, loss_fn, optimizer, params, sampler, history, probe, bar,
                                   monitor, heartbeat)
    train_time = time.perf_counter() - train_start
    if gradvet_probe is not None:
        result.layer_records = gradvet_probe.trace.rows
    if bar is not None:
        bar.close()
    steps_done = step if diverged_at is None else diverged_at - 1
    test_loss, test_acc = evaluate(model, loss_fn, data.x_test, data.y_test, data.task)
    if diverged_at is None:
        _record_eval(history, steps_done, test_loss, test_acc)
    if spec.model != "mlp":
        result.through_time["trained"] = _profile(model, loss_fn, data)
    if probe is not None:
        result.layer_records = probe.finish()
    result.status = "diverged" if diverged_at is not None else "done"
    result.history = history
    if monitor is not None:
        result.alerts = [dataclasses.asdict(alert) for alert in monitor.alerts]
    finite_losses = [v for v in history["loss"] if math.isfinite(v)]
    result.metrics = {
        "final_loss": history["loss"][-1] if history["loss"] else None,
        "final_finite_loss": finite_losses[-1] if finite_losses else None,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "steps_done": steps_done,
        "diverged_at": diverged_at,
        "wall_time": time.perf_counter() - start_time,
        "step_time": train_time / max(len(history["step"]), 1),
    }
    return result


def _steps(spec, model, data, loss_fn, optimizer, params, sampler, history, observer, bar, monitor=None,
           heartbeat=None) -> tuple[int, int | None]:
    """The optimisation loop; returns (last step, step at which it diverged or None)."""
    step = 0
    for step in range(1, spec.steps + 1):
        idx = sampler.next()
        out = model(data.x_train[idx])
        loss = loss_fn(out, data.y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if monitor is not None:
            monitor.observe(loss)
        if observer is not None:
            observer.after_backward(step)
        norm = _total_norm(params, spec.clip)
        if spec.clip_value is not None:
            torch.nn.utils.clip_grad_value_(params, spec.clip_value)
        loss_value, norm_value = float(loss.detach()), float(norm)
        history["step"].append(step)
        history["loss"].append(loss_value)
        history["grad_norm"].append(norm_value)
        if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
            return step, step
        optimizer.step()
        if heartbeat is not None:
            heartbeat.beat(step, loss_value, norm_value)
        if spec.eval_every and step % spec.eval_every == 0 and step != spec.steps:
            _record_eval(history, step, *evaluate(model, loss_fn, data.x_test, data.y_test, data.task))
        if bar is not None:
            bar.update(step)
    return step, None


def _record_eval(history: dict[str, list], step: int, loss: float, acc: float | None) -> None:
    history["eval_step"].append(step)
    history["test_loss"].append(loss)
    history["test_accuracy"].append(acc)


def _profile(model, loss_fn, data) -> list[float]:
    """||dL/dh_t|| over the first 256 test sequences, with full BPTT."""
    from gradvet.train.through_time import gradient_through_time

    truncation, model.tbptt = model.tbptt, None
    try:
        return gradient_through_time(model, loss_fn, data.x_test[:256], data.y_test[:256])
    finally:
        model.tbptt = truncation


class _Bar:
    def __init__(self, spec: RunSpec):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                 TimeRemainingColumn(), transient=True)
        self.task = self.progress.add_task(spec.label(), total=spec.steps)
        self.progress.start()
        self.last = 0.0

    def update(self, step: int) -> None:
        now = time.perf_counter()
        if now - self.last > 0.1:
            self.progress.update(self.task, completed=step)
            self.last = now

    def close(self) -> None:
        self.progress.stop()


def _progress(wanted: bool, spec: RunSpec) -> _Bar | None:
    """A rich progress bar when asked for and stdout is a terminal; None otherwise."""
    return _Bar(spec) if wanted and sys.stdout.isatty() else None
