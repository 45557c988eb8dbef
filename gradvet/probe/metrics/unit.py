"""The contract of a probe metric: one quantity per file (Cockpit's quantities, Schneider, Dangel
& Hennig 2021), so that adding a metric is one file and its test.

A metric declares
- `name` (the trace's metric name) and `scope`: LAYER (a watched module), MODEL (once per
  step for the whole model, recorded on the '<input>' pseudo-layer) or BLOCK (a model's
  repeated blocks and the residual stream between them: `block_unit.BlockMetric`, whose
  hooks reduce each call to 0-d tensors);
- `kinds`: the kinds of watched module it is measured on ('weight', 'norm', 'activation');
- `reads`: the hook data it needs (the HOOK_DATA below); the probe gathers only what some
  metric of a module's kind reads;
- `combine`: how the values of several calls of a module in one step (weight sharing,
  recurrence, the micro-batches of gradient accumulation) combine (the COMBINE rules below);
- `columns`: how it shows in the diagnosis' per-hidden-layer table (`Column`), if at all.

and two methods:
- `measure(layer) -> Parts`, inside the step: tensors whose 2-norms are wanted and 0-d tensors,
  never a host copy (the probe stacks the parts of every metric and layer of a step and copies
  them to the host once);
- `value(got, row, layer) -> float | None`, on the host after that copy: the number, from the
  floats of its own parts (in the order `measure` gave them) and the values already in `row`
  (the metrics before it in the registry's order); None records nothing.
`prepare(watched)` runs once when a probe is entered (e.g. to look up max |f'| outside any
step), and a metric keeping state across steps keeps it on its instance: a probe makes its own
instances.

Today `measure` runs once when the step ends, on the data of every call at once. The `combine`
rule is what lets a hook reduce each call (or micro-batch) as it comes and keep only partial
results, memory O(layers) (issue 14): norms merge as the root of the sum of squares (keep each
call's norm, or a running sum of squares), SAMPLE_MEAN as the sample-weighted mean (keep sums
and counts), ALL_CALLS as the AND of per-unit masks (one mask per unit), MAX as the maximum;
AFTER and COUNT keep nothing. The BLOCK scope (repeated blocks, the residual stream) works so
already: its metrics reduce each call to 0-d tensors inside the hooks (`block_unit`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from gradvet.base.errors import GradvetError

if TYPE_CHECKING:

    from gradvet.probe.layers import Watched
    from gradvet.probe.metrics.layer_step import LayerStep

# scopes
LAYER = "layer"
MODEL = "model"
BLOCK = "block"

KINDS = frozenset({"weight", "norm", "activation"})

# hook data a metric can read (`LayerStep` holds them for one module and one step)
INPUT = "input"  # the module's input per call (an in-place activation's is copied)
OUTPUT = "output"  # its output per call
OUTPUT_GRAD = "output_grad"  # dL/d output per call (a tensor hook on the output)
INPUT_GRAD = "input_grad"  # dL/d input through this module only (a hook on a private copy of the input)
PARAMS = "params"  # the module's own parameters, their .grad read when the step ends
UPDATE = "update"  # W before the optimiser step and W_before - W_after (optimiser step hooks)
FINITE = "finite"  # whether each input and output was finite, and the first module in forward order that was not
HOOK_DATA = frozenset({INPUT, OUTPUT, OUTPUT_GRAD, INPUT_GRAD, PARAMS, UPDATE, FINITE})

# how the values of several calls (or micro-batches) of one step combine
ROOT_SUM_SQUARES = "root of the sum of squares"  # norms: ||(g_1, ..., g_k)|| = sqrt(sum_i ||g_i||^2)
SAMPLE_MEAN = "mean over the samples of every call"  # statistics: sum_i n_i m_i / sum_i n_i
ALL_CALLS = "per unit, over the samples of every call"  # unit masks: inactive on every sample of every call
AFTER = "from other metrics, after they are combined"  # ratios and flags: never an average of ratios
MAX = "the largest over the calls"  # extremes: max_i m_i
COUNT = "counted over the calls"
COMBINE = frozenset({ROOT_SUM_SQUARES, SAMPLE_MEAN, ALL_CALLS, MAX, AFTER, COUNT})

# whose value fills a diagnosis column of hidden weight layer l
OWN = "layer"  # layer l itself
ACTIVATION = "activation"  # the first activation after layer l
ABOVE = "above"  # the next weight layer (l + 1, or the read-out)
SOURCES = frozenset({OWN, ACTIVATION, ABOVE})


@dataclass(frozen=True)
class Column:
    """A column of the diagnosis' per-hidden-layer table, filled from one metric.

    key: the LayerReport attribute and JSON key; label: the header; source: whose value (OWN,
    ACTIVATION or ABOVE); digits: significant digits in the terminal; optional: drawn only when
    some layer has a value; drawn: False keeps it in the report and its JSON, not in the tables;
    relative_to_input: divided by the same metric of the model's input (the '<input>' row)."""

    key: str
    label: str
    source: str = OWN
    digits: int = 3
    optional: bool = False
    drawn: bool = True
    relative_to_input: bool = False


