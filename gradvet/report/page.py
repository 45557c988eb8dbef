"""One self-contained HTML page: sections of text, inline SVG figures and tables, each with the
data that produced it downloadable from the page, and every source's JSON embedded.

Nothing is fetched: styles and scripts are inline, figures are inline SVG (matplotlib's,
with raster images as data URIs inside them), downloads are `data:` links. Numeric table
cells carry their exact value in `data-value`, so the page can be checked against the JSON
it came from.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

from gradvet.jsonable import jsonable

STYLE = """
:root { --ink: #1d2433; --muted: #5b6475; --line: #d9dee7; --accent: #1f5fa8; --bad: #b00020; --warn: #b35900;
        --good: #2e7d32; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); margin: 0;
       background: #f6f7fa; }
header { background: #1d2433; color: #fff; padding: 14px 28px; }
header h1 { margin: 0; font-size: 20px; font-weight: 600; }
header p { margin: 2px 0 0; color: #c8cfdc; font-size: 13px; }
nav { display: flex; flex-wrap: wrap; gap: 4px; padding: 8px 28px; background: #fff; border-bottom: 1px solid var(--line);
      position: sticky; top: 0; z-index: 2; }
nav button { border: 1px solid var(--line); background: #fff; padding: 4px 12px; border-radius: 14px; cursor: pointer;
             font: inherit; font-size: 13px; color: var(--ink); }
nav button.active { background: var(--accent); color: #fff; border-color: var(--accent); }
main { max-width: 1180px; margin: 0 auto; padding: 18px 28px 60px; }
section.page { display: none; }
section.page.active { display: block; }
h2 { font-size: 19px; margin: 8px 0 10px; }
h3 { font-size: 16px; margin: 22px 0 6px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px; margin: 12px 0; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
table.data { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
table.data th, table.data td { border-bottom: 1px solid var(--line); padding: 3px 10px; text-align: left; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.data th { background: #eef1f6; }
.downloads { font-size: 12px; margin-top: 4px; }
.downloads a { color: var(--accent); margin-right: 12px; }
.verdict-vanishing { color: var(--warn); font-weight: 700; }
.verdict-exploding { color: var(--bad); font-weight: 700; }
.verdict-healthy { color: var(--good); font-weight: 700; }
.muted { color: var(--muted); }
ul.tight { margin: 4px 0; padding-left: 20px; }
"""

NAV_SCRIPT = """
(function () {
  var buttons = document.querySelectorAll('nav button');
  function show(id) {
    document.querySelectorAll('section.page').forEach(function (s) { s.classList.toggle('active', s.id === id); });
    buttons.forEach(function (b) { b.classList.toggle('active', b.dataset.target === id); });
  }
  buttons.forEach(function (b) { b.addEventListener('click', function () { show(b.dataset.target); }); });
  if (buttons.length) { show(buttons[0].dataset.target); }
})();
"""


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """How a value is shown in a table cell: numbers to `digits` significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return str(value)


def _data_uri(text: str, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(text.encode()).decode()


def csv_text(columns: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[("" if v is None else v) for v in row] for row in rows])
    return buf.getvalue()


def download_links(stem: str, columns: list[str] | None = None, rows: list[list[Any]] | None = None,
                   data: Any = None) -> str:
    """'data (CSV)' and/or 'data (JSON)' links that download what a figure or table shows."""
    links = []
    if columns is not None and rows is not None:
        links.append(f'<a download="{esc(stem)}.csv" href="{_data_uri(csv_text(columns, rows), "text/csv")}">'
                     "data (CSV)</a>")
    if data is not None:
        text = json.dumps(jsonable(data), indent=1)
        links.append(f'<a download="{esc(stem)}.json" href="{_data_uri(text, "application/json")}">data (JSON)</a>')
    return f'<div class="downloads">{"".join(links)}</div>' if links else ""


@dataclass
class Section:
    """One page of the report (a tab): a title and HTML blocks."""

    id: str
    title: str
    blocks: list[str] = field(default_factory=list)

    def text(self, html_text: str) -> Section:
        self.blocks.append(f"<p>{html_text}</p>")
        return self

    def raw(self, html_text: str) -> Section:
        self.blocks.append(html_text)
        return self

    def figure(self, svg: str, caption: str, stem: str, columns: list[str] | None = None,
               rows: list[list[Any]] | None = None, data: Any = None) -> Section:
        """An inline SVG figure with its caption and the data behind it."""
        self.blocks.append(
            f'<div class="card"><figure data-figure="{esc(stem)}">{svg}<figcaption>{esc(caption)}</figcaption>'
            f"</figure>{download_links(stem, columns, rows, data)}</div>")
        return self

    def table(self, title: str, columns: list[str], rows: list[list[Any]], stem: str, note: str = "") -> Section:
        """A table; numeric cells keep their exact value in data-value."""
        head = "".join(f"<th>{esc(c)}</th>" for c in columns)
        body = []
        for row in rows:
            cells = []
            for value in row:
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    exact = json.dumps(jsonable(value))
                    cells.append(f'<td class="num" data-value="{esc(exact)}">{esc(fmt(value))}</td>')
                else:
                    cells.append(f"<td>{esc(fmt(value))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        note_html = f'<p class="muted">{esc(note)}</p>' if note else ""
        self.blocks.append(
            f'<div class="card"><h3>{esc(title)}</h3><table class="data" data-table="{esc(stem)}"><thead><tr>{head}'
            f'</tr></thead><tbody>{"".join(body)}</tbody></table>{note_html}{download_links(stem, columns, rows)}</div>')
        return self


@dataclass
class Page:
    """The whole report: a title, a subtitle, sections (tabs) and the embedded source data."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    sources: dict[str, Any] = field(default_factory=dict)
    scripts: list[str] = field(default_factory=list)

    def section(self, id: str, title: str) -> Section:
        taken = {s.id for s in self.sections}
        unique, n = id, 2
        while unique in taken:
            unique, n = f"{id}-{n}", n + 1
        sec = Section(unique, title)
        self.sections.append(sec)
        return sec

    def render(self) -> str:
        nav = "".join(f'<button type="button" data-target="{esc(s.id)}">{esc(s.title)}</button>' for s in self.sections)
        pages = "".join(f'<section class="page" id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{"".join(s.blocks)}</section>'
                        for s in self.sections)
        data = json.dumps(jsonable(self.sources)).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        scripts = "".join(f"<script>{s}</script>" for s in [*self.scripts, NAV_SCRIPT])
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{esc(self.title)}</title><style>{STYLE}</style></head><body>"
                f"<header><h1>{esc(self.title)}</h1><p>{esc(self.subtitle)}</p></header><nav>{nav}</nav>"
                f"<main>{pages}</main>"
                f'<script type="application/json" id="gradvet-data">{data}</script>{scripts}</body></html>\n')
