"""Run functions for the Ray backend's tests, imported by name in Ray worker processes.

They leave marker files in the folder named by GRADVET_TEST_MARKERS (set in the workers'
environment by the tests), one per attempt, so a test can count how often a run was tried.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from sweep_fakes import FakeRun, fake_run

from gradvet.spec import RunSpec


def _attempt(spec: RunSpec, kind: str) -> int:
    """Record one more attempt at `spec` (a new marker file); return how many there were before."""
    folder = Path(os.environ["GRADVET_TEST_MARKERS"])
    before = len(list(folder.glob(f"{kind}-{spec.key}-*")))
    (folder / f"{kind}-{spec.key}-{before}").touch()
    return before


def die_once(spec: RunSpec) -> FakeRun:
    """The first attempt kills its own worker process (SIGKILL, as the OOM killer would); later ones run."""
    if _attempt(spec, "die-once") == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return fake_run(spec)


def always_die(spec: RunSpec) -> FakeRun:
    """Every attempt kills its worker: the retries run out."""
    _attempt(spec, "always-die")
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def raise_error(spec: RunSpec) -> FakeRun:
    """A Python error in the run: a result ('failed'), never a reason to retry."""
    _attempt(spec, "raise")
    raise ValueError(f"bad run at seed {spec.seed}")


def report_threads(spec: RunSpec) -> FakeRun:
    """A run whose metrics tell how many intra-op threads torch uses in the worker."""
    import torch

    run = fake_run(spec)
    run.metrics["torch_threads"] = torch.get_num_threads()
    return run
