"""`run_sweep`: train every spec not already finished in a store, saving each run as it ends.

Resuming is the normal case: a run whose key is stored as done or diverged
is skipped, anything else ('failed', or 'running' left by an interrupted
sweep) runs again. The main process is the only writer of runs (a local run writes
nothing but its heartbeats, `gradvet.sweep.live`, for `gradvet watch`); with
workers > 1 the runs execute in a process pool and each result is saved the
moment it comes back. At most `workers` units of work are in flight (a unit is one run,
or a group of runs trained together by `gradvet.train.batched`), so a 'running' row
means a run that is really executing.

Where the runs execute is a backend (gradvet.sweep.backend): "local" (this process, or a pool of
`workers` processes, gradvet.sweep.local_backend) or "ray" (gradvet.sweep.ray_backend). Each saves
every run through a `Recorder` the moment it comes back.

One writer: a sweep holds the store's `WriterLease` while it runs; a second sweep on the
same store is refused in one sentence naming the first (its pid and host). A dead sweep's
lease ends with its process, so kill -9 never blocks the next one.

A full disk (or any fault of the store's file: read-only, I/O error) stops the sweep with one
sentence saying how many finished runs are kept: runs already saved stay as they are, the run
whose save failed is not marked failed (its 'running' row makes the next sweep train it again).

Interruptions: Ctrl-C stops submitting, ends the workers, removes the
'running' rows of the interrupted runs and re-raises KeyboardInterrupt; kill
-9 or power loss leaves at worst some 'running' rows, which the next sweep
runs again. Saved runs are never lost and never duplicated (one row per key,
written in one transaction).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from gradvet.base import validation
from gradvet.base.errors import GradvetError
from gradvet.spec import RunSpec
from gradvet.sweep.backend import BACKENDS, backend_named, check_backend
from gradvet.sweep.batched import check_mode
from gradvet.sweep.lease import WriterLease
from gradvet.sweep.outcome import Outcome, RunFn
from gradvet.sweep.recorder import Recorder, SweepSummary
from gradvet.sweep.store import Store
from gradvet.sweep.store_file import StoreWriteError

__all__ = ["BACKENDS", "DEFAULT_RUN", "SweepSummary", "check_backend", "run_sweep"]

DEFAULT_RUN = "gradvet.train:run"
TRAIN_RUN = "gradvet.train:run"  # the run function batched training reproduces (gradvet.train.batched)


def _target(run_fn: str | RunFn | None, workers: int) -> str | RunFn:
    """What to send to the workers: a 'module:function' string, or a module-level function."""
    if run_fn is None:
        if importlib.util.find_spec("gradvet.train") is None:
            raise GradvetError("the training module gradvet.train is not installed; a sweep needs it to run.")
        return DEFAULT_RUN
    if isinstance(run_fn, str):
        if ":" not in run_fn:
            raise GradvetError(f"run function {run_fn!r} must be written 'module:function'.")
        return run_fn
    qualname = getattr(run_fn, "__qualname__", "")
    if workers > 1 and (not getattr(run_fn, "__module__", None) or "<" in qualname):
        raise GradvetError(f"run function {qualname or run_fn!r} must be a module-level function "
                           "when workers > 1 (workers import it by name).")
    return run_fn


class _Progress:
    """A rich progress bar over the runs still to do."""

    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.description}"), transient=False)
        self.task = self.bar.add_task("", total=total)

    def __enter__(self) -> _Progress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def advance(self, outcome: Outcome) -> None:
        self.bar.update(self.task, advance=1, description=f"{outcome.status}: {outcome.spec.label()}")


def run_sweep(specs: Iterable[RunSpec], store_path: str | os.PathLike[str], workers: int = 1,
              run_fn: str | RunFn | None = None, progress: bool = False, backend: str = "local",
              address: str | None = None, batched: str = "auto") -> SweepSummary:
    """Run every spec that `store_path` does not hold as done or diverged; return the counts.

    run_fn: the training function, spec -> Run (a callable or 'module:function';
    default gradvet.train.run, imported only when needed). With workers > 1 it
    must be importable by name (a module-level function). progress: a rich
    progress bar when stdout is a terminal. backend: "local" (this machine,
    `workers` processes) or "ray" (one Ray task per run on the cluster at
    `address`, a new local Ray instance when None; see gradvet.sweep.ray_backend).
    batched: "auto" trains runs that differ only in seed, init, lr or weight decay together
    as one vectorised model (gradvet.train.batched; local backend and the default run
    function only; groups are split among the workers, see gradvet.sweep.batched.plan);
    "off" trains every run on its own.

    The sweep holds the store's writer lease (`gradvet.sweep.lease`): GradvetError, naming the
    other sweep, when one already writes it. When the store cannot be written midway (its disk
    full, read-only, an I/O error) the sweep stops with a GradvetError saying how many finished
    runs are kept; those stay saved and no run is marked failed for it.
    """
    validation.whole_number("workers", workers, 1, validation.MAX_WORKERS, "MAX_WORKERS")
    runner = backend_named(backend, address)
    runner.check(workers)
    check_mode(batched)
    unique = list({spec.key: spec for spec in specs}.values())
    target = _target(run_fn, workers)
    with Store(store_path) as store, WriterLease(store.path):
        done = store.done_keys()
        todo = [spec for spec in unique if spec.key not in done]
        summary = SweepSummary(total=len(unique), skipped=len(unique) - len(todo), store=str(Path(store_path)))
        if not todo:
            return summary
        bar = _Progress(len(todo)) if progress and sys.stdout.isatty() else None
        recorder = Recorder(store, summary, bar)
        try:
            with bar or contextlib.nullcontext():
                runner.run(recorder, target, todo, workers, batched if target == TRAIN_RUN else "off")
        except StoreWriteError as err:  # e.g. the disk is full: stop, keeping every run saved so far
            kept = summary.skipped + summary.done + summary.diverged
            raise GradvetError(err.sentence(kept, store.path)) from None
    return summary
