"""A run of one's own training loop, saved into a `runs.db` store beside the sweeps' runs, so that
`gradvet runs` lists it and `gradvet report runs.db` draws its per-layer gradients.

    gradvet.save_run(probe, "runs.db", name="resnet lr 0.1")     # a Probe, a Trace or a handle

A run is identified by its name: saving under the same name again replaces it. Its row holds the
recorded layer rows (step, layer, metric, value), the losses one handed over (history), and
metrics: steps_done (recorded steps), last_step, final_loss, grad_norm (the last recorded step's
total, `integrations.names`), verdict and ratio (`gradvet.diagnose` at the last step). Its status is
'diverged' when the final loss or a recorded parameter-gradient norm is NaN or Inf, else 'done'.
The spec column says where it came from ({"kind": "own loop", "name", "source", "model"}) instead
of a RunSpec.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gradvet.base.errors import GradvetError
from gradvet.integrations.names import PARAMETER_NORMS, by_step, grad_norm
from gradvet.probe import Probe, Trace, diagnose
from gradvet.sweep import Store

KIND = "own loop"


@dataclass(frozen=True)
class LoopSpec:
    """What a store keeps of a run of one's own loop in place of a RunSpec (key, to_dict, label)."""

    name: str
    source: str = "probe"
    model: str = ""

    @property
    def key(self) -> str:
        """sha256 of the kind and the name, 16 hex digits (never equal to a RunSpec's key, which hashes its fields)."""
        text = json.dumps({"kind": KIND, "name": self.name}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": KIND, "name": self.name, "source": self.source, "model": self.model}

    def label(self) -> str:
        return self.name


@dataclass
class LoopRun:
    """A finished run of one's own loop, in the shape `Store.save` takes."""

    spec: LoopSpec
    status: str
    metrics: dict[str, Any]
    history: dict[str, list] = field(default_factory=dict)
    layer_records: list[tuple[int, str, str, float]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # a monitored loop's (gradvet.Alert.to_dict())


def save_run(source: Any, store: str | os.PathLike[str] | Store = "runs.db", name: str | None = None,
             losses: Mapping[int, float] | None = None, wall_time: float | None = None) -> str:
    """Save what `source` recorded (a Probe, a Trace, or a handle with `.trace`: `gradvet.watch`, the
    callbacks) into `store` (a path, created if missing, or an open Store) under `name` (default: the
    model's class and the time); `losses` {step: loss} become its history. Returns the run's key."""
    trace, model, source_name, kept = _parts(source)
    losses = dict(losses if losses is not None else kept)
    if not trace.steps():
        raise GradvetError("nothing to save: no step was recorded (run a forward and backward pass and an "
                           "optimizer step, or handle.step(), while the probe watches).")
    if name is None:
        name = f"{model or 'model'} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    if not isinstance(name, str) or not name.strip():
        raise GradvetError(f"name={name!r} must be a non-empty text naming the run.")
    run = LoopRun(LoopSpec(name, source_name, model), "done", {}, _history(losses), list(trace.rows),
                  [alert.to_dict() for alert in getattr(source, "alerts", None) or ()])
    run.metrics = _metrics(trace, losses, wall_time)
    if _diverged(trace, run.metrics.get("final_loss")):
        run.status = "diverged"
    if isinstance(store, Store):
        store.save(run)
    else:
        with Store(store) as db:
            db.save(run)
    return run.spec.key


def _parts(source: Any) -> tuple[Trace, str, str, Mapping[int, float]]:
    """(trace, model class name, where it came from, losses) of what `save_run` was given."""
    if isinstance(source, Trace):
        return source, "", "trace", {}
    if isinstance(source, Probe):
        return source.trace, type(source.model).__name__, "probe", {}
    trace = getattr(source, "trace", None)
    if isinstance(trace, Trace):
        model = getattr(source, "model", None)
        return (trace, type(model).__name__ if model is not None else "", getattr(source, "source", "handle"),
                getattr(source, "losses", {}) or {})
    raise GradvetError(f"save_run needs a Probe, a Trace or a gradvet handle (gradvet.watch, a callback); "
                       f"got {type(source).__name__}.")


def _history(losses: Mapping[int, float]) -> dict[str, list]:
    steps = sorted(losses)
    return {"step": steps, "loss": [float(losses[s]) for s in steps]} if steps else {}


def _metrics(trace: Trace, losses: Mapping[int, float], wall_time: float | None) -> dict[str, Any]:
    steps = by_step(trace.rows)
    last = max(steps)
    metrics: dict[str, Any] = {"steps_done": len(steps), "last_step": last, "grad_norm": grad_norm(steps[last])}
    if losses:
        metrics["final_loss"] = float(losses[max(losses)])
    if wall_time is not None:
        metrics["wall_time"] = float(wall_time)
    try:
        diagnosis = diagnose(trace)
        metrics["verdict"], metrics["ratio"] = diagnosis.verdict, diagnosis.ratio
    except GradvetError:  # a trace a diagnosis cannot read (no weight layer recorded): saved without one
        pass
    return metrics


def _diverged(trace: Trace, final_loss: float | None) -> bool:
    if final_loss is not None and not math.isfinite(final_loss):
        return True
    return any(not math.isfinite(value) for _, _, metric, value in trace.rows if metric in PARAMETER_NORMS)
