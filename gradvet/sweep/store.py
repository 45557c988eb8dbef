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

Identity. A store is created whole or not at all: the schema is written into
a temporary file next to the target, which is then linked into place. Its
``meta`` table holds ``('schema', 'gradvet-store')`` and ``('version', '1')``.
Before an existing file is opened for writing, it is checked through a
read-only, ``immutable`` connection (no journal recovery, no lock, no side
files), so a file that is not a gradvet store is reported and never touched.

Layout: ``runs`` (one row per spec key) and ``layer_records`` (per-layer,
per-step values of a run). ``runs.extra`` holds, as JSON, whatever else the
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

from gradvet.errors import GradvetError, did_you_mean
from gradvet.spec import RunSpec

SCHEMA_NAME = "gradvet-store"
SCHEMA_VERSION = 1
STATUSES = ("running", "done", "diverged", "failed")
FINISHED = ("done", "diverged")
SQLITE_MAGIC = b"SQLite format 3\x00"

SCHEMA = """
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE runs (
    key TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    label TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'diverged', 'failed')),
    error TEXT,
    metrics TEXT,
    history TEXT,
    extra TEXT,
    started REAL,
    finished REAL
);
CREATE TABLE layer_records (
    run_key TEXT NOT NULL REFERENCES runs(key),
    step INTEGER NOT NULL,
    layer TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL
);
CREATE INDEX layer_records_run_metric ON layer_records (run_key, metric);
"""

SUMMARY_COLUMNS = "key, spec, label, status, error, metrics, started, finished"


class RunLike(Protocol):
    """What `Store.save` needs of a finished run (`gradvet.train.Run` has it; `to_dict()` is optional)."""

    spec: RunSpec
    status: str
    history: dict[str, list]
    metrics: dict[str, Any]
    layer_records: Sequence[tuple[int, str, str, float]]


def _plain(value: Any) -> Any:
    """JSON fallback for numpy / torch scalars and arrays (anything with .tolist() or .item())."""
    for method in ("tolist", "item"):
        if hasattr(value, method):
            return getattr(value, method)()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    """JSON that keeps NaN and +-Infinity (as the literals NaN, Infinity, -Infinity)."""
    return json.dumps(value, allow_nan=True, default=_plain, separators=(",", ":"))


STORED_ELSEWHERE = ("key", "spec", "label", "status", "error", "metrics", "history", "layer_records")


def extra_of(run: RunLike) -> dict[str, Any]:
    """The parts of `run.to_dict()` that have no column of their own (empty without to_dict)."""
    to_dict = getattr(run, "to_dict", None)
    if not callable(to_dict):
        return {}
    return {k: v for k, v in to_dict().items() if k not in STORED_ELSEWHERE}


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def not_a_store(path: Path, why: str) -> GradvetError:
    return GradvetError(
        f"{str(path)!r} is not a gradvet store ({why}); give a store written by `gradvet sweep` or a new file name."
    )


