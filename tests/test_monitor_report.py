"""A store's monitored runs in the HTML report: their alerts are in the page's embedded data and in the
learning curve's and heatmap's downloadable data, marked on both drawings (one marker per alert: a
triangle on the curve; on the heatmap a cross on the layer's row, or a dashed line for the whole model),
and listed in a table.

Oracles: the alerts as SQLite holds them (read with sqlite3, not through the store's reader), the
heatmap's rows recomputed from the stored layer records, and the SVG parsed as XML.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import xml.etree.ElementTree as ET

import pytest

from gradvet.data import load
from gradvet.report import write_report
from gradvet.spec import RunSpec
from gradvet.sweep import Store
from gradvet.train import run

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    digits = load("digits")
    monitored = RunSpec(optimizer="momentum", lr=0.3, steps=150, depth=6, width=64, eval_every=0, monitor=True)
    with Store(out / "runs.db") as store:
        store.save(run(monitored, dataset=digits))
        store.save(run(RunSpec(steps=20, depth=6, width=64, eval_every=0), dataset=digits))
    html = write_report(out / "report.html", sources=[out / "runs.db"]).read_text()
    con = sqlite3.connect(out / "runs.db")
    alerts = [dict(zip(("step", "kind", "layer"), row)) for row in
              con.execute("SELECT step, kind, layer FROM alerts WHERE run_key = ? ORDER BY rowid", (monitored.key,))]
    hidden = sorted({layer for (layer,) in con.execute(
        "SELECT DISTINCT layer FROM layer_records WHERE run_key = ? AND metric = 'output_grad_norm' AND layer "
        "LIKE 'hidden.%.linear'", (monitored.key,))})
    con.close()
    return {"html": html, "key": monitored.key, "label": monitored.label(), "alerts": alerts, "hidden": hidden}


def figure(html: str, stem: str) -> tuple[ET.Element, dict | None]:
    """The parsed SVG of the figure `stem` and the JSON its 'data (JSON)' link downloads."""
    block = re.search(rf'<figure data-figure="{re.escape(stem)}">(.*?)</figure>(.*?)</div>', html, re.S)
    assert block, stem
    svg = ET.fromstring(re.search(r"<svg.*</svg>", block.group(1), re.S).group(0))
    link = re.search(r'href="data:application/json;base64,([^"]+)"', block.group(2))
    return svg, (json.loads(base64.b64decode(link.group(1))) if link else None)


def groups(svg: ET.Element, prefix: str) -> list[ET.Element]:
    return [g for g in svg.iter(f"{SVG}g") if g.get("id", "").startswith(prefix)]


def test_the_monitored_run_has_both_kinds_of_alert(page):
    kinds = {a["layer"] in page["hidden"] for a in page["alerts"]}
    assert kinds == {True, False}, page["alerts"]  # a layer's alert and a whole model's: both drawings are tested


def test_the_alerts_are_in_the_page_data(page):
    data = json.loads(re.search(r'<script type="application/json" id="gradvet-data">(.*?)</script>', page["html"],
                                re.S).group(1))
    (runs,) = [source["runs"] for source in data.values()]
    by_key = {r["key"]: r for r in runs}
    assert [(a["step"], a["kind"], a["layer"]) for a in by_key[page["key"]]["alerts"]] == \
        [(a["step"], a["kind"], a["layer"]) for a in page["alerts"]]
    assert [r["alerts"] for k, r in by_key.items() if k != page["key"]] == [[]]


def test_the_learning_curve_marks_each_alert_and_its_data_lists_them(page):
    svg, data = figure(page["html"], "learning-curves")
    assert [(a["step"], a["kind"]) for a in data[page["label"]]["alerts"]] == \
        [(a["step"], a["kind"]) for a in page["alerts"]]
    (marks,) = groups(svg, "alert-marks")
    triangles = [p for p in marks.iter(f"{SVG}path")]
    assert len(triangles) == len(page["alerts"])
    xs = [float(re.match(r"M\s*([-\d.]+)", p.get("d")).group(1)) for p in triangles]
    steps = [a["step"] for a in page["alerts"]]
    assert all((x2 > x1) == (s2 > s1) for (x1, s1), (x2, s2) in zip(zip(xs, steps), zip(xs[1:], steps[1:]))
               if s1 != s2)  # placed in the order of their steps


def test_the_heatmap_marks_layer_alerts_on_their_row_and_model_alerts_across(page):
    stem = f"heatmap-{page['key']}"
    svg, data = figure(page["html"], stem)
    assert data["layers"] == page["hidden"]  # the rows: the hidden layers (the read-out is not drawn)
    on_rows = [a for a in page["alerts"] if a["layer"] in page["hidden"]]
    across = [a for a in page["alerts"] if a["layer"] not in page["hidden"]]
    assert [a["row"] for a in data["alerts"]] == [page["hidden"].index(a["layer"]) if a in on_rows else None
                                                  for a in page["alerts"]]
    crosses = [g for g in groups(svg, "alert-marks") if not g.get("id").startswith("alert-marks-line")]
    assert len(crosses) == 1 and len(list(crosses[0].iter(f"{SVG}use"))) == len(on_rows)
    assert len(groups(svg, "alert-marks-line")) == len(across)


def test_the_alerts_table_lists_every_alert(page):
    table = re.search(r'<table class="data" data-table="alerts">(.*?)</table>', page["html"], re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    assert len(rows) == len(page["alerts"])
    steps = [int(json.loads(re.search(r'data-value="([^"]+)"', r).group(1))) for r in rows]
    assert steps == [a["step"] for a in page["alerts"]]
