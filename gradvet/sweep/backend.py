"""Where a sweep's runs execute: the `Backend` interface and the backends by name.

A backend trains the runs it is given and reports each one through a `Recorder` (which saves it
in the store, in the main process) as soon as it ends; on an interrupt it forgets the 'running'
rows of the runs it abandoned (`Recorder.forget`) and re-raises. `run_sweep` (gradvet.sweep.runner)
chooses the runs, holds the store's writer lease and hands them to one backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gradvet.base.errors import unknown
from gradvet.spec import RunSpec
from gradvet.sweep.local_backend import LocalBackend
from gradvet.sweep.outcome import RunFn
from gradvet.sweep.ray_backend import RayBackend
from gradvet.sweep.recorder import Recorder


class Backend(Protocol):
    """What `run_sweep` needs of a backend, made by `backend_named(name, address)`."""

    name: str

    def check(self, workers: int) -> None:
        """Before anything runs: refuse, in one GradvetError sentence, settings this backend cannot honour."""

    def run(self, recorder: Recorder, target: str | RunFn, todo: list[RunSpec], workers: int, batched: str) -> None:
        """Train every spec of `todo` with `target` ('module:function' or a function), each outcome
        through `recorder`; `batched` is "auto" where runs may train together, else "off"."""


BACKENDS: dict[str, Callable[[str | None], Backend]] = {"local": LocalBackend, "ray": RayBackend}


def check_backend(name: str) -> str:
    """`name` if it is one of BACKENDS, else a one-sentence GradvetError with close matches."""
    if name not in BACKENDS:
        raise unknown("sweep backend", name, tuple(BACKENDS))
    return name


def backend_named(name: str, address: str | None = None) -> Backend:
    """A backend of the kind `name`: "local", or "ray" (needs the ray extra) on the cluster at
    `address` (None: RAY_ADDRESS, else a new local instance)."""
    return BACKENDS[check_backend(name)](address)
