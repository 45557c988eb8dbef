"""The HTML report: numbers in the page equal the JSON they came from, downloads hold the
shown data, nothing is fetched, bad input is one clear line. (Rendering in a real browser:
test_report_browser.py.)"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli_helpers import assert_user_error
from gradvet.checkup import checkup
from gradvet.cli import app
from gradvet.data import load
from gradvet.models import mlp
from gradvet.probe.histograms import activation_histograms
from gradvet.report import build_page, write_report
from gradvet.report.page import fmt
from gradvet.spec import RunSpec
from gradvet.sweep import Store
from gradvet.train import run as train

runner = CliRunner()


class Tables(HTMLParser):
    """Every table with a data-table name: rows of (shown text, data-value or None); and every link."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.links: list[dict[str, str]] = []
        self.scripts: dict[str, str] = {}
        self._table = self._cell = self._script = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "data-table" in a:
            self._table = self.tables.setdefault(a["data-table"], [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag == "td" and self._table is not None:
            self._cell = ["", a.get("data-value")]
        elif tag == "a":
            self.links.append(a)
        elif tag == "script" and a.get("type") == "application/json":
            self._script = a["id"]
            self.scripts[self._script] = ""

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._table[-1].append(tuple(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data
        if self._script is not None:
            self.scripts[self._script] += data


def parse(html: str) -> Tables:
    parser = Tables()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def diagnosis_record():
    torch.manual_seed(0)
    data = load("digits")
    model = mlp(data.n_features, data.n_classes, 6, 48, "tanh", "xavier")
    diagnosis, _ = checkup(model, data)
    return {**diagnosis.to_dict(), "model": "tanh MLP", "data": "digits", "steps": 0}


def test_diagnosis_numbers_round_trip(diagnosis_record):
    html = build_page(records=[diagnosis_record]).render()
    page = parse(html)
    rows = [r for r in page.tables["diagnosis-layers"] if r]
    assert len(rows) == len(diagnosis_record["layers"]) == 6
    keys = ["delta", "ratio_to_last", "predicted_ratio", "activation_gain", "weight_gain", "forward_std",
            "dead_fraction", "saturated_fraction"]
    for row, layer in zip(rows, diagnosis_record["layers"]):
        assert row[0][0] == layer["name"]
        for (shown, exact), key in zip(row[1:], keys):
            value = layer[key]
            if value is None:
                assert shown == "-" and exact is None
            else:
                assert json.loads(exact) == value  # the exact number travels with the cell
                assert shown == fmt(value)  # and is shown to 4 significant digits
    embedded = json.loads(page.scripts["gradvet-data"])
    assert embedded["record-1"]["ratio"] == diagnosis_record["ratio"]


def test_downloads_hold_the_data_shown(diagnosis_record):
    page = parse(build_page(records=[diagnosis_record]).render())
    link = next(a for a in page.links if a.get("download") == "diagnosis-profile.csv")
    text = base64.b64decode(link["href"].split(",", 1)[1]).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["layer", "measured ratio", "predicted ratio"]
    for row, layer in zip(rows[1:], diagnosis_record["layers"]):
        assert row[0] == layer["name"] and float(row[1]) == layer["ratio_to_last"]
        assert float(row[2]) == pytest.approx(layer["predicted_ratio"], rel=1e-15)


def test_nothing_is_fetched(diagnosis_record, tmp_path):
    html = build_page(records=[diagnosis_record]).render()
    # namespaces (xmlns) name things, they are not fetched; any other URL with a scheme would be
    fetched = re.findall(r'(?:src|href)\s*=\s*["\'](?!data:|#)([^"\']+)', html)
    assert fetched == []
    assert "url(http" not in html and "@import" not in html


def test_histograms_match_numpy(tmp_path):
    torch.manual_seed(1)
    model = mlp(10, 3, 3, 32, "relu", "he")
    x = torch.randn(200, 10)
    hists = activation_histograms(model, x)
    assert list(hists) == ["hidden.0.act", "hidden.1.act", "hidden.2.act"]
    with torch.no_grad():
        h = model.hidden[0](x).double().numpy().ravel()
    counts, edges = np.histogram(h, bins=40, range=(h.min(), h.max()))
    assert hists["hidden.0.act"]["counts"] == counts.tolist()
    assert hists["hidden.0.act"]["edges"] == pytest.approx(edges.tolist(), rel=1e-12)
    assert sum(hists["hidden.2.act"]["counts"]) == 200 * 32
    norm_net = mlp(10, 3, 2, 16, "relu", "he", norm="batch")
    before = norm_net.hidden[0].norm.running_mean.clone()
    activation_histograms(norm_net, x)
    assert torch.equal(norm_net.hidden[0].norm.running_mean, before) and norm_net.training  # nothing changed


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """A folder as experiments leave it: a store of two short runs and an experiment JSON."""
    out = tmp_path_factory.mktemp("results")
    with Store(out / "runs.db") as store:
        for act in ("sigmoid", "relu"):
            store.save(train(RunSpec(activation=act, init="xavier", depth=4, width=16, steps=30, eval_every=0)))
    table = {"title": "t", "columns": ["activation", "accuracy"], "rows": [["relu", 0.91], ["sigmoid", 0.1]], "note": ""}
    (out / "mini.json").write_text(json.dumps({"experiment": "mini", "data": "digits", "seeds": 1, "quick": True,
                                               "tables": [table], "figures": [], "result": {"x": 1}}))
    return out


def test_store_and_experiment_folder(results_dir, tmp_path):
    out = write_report(tmp_path / "r.html", sources=[results_dir])
    page = parse(out.read_text())
    runs = [r for r in page.tables["runs"] if r]
    with Store(results_dir / "runs.db") as store:
        stored = {r["key"]: r for r in store.runs()}
    assert {r[0][0] for r in runs} == set(stored)
    for row in runs:
        metrics = stored[row[0][0]]["metrics"]
        assert json.loads(row[5][1]) == metrics["test_accuracy"] and json.loads(row[4][1]) == metrics["final_loss"]
    assert [r[1][1] for r in page.tables["mini-table-1"] if r] == ["0.91", "0.1"]
    html = out.read_text()
    assert html.count('data-figure="heatmap-') == 2 and html.count('data-figure="profile-') == 2
    assert 'id="explorer-data"' in html


def test_theory_report_and_commands(tmp_path):
    out = tmp_path / "t.html"
    result = runner.invoke(app, ["theory", "tanh", "--sw2", "1.5", "--sb2", "0.05", "--json", "--report", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    page = parse(out.read_text())
    shown = {r[0][0]: r[1] for r in page.tables["theory-numbers"] if r}
    assert json.loads(shown["chi1"][1]) == record["chi1"] and json.loads(shown["xi_c"][1]) == record["xi_c"]
    assert 'data-figure="phase-diagram"' in out.read_text()
    assert len(record["profile"]) == 20


def test_report_command_and_bad_input(results_dir, tmp_path):
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(results_dir / "runs.db"), "--out", str(out), "-a", "x*tanh(softplus(x))"])
    assert result.exit_code == 0, result.output
    explorer = json.loads(parse(out.read_text()).scripts["explorer-data"])
    assert explorer["activations"][-1]["formula"] == "x*tanh(softplus(x))"
    assert_user_error(runner.invoke(app, ["report", str(tmp_path / "none.json"), "--out", str(out)]), "none.json",
                      "does not exist")
    assert_user_error(runner.invoke(app, ["report", "--out", str(tmp_path / "r.txt")]), "r.txt", ".html")
    assert_user_error(runner.invoke(app, ["report", "-a", "tnah", "--out", str(out)]), "'tnah'", "tanh")
    not_ours = tmp_path / "other.json"
    not_ours.write_text('{"a": 1}')
    assert_user_error(runner.invoke(app, ["report", str(not_ours), "--out", str(out)]), "other.json",
                      "not a gradvet result")
    # a bad --report path is refused before any work
    assert_user_error(runner.invoke(app, ["diagnose", "--depth", "2", "--report", str(tmp_path / "d.png")]), ".html")


def test_choice_report_round_trips(tmp_path):
    out = tmp_path / "c.html"
    result = runner.invoke(app, ["choose", "--depth", "3", "--width", "16", "--candidates", "relu,sigmoid,tanh",
                                 "--steps", "40", "--seeds", "1", "--budget", "60", "--json", "--report", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    page = parse(out.read_text())
    rows = [r for r in page.tables["choice-ranking"] if r]
    assert [r[1][0] for r in rows] == record["ranking"]
    for row, measured in zip(rows, record["rows"]):
        assert json.loads(row[3][1]) == measured["score"] and json.loads(row[5][1]) == measured["ratio"]
        assert row[10][0] == measured["reason"]
    html = out.read_text()
    assert 'data-figure="choice-quality"' in html and 'data-figure="choice-ratios"' in html
    assert all(rule["evidence"] in html.replace("&#x27;", "'") for rule in record["rules"])


def test_script_blocks_survive_hostile_text_and_malformed_results_are_one_line(tmp_path, diagnosis_record):
    record = dict(diagnosis_record, model="<!--<script>alert(1)</script>-->")
    html = build_page(records=[record]).render()
    block = re.search(r'<script type="application/json" id="gradvet-data">(.*?)</script>', html, re.S).group(1)
    assert json.loads(block)["record-1"]["model"] == record["model"]  # the whole block parses back
    assert "<script>alert" not in html and "&lt;!--&lt;script&gt;" in html  # shown escaped, never as markup
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "diagnosis", "verdict": 3}')
    assert_user_error(runner.invoke(app, ["report", str(bad), "--out", str(tmp_path / "r.html")]), "bad.json",
                      "not a well-formed diagnosis result")


def test_explorer_opens_on_the_activation_asked_for(tmp_path):
    out = tmp_path / "e.html"
    assert runner.invoke(app, ["report", "-a", "elu", "--out", str(out)]).exit_code == 0
    assert re.search(r'<option value="elu\(alpha=1\)" selected>', out.read_text())
