"""`snapshot(path)`: what `gradvet watch` shows of a store at one moment, read without writing.

The store is opened read-only (`Store(..., read_only=True)`): in WAL mode a reader never blocks the
writer (it reads the last committed state while the writer appends to the log), and the read is
short (open, a few queries, close), so the writer's checkpoints are not held back either.

Per run (`RunView`): status, progress (step of steps), latest loss, a per-layer gradient profile
and its alerts. A run in flight shows its latest heartbeat (`gradvet.train.heartbeat`: the
monitor's per-layer norms, or none for a run not monitored); a finished run its stored numbers
(steps done, final loss, and the probe's weight_grad_norm per layer at its last recorded step).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from gradvet.sweep.store import STATUSES, Store

PROFILE_METRIC = "weight_grad_norm"  # a finished run's per-layer profile, from its probe trace
MAX_RUNS = 20  # runs shown: those in flight, then the latest finished
MAX_ALERTS = 8  # the latest alerts shown


@dataclass
class RunView:
    key: str
    label: str
    status: str
    monitored: bool
    step: int | None = None
    steps: int | None = None
    loss: float | None = None
    layers: dict[str, float] = field(default_factory=dict)  # the latest per-layer gradient norms
    alerts: list[dict[str, Any]] = field(default_factory=list)
    started: float | None = None
    updated: float | None = None  # the latest heartbeat, or the run's end
    error: str | None = None


@dataclass
class Snapshot:
    path: str
    taken: float
    counts: dict[str, int]  # runs per status
    runs: list[RunView]  # shown: in flight first (oldest first), then finished (latest first)
    hidden: int  # runs not shown
    alerts: list[tuple[str, dict[str, Any]]]  # (run label, alert) of the alerts written last, oldest first
    alert_count: int


def _finished_profile(store: Store, key: str) -> dict[str, float]:
    """{layer: value} of PROFILE_METRIC at the run's last recorded step."""
    rows = store.layer_records(key, PROFILE_METRIC)
    if not rows:
        return {}
    last = max(step for step, _, _, _ in rows if isinstance(step, int))
    return {layer: value for step, layer, _, value in rows if step == last and isinstance(value, (int, float))}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def snapshot(path: str | os.PathLike[str], max_runs: int = MAX_RUNS, max_alerts: int = MAX_ALERTS) -> Snapshot:
    """The store at `path` as it is now (GradvetError, one sentence, when it is not a readable store)."""
    with Store(path, create=False, read_only=True) as store:
        records = store.runs()
        progress = store.progress()
        in_flight = [r for r in records if r["status"] == "running"]
        finished = sorted((r for r in records if r["status"] != "running"),
                          key=lambda r: r.get("finished") or 0.0, reverse=True)
        shown = (in_flight + finished)[:max_runs]
        views = []
        for r in shown:
            spec = r.get("spec") or {}
            metrics = r.get("metrics") or {}
            view = RunView(key=r["key"], label=r["label"], status=r["status"], alerts=r["alerts"],
                           monitored=spec.get("monitor") is True, steps=spec.get("steps") if isinstance(
                               spec.get("steps"), int) else None, started=r.get("started"), error=r.get("error"))
            beat = progress.get(r["key"])
            if r["status"] == "running":
                if beat is not None:
                    view.step, view.loss, view.layers, view.updated = (beat["step"], beat["loss"], beat["layers"],
                                                                       beat["updated"])
                    view.steps = beat["steps"] if beat["steps"] is not None else view.steps
            else:
                done = metrics.get("steps_done")
                view.step = done if isinstance(done, int) and not isinstance(done, bool) else None
                view.loss = _number(metrics.get("final_loss"))
                view.layers = _finished_profile(store, r["key"])
                view.updated = r.get("finished")
            views.append(view)
        labels = {r["key"]: r["label"] for r in records}
        recent, total = store.recent_alerts(max_alerts)
    counts = {status: sum(r["status"] == status for r in records) for status in STATUSES}
    return Snapshot(path=str(path), taken=time.time(), counts=counts, runs=views, hidden=len(records) - len(views),
                    alerts=[(labels.get(key, key), a) for key, a in recent], alert_count=total)
