"""stream_std: the forward size of the residual stream after a block."""

from __future__ import annotations

import math

import torch

from gradvet.probe.metrics.block_unit import BlockMetric
from gradvet.probe.metrics.unit import OUTPUT, SAMPLE_MEAN


class StreamStd(BlockMetric):
    """The standard deviation of block l's output h_l over every element and call of the step,
    unbiased as torch.std. Each call keeps its (std, mean) (torch.std_mean, 0-d); calls combine
    with the pooled-variance formula: mean M = sum n_i m_i / N, variance
    (sum (n_i - 1) s_i^2 + n_i (m_i - M)^2) / (N - 1). Without normalisation on the stream it
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
            block.keep(self.name, std, mean)

    def value(self, got, row, layer):
        pairs = list(zip(got.scalars[0::2], got.scalars[1::2]))
        sizes = [n for n in layer.numel if n > 1][: len(pairs)]
        if not pairs:
            return None
        if len(pairs) == 1:
            return pairs[0][0]
        total = sum(sizes)
        mean = sum(n * m for n, (_, m) in zip(sizes, pairs)) / total
        spread = sum((n - 1) * s * s + n * (m - mean) ** 2 for n, (s, m) in zip(sizes, pairs))
        return math.sqrt(spread / (total - 1))
