"""Rendering of a `Choice` (gradvet.choose): a rich table with the advice, the rules and the
budget note for terminals (`render`), and an HTML table for notebooks (`render_html`, shown by
the display formatter `gradvet/__init__.py` registers)."""

from __future__ import annotations

import html
import math

from gradvet.base.formatting import short_number
from gradvet.choose import CONFIRMED, NOT_HERE, NOT_MEASURED, CandidateResult, Choice


def _cells(choice: Choice, row: CandidateResult) -> list[str]:
    theory = short_number(row.theory.predicted_ratio) if row.theory and row.theory.predicted_ratio is not None else "-"
    if row.theory and not row.theory.applies and theory != "-":
        theory += "*"
    quality = f"{row.quality:.3f}" + (f"±{row.quality_sd:.3f}" if row.quality_sd is not None else "")
    return [str(row.rank), row.name, row.init, f"{row.score:.3f}", quality, short_number(row.ratio),
            theory, f"{row.dead_fraction:.0%}" if math.isfinite(row.dead_fraction) else "-",
            f"{row.saturated_fraction:.0%}" if math.isfinite(row.saturated_fraction) else "-",
            f"{row.step_time * 1e3:.2g}" if math.isfinite(row.step_time) else "-", row.reason]


def _headers(choice: Choice) -> list[str]:
    return ["#", "activation", "init", "score", choice.quality_name, "d1/dL init", "theory d1/dL", "dead", "sat",
            "ms/step", "reason"]


def _title(choice: Choice) -> str:
    extras = (f" {choice.norm}norm" if choice.norm else "") + (" residual" if choice.residual else "")
    return (f"activations for an MLP of depth {choice.depth}, width {choice.width}{extras} on {choice.data} "
            f"({choice.task}; {choice.steps} steps of {choice.optimizer} lr {choice.lr:g})")


def render(choice: Choice):
    """A rich renderable: the ranking table, the advice, the rules and what the budget cut."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=_title(choice), header_style="bold", pad_edge=False)
    for h in _headers(choice):
        table.add_column(Text(h), justify="left" if h in ("activation", "init", "reason") else "right",
                         no_wrap=h not in ("reason",))
    for row in choice.rows:
        table.add_row(*(Text(c) for c in _cells(choice, row)))
    lines = [Text.assemble(("winner: ", "bold"), choice.winner or "-", _close_text(choice)),
             Text(f"hidden init: {choice.init_advice}"),
             Text(f"output layer ({choice.task}): {choice.output_advice}"),
             Text(f"normalisation: {choice.norm_advice}"),
             Text("the article's rules here:", style="bold")]
    colour = {CONFIRMED: "green", NOT_HERE: "red", NOT_MEASURED: "yellow"}
    for rule in choice.rules:
        lines.append(Text.assemble(f"  {rule.number}. {rule.text}: ", (rule.mark, colour[rule.mark]),
                                   f" ({rule.evidence})"))
    if any(r.theory and not r.theory.applies for r in choice.rows):
        lines.append(Text(f"* {THEORY_FOOTNOTE}", style="dim"))
    lines.append(Text(choice.budget_note, style="dim"))
    return Group(table, *lines)


THEORY_FOOTNOTE = "theory for the same chain without normalisation or skips: a reference, not a forecast"


def _close_text(choice: Choice) -> str:
    if not choice.close_to_winner:
        return ""
    return (f" ({', '.join(choice.close_to_winner)} within the seed spread of its {choice.quality_name}; "
            "more seeds would separate them)")


def render_html(choice: Choice) -> str:
    """An HTML table of the ranking with the advice and the rules (for notebooks)."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in _headers(choice))
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in _cells(choice, row)) + "</tr>" for row in choice.rows)
    rules = "".join(f"<li>{e(r.text)}: <b>{e(r.mark)}</b> ({e(r.evidence)})</li>" for r in choice.rules)
    return (f"<div><p><b>{e(_title(choice))}</b></p><table><tr>{head}</tr>{body}</table>"
            f"<p>winner: <b>{e(choice.winner or '-')}</b>{e(_close_text(choice))}; "
            f"hidden init: {e(choice.init_advice)}; output layer: {e(choice.output_advice)}; "
            f"normalisation: {e(choice.norm_advice)}</p>"
            f"<ol>{rules}</ol><p><i>{e(choice.budget_note)}</i></p></div>")
