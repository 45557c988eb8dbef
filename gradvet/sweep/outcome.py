"""A run as it travels back from where it ran: `Outcome`, and `execute`, which turns any run
function's result or exception into one. Shared by every sweep backend (gradvet.sweep.backend)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gradvet.spec import RunSpec
from gradvet.sweep.store import extra_of

RunFn = Callable[[RunSpec], Any]


@dataclass
class Outcome:
    """A finished run as it travels back from a worker: plain data only."""

    spec: RunSpec
    status: str = "failed"
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list] = field(default_factory=dict)
    layer_records: list[tuple[int, str, str, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.extra)


def error_text(err: BaseException) -> str:
    """'ExceptionType: message' (just the type when the message is empty)."""
    message = str(err).strip()
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def resolve(target: str | RunFn) -> RunFn:
    """A run function from 'module:function' (imported now), or the callable itself."""
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def outcome_of(spec: RunSpec, run: Any) -> Outcome:
    """A finished Run as plain data."""
    return Outcome(spec=spec, status=run.status, metrics=dict(run.metrics), history=dict(run.history),
                   layer_records=list(getattr(run, "layer_records", None) or ()), extra=extra_of(run),
                   alerts=list(getattr(run, "alerts", None) or ()))


def takes_progress(fn: RunFn) -> bool:
    """Whether a run function accepts heartbeats: an `on_progress` keyword (as `gradvet.train.run`)."""
    try:
        return "on_progress" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a callable without a signature Python can read
        return False


def execute(target: str | RunFn, spec: RunSpec, live: Any = None) -> Outcome:
    """Run one spec (in this process or a worker); an exception becomes a 'failed' Outcome.
    `live` (a `gradvet.sweep.live.LiveWriter`, or None) receives the run's heartbeats when the run
    function takes them."""
    try:
        fn = resolve(target)
        if live is None or not takes_progress(fn):
            return outcome_of(spec, fn(spec))
        with live.for_run(spec.key) as beats:
            takes_beats: Callable[..., Any] = fn  # it has an on_progress keyword (takes_progress)
            return outcome_of(spec, takes_beats(spec, on_progress=beats))
    except Exception as err:  # noqa: BLE001 - any error of a run is a result: 'failed' with its text
        return Outcome(spec=spec, error=error_text(err))


def execute_unit(target: str | RunFn, unit: list[RunSpec], live: Any = None) -> list[Outcome]:
    """One unit of work: a single run, or a group trained together as one vectorised model
    (`gradvet.train.batched`; only for the default run function; no heartbeats). A group that fails
    as a whole trains run by run, so that an error stays with the run that caused it."""
    if len(unit) == 1:
        return [execute(target, unit[0], live)]
    try:
        from gradvet.train.batched import run_batched

        runs = run_batched(unit)
    except Exception:  # noqa: BLE001 - e.g. an activation vmap cannot batch: train one by one
        return [execute(target, spec, live) for spec in unit]
    return [outcome_of(spec, run) for spec, run in zip(unit, runs)]
