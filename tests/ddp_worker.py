"""One rank of the DDP test (test_integrations_ddp), started by torch.multiprocessing's spawn: a
DistributedDataParallel MLP on gloo, one optimiser step under gradvet.watch on the rank's own data;
what it recorded is written to RESULTS/rank{r}.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn


def data(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + rank)
    return torch.randn(16, 6, generator=generator), torch.randint(0, 3, (16,), generator=generator)


def network() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))


def run(rank: int, world: int, folder: str) -> None:
    import gradvet
    from gradvet.integrations.names import GRAD_NORM

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    try:
        model = nn.parallel.DistributedDataParallel(network())
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        logged: list = []
        handle = gradvet.watch(model, optimizer, every=1, log_to=lambda metrics, step: logged.append(metrics[GRAD_NORM]))
        monitor = gradvet.Monitor(model.module, optimizer, keep_signals=True).__enter__()
        x, y = data(rank)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        monitor.__exit__(None, None, None)
        handle.close()
        at = handle.trace.at(0)
        result = {"weight_grad_norm": at["0"]["weight_grad_norm"], "bias_grad_norm": at["0"]["bias_grad_norm"],
                  "layers": handle.trace.layers(), "logged": logged, "monitor_grad_norm": monitor.signals[0].grad_norm,
                  "saved": handle.save(Path(folder) / "runs.db", name="ddp test")}
        (Path(folder) / f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":  # python ddp_worker.py RANK WORLD FOLDER
    run(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
