"""The metrics a Probe records, in order: the built-in units below, then any a user registers.

The order is the order of a layer's rows in the trace and of the diagnosis table's columns;
a metric that reads other metrics' values (gain, std, nonfinite) comes after them. Adding a
built-in metric is one file in this package and one line in BUILTIN; a user's own metric is
one class and `register(MyMetric)`, and every renderer of the diagnosis then shows its columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gradvet.base.errors import GradvetError
from gradvet.probe.metrics.bias_grad_norm import BiasGradNorm
from gradvet.probe.metrics.block_gain import BlockGain
from gradvet.probe.metrics.branch_ratio import BranchRatio
from gradvet.probe.metrics.calls import Calls
from gradvet.probe.metrics.dead_fraction import DeadFraction
from gradvet.probe.metrics.gain import Gain
from gradvet.probe.metrics.input_grad_norm import InputGradNorm
from gradvet.probe.metrics.input_std import InputStd
from gradvet.probe.metrics.mean import Mean
from gradvet.probe.metrics.nonfinite import Nonfinite
from gradvet.probe.metrics.nonfinite_input import NonfiniteInput
from gradvet.probe.metrics.nonfinite_output import NonfiniteOutput
from gradvet.probe.metrics.norm_layer import NormLayer
from gradvet.probe.metrics.output_grad_norm import OutputGradNorm
from gradvet.probe.metrics.persistent_dead_fraction import PersistentDeadFraction
from gradvet.probe.metrics.saturated_fraction import SaturatedFraction
from gradvet.probe.metrics.std import Std
from gradvet.probe.metrics.stream_grad_norm import StreamGradNorm
from gradvet.probe.metrics.stream_std import StreamStd
from gradvet.probe.metrics.unit import BLOCK, LAYER, Column, Metric, check
from gradvet.probe.metrics.update_ratio import UpdateRatio
from gradvet.probe.metrics.weight_grad_norm import WeightGradNorm

BUILTIN: tuple[type[Metric], ...] = (
    InputStd,
    OutputGradNorm, InputGradNorm, WeightGradNorm, BiasGradNorm, Gain,
    Mean, Std, DeadFraction, PersistentDeadFraction, SaturatedFraction,
    UpdateRatio, Calls, NormLayer,
    StreamGradNorm, BlockGain, StreamStd, BranchRatio,  # per repeated block (scope BLOCK)
    NonfiniteInput, NonfiniteOutput, Nonfinite,
)

_registered: list[type[Metric]] = list(BUILTIN)


def metrics() -> tuple[type[Metric], ...]:
    """Every registered metric, in recording order."""
    return tuple(_registered)


def find(name: str, scope: str = LAYER) -> type[Metric] | None:
    """The registered metric of that name and scope, or None."""
    return next((u for u in _registered if u.name == name and u.scope == scope), None)


def register(unit: type[Metric]) -> type[Metric]:
    """Add a metric class (usable as a class decorator): every Probe created afterwards records
    it, and the diagnosis shows its columns. It goes after the other metrics, before those that
    read a layer's whole row (nonfinite)."""
    check(unit)
    if find(unit.name, unit.scope) is not None:
        raise GradvetError(f"a {unit.scope} metric named {unit.name!r} is registered already; "
                           "give yours another name, or unregister the other first.")
    at = next((i for i, u in enumerate(_registered) if u.reads_whole_row), len(_registered))
    _registered.insert(at, unit)
    return unit


def unregister(name: str, scope: str = LAYER) -> None:
    """Remove a metric that `register` added (the built-in ones stay: pass `metrics=` to a Probe
    to record fewer)."""
    unit = find(name, scope)
    if unit is None or unit in BUILTIN:
        added = [u.name for u in _registered if u not in BUILTIN]
        raise GradvetError(f"{name!r} is not a registered metric of your own; registered: "
                           f"{', '.join(added) if added else 'none'}.")
    _registered.remove(unit)


def columns(units: Iterable[type[Metric]] | None = None) -> list[Column]:
    """The diagnosis columns of the metrics (the registered ones by default), in order."""
    return [c for u in (metrics() if units is None else units) if u.scope == LAYER for c in u.columns]


def drawn_columns(layers: Iterable[Mapping[str, Any]], units: Iterable[type[Metric]] | None = None) -> list[Column]:
    """The columns a table of these layers (one {column key: value} each) draws: those drawn at
    all, an optional one only when some layer has a value."""
    layers = list(layers)
    return [c for c in columns(units)
            if c.drawn and (not c.optional or any(lay.get(c.key) is not None for lay in layers))]


def implied_kind(metric_name: str) -> str:
    """The kind of module a metric of that name implies (for a trace read back without its
    model): 'activation', 'norm' or 'weight' when it is measured only on such modules (weight
    and norm layers count as 'weight'), 'block' for a block metric, else 'other'."""
    unit = find(metric_name)
    if unit is None and find(metric_name, BLOCK) is not None:
        return "block"
    kinds = unit.kinds if unit is not None else frozenset()
    if kinds == {"activation"}:
        return "activation"
    if kinds == {"norm"}:
        return "norm"
    if kinds and kinds <= {"weight", "norm"}:
        return "weight"
    return "other"
