"""gradvet under DistributedDataParallel on the CPU (gloo, 2 processes): each rank records the norm of the
all-reduced gradient (the one the optimiser applies), only rank 0 logs and saves, and nothing hangs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from ddp_worker import data, network, run
from readme_examples import ROOT, readme_blocks
from torch import nn

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
DEADLINE = 60  # seconds: a hang fails the test instead of the suite


def spawn(folder: Path, world: int = 2) -> None:
    context = mp.start_processes(run, args=(world, str(folder)), nprocs=world, join=False, start_method="spawn")
    end = time.monotonic() + DEADLINE
    try:
        while not context.join(timeout=1):
            if time.monotonic() > end:
                pytest.fail(f"the DDP processes did not finish within {DEADLINE} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()


def averaged_gradient(world: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """The first layer's weight gradient as DDP's all-reduce makes it (the mean over the ranks of each
    rank's gradient), in float64, and rank 0's own local gradient."""
    grads = []
    for rank in range(world):
        model = network().double()
        x, y = data(rank)
        nn.functional.cross_entropy(model(x.double()), y).backward()
        grads.append(model[0].weight.grad)
    return torch.stack(grads).mean(0), grads[0]


def averaged_total(world: int = 2) -> float:
    """||g|| over every parameter of the all-reduced gradient (the mean over the ranks), in float64."""
    per_rank = []
    for rank in range(world):
        model = network().double()
        x, y = data(rank)
        nn.functional.cross_entropy(model(x.double()), y).backward()
        per_rank.append([p.grad for p in model.parameters()])
    return sum(float(torch.stack(gs).mean(0).pow(2).sum()) for gs in zip(*per_rank)) ** 0.5


def test_each_rank_records_the_all_reduced_gradient_and_only_rank_0_logs_and_saves(tmp_path):
    spawn(tmp_path)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    averaged, local = averaged_gradient()
    expected = torch.linalg.vector_norm(averaged).item()
    assert abs(torch.linalg.vector_norm(local).item() - expected) > 1e-3 * expected  # the ranks' gradients differ
    for result in ranks:
        assert result["weight_grad_norm"] == pytest.approx(expected, rel=1e-5)
        assert result["layers"][0] == "0"  # the model inside DDP, with its own names
        assert result["monitor_grad_norm"] == pytest.approx(averaged_total(), rel=1e-5)  # the Monitor too
    assert len(ranks[0]["logged"]) == 1 and ranks[1]["logged"] == []
    assert ranks[0]["saved"] and ranks[1]["saved"] is None
    from gradvet.sweep import Store

    with Store(tmp_path / "runs.db", create=False) as store:
        assert [r["label"] for r in store.runs()] == ["ddp test"]


def test_the_readme_snippet_runs_under_torchrun(tmp_path):
    relative = "examples/ddp_watch.py"
    assert readme_blocks().get(relative) == (ROOT / relative).read_text()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(ROOT / relative)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=DEADLINE)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(("healthy", "vanishing", "exploding"))]
    assert len(lines) == 1 and "[0, 5, 10, 15]" in lines[0]  # rank 0 alone prints
    assert (tmp_path / "runs.db").exists()
