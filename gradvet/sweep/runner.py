"""`run_sweep`: train every spec not already finished in a store, saving each run as it ends.

Resuming is the normal case: a run whose key is stored as done or diverged
is skipped, anything else ('failed', or 'running' left by an interrupted
sweep) runs again. The main process is the only writer of the store; with
workers > 1 the runs execute in a process pool and each result is saved the
moment it comes back. At most `workers` units of work are in flight (a unit is one run,
or a group of runs trained together by `gradvet.train.batched`), so a 'running' row
means a run that is really executing.

The pool uses the "forkserver" start method: workers are forked from a clean
server process that has imported gradvet (and so torch) once but has run
nothing, never from the main process with its threads and open SQLite
connection. It is the default start method from Python 3.14, and it saves
each worker the seconds torch takes to import. The run function travels by
reference: 'module:function' (the default, gradvet.train:run, is imported
only in the workers) or a module-level function, which the pool sends by its
module and name.

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
import importlib
import importlib.util
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradvet.base.errors import GradvetError, did_you_mean
from gradvet.spec import RunSpec
from gradvet.sweep.batched import check_mode, plan
from gradvet.sweep.lease import WriterLease
from gradvet.sweep.store import Store, extra_of
from gradvet.sweep.store_file import StoreWriteError

DEFAULT_RUN = "gradvet.train:run"
TRAIN_RUN = "gradvet.train:run"  # the run function batched training reproduces (gradvet.train.batched)
BACKENDS = ("local", "ray")  # ray: gradvet.sweep.ray_backend, needs the ray extra
RunFn = Callable[[RunSpec], Any]


@dataclass
class SweepSummary:
    """What one `run_sweep` call did. total = skipped + ran; ran = done + diverged + failed."""

    total: int
    skipped: int
    ran: int = 0
    done: int = 0
    diverged: int = 0
    failed: int = 0
    store: str = ""

    def line(self) -> str:
        """'12 runs: 4 already done, 8 ran (7 done, 1 diverged, 0 failed); store runs.db'."""
        runs = "run" if self.total == 1 else "runs"
        return (f"{self.total} {runs}: {self.skipped} already done, {self.ran} ran ({self.done} done, "
                f"{self.diverged} diverged, {self.failed} failed); store {self.store}")

    def __str__(self) -> str:
        return self.line()


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
                   layer_records=list(getattr(run, "layer_records", None) or ()), extra=extra_of(run))


def execute(target: str | RunFn, spec: RunSpec) -> Outcome:
    """Run one spec (in this process or a worker); an exception becomes a 'failed' Outcome."""
    try:
        return outcome_of(spec, resolve(target)(spec))
    except Exception as err:  # noqa: BLE001 - any error of a run is a result: 'failed' with its text
        return Outcome(spec=spec, error=error_text(err))


def execute_unit(target: str | RunFn, unit: list[RunSpec]) -> list[Outcome]:
    """One unit of work: a single run, or a group trained together as one vectorised model
    (`gradvet.train.batched`; only for the default run function). A group that fails as a whole
    trains run by run, so that an error stays with the run that caused it."""
    if len(unit) == 1:
        return [execute(target, unit[0])]
    try:
        from gradvet.train.batched import run_batched

        runs = run_batched(unit)
    except Exception:  # noqa: BLE001 - e.g. an activation vmap cannot batch: train one by one
        return [execute(target, spec) for spec in unit]
    return [outcome_of(spec, run) for spec, run in zip(unit, runs)]


def _worker_init(workers: int) -> None:
    """In each worker: leave Ctrl-C to the main process, exit if it dies, share the CPU cores."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch = sys.modules.get("torch")
    if torch is not None:  # `workers` processes each using every core would only fight over them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    parent = multiprocessing.parent_process()
    if parent is not None:
        def watch() -> None:
            parent.join()
            os._exit(1)

        threading.Thread(target=watch, daemon=True, name="gradvet-parent-watch").start()


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


class _Sweep:
    """The state of one sweep: the store, the counts, the progress display."""

    def __init__(self, store: Store, summary: SweepSummary, progress: Any) -> None:
        self.store, self.summary, self.progress = store, summary, progress

    def start(self, spec: RunSpec) -> None:
        self.store.mark_running(spec)

    def finish(self, outcome: Outcome) -> None:
        """Save one outcome (a result that cannot be stored is stored as 'failed'; a store that
        cannot be written, its disk full, raises StoreWriteError and the run stays unsaved)."""
        if outcome.error is None:
            try:
                self.store.save(outcome)
            except StoreWriteError:
                raise
            except Exception as err:  # noqa: BLE001 - e.g. a bad status or a malformed layer record
                outcome.error = error_text(err)
        if outcome.error is not None:
            self.store.save_failure(outcome.spec, outcome.error)
            outcome.status = "failed"
        self.summary.ran += 1
        setattr(self.summary, outcome.status, getattr(self.summary, outcome.status) + 1)
        if self.progress is not None:
            self.progress.advance(outcome)


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


