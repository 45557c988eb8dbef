"""Probe metrics as units, one quantity per file: see `unit` for what a metric declares and
`registry` for the metrics a Probe records and how to add one of your own."""

from gradvet.probe.metrics.layer_step import LayerStep, Seen
from gradvet.probe.metrics.registry import (
    BUILTIN,
    columns,
    drawn_columns,
    find,
    implied_kind,
    metrics,
    register,
    unregister,
)
from gradvet.probe.metrics.unit import Column, Metric, Parts, Values

__all__ = ["BUILTIN", "Column", "LayerStep", "Metric", "Parts", "Seen", "Values", "columns", "drawn_columns", "find",
           "implied_kind", "metrics", "register", "unregister"]
