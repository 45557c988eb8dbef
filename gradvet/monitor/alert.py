"""`Alert`: one early warning raised by a `Monitor`, as plain data.

An alert names the optimiser step it was raised at (steps counted from 0), its
kind, the layer it concerns (None for the whole model), one sentence with the
numbers that raised it, and the likely remedy. `to_dict()` gives strict JSON
(non-finite numbers as the strings 'nan', 'inf', '-inf') for a store or a log.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from gradvet.base.jsonable import jsonable

EXPLODING = "exploding"  # gradient norms or updates growing out of their healthy range
VANISHING = "vanishing"  # a layer's gradient collapsing against its early level
SPIKE = "spike"  # one step's gradient norm far above its recent level
NONFINITE = "nonfinite"  # NaN or Inf in the loss or a gradient
LOSS_RISING = "loss_rising"  # the loss drifting upward (CUSUM)
STALL = "stall"  # the loss flat at its starting level: nothing is learnt
UNSTABLE = "unstable"  # large updates while the loss does not fall: a learning rate too large

KINDS = (EXPLODING, VANISHING, SPIKE, NONFINITE, LOSS_RISING, STALL, UNSTABLE)
# Kinds whose episodes are counted per layer; the others are whole-model events (one alert per
# episode, whichever layer each step names first).
PER_LAYER_KINDS = (VANISHING,)


@dataclass(frozen=True)
class Finding:
    """What a detector saw on one step: the kind, the layer (None: the whole model), one sentence
    with the numbers (no remedy), the step the trend began at (when known) and the measured value."""

    kind: str
    layer: str | None
    message: str
    since: int | None = None
    value: float = math.nan


@dataclass(frozen=True)
class Alert:
    """An early warning: `step` (optimiser steps from 0), `kind` (one of KINDS), `layer`
    (or None), `message` (one sentence with the numbers), `remedy` (what would likely help),
    `detector` (which detector raised it), `since` (the step the trend began, when known),
    `value` (the number the detector measured)."""

    step: int
    kind: str
    layer: str | None
    message: str
    remedy: str
    detector: str
    since: int | None = None
    value: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """The alert as strict-JSON-ready plain data."""
        return jsonable(asdict(self))

    def __str__(self) -> str:
        where = f" in {self.layer}" if self.layer else ""
        return f"step {self.step}: {self.kind}{where}: {self.message} {self.remedy}"