def check_store_file(path: Path) -> None:
    """Raise GradvetError unless `path` is a readable gradvet store of a version we read. Never writes."""
    if path.is_dir():
        raise not_a_store(path, "it is a directory")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as err:
        raise GradvetError(f"store {str(path)!r} cannot be read ({err.strerror or err}); "
                           "give a readable gradvet store or a new file name.") from None
    if head != SQLITE_MAGIC:
        raise not_a_store(path, "not an SQLite database" if head else "an empty file")
    # immutable=1: read the main file as it is, with no locking, no journal or WAL recovery and no
    # side files. The meta table is written once, when the store is created, and never changes.
    uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
    try:
        con = sqlite3.connect(uri, uri=True)
        try:
            rows = dict(con.execute("SELECT name, value FROM meta").fetchall())
        finally:
            con.close()
    except sqlite3.DatabaseError:
        raise not_a_store(path, "an SQLite database without gradvet's meta table") from None
    if rows.get("schema") != SCHEMA_NAME:
        raise not_a_store(path, f"its meta schema is {rows.get('schema')!r}")
    try:
        version = int(rows.get("version", ""))
    except ValueError:
        raise not_a_store(path, f"its schema version is {rows.get('version')!r}") from None
    if version > SCHEMA_VERSION:
        raise GradvetError(f"store {str(path)!r} has schema version {version}, newer than this gradvet reads "
                           f"(up to {SCHEMA_VERSION}); upgrade gradvet.")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def create_store_file(path: Path) -> None:
    """Write an empty store to a temporary file beside `path`, then link it into place."""
    directory = path.parent
    if not directory.is_dir():
        raise GradvetError(f"cannot create store {str(path)!r}: folder {str(directory)!r} does not exist.")
    tmp = directory / f".{path.name}.{os.getpid()}.tmp"
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("BEGIN")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
            con.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                            [("schema", SCHEMA_NAME), ("version", str(SCHEMA_VERSION))])
            con.execute("COMMIT")
        finally:
            con.close()  # last connection: checkpoints and removes the -wal / -shm files
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces a file that appeared meanwhile
        except FileExistsError:
            pass  # someone else created it first; it is checked like any existing file
        except OSError:
            os.replace(tmp, path)  # file systems without hard links
        _fsync_dir(directory)
    except OSError as err:
        raise GradvetError(f"cannot create store {str(path)!r} ({err.strerror or err}).") from None
    finally:
        tmp.unlink(missing_ok=True)


