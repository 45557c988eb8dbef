"""Terminal rendering of a Diagnosis: the article's picture (the backward signal
falling layer by layer) as a table with log-scale bars, then verdict, cause, remedies."""

from __future__ import annotations

import math

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

COLOURS = {"vanishing": "dark_orange", "exploding": "red", "healthy": "green"}


def _num(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.{digits}g}"


def _bar(ratio: float | None, width: int = 24) -> Text:
    """A bar whose length is log10 of the ratio to the last layer: full at 1, empty at 1e-6."""
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return Text("")
    filled = max(0, min(width, round(width * (1 + math.log10(ratio) / 6))))
    return Text("#" * filled, style="cyan")


def render(d) -> Group:
    table = Table(title=f"backward signal per hidden layer at step {d.step}", header_style="bold")
    for col, justify in (("layer", "left"), ("||dL/dz||", "right"), ("ratio to last", "right"), ("(log scale)", "left"),
                         ("activation factor", "right"), ("weight factor", "right"), ("forward std", "right"),
                         ("dead", "right"), ("saturated", "right"), ("flags", "left")):
        table.add_column(Text(col), justify=justify)
    for lay in d.layers:
        table.add_row(Text(lay.name), _num(lay.delta), _num(lay.ratio_to_last), _bar(lay.ratio_to_last),
                      _num(lay.activation_gain), _num(lay.weight_gain), _num(lay.forward_std),
                      _num(lay.dead_fraction, 2), _num(lay.saturated_fraction, 2), Text(", ".join(lay.flags)))
    verdict = Text.assemble(("verdict: ", "bold"), (d.verdict.upper(), f"bold {COLOURS[d.verdict]}"),
                            f"   (delta_1/delta_L = {_num(d.ratio)}; vanishing below {d.thresholds['vanishing']:g}, "
                            f"exploding above {d.thresholds['exploding']:g})")
    parts = [table, verdict, Text.assemble(("cause: ", "bold"), d.cause)]
    for note in d.notes:
        parts.append(Text.assemble(("note: ", "bold"), note))
    if d.remedies:
        remedies = Table.grid(padding=(0, 1))
        for i, remedy in enumerate(d.remedies, 1):
            remedies.add_row(Text(f"{i}.", style="bold"), Text.assemble((remedy.action, "bold"), " - ", remedy.why))
        parts.append(Panel(remedies, title="remedies, most promising first", expand=False))
    return Group(*parts)
