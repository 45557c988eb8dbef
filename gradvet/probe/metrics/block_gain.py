"""block_gain: the factor a block multiplies the backward signal on the stream by."""

from __future__ import annotations

import math

from gradvet.probe.metrics.block_unit import BlockMetric, norm
from gradvet.probe.metrics.stream_grad_norm import StreamGradNorm
from gradvet.probe.metrics.unit import AFTER, INPUT_GRAD, root_sum_squares


class BlockGain(BlockMetric):
    """||dL/dx_l|| / ||dL/dh_l||: the gradient at block l's input over the one at its output
    (`stream_grad_norm`), skip and branch together. For a residual block h = x + f(x),
    dL/dx = (I + J_f)^T dL/dh: near 1 when the branch is small, about sqrt(1 + ||J_f||^2) per
    block for a branch as large as the skip (Hanin & Rolnick 2018), so over L blocks the
    stream's ratio is the product of the gains. The input's gradient is read where the block
    got it, every use of that tensor included (in a plain stack: the block before's output).
    NaN when no gradient reached the output (0/0)."""

    name = "block_gain"
    reads = frozenset({INPUT_GRAD})
    combine = AFTER
    nonfinite_is_overflow = False

    def input_grad(self, block, g):
        block.keep(self.name, norm(g))

    def value(self, got, row, layer):
        out = row.get(StreamGradNorm.name)
        if not got.scalars or out is None:
            return None
        return root_sum_squares(got.scalars) / out if out > 0 else math.nan
