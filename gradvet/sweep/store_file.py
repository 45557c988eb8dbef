"""The store's file: what it must hold, how it is created, and how it is opened as SQLite opens it.

Identity. A store is an SQLite database whose ``meta`` table holds ``('schema', 'gradvet-store')``
and ``('version', 'N')``, with the tables ``runs`` and ``layer_records`` (`REQUIRED_COLUMNS`) and
those later versions added (`gradvet.sweep.migrations`; `migrate` brings an older store up to date
when it is first written). It is created whole, at the latest version, or not at all: the schema is committed into a temporary file beside the
target (rollback journal, so everything is in the main file), switched to WAL and then linked
into place.

Checking. Before a file is used it must be a regular file (`gradvet.base.validation.regular_file`,
by stat: a FIFO or a device is refused at once, never opened, so nothing hangs), start with
SQLite's header, and hold the meta table and every required column, as SQLite itself reads
it: committed transactions still in the write-ahead log (``NAME-wal``, left by kill -9 or a
full disk) count. A file that is not
a gradvet store is reported and never written: the check reads through a read-only connection
(`connect_readonly`), which opens the file ``immutable`` (no locks, no side files) when there is
no log to read, and ``mode=ro`` when there is.

Read-only places. `connect_readonly` also serves stores on read-only media or in folders
without write permission: ``mode=ro`` where SQLite can use (or create) the ``-shm`` file;
``immutable=1`` when it cannot and the log is empty (the main file then holds everything);
and when the log has content but no ``-shm`` can be made, a private copy of the file and its
log in a temporary folder, which SQLite recovers as usual (nothing committed is ever skipped).

Faults. `write_fault` turns SQLite's and the OS's write errors (disk full, read-only, I/O
error) into `StoreWriteError`, one sentence naming the store, so a sweep can stop cleanly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import sqlite3
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gradvet.base.errors import GradvetError
from gradvet.base.validation import regular_file
from gradvet.sweep.migrations import MIGRATIONS, added_columns, statements

SCHEMA_NAME = "gradvet-store"
BASE_VERSION = 1  # SCHEMA below
SCHEMA_VERSION = max([BASE_VERSION, *MIGRATIONS])
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_FULL = 13  # sqlite3 error codes (sqlite3.Error.sqlite_errorcode & 0xff)
SQLITE_READONLY = 8
SQLITE_IOERR = 10  # what SQLite says when growing the -shm file fails for want of space
NEARLY_FULL_BYTES = 2**20  # an I/O error with less than this free is a full disk
CANNOT_OPEN_READONLY = ("SQLITE_CANTOPEN", "SQLITE_READONLY")  # prefixes of the names that mean "use a copy"
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")

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

REQUIRED_COLUMNS = {
    "runs": ("key", "spec", "label", "status", "error", "metrics", "history", "extra", "started", "finished"),
    "layer_records": ("run_key", "step", "layer", "metric", "value"),
}


class StoreWriteError(GradvetError):
    """The store could not be written (its disk is full, it is read-only, an I/O error).

    `problem` is the clause naming what went wrong, `remedy` what to do about it; a sweep adds
    how many finished runs are kept (`sentence`)."""

    def __init__(self, problem: str, remedy: str, disk_full: bool = False) -> None:
        self.problem, self.remedy, self.disk_full = problem, remedy, disk_full
        super().__init__(f"{problem}; {remedy} and try again.")

    def sentence(self, kept: int, store: Path) -> str:
        """'the disk holding '/d' is full; 3 finished runs are kept in '/d/runs.db'; free space and rerun to resume.'"""
        runs = "run is" if kept == 1 else "runs are"
        return f"{self.problem}; {kept} finished {runs} kept in {str(store)!r}; {self.remedy} and rerun to resume."


def not_a_store(path: Path, why: str) -> GradvetError:
    return GradvetError(
        f"{str(path)!r} is not a gradvet store ({why}); give a store written by `gradvet sweep` or a new file name."
    )


def side_file(path: Path, suffix: str) -> Path:
    """SQLite's file beside `path`: NAME-wal, NAME-shm, NAME-journal."""
    return path.with_name(path.name + suffix)


