"""A Diagnosis as plain text, for `print(diagnosis)` in a script or a log.

The terminal's table with bars, the HTML report and the notebook's HTML are views of the
report layer (`gradvet.report.diagnosis_view`); this is the one rendering a core object
carries itself, with no dependency: verdict, the backward signal per hidden layer with the
diagnosis columns of the probe's metrics (`probe.metrics.Column`: the chain-rule factors,
forward std, inactive, dead and saturated fractions, and any metric one registers) -- or, for
a residual net, per block on the stream (BLOCK_COLUMNS) --, cause, notes, theory and the
remedies, most promising first.
"""

from __future__ import annotations

from collections.abc import Iterable

from gradvet.base.formatting import number
from gradvet.probe.metrics import Column, Metric, drawn_columns

COLUMNS = ("layer", "||dL/dz||", "ratio to last")
# a residual net's table: (header, BlockReport attribute), the block metrics (`probe.metrics.block_unit`)
BLOCK_COLUMNS = (("block", "name"), ("||dL/dh||", "stream_grad_norm"), ("ratio to last", "ratio_to_last"),
                 ("block gain", "block_gain"), ("stream std", "stream_std"), ("branch ratio", "branch_ratio"))


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


def block_rows(d) -> list[list[str]]:
    """The block table of a residual net (`d.blocks`): a header row, then a row of text cells per block."""
    rows = [[header for header, _ in BLOCK_COLUMNS] + ["flags"]]
    rows += [[b.name, *(number(getattr(b, key), 3) for _, key in BLOCK_COLUMNS[1:]), ", ".join(b.flags)]
             for b in d.blocks]
    return rows


def plain_text(d, units: Iterable[type[Metric]] | None = None) -> str:
    """The diagnosis `d` (a `probe.diagnosis.Diagnosis`) in lines of plain text; `units`: the metrics
    whose columns to show (the registered ones by default)."""
    lines = [f"verdict: {d.verdict} at step {d.step} ({d.ratio_name} = {number(d.ratio, 3)}; vanishing below "
             f"{d.thresholds['vanishing']:g}, exploding above {d.thresholds['exploding']:g})"]
    if d.blocks:
        lines += [f"backward signal on the residual stream per block at step {d.step}:",
                  *("  " + line for line in _table(block_rows(d)))]
    elif d.layers:
        shown = metric_columns(d, units)
        rows = [[*COLUMNS, *(c.label for c in shown), "flags"]]
        rows += [[lay.name, number(lay.delta, 3), number(lay.ratio_to_last, 3),
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
