"""The two things the `residual` experiment does to a net: look at its residual stream with the Probe
(`snapshot`) and train it (`train`).

A snapshot is one probed forward and backward pass on a fixed batch, with no optimiser step (the
gradients are cleared afterwards, so the training that follows starts from zero gradients as it would
without it): per block, in the Probe's own words, stream_grad_norm = ||dL/dh_l|| at the block's
output, block_gain, stream_std and branch_ratio = ||h_l - x_l|| / ||x_l||, and `gradvet.diagnose`'s
verdict, which for a residual net reads ||dL/dh|| at the first block over the last.

Training is the engine's loop (`gradvet.train.loop`): seeded batches, forward, loss, backward, total
gradient norm, a stop at the first NaN or Inf in the loss or that norm (the step is recorded as the
step it diverged at, and no update is made with it), optimiser step; then the test set's loss and
accuracy. No probe is attached while training: the experiment reads the stream only in snapshots.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gradvet.base.errors import GradvetError
from gradvet.probe import Probe, diagnose
from gradvet.train.loop import evaluate

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Snapshot:
    """The residual stream of a net at one moment: the diagnosis' verdict and ratio (first block over
    last), the normalisation it found ('pre', 'post', 'inside', 'none'), and per block (in order) the
    four block metrics (None where the Probe recorded none)."""

    verdict: str
    ratio: float
    normalisation: str
    blocks: list[str]
    stream_grad_norm: list[float]
    block_gain: list[float | None]
    stream_std: list[float | None]
    branch_ratio: list[float | None]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def snapshot(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> Snapshot:
    """Probe one forward/backward pass of `model` on `batch` (see the module docstring)."""
    x, y = batch
    model.zero_grad(set_to_none=True)
    with Probe(model, update_ratio=False) as probe:
        loss_fn(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    found = diagnose(probe)
    if found.basis != "blocks":
        raise GradvetError(f"{type(model).__name__} shows no residual stream to the Probe; the experiment needs one.")
    return Snapshot(
        verdict=found.verdict, ratio=found.ratio, normalisation=found.stream.normalisation,
        blocks=[b.name for b in found.blocks], stream_grad_norm=[b.stream_grad_norm for b in found.blocks],
        block_gain=[b.block_gain for b in found.blocks], stream_std=[b.stream_std for b in found.blocks],
        branch_ratio=[b.branch_ratio for b in found.blocks],
    )


@dataclass
class Trained:
    """What `train` returns: the loss per step, where it diverged (None: it did not), the test loss
    and accuracy of the net as training left it."""

    losses: list[float] = field(default_factory=list)
    diverged_at: int | None = None
    test_loss: float = math.nan
    test_accuracy: float | None = None


def train(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Callable[[int], Batch], loss_fn: nn.Module,
          steps: int, test: Batch) -> Trained:
    """`steps` optimiser steps on batches(step) (step = 1 .. steps), stopping at the first NaN or Inf in
    the loss or the total gradient norm; then the loss and accuracy on `test`."""
    out = Trained()
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    for step in range(1, steps + 1):
        x, y = batches(step)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        out.losses.append(float(loss.detach()))
        if not (math.isfinite(out.losses[-1]) and math.isfinite(float(norm))):
            out.diverged_at = step
            break
        optimizer.step()
    out.test_loss, out.test_accuracy = evaluate(model, loss_fn, *test, "multiclass")
    return out
