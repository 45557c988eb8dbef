"""A tiny, deterministic stand-in for `gradvet.train.run`, importable by sweep worker processes.

fake_run(spec): sleeps 0.05-0.2 s (by spec.seed), returns a FakeRun. lr >= 1 "diverges"
(NaN and inf in its history and metrics); data == "boom" raises RuntimeError;
data == "odd" returns a status the store refuses. With SWEEP_FAKES_LOG set, every call appends
the spec's key to that file (one line, O_APPEND), so tests can count trainings by brute force.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from gradvet.spec import RunSpec

LAYER_STEPS = 25  # layer records per layer: enough rows that a save takes a moment


@dataclass
class FakeRun:
    spec: RunSpec
    status: str
    history: dict[str, list] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    layer_records: list[tuple[int, str, str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.spec.key, "spec": self.spec.to_dict(), "status": self.status,
                "history": self.history, "metrics": self.metrics, "through_time": {"init": [1.0, 0.5]}}


def expected_layer_records(spec: RunSpec) -> list[tuple[int, str, str, float]]:
    return [(step, f"layer{i}", "grad_norm", 1.0 / (1 + i + step + spec.seed))
            for step in range(LAYER_STEPS) for i in range(spec.depth)]


def log_training(spec: RunSpec) -> None:
    log = os.environ.get("SWEEP_FAKES_LOG")
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"{spec.key}\n".encode())
        finally:
            os.close(fd)


def trainings(log: str | os.PathLike[str]) -> list[str]:
    """The keys logged by fake_run, one per training, in order."""
    try:
        with open(log) as fh:
            return fh.read().split()
    except FileNotFoundError:
        return []


def fake_run(spec: RunSpec) -> FakeRun:
    log_training(spec)
    if spec.data == "boom":
        raise RuntimeError(f"boom at seed {spec.seed}")
    time.sleep(0.05 + 0.15 * (spec.seed % 4) / 3)
    diverged = spec.lr >= 1.0
    steps = list(range(spec.steps))
    loss = [1.0 / (1 + s) for s in steps]
    if diverged and loss:
        loss[-1] = math.nan
    metrics = {"final_loss": math.nan if diverged else loss[-1] if loss else None,
               "test_loss": math.inf if diverged else 0.5, "test_accuracy": 0.1 if diverged else 0.9,
               "steps_done": spec.steps, "diverged_at": spec.steps - 1 if diverged else None,
               "wall_time": 0.1, "step_time": 0.001}
    history = {"step": steps, "loss": loss, "grad_norm": [math.inf if diverged else 1.0 for _ in steps],
               "eval_step": [], "test_loss": [], "test_accuracy": []}
    status = "odd" if spec.data == "odd" else "diverged" if diverged else "done"
    return FakeRun(spec=spec, status=status, history=history, metrics=metrics,
                   layer_records=expected_layer_records(spec))


def nested_not_importable():
    """A run function that workers cannot import by name."""
    def inner(spec: RunSpec) -> FakeRun:
        return fake_run(spec)

    return inner
