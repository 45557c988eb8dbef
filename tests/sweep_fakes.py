"""A tiny, deterministic stand-in for `gradvet.train.run`, importable by sweep worker processes.

fake_run(spec): sleeps 0.05-0.2 s (by spec.seed), returns a FakeRun. lr >= 1 "diverges"
(NaN and inf in its history and metrics); data == "boom" raises RuntimeError;
data == "odd" returns a status the store refuses. With SWEEP_FAKES_LOG set, every call appends
the spec's key to that file (one line, O_APPEND), so tests can count trainings by brute force.

A gate, for tests that must act while a sweep is under way (interrupt it, start a second one)
whatever the machine's load: with SWEEP_FAKES_GATE naming a folder, each call takes a ticket there
(ticket-0, ticket-1, ... created with O_EXCL, so numbered in start order across processes); the
first SWEEP_FAKES_FREE calls (default 0) go through, the others wait until the test calls
`open_gate` (at most GATE_SECONDS, then they fail loudly). The test waits for an event, a ticket
or a saved run (`wait_until`), never for a fixed time: load only slows it.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradvet.spec import RunSpec

LAYER_STEPS = 25  # layer records per layer: enough rows that a save takes a moment
GATE_SECONDS = 300  # a run held at the gate gives up after this: a test that forgot to open it fails, never hangs
EVENT_SECONDS = 60  # how long a test waits for an event of a sweep (a saved run, a run at the gate)


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


def gate_env(folder: Path, free: int = 0) -> dict[str, str]:
    """The environment variables that hold every run after the first `free` at the gate in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"SWEEP_FAKES_GATE": str(folder), "SWEEP_FAKES_FREE": str(free)}


def tickets(folder: Path) -> int:
    """How many runs have reached the gate (went through or wait)."""
    return len(list(Path(folder).glob("ticket-*")))


def open_gate(folder: Path) -> None:
    (Path(folder) / "open").touch()


def wait_at_gate(spec: RunSpec) -> None:
    folder = os.environ.get("SWEEP_FAKES_GATE")
    if not folder:
        return
    number = 0
    while True:  # the lowest free ticket number; O_EXCL makes the numbering atomic across processes
        try:
            fd = os.open(os.path.join(folder, f"ticket-{number}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            number += 1
            continue
        os.write(fd, spec.key.encode())
        os.close(fd)
        break
    if number < int(os.environ.get("SWEEP_FAKES_FREE", "0")):
        return
    deadline = time.monotonic() + GATE_SECONDS
    while not os.path.exists(os.path.join(folder, "open")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gate in {folder} was never opened")
        time.sleep(0.02)


def end_group(proc: subprocess.Popen) -> None:
    """Kill what is left of a test's process (started with start_new_session=True: its whole group)
    and reap it, so that nothing outlives a failed test."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def wait_until(event: Callable[[], bool], what: str, seconds: float = EVENT_SECONDS) -> None:
    """Poll `event` until it is true; fail naming `what` after `seconds` (generous: load only slows it)."""
    deadline = time.monotonic() + seconds
    while not event():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.03)


def fake_run(spec: RunSpec) -> FakeRun:
    log_training(spec)
    wait_at_gate(spec)
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