def store_exists(path: Path) -> bool:
    """False when nothing is at `path`; True for a regular file; anything else (a folder, a FIFO,
    a device) is GradvetError in `gradvet.base.validation`'s wording, checked with stat before any open."""
    if not os.path.lexists(path):
        return False
    regular_file("store", path)
    return True


def _read_header(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise GradvetError(f"store {str(path)!r} cannot be read ({err.strerror or err}); "
                           "give a readable gradvet store or a new file name.") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since it was checked
            raise not_a_store(path, "it is not a regular file")
        return os.read(fd, len(SQLITE_MAGIC))
    finally:
        os.close(fd)


def folder_of(path: Path) -> Path:
    """The folder holding `path`, absolute, so that a message names it even for a bare 'runs.db'."""
    return path.absolute().parent


def unwritable(path: Path) -> str | None:
    """Why a sweep cannot write the store at `path` (its folder or the file is read-only), or None.

    The folder must be writable too: SQLite keeps NAME-wal and NAME-shm beside the store, and
    the sweep its NAME.lock. `os.access` answers for the real user, so root passes a chmod
    but not a read-only mount (EROFS)."""
    folder = folder_of(path)
    if not os.access(folder, os.W_OK):
        return f"its folder {str(folder)!r} {_read_only_why(folder)}"
    if path.exists() and not os.access(path, os.W_OK):
        return f"the file {_read_only_why(path)}"
    return None


def _read_only_why(path: Path) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "is on a read-only file system"
    except OSError:
        pass
    return "is not writable (no write permission)"


def write_fault(err: BaseException, path: Path) -> StoreWriteError | None:
    """A StoreWriteError when `err` is a fault of the store's disk or file, None when it is not.

    sqlite3.OperationalError (disk full, read-only, I/O error, locked), a bare DatabaseError
    (corruption) and OSError are faults of the store; IntegrityError, DataError, InterfaceError
    and ProgrammingError come from the values being written, a problem of the run."""
    if isinstance(err, StoreWriteError):
        return err
    if isinstance(err, OSError):
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            return disk_full(path)
        return StoreWriteError(f"cannot write the store {str(path)!r} ({err.strerror or err})",
                               "make it writable")
    if not (isinstance(err, (sqlite3.OperationalError, sqlite3.InternalError))
            or type(err) is sqlite3.DatabaseError):
        return None
    code = (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(err)
    if code == SQLITE_FULL or "database or disk is full" in text or (code == SQLITE_IOERR and _nearly_full(path)):
        return disk_full(path)
    if code == SQLITE_READONLY or "readonly database" in text:
        return StoreWriteError(f"cannot write the store {str(path)!r} ({unwritable(path) or text})",
                               "give a store in a writable folder")
    return StoreWriteError(f"cannot write the store {str(path)!r} (SQLite says: {text})",
                           "fix the file or its disk")


def _nearly_full(path: Path) -> bool:
    try:
        info = os.statvfs(folder_of(path))
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < NEARLY_FULL_BYTES


def disk_full(path: Path) -> StoreWriteError:
    return StoreWriteError(f"the disk holding {str(folder_of(path))!r} is full", "free space", disk_full=True)


# -- checking -----------------------------------------------------------------------------------


def check_schema(con: sqlite3.Connection, path: Path) -> None:
    """Raise GradvetError unless `con` holds a gradvet store of a version we read, every table and column included."""
    try:
        rows = dict(con.execute("SELECT name, value FROM meta").fetchall())
    except sqlite3.DatabaseError as err:
        if "no such" in str(err):
            raise not_a_store(path, "an SQLite database without gradvet's meta table") from None
        raise not_a_store(path, f"SQLite says: {err}") from None
    if rows.get("schema") != SCHEMA_NAME:
        raise not_a_store(path, f"its meta schema is {rows.get('schema')!r}")
    try:
        version = int(rows.get("version", ""))
    except (TypeError, ValueError):
        raise not_a_store(path, f"its schema version is {rows.get('version')!r}") from None
    if version > SCHEMA_VERSION:
        raise GradvetError(f"store {str(path)!r} has schema version {version}, newer than this gradvet reads "
                           f"(up to {SCHEMA_VERSION}); upgrade gradvet.")
    for table, columns in {**REQUIRED_COLUMNS, **added_columns(version)}.items():
        try:
            present = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
        except sqlite3.DatabaseError as err:
            raise GradvetError(f"store {str(path)!r} cannot be read (SQLite says: {err}).") from None
        missing = [c for c in columns if c not in present]
        if missing:
            what = f"table {table!r}" if not present else f"column {table}.{missing[0]}"
            raise GradvetError(f"store {str(path)!r} has no {what}, so it was altered or damaged; "
                               "gradvet reads only stores it wrote, whole.")


def check_store_file(path: Path) -> None:
    """Raise GradvetError unless `path` is a readable gradvet store. Never writes the file."""
    regular_file("store", path)
    head = _read_header(path)
    if head != SQLITE_MAGIC:
        raise not_a_store(path, "not an SQLite database" if head else "an empty file")
    with connect_readonly(path) as reading:
        check_schema(reading.con, path)


# -- connecting ---------------------------------------------------------------------------------


@dataclass
class ReadConnection:
    """A read-only connection; `how` says which way it was opened (for tests and messages)."""

    con: sqlite3.Connection
    how: str  # "immutable", "read-only" or "copy"
    copy_dir: tempfile.TemporaryDirectory | None = None

    def close(self) -> None:
        self.con.close()
        if self.copy_dir is not None:
            self.copy_dir.cleanup()
            self.copy_dir = None

    def __enter__(self) -> ReadConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _log_has_content(path: Path) -> bool:
    try:
        return os.stat(side_file(path, "-wal")).st_size > 0
    except OSError:
        return False


def _uri(path: Path, query: str) -> str:
    return f"{path.resolve().as_uri()}?{query}"


def _probe(con: sqlite3.Connection) -> sqlite3.Connection:
    """Make SQLite open the file now (connect is lazy): read the schema once."""
    con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return con


def _cannot_open_here(err: sqlite3.Error) -> bool:
    name = getattr(err, "sqlite_errorname", "") or ""
    return name.startswith(CANNOT_OPEN_READONLY) or "unable to open" in str(err) or "readonly" in str(err)


def connect_readonly(path: Path) -> ReadConnection:
    """A connection that reads the store as SQLite would and never writes it (see the module's docstring)."""
    try:
        if not _log_has_content(path):  # everything committed is in the main file
            return ReadConnection(_probe(sqlite3.connect(_uri(path, "mode=ro&immutable=1"), uri=True)), "immutable")
        con = sqlite3.connect(_uri(path, "mode=ro"), uri=True, timeout=30.0)
        try:
            return ReadConnection(_probe(con), "read-only")
        except sqlite3.OperationalError as err:
            con.close()
            if not _cannot_open_here(err):
                raise
        return _copy_and_connect(path)
    except sqlite3.DatabaseError as err:
        raise not_a_store(path, f"SQLite says: {err}") from None


def _copy_and_connect(path: Path) -> ReadConnection:
    """The store and its log copied into a private temporary folder and opened there (recovered by SQLite)."""
    copy_dir = tempfile.TemporaryDirectory(prefix="gradvet-store-")
    try:
        target = Path(copy_dir.name) / "runs.db"
        shutil.copyfile(path, target)
        shutil.copyfile(side_file(path, "-wal"), side_file(target, "-wal"))
        return ReadConnection(_probe(sqlite3.connect(target)), "copy", copy_dir)
    except OSError as err:
        copy_dir.cleanup()
        raise GradvetError(f"store {str(path)!r} is on a read-only medium and its write-ahead log holds runs "
                           f"that could not be copied to a temporary folder to read them ({err.strerror or err}); "
                           "copy the store and its -wal file to a writable folder.") from None
    except BaseException:
        copy_dir.cleanup()
        raise


def connect_for_writing(path: Path) -> sqlite3.Connection:
    """The writer's connection: WAL, synchronous=FULL (every commit fsynced), foreign keys on."""
    con = None
    try:
        con = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA foreign_keys=ON")
        return con
    except sqlite3.Error as err:
        if con is not None:
            con.close()
        raise write_fault(err, path) or GradvetError(f"store {str(path)!r} cannot be opened ({err}).") from None


def stored_version(con: sqlite3.Connection) -> int:
    """The schema version the store's meta table names (checked readable by `check_schema`)."""
    return int(con.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()[0])


@contextlib.contextmanager
def write_faults(path: Path):
    """Inside: a fault of the disk or the file (full, read-only, I/O error) raises StoreWriteError
    (`write_fault`); any other error is raised as it is."""
    try:
        yield
    except (sqlite3.Error, OSError) as err:
        fault = write_fault(err, path)
        if fault is None:
            raise
        raise fault from None


@contextlib.contextmanager
def transaction(con: sqlite3.Connection):
    """One IMMEDIATE transaction on `con` around the block: committed when it ends, rolled back on any
    exception (all or nothing); errors are raised as they are."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def immediate_transaction(con: sqlite3.Connection, path: Path):
    """`transaction` with the store's faults as in `write_faults` (StoreWriteError)."""
    with write_faults(path), transaction(con):
        yield con


def migrate(con: sqlite3.Connection, path: Path) -> None:
    """Bring the store behind the writer's connection `con` up to SCHEMA_VERSION (`gradvet.sweep.migrations`),
    in one IMMEDIATE transaction: every step or none. Faults of the disk or file raise StoreWriteError."""
    with write_faults(path):
        if stored_version(con) >= SCHEMA_VERSION:
            return
    with immediate_transaction(con, path):
        version = stored_version(con)  # again, inside the transaction: another writer may have done it
        for statement in statements(version, SCHEMA_VERSION):
            con.execute(statement)
        con.execute("UPDATE meta SET value = ? WHERE name = 'version'", (str(max(version, SCHEMA_VERSION)),))


# -- creating -----------------------------------------------------------------------------------


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
    directory = folder_of(path)
    if not directory.is_dir():
        raise GradvetError(f"cannot create store {str(path)!r}: folder {str(directory)!r} does not exist.")
    problem = unwritable(path)
    if problem is not None:
        raise GradvetError(f"cannot create store {str(path)!r}: {problem}; give a store in a writable folder.")
    tmp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:  # os.open, not mkstemp: the store gets the permissions the umask gives, like any new file
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666))
    except OSError as err:
        raise GradvetError(f"cannot create store {str(path)!r} in {str(directory)!r} "
                           f"({err.strerror or err}); give a store in a writable folder.") from None
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.execute("BEGIN")  # rollback journal: at COMMIT the whole schema is in the main file
            for statement in [s for s in SCHEMA.split(";") if s.strip()] + statements(BASE_VERSION, SCHEMA_VERSION):
                con.execute(statement)
            con.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                            [("schema", SCHEMA_NAME), ("version", str(SCHEMA_VERSION))])
            con.execute("COMMIT")
            con.execute("PRAGMA journal_mode=WAL")  # only the header changes; the file stays whole
        finally:
            con.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces a file that appeared meanwhile
        except FileExistsError:
            pass  # someone else created it first; it is checked like any existing file
        except OSError:
            os.replace(tmp, path)  # file systems without hard links
        _fsync_dir(directory)
    except (OSError, sqlite3.Error) as err:
        fault = write_fault(err, path)
        if fault is not None and fault.disk_full:
            raise GradvetError(f"cannot create store {str(path)!r}: {fault.problem}; free space and rerun.") from None
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise GradvetError(f"cannot create store {str(path)!r} ({why}).") from None
    finally:
        for leftover in (tmp, *(side_file(tmp, s) for s in SIDE_SUFFIXES)):
            with contextlib.suppress(OSError):
                leftover.unlink()