class Store:
    """The runs of one or more sweeps, keyed by `RunSpec.key`. A context manager.

    `Store(path)` opens an existing store or creates a new one;
    `Store(path, create=False)` refuses a missing file (GradvetError).
    One process should write at a time (a sweep's main process); any number may read.
    """

    def __init__(self, path: str | os.PathLike[str], create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise GradvetError(f"store {str(self.path)!r} does not exist; run `gradvet sweep` first.")
            create_store_file(self.path)
        check_store_file(self.path)
        try:
            self._con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=FULL")
            self._con.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as err:
            raise GradvetError(f"store {str(self.path)!r} cannot be opened ({err}).") from None

    # -- life cycle -------------------------------------------------------

    def close(self) -> None:
        con, self._con = getattr(self, "_con", None), None
        if con is not None:
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

    def _transaction(self, statements: Iterable[tuple[str, Sequence[Any] | Iterable[Sequence[Any]], bool]]) -> None:
        """Run (sql, params, many) statements in one IMMEDIATE transaction: all or nothing."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            for sql, params, many in statements:
                (con.executemany if many else con.execute)(sql, params)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    # -- writing ----------------------------------------------------------

    def mark_running(self, spec: RunSpec) -> None:
        """Record that `spec` has started (a finished run of the same key is left as it is)."""
        now = time.time()
        self._transaction([(
            "INSERT INTO runs (key, spec, label, status, started) VALUES (?, ?, ?, 'running', ?) "
            "ON CONFLICT (key) DO UPDATE SET status = 'running', error = NULL, metrics = NULL, "
            "history = NULL, extra = NULL, started = excluded.started, finished = NULL "
            "WHERE runs.status NOT IN ('done', 'diverged')",
            (spec.key, dumps(spec.to_dict()), spec.label(), now), False)])

    def save(self, run: RunLike) -> None:
        """Store a finished run and its layer records in one transaction (replacing any earlier row)."""
        spec = run.spec
        key = spec.key  # a hash of the whole spec: computed once, not once per layer record
        if run.status not in FINISHED:
            raise ValueError(f"run status {run.status!r} is not one of {', '.join(FINISHED)}")
        # Encode everything before the transaction starts, so a bad value never leaves one open.
        row = (key, dumps(spec.to_dict()), spec.label(), run.status, dumps(dict(run.metrics)),
               dumps(dict(run.history)), dumps(extra_of(run)), time.time())
        records = [(key, step, layer, metric, value) for step, layer, metric, value in (run.layer_records or ())]
        self._transaction([
            ("DELETE FROM layer_records WHERE run_key = ?", (key,), False),
            ("INSERT INTO runs (key, spec, label, status, error, metrics, history, extra, started, finished) "
             "VALUES (?, ?, ?, ?, NULL, ?, ?, ?, NULL, ?) "
             "ON CONFLICT (key) DO UPDATE SET spec = excluded.spec, label = excluded.label, "
             "status = excluded.status, error = NULL, metrics = excluded.metrics, "
             "history = excluded.history, extra = excluded.extra, finished = excluded.finished", row, False),
            ("INSERT INTO layer_records (run_key, step, layer, metric, value) VALUES (?, ?, ?, ?, ?)", records, True),
        ])

    def save_failure(self, spec: RunSpec, error: str) -> None:
        """Store that `spec` raised `error` ('ExceptionType: message'); a resumed sweep runs it again."""
        self._transaction([
            ("DELETE FROM layer_records WHERE run_key = ?", (spec.key,), False),
            ("INSERT INTO runs (key, spec, label, status, error, finished) VALUES (?, ?, ?, 'failed', ?, ?) "
             "ON CONFLICT (key) DO UPDATE SET status = 'failed', error = excluded.error, metrics = NULL, "
             "history = NULL, extra = NULL, finished = excluded.finished",
             (spec.key, dumps(spec.to_dict()), spec.label(), error, time.time()), False),
        ])

    def forget_running(self, keys: Iterable[str]) -> None:
        """Delete the 'running' rows of `keys` (runs interrupted before they produced anything)."""
        self._transaction([("DELETE FROM runs WHERE key = ? AND status = 'running'",
                            [(k,) for k in keys], True)])

    # -- reading ----------------------------------------------------------

    @staticmethod
    def _decode(row: sqlite3.Row | tuple, columns: list[str]) -> dict[str, Any]:
        record = dict(zip(columns, row))
        for name in ("spec", "metrics", "history", "extra"):
            if name in record:
                record[name] = loads(record[name])
        return record

    def get(self, key: str) -> dict[str, Any] | None:
        """The run with this key (history and extra included), or None."""
        cur = self.con.execute(f"SELECT {SUMMARY_COLUMNS}, history, extra FROM runs WHERE key = ?", (key,))
        row = cur.fetchone()
        return None if row is None else self._decode(row, [d[0] for d in cur.description])

    def runs(self, status: str | None = None, history: bool = False) -> list[dict[str, Any]]:
        """Every run (or those with `status`), in the order they were first started.

        Each is a dict: key, spec (dict), label, status, error, metrics (dict or None),
        started, finished (UNIX times), and history (dict) when `history=True`.
        """
        columns = SUMMARY_COLUMNS + (", history" if history else "")
        sql, params = f"SELECT {columns} FROM runs", ()
        if status is not None:
            check_status(status)
            sql, params = sql + " WHERE status = ?", (status,)
        cur = self.con.execute(sql + " ORDER BY rowid", params)
        names = [d[0] for d in cur.description]
        return [self._decode(row, names) for row in cur.fetchall()]

    def done_keys(self) -> set[str]:
        """Keys of finished runs (done or diverged): a resumed sweep skips exactly these."""
        return {k for (k,) in self.con.execute("SELECT key FROM runs WHERE status IN ('done', 'diverged')")}

    def layer_records(self, key: str, metric: str | None = None) -> list[tuple[int, str, str, float]]:
        """(step, layer, metric, value) rows of one run, in the order they were saved."""
        sql, params = "SELECT step, layer, metric, value FROM layer_records WHERE run_key = ?", (key,)
        if metric is not None:
            sql, params = sql + " AND metric = ?", (key, metric)
        rows = self.con.execute(sql + " ORDER BY rowid", params).fetchall()
        return [(step, layer, name, math.nan if value is None else value) for step, layer, name, value in rows]

    def count(self, status: str | None = None) -> int:
        """Number of stored runs (with `status`, if given)."""
        if status is None:
            return self.con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        check_status(status)
        return self.con.execute("SELECT COUNT(*) FROM runs WHERE status = ?", (status,)).fetchone()[0]


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise GradvetError(f"unknown run status {status!r}{did_you_mean(status, STATUSES)}; "
                           f"allowed: {', '.join(STATUSES)}.")
    return status
