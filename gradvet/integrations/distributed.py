"""Training under DistributedDataParallel (DDP), and models inside wrappers.

How gradvet behaves under DDP (`torch.nn.parallel.DistributedDataParallel`, any backend):
every rank probes its own replica. DDP averages the parameter gradients over the ranks during
the backward pass (all-reduce), so the parameter-gradient norms a rank records are those of the
averaged gradient, the one every rank's optimiser applies: equal on all ranks. The activation
statistics and the backward signal (||dL/d output||) are the rank's own, measured on its share of
the batch. Only rank 0 (the main process) sends numbers to loggers and saves runs; every rank
keeps its trace, so `handle.diagnose()` works everywhere.

A model inside DistributedDataParallel or DataParallel is probed through the module it wraps, so
its layers keep their own names ("0", "encoder.layer.1") rather than "module.0". A torch.compile'd
model is handed to the Probe as it is: the probe itself watches the module inside the compile
wrapper. An optimiser inside a wrapper (accelerate's, Lightning's) is hooked through the torch
optimiser it wraps.
"""

from __future__ import annotations

import torch
from torch import nn


def rank() -> int:
    """This process's rank in the default process group (0 when torch.distributed is not in use)."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process logs and saves: rank 0, or the only process."""
    return rank() == 0


def inner_optimizer(optimizer):
    """The torch optimiser inside a wrapper that keeps it as `.optimizer` (accelerate's AcceleratedOptimizer,
    Lightning's LightningOptimizer): its step hooks are the ones that run."""
    inner = getattr(optimizer, "optimizer", None)
    return inner if isinstance(inner, torch.optim.Optimizer) else optimizer


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel or DataParallel (repeatedly)."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model
