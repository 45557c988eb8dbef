"""Terminal rendering of a Diagnosis: the article's picture (the backward signal
falling layer by layer) as a table with log-scale bars, then verdict, cause, remedies."""

from __future__ import annotations

import math

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gradvet.base.formatting import number

COLOURS = {"vanishing": "dark_orange", "exploding": "red", "healthy": "green"}


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


def render(d) -> Group:
    table = Table(title=f"backward signal per hidden layer at step {d.step}", header_style="bold")
    predicted = any(lay.predicted_ratio is not None for lay in d.layers)
    dead = any(lay.persistent_dead_fraction is not None for lay in d.layers)  # watched long enough to tell
    columns = [("layer", "left"), ("||dL/dz||", "right"), ("ratio to last", "right")]
    columns += [("predicted", "right")] if predicted else []
    columns += [("(log scale)", "left"), ("activation factor", "right"), ("weight factor", "right"),
                ("forward std", "right"), ("inactive", "right")]
    columns += [("dead", "right")] if dead else []
    columns += [("saturated", "right"), ("flags", "left")]
    for col, justify in columns:
        table.add_column(Text(col), justify=justify)
    for lay in d.layers:
        cells = [Text(lay.name), number(lay.delta, 3), number(lay.ratio_to_last, 3)]
        cells += [number(lay.predicted_ratio, 3)] if predicted else []
        cells += [_bar(lay.ratio_to_last, predicted=lay.predicted_ratio), number(lay.activation_gain, 3),
                  number(lay.weight_gain, 3), number(lay.forward_std, 3), number(lay.dead_fraction, 2)]
        cells += [number(lay.persistent_dead_fraction, 2)] if dead else []
        cells += [number(lay.saturated_fraction, 2), Text(", ".join(lay.flags))]
        table.add_row(*cells)
    verdict = Text.assemble(("verdict: ", "bold"), (d.verdict.upper(), f"bold {COLOURS[d.verdict]}"),
                            f"   (delta_1/delta_L = {number(d.ratio, 3)}; vanishing below {d.thresholds['vanishing']:g}, "
                            f"exploding above {d.thresholds['exploding']:g})")
    parts = [table, verdict, Text.assemble(("cause: ", "bold"), d.cause)]
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
