"""The Ray backend of `run_sweep`: every run a Ray task on a cluster, the driver the store's only writer.

    gradvet sweep grid.toml --store runs.db --backend ray [--address HEAD:6379]

Connection. With an address, the driver joins that cluster (``ray.init(address=...)``;
"auto" finds one started on this machine by ``ray start``). Without one it
joins the cluster named by RAY_ADDRESS, or else starts a private local Ray
instance with one CPU slot per core (no dashboard) and stops it at the end. A
process that has already called ``ray.init`` keeps its connection: the sweep
uses it and leaves it open. A HOST:PORT address is first tried with a plain
TCP connection, since ray.init retries an unreachable one for ever. Token
authentication (Ray >= 2.59 turns it on for clusters it starts when a token
exists) needs RAY_AUTH_MODE=token and the token (RAY_AUTH_TOKEN, or the file
~/.ray/auth_token) in the driver's environment (Ray reads them; gradvet does not).

Workers. The run function travels by reference, as in the local runner
('module:function', by default gradvet.train:run), so every machine of the
cluster needs gradvet (and any module named there) installed in the Python
its workers run. A local instance's workers run this Python in this working
directory and import gradvet as installed there (``pip install -e .`` for a
checkout); nothing is uploaded.

Scheduling. Each run is one task that asks for 1 CPU; at most as many runs
are in flight as the cluster has CPUs (re-read as runs finish, so nodes that
join mid-sweep are used), which keeps a 'running' row a run that is really
executing. Inside a task torch uses GRADVET_THREADS intra-op threads (default 1;
set it in the workers' environment), matching the one CPU the task holds.

Results travel back as plain data (`Outcome`, the local runner's record), and
the driver saves each the moment it returns, in one transaction, exactly as
the local runner does: mark running, save, resume skips done and diverged.

Failures. A Python exception in a run is a result: the task catches it and
returns a 'failed' Outcome with its message, so it is never retried. A task
whose worker process dies (killed, segfault, out of memory) or whose node is
lost is retried by Ray up to MAX_RETRIES times, then stored as 'failed' with
the first line of Ray's error. A retry only re-executes the run; the store
gets one row per key whatever happens.
Ctrl-C cancels the tasks in flight and removes their 'running' rows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from gradvet.base.errors import GradvetError
from gradvet.spec import RunSpec
from gradvet.sweep.outcome import Outcome, RunFn, error_text, execute
from gradvet.sweep.recorder import Recorder

MISSING_EXTRA = "the Ray backend needs the ray extra: pip install 'gradvet[ray]'"
MAX_RETRIES = 3  # re-executions of a task whose worker process died (Ray's own default)
CPUS_PER_RUN = 1


def import_ray() -> Any:
    """The `ray` module, or a one-line GradvetError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise GradvetError(MISSING_EXTRA) from None
    return ray


def check(workers: int, address: str | None) -> None:
    """Before anything runs: the extra is installed, `workers` is left alone, the cluster can be reached."""
    ray = import_ray()
    if workers != 1:
        raise GradvetError(f"workers={workers} is for the local backend; with the ray backend each run is a task "
                           f"of {CPUS_PER_RUN} CPU and the cluster's CPUs set how many run at once.")
    address = _address(address)
    if address is not None and not ray.is_initialized():
        _check_reachable(address)


def _address(address: str | None) -> str | None:
    """The cluster to join: `address`, else RAY_ADDRESS, else None (a new local instance)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def _threads() -> int:
    """torch intra-op threads inside a task: GRADVET_THREADS (1 to MAX_THREADS), default 1; a bad
    value fails the run with gradvet.base.validation's sentence."""
    from gradvet.base.validation import threads

    return threads("GRADVET_THREADS", os.environ.get("GRADVET_THREADS") or "1")


def ray_task(target: str | RunFn, spec: RunSpec) -> Outcome:
    """The body of one Ray task (in a worker): train `spec`, return plain data; errors become 'failed'."""
    import torch  # not loaded with gradvet any more (`import gradvet` is light): the run needs it anyway

    if torch.get_num_threads() != _threads():
        torch.set_num_threads(_threads())
    return execute(target, spec)


