"""One self-contained HTML page: sections of text, inline SVG figures and tables, each with the
data that produced it downloadable from the page, and every source's JSON embedded.

Nothing is fetched: styles and scripts are inline, figures are inline SVG (matplotlib's,
drawn by the report from data, with raster images as data URIs inside them), downloads are
`data:` links, and the page's Content-Security-Policy allows no request at all. An SVG file
read from disk is never inlined: it is an `<img>` of a `data:` URI (`svg_image`), which a
browser draws without running its scripts or loading anything it names. Numeric table
cells carry their exact value in `data-value`, so the page can be checked against the JSON
it came from.

Text from a result is escaped wherever it is shown, and cut to SHOWN_CHARS characters
(`clip`); the downloads and the embedded JSON keep it whole. Element ids and download names
made from a result's text are reduced to safe characters (`slug`).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from gradvet.base.formatting import cell
from gradvet.base.jsonable import jsonable

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
figure svg, figure img { max-width: 100%; height: auto; display: block; }
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
p.note { color: var(--warn); font-size: 13px; }
"""

# The page fetches nothing: no connection, frame, font or remote image; inline styles and scripts (the
# page's own) and data: images only (matplotlib's rasters, SVG files as images). W3C CSP Level 3.
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                           "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")
SHOWN_CHARS = 300  # text from a result longer than this is cut on the page (the data keeps it whole)
TITLE_CHARS = 80  # a tab's title
SLUG_CHARS = 60
CUT_NOTE = (f"Text longer than {SHOWN_CHARS} characters is cut on this page (marked with …); the downloads and "
            "the embedded data hold it whole.")

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


def clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` cut to `limit` characters, the cut marked with '…' (for display only)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slug(text: Any) -> str:
    """`text` as an element id or file stem: letters, digits, '.', '_' and '-' only, at most SLUG_CHARS."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)[: 4 * SLUG_CHARS])[:SLUG_CHARS].strip("-.") or "item"


def svg_image(svg: bytes, alt: str) -> str:
    """An SVG file as `<img src="data:image/svg+xml;base64,...">`. A browser draws an SVG used as an
    image in secure animated mode (W3C SVG Integration, "Processing modes"; HTML's img element):
    its scripts do not run and nothing it names is fetched, so a hostile file can do no harm."""
    encoded = base64.b64encode(svg).decode()
    return f'<img alt="{esc(clip(alt))}" src="data:image/svg+xml;base64,{encoded}">'


def fmt(value: Any, digits: int = 4) -> str:
    """How a value is shown on the page: `gradvet.base.formatting.cell` (numbers to `digits`
    significant digits, None as '-'), long text cut to SHOWN_CHARS."""
    return clip(cell(value, digits))


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
    """One page of the report (a tab): a title, HTML blocks, and notes shown at its end."""

    id: str
    title: str
    blocks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self, html_text: str) -> Section:
        self.blocks.append(f"<p>{html_text}</p>")
        return self

    def raw(self, html_text: str) -> Section:
        self.blocks.append(html_text)
        return self

    def note(self, text: str) -> Section:
        """A remark about what the section could not show (said once however often it is made)."""
        if text and text not in self.notes:
            self.notes.append(text)
        return self

    def show(self, value: Any) -> str:
        """`value` as escaped HTML text (see `fmt`: numbers to 4 digits, None as '-', long text cut)."""
        shown = fmt(value)
        if isinstance(value, str) and len(value) > SHOWN_CHARS:
            self.note(CUT_NOTE)
        return esc(shown)

    def figure(self, drawing: str, caption: str, stem: str, columns: list[str] | None = None,
               rows: list[list[Any]] | None = None, data: Any = None) -> Section:
        """A figure (inline SVG markup the report drew, or an `svg_image`) with its caption and the data behind it."""
        stem = slug(stem)
        self.blocks.append(
            f'<div class="card"><figure data-figure="{esc(stem)}">{drawing}<figcaption>{self.show(caption)}'
            f"</figcaption></figure>{download_links(stem, columns, rows, data)}</div>")
        return self

    def table(self, title: str, columns: list[str], rows: list[list[Any]], stem: str, note: str = "") -> Section:
        """A table; numeric cells keep their exact value in data-value."""
        stem = slug(stem)
        head = "".join(f"<th>{self.show(c)}</th>" for c in columns)
        body = []
        for row in rows:
            cells = []
            for value in row:
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    exact = json.dumps(jsonable(value))
                    cells.append(f'<td class="num" data-value="{esc(exact)}">{esc(fmt(value))}</td>')
                else:
                    cells.append(f"<td>{self.show(value)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        note_html = f'<p class="muted">{self.show(note)}</p>' if note else ""
        self.blocks.append(
            f'<div class="card"><h3>{self.show(title)}</h3><table class="data" data-table="{esc(stem)}"><thead><tr>'
            f'{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{note_html}'
            f"{download_links(stem, columns, rows)}</div>")
        return self

    def render(self) -> str:
        notes = "".join(f'<p class="note">{esc(n)}</p>' for n in self.notes)
        return (f'<section class="page" id="{esc(self.id)}"><h2>{esc(self.title)}</h2>{"".join(self.blocks)}'
                f"{notes}</section>")


@dataclass
class Page:
    """The whole report: a title, a subtitle, sections (tabs) and the embedded source data."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    sources: dict[str, Any] = field(default_factory=dict)
    scripts: list[str] = field(default_factory=list)

    def section(self, id: str, title: str) -> Section:
        """A new tab; `id` is made safe and unique, `title` cut to TITLE_CHARS."""
        base = slug(id)
        taken = {s.id for s in self.sections}
        unique, n = base, 2
        while unique in taken:
            unique, n = f"{base}-{n}", n + 1
        sec = Section(unique, clip(str(title), TITLE_CHARS))
        self.sections.append(sec)
        return sec

    def render(self) -> str:
        nav = "".join(f'<button type="button" data-target="{esc(s.id)}">{esc(s.title)}</button>' for s in self.sections)
        pages = "".join(s.render() for s in self.sections)
        data = json.dumps(jsonable(self.sources)).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        scripts = "".join(f"<script>{s}</script>" for s in [*self.scripts, NAV_SCRIPT])
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{esc(self.title)}</title><style>{STYLE}</style></head><body>"
                f"<header><h1>{esc(self.title)}</h1><p>{esc(self.subtitle)}</p></header><nav>{nav}</nav>"
                f"<main>{pages}</main>"
                f'<script type="application/json" id="gradvet-data">{data}</script>{scripts}</body></html>\n')
