"""`LiveWriter`: a running sweep's heartbeats into its store, for `gradvet watch`.

The sweep's main process writes finished runs (`Store.save`); while a run trains, the process
training it (the main one, or a local worker) writes the run's heartbeats
(`gradvet.train.heartbeat`, about once a second) through a connection of its own: the
``progress`` row of the run (upserted) and each new alert, as it comes, into ``alerts``. Saving the
run replaces both (`Store.save`), in the same transaction as the rest of the run.

Best effort, never in the way: a heartbeat is a short IMMEDIATE transaction with
``synchronous=NORMAL`` (no fsync of its own; the finished run is what must survive a power
loss, and `Store.save` fsyncs it), waiting at most BUSY_SECONDS for the main process's lock;
a heartbeat that cannot be written (the lock held longer, a full disk) is dropped and its
alerts go with the next one, and training goes on. A `LiveWriter` travels to workers as the
store's path alone (it pickles without a connection). Ray tasks get none: their machines may not
see the store.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

from gradvet.sweep.migrations import ALERT_COLUMNS
from gradvet.sweep.store import alert_row, dumps
from gradvet.sweep.store_file import transaction

BUSY_SECONDS = 0.5

UPSERT_PROGRESS = ("INSERT INTO progress (run_key, step, steps, loss, grad_norm, layers, updated) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_key) DO UPDATE SET step = excluded.step, "
                   "steps = excluded.steps, loss = excluded.loss, grad_norm = excluded.grad_norm, "
                   "layers = excluded.layers, updated = excluded.updated")
INSERT_ALERT = f"INSERT INTO alerts ({', '.join(ALERT_COLUMNS)}) VALUES ({', '.join('?' * len(ALERT_COLUMNS))})"


class LiveWriter:
    """Where a sweep's runs write their heartbeats: the store at `path`."""

    def __init__(self, path: str | Path):
        self.path = str(path)

    def for_run(self, key: str) -> RunBeats:
        """The heartbeat callback of the run `key`; a context manager that closes its connection."""
        return RunBeats(self.path, key)


class RunBeats:
    """Writes one run's heartbeats (call it with a heartbeat dict); see the module's docstring."""

    def __init__(self, path: str, key: str):
        self.path, self.key = path, key
        self.written = 0  # heartbeats written
        self.dropped = 0  # heartbeats that could not be written
        self._con: sqlite3.Connection | None = None
        self._pending: list[dict[str, Any]] = []  # alerts not written yet

    def __enter__(self) -> RunBeats:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            con.close()

    def __call__(self, beat: dict[str, Any]) -> None:
        self._pending.extend(beat.get("alerts") or ())
        try:
            with transaction(self._connect()) as con:
                con.execute(UPSERT_PROGRESS, (self.key, beat["step"], beat.get("steps"), beat.get("loss"),
                                              beat.get("grad_norm"), dumps(beat.get("layers") or {}), time.time()))
                con.executemany(INSERT_ALERT, [alert_row(self.key, a) for a in self._pending])
        except (sqlite3.Error, OSError):  # locked past BUSY_SECONDS, disk full, no such table: drop this beat
            self.dropped += 1
            return
        self._pending = []
        self.written += 1

    def _connect(self) -> sqlite3.Connection:
        if self._con is None:
            # mode=rw: never create a file where the store has gone
            con = sqlite3.connect(f"{Path(self.path).resolve().as_uri()}?mode=rw", uri=True, timeout=BUSY_SECONDS,
                                  isolation_level=None)
            try:
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("PRAGMA foreign_keys=ON")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    con.close()
                raise
            self._con = con
        return self._con
