"""Sweeps: the SQLite store, grid files, resuming, kill -9 safety, and the `sweep` / `runs` commands."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gradvet.base.errors import GradvetError
from gradvet.cli import app
from gradvet.spec import RunSpec
from gradvet.sweep import Store, SweepSummary, load_grid, run_sweep

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # worker processes inherit sys.path, so they find sweep_fakes too
    sys.path.insert(0, str(HERE))

import sweep_fakes  # noqa: E402
from cli_helpers import assert_user_error  # noqa: E402
from sweep_fakes import FakeRun, end_group, expected_layer_records, fake_run, gate_env, open_gate, tickets, wait_until  # noqa: E402

runner = CliRunner()


def same(a, b) -> bool:
    """Equality in which NaN equals NaN (for metrics and histories)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- store ---------------------------------------------------------------------------------------------


def test_store_round_trip_keeps_nan_inf_history_and_layer_records(tmp_path):
    spec = RunSpec(steps=4, lr=2.0, seed=1)
    run = fake_run(spec)
    run.layer_records.append((3, "layer0", "dead_fraction", math.nan))
    with Store(tmp_path / "runs.db") as store:
        store.mark_running(spec)
        assert store.get(spec.key)["status"] == "running"
        assert store.done_keys() == set()
        store.save(run)
    with Store(tmp_path / "runs.db") as store:  # reopened: it is on disk
        got = store.get(spec.key)
        assert got["status"] == "diverged" and got["error"] is None
        assert RunSpec.from_dict(got["spec"]) == spec and got["label"] == spec.label()
        assert math.isnan(got["metrics"]["final_loss"]) and got["metrics"]["test_loss"] == math.inf
        assert same(got["metrics"], run.metrics) and same(got["history"], run.history)
        assert math.isnan(got["history"]["loss"][-1]) and got["history"]["grad_norm"][0] == math.inf
        assert got["extra"] == {"through_time": {"init": [1.0, 0.5]}}
        assert same(store.layer_records(spec.key), run.layer_records)
        assert store.layer_records(spec.key, "dead_fraction")[0][:3] == (3, "layer0", "dead_fraction")
        assert got["started"] <= got["finished"]
        listed = store.runs()
        assert [r["key"] for r in listed] == [spec.key] and "history" not in listed[0]
        assert same(store.runs(history=True)[0]["history"], run.history)
        assert store.runs("done") == [] and store.count() == 1 and store.count("diverged") == 1
        assert store.done_keys() == {spec.key}
        with pytest.raises(GradvetError, match="'finised'.*'finished'|'finised'"):
            store.runs("finised")


def test_save_is_all_or_nothing(tmp_path):
    good, bad = RunSpec(seed=1, steps=3), RunSpec(seed=2, steps=3)
    with Store(tmp_path / "runs.db") as store:
        store.save(fake_run(good))
        store.mark_running(bad)
        broken = fake_run(bad)
        broken.layer_records.append((None, "layer0", "grad_norm", 1.0))  # NOT NULL violated, after the run row
        with pytest.raises(sqlite3.IntegrityError):
            store.save(broken)
        row = store.get(bad.key)
        assert row["status"] == "running" and row["metrics"] is None and row["history"] is None
        assert store.layer_records(bad.key) == []
        assert store.get(good.key)["status"] == "done"
        assert len(store.layer_records(good.key)) == len(expected_layer_records(good))
        with pytest.raises(ValueError, match="'odd'"):
            store.save(FakeRun(spec=bad, status="odd"))
        assert store.get(bad.key)["status"] == "running"
        store.save(fake_run(bad))  # the connection is still usable
        assert store.done_keys() == {good.key, bad.key}


def test_saving_again_replaces_the_run_and_its_layer_records(tmp_path):
    spec = RunSpec(seed=3, steps=3)
    with Store(tmp_path / "runs.db") as store:
        store.save(fake_run(spec))
        store.save(fake_run(spec))
        assert store.count() == 1
        assert store.layer_records(spec.key) == expected_layer_records(spec)
        store.mark_running(spec)  # a finished run is not demoted
        assert store.get(spec.key)["status"] == "done"
        store.save_failure(spec, "RuntimeError: later")
        assert store.get(spec.key)["error"] == "RuntimeError: later" and store.layer_records(spec.key) == []


