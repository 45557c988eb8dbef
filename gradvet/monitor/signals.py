"""`StepSignals`: the numbers a `Monitor` reads on one optimiser step (numbers, never tensors).

- grad_norm: the total gradient norm sqrt(sum_p ||g_p||^2) over every trainable
  parameter, after the step's last backward pass (so over the accumulated
  gradient of k micro-batches) and before any clipping; NaN when no backward
  pass ran in the step;
- layer_grad_norms: the same per layer (a module owning parameters, named as in
  model.named_modules()): sqrt of the sum over its own parameters;
- update_ratios: per layer ||W_after - W_before|| / ||W_before|| over the
  optimiser step (W: all the layer's parameters together), on sampled steps only
  (None on the others; a layer whose parameters are all zero has none);
- loss: the mean of the values given to `monitor.observe` during the step, or None;
- lr: the largest learning rate of the optimiser's parameter groups, or None;
- backward_passes: how many backward passes reached the parameters in the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class StepSignals:
    step: int
    grad_norm: float = math.nan
    layer_grad_norms: dict[str, float] = field(default_factory=dict)
    update_ratios: dict[str, float] | None = None
    loss: float | None = None
    lr: float | None = None
    backward_passes: int = 0

    @property
    def has_gradient(self) -> bool:
        return self.backward_passes > 0
