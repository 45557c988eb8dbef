"""`LayerStep`: what a probe's hooks gathered of one watched module during one step, as the
metrics read it. Lists hold one entry per call (per forward pass of the module in the step);
what several metrics derive from the same data (the calls' rows as one matrix, |f'(z)|, the
inactive units) is computed once, on first use."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

from gradvet.activations import Activation
from gradvet.probe.dead_units import inactive_units


@dataclass(eq=False)
class LayerStep:
    """One watched module (or, with kind 'model', the model's input) in one step.

    inputs / outputs: the module's input and output per call (detached); grad_out: dL/d output per
    call, grad_out_call[i] the call grad_out[i] belongs to; grad_in: dL/d input through this module;
    params: (name, parameter) of its own parameters; update: W_before - W_after per parameter over
    the optimiser step and sizes: ||W_before|| per parameter (0-d); first_nonfinite_forward: the
    step's first watched module in forward order with a NaN/Inf input or output, as (layer,
    in_input, the last finite module before it), None when there was none (set when the step ends)."""

    name: str
    kind: str
    step: int = 0
    activation: Activation | None = None
    params: list[tuple[str, torch.Tensor]] = field(default_factory=list)
    calls: int = 0
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    grad_out: list[torch.Tensor] = field(default_factory=list)
    grad_out_call: list[int] = field(default_factory=list)
    grad_in: list[torch.Tensor] = field(default_factory=list)
    update: list[torch.Tensor] = field(default_factory=list)
    sizes: list[torch.Tensor] = field(default_factory=list)
    first_nonfinite_forward: tuple[str, bool, str | None] | None = None

    @functools.cached_property
    def input_rows(self) -> torch.Tensor:
        """The inputs of every call as one (samples, units) matrix."""
        return rows_of(self.inputs)

    @functools.cached_property
    def output_rows(self) -> torch.Tensor:
        """The outputs of every call as one (samples, units) matrix."""
        return rows_of(self.outputs)

    @functools.cached_property
    def slopes(self) -> torch.Tensor:
        """|f'(z)| of an activation at its inputs, (samples, units), from the catalog's closed-form f'."""
        return self.activation.grad(self.input_rows).abs()

    @functools.cached_property
    def inactive(self) -> torch.Tensor:
        """Per unit, whether f'(z) = 0 for every sample of every call (see `probe.dead_units`)."""
        return inactive_units(self.slopes)

    @property
    def has_slopes(self) -> bool:
        """Whether f'(z) can be read: an activation gradvet knows, whose inputs were seen."""
        return bool(self.inputs) and self.activation is not None


def rows_of(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The tensors of every call as one (samples, units) matrix; no copy for a single call."""
    flat = [t.reshape(t.shape[0], -1) if t.dim() > 0 else t.reshape(1, 1) for t in tensors]
    return flat[0] if len(flat) == 1 else torch.cat(flat)
