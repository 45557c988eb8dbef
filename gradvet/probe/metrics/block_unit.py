"""The contract of a block metric (scope BLOCK): a number per repeated block and step, about the
residual stream the blocks pass along (`probe.blocks` finds the blocks, `probe.block_hooks`
hooks them).

Unlike a layer metric, a block metric reduces as the data comes: the block hooks call
- `forward(block, x, out)` in the block's forward hook, once per call, with x the block's input
  (None when the block changed it in place) and out its output (the first tensor of a tuple);
- `output_grad(block, g)` with g = dL/d out, and `input_grad(block, g)` with g = dL/d x (tensor
  hooks, which change no result), for the metrics whose `reads` hold OUTPUT_GRAD or INPUT_GRAD;
and each keeps only 0-d tensors (`keep`): memory O(blocks), no activation stored. When the step
ends `measure` hands them to the probe's one host copy, and `value(got, row, block)` makes the
number from its floats (in the order they were kept) and the values already in `row`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from gradvet.probe.metrics.unit import BLOCK, Metric, Parts


@dataclass(eq=False)
class BlockStep:
    """One block in one step: its calls, whether it has an identity skip (a path from its output
    back to its input through no weight layer; None: not known), and per metric name the running
    0-d tensors its hooks reduce each call into (a fixed number per metric, whatever the number of
    calls or micro-batches: memory O(blocks))."""

    name: str
    step: int = 0
    calls: int = 0
    skip: bool | None = None
    kept: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # elements pooled so far, per metric

    def add_squares(self, metric: str, *norms: torch.Tensor) -> None:
        """Running sums of squares, one per position: sqrt of each is the root-sum-square over calls."""
        squares = [n.double() ** 2 for n in norms]
        kept = self.kept.get(metric)
        self.kept[metric] = squares if kept is None else [a + b for a, b in zip(kept, squares)]

    def pool(self, metric: str, count: int, std: torch.Tensor, mean: torch.Tensor) -> None:
        """Merge one call's (count, unbiased std, mean) into the running (mean, M2) of every element
        so far, M2 the sum of squared deviations (Chan, Golub & LeVeque 1979's pairwise update):
        delta = m_b - m_a, n = n_a + n_b, m = m_a + delta n_b / n, M2 = M2_a + M2_b + delta^2 n_a n_b / n."""
        mean, m2 = mean.double(), std.double() ** 2 * (count - 1)
        seen = self.sizes.get(metric, 0)
        if seen == 0:
            self.kept[metric] = [mean, m2]
        else:
            old_mean, old_m2 = self.kept[metric]
            total = seen + count
            delta = mean - old_mean
            self.kept[metric] = [old_mean + delta * (count / total), old_m2 + m2 + delta * delta * (seen * count / total)]
        self.sizes[metric] = seen + count


class BlockMetric(Metric):
    """A metric of a block (see the module docstring); subclasses override the hooks they need."""

    scope: ClassVar[str] = BLOCK
    kinds: ClassVar[frozenset[str]] = frozenset()  # measured on blocks, not on watched layers

    def forward(self, block: BlockStep, x: torch.Tensor | None, out: torch.Tensor) -> None:
        """In the block's forward hook, once per call."""

    def output_grad(self, block: BlockStep, g: torch.Tensor) -> None:
        """With dL/d(block output), once per call that produced a gradient."""

    def input_grad(self, block: BlockStep, g: torch.Tensor) -> None:
        """With dL/d(block input), once per call whose input required a gradient."""

    def measure(self, layer):
        return Parts(scalars=layer.kept.get(self.name, []))


def norm(t: torch.Tensor) -> torch.Tensor:
    """||t||_2 as a 0-d tensor, in float32 at least (a float16 norm overflows at 65504)."""
    t = t.detach()
    wide = torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else None
    return torch.linalg.vector_norm(t, dtype=wide)
