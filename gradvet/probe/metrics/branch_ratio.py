"""branch_ratio: how much a residual block still changes the stream."""

from __future__ import annotations

import math

from gradvet.probe.metrics.block_unit import BlockMetric, norm
from gradvet.probe.metrics.unit import AFTER, INPUT, OUTPUT


class BranchRatio(BlockMetric):
    """||h - x|| / ||x|| for block h = x + f(x): the residual branch f(x) against the skip x,
    over every call of the step (root of the sums of squares of each). Near 0 the block is
    almost the identity (a zero-initialised branch: Fixup, SkipInit, ReZero); near 1 or more
    the branch outweighs the skip and the stream grows by about sqrt(1 + r^2) per block.
    Recorded only where it means that: for a block with an identity skip (a path from its
    output to its input through no weight layer, `probe.blocks.identity_skip`) whose output
    has its input's shape and that did not change its input in place. For a Post-LN block
    (h = LN(x + f(x)), the default nn.TransformerEncoderLayer) h - x is not the branch: the number
    is ||LN(x + f(x)) - x|| / ||x||, how much the block changes the stream, normalisation included."""

    name = "branch_ratio"
    reads = frozenset({INPUT, OUTPUT})
    combine = AFTER
    nonfinite_is_overflow = False

    def forward(self, block, x, out):
        if x is not None and x.shape == out.shape and x is not out:
            block.add_squares(self.name, norm(out.detach() - x.detach()), norm(x))

    def value(self, got, row, layer):
        if not got.scalars or layer.skip is False:
            return None
        change, size = math.sqrt(got.scalars[0]), math.sqrt(got.scalars[1])
        return change / size if size > 0 else (math.nan if change == 0 else math.inf)
