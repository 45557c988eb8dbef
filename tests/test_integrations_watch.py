"""gradvet.watch in a plain loop: one step per optimiser step (accumulation included), the total
gradient norm before clipping, `include`, loggers, saving into a store that `gradvet runs` and
`gradvet report` read, and a light `import gradvet`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from cli_helpers import assert_user_error
from readme_examples import check_and_run
from torch import nn
from typer.testing import CliRunner

import gradvet
from gradvet.base.errors import GradvetError
from gradvet.cli import app
from gradvet.integrations.names import GRAD_NORM


def mlp(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))


def batches(n, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 6, generator=generator) * 4, torch.randint(0, 3, (8,), generator=generator))
            for _ in range(n)]


def test_the_total_is_the_norm_clip_grad_norm_returns_before_clipping():
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    totals = []
    with gradvet.watch(model, optimizer, every=1) as handle:
        for x, y in batches(5):
            nn.functional.cross_entropy(model(x), y).backward()
            totals.append(nn.utils.clip_grad_norm_(model.parameters(), 0.01).item())  # returns the norm before
            optimizer.step()
            optimizer.zero_grad()
    assert min(totals) > 0.01  # every step is clipped
    assert [handle.grad_norm(step) for step in range(5)] == pytest.approx(totals, rel=1e-5)


def test_k_backward_passes_before_a_step_are_one_step_and_training_is_unchanged():
    data = batches(6)

    def train(watched: bool):
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        handle = gradvet.watch(model, optimizer, every=1) if watched else None
        reference = []
        for i, (x, y) in enumerate(data):
            (nn.functional.cross_entropy(model(x), y) / 3).backward()
            if i % 3 == 2:
                reference.append(torch.linalg.vector_norm(model[0].weight.grad.double()).item())
                optimizer.step()
                optimizer.zero_grad()
        if handle is not None:
            handle.close()
        return model, handle, reference

    plain, _, _ = train(False)
    model, handle, reference = train(True)
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), model.parameters()))  # not one bit changed
    assert handle.trace.steps() == [0, 1]
    assert handle.trace.series("0", "weight_grad_norm")[1] == pytest.approx(reference, rel=1e-5)


def test_without_an_optimizer_step_ends_a_step_and_include_selects_modules():
    model = mlp()
    logged = []
    handle = gradvet.watch(model, every=2, include="4", log_to=lambda metrics, step: logged.append((step, metrics)))
    for x, y in batches(4):
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        handle.step(loss)
        model.zero_grad()
    handle.close()
    assert handle.trace.layers() == ["4"] and handle.trace.steps() == [0, 2]
    assert [step for step, _ in logged] == [0, 2]
    expected = {GRAD_NORM, "gradvet/4/weight_grad_norm", "gradvet/4/output_grad_norm"}
    assert expected <= set(logged[0][1]) and not any("/0/" in key for key in logged[0][1])
    assert sorted(handle.losses) == [0, 1, 2, 3]
    assert handle.probe.hooks_attached == 0


def test_a_wrong_include_or_logger_is_one_sentence():
    with pytest.raises(GradvetError, match="include pattern 'encoder' matches no module of Sequential"):
        gradvet.watch(mlp(), include="encoder")
    with pytest.raises(GradvetError, match="did you mean 'wandb'"):
        gradvet.watch(mlp(), log_to="wandbb")


def test_a_summary_writer_is_a_tensorboard_logger():
    class Writer:  # what a torch.utils.tensorboard.SummaryWriter offers
        def __init__(self):
            self.scalars = []

        def add_scalar(self, name, value, step):
            self.scalars.append((name, value, step))

        def flush(self):
            pass

    writer, model = Writer(), mlp()
    with gradvet.watch(model, every=1, log_to=writer) as handle:
        x, y = batches(1)[0]
        nn.functional.cross_entropy(model(x), y).backward()
        handle.step()
    assert (GRAD_NORM, handle.grad_norm(0), 0) in writer.scalars
    assert ("gradvet/0/weight_grad_norm", handle.trace.at(0)["0"]["weight_grad_norm"], 0) in writer.scalars


def test_a_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if it were not installed
    with pytest.raises(GradvetError, match=r"pip install 'gradvet\[wandb\]'"):
        gradvet.watch(mlp(), log_to="wandb")


@pytest.mark.parametrize("module,packages,extra", [
    ("gradvet.integrations.lightning", ("lightning", "lightning.pytorch"), "lightning"),
    ("gradvet.integrations.transformers", ("transformers", "transformers.trainer_callback"), "hf"),
])
def test_a_callback_without_its_framework_names_the_extra(monkeypatch, module, packages, extra):
    import importlib

    monkeypatch.delitem(sys.modules, module, raising=False)
    for package in packages:
        monkeypatch.setitem(sys.modules, package, None)  # as if it were not installed
    with pytest.raises(GradvetError, match=rf"pip install 'gradvet\[{extra}\]'"):
        importlib.import_module(module)


def test_a_saved_run_is_listed_by_gradvet_runs_and_drawn_by_gradvet_report(tmp_path):
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with gradvet.watch(model, optimizer, every=2) as handle:
        for x, y in batches(6):
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            handle.step(loss)
    store = tmp_path / "runs.db"
    key = handle.save(store, name="my loop")
    assert handle.save(store, name="my loop") == key  # the same name replaces the run
    runner = CliRunner()
    listed = runner.invoke(app, ["runs", "--store", str(store), "--json"])
    assert listed.exit_code == 0, listed.output
    [run] = json.loads(listed.stdout)
    assert run["key"] == key and run["label"] == "my loop" and run["status"] == "done"
    assert run["spec"]["kind"] == "own loop" and run["spec"]["source"] == "watch"
    assert run["metrics"]["steps_done"] == 3 and run["metrics"]["verdict"] == handle.diagnose().verdict
    assert run["metrics"]["final_loss"] == pytest.approx(float(handle.losses[5]))
    report = runner.invoke(app, ["report", str(store), "--out", str(tmp_path / "report.html")])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "report.html").read_text()
    assert "my loop" in page and "profile-" + key in page  # the run's per-layer figure
    assert_user_error(runner.invoke(app, ["runs", "--store", str(tmp_path / "none.db")]), "does not exist")
    # what a callback does when training ends, with report= an .html file (the page of `gradvet report`)
    from gradvet.integrations.ending import check_report, finish

    finish(handle, show=False, report=check_report(tmp_path / "end.html"), store=None, name=None, title="my loop")
    page = (tmp_path / "end.html").read_text()
    assert "my loop" in page and handle.diagnose().verdict.upper() in page
    with pytest.raises(GradvetError, match=r"must end in .json"):
        check_report(tmp_path / "end.txt")


def test_save_run_takes_a_probe_and_refuses_an_empty_one(tmp_path):
    model = mlp()
    with gradvet.Probe(model) as probe:
        x, y = batches(1)[0]
        nn.functional.cross_entropy(model(x), y).backward()
        probe.step()
    gradvet.save_run(probe, tmp_path / "runs.db", name="a probe")
    with pytest.raises(GradvetError, match="nothing to save"):
        gradvet.save_run(gradvet.Trace(), tmp_path / "runs.db", name="empty")


def test_import_gradvet_stays_light():
    code = ("import sys, gradvet, gradvet.integrations; gradvet.watch; "
            "print(sorted(m for m in ('lightning', 'transformers', 'wandb', 'mlflow', 'pandas', 'matplotlib', 'scipy', "
            "'sympy', 'sklearn') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_readme_snippet_runs(tmp_path, monkeypatch, capsys):
    check_and_run("examples/watch_loop.py", tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("step ")] == \
        ["step 0", "step 20", "step 40", "step 60", "step 80"]
    assert "verdict:" in out and (tmp_path / "runs.db").exists()
