"""gradvet's Lightning callback: the numbers before clipping, as Lightning's own hook sees them,
one step per optimiser step over accumulated micro-batches, logged through the Trainer's logger,
and no hook left behind on an exception."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from readme_examples import check_and_run
from torch import nn

pl = pytest.importorskip("lightning.pytorch")

from gradvet.integrations.lightning import GradvetCallback  # noqa: E402
from gradvet.integrations.names import GRAD_NORM, grad_norm  # noqa: E402


class Net(pl.LightningModule):
    def __init__(self, fail_at: int | None = None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))
        self.fail_at = fail_at

    def training_step(self, batch, batch_idx):
        if batch_idx == self.fail_at:
            raise RuntimeError("boom")
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


class PreClipNorm(pl.Callback):
    """The total gradient norm in Lightning's on_before_optimizer_step (before clipping), in float64."""

    def __init__(self):
        self.norms: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        grads = [p.grad.double().flatten() for p in pl_module.parameters() if p.grad is not None]
        self.norms.append(torch.linalg.vector_norm(torch.cat(grads)).item())


def loader(n=40):
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 8, generator=generator) * 3, torch.randint(0, 3, (n,), generator=generator)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)


def trainer(tmp_path, callbacks, **options):
    return pl.Trainer(callbacks=callbacks, logger=pl.loggers.CSVLogger(tmp_path), enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                      **{"max_steps": 10, **options})


def test_each_step_is_the_gradient_before_clipping_over_the_accumulated_batches(tmp_path):
    gradvet_cb, reference = GradvetCallback(every=1, show=False), PreClipNorm()
    fit = trainer(tmp_path, [reference, gradvet_cb], gradient_clip_val=0.05, accumulate_grad_batches=2)
    fit.fit(Net(), loader())
    trace = gradvet_cb.trace
    assert trace.steps() == list(range(1, 11))  # ten optimiser steps, numbered as trainer.global_step
    assert len(reference.norms) == 10 and min(reference.norms) > 0.05  # clipping changes every step
    for step, expected in zip(trace.steps(), reference.norms):
        rows = [r for r in trace.rows if r[0] == step]
        assert grad_norm(rows) == pytest.approx(expected, rel=1e-5, abs=1e-7), step
    assert gradvet_cb.diagnose().verdict in ("healthy", "vanishing", "exploding")
    # the Trainer's logger got the same numbers, at Lightning's step (the optimiser step's index from 0)
    with open(fit.logger.log_dir + "/metrics.csv") as handle:
        logged = {int(row["step"]): row for row in csv.DictReader(handle) if row.get(GRAD_NORM)}
    assert sorted(logged) == list(range(10))
    for step, expected in zip(trace.steps(), reference.norms):
        assert float(logged[step - 1][GRAD_NORM]) == pytest.approx(expected, rel=1e-5)
        assert math.isfinite(float(logged[step - 1]["gradvet/net.0/weight_grad_norm"]))


def no_hooks(module: nn.Module, optimizer) -> bool:
    modules = all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in module.modules())
    params = all(not getattr(p, "_post_accumulate_grad_hooks", None) and not p._backward_hooks
                 for p in module.parameters())
    optim = not optimizer._optimizer_step_pre_hooks and not optimizer._optimizer_step_post_hooks
    return modules and params and optim


def test_an_exception_in_training_step_leaves_no_hook(tmp_path):
    callback, model = GradvetCallback(every=1, show=False), Net(fail_at=3)
    fit = trainer(tmp_path, [callback])
    with pytest.raises(RuntimeError, match="boom"):
        fit.fit(model, loader())
    assert callback.trace.steps() == [1, 2, 3]  # the steps before the failing batch
    assert callback.session.probe.hooks_attached == 0 and no_hooks(model, fit.optimizers[0])


def test_every_defaults_to_the_trainers_logging_interval_and_the_report_and_run_are_kept(tmp_path):
    from gradvet.sweep import Store

    callback = GradvetCallback(show=False, store=tmp_path / "runs.db", name="lightning run",
                               report=tmp_path / "diagnosis.json")
    trainer(tmp_path, [callback], log_every_n_steps=4, max_steps=9).fit(Net(), loader())
    assert callback.trace.steps() == [4, 8]
    kept = json.loads((tmp_path / "diagnosis.json").read_text())
    assert kept["step"] == 8 and kept["verdict"] == callback.diagnose().verdict
    with Store(tmp_path / "runs.db", create=False) as store:
        [run] = store.runs()
        assert run["label"] == "lightning run" and run["metrics"]["steps_done"] == 2
        assert len(store.layer_records(run["key"])) == len(callback.trace.rows)


def test_the_readme_snippet_runs(tmp_path, monkeypatch, capsys):
    check_and_run("examples/lightning_callback.py", tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert "verdict:" in out and "[5, 10, 15, 20, 25, 30, 35, 40]" in out
