"""The run store under faults (issue 12): two writers, a full disk, read-only media, a FIFO,
a store whose meta table sits in the write-ahead log, tampered rows, a 1 MB label.

Every expectation is checked against an independent reading: the store's rows read with
plain sqlite3, trainings counted from the fake run's side log (tests/sweep_fakes.py).
Cases that could hang run in a subprocess with a generous timeout.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gradvet.base.errors import GradvetError
from gradvet.cli import app
from gradvet.spec import RunSpec
from gradvet.sweep import Store, load_grid, run_sweep
from gradvet.sweep.lease import WriterLease, lock_path
from gradvet.sweep.store_file import SCHEMA, StoreWriteError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cli_helpers import assert_user_error  # noqa: E402
from cli_helpers import cli_batch as shared_cli_batch  # noqa: E402
from sweep_fakes import (  # noqa: E402
    expected_layer_records,
    fake_run,
    gate_env,
    open_gate,
    trainings,
    wait_until,
)

runner = CliRunner()
GRID = "[base]\nsteps = 5\n[grid]\nlr = [0.1, 0.5]\nseed = [0, 1, 2, 3, 4, 5, 6, 7]\n"  # 16 runs
SMALL_GRID = "[base]\nsteps = 3\n[grid]\nseed = [0, 1, 2, 3]\n"  # 4 runs

# `gradvet ARGS` with the fake run function (sweep_fakes.fake_run) as the default; with WAIT_FOR_GO set it
# waits, imports done, for a line on stdin (so that two sweeps can start at the same moment)
DRIVER = """
import os, sys
import gradvet.sweep.runner, sweep_fakes
from gradvet.cli import main
gradvet.sweep.runner.DEFAULT_RUN = "sweep_fakes:fake_run"
print("ready", flush=True)
if os.environ.get("WAIT_FOR_GO"):
    sys.stdin.readline()
