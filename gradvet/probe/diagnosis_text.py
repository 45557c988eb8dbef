"""A Diagnosis as plain text, for `print(diagnosis)` in a script or a log.

The terminal's table with bars, the HTML report and the notebook's HTML are views of the
report layer (`gradvet.report.diagnosis_view`); this is the one rendering a core object
carries itself, with no dependency: verdict, the backward signal per hidden layer with the
diagnosis columns of the probe's metrics (`probe.metrics.Column`: the chain-rule factors,
forward std, inactive, dead and saturated fractions, and any metric one registers), cause,
notes, theory and the remedies, most promising first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from gradvet.probe.metrics import Column, Metric, drawn_columns

COLUMNS = ("layer", "||dL/dz||", "ratio to last")


def number(value: Any, digits: int = 3) -> str:
    """`digits` significant digits; '-' for None; nan and inf as Python writes them."""
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def _table(rows: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell, the first left-aligned, the numbers right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) if i in (0, len(row) - 1) else cell.rjust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return lines


def metric_columns(d, units: Iterable[type[Metric]] | None = None) -> list[Column]:
    """The metric columns a table of diagnosis `d` draws (an optional one only where some layer has a value)."""
    return drawn_columns([lay.values for lay in d.layers], units)


def plain_text(d, units: Iterable[type[Metric]] | None = None) -> str:
    """The diagnosis `d` (a `probe.diagnosis.Diagnosis`) in lines of plain text; `units`: the metrics
    whose columns to show (the registered ones by default)."""
    lines = [f"verdict: {d.verdict} at step {d.step} (delta_1/delta_L = {number(d.ratio)}; vanishing below "
             f"{d.thresholds['vanishing']:g}, exploding above {d.thresholds['exploding']:g})"]
    if d.layers:
        shown = metric_columns(d, units)
        rows = [[*COLUMNS, *(c.label for c in shown), "flags"]]
        rows += [[lay.name, number(lay.delta), number(lay.ratio_to_last),
                  *(number(lay.values.get(c.key), c.digits) for c in shown), ", ".join(lay.flags)] for lay in d.layers]
        lines += [f"backward signal per hidden layer at step {d.step}:", *("  " + line for line in _table(rows))]
    lines.append(f"cause: {d.cause}")
    lines += [f"note: {note}" for note in d.notes]
    if d.prediction_note:
        lines.append(f"theory: {d.prediction_note}")
    if d.remedies:
        lines.append("remedies, most promising first:")
        lines += [f"  {i}. {remedy.action} - {remedy.why}" for i, remedy in enumerate(d.remedies, 1)]
    return "\n".join(lines)
