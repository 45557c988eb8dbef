"""The local sweep backend: runs in this process (workers=1) or in a pool of `workers` processes.

The pool uses the "forkserver" start method: workers are forked from a clean
server process that has imported gradvet (and so torch) once but has run
nothing, never from the main process with its threads and open SQLite
connection. It is the default start method from Python 3.14, and it saves
each worker the seconds torch takes to import. The run function travels by
reference: 'module:function' or a module-level function, which the pool sends
by its module and name. At most `workers` units of work are in flight (a unit
is one run, or a group of runs trained together by `gradvet.train.batched`), so
a 'running' row means a run that is really executing. Each run writes its heartbeats into
the store as it trains (`gradvet.sweep.live`), for `gradvet watch`.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from gradvet.base.errors import GradvetError
from gradvet.spec import RunSpec
from gradvet.sweep.batched import plan
from gradvet.sweep.live import LiveWriter
from gradvet.sweep.outcome import Outcome, RunFn, error_text, execute_unit, resolve
from gradvet.sweep.recorder import Recorder


class LocalBackend:
    """This machine: `workers` processes (1: in this process)."""

    name = "local"

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def check(self, workers: int) -> None:
        if self.address is not None:
            raise GradvetError(f"address={self.address!r} is for the ray backend; "
                               "the local backend runs on this machine.")

    def run(self, recorder: Recorder, target: str | RunFn, todo: list[RunSpec], workers: int, batched: str) -> None:
        """Train `todo`, grouped by `gradvet.sweep.batched.plan` when `batched` is "auto"."""
        units = plan(todo, workers, batched)
        if workers == 1:
            _serial(recorder, target, units)
        else:
            _parallel(recorder, target, units, min(workers, len(units)))


def _live(recorder: Recorder) -> LiveWriter:
    return LiveWriter(recorder.store.path)


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


def _serial(recorder: Recorder, target: str | RunFn, units: list[list[RunSpec]]) -> None:
    fn = resolve(target)
    current: list[RunSpec] = []
    try:
        for unit in units:
            current = unit
            for spec in unit:
                recorder.start(spec)
            for outcome in execute_unit(fn, unit, _live(recorder)):
                recorder.finish(outcome)
            current = []
    except BaseException:
        if current:
            recorder.forget([spec.key for spec in current])
        raise


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


def _parallel(recorder: Recorder, target: str | RunFn, units: list[list[RunSpec]], workers: int) -> None:
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
                    recorder.start(spec)
                in_flight[executor.submit(execute_unit, target, unit, _live(recorder))] = unit
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
                    recorder.finish(outcome)
                del in_flight[future]
            if broken:
                executor.shutdown(wait=True, cancel_futures=True)
                executor = new_pool()
    except BaseException:
        _end_workers(executor)
        recorder.forget([spec.key for unit in [*in_flight.values(), starting] for spec in unit])
        raise
    executor.shutdown(wait=True)
