"""Terminal tables and panels (rich) for the catalog."""

from __future__ import annotations

import math
import shutil
import sys

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gradvet.activations import Activation
from gradvet.theory import FIXED_POINT, KIND_TEXT, Q_TO_INFINITY, Q_TO_ZERO, UNDEFINED, mean_field

# The catalog table's mark beside a mean-field number: which end of the length map it belongs to.
KIND_MARK = {FIXED_POINT: "", Q_TO_INFINITY: "↑", Q_TO_ZERO: "↓", UNDEFINED: "?", None: ""}


def console() -> Console:
    """A console as wide as the terminal, and 180 columns (the catalog table's width) when output
    is not a terminal."""
    width = None if sys.stdout.isatty() else max(180, shutil.get_terminal_size().columns)
    return Console(width=width, highlight=False)


def num(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}g}"


def marked(value: float | None, kind: str | None, digits: int = 3) -> str:
    """A mean-field number with its `KIND_MARK`."""
    return num(value, digits) + ("" if value is None else KIND_MARK[kind])


def catalog_table(acts: list[Activation]) -> Table:
    """One row per activation with its key computed properties."""
    table = Table(title=f"gradvet activation catalog ({len(acts)} entries)", header_style="bold", pad_edge=False)
    for col, justify in (("name", "left"), ("family", "left"), ("range", "left"), ("mono", "center"),
                         ("smooth", "left"), ("max|f'| at x", "right"), ("E[f(z)]", "right"),
                         ("E[f'(z)^2]", "right"), ("chi1 He", "right"), ("edge sw2", "right"),
                         ("saturates", "left"), ("dead region", "left"), ("cost", "right")):
        table.add_column(Text(col), justify=justify, no_wrap=col in ("name", "range"))
    for act in acts:
        p, mf = act.properties, mean_field(act)
        at = num(p.max_grad_at, 3)
        cells = (act.name, act.family, str(p.output_range), "yes" if p.monotonic else "no", p.smoothness,
                 f"{num(p.max_grad)} at {at}", num(p.mean_gauss), num(p.grad_sq_gauss), marked(mf.chi1_he, mf.chi1_he_kind),
                 marked(mf.critical_sw2, mf.critical_sw2_kind), p.saturation, p.dead_text(), f"{num(p.cost, 3)}x")
        table.add_row(*(Text(c) for c in cells))
    table.caption = Text("z ~ N(0, 1); E[f'(z)^2] < 1 means the backward signal shrinks through each layer at unit "
                     "variance; chi1 He: the same gain per layer where the length map of a net with He init "
                     "(sw2 = 2, sb2 = 0) goes from the input's q = 1: at its fixed point q*, or ↑ in the limit "
                     "q -> inf (the map diverges), or ↓ in the limit q -> 0+ (the signal dies out); edge sw2: the "
                     "weight variance where chi1 = 1 (sb2 = 0; '-': none; ↑ ↓: where the map goes there); "
                     "cost: forward+backward time relative to ReLU")
    return table


def activation_panel(act: Activation) -> Panel:
    """Everything gradvet knows of one activation."""
    p, mf = act.properties, mean_field(act)
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    rows = [
        ("formula", f"f(x) = {act.formula}"),
        ("derivative", f"f'(x) = {act.derivative_formula}"),
        ("family", act.family),
        ("parameters", ", ".join(f"{k} = {v:g}" for k, v in act.params.items()) or "-"),
        ("aliases", ", ".join(act.aliases) or "-"),
        ("domain", p.domain_text()),
        ("output range", str(p.output_range)),
        ("monotonic", ("yes, " + ("increasing" if p.increasing else "decreasing")) if p.monotonic else "no"),
        ("f' monotonic", "yes" if p.derivative_monotonic else "no"),
        ("smoothness", p.smoothness + (f" (kinks at {', '.join(num(k) for k in p.kinks)})" if p.kinks else "")),
        ("f(0), f'(0)", f"{num(p.f0, 6)}, {num(p.fprime0, 6)}"),
        ("identity near 0", "yes (f(0) = 0, f'(0) = 1)" if p.identity_near_0 else "no"),
        ("max |f'|", f"{num(p.max_grad, 10)} at x = {num(p.max_grad_at, 10)}"),
        ("E[f(z)]", f"{num(p.mean_gauss, 10)}  (z ~ N(0,1); {'zero-centred' if p.zero_centred else 'not zero-centred'})"),
        ("E[f'(z)^2]", f"{num(p.grad_sq_gauss, 10)}  (gradient gain per layer at unit variance)"),
        ("chi1", f"{num(mf.chi1_he, 6)} at He init (sw2 = 2), {KIND_TEXT[mf.chi1_he_kind]}; "
                 f"{num(mf.chi1_xavier, 6)} at Xavier (sw2 = 1), {KIND_TEXT[mf.chi1_xavier_kind]}; "
                 "sb2 = 0, from the input's q = 1"),
        ("edge of chaos", f"sw2 = {num(mf.critical_sw2, 10)} at sb2 = 0, {KIND_TEXT[mf.critical_sw2_kind]}"
         if mf.critical_sw2 is not None else "none at sb2 = 0 (for sw2 in [0.01, 100])"),
        ("saturates", p.saturation),
        ("dead region", p.dead_text()),
        ("cost", f"{num(p.cost, 3)}x ReLU (forward + backward)"),
        ("source", f"{act.paper} ({act.year})" if act.year else (act.paper or act.source)),
    ]
    for key, value in rows:
        info.add_row(Text(key), Text(value))
    parts = [info]
    if act.pros or act.cons:
        notes = Table.grid(padding=(0, 1))
        for pro in act.pros:
            notes.add_row(Text("+", style="green bold"), Text(pro))
        for con in act.cons:
            notes.add_row(Text("-", style="red bold"), Text(con))
        parts += [Text(""), notes]
    return Panel(Group(*parts), title=Text(act.label(), style="bold"), expand=False)


def experiment_table(table) -> Table:
    """An experiment's table (gradvet.experiments.view.Table) for the terminal."""
    out = Table(title=Text(table.title, style="bold"), header_style="bold")
    for i, col in enumerate(table.columns):
        out.add_column(Text(str(col)), justify="left" if i == 0 else "right")
    for row in table.rows:
        out.add_row(*(Text(cell if isinstance(cell, str) else num(cell) if isinstance(cell, float) else str(cell))
                      for cell in row))
    if table.note:
        out.caption = Text(table.note)
    return out