sys.argv = ["gradvet", *sys.argv[1:]]
main()
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def env_with(log: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    if log is not None:
        env["SWEEP_FAKES_LOG"] = str(log)
    return env


def gradvet_argv(*args: object) -> list[str]:
    return [sys.executable, "-c", DRIVER, *map(str, args)]


def start(*args: object, log: Path | None = None, wait_for_go: bool = False,
          env: dict[str, str] | None = None) -> subprocess.Popen:
    """`gradvet ARGS` started in a new process group (`env` added to its environment); returns once its
    imports are done."""
    env = dict(env_with(log), **({"WAIT_FOR_GO": "1"} if wait_for_go else {}), **(env or {}))
    proc = subprocess.Popen(gradvet_argv(*args), cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def go(proc: subprocess.Popen) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()


def run_gradvet(*args: object, log: Path | None = None, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """`gradvet ARGS` in a subprocess (nothing can hang the tests), its stdout without the driver's 'ready'."""
    done = subprocess.run(gradvet_argv(*args), cwd=ROOT, env=env_with(log), capture_output=True, text=True,
                          timeout=timeout, **kwargs)
    done.stdout = done.stdout.removeprefix("ready\n")
    return done


def cli_batch(*commands: list[object], timeout: float = 120) -> list[types.SimpleNamespace]:
    """Each command's result (exit_code, stdout, stderr, output) as CliRunner gives it, all in one fresh
    process (cli_helpers.cli_batch) whose default run function is the fake one."""
    return shared_cli_batch(*commands, timeout=timeout, prelude=FAKE_RUN_PRELUDE)


FAKE_RUN_PRELUDE = 'import gradvet.sweep.runner; gradvet.sweep.runner.DEFAULT_RUN = "sweep_fakes:fake_run"'


def one_error_line(done: subprocess.CompletedProcess, *fragments: str) -> str:
    """A user error from a subprocess: exit 2, one line on stderr with every fragment, no traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def rows(store: Path) -> list[tuple[str, str]]:
    """(key, status) of every row, read with plain sqlite3: the independent view."""
    con = sqlite3.connect(store)
    try:
        return con.execute("SELECT key, status FROM runs ORDER BY rowid").fetchall()
    finally:
        con.close()


def finished(store: Path) -> int:
    if not store.exists():
        return 0
    return sum(status in ("done", "diverged") for _, status in rows(store))


def wait_for_a_saved_run(store: Path, proc: subprocess.Popen) -> None:
    wait_until(lambda: proc.poll() is not None or finished(store) > 0, "a saved run")
    assert finished(store) > 0, "the sweep saved nothing"


def assert_every_run_once(store: Path, specs: list[RunSpec]) -> None:
    """One row per grid point, all finished, none failed or running; layer records whole."""
    got = rows(store)
    assert sorted(k for k, _ in got) == sorted(s.key for s in specs)
    assert {status for _, status in got} <= {"done", "diverged"}
    con = sqlite3.connect(store)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("SELECT COUNT(*) FROM layer_records").fetchone()[0] == sum(
            len(expected_layer_records(s)) for s in specs)
    finally:
        con.close()


# -- one writer per store ----------------------------------------------------------------------------


def test_a_held_store_refuses_a_second_sweep_naming_the_writer(tmp_path, monkeypatch):
    monkeypatch.setattr("gradvet.sweep.runner.DEFAULT_RUN", "sweep_fakes:fake_run")
    store, grid = tmp_path / "runs.db", write(tmp_path / "g.toml", SMALL_GRID)
    Store(store).close()
    with WriterLease(store):
        assert lock_path(store).exists()
        with pytest.raises(GradvetError, match="being written by another gradvet sweep") as info:
            run_sweep(load_grid(grid), store, run_fn=fake_run)
        message = str(info.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in message and "\n" not in message
        result = runner.invoke(app, ["sweep", str(grid), "--store", str(store)])
        assert_user_error(result, str(store), "being written by another gradvet sweep", f"pid {os.getpid()}")
    assert rows(store) == []  # neither refused sweep wrote anything
    assert not lock_path(store).exists()  # released: the lock file goes with the lease
    summary = run_sweep(load_grid(grid), store, run_fn=fake_run)
    assert summary.done == 4 and not lock_path(store).exists()


@pytest.mark.slow
def test_two_sweeps_on_one_store_train_each_run_once(tmp_path):
    """Two sweeps on one store: the one that comes second while the first writes is refused, naming the
    first. The first is held mid-sweep by the fakes' gate (its runs after the first wait until the test
    opens it), so the second surely meets it writing, however slow the machine."""
    grid, log = write(tmp_path / "g.toml", GRID), tmp_path / "trainings.log"
    specs = load_grid(grid)
    # the second starts while the first is writing: refused, naming the first
    store, gate = tmp_path / "a.db", tmp_path / "gate-a"
    second = start("sweep", grid, "--store", store, log=log, wait_for_go=True)  # imports done, waiting
    first = start("sweep", grid, "--store", store, log=log, env=gate_env(gate, free=1))
    wait_for_a_saved_run(store, first)  # one run saved, the next held at the gate: the first is writing
    go(second)
    out, err = second.communicate(timeout=120)
    one_error_line(subprocess.CompletedProcess([], second.returncode, out, err),
                   "being written by another gradvet sweep", f"pid {first.pid} on host")
    open_gate(gate)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert "16 runs: 0 already done, 16 ran" in out
    assert_every_run_once(store, specs)
    assert collections.Counter(trainings(log)) == {s.key: 1 for s in specs}  # each trained exactly once
    # both let go at the same moment on a fresh store: the winner's first run waits at the gate until
    # the loser has been refused
    store, log, gate = tmp_path / "b.db", tmp_path / "trainings-b.log", tmp_path / "gate-b"
    procs = [start("sweep", grid, "--store", store, log=log, wait_for_go=True, env=gate_env(gate)) for _ in range(2)]
    for proc in procs:
        go(proc)
    wait_until(lambda: any(p.poll() is not None for p in procs), "one of the two sweeps to end")
    open_gate(gate)
    outcomes = [(p.returncode, out, err) for p in procs for out, err in [p.communicate(timeout=120)]]
    assert sorted(code for code, _, _ in outcomes) == [0, 2], outcomes
    refused = next(err for code, _, err in outcomes if code == 2)
    winner = next(p for p in procs if p.returncode == 0)
    assert "being written by another gradvet sweep" in refused and f"pid {winner.pid} on host" in refused
    assert "Traceback" not in refused
    assert_every_run_once(store, specs)
    assert collections.Counter(trainings(log)) == {s.key: 1 for s in specs}


@pytest.mark.slow
def test_a_killed_writer_does_not_block_the_next_sweep(tmp_path):
    grid, store, log = write(tmp_path / "g.toml", GRID), tmp_path / "runs.db", tmp_path / "trainings.log"
    specs = load_grid(grid)
    first = start("sweep", grid, "--store", store, "--workers", "2", log=log)
    wait_for_a_saved_run(store, first)
    os.killpg(first.pid, signal.SIGKILL)  # main process, fork server and workers
    first.wait()
    first.stdout.close()
    first.stderr.close()
    assert lock_path(store).exists()  # left behind by the dead writer, but no longer locked
    kept = {k for k, status in rows(store) if status == "done"}
    again = run_gradvet("sweep", grid, "--store", store, log=log)
    assert again.returncode == 0, again.stderr
    assert f"16 runs: {len(kept)} already done, {16 - len(kept)} ran" in again.stdout
    assert_every_run_once(store, specs)
    assert not lock_path(store).exists()
    counts = collections.Counter(trainings(log))
    assert all(counts[k] == 1 for k in kept)  # a run saved before the kill was not trained again


@pytest.mark.slow
def test_a_lock_file_that_is_not_a_regular_file_is_one_sentence(tmp_path):
    store, grid = tmp_path / "runs.db", write(tmp_path / "g.toml", SMALL_GRID)
    os.mkfifo(lock_path(store))
    done = run_gradvet("sweep", grid, "--store", store, timeout=120)
    one_error_line(done, str(lock_path(store)), "is not a regular file")


# -- a full disk ---------------------------------------------------------------------------------------


class FullDisk:
    """The store's connection, except that COMMIT number `fail_at` (and every later one) fails as
    SQLite's does when the disk is full."""

    def __init__(self, con: sqlite3.Connection, state: dict[str, int]) -> None:
        self._con, self._state = con, state

    def execute(self, sql: str, *params):
        if sql == "COMMIT":
            self._state["commits"] += 1
            if self._state["commits"] >= self._state["fail_at"]:
                raise sqlite3.OperationalError("database or disk is full")
        return self._con.execute(sql, *params)

    def executemany(self, sql: str, params):
        return self._con.executemany(sql, params)

    @property
    def in_transaction(self) -> bool:
        return self._con.in_transaction


@pytest.mark.parametrize("fail_at,workers", [(1, 1), (2, 1), (5, 1), (6, 2)])
def test_disk_full_stops_the_sweep_keeping_every_saved_run(tmp_path, monkeypatch, fail_at, workers):
    """Commits alternate: mark_running (odd) and save (even) with one worker, so the fault hits
    both kinds; the store's own rows say how many runs are kept."""
    monkeypatch.setattr("gradvet.sweep.runner.DEFAULT_RUN", "sweep_fakes:fake_run")
    log = tmp_path / "trainings.log"
    monkeypatch.setenv("SWEEP_FAKES_LOG", str(log))
    grid, store = write(tmp_path / "g.toml", SMALL_GRID), tmp_path / "runs.db"
    specs = load_grid(grid)
    state = {"commits": 0, "fail_at": fail_at}
    real_con = Store.con
    with monkeypatch.context() as patch:
        patch.setattr(Store, "con", property(lambda self: FullDisk(real_con.fget(self), state)))
        args = ["sweep", str(grid), "--store", str(store), "--batched", "off"] + (
            ["--workers", str(workers)] if workers > 1 else [])
        result = runner.invoke(app, args)
    kept = [k for k, status in rows(store) if status in ("done", "diverged")]
    runs = "run is" if len(kept) == 1 else "runs are"
    assert_user_error(result, f"the disk holding {str(tmp_path)!r} is full",
                      f"{len(kept)} finished {runs} kept in {str(store)!r}", "free space and rerun to resume")
    assert len(kept) == (fail_at - 1) // 2 if workers == 1 else len(kept) >= 1
    assert not any(status == "failed" for _, status in rows(store))  # a trained run is never marked failed
    assert not lock_path(store).exists()
    before = dict(sqlite3.connect(store).execute("SELECT key, finished FROM runs WHERE status = 'done'").fetchall())
    again = runner.invoke(app, ["sweep", str(grid), "--store", str(store)])  # space is back
    assert again.exit_code == 0, again.output
    assert f"4 runs: {len(kept)} already done" in again.stdout
    assert_every_run_once(store, specs)
    after = dict(sqlite3.connect(store).execute("SELECT key, finished FROM runs").fetchall())
    assert all(after[k] == before[k] for k in kept)  # the kept runs were not trained or saved again
    if workers == 1:  # workers log with the environment of the fork server, started by whichever test came first
        counts = collections.Counter(trainings(log))
        assert all(counts[k] == 1 for k in kept) and set(counts) == {s.key for s in specs}


def _limit_file_size(limit: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes fail with EFBIG
    return preexec


@pytest.mark.slow
def test_a_real_write_failure_rlimit_fsize_stops_the_sweep_in_one_sentence(tmp_path):
    """A file-size limit on the sweep's process: SQLite's writes fail for real (EFBIG, which it reports
    as an I/O error, not as a full disk: the disk has room)."""
    grid, store, log = write(tmp_path / "g.toml", GRID), tmp_path / "runs.db", tmp_path / "trainings.log"
    specs = load_grid(grid)
    done = run_gradvet("sweep", grid, "--store", store, log=log, preexec_fn=_limit_file_size(60_000))
    kept = [k for k, status in rows(store) if status in ("done", "diverged")]
    runs = "run is" if len(kept) == 1 else "runs are"
    one_error_line(done, f"cannot write the store {str(store)!r}", "disk I/O error",
                   f"{len(kept)} finished {runs} kept", "rerun to resume")
    assert 1 <= len(kept) < 16
    assert not any(status == "failed" for _, status in rows(store))
    again = run_gradvet("sweep", grid, "--store", store, log=log)
    assert again.returncode == 0, again.stderr
    assert f"16 runs: {len(kept)} already done" in again.stdout
    assert_every_run_once(store, specs)


TMPFS_SCRIPT = """
mount -t tmpfs -o size=160k tmpfs "$1" || exit 77
shift
out=$1; shift
"$@" sweep "$out/g.toml" --store "$MNT/runs.db" > "$out/sweep1.out" 2> "$out/sweep1.err"; echo $? > "$out/sweep1.rc"
"$@" runs --store "$MNT/runs.db" --json > "$out/runs1.out" 2> "$out/runs1.err"; echo $? > "$out/runs1.rc"
cp "$MNT/runs.db" "$out/full.db"; [ -s "$MNT/runs.db-wal" ] && cp "$MNT/runs.db-wal" "$out/full.db-wal"
mount -o remount,size=8m "$MNT"
"$@" sweep "$out/g.toml" --store "$MNT/runs.db" > "$out/sweep2.out" 2> "$out/sweep2.err"; echo $? > "$out/sweep2.rc"
cp "$MNT/runs.db" "$out/final.db"
"""


@pytest.mark.slow
def test_a_really_full_disk_a_tiny_tmpfs(tmp_path):
    """A 160 kB tmpfs in a private mount namespace (root with CAP_SYS_ADMIN; skipped elsewhere):
    ENOSPC for real. Then `runs` reads the store left by the full disk, and with space back the sweep resumes."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a tiny tmpfs needs root and unshare (a private mount namespace)")
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    grid = write(out / "g.toml", GRID)
    specs = load_grid(grid)
    env = dict(env_with(out / "trainings.log"), MNT=str(mnt))
    done = subprocess.run(["unshare", "-m", "sh", "-c", TMPFS_SCRIPT, "sh", str(mnt), str(out), *gradvet_argv()[:3]],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode == 77:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip()})")
    assert done.returncode == 0, done.stderr

    def read(name: str) -> str:
        return (out / name).read_text().removeprefix("ready\n")

    assert read("sweep1.rc").strip() == "2", read("sweep1.err")
    full = out / "full.db"
    kept = [k for k, status in rows(full) if status in ("done", "diverged")]  # SQLite reads its WAL too
    runs = "run is" if len(kept) == 1 else "runs are"
    err = [line for line in read("sweep1.err").splitlines() if line.strip()]
    assert len(err) == 1 and f"the disk holding {str(mnt)!r} is full; {len(kept)} finished {runs} kept" in err[0], err
    assert not any(status == "failed" for _, status in rows(full))
    assert read("runs1.rc").strip() == "0", read("runs1.err")  # the store is readable on the full disk
    listed = json.loads(read("runs1.out"))
    assert [r["key"] for r in listed] == [k for k, _ in rows(full)]
    assert read("sweep2.rc").strip() == "0", read("sweep2.err")
    assert f"16 runs: {len(kept)} already done" in read("sweep2.out")
    assert_every_run_once(out / "final.db", specs)


# -- what SQLite reads is what counts: the write-ahead log -----------------------------------------------


def _snapshot(src: Path, dst: Path, with_shm: bool = False) -> None:
    """Copy a store and its -wal (and -shm) as they are now, as kill -9 or a full disk leaves them."""
    shutil.copyfile(src, dst)
    for suffix in ("-wal",) + (("-shm",) if with_shm else ()):
        shutil.copyfile(f"{src}{suffix}", f"{dst}{suffix}")


def store_with_meta_in_the_wal(folder: Path, specs: list[RunSpec]) -> Path:
    """A store whose every table, meta included, is only in its write-ahead log (the main file has none)."""
    folder.mkdir(exist_ok=True)
    src, dst = folder / "src.db", folder / "runs.db"
    con = sqlite3.connect(src, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.executescript(SCHEMA)
    con.executemany("INSERT INTO meta VALUES (?, ?)", [("schema", "gradvet-store"), ("version", "1")])
    for spec in specs:
        con.execute("INSERT INTO runs (key, spec, label, status, metrics) VALUES (?, ?, ?, 'done', ?)",
                    (spec.key, json.dumps(spec.to_dict()), spec.label(), json.dumps({"steps_done": spec.steps})))
    _snapshot(src, dst)
    con.close()
    for leftover in folder.glob("src.db*"):
        leftover.unlink()
    return dst


def test_a_store_whose_meta_table_is_in_the_wal_is_a_store(tmp_path, monkeypatch):
    specs = load_grid(write(tmp_path / "g.toml", SMALL_GRID))
    store = store_with_meta_in_the_wal(tmp_path / "s", specs[:2])
    main_only = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):  # the main file alone has no meta
        main_only.execute("SELECT * FROM meta").fetchall()
    main_only.close()
    copy = tmp_path / "copy"
    shutil.copytree(store.parent, copy)
    assert rows(copy / "runs.db") == [(s.key, "done") for s in specs[:2]]  # SQLite itself reads the log
    listed = runner.invoke(app, ["runs", "--store", str(store), "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["key"] for r in json.loads(listed.stdout)] == [s.key for s in specs[:2]]
    monkeypatch.setattr("gradvet.sweep.runner.DEFAULT_RUN", "sweep_fakes:fake_run")
    result = runner.invoke(app, ["sweep", str(tmp_path / "g.toml"), "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "4 runs: 2 already done, 2 ran" in result.stdout
    assert sorted(k for k, _ in rows(store)) == sorted(s.key for s in specs)


def test_a_foreign_database_in_wal_is_still_not_a_store(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    src = folder / "src.db"
    con = sqlite3.connect(src, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("CREATE TABLE meta (name, value)")
    con.execute("INSERT INTO meta VALUES ('schema', 'someone-else')")
    _snapshot(src, folder / "other.db")
    con.close()
    assert_user_error(runner.invoke(app, ["runs", "--store", str(folder / "other.db")]),
                      "is not a gradvet store", "'someone-else'")


# -- read-only media and folders --------------------------------------------------------------------------

READ_ONLY_MOUNT = 'mount --bind -o ro "$1" "$1" || exit 77; shift; exec "$@"'
NOBODY = 65534

# In a process that cannot write the store's folder: `runs`, `sweep` and `report` as typed, and
# what `gradvet report` does with a store (Store(path, create=False), runs(history=True),
# layer_records); one JSON object of the answers on stdout.
READ_ONLY_CHECKS = """
import json, sys
from typer.testing import CliRunner
import gradvet.sweep.runner
gradvet.sweep.runner.DEFAULT_RUN = "sweep_fakes:fake_run"
from gradvet.cli import app
from gradvet.base.errors import GradvetError
from gradvet.spec import RunSpec
from gradvet.sweep import Store
store, grid, new, report = sys.argv[1:5]
runner = CliRunner()
def cli(*args):
    r = runner.invoke(app, list(args))
    return {"exit_code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr, "output": r.output}
out = {"json": cli("runs", "--store", store, "--json"), "table": cli("runs", "--store", store),
       "sweep": cli("sweep", grid, "--store", store), "sweep_new": cli("sweep", grid, "--store", new)}
if report != "-":
    out["report"] = cli("report", store, "--out", report)
with Store(store, create=False) as db:
    runs = db.runs(history=True)
    out.update(access=db.access, readonly=db.readonly, keys=[r["key"] for r in runs],
               layers=[len(db.layer_records(r["key"])) for r in runs])
    try:
        db.save_failure(RunSpec(), "RuntimeError: x")
    except GradvetError as err:
        out["write"] = str(err)
print(json.dumps(out))
"""


def run_read_only(how: str, folder: Path, argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """`argv` in a subprocess that cannot write `folder`.

    how="media": a read-only bind mount in a private mount namespace (EROFS: even root cannot
    write); needs root. how="folder": the folder chmod 555, the process not root (as root, where
    chmod stops nothing, the process runs as nobody). Skipped, with the reason, where neither is possible."""
    env = dict(env_with(), MPLCONFIGDIR=tempfile.mkdtemp(prefix="gradvet-mpl-"))
    os.chmod(env["MPLCONFIGDIR"], 0o777)
    if how == "media":
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            pytest.skip("a read-only mount (read-only media) needs root and unshare")
        done = subprocess.run(["unshare", "-m", "sh", "-c", READ_ONLY_MOUNT, "sh", str(folder), *argv],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode == 77:
            pytest.skip(f"a read-only bind mount is not permitted here ({done.stderr.strip()})")
        return done
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root, where chmod does not stop writes, and without setpriv to drop to nobody")
        argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
    for p in modes:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


@pytest.fixture
def open_tmp():
    """A temporary folder every user can enter (pytest's tmp_path is private to its user; nobody must read it)."""
    folder = Path(tempfile.mkdtemp(prefix="gradvet-ro-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def read_only_store(base: Path, in_wal: int, with_shm: bool = False) -> tuple[Path, list[RunSpec]]:
    """A store of 4 fake runs in base/ro/runs.db, the last `in_wal` of them only in its -wal
    (as kill -9 or a full disk leaves it), with or without the -shm file."""
    specs = load_grid(write(base / "g.toml", SMALL_GRID))
    (base / "g.toml").chmod(0o644)
    folder = base / "ro"
    folder.mkdir()
    folder.chmod(0o755)
    build = base / "build" / "runs.db"
    build.parent.mkdir()
    with Store(build) as store:
        for spec in specs[:len(specs) - in_wal]:
            store.save(fake_run(spec))
    if not in_wal:
        shutil.copyfile(build, folder / "runs.db")
        return folder / "runs.db", specs
    with Store(build) as store:
        store.con.execute("PRAGMA wal_autocheckpoint=0")
        for spec in specs[len(specs) - in_wal:]:
            store.save(fake_run(spec))
        _snapshot(build, folder / "runs.db", with_shm)
    return folder / "runs.db", specs


def _as_result(answer: dict) -> types.SimpleNamespace:
    return types.SimpleNamespace(**answer)


@pytest.mark.parametrize("how", ["media", "folder"])
@pytest.mark.parametrize("in_wal,with_shm,access", [(0, False, "immutable"), (2, False, "copy"), (2, True, "read-only")])
@pytest.mark.slow
def test_a_store_that_cannot_be_written_is_read_in_full(open_tmp, how, in_wal, with_shm, access):
    store, specs = read_only_store(open_tmp, in_wal, with_shm)
    copy = open_tmp / "expected"
    shutil.copytree(store.parent, copy)
    expected = rows(copy / "runs.db")  # plain SQLite on a copy: the store itself stays as it was left
    assert [k for k, _ in expected] == [s.key for s in specs]
    before = sorted(os.listdir(store.parent))
    report = open_tmp / "out" / "report.html"
    report.parent.mkdir(mode=0o777)
    report.parent.chmod(0o777)
    with_report = in_wal and not with_shm and how == "folder"  # the folder case runs for any user
    done = run_read_only(how, store.parent, [sys.executable, "-c", READ_ONLY_CHECKS, str(store), str(open_tmp / "g.toml"),
                                             str(store.parent / "new.db"), str(report) if with_report else "-"])
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert answers["json"]["exit_code"] == 0, answers["json"]
    assert [(r["key"], r["status"]) for r in json.loads(answers["json"]["stdout"])] == expected
    assert answers["table"]["exit_code"] == 0 and all(s.key in answers["table"]["stdout"] for s in specs)
    assert answers["access"] == access and answers["readonly"] is True
    assert answers["keys"] == [s.key for s in specs]
    assert answers["layers"] == [len(expected_layer_records(s)) for s in specs]
    assert "cannot write the store" in answers["write"]
    assert_user_error(_as_result(answers["sweep"]), f"cannot write the store {str(store)!r}", str(store.parent))
    assert_user_error(_as_result(answers["sweep_new"]), f"cannot create store {str(store.parent / 'new.db')!r}",
                      str(store.parent))
    if with_report:
        assert answers["report"]["exit_code"] == 0, answers["report"]
        page = report.read_text()
        assert all(s.key in page for s in specs)
    assert sorted(os.listdir(store.parent)) == before  # nothing written beside it


def test_a_disk_too_full_for_the_shm_file_still_lets_runs_read(tmp_path, monkeypatch):
    """Opening for writing fails as on a full disk (SQLite cannot make NAME-shm): readers fall back
    to a read-only connection; a writer says the disk is full."""
    store, specs = _tampered(tmp_path, [])

    def full(path):
        raise StoreWriteError(f"the disk holding {str(path.parent)!r} is full", "free space", disk_full=True)

    monkeypatch.setattr("gradvet.sweep.store.connect_for_writing", full)
    with Store(store, create=False) as db:
        assert db.readonly and db.access == "immutable" and [r["key"] for r in db.runs()] == [s.key for s in specs]
    listed = runner.invoke(app, ["runs", "--store", str(store), "--json"])
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 4, listed.output
    monkeypatch.setattr("gradvet.sweep.runner.DEFAULT_RUN", "sweep_fakes:fake_run")
    assert_user_error(runner.invoke(app, ["sweep", str(tmp_path / "g.toml"), "--store", str(store)]),
                      f"the disk holding {str(tmp_path)!r} is full")


def test_sweep_into_proc_is_one_sentence(tmp_path):
    grid = write(tmp_path / "g.toml", SMALL_GRID)
    assert_user_error(runner.invoke(app, ["sweep", str(grid), "--store", "/proc/x.db"]),
                      "cannot create store '/proc/x.db'")


# -- not a regular file ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_fifo_as_store_is_one_sentence_and_never_hangs(tmp_path):
    fifo = tmp_path / "runs.db"
    os.mkfifo(fifo)
    grid = write(tmp_path / "g.toml", SMALL_GRID)
    *ours, report = cli_batch(["runs", "--store", fifo], ["runs", "--store", fifo, "--json"],
                              ["sweep", grid, "--store", fifo], ["report", fifo, "--out", tmp_path / "r.html"])
    for result in ours:
        assert_user_error(result, f"store={str(fifo)!r} is not allowed", "FIFO", "not a regular file")
    assert_user_error(report, str(fifo))  # the report's own wording may differ; it must not hang
    with pytest.raises(GradvetError, match="FIFO"):
        Store(fifo, create=False)


@pytest.mark.parametrize("path,kind", [("DIR", "it is a directory"), ("/dev/null", "device")])
def test_other_non_regular_files_as_store(tmp_path, path, kind):
    target = str(tmp_path) if path == "DIR" else path
    assert_user_error(runner.invoke(app, ["runs", "--store", target]), repr(target), kind)
    grid = write(tmp_path / "g.toml", SMALL_GRID)
    assert_user_error(runner.invoke(app, ["sweep", str(grid), "--store", target]), repr(target), kind)


# -- tampered stores -----------------------------------------------------------------------------------------


def _tampered(tmp_path: Path, changes: list[tuple[str, str]]) -> tuple[Path, list[RunSpec]]:
    """A store of 4 fake runs, then (column, value) written over run i's column with plain sqlite3."""
    specs = load_grid(write(tmp_path / "g.toml", SMALL_GRID))
    store = tmp_path / "runs.db"
    with Store(store) as db:
        for spec in specs:
            db.save(fake_run(spec))
    con = sqlite3.connect(store)
    con.execute("PRAGMA ignore_check_constraints = ON")  # a status outside the four, too
    for spec, (column, value) in zip(specs, changes):
        con.execute(f"UPDATE runs SET {column} = ? WHERE key = ?", (value, spec.key))
    con.commit()
    con.close()
    return store, specs


DEEP = '{"a":' * 70 + "1" + "}" * 70  # valid JSON, 70 levels
VERY_DEEP = "[" * 100_000 + "]" * 100_000  # deeper than Python's recursion limit


@pytest.mark.parametrize("column", ["metrics", "history", "spec", "extra"])
def test_tampered_json_fields_read_back_as_unreadable_with_a_note(tmp_path, column):
    changes = [(column, "{not json"), (column, "[1, 2]"), (column, DEEP), (column, VERY_DEEP)]
    store, specs = _tampered(tmp_path, changes)
    reasons = ["not valid JSON", "a JSON list, not an object", "nested more than 64 levels deep",
               "nested more than 64 levels deep"]
    with Store(store, create=False) as db:
        listings = [db.runs(history=True), [db.get(s.key) for s in specs]]
    assert "extra" not in listings[0][0] and column in listings[1][0]  # runs() leaves out extra; get() has all
    for records in listings:
        for record, reason in zip(records, reasons):
            if column in record:
                assert record[column] is None and reason in record["unreadable"][column]
    listed = runner.invoke(app, ["runs", "--store", str(store), "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    assert [d["key"] for d in data] == [s.key for s in specs]
    shown = column in ("metrics", "spec")  # `gradvet runs` reads neither history nor extra
    assert all((column in d.get("unreadable", {})) == shown for d in data)
    table = runner.invoke(app, ["runs", "--store", str(store)])
    assert table.exit_code == 0, table.output
    assert ("4 of 4 runs have fields that cannot be read, shown as -" in table.stdout) == shown
    assert all(s.key in table.stdout for s in specs)


@pytest.mark.slow
def test_report_of_a_tampered_store(tmp_path):
    store, specs = _tampered(tmp_path, [("metrics", "{not json"), ("metrics", "[1]"), ("history", "[2]"),
                                        ("history", VERY_DEEP)])
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(store), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert all(s.key in out.read_text() for s in specs)


def test_odd_values_in_text_and_number_columns(tmp_path):
    store, specs = _tampered(tmp_path, [("label", b"\xff\xfe blob"), ("started", "yesterday"), ("error", 42),
                                        ("status", "weird")])
    with Store(store, create=False) as db:
        got = {r["key"]: r for r in db.runs()}
    assert got[specs[0].key]["label"] == b"\xff\xfe blob".decode("utf-8", "replace")
    assert got[specs[1].key]["started"] is None and got[specs[2].key]["error"] == "42"
    assert got[specs[3].key]["status"] == "weird"
    table = runner.invoke(app, ["runs", "--store", str(store)])
    assert table.exit_code == 0, table.output


@pytest.mark.parametrize("sql,what", [
    ("DROP TABLE layer_records", "has no table 'layer_records'"),
    ("ALTER TABLE runs DROP COLUMN metrics", "has no column runs.metrics"),
    ("ALTER TABLE runs RENAME TO old_runs", "has no table 'runs'"),
])
def test_a_missing_table_or_column_is_one_sentence(tmp_path, sql, what):
    store, _ = _tampered(tmp_path, [])
    con = sqlite3.connect(store)
    con.execute(sql)
    con.commit()
    con.close()
    for args in (["runs", "--store", str(store)], ["runs", "--store", str(store), "--json"],
                 ["report", str(store), "--out", str(tmp_path / "r.html")]):
        assert_user_error(runner.invoke(app, args), str(store), what)
    assert_user_error(runner.invoke(app, ["sweep", str(tmp_path / "g.toml"), "--store", str(store)]), what)


def test_a_damaged_file_is_one_sentence(tmp_path):
    store, _ = _tampered(tmp_path, [])
    data = bytearray(store.read_bytes())
    data[100:4096] = b"\x07" * (4096 - 100)  # the schema page, overwritten
    store.write_bytes(bytes(data))
    result = runner.invoke(app, ["runs", "--store", str(store)])
    assert_user_error(result, str(store))


@pytest.mark.slow
def test_a_1mb_label_is_cut_in_the_table_and_whole_in_the_json(tmp_path):
    label = "x" * 1_000_000
    store, specs = _tampered(tmp_path, [("label", label)])
    # it took 69 s before: the subprocess's timeout is the guard, nothing is timed
    table, listed = cli_batch(["runs", "--store", store], ["runs", "--store", store, "--json"])
    assert table.exit_code == 0, table.output
    assert "(1000000 characters)" in table.stdout and len(table.stdout) < 20_000
    assert json.loads(listed.stdout)[0]["label"] == label

