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
    """One block in one step: its calls, each call's output size (numel), whether it has an
    identity skip (a path from its output back to its input through no weight layer; None: not
    known), and per metric name the 0-d tensors its hooks kept."""

    name: str
    step: int = 0
    calls: int = 0
    numel: list[int] = field(default_factory=list)
    skip: bool | None = None
    kept: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    def keep(self, metric: str, *values: torch.Tensor) -> None:
        self.kept.setdefault(metric, []).extend(values)


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
