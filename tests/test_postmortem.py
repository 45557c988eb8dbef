"""`gradvet diagnose --store STORE --run KEY`: the post-mortem of a stored run, its numbers recomputed here
with numpy from the rows SQLite holds (history, layer records, alerts), not through gradvet's readers.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import replace

import numpy as np
import pytest
from cli_helpers import assert_user_error
from typer.testing import CliRunner

from gradvet.cli import app
from gradvet.data import load
from gradvet.spec import RunSpec
from gradvet.sweep import Store
from gradvet.train import run

runner = CliRunner()
DIVERGES = RunSpec(optimizer="momentum", lr=0.3, steps=150, depth=6, width=64, eval_every=0, monitor=True)
HEALTHY = RunSpec(lr=0.1, steps=60, depth=6, width=64, eval_every=0, monitor=True)
SEEDS = range(16)  # a diverging run's path is chaotic: which seeds build up differs between CPUs' kernels


def lost_at(loss: np.ndarray, norm: np.ndarray) -> int:
    """The first step with a non-finite loss or norm, or a loss above 10x the median of the first 10 before it."""
    return next(t for t in range(len(loss)) if not (np.isfinite(loss[t]) and np.isfinite(norm[t]))
                or (t > 0 and loss[t] > 10 * np.median(loss[: min(t, 10)])))


@pytest.fixture(scope="module")
def diverges(store_and_key):
    return store_and_key[1]


@pytest.fixture(scope="module")
def store(store_and_key):
    return store_and_key[0]


@pytest.fixture(scope="module")
def store_and_key(tmp_path_factory):
    """A store holding HEALTHY and the first seed of DIVERGES whose stored numbers tell a whole story (see
    `expected`: lost after tens of steps, a gradient norm that built up, a layer that blew up first, and an
    alert before the loss; how often the monitor warns is benchmarks/early_warning.py's to measure)."""
    path = tmp_path_factory.mktemp("pm") / "runs.db"
    digits = load("digits")
    with Store(path) as db:
        db.save(run(HEALTHY, dataset=digits))
        for seed in SEEDS:
            result = run(replace(DIVERGES, seed=seed), dataset=digits)
            if result.status != "diverged":
                continue
            db.save(result)
            try:
                want = expected(path, result.spec.key)
            except NoStory:
                continue
            if want["lost_at"] >= 20 and want["alerts"] and want["alerts"][0][0] < want["lost_at"]:
                return path, result.spec.key
    pytest.fail(f"none of seeds {list(SEEDS)} of {DIVERGES} told a whole story")


class NoStory(Exception):
    """A stored diverged run without a build-up or without a layer that blew up first."""


def stored(path, key):
    """(loss, grad_norm) per step from 0, {metric: {layer: {step: value}}}, alerts: as SQLite holds them."""
    con = sqlite3.connect(path)
    (history,) = con.execute("SELECT history FROM runs WHERE key = ?", (key,)).fetchone()
    history = json.loads(history)  # NaN and Infinity literals: Python's json reads them
    records: dict = {}
    for step, layer, metric, value in con.execute("SELECT step, layer, metric, value FROM layer_records "
                                                  "WHERE run_key = ?", (key,)):
        records.setdefault(metric, {}).setdefault(layer, {})[step] = math.nan if value is None else value
    alerts = con.execute("SELECT step, kind FROM alerts WHERE run_key = ? ORDER BY rowid", (key,)).fetchall()
    con.close()
    return np.array(history["loss"], float), np.array(history["grad_norm"], float), records, alerts


def expected(path, key) -> dict:
    loss, norm, records, alerts = stored(path, key)
    lost = lost_at(loss, norm)
    early = float(np.median(norm[: min(10, lost)]))
    start = int(np.argmax(norm[:lost] > 10 * early))
    if not norm[start] > 10 * early:
        raise NoStory("no build-up")
    climb = max(t for t in range(start) if norm[t] <= early)
    rate = (norm[start] / norm[climb]) ** (1 / (start - climb))
    blowups = []
    for layer, values in records["weight_grad_norm"].items():
        level = np.median([v for s, v in values.items() if s < min(10, lost)])
        for s in sorted(values):
            if not np.isfinite(values[s]) or values[s] > 10 * level:
                blowups.append((s, -(values[s] / level if np.isfinite(values[s]) else math.inf), layer))
                break
    if not any(b[0] <= lost for b in blowups):
        raise NoStory("no layer blew up before the run was lost")
    first_step, _, first_layer = min(b for b in blowups if b[0] <= lost)
    largest = {}
    for values in records["update_ratio"].values():
        for s, v in values.items():
            largest[s] = max(largest.get(s, 0.0), v)
    before = float(np.median([r for s, r in largest.items() if s < start]))
    clip = float(np.percentile(norm[:climb], 90))
    return {"lost_at": lost, "early_norm": early, "growth_start": start, "climb_from": climb, "growth_rate": rate,
            "first_layer": first_layer, "first_layer_step": first_step, "update_ratio_before": before,
            "clip_value": clip, "alerts": alerts}


def test_the_post_mortem_of_a_diverged_run_matches_its_stored_numbers(store, diverges):
    want = expected(store, diverges)
    result = runner.invoke(app, ["diagnose", "--store", str(store), "--run", diverges[:6], "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    for name in ("lost_at", "growth_start", "climb_from", "first_layer", "first_layer_step"):
        assert got[name] == want[name], name
    for name in ("early_norm", "growth_rate", "update_ratio_before", "clip_value"):
        assert got[name] == pytest.approx(want[name], rel=1e-9), name
    assert [(a["step"], a["kind"]) for a in got["alerts"]] == want["alerts"]
    assert got["lr"] == DIVERGES.lr and got["optimizer"] == "momentum"


def test_the_story_tells_where_which_layer_what_preceded_the_alerts_and_the_remedies(store, diverges):
    want = expected(store, diverges)
    result = runner.invoke(app, ["diagnose", "--store", str(store), "--run", diverges])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())  # unwrapped
    assert f"lost at step {want['lost_at']}" in text
    assert f"({want['early_norm']:.3g}) at step {want['growth_start']}" in text
    assert f"climbing since step {want['climb_from']}, x{want['growth_rate']:.3g} per step" in text
    assert f"first layer to blow up: {want['first_layer']}, at step {want['first_layer_step']}" in text
    assert f"learning rate {DIVERGES.lr:g} (momentum)" in text and f"{want['update_ratio_before']:.3g} per step" in text
    first_step, first_kind = want["alerts"][0]
    assert f"{first_kind} at {first_step}" in text and f"{want['lost_at'] - first_step} steps before" in text
    assert f"clipping the gradient norm at {want['clip_value']:.3g}" in text
    assert f"ten times lower, {DIVERGES.lr / 10:.3g}" in text and "warm-up" in text


def test_a_healthy_run_was_not_lost_and_gets_no_remedy(store):
    result = runner.invoke(app, ["diagnose", "--store", str(store), "--run", HEALTHY.key, "--json"])
    got = json.loads(result.stdout)
    assert got["lost_at"] is None and got["prevention"] == [] and got["alerts"] == []
    text = runner.invoke(app, ["diagnose", "--store", str(store), "--run", HEALTHY.key]).stdout
    assert "was not lost" in text and "prevented" not in text


def test_bad_store_or_run_is_one_sentence(store, tmp_path):
    assert_user_error(runner.invoke(app, ["diagnose", "--store", str(store), "--run", "zzzz"]), "unknown run 'zzzz'",
                      "gradvet runs --store")
    assert_user_error(runner.invoke(app, ["diagnose", "--store", str(store), "--run", ""]), "unknown run")
    assert_user_error(runner.invoke(app, ["diagnose", "--store", str(store)]), "--run KEY")
    assert_user_error(runner.invoke(app, ["diagnose", "--run", DIVERGES.key]), "--store STORE")
    assert_user_error(runner.invoke(app, ["diagnose", "--store", str(tmp_path / "no.db"), "--run", "ab"]),
                      "does not exist")


def test_a_run_saved_from_the_users_own_loop_is_lost_where_its_loss_turned_non_finite(tmp_path):
    """`gradvet.save_run` keeps the losses only (the gradient norm of sampled steps is in the layer
    records): the post-mortem reads the loss, and finds the first non-finite one as a loop over it does."""
    import torch
    from torch import nn

    import gradvet

    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=5.0)
    x = torch.randn(64, 8, generator=generator) * 10
    y = torch.randn(64, 1, generator=generator) * 1e3
    losses = []
    with gradvet.watch(model, opt, every=1) as handle:
        for _ in range(12):
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            handle.step(loss)
            losses.append(loss.item())
    assert not all(math.isfinite(v) for v in losses)  # the loop did diverge
    from gradvet.monitor.postmortem import EARLY_STEPS, LOSS_FACTOR

    def lost(t):  # the documented rule: a NaN/Inf loss, or one above LOSS_FACTOR x the median of the early ones
        early = sorted(v for v in losses[: min(t, EARLY_STEPS)] if math.isfinite(v))
        median = (early[(len(early) - 1) // 2] + early[len(early) // 2]) / 2 if early else None
        return not math.isfinite(losses[t]) or (median is not None and losses[t] > LOSS_FACTOR * median)

    first_bad = next(t for t in range(len(losses)) if lost(t))
    key = handle.save(tmp_path / "own.db", name="lr 5")
    result = runner.invoke(app, ["diagnose", "--store", str(tmp_path / "own.db"), "--run", key, "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["lost_at"] == first_bad and got["status"] == "diverged"