def _serial(sweep: _Sweep, target: str | RunFn, units: list[list[RunSpec]]) -> None:
    fn = resolve(target)
    current: list[RunSpec] = []
    try:
        for unit in units:
            current = unit
            for spec in unit:
                sweep.start(spec)
            for outcome in execute_unit(fn, unit):
                sweep.finish(outcome)
            current = []
    except BaseException:
        if current:
            _forget(sweep.store, [spec.key for spec in current])
        raise


def _forget(store: Store, keys: list[str]) -> None:
    """Best effort, while interrupted: drop the 'running' rows of runs that did not finish."""
    try:
        store.forget_running(keys)
    except Exception:  # noqa: BLE001 - they are re-run on resume either way
        pass


def _end_workers(executor: ProcessPoolExecutor) -> None:
    """Stop the workers now, abandoning their runs (Python >= 3.14 has a method for it)."""
    terminate = getattr(executor, "terminate_workers", None)
    if callable(terminate):
        terminate()
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
    executor.shutdown(wait=True, cancel_futures=True)


def _parallel(sweep: _Sweep, target: str | RunFn, units: list[list[RunSpec]], workers: int) -> None:
    context = multiprocessing.get_context("forkserver")
    # torch and the training code loaded once in the fork server, so that every worker starts with
    # them (and `_worker_init` finds torch to share the cores); ignored if the fork server already runs
    context.set_forkserver_preload([__name__, "gradvet.train"])
    queue: Iterator[list[RunSpec]] = iter(units)
    in_flight: dict[Future[list[Outcome]], list[RunSpec]] = {}
    starting: list[RunSpec] = []  # marked running, not yet in flight: an interrupt meanwhile forgets them too

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                   initargs=(workers,))

    executor = new_pool()
    try:
        while True:
            for unit in queue:
                starting = unit
                for spec in unit:
                    sweep.start(spec)
                in_flight[executor.submit(execute_unit, target, unit)] = unit
                starting = []
                if len(in_flight) >= workers:
                    break
            if not in_flight:
                break
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                unit = in_flight[future]  # stays in flight until saved: an interrupt meanwhile forgets its rows
                try:
                    outcomes = future.result()
                except BrokenProcessPool as err:
                    broken = True
                    outcomes = [Outcome(spec=spec, error=f"BrokenProcessPool: a worker process died ({err})")
                                for spec in unit]
                except Exception as err:  # noqa: BLE001 - e.g. a result that could not be sent back
                    outcomes = [Outcome(spec=spec, error=error_text(err)) for spec in unit]
                for outcome in outcomes:
                    sweep.finish(outcome)
                del in_flight[future]
            if broken:
                executor.shutdown(wait=True, cancel_futures=True)
                executor = new_pool()
    except BaseException:
        _end_workers(executor)
        _forget(sweep.store, [spec.key for unit in [*in_flight.values(), starting] for spec in unit])
        raise
    executor.shutdown(wait=True)


def check_backend(backend: str) -> str:
    """`backend` if it is one of BACKENDS, else a one-sentence GradvetError with close matches."""
    if backend not in BACKENDS:
        raise GradvetError(f"unknown sweep backend {backend!r}{did_you_mean(str(backend), BACKENDS)}; "
                           f"allowed: {', '.join(BACKENDS)}.")
    return backend


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
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise GradvetError(f"workers={workers!r} must be a whole number >= 1.")
    if check_backend(backend) == "ray":
        from gradvet.sweep import ray_backend

        ray_backend.check(workers, address)
    elif address is not None:
        raise GradvetError(f"address={address!r} is for the ray backend; the local backend runs on this machine.")
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
        sweep = _Sweep(store, summary, bar)
        try:
            with bar or contextlib.nullcontext():
                if backend == "ray":
                    ray_backend.run_on_ray(sweep, target, todo, address)
                else:
                    mode = batched if (target == TRAIN_RUN and backend == "local") else "off"
                    units = plan(todo, workers, mode)
                    if workers == 1:
                        _serial(sweep, target, units)
                    else:
                        _parallel(sweep, target, units, min(workers, len(units)))
        except StoreWriteError as err:  # e.g. the disk is full: stop, keeping every run saved so far
            kept = summary.skipped + summary.done + summary.diverged
            raise GradvetError(err.sentence(kept, store.path)) from None
    return summary
