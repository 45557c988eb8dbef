"""Where a NaN or Inf first appeared: the forward pass's first module, and the backward pass's.

A value that turns NaN or Inf in the forward pass spreads to everything computed after it,
and the backward pass, running in reverse, meets it first at the output layer: naming that
layer points at the wrong end of the net. The probe checks, per watched module and call,
whether its input and its output are finite (`extremes`: min and max in one pass, finite iff
every value is, read in the step's one host copy) and names the first watched module in forward order holding a
non-finite value, beside the first layer the backward pass met with a non-finite norm.
In the trace that module carries the metric NONFINITE_INPUT (its input already held the
value: made upstream, by code the probe does not watch or in the data) or NONFINITE_OUTPUT
(its input was finite: the module made it), value 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gradvet.probe.metrics.nonfinite import Nonfinite
from gradvet.probe.metrics.nonfinite_input import NonfiniteInput
from gradvet.probe.metrics.nonfinite_output import NonfiniteOutput
from gradvet.probe.trace import INPUT

NONFINITE_INPUT = NonfiniteInput.name
NONFINITE_OUTPUT = NonfiniteOutput.name


@dataclass(frozen=True)
class NonFinite:
    """The first recorded step holding a NaN or Inf, and where.

    forward_layer: the first watched module in forward order whose input (in_input) or output
    held one, None when the forward pass was finite or not checked (forward_checked False:
    a trace written before these checks existed); after: the last watched module before it
    whose output was finite; backward_layer: the first layer with a non-finite norm in the
    order the backward pass reached the layers."""

    step: int
    forward_layer: str | None
    in_input: bool
    after: str | None
    backward_layer: str | None
    forward_checked: bool = True


def extremes(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 0-d tensors, both finite iff every value of `tensor` is: min and max of a real floating-point
    tensor (torch.aminmax, one pass; a NaN makes both NaN, an Inf one of them Inf), on a CPU about ten
    times cheaper than torch.isfinite(t).all(); zeros for an integer or empty tensor (finite); for a
    complex one log(isfinite(t).all()) twice (0, or -inf where a value is not finite)."""
    if tensor.numel() == 0 or not (tensor.is_floating_point() or tensor.is_complex()):
        zero = torch.zeros((), device=tensor.device)
        return zero, zero
    if tensor.is_complex():
        flag = torch.isfinite(tensor).all().float().log()
        return flag, flag
    low, high = torch.aminmax(tensor)
    return low, high


def first_in_forward(checks: list[tuple[str, str]], finite: list[float]) -> tuple[str, bool, str | None] | None:
    """(layer, in_input, after) of the first failed check, in forward order; `checks` holds
    (layer, 'input' | 'output') and `finite` 1.0 or 0.0 for each; None when all passed."""
    after = None
    for (layer, where), ok in zip(checks, finite):
        if not ok:
            return layer, where == "input", after
        if where == "output":
            after = layer
    return None


def from_trace(trace) -> NonFinite | None:
    """The first non-finite step of a trace read back without its probe. The backward pass
    is taken to reach the layers in reverse forward order (exact for a chain of modules); a
    finite forward pass leaves no row, so without one the forward pass counts as unchecked."""
    flagged: dict[int, list[str]] = {}
    forward: dict[int, tuple[str, bool]] = {}
    for step, layer, metric, _ in trace.rows:
        if metric == Nonfinite.name:
            flagged.setdefault(step, []).append(layer)
        elif metric in (NONFINITE_INPUT, NONFINITE_OUTPUT) and step not in forward:
            forward[step] = (layer, metric == NONFINITE_INPUT)
    steps = sorted(set(flagged) | set(forward))
    if not steps:
        return None
    step = steps[0]
    layer, in_input = forward.get(step, (None, False))
    order = [n for n in dict.fromkeys(r[1] for r in trace.rows if r[0] == step) if n != INPUT]
    before = order[: order.index(layer)] if layer in order else []
    after = before[-1] if before else None
    backward = flagged[step][-1] if flagged.get(step) else None
    return NonFinite(step, layer, in_input, after, backward, forward_checked=layer is not None)
