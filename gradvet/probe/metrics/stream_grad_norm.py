"""stream_grad_norm: the backward signal on the residual stream at a block's output."""

from __future__ import annotations

from gradvet.probe.metrics.block_unit import BlockMetric, norm
from gradvet.probe.metrics.unit import OUTPUT_GRAD, ROOT_SUM_SQUARES, root_sum_squares


class StreamGradNorm(BlockMetric):
    """||dL/dh_l||, the norm of the gradient reaching block l's output h_l (a block returning a
    tuple, as Hugging Face's do: its first tensor), every path after it included: the backward
    signal on the residual stream at depth l. With blocks the verdict reads its ratio at the
    first block over the last."""

    name = "stream_grad_norm"
    reads = frozenset({OUTPUT_GRAD})
    combine = ROOT_SUM_SQUARES

    def output_grad(self, block, g):
        block.keep(self.name, norm(g))

    def value(self, got, row, layer):
        return root_sum_squares(got.scalars) if got.scalars else None
