"""Sweeps on Ray: one task per run, the driver the single writer of the store, retries of dead workers.

The tests share one local Ray instance (2 CPUs, started once for this module). Skipped where the
ray extra is missing, unless GRADVET_REQUIRE_RAY=1 (set by .ci/run): CI installs the extra.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gradvet.base.errors import GradvetError
from gradvet.cli import app
from gradvet.spec import RunSpec
from gradvet.sweep import Store, ray_backend, run_sweep

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cli_helpers import assert_user_error  # noqa: E402
from sweep_fakes import end_group, expected_layer_records, gate_env, open_gate, tickets, wait_until  # noqa: E402

try:
    import ray
except ImportError:
    ray = None

REQUIRED = os.environ.get("GRADVET_REQUIRE_RAY") == "1"
needs_ray = pytest.mark.skipif(ray is None and not REQUIRED, reason="the ray extra is not installed")
runner = CliRunner()
TINY = "[base]\ndata = \"digits\"\ndepth = 2\nwidth = 8\nsteps = {steps}\neval_every = 0\n[grid]\nseed = {seeds}\n"


@pytest.fixture(scope="module")
def ray_installed():
    assert ray is not None, "GRADVET_REQUIRE_RAY=1 but ray is not installed"
    return ray


@pytest.fixture(scope="module")
def markers(ray_installed, tmp_path_factory):
    """A local Ray instance for this module's tests; returns the workers' marker folder."""
    folder = tmp_path_factory.mktemp("ray-markers")
    env = {"PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]), "GRADVET_TEST_MARKERS": str(folder)}
    sigterm, auth_mode = signal.getsignal(signal.SIGTERM), os.environ.get("RAY_AUTH_MODE")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, runtime_env={"env_vars": env})
    yield folder
    ray.shutdown()
    signal.signal(signal.SIGTERM, sigterm)  # ray.init changed both; later tests get them back
    if auth_mode is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = auth_mode


def attempts(folder: Path, kind: str, spec: RunSpec) -> int:
    return len(list(folder.glob(f"{kind}-{spec.key}-*")))


def check_store(path: Path, specs: list[RunSpec]) -> list[dict]:
    """The store is intact and holds exactly one row per spec; returns the rows."""
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        keys = [k for (k,) in con.execute("SELECT key FROM runs")]
    finally:
        con.close()
    assert sorted(keys) == sorted(s.key for s in specs)
    with Store(path, create=False) as db:
        assert db.count("running") == 0
        return db.runs(history=True)


# -- without Ray -------------------------------------------------------------------------------------------


def test_missing_extra_is_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(GradvetError) as err:
        run_sweep([RunSpec(steps=3)], tmp_path / "runs.db", backend="ray")
    assert str(err.value) == "the Ray backend needs the ray extra: pip install 'gradvet[ray]'"
    assert not (tmp_path / "runs.db").exists()  # checked before anything is written
    grid = tmp_path / "g.toml"
    grid.write_text(TINY.format(steps=3, seeds="[0]"))
    result = runner.invoke(app, ["sweep", str(grid), "--store", str(tmp_path / "runs.db"), "--backend", "ray"])
    assert_user_error(result, "pip install 'gradvet[ray]'")


def test_backend_user_errors(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text(TINY.format(steps=3, seeds="[0]"))
    store = str(tmp_path / "runs.db")
    assert_user_error(runner.invoke(app, ["sweep", str(grid), "--store", store, "--backend", "rya"]),
                      "'rya'", "'ray'", "allowed: local, ray")
    assert_user_error(runner.invoke(app, ["sweep", str(grid), "--store", store, "--backend", "ray", "--workers", "2"]),
                      "--workers")
    assert_user_error(runner.invoke(app, ["sweep", str(grid), "--store", store, "--address", "host:6379"]),
                      "--address host:6379", "--backend ray")
    with pytest.raises(GradvetError, match="'Ray'.*did you mean 'ray'"):
        run_sweep([RunSpec(steps=3)], store, backend="Ray")
    with pytest.raises(GradvetError, match="address="):
        run_sweep([RunSpec(steps=3)], store, address="host:6379")
    assert not Path(store).exists()


@needs_ray
def test_an_unreachable_address_is_one_line_and_writes_nothing(ray_installed, tmp_path, monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(GradvetError, match="cannot reach the Ray cluster at '127.0.0.1:1'"):
        run_sweep([RunSpec(steps=3)], tmp_path / "runs.db", backend="ray", address="127.0.0.1:1")
    with pytest.raises(GradvetError, match="is not HOST:PORT"):
        run_sweep([RunSpec(steps=3)], tmp_path / "runs.db", backend="ray", address="headnode")
    assert not (tmp_path / "runs.db").exists()


# -- on a local Ray instance -------------------------------------------------------------------------------


def _without_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("wall_time", "step_time")}


@needs_ray
@pytest.mark.slow
def test_ray_sweep_stores_each_run_once_equal_to_local_and_resumes(markers, tmp_path):
    specs = [RunSpec(data="digits", depth=2, width=8, steps=20, eval_every=0, seed=s) for s in range(4)]
    local = run_sweep(specs, tmp_path / "local.db", batched="off")  # one by one, as the ray tasks
    assert (local.ran, local.done) == (4, 4), local
    summary = run_sweep(specs, tmp_path / "ray.db", backend="ray")
    assert ray.is_initialized()  # the caller's connection is used and left open
    assert (summary.total, summary.skipped, summary.ran, summary.done) == (4, 0, 4, 4), summary
    rows = {r["key"]: r for r in check_store(tmp_path / "ray.db", specs)}
    with Store(tmp_path / "local.db") as db_local, Store(tmp_path / "ray.db") as db_ray:
        for expected in db_local.runs(history=True):
            got = rows[expected["key"]]
            assert got["status"] == expected["status"] == "done"
            assert got["history"] == expected["history"]  # same seeds, one thread each: identical losses
            assert len(got["history"]["loss"]) == 20
            assert _without_timing(got["metrics"]) == _without_timing(expected["metrics"])
            assert db_ray.get(got["key"])["extra"] == db_local.get(got["key"])["extra"]
            assert db_ray.layer_records(got["key"]) == db_local.layer_records(got["key"])
    again = run_sweep(specs, tmp_path / "ray.db", backend="ray")
    assert (again.skipped, again.ran) == (4, 0), again


@needs_ray
def test_cli_sweep_on_ray_prints_the_summary(markers, tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(TINY.format(steps=5, seeds="[0, 1]"))
    store = tmp_path / "runs.db"
    result = runner.invoke(app, ["sweep", str(grid), "--store", str(store), "--backend", "ray"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"2 runs: 0 already done, 2 ran (2 done, 0 diverged, 0 failed); store {store}"
    again = runner.invoke(app, ["sweep", str(grid), "--store", str(store), "--backend", "ray"])
    assert again.stdout.strip().startswith("2 runs: 2 already done, 0 ran")


@needs_ray
def test_tasks_run_torch_on_one_thread(markers, tmp_path):
    specs = [RunSpec(steps=3, seed=s) for s in (20, 21)]
    assert run_sweep(specs, tmp_path / "runs.db", run_fn="ray_fakes:report_threads", backend="ray").done == 2
    assert [r["metrics"]["torch_threads"] for r in check_store(tmp_path / "runs.db", specs)] == [1, 1]


@needs_ray
@pytest.mark.slow
def test_a_killed_worker_is_retried_and_the_run_lands_once(markers, tmp_path):
    specs = [RunSpec(steps=5, seed=s) for s in range(2)]
    summary = run_sweep(specs, tmp_path / "runs.db", run_fn="ray_fakes:die_once", backend="ray")
    assert (summary.ran, summary.done, summary.failed) == (2, 2, 0), summary
    for spec in specs:
        assert attempts(markers, "die-once", spec) == 2  # killed once, then run again
    rows = check_store(tmp_path / "runs.db", specs)
    assert {r["status"] for r in rows} == {"done"}
    with Store(tmp_path / "runs.db") as db:
        for spec in specs:
            assert db.layer_records(spec.key) == expected_layer_records(spec)


@needs_ray
def test_a_python_error_is_stored_as_failed_and_not_retried(markers, tmp_path):
    specs = [RunSpec(steps=3, seed=7), RunSpec(steps=3, seed=8)]
    summary = run_sweep(specs, tmp_path / "runs.db", run_fn="ray_fakes:raise_error", backend="ray")
    assert (summary.ran, summary.failed) == (2, 2), summary
    rows = check_store(tmp_path / "runs.db", specs)
    assert sorted(r["error"] for r in rows) == ["ValueError: bad run at seed 7", "ValueError: bad run at seed 8"]
    assert [attempts(markers, "raise", s) for s in specs] == [1, 1]


@needs_ray
def test_a_worker_that_always_dies_is_stored_as_failed_after_the_retries(markers, tmp_path, monkeypatch):
    monkeypatch.setattr(ray_backend, "MAX_RETRIES", 1)
    spec = RunSpec(steps=3, seed=11)
    summary = run_sweep([spec], tmp_path / "runs.db", run_fn="ray_fakes:always_die", backend="ray")
    assert (summary.ran, summary.failed) == (1, 1), summary
    (row,) = check_store(tmp_path / "runs.db", [spec])
    assert row["status"] == "failed" and row["error"].startswith("WorkerCrashedError"), row["error"]
    assert "\n" not in row["error"]
    assert attempts(markers, "always-die", spec) == 2  # the first try and one retry


@needs_ray
@pytest.mark.slow
def test_cli_starts_and_stops_its_own_ray_instance(ray_installed, tmp_path):
    """The user's path: a fresh process starts a local instance whose workers import the installed gradvet."""
    grid = tmp_path / "grid.toml"
    grid.write_text(TINY.format(steps=5, seeds="[0, 1, 2]"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    proc = subprocess.run([sys.executable, "-m", "gradvet.cli", "sweep", str(grid), "--store", "runs.db",
                           "--backend", "ray"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3 runs: 0 already done, 3 ran (3 done, 0 diverged, 0 failed); store runs.db"
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr
    check_store(tmp_path / "runs.db", [RunSpec(data="digits", depth=2, width=8, steps=5, eval_every=0, seed=s)
                                       for s in range(3)])


CTRL_C_DRIVER = """
import sys
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, even where the tests run with SIGINT ignored (a background job)
import gradvet.sweep.runner
from gradvet.cli import main
gradvet.sweep.runner.DEFAULT_RUN = "sweep_fakes:fake_run"
sys.argv = ["gradvet", "sweep", *sys.argv[1:]]
main()
"""


@needs_ray
@pytest.mark.slow
def test_ctrl_c_cancels_the_ray_tasks_and_keeps_finished_runs(ray_installed, tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text("[base]\nsteps = 3\n[grid]\nseed = [0, 1, 2, 3, 4, 5, 6, 7]\n")
    store, gate = tmp_path / "runs.db", tmp_path / "gate"
    # the first run goes through, the others wait at the gate (sweep_fakes): the sweep is surely mid-way
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]), GRADVET_TEST_MARKERS=str(tmp_path),
               **gate_env(gate, free=1))
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_DRIVER, str(grid), "--store", str(store), "--backend", "ray"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)

    def done() -> int:
        if not store.exists():
            return 0
        with Store(store, create=False) as db:
            return db.count("done")

    try:
        wait_until(lambda: proc.poll() is not None or (done() > 0 and tickets(gate) > 1),
                   "a saved run and a run waiting at the gate", seconds=120)  # Ray's start-up included
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the driver and the Ray processes it started
        out, err = proc.communicate(timeout=60)
    finally:
        open_gate(gate)  # nothing left waiting, whatever happened
        end_group(proc)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0], err
    with Store(store, create=False) as db:
        assert 1 <= db.count("done") < 8 and db.count("running") == 0
        assert db.count() == db.count("done")
