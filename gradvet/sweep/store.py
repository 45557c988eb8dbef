"""`Store`: the SQLite file a sweep writes its runs into, safe against kill -9 and power loss.

Durability. The database runs in WAL mode with ``synchronous=FULL``: every
commit appends to the write-ahead log and fsyncs it before `save` returns.

* kill -9 (or Ctrl-C, or a crash) of the writing process: a transaction that
  committed is in the log and is kept; one that had not committed is rolled
  back the next time the file is opened. Nothing half-written is ever visible.
  (``synchronous=NORMAL`` would give the same guarantee here.)
* power loss or an OS crash: with ``FULL`` a committed run is also on disk,
  because the log was fsynced at commit. ``NORMAL`` would only fsync at
  checkpoints, so the last runs saved before the outage could vanish (the
  file would still be consistent). A run costs seconds to minutes of
  training and one fsync costs milliseconds, so FULL is the right price for
  "no finished run is ever lost".

Identity, creation, checks and read-only places: `gradvet.sweep.store_file`
(a store is created whole or not at all; an existing file is checked as SQLite
reads it, write-ahead log included, before anything is written; stores on
read-only media are read). One writer at a time: `gradvet.sweep.lease`.
Faults: a full disk or a read-only file raises `StoreWriteError` from the
writing functions; the transaction is rolled back and nothing saved is lost.
Tampered rows read back with the unreadable fields None (`gradvet.sweep.rows`).

Layout: ``runs`` (one row per spec key), ``layer_records`` (per-layer,
per-step values of a run), ``alerts`` (a monitored run's alerts) and ``progress``
(the latest heartbeat of a run in flight, written by `gradvet.sweep.live`); the
last two came with schema version 2 (`gradvet.sweep.migrations`), added to an
older store by its first write and read as empty where a store lacks them. ``runs.extra`` holds, as JSON, whatever else the
run's ``to_dict()`` reports beyond spec, status, metrics and history (for
`gradvet.train.Run`: ``through_time`` and ``pretrain``). Metrics and history are JSON with NaN and
Infinity kept as such: a diverged loss is a result worth reporting. SQLite
stores a NaN REAL as NULL, so a NULL layer value reads back as NaN.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from gradvet.base.errors import GradvetError, unknown
from gradvet.spec import RunSpec
from gradvet.sweep.migrations import ALERT_COLUMNS
from gradvet.sweep.rows import decode_alert, decode_progress, decode_row
from gradvet.sweep.store_file import (
    ReadConnection,
    StoreWriteError,
    check_store_file,
    connect_for_writing,
    connect_readonly,
    create_store_file,
    immediate_transaction,
    migrate,
    store_exists,
    unwritable,
)

STATUSES = ("running", "done", "diverged", "failed")
FINISHED = ("done", "diverged")

SUMMARY_COLUMNS = "key, spec, label, status, error, metrics, started, finished"


class RunLike(Protocol):
    """What `Store.save` needs of a finished run (`gradvet.train.Run` has it; `to_dict()` is optional)."""

    @property
    def spec(self) -> RunSpec: ...
    @property
    def status(self) -> str: ...
    @property
    def history(self) -> dict[str, list]: ...
    @property
    def metrics(self) -> dict[str, Any]: ...
    @property
    def layer_records(self) -> Sequence[tuple[int, str, str, float]]: ...  # read only: a list of them will do
    # and, optionally, alerts: a sequence of dicts of `gradvet.Alert`'s fields (a monitored run's)


def _plain(value: Any) -> Any:
    """JSON fallback for numpy / torch scalars and arrays (anything with .tolist() or .item())."""
    for method in ("tolist", "item"):
        if hasattr(value, method):
            return getattr(value, method)()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    """JSON that keeps NaN and +-Infinity (as the literals NaN, Infinity, -Infinity)."""
    return json.dumps(value, allow_nan=True, default=_plain, separators=(",", ":"))


STORED_ELSEWHERE = ("key", "spec", "label", "status", "error", "metrics", "history", "layer_records", "alerts")
ALERT_FIELDS = ALERT_COLUMNS[1:]  # an alert's fields, in the columns' order (after run_key)
# the runs whose alerts and progress rows a (re)started or forgotten run may drop: never a finished one's
UNFINISHED = "run_key = ? AND run_key NOT IN (SELECT key FROM runs WHERE status IN ('done', 'diverged'))"


def alert_row(key: str, alert: dict[str, Any]) -> tuple:
    """An alert dict (the fields of `gradvet.Alert`, or its strict-JSON `to_dict()`) as a row of the alerts
    table; its value as a float (NaN kept)."""
    row = [key] + [alert.get(name) for name in ALERT_FIELDS]
    value = row[-1]
    try:
        row[-1] = float(value) if value is not None else None  # to_dict writes a non-finite value as 'nan', 'inf'
    except (TypeError, ValueError):
        row[-1] = None
    return tuple(row)


def extra_of(run: RunLike) -> dict[str, Any]:
    """The parts of `run.to_dict()` that have no column of their own (empty without to_dict)."""
    to_dict = getattr(run, "to_dict", None)
    if not callable(to_dict):
        return {}
    return {k: v for k, v in to_dict().items() if k not in STORED_ELSEWHERE}


class Store:
    """The runs of one or more sweeps, keyed by `RunSpec.key`. A context manager.

    `Store(path)` opens an existing store for writing or creates a new one (GradvetError when
    its folder or the file is read-only). `Store(path, create=False)` opens an existing store
    (GradvetError when missing): for writing where the file and its folder allow it, else
    read-only (`readonly` is then True and every write raises StoreWriteError).
    `Store(path, create=False, read_only=True)` always reads only (a viewer beside a writer).
    One process writes at a time (a sweep holds `gradvet.sweep.lease.WriterLease`); any number read.
    Write errors of the disk or file (full, read-only, I/O) raise StoreWriteError; the reading
    functions never crash on a tampered row (`gradvet.sweep.rows`).
    """

    def __init__(self, path: str | os.PathLike[str], create: bool = True, read_only: bool = False) -> None:
        self.path = Path(path)
        self._con: sqlite3.Connection | None = None
        self._reading: ReadConnection | None = None
        if read_only and create:
            raise ValueError("a store opened read_only cannot be created; pass create=False")
        if not store_exists(self.path):
            if not create:
                raise GradvetError(f"store {str(self.path)!r} does not exist; run `gradvet sweep` first.")
            create_store_file(self.path)
        check_store_file(self.path)
        problem = unwritable(self.path)
        if problem is not None and create:
            raise GradvetError(f"cannot write the store {str(self.path)!r}: {problem}; "
                               "give a store in a writable folder.")
        if problem is None and not read_only:
            try:
                self._con = connect_for_writing(self.path)
            except StoreWriteError:
                if create:
                    raise
        if self._con is None:  # a reader on read-only media, or on a disk too full for the -shm file
            self._reading = connect_readonly(self.path)
            self._con = self._reading.con
        self.readonly = self._reading is not None
        self._migrated = False  # brought up to the current schema (on the first write)
        # how the file is read: "read-write", or read-only as "immutable", "read-only" or "copy" (store_file)
        self.access = "read-write" if self._reading is None else self._reading.how

    # -- life cycle -------------------------------------------------------

    def close(self) -> None:
        con, self._con = getattr(self, "_con", None), None
        reading, self._reading = getattr(self, "_reading", None), None
        if reading is not None:
            reading.close()
        elif con is not None:
            con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    @property
    def con(self) -> sqlite3.Connection:
        if self._con is None:
            raise RuntimeError(f"{self!r} is closed")
        return self._con

    def _transaction(self, statements: Iterable[tuple[str, Any, bool]]) -> None:
        """Run (sql, params, many) statements in one IMMEDIATE transaction: all or nothing (params: one
        row of values, or with `many` an iterable of rows).

        A fault of the disk or the file (full, read-only, I/O error) raises StoreWriteError;
        an error caused by the values (IntegrityError and the like) is raised as it is."""
        if self.readonly:
            raise StoreWriteError(f"cannot write the store {str(self.path)!r} "
                                  f"({unwritable(self.path) or 'it was opened read-only'})",
                                  "give a store in a writable folder")
        con = self.con
        if not self._migrated:
            migrate(con, self.path)
            self._migrated = True
        with immediate_transaction(con, self.path):
            for sql, params, many in statements:
                (con.executemany if many else con.execute)(sql, params)

    # -- writing ----------------------------------------------------------

    def mark_running(self, spec: RunSpec) -> None:
        """Record that `spec` has started (a finished run of the same key is left as it is)."""
        now = time.time()
        self._transaction([
            (f"DELETE FROM alerts WHERE {UNFINISHED}", (spec.key,), False),  # an earlier attempt's
            (f"DELETE FROM progress WHERE {UNFINISHED}", (spec.key,), False),
            ("INSERT INTO runs (key, spec, label, status, started) VALUES (?, ?, ?, 'running', ?) "
            "ON CONFLICT (key) DO UPDATE SET status = 'running', error = NULL, metrics = NULL, "
            "history = NULL, extra = NULL, started = excluded.started, finished = NULL "
            "WHERE runs.status NOT IN ('done', 'diverged')",
            (spec.key, dumps(spec.to_dict()), spec.label(), now), False)])

    def save(self, run: RunLike) -> None:
        """Store a finished run, its layer records and alerts in one transaction (replacing any earlier
        row, and the alerts and progress written while it trained)."""
        spec = run.spec
        key = spec.key  # a hash of the whole spec: computed once, not once per layer record
        if run.status not in FINISHED:
            raise ValueError(f"run status {run.status!r} is not one of {', '.join(FINISHED)}")
        # Encode everything before the transaction starts, so a bad value never leaves one open.
        row = (key, dumps(spec.to_dict()), spec.label(), run.status, dumps(dict(run.metrics)),
               dumps(dict(run.history)), dumps(extra_of(run)), time.time())
        records = [(key, step, layer, metric, value) for step, layer, metric, value in (run.layer_records or ())]
        alerts = [alert_row(key, alert) for alert in (getattr(run, "alerts", None) or ())]
        self._transaction([
            ("DELETE FROM layer_records WHERE run_key = ?", (key,), False),
            ("DELETE FROM alerts WHERE run_key = ?", (key,), False),
            ("DELETE FROM progress WHERE run_key = ?", (key,), False),
            ("INSERT INTO runs (key, spec, label, status, error, metrics, history, extra, started, finished) "
             "VALUES (?, ?, ?, ?, NULL, ?, ?, ?, NULL, ?) "
             "ON CONFLICT (key) DO UPDATE SET spec = excluded.spec, label = excluded.label, "
             "status = excluded.status, error = NULL, metrics = excluded.metrics, "
             "history = excluded.history, extra = excluded.extra, finished = excluded.finished", row, False),
            ("INSERT INTO layer_records (run_key, step, layer, metric, value) VALUES (?, ?, ?, ?, ?)", records, True),
            (f"INSERT INTO alerts ({', '.join(ALERT_COLUMNS)}) VALUES ({', '.join('?' * len(ALERT_COLUMNS))})",
             alerts, True),
        ])

    def save_failure(self, spec: RunSpec, error: str) -> None:
        """Store that `spec` raised `error` ('ExceptionType: message'); a resumed sweep runs it again.
        The alerts raised before the error are kept."""
        self._transaction([
            ("DELETE FROM layer_records WHERE run_key = ?", (spec.key,), False),
            ("DELETE FROM progress WHERE run_key = ?", (spec.key,), False),
            ("INSERT INTO runs (key, spec, label, status, error, finished) VALUES (?, ?, ?, 'failed', ?, ?) "
             "ON CONFLICT (key) DO UPDATE SET status = 'failed', error = excluded.error, metrics = NULL, "
             "history = NULL, extra = NULL, finished = excluded.finished",
             (spec.key, dumps(spec.to_dict()), spec.label(), error, time.time()), False),
        ])

    def forget_running(self, keys: Iterable[str]) -> None:
        """Delete the 'running' rows of `keys` (runs interrupted before they produced anything), with
        the alerts and progress they wrote while they trained."""
        rows = [(k,) for k in keys]
        running = "run_key IN (SELECT key FROM runs WHERE key = ? AND status = 'running')"
        self._transaction([(f"DELETE FROM alerts WHERE {running}", rows, True),
                           (f"DELETE FROM progress WHERE {running}", rows, True),
                           ("DELETE FROM runs WHERE key = ? AND status = 'running'", rows, True)])

    # -- reading ----------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run a query; an SQLite error (a damaged file) is one sentence naming the store."""
        try:
            return self.con.execute(sql, params)
        except sqlite3.DatabaseError as err:
            raise GradvetError(f"store {str(self.path)!r} cannot be read (SQLite says: {err}).") from None

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self._read(sql, params)
        names = [d[0] for d in cur.description]
        try:
            return [decode_row(row, names) for row in cur.fetchall()]
        except sqlite3.DatabaseError as err:
            raise GradvetError(f"store {str(self.path)!r} cannot be read (SQLite says: {err}).") from None

    def get(self, key: str) -> dict[str, Any] | None:
        """The run with this key (history and extra included), or None. See `runs` for the fields."""
        rows = self._rows(f"SELECT {SUMMARY_COLUMNS}, history, extra FROM runs WHERE key = ?", (key,))
        if not rows:
            return None
        rows[0]["alerts"] = self.alerts(key).get(key, [])
        return rows[0]

    def runs(self, status: str | None = None, history: bool = False) -> list[dict[str, Any]]:
        """Every run (or those with `status`), in the order they were first started.

        Each is a dict: key, spec (dict), label, status, error, metrics (dict or None),
        started, finished (UNIX times), alerts (list, see `alerts`; empty for a run not
        monitored), and history (dict) when `history=True`. A JSON field
        that cannot be read (a tampered file) is None, and `unreadable` maps it to the reason.
        """
        columns = SUMMARY_COLUMNS + (", history" if history else "")
        params: tuple[str, ...]
        sql, params = f"SELECT {columns} FROM runs", ()
        if status is not None:
            check_status(status)
            sql, params = sql + " WHERE status = ?", (status,)
        records = self._rows(sql + " ORDER BY rowid", params)
        alerts = self.alerts()
        for record in records:
            record["alerts"] = alerts.get(record["key"], [])
        return records

    def _has_table(self, name: str) -> bool:
        """Whether the store has table `name` (one added by a later schema version may be missing)."""
        return self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None

    def alerts(self, key: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """{run key: its alerts in the order they were raised} (of one run when `key` is given); each alert a
        dict of `gradvet.Alert`'s fields (a NULL value as NaN; a field of another type as None)."""
        if not self._has_table("alerts"):
            return {}
        params: tuple[str, ...]
        sql, params = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts", ()
        if key is not None:
            sql, params = sql + " WHERE run_key = ?", (key,)
        out: dict[str, list[dict[str, Any]]] = {}
        for row in self._read(sql + " ORDER BY rowid", params).fetchall():
            out.setdefault(str(row[0]), []).append(decode_alert(row[1:], ALERT_FIELDS))
        return out

    def recent_alerts(self, n: int) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        """([(run key, alert)] of the `n` alerts written last, oldest first; how many the store holds)."""
        if not self._has_table("alerts"):
            return [], 0
        total = self._read("SELECT count(*) FROM alerts").fetchone()[0]
        rows = self._read(f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts ORDER BY rowid DESC LIMIT ?", (n,)).fetchall()
        return [(str(row[0]), decode_alert(row[1:], ALERT_FIELDS)) for row in reversed(rows)], total

    def progress(self) -> dict[str, dict[str, Any]]:
        """{run key: the latest heartbeat of a run in flight}: step, steps, loss, grad_norm, layers
        ({layer: ||g||}), updated (UNIX time); see `gradvet.train.heartbeat`."""
        if not self._has_table("progress"):
            return {}
        cur = self._read("SELECT run_key, step, steps, loss, grad_norm, layers, updated FROM progress")
        return {str(row[0]): decode_progress(row[1:]) for row in cur.fetchall()}

    def done_keys(self) -> set[str]:
        """Keys of finished runs (done or diverged): a resumed sweep skips exactly these."""
        return {k for (k,) in self._read("SELECT key FROM runs WHERE status IN ('done', 'diverged')").fetchall()}

    def layer_records(self, key: str, metric: str | None = None) -> list[tuple[int, str, str, float]]:
        """(step, layer, metric, value) rows of one run, in the order they were saved (NaN for a NULL value)."""
        params: tuple[str, ...]
        sql, params = "SELECT step, layer, metric, value FROM layer_records WHERE run_key = ?", (key,)
        if metric is not None:
            sql, params = sql + " AND metric = ?", (key, metric)
        rows = self._read(sql + " ORDER BY rowid", params).fetchall()
        return [(step, layer, name, math.nan if value is None else value) for step, layer, name, value in rows]

    def count(self, status: str | None = None) -> int:
        """Number of stored runs (with `status`, if given)."""
        if status is None:
            return self._read("SELECT COUNT(*) FROM runs").fetchone()[0]
        check_status(status)
        return self._read("SELECT COUNT(*) FROM runs WHERE status = ?", (status,)).fetchone()[0]


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise unknown("run status", status, STATUSES)
    return status
