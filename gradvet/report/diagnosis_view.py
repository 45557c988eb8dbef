"""Views of a Diagnosis (`gradvet.probe.diagnosis`): for the terminal the article's picture (the
backward signal falling layer by layer) as a table with log-scale bars, then verdict, cause,
remedies (`render`); for notebooks an HTML table (`render_html`, shown by the display formatter
`gradvet/__init__.py` registers). Plain text for `print` is the probe's own (`probe.diagnosis_text`).

Beside each layer's delta, ratio to the last and theory's prediction, both tables have a column
for each diagnosis column of the probe's metrics (`probe.metrics.Column`, the registered metrics
by default): a metric one registers shows here without a change to this file."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gradvet.base.formatting import number
from gradvet.probe.diagnosis import Diagnosis
from gradvet.probe.diagnosis_text import block_rows, metric_columns
from gradvet.probe.metrics import Metric

COLOURS = {"vanishing": "dark_orange", "exploding": "red", "healthy": "green"}
HTML_COLOURS = {"vanishing": "#b35900", "exploding": "#b00020", "healthy": "#2e7d32"}


def _cells(ratio: float | None, width: int) -> int | None:
    """log10 of the ratio to the last layer on `width` cells: full at 1, empty at 1e-6."""
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return None
    return max(0, min(width, round(width * (1 + math.log10(ratio) / 6))))


def _bar(ratio: float | None, width: int = 24, predicted: float | None = None) -> Text:
    """The measured ratio as a bar of '#', and theory's prediction as a '|' where it falls."""
    filled, mark = _cells(ratio, width), _cells(predicted, width)
    chars = list("#" * (filled or 0) + " " * (width - (filled or 0)))
    if mark is not None:
        chars[min(mark, width - 1)] = "|"
    text = Text()
    for ch in "".join(chars).rstrip():
        text.append(ch, style="magenta bold" if ch == "|" else "cyan")
    return text


def _block_table(d: Diagnosis) -> Table:
    """A residual net's table: the backward signal on the stream per block, with bars."""
    table = Table(title=f"backward signal on the residual stream per block at step {d.step}", header_style="bold")
    header, *rows = block_rows(d)
    for i, col in enumerate(header[:3] + ["(log scale)"] + header[3:]):
        table.add_column(Text(col), justify="left" if i in (0, 3, len(header)) else "right")
    for block, cells in zip(d.blocks, rows):
        table.add_row(Text(cells[0]), *cells[1:3], _bar(block.ratio_to_last), *cells[3:-1], Text(cells[-1]))
    return table


def render(d: Diagnosis, units: Iterable[type[Metric]] | None = None) -> Group:
    """A rich renderable: the per-layer table with bars (per block on the stream for a residual net), the
    verdict, cause, notes, theory and remedies; `units`: the metrics whose columns to draw (the registered
    ones by default)."""
    table = Table(title=f"backward signal per hidden layer at step {d.step}", header_style="bold")
    predicted = any(lay.predicted_ratio is not None for lay in d.layers)
    shown = metric_columns(d, units)
    columns = [("layer", "left"), ("||dL/dz||", "right"), ("ratio to last", "right")]
    columns += [("predicted", "right")] if predicted else []
    columns += [("(log scale)", "left")] + [(c.label, "right") for c in shown] + [("flags", "left")]
    for col, justify in columns:
        table.add_column(Text(col), justify=justify)
    for lay in d.layers:
        cells = [Text(lay.name), number(lay.delta, 3), number(lay.ratio_to_last, 3)]
        cells += [number(lay.predicted_ratio, 3)] if predicted else []
        cells += [_bar(lay.ratio_to_last, predicted=lay.predicted_ratio)]
        cells += [number(lay.values.get(c.key), c.digits) for c in shown] + [Text(", ".join(lay.flags))]
        table.add_row(*cells)
    verdict = Text.assemble(("verdict: ", "bold"), (d.verdict.upper(), f"bold {COLOURS[d.verdict]}"),
                            f"   ({d.ratio_name} = {number(d.ratio, 3)}; vanishing below {d.thresholds['vanishing']:g}, "
                            f"exploding above {d.thresholds['exploding']:g})")
    parts = [_block_table(d) if d.blocks else table, verdict, Text.assemble(("cause: ", "bold"), d.cause)]
    for note in d.notes:
        parts.append(Text.assemble(("note: ", "bold"), note))
    if d.prediction_note:
        parts.append(Text.assemble(("theory: ", "bold"), d.prediction_note,
                                   " ('|' in the bars)" if predicted else ""))
    if d.remedies:
        remedies = Table.grid(padding=(0, 1))
        for i, remedy in enumerate(d.remedies, 1):
            remedies.add_row(Text(f"{i}.", style="bold"), Text.assemble((remedy.action, "bold"), " - ", remedy.why))
        parts.append(Panel(remedies, title="remedies, most promising first", expand=False))
    return Group(*parts)


def render_html(d: Diagnosis, units: Iterable[type[Metric]] | None = None) -> str:
    """An HTML table of the hidden layers (the terminal's columns) with the verdict, cause and remedies (for
    notebooks); every text escaped."""
    e = html.escape
    shown = metric_columns(d, units)
    predicted = any(lay.predicted_ratio is not None for lay in d.layers)
    head = ["layer", "||dL/dz||", "ratio to last"] + (["predicted"] if predicted else [])
    head += [c.label for c in shown] + ["flags"]
    rows = "".join(
        "<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in (
            lay.name, number(lay.delta, 3), number(lay.ratio_to_last, 3),
            *([number(lay.predicted_ratio, 3)] if predicted else []),
            *(number(lay.values.get(c.key), c.digits) for c in shown), ", ".join(lay.flags))) + "</tr>"
        for lay in d.layers)
    if d.blocks:
        head, *cells = block_rows(d)
        rows = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in cells)
    remedies = "".join(f"<li><b>{e(r.action)}</b>: {e(r.why)}</li>" for r in d.remedies)
    return (f"<div><p><b style='color:{HTML_COLOURS[d.verdict]}'>{d.verdict}</b> at step {d.step}: "
            f"{e(d.cause)}</p><table><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr>{rows}</table>"
            f"<ol>{remedies}</ol></div>")