@dataclass
class Parts:
    """What a metric reduced inside the step: `norms`, tensors whose 2-norms it wants, and `scalars`,
    0-d tensors. After the step's one host copy the same class holds the floats, in the same order."""

    norms: Sequence = field(default_factory=list)
    scalars: Sequence = field(default_factory=list)


NOTHING = Parts()


class Values(dict):
    """One layer's values at one step, {metric name: value} in the registry's order, knowing which
    of them are overflows when NaN or Inf (`Metric.nonfinite_is_overflow`)."""

    def __init__(self) -> None:
        super().__init__()
        self.overflow_watched: list[str] = []

    def put(self, unit: Metric, value: float) -> None:
        self[unit.name] = value
        if unit.nonfinite_is_overflow:
            self.overflow_watched.append(unit.name)

    def overflowed(self) -> bool:
        """Whether any value whose NaN or Inf means an overflow is NaN or Inf."""
        return any(not math.isfinite(self[name]) for name in self.overflow_watched)


class Metric:
    """One quantity a Probe records (see the module docstring). Subclasses set the class
    attributes and override `measure` and `value`; the class docstring gives the formula."""

    name: ClassVar[str]
    scope: ClassVar[str] = LAYER
    kinds: ClassVar[frozenset[str]] = KINDS
    reads: ClassVar[frozenset[str]] = frozenset()
    combine: ClassVar[str] = AFTER
    columns: ClassVar[tuple[Column, ...]] = ()
    nonfinite_is_overflow: ClassVar[bool] = True  # a NaN or Inf here flags the layer 'nonfinite'
    reads_whole_row: ClassVar[bool] = False  # True: computed after every other layer metric

    def needs(self, kind: str) -> frozenset[str]:
        """The hook data this metric reads on a module of `kind`."""
        return self.reads if kind in self.kinds else frozenset()

    def prepare(self, watched: Watched) -> None:
        """Called once per watched module of its kinds when a probe is entered."""

    def measure(self, layer: LayerStep) -> Parts:
        """Reduce this step's hook data of `layer` to norms and 0-d tensors (no host copy)."""
        return NOTHING

    def value(self, got: Parts, row: Values, layer: LayerStep) -> float | None:
        """The recorded number from the host floats `got` and the values already in `row`."""
        return None


def root_sum_squares(norms: Iterable[float]) -> float:
    """sqrt(sum n_i^2): the norm of several tensors (calls, parameters) taken together."""
    return math.sqrt(sum(n * n for n in norms))


def check(unit: type[Metric]) -> None:
    """Raise a GradvetError naming what a metric class declares wrongly."""
    name = getattr(unit, "name", None)
    if not isinstance(unit, type) or not issubclass(unit, Metric):
        raise GradvetError(f"{unit!r} is not a probe metric; a metric is a subclass of gradvet.probe.metrics.Metric.")
    if not isinstance(name, str) or not name.isidentifier():
        raise GradvetError(f"metric {unit.__name__} has name {name!r}; a metric's name is a Python identifier.")
    problems = [("scope", unit.scope, {LAYER, MODEL, BLOCK}), ("combine", unit.combine, COMBINE)]
    problems += [("kind", k, KINDS) for k in unit.kinds] + [("hook data", r, HOOK_DATA) for r in unit.reads]
    problems += [("column source", c.source, SOURCES) for c in unit.columns]
    for what, value, allowed in problems:
        if value not in allowed:
            raise GradvetError(f"metric {name!r} has {what} {value!r}; allowed: {', '.join(sorted(allowed))}.")
