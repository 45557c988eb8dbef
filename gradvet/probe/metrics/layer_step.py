"""`LayerStep`: what a probe keeps of one watched module during one step, and `Seen`: one call's
tensor as a hook sees it.

Metrics reduce hook data as it arrives (see `unit`): a hook hands each metric a `Seen` (the
module's input or output of one call) or a gradient, the metric reduces it at once to a 0-d
tensor or a per-unit mask and folds that into the layer's running results with `add`, `hypot`,
`all` or `max`; the tensor itself is let go when the hook returns. What a LayerStep holds is
therefore O(units) at most, whatever the batch, the sequence length or the number of
micro-batches. The running results stay on the module's device (no host copy inside a step).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

from gradvet.activations import Activation
from gradvet.probe.dead_units import inactive_units


class Seen:
    """One call's input or output of a module (detached), with what several metrics derive from it
    computed once per call: `rows`, the tensor as a (samples, units) matrix; for an activation's
    input z, `slopes` = |f'(z)| (the catalog's closed-form f') and `inactive`, per unit whether
    f'(z) = 0 for every sample of the call."""

    def __init__(self, tensor: torch.Tensor, activation: Activation | None = None):
        self.tensor = tensor
        self.activation = activation

    @functools.cached_property
    def rows(self) -> torch.Tensor:
        t = self.tensor
        return t.reshape(t.shape[0], -1) if t.dim() > 0 else t.reshape(1, 1)

    @property
    def numel(self) -> int:
        return self.tensor.numel()

    @property
    def has_slopes(self) -> bool:
        """Whether f'(z) can be read: an activation gradvet knows, with a floating-point input."""
        return self.activation is not None and self.tensor.is_floating_point()

    @functools.cached_property
    def slopes(self) -> torch.Tensor:
        """|f'(z)| at this call's input, (samples, units)."""
        return self.activation.grad(self.rows).abs()

    @functools.cached_property
    def inactive(self) -> torch.Tensor:
        """Per unit, whether f'(z) = 0 for every sample of this call (see `probe.dead_units`)."""
        return inactive_units(self.slopes)


@dataclass(eq=False)
class LayerStep:
    """One watched module (or, with kind 'model', the model's input) in one step.

    calls: the most forward calls of the module between two backward passes (a module run twice
    in one forward pass: weight sharing or recurrence; the micro-batches of gradient accumulation
    are one call each); forwards: every recorded forward call of the step; sums: the metrics'
    running reductions (0-d tensors or per-unit masks, keyed by the metric's name); counts: element
    counts (Python ints, read from shapes); params: (name, parameter) of its own parameters (a
    parameter tied to an earlier module is listed there only); grad_norms: ||p.grad|| per own
    parameter, read when the latest backward pass had accumulated it (0-d, before any clipping);
    update: W_before - W_after per parameter over the optimiser step and sizes: ||W_before|| per
    parameter (0-d); first_nonfinite_forward: the step's first watched module in forward order
    with a NaN/Inf input or output, as (layer, in_input, the last finite module before it), None
    when there was none (set when the step ends)."""

    name: str
    kind: str
    step: int = 0
    activation: Activation | None = None
    params: list[tuple[str, torch.Tensor]] = field(default_factory=list)
    calls: int = 0
    forwards: int = 0
    interval: int = -1  # the backward interval (see Probe) of the latest call
    interval_calls: int = 0  # calls in that interval
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    grad_norms: dict[str, torch.Tensor] = field(default_factory=dict)
    update: list[torch.Tensor] = field(default_factory=list)
    sizes: list[torch.Tensor] = field(default_factory=list)
    first_nonfinite_forward: tuple[str, bool, str | None] | None = None
    open: list = field(default_factory=list)  # the probe's calls between pre-hook and forward hook
    _folded: dict[str, int] = field(default_factory=dict)  # key -> the call (forwards) last folded into it

    # -- running reductions (the COMBINE rules of `unit`) --------------------------------------
    def add(self, key: str, value: torch.Tensor) -> None:
        """Running sum (SAMPLE_MEAN: sums over the samples of every call)."""
        old = self.sums.get(key)
        self.sums[key] = value if old is None else old + value

    def hypot(self, key: str, norm: torch.Tensor) -> None:
        """Running root of the sum of squares of norms (ROOT_SUM_SQUARES), by torch.hypot: no
        overflow of the squares where the norms themselves are finite."""
        old = self.sums.get(key)
        self.sums[key] = norm if old is None else torch.hypot(old, norm.to(old.dtype))

    def all(self, key: str, mask: torch.Tensor, once_per_call: bool = False) -> None:
        """Running AND of per-unit masks (ALL_CALLS); a mask of another shape starts afresh.
        once_per_call: several metrics share `key` (and one mask): the first of them in a call folds it."""
        if once_per_call:
            if self._folded.get(key) == self.forwards:
                return
            self._folded[key] = self.forwards
        old = self.sums.get(key)
        self.sums[key] = mask if old is None or old.shape != mask.shape else old & mask

    def max(self, key: str, value: torch.Tensor) -> None:
        """Running maximum (MAX)."""
        old = self.sums.get(key)
        self.sums[key] = value if old is None else torch.maximum(old, value.to(old.dtype))

    def count(self, key: str, n: int) -> None:
        """Running element count, a Python int (no host sync)."""
        self.counts[key] = self.counts.get(key, 0) + n

    def has_data(self) -> bool:
        return bool(self.forwards or self.sums or self.grad_norms)


def norm_of(tensor: torch.Tensor) -> torch.Tensor:
    """||tensor||_2 as a 0-d tensor on its device, in at least float32 (a half-precision gradient's
    norm overflows at 65504)."""
    if tensor.dtype in (torch.float16, torch.bfloat16):
        return torch.linalg.vector_norm(tensor, dtype=torch.float32)
    return torch.linalg.vector_norm(tensor)