def _foreign_files(tmp_path: Path) -> list[Path]:
    plain = tmp_path / "other.db"
    con = sqlite3.connect(plain)
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.close()
    wal = tmp_path / "other-wal.db"
    con = sqlite3.connect(wal)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE meta (name, value)")
    con.execute("INSERT INTO meta VALUES ('schema', 'something-else')")
    con.commit()
    con.close()
    text = write(tmp_path / "notes.txt", "these are notes, not a database\n")
    empty = write(tmp_path / "empty.db", "")
    return [plain, wal, text, empty]


def test_foreign_files_are_refused_and_left_untouched(tmp_path):
    for path in _foreign_files(tmp_path):
        before = path.read_bytes()
        listing = sorted(os.listdir(tmp_path))
        with pytest.raises(GradvetError, match="is not a gradvet store") as info:
            Store(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
        assert path.read_bytes() == before
        assert sorted(os.listdir(tmp_path)) == listing  # no -wal / -shm / journal left beside it
    with pytest.raises(GradvetError, match="is a directory"):
        Store(tmp_path)


def test_missing_store_is_created_only_when_asked(tmp_path):
    with pytest.raises(GradvetError, match="does not exist"):
        Store(tmp_path / "none.db", create=False)
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(GradvetError, match="does not exist"):
        Store(tmp_path / "no-such-dir" / "runs.db")
    Store(tmp_path / "new.db").close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db"]  # no temporary file left
    with Store(tmp_path / "new.db", create=False) as store:
        assert store.count() == 0
        assert store.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


# -- grid ----------------------------------------------------------------------------------------------

GRID = """
[base]
steps = 20
norm = "none"
clip = "none"

[grid]
activation = ["relu", "tanh"]
lr = [1, 0.1, 1.0]
depth = [2, 8]
"""


def test_grid_is_the_product_in_file_order_without_duplicates(tmp_path):
    specs = load_grid(write(tmp_path / "g.toml", GRID))
    # lr = 1 and lr = 1.0 are the same run: 2 * 2 * 2 distinct points
    assert [(s.activation, s.lr, s.depth) for s in specs] == [
        ("relu", 1.0, 2), ("relu", 1.0, 8), ("relu", 0.1, 2), ("relu", 0.1, 8),
        ("tanh", 1.0, 2), ("tanh", 1.0, 8), ("tanh", 0.1, 2), ("tanh", 0.1, 8),
    ]
    assert len({s.key for s in specs}) == 8
    assert all(s.steps == 20 and s.norm is None and s.clip is None for s in specs)
    assert specs[0] == RunSpec(activation="relu", lr=1.0, depth=2, steps=20)


def test_grid_none_values_and_table_values(tmp_path):
    text = """
    [base]
    model = "rnn"
    activation = "leaky_relu"
    activation_params = {negative_slope = 0.2}
    [grid]
    norm = ["none", "layer"]
    tbptt = ["none", 5]
    clip_value = ["None", 0.5]
    """
    specs = load_grid(write(tmp_path / "g.toml", text))
    assert len(specs) == 8
    assert [(s.norm, s.tbptt, s.clip_value) for s in specs[:3]] == [(None, None, None), (None, None, 0.5), (None, 5, None)]
    assert specs[0].activation_params == (("negative_slope", 0.2),)
    only_base = load_grid(write(tmp_path / "b.toml", "[base]\nsteps = 3\n"))
    assert only_base == [RunSpec(steps=3)]


@pytest.mark.parametrize("text,fragments", [
    ("[base]\nsteps = \n", ("not valid TOML", "line 2")),
    ("[bsae]\nsteps = 3\n", ("[bsae]", "'base'")),
    ("steps = 3\n", ("'steps'", "[base]")),
    ("[base]\ndetph = 3\n", ("'detph'", "'depth'", "[base]")),
    ("[grid]\nactivaton = ['relu']\n", ("'activaton'", "'activation'", "[grid]")),
    ("[grid]\nlr = 0.1\n", ("'lr'", "must be a list")),
    ("[grid]\nlr = []\n", ("'lr'", "empty list")),
    ("[base]\nlr = 0.1\n[grid]\nlr = [0.2]\n", ("'lr'", "both [base] and [grid]")),
    ("[grid]\nlr = [0.1, -1]\ndepth = [2]\n", ("lr=-1", "grid point 2 of 2", "lr=-1.0, depth=2")),
    ("[grid]\ndepth = ['none']\n", ("depth='none'",)),
    ("[base]\noptimizer = 'adma'\n", ("unknown optimizer 'adma' (did you mean 'adam'?)", "[base]")),
    ("base = 3\n", ("'base'", "must be a table")),
])
def test_grid_errors_are_one_sentence_naming_the_culprit(tmp_path, text, fragments):
    path = write(tmp_path / "g.toml", text)
    with pytest.raises(GradvetError) as info:
        load_grid(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_grid_file_problems(tmp_path):
    with pytest.raises(GradvetError, match="does not exist"):
        load_grid(tmp_path / "missing.toml")
    with pytest.raises(GradvetError, match="is a directory"):
        load_grid(tmp_path)
    (tmp_path / "latin1.toml").write_bytes(b"[base]\ndata = '\xe9'\n")
    with pytest.raises(GradvetError, match="not UTF-8"):
        load_grid(tmp_path / "latin1.toml")


# -- running and resuming --------------------------------------------------------------------------------


def test_sweep_runs_then_resume_skips_everything(tmp_path):
    specs = [RunSpec(steps=3, seed=s, lr=lr) for lr in (0.1, 1.0) for s in (0, 1)]
    store = tmp_path / "runs.db"
    first = run_sweep(specs + specs[:1], store, run_fn=fake_run)  # a repeated spec runs once
    assert (first.total, first.skipped, first.ran, first.done, first.diverged, first.failed) == (4, 0, 4, 2, 2, 0)
    assert first.line() == f"4 runs: 0 already done, 4 ran (2 done, 2 diverged, 0 failed); store {store}"
    again = run_sweep(specs, store, run_fn=fake_run)
    assert (again.total, again.skipped, again.ran) == (4, 4, 0)
    with Store(store) as db:
        assert [r["key"] for r in db.runs()] == [s.key for s in specs]


def test_resume_reruns_stale_running_and_failed_rows(tmp_path):
    done, stale, failed = (RunSpec(steps=3, seed=s) for s in (0, 1, 2))
    store = tmp_path / "runs.db"
    with Store(store) as db:
        db.save(fake_run(done))
        db.mark_running(stale)  # as left by kill -9
        db.save_failure(failed, "RuntimeError: out of memory")
    summary = run_sweep([done, stale, failed], store, run_fn=fake_run)
    assert (summary.skipped, summary.ran, summary.done) == (1, 2, 2)
    with Store(store) as db:
        assert {r["status"] for r in db.runs()} == {"done"} and db.count() == 3
        assert db.get(failed.key)["error"] is None


def test_failures_are_stored_and_the_sweep_goes_on(tmp_path):
    specs = [RunSpec(steps=3, data="boom"), RunSpec(steps=3, data="odd"), RunSpec(steps=3)]
    summary = run_sweep(specs, tmp_path / "runs.db", run_fn=fake_run)
    assert (summary.ran, summary.done, summary.failed) == (3, 1, 2)
    with Store(tmp_path / "runs.db") as db:
        errors = [r["error"] for r in db.runs("failed")]
        assert errors[0] == "RuntimeError: boom at seed 0"
        assert errors[1].startswith("ValueError: run status 'odd'")
        assert db.layer_records(specs[1].key) == []


def test_parallel_sweep_with_a_failing_run(tmp_path):
    specs = [RunSpec(steps=3, seed=s) for s in range(4)] + [RunSpec(steps=3, data="boom")]
    summary = run_sweep(specs, tmp_path / "runs.db", workers=2, run_fn=fake_run)
    assert (summary.ran, summary.done, summary.failed) == (5, 4, 1)
    with Store(tmp_path / "runs.db") as db:
        assert db.get(specs[-1].key)["error"] == "RuntimeError: boom at seed 0"
        assert db.layer_records(specs[0].key) == expected_layer_records(specs[0])


def test_bad_sweep_arguments(tmp_path):
    spec = RunSpec(steps=3)
    with pytest.raises(GradvetError, match="workers=0"):
        run_sweep([spec], tmp_path / "a.db", workers=0, run_fn=fake_run)
    with pytest.raises(GradvetError, match="module-level"):
        run_sweep([spec], tmp_path / "a.db", workers=2, run_fn=sweep_fakes.nested_not_importable())
    # workers=1 runs a local function in this process
    assert run_sweep([spec], tmp_path / "a.db", run_fn=sweep_fakes.nested_not_importable()).done == 1
    with pytest.raises(GradvetError, match="is not a gradvet store"):
        run_sweep([spec], write(tmp_path / "x.txt", "hi"), run_fn=fake_run)
    assert isinstance(run_sweep([], tmp_path / "b.db", run_fn=fake_run), SweepSummary)


# -- kill -9 ---------------------------------------------------------------------------------------------

DRIVER = """
import sys
from gradvet.sweep import load_grid, run_sweep
from sweep_fakes import fake_run
specs = load_grid(sys.argv[1])
print("ready", flush=True)
print(run_sweep(specs, sys.argv[2], workers=int(sys.argv[3]), run_fn=fake_run), flush=True)
"""

CRASH_GRID = """
[base]
steps = 5
[grid]
lr = [0.1, 0.5]
seed = [0, 1, 2, 3, 4, 5, 6, 7]
"""


def _finished(store: Path) -> int:
    if not store.exists():
        return 0
    with Store(store, create=False) as db:
        return db.count("done")


def _start_driver(grid: Path, store: Path, workers: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(grid), str(store), str(workers)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _kill_and_resume(tmp_path: Path, workers: int, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    grid, store = write(tmp_path / "grid.toml", CRASH_GRID), tmp_path / "runs.db"
    specs = load_grid(grid)
    killed = 0
    for _ in range(kills):
        before = _finished(store)
        proc = _start_driver(grid, store, workers)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        deadline = time.monotonic() + 30
        while proc.poll() is None and _finished(store) == before and time.monotonic() < deadline:
            time.sleep(0.03)  # the sweep is under way once a run has been saved
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: main process, fork server, workers
            killed += 1
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert killed >= 1
    last = _start_driver(grid, store, workers)
    out, err = last.communicate(timeout=60)
    assert last.returncode == 0, err
    assert "16 runs:" in out and "0 failed" in out
    with Store(store, create=False) as db:
        rows = db.runs()
        assert sorted(r["key"] for r in rows) == sorted(s.key for s in specs)  # each grid point exactly once
        assert {r["status"] for r in rows} == {"done"} and db.count("running") == 0
        for spec in specs:
            assert db.layer_records(spec.key) == expected_layer_records(spec)
    con = sqlite3.connect(store)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        assert con.execute("SELECT COUNT(*) FROM layer_records").fetchone()[0] == sum(
            len(expected_layer_records(s)) for s in specs)
    finally:
        con.close()


@pytest.mark.slow
def test_kill_9_then_resume_serial(tmp_path):
    _kill_and_resume(tmp_path, workers=1, kills=4, seed=1)


@pytest.mark.slow
def test_kill_9_then_resume_two_workers(tmp_path):
    _kill_and_resume(tmp_path, workers=2, kills=3, seed=2)


CLI_DRIVER = """
import sys
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, even where the tests run with SIGINT ignored (a background job)
import gradvet.sweep.runner
from gradvet.cli import main
gradvet.sweep.runner.DEFAULT_RUN = "sweep_fakes:fake_run"
print("ready", flush=True)
sys.argv = ["gradvet", "sweep", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_ctrl_c_stops_the_sweep_with_status_130_and_keeps_finished_runs(tmp_path):
    grid, store = write(tmp_path / "grid.toml", CRASH_GRID), tmp_path / "runs.db"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    gate = tmp_path / "gate"  # the first run goes through, the others wait there: the sweep is surely mid-way
    env.update(gate_env(gate, free=1))
    proc = subprocess.Popen([sys.executable, "-c", CLI_DRIVER, str(grid), "--store", str(store), "--workers", "2"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        wait_until(lambda: proc.poll() is not None or (_finished(store) > 0 and tickets(gate) > 1),
                   "a saved run and a run waiting at the gate")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        out, err = proc.communicate(timeout=60)
    finally:
        open_gate(gate)  # nothing left waiting, whatever happened
        end_group(proc)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0] and "resume" in lines[0], err
    with Store(store, create=False) as db:
        assert 1 <= db.count("done") < 16 and db.count("running") == 0


# -- command line ----------------------------------------------------------------------------------------


@pytest.fixture
def fake_default_run(monkeypatch):
    """`gradvet sweep` trains with the fake run function."""
    monkeypatch.setattr("gradvet.sweep.runner.DEFAULT_RUN", "sweep_fakes:fake_run")


def test_cli_sweep_then_runs(tmp_path, fake_default_run):
    grid = write(tmp_path / "g.toml", "[base]\nsteps = 3\n[grid]\nlr = [0.1, 2.0]\nseed = [0, 1]\n")
    store = tmp_path / "runs.db"
    result = runner.invoke(app, ["sweep", str(grid), "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"4 runs: 0 already done, 4 ran (2 done, 2 diverged, 0 failed); store {store}"
    again = runner.invoke(app, ["sweep", str(grid), "--store", str(store)])
    assert "4 already done, 0 ran" in again.stdout
    listed = runner.invoke(app, ["runs", "--store", str(store), "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    assert [d["status"] for d in data] == ["done", "done", "diverged", "diverged"]
    assert data[2]["metrics"]["final_loss"] == "nan" and data[2]["metrics"]["test_loss"] == "inf"
    assert data[0]["spec"]["lr"] == 0.1 and data[0]["label"].endswith("seed=0")
    diverged = json.loads(runner.invoke(app, ["runs", "--store", str(store), "--json", "--status", "diverged"]).stdout)
    assert len(diverged) == 2
    table = runner.invoke(app, ["runs", "--store", str(store)])
    assert table.exit_code == 0 and data[0]["key"] in table.stdout and "diverged" in table.stdout


def test_cli_user_errors_exit_2_with_one_line(tmp_path, fake_default_run):
    bad = write(tmp_path / "bad.toml", "[grid]\nactivaton = ['relu']\n")
    store = tmp_path / "runs.db"
    assert_user_error(runner.invoke(app, ["sweep", str(bad), "--store", str(store)]), "'activaton'", "'activation'")
    good = write(tmp_path / "good.toml", "[base]\nsteps = 3\n")
    assert_user_error(runner.invoke(app, ["sweep", str(good), "--store", str(store), "--workers", "0"]), "--workers=0")
    text = write(tmp_path / "notes.txt", "not a store")
    assert_user_error(runner.invoke(app, ["sweep", str(good), "--store", str(text)]), "is not a gradvet store")
    assert text.read_text() == "not a store"
    assert not store.exists()
    assert_user_error(runner.invoke(app, ["runs", "--store", str(store)]), str(store), "does not exist")
    assert not store.exists()
    assert_user_error(runner.invoke(app, ["runs", "--store", str(text)]), "is not a gradvet store")
    Store(store).close()
    assert_user_error(runner.invoke(app, ["runs", "--store", str(store), "--status", "don"]), "'don'", "'done'")


# -- the real training function ----------------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("gradvet.train") is None, reason="gradvet.train not available")
def test_sweep_with_the_real_training_function(tmp_path):
    spec = RunSpec(steps=5, depth=2, width=8, eval_every=0)
    summary = run_sweep([spec], tmp_path / "runs.db")
    assert summary.ran == 1 and summary.failed == 0, summary
    with Store(tmp_path / "runs.db") as db:
        row = db.get(spec.key)
        assert row["status"] in ("done", "diverged")
        assert row["metrics"]["steps_done"] == 5 and len(row["history"]["loss"]) == 5
