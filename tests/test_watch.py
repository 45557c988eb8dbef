"""`gradvet watch STORE`: one frame (`--once`) shows each run's progress, loss, per-layer gradient profile
and alerts as the store holds them, in flight or finished; it reads only (a version-1 store stays as it
was, a writer is never blocked, an uncommitted write is not shown); Ctrl-C ends the live view with
status 0; a bad store or interval is one sentence, exit 2.

Oracles: the rows written with sqlite3 and the store's own writers, read back with sqlite3; the
sparkline's tallest and lowest blocks placed at the layers with the largest and smallest norm.
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cli_helpers import assert_user_error
from old_stores import v1_store
from typer.testing import CliRunner

from gradvet.cli import app
from gradvet.report.watch_view import BLOCKS
from gradvet.spec import RunSpec
from gradvet.sweep import Store
from gradvet.sweep.live import LiveWriter

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


class Finished:
    """A finished run as `Store.save` takes it: a monitored run that diverged at step 7 with two alerts."""

    def __init__(self, spec: RunSpec):
        self.spec, self.status = spec, "diverged"
        self.history = {"step": list(range(1, 8)), "loss": [2.3, 2.2, 2.4, 3.0, 9.0, 80.0, math.nan]}
        self.metrics = {"steps_done": 6, "final_loss": math.nan, "diverged_at": 7}
        self.layer_records = [(step, layer, "weight_grad_norm", value * 10**step)
                              for step in range(7) for layer, value in (("a", 0.5), ("b", 4.0), ("c", 0.01))]
        self.alerts = [alert(3, "exploding", "b"), alert(6, "nonfinite", None, math.nan)]


def alert(step: int, kind: str, layer: str | None, value: float = 2.0) -> dict:
    return {"step": step, "kind": kind, "layer": layer, "message": f"{kind} seen at step {step}.",
            "remedy": "Clip the gradient norm at 1.5.", "detector": kind, "since": None, "value": value}


@pytest.fixture
def store(tmp_path):
    """A store with a finished monitored run, a run in flight (a heartbeat and an alert written live),
    a failed one and a run not monitored."""
    path = tmp_path / "runs.db"
    done, flying, failed = RunSpec(lr=0.9, steps=50, monitor=True), RunSpec(lr=0.2, steps=200, monitor=True), \
        RunSpec(lr=0.3, steps=10)
    with Store(path) as db:
        db.mark_running(done)
        db.save(Finished(done))
        db.mark_running(failed)
        db.save_failure(failed, "RuntimeError: boom")
        db.mark_running(flying)
    with LiveWriter(path).for_run(flying.key) as beat:
        beat({"step": 73, "steps": 200, "loss": 0.4321, "grad_norm": 3.0,
              "layers": {"hidden.0.linear": 0.002, "hidden.1.linear": 0.5, "out": 40.0},
              "alerts": [alert(70, "spike", "out", 31.0)]})
    return {"path": path, "done": done, "flying": flying, "failed": failed}


def frame(path: Path) -> str:
    result = runner.invoke(app, ["watch", str(path), "--once"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.stdout


def row_of(text: str, key: str) -> str:
    (line,) = [line for line in text.splitlines() if line.strip().startswith(key[:8])]
    return line


def test_one_frame_shows_progress_loss_profile_and_alerts_of_each_run(store):
    text = frame(store["path"])
    con = sqlite3.connect(store["path"])
    step, steps, loss = con.execute("SELECT step, steps, loss FROM progress WHERE run_key = ?",
                                    (store["flying"].key,)).fetchone()
    con.close()
    flying = row_of(text, store["flying"].key)
    assert "running" in flying and f"{step}/{steps}" in flying and f"{loss:.4g}" in flying
    assert "1: spike at 70" in flying
    done = row_of(text, store["done"].key)
    assert "diverged" in done and "6/50" in done and "nan" in done and "2: nonfinite at 6" in done
    failed = row_of(text, store["failed"].key)
    assert "failed" in failed and failed.rstrip().endswith("ago")
    assert "3 runs (1 running, 1 diverged, 1 failed); 3 alerts" in text
    # the latest alerts, their messages and remedies in full
    for message in ("spike seen at step 70.", "exploding seen at step 3.", "nonfinite seen at step 6."):
        assert message in text
    assert text.index("exploding seen") < text.index("nonfinite seen")  # in the order they were written


@pytest.mark.parametrize("run, layers", [
    ("flying", {"hidden.0.linear": 0.002, "hidden.1.linear": 0.5, "out": 40.0}),  # the heartbeat's
    ("done", {"a": 0.5e6, "b": 4.0e6, "c": 0.01e6}),  # the probe's weight_grad_norm at the last recorded step
])
def test_the_profile_is_a_sparkline_of_the_layer_norms_in_model_order(store, run, layers):
    line = row_of(frame(store["path"]), store[run].key)
    spark = next(word for word in line.split() if set(word) <= set(BLOCKS) and len(word) == len(layers))
    norms = list(layers.values())
    assert spark[norms.index(max(norms))] == BLOCKS[-1] and spark[norms.index(min(norms))] == BLOCKS[0]
    shown = next(word for word in line.split() if ".." in word and word.count("..") == 1)
    low, high = (float(part) for part in shown.split(".."))  # the range beside it, to 2 significant digits
    assert low == pytest.approx(min(norms), rel=0.05) and high == pytest.approx(max(norms), rel=0.05)


def test_a_nonfinite_norm_is_marked(tmp_path):
    path = tmp_path / "r.db"
    spec = RunSpec(monitor=True)
    with Store(path) as db:
        db.mark_running(spec)
    with LiveWriter(path).for_run(spec.key) as beat:
        beat({"step": 5, "steps": 500, "loss": 1.0, "grad_norm": math.inf,
              "layers": {"a": 1.0, "b": math.inf, "c": 0.0}, "alerts": []})
    line = row_of(frame(path), spec.key)
    assert "▁!·" in line



def test_watch_reads_only_an_old_store_stays_as_it_was(tmp_path):
    path = tmp_path / "old.db"
    v1_store(path, wal=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    text = frame(path)
    assert "1 run (1 done); 0 alerts" in text
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_reader_never_blocks_the_writer_and_sees_only_what_was_committed(store):
    path = store["path"]
    reader = Store(path, create=False, read_only=True)  # as watch opens it
    try:
        reader.con.execute("BEGIN")
        assert reader.con.execute("SELECT count(*) FROM runs").fetchone() == (3,)  # a read snapshot, held open
        writer = sqlite3.connect(path, timeout=0, isolation_level=None)  # no waiting: a lock would fail at once
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE progress SET step = 74 WHERE run_key = ?", (store["flying"].key,))
        writer.execute("COMMIT")
        writer.execute("BEGIN IMMEDIATE")  # and one left open, uncommitted, while watch draws
        writer.execute("UPDATE progress SET step = 999 WHERE run_key = ?", (store["flying"].key,))
        text = frame(path)
        assert "74/200" in row_of(text, store["flying"].key) and "999" not in text
        writer.execute("ROLLBACK")
        writer.close()
    finally:
        reader.close()


def test_bad_store_and_bad_interval_are_one_sentence(tmp_path):
    assert_user_error(runner.invoke(app, ["watch", str(tmp_path / "nope.db"), "--once"]), "nope.db", "does not exist")
    (tmp_path / "text.db").write_text("hello")
    assert_user_error(runner.invoke(app, ["watch", str(tmp_path / "text.db"), "--once"]), "not a gradvet store")
    assert_user_error(runner.invoke(app, ["watch", str(tmp_path), "--once"]), str(tmp_path))
    v1_store(tmp_path / "ok.db", wal=True)
    assert_user_error(runner.invoke(app, ["watch", str(tmp_path / "ok.db"), "--interval", "0"]), "--interval",
                      ">= 0.1")


def test_the_live_view_redraws_until_ctrl_c_and_ends_with_status_0(store):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "gradvet.cli", "watch", str(store["path"]), "--interval", "0.2"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(120, proc.kill)  # whatever happens, the test ends
    guard.start()
    try:
        assert proc.stdout.readline().startswith("gradvet watch ")  # the first frame: the view is up
        con = sqlite3.connect(store["path"], isolation_level=None)
        con.execute("UPDATE progress SET step = 150 WHERE run_key = ?", (store["flying"].key,))  # the sweep goes on
        con.close()
        seen = []
        while not any("150/200" in line for line in seen):  # a later frame shows it (into a pipe: frame after frame)
            seen.append(proc.stdout.readline())
            assert seen[-1], "the view ended by itself"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        guard.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
