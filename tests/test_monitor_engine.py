"""The Monitor in gradvet's own engine: `RunSpec(monitor=True)` warns before a divergence, N(0, 1) init at
step 0, healthy runs stay silent; the alerts survive the store (schema 2, a version-1 store migrated on
its first write), appear in `gradvet runs` and `gradvet runs --json`; heartbeats reach the store while a
run trains.

Oracles: the divergence step read off the run's own history (its first non-finite loss or norm), the
update ratio of the named layer as the Probe measures it (a separate code path), the training history
of the same spec without the monitor (bit for bit), and the rows SQLite itself holds.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from dataclasses import asdict

import pytest
from old_stores import v1_store
from typer.testing import CliRunner

from gradvet.base.jsonable import jsonable
from gradvet.cli import app
from gradvet.data import load
from gradvet.spec import RunSpec
from gradvet.sweep import Store, load_grid, run_sweep
from gradvet.sweep.live import LiveWriter
from gradvet.train import run
from gradvet.train.batched import why_sequential

runner = CliRunner()
MLP = dict(depth=6, width=64, eval_every=0)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.fixture(scope="module")
def too_large(digits):
    """Momentum SGD at lr 0.3 on a depth-6 ReLU MLP: it diverges after some tens of steps."""
    return run(RunSpec(optimizer="momentum", lr=0.3, steps=150, monitor=True, **MLP), dataset=digits)


def first_nonfinite(history: dict) -> int | None:
    """The first engine step (counted from 1) whose loss or gradient norm is not finite."""
    for step, loss, norm in zip(history["step"], history["loss"], history["grad_norm"]):
        if not (math.isfinite(loss) and math.isfinite(norm)):
            return step
    return None


def test_a_learning_rate_too_large_is_warned_before_the_divergence_step(too_large):
    assert too_large.status == "diverged"
    diverged = first_nonfinite(too_large.history)
    assert diverged is not None and diverged > 10  # a run that builds up, not one lost at once
    first = too_large.alerts[0]
    assert first["step"] + 1 < diverged, too_large.alerts  # alert steps count from 0, the history's from 1
    assert first["kind"] in ("exploding", "unstable", "spike", "loss_rising")
    assert [a["step"] for a in too_large.alerts] == sorted(a["step"] for a in too_large.alerts)
    last = too_large.alerts[-1]
    if not math.isfinite(too_large.history["loss"][-1]):
        assert last["kind"] == "nonfinite" and last["step"] + 1 == diverged
    else:  # a finite loss and a float32 norm that overflowed: the monitor reads the norm in float64, finite
        assert all(a["kind"] != "nonfinite" for a in too_large.alerts), too_large.alerts


def test_normal_init_gets_an_exploding_alert_at_step_0_with_the_probes_update_ratio(digits):
    result = run(RunSpec(init="normal", lr=0.1, steps=10, monitor=True, **MLP), dataset=digits)
    first = result.alerts[0]
    assert (first["step"], first["kind"], first["detector"]) == (0, "exploding", "update_ratio")
    probe = {layer: value for step, layer, metric, value in result.layer_records
             if step == 0 and metric == "update_ratio"}
    assert first["layer"] == max(probe, key=probe.get)  # the layer the step changed most, as the probe saw it
    assert first["value"] == pytest.approx(probe[first["layer"]], rel=1e-4)
    assert first["value"] > 1


@pytest.mark.parametrize("fields", [
    dict(lr=0.1, steps=150),                                # He ReLU, plain SGD
    dict(lr=0.05, batch_size=4, steps=150),                 # noisy small batches
    dict(optimizer="adam", lr=1e-3, steps=150),             # Adam
], ids=["sgd", "batch4", "adam"])
def test_healthy_runs_get_no_alert(digits, fields):
    result = run(RunSpec(monitor=True, **{**MLP, **fields}), dataset=digits)
    assert result.status == "done" and result.alerts == []


def test_the_monitor_changes_no_bit_of_training(digits, too_large):
    plain = run(RunSpec(optimizer="momentum", lr=0.3, steps=150, **MLP), dataset=digits)
    assert plain.alerts == []
    for name in ("step", "loss", "grad_norm"):
        assert json.dumps(plain.history[name]) == json.dumps(too_large.history[name]), name
    assert plain.layer_records == too_large.layer_records


def test_the_monitor_field_keeps_every_earlier_key_and_changes_only_its_own():
    for spec in (RunSpec(), RunSpec(activation="tanh", lr=0.5, clip=1.0, data_options={"length": 20})):
        old = asdict(spec)  # the content hashed before the field existed: every other field, by name
        old.pop("monitor")
        old["activation_params"], old["data_options"] = dict(spec.activation_params), dict(spec.data_options)
        text = json.dumps(old, sort_keys=True, separators=(",", ":"))
        assert spec.key == hashlib.sha256(text.encode()).hexdigest()[:16]
        assert spec.replace(monitor=True).key != spec.key
    assert RunSpec(monitor=True).label().endswith("monitored") and "monitored" not in RunSpec().label()


def test_a_grid_switches_the_monitor_on_and_bad_values_are_one_sentence(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text("[base]\nsteps = 5\nmonitor = true\n[grid]\nlr = [0.1, 0.2]\n")
    specs = load_grid(grid)
    assert [s.monitor for s in specs] == [True, True]
    assert why_sequential(specs[0]) is not None  # a monitored run trains on its own, never batched
    grid.write_text("[base]\nmonitor = 1\n")
    result = runner.invoke(app, ["sweep", str(grid), "--store", str(tmp_path / "r.db")])
    assert result.exit_code == 2 and "monitor" in result.stderr and "true or false" in result.stderr
    assert "Traceback" not in result.output


def test_alerts_survive_the_store_and_appear_in_gradvet_runs(tmp_path, too_large, digits):
    healthy = run(RunSpec(lr=0.1, steps=20, monitor=True, **MLP), dataset=digits)
    unmonitored = run(RunSpec(lr=0.1, steps=5, **MLP), dataset=digits)
    path = tmp_path / "runs.db"
    with Store(path) as store:
        for r in (too_large, healthy, unmonitored):
            store.save(r)
        back = store.get(too_large.spec.key)["alerts"]
    assert json.dumps(back) == json.dumps(too_large.alerts)  # every field, in order, NaN values included
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM alerts WHERE run_key = ?", (too_large.spec.key,)).fetchone()[0] == \
        len(too_large.alerts)
    con.close()
    listed = runner.invoke(app, ["runs", "--store", str(path), "--json"])
    assert listed.exit_code == 0, listed.output
    by_key = {r["key"]: r for r in json.loads(listed.stdout)}
    assert by_key[too_large.spec.key]["alerts"] == jsonable(too_large.alerts)  # strict JSON: NaN as 'nan'
    assert by_key[healthy.spec.key]["alerts"] == [] and by_key[unmonitored.spec.key]["alerts"] == []
    table = runner.invoke(app, ["runs", "--store", str(path)], terminal_width=250)
    assert table.exit_code == 0 and "alerts" in table.stdout
    cells = {line.split("│")[1].strip(): line.split("│")[-2].strip() for line in table.stdout.splitlines()
             if line.startswith("│")}
    assert cells == {too_large.spec.key: str(len(too_large.alerts)), healthy.spec.key: "0",
                     unmonitored.spec.key: "-"}



def test_a_version_1_store_is_read_as_it_is_and_migrated_by_its_first_write(tmp_path, too_large):
    path = tmp_path / "old.db"
    v1_store(path)
    listed = runner.invoke(app, ["runs", "--store", str(path), "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["alerts"] for r in json.loads(listed.stdout)] == [[]]
    con = sqlite3.connect(path)
    assert con.execute("SELECT value FROM meta WHERE name = 'version'").fetchone() == ("1",)  # a reader changes nothing
    con.close()
    with Store(path) as store:
        store.save(too_large)
        assert json.dumps(store.get(too_large.spec.key)["alerts"]) == json.dumps(too_large.alerts)
    con = sqlite3.connect(path)
    assert con.execute("SELECT value FROM meta WHERE name = 'version'").fetchone() == ("2",)
    tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"alerts", "progress", "runs", "layer_records", "meta"} <= tables
    con.close()


def test_heartbeats_reach_the_store_while_the_run_trains_and_saving_replaces_them(tmp_path, digits):
    spec = RunSpec(optimizer="momentum", lr=0.3, steps=150, monitor=True, **MLP)
    path = tmp_path / "live.db"
    seen = []
    with Store(path) as store:
        store.mark_running(spec)
        with LiveWriter(path).for_run(spec.key) as write:
            def beat(b):
                write(b)
                seen.append((b, store.progress().get(spec.key), store.alerts(spec.key).get(spec.key, [])))

            result = run(spec, dataset=digits, on_progress=beat)
        assert write.written == len(seen) and write.dropped == 0
        for b, row, alerts in seen:  # what a reader saw after each beat: that beat, and every alert so far
            assert (row["step"], row["steps"]) == (b["step"], spec.steps)
            assert row["loss"] == pytest.approx(b["loss"]) and row["layers"] == pytest.approx(b["layers"])
            assert set(row["layers"]) == {f"hidden.{i}.linear" for i in range(6)} | {"out"}
            assert json.dumps(alerts) == json.dumps(result.alerts[: len(alerts)])
        assert seen[0][0]["step"] == 1
        assert len(seen[-1][2]) >= len(result.alerts) - 1  # all but the NaN step's alert came live
        store.save(result)
        assert store.progress() == {} and json.dumps(store.get(spec.key)["alerts"]) == json.dumps(result.alerts)


def test_a_sweep_with_the_monitor_stores_alerts_and_leaves_no_progress_rows(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text("[base]\nsteps = 8\ndepth = 6\nwidth = 32\neval_every = 0\nmonitor = true\nlr = 0.1\n"
                    "[grid]\ninit = ['he', 'normal']\n")
    summary = run_sweep(load_grid(grid), tmp_path / "runs.db")
    assert summary.ran == 2
    with Store(tmp_path / "runs.db", create=False) as store:
        alerts = {r["spec"]["init"]: r["alerts"] for r in store.runs()}
        assert store.progress() == {}
    assert alerts["he"] == [] and alerts["normal"][0]["step"] == 0 and alerts["normal"][0]["kind"] == "exploding"