def _local_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """Ray, initialised: the caller's connection if there is one, else one made here and shut down after."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = _address(address)
    # ray.init installs a SIGTERM handler (sys.exit) and, starting a local instance, sets
    # RAY_AUTH_MODE=token in this process's environment: both are put back when done.
    main_thread = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main_thread else None
    auth_mode = os.environ.get("RAY_AUTH_MODE")

    def restore() -> None:
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
        if auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth_mode

    try:
        if address is None:
            ray.init(address="local", num_cpus=_local_cpus(), include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError, ray.exceptions.RayError) as err:
        with contextlib.suppress(Exception):  # whatever a failed init left started
            ray.shutdown()
        restore()
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if address is None:
            raise GradvetError(f"cannot start a local Ray instance ({first}).") from None
        if isinstance(err, ray.exceptions.AuthenticationError):  # Ray's message says what to do
            raise GradvetError(f"cannot connect to the Ray cluster at {address!r}: {first}") from None
        hint = ("is it a Ray head node (`ray start --head`)?" if os.environ.get("RAY_AUTH_MODE") == "token" else
                "if it uses token authentication, set RAY_AUTH_MODE=token and its token "
                "(RAY_AUTH_TOKEN, or the file ~/.ray/auth_token).")
        raise GradvetError(f"cannot connect to the Ray cluster at {address!r} ({first}); {hint}") from None
    try:
        yield ray
    finally:
        ray.shutdown()  # stops a local instance started here; only disconnects from a cluster
        restore()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A plain HOST:PORT address must accept a TCP connection (ray.init would retry it for ever)."""
    if address in ("auto", "local") or "://" in address:
        return  # Ray's own discovery / client protocol, which fail promptly
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise GradvetError(f"Ray address {address!r} is not HOST:PORT; give the head node's address "
                           "(for example 10.0.0.5:6379, what `ray start --head` prints) or auto.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise GradvetError(f"cannot reach the Ray cluster at {address!r} ({err.strerror or err}); "
                           "start it with `ray start --head` and give its address, HOST:6379.") from None


def _slots(ray: Any) -> int:
    """Runs to keep in flight: the cluster's CPUs (at least one)."""
    return max(1, int(ray.cluster_resources().get("CPU", 0) // CPUS_PER_RUN))


def _ray_error_text(ray: Any, err: BaseException) -> str:
    """One line for a task that did not return: the run's own error, or Ray's first line."""
    cause = getattr(err, "cause", None) if isinstance(err, ray.exceptions.RayTaskError) else None
    if isinstance(cause, BaseException):
        return error_text(cause)
    text = error_text(err)
    return text.splitlines()[0] if text else type(err).__name__


def run_on_ray(recorder: Recorder, target: str | RunFn, todo: list[RunSpec], address: str | None) -> None:
    """Run `todo` as Ray tasks, saving each outcome through `recorder` as it returns."""
    with connected(address) as ray:
        task = ray.remote(ray_task).options(num_cpus=CPUS_PER_RUN, max_retries=MAX_RETRIES,
                                            retry_exceptions=False)
        queue: Iterator[RunSpec] = iter(todo)
        in_flight: dict[Any, RunSpec] = {}
        submitting: list[RunSpec] = []  # marked running, not yet in flight
        try:
            while True:
                slots = _slots(ray)
                while len(in_flight) < slots and (spec := next(queue, None)) is not None:
                    submitting.append(spec)
                    recorder.start(spec)
                    in_flight[task.remote(target, spec)] = spec
                    submitting.clear()
                if not in_flight:
                    break
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    try:
                        outcome = ray.get(ref)
                    except Exception as err:  # noqa: BLE001 - retries spent, or a result that could not travel
                        outcome = Outcome(spec=in_flight[ref], error=_ray_error_text(ray, err))
                    recorder.finish(outcome)
                    del in_flight[ref]  # only now: a save cut short by Ctrl-C leaves its row to be forgotten
        except BaseException:
            for ref in in_flight:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            recorder.forget([spec.key for spec in [*in_flight.values(), *submitting]])
            raise


class RayBackend:
    """One Ray task per run on the cluster at `address` (None: RAY_ADDRESS, else a new local instance)."""

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def check(self, workers: int) -> None:
        check(workers, self.address)

    def run(self, recorder: Recorder, target: str | RunFn, todo: list[RunSpec], workers: int, batched: str) -> None:
        """Runs train one by one (`batched` and `workers` do not apply: the cluster's CPUs set the pace)."""
        run_on_ray(recorder, target, todo, self.address)
