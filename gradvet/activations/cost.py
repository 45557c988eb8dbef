"""Relative cost of an activation: forward + backward time per element against ReLU.

Measured on the module that training uses (`Activation.module()`), float32,
2**16 elements, on the threads the process has (the command line sets
GRADVET_THREADS, default 1; a library call leaves the caller's setting alone),
ReLU timed in the same loop, interleaved, median of rounds: a ratio, because
absolute times on a shared machine mislead. A small activation on small
tensors is dominated by per-op overhead, so a formula of many torch ops costs
many times ReLU even when each op is cheap.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from gradvet.activations.protocol import ActivationLike

SIZE = 1 << 16
ROUNDS = 7
INNER = 4


def _time(module: torch.nn.Module, x: torch.Tensor, ones: torch.Tensor) -> float:
    start = time.perf_counter()
    for _ in range(INNER):
        xr = x.detach().requires_grad_(True)
        out = module(xr)
        if out.requires_grad:  # an output autograd cannot trace back to x (a registered constant) has f' = 0
            out.backward(ones)
    return time.perf_counter() - start


def relative_cost(act: ActivationLike, seed: int = 0) -> float:
    """Median over rounds of time(act) / time(relu) for forward + backward."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(SIZE, generator=generator)
    ones = torch.ones(SIZE)
    module, relu = act.module().train(False), torch.nn.ReLU()
    _time(module, x, ones), _time(relu, x, ones)  # warm up
    ratios = []
    for _ in range(ROUNDS):
        base = _time(relu, x, ones)
        ratios.append(_time(module, x, ones) / base)
    return round(statistics.median(ratios), 2)
