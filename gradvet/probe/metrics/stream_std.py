"""stream_std: the forward size of the residual stream after a block."""

from __future__ import annotations

import math

import torch

from gradvet.probe.metrics.block_unit import BlockMetric
from gradvet.probe.metrics.unit import OUTPUT, SAMPLE_MEAN


class StreamStd(BlockMetric):
    """The standard deviation of block l's output h_l over every element and call of the step,
    unbiased as torch.std. Each call's (std, mean) (torch.std_mean, 0-d) is merged at once into a
    running (mean, M2) (`BlockStep.pool`, Chan et al.'s pairwise update); std = sqrt(M2 / (N - 1)). Without normalisation on the stream it
    grows with depth (by sqrt(1 + r^2) per block, r = branch_ratio, for a branch uncorrelated
    with the stream); Post-LN resets it at every block."""

    name = "stream_std"
    reads = frozenset({OUTPUT})
    combine = SAMPLE_MEAN

    def forward(self, block, x, out):
        o = out.detach()
        if o.dtype in (torch.float16, torch.bfloat16):
            o = o.float()
        if o.numel() > 1:
            std, mean = torch.std_mean(o)
            block.pool(self.name, o.numel(), std, mean)

    def value(self, got, row, layer):
        n = layer.sizes.get(self.name, 0)
        if not got.scalars or n < 2:
            return None
        return math.sqrt(max(got.scalars[1], 0.0) / (n - 1))
