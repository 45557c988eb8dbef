"""The HTML report: numbers in the page equal the JSON they came from, downloads hold the
shown data, nothing is fetched, bad input is one clear line. (Rendering in a real browser:
test_report_browser.py.)"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import os
import re
import shutil
import socket
import sqlite3
import tempfile
from html import escape, unescape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_user_error, cli_batch
from hostile_results import HOSTILE_SVG, SECRET, SECRET_SVG, experiment_json
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from gradvet.base.files import MAX_FIGURE_BYTES, MAX_JSON_BYTES, MAX_JSON_DEPTH
from gradvet.checkup import checkup
from gradvet.cli import app
from gradvet.data import load
from gradvet.models import mlp
from gradvet.probe.histograms import activation_histograms
from gradvet.report import build_page, write_report
from gradvet.report.page import SHOWN_CHARS, fmt
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


def assert_shows_4_digits(shown: str, value: float) -> None:
    """The text read back with float() is `value` to within half a unit of its 4th significant digit,
    and holds at most 4 significant digits (a whole number, an int, exactly)."""
    if isinstance(value, int):
        assert shown == str(value)
        return
    back = float(shown)
    if not math.isfinite(value):
        assert shown == str(value) and (back == value or (math.isnan(back) and math.isnan(value)))
        return
    exponent = math.floor(math.log10(abs(value))) if value else 0
    assert abs(back - value) <= 0.5 * 10 ** (exponent - 3) * (1 + 1e-9), (shown, value)
    assert len(shown.lstrip("-").split("e")[0].replace(".", "").lstrip("0")) <= 4, shown


@pytest.mark.parametrize("value,expected", [  # typed by hand from Python's .4g and the page's rules
    (0.000123456, "0.0001235"), (1.5e-06, "1.5e-06"), (123456.0, "1.235e+05"), (2.0, "2"), (-0.03125, "-0.03125"),
    (12, "12"), (math.nan, "nan"), (-math.inf, "-inf"), (None, "-"), (True, "yes"), (False, "no"),
    ("relu", "relu"), ("x" * SHOWN_CHARS, "x" * SHOWN_CHARS), ("x" * (SHOWN_CHARS + 1), "x" * (SHOWN_CHARS - 1) + "…"),
])
def test_fmt_known_cases(value, expected):
    assert fmt(value) == expected


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300))
def test_fmt_numbers_read_back(value):
    assert_shows_4_digits(fmt(value), value)


@pytest.mark.slow
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
                assert_shows_4_digits(shown, value)
    embedded = json.loads(page.scripts["gradvet-data"])
    assert embedded["record-1"]["ratio"] == diagnosis_record["ratio"]


@pytest.mark.slow
def test_downloads_hold_the_data_shown(diagnosis_record):
    page = parse(build_page(records=[diagnosis_record]).render())
    link = next(a for a in page.links if a.get("download") == "diagnosis-profile.csv")
    text = base64.b64decode(link["href"].split(",", 1)[1]).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["layer", "measured ratio", "predicted ratio"]
    for row, layer in zip(rows[1:], diagnosis_record["layers"]):
        assert row[0] == layer["name"] and float(row[1]) == layer["ratio_to_last"]
        assert float(row[2]) == pytest.approx(layer["predicted_ratio"], rel=1e-15)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_report_command_and_bad_input(results_dir, tmp_path):
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(results_dir / "runs.db"), "--out", str(out), "-a", "x*tanh(softplus(x))"])
    assert result.exit_code == 0, result.output
    explorer = json.loads(parse(out.read_text()).scripts["explorer-data"])
    assert explorer["activations"][-1]["formula"] == "x*tanh(softplus(x))"
    assert_user_error(runner.invoke(app, ["report", str(tmp_path / "none.json"), "--out", str(out)]), "none.json",
                      "does not exist")
    assert_user_error(runner.invoke(app, ["report", "--out", str(tmp_path / "r.txt")]), "r.txt", ".html")
    (tmp_path / "d.html").mkdir()
    assert_user_error(runner.invoke(app, ["report", "--out", str(tmp_path / "d.html")]), "d.html", "a directory")
    assert_user_error(runner.invoke(app, ["report", "-a", "tnah", "--out", str(out)]), "'tnah'", "tanh")
    not_ours = tmp_path / "other.json"
    not_ours.write_text('{"a": 1}')
    assert_user_error(runner.invoke(app, ["report", str(not_ours), "--out", str(out)]), "other.json",
                      "not a gradvet result")
    # a bad --report path is refused before any work
    assert_user_error(runner.invoke(app, ["diagnose", "--depth", "2", "--report", str(tmp_path / "d.png")]), ".html")


@pytest.mark.slow
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


@pytest.mark.slow
def test_script_blocks_survive_hostile_text_and_broken_json_is_one_line(tmp_path, diagnosis_record):
    record = dict(diagnosis_record, model="<!--<script>alert(1)</script>-->")
    html = build_page(records=[record]).render()
    block = re.search(r'<script type="application/json" id="gradvet-data">(.*?)</script>', html, re.S).group(1)
    assert json.loads(block)["record-1"]["model"] == record["model"]  # the whole block parses back
    assert "<script>alert" not in html and "&lt;!--&lt;script&gt;" in html  # shown escaped, never as markup
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "diagnosis", "verdict": ')  # a record of the wrong types renders: see below
    assert_user_error(runner.invoke(app, ["report", str(bad), "--out", str(tmp_path / "r.html")]), "bad.json",
                      "cannot read", "as JSON")


@pytest.mark.slow
def test_explorer_opens_on_the_activation_asked_for(tmp_path):
    out = tmp_path / "e.html"
    assert runner.invoke(app, ["report", "-a", "elu", "--out", str(out)]).exit_code == 0
    assert re.search(r'<option value="elu\(alpha=1\)" selected>', out.read_text())


# -- hostile and damaged input (issue 12) -----------------------------------------------------------
def data_uris(html: str) -> list[bytes]:
    """Every base64 data: URI in the page, decoded (images and downloads alike)."""
    return [base64.b64decode(b) for b in re.findall(r"data:[\w.+/-]+;base64,([A-Za-z0-9+/=]+)", html)]


def notes_of(html: str) -> list[str]:
    return [unescape(n) for n in re.findall(r'<p class="note">(.*?)</p>', html)]


def figure_svg(html: str, stem: str) -> str:
    """The inline SVG drawn in the figure named `stem` (its caption left out)."""
    return re.search(rf'<figure data-figure="{re.escape(stem)}">(<svg.*?</svg>)', html, re.S).group(1)


def fields_named(html: str) -> set[str]:
    """The fields the page's notes name as not shown ("Shown as '-' or left out, ...: a, b.")."""
    named = set()
    for note in notes_of(html):
        if note.startswith("Shown as"):
            named |= set(note.split(": ", 1)[1].rstrip(".").split(", "))
    return named


@pytest.mark.slow
def test_figures_come_only_from_svg_files_beside_the_json_and_as_images(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.svg").write_text(SECRET_SVG)
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "exp-hostile.svg").write_text(HOSTILE_SVG)
    (folder / "exp-hostile.png").write_bytes(b"\x89PNG")  # the PNG twin an experiment writes: passed over
    (folder / "link.svg").symlink_to(outside / "secret.svg")
    (folder / "plain.svg").write_text("no drawing here")
    with open(folder / "huge.svg", "wb") as handle:  # sparse: its size without the disk space
        handle.truncate(MAX_FIGURE_BYTES + 1)
    refused = [str(outside / "secret.svg"), "../outside/secret.svg", "sub/secret.svg", "link.svg", "plain.svg",
               "huge.svg", "missing.svg", ".."]
    path = experiment_json(folder, ["exp-hostile.svg", "exp-hostile.png", *refused, 42])
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    # the one SVG beside the JSON is an <img> of its exact bytes, never markup in the page
    images = re.findall(r'<img alt="[^"]*" src="data:image/svg\+xml;base64,([^"]+)">', html)
    assert [base64.b64decode(b) for b in images] == [HOSTILE_SVG.encode()]
    assert "alert(" not in html and "safe-drawing" not in html and "127.0.0.1" not in html
    assert 'data-figure="exp-hostile"' in html
    # its data stays downloadable: the experiment's result, as the JSON holds it
    link = next(a for a in parse(html).links if a.get("download") == "exp-hostile.json")
    assert json.loads(base64.b64decode(link["href"].split(",", 1)[1])) == {"answer": 42}
    # nothing from outside the folder, in any form; every refused entry named in a note, the PNG in none
    assert SECRET not in html and all(SECRET.encode() not in d for d in data_uris(html))
    notes = notes_of(html)
    for entry in [*refused, "int"]:
        named = f"Figure {entry!r} is not embedded" if len(entry) < 40 else f"Figure '{entry[:40]}"  # long ones cut
        assert sum(n.startswith(named) and "is not embedded" in n for n in notes) == 1, entry
    assert not any("png" in n for n in notes)


@pytest.mark.slow
def test_producer_writes_figure_names_the_report_embeds(tmp_path):
    from gradvet.experiments.base import Context
    from gradvet.report.experiment_view import ExperimentView

    ctx = Context(name="mini", data="digits", out=tmp_path / "made", seeds=1, quick=True, view=ExperimentView())
    ctx.figure("line", "demo.exploding", {"runs": {"a run": {"step": [0, 1], "grad_norm": [1.0, 0.5]}}})
    record = json.loads(ctx.write_json().read_text())
    assert record["figures"] == ["mini-line.png", "mini-line.svg"]  # names: the files lie beside the JSON
    html = build_page([tmp_path / "made" / "mini.json"]).render()
    images = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    assert [base64.b64decode(b) for b in images] == [(tmp_path / "made" / "mini-line.svg").read_bytes()]
    assert notes_of(html) == []


def test_big_and_deeply_nested_json_are_one_line(tmp_path):
    out = str(tmp_path / "r.html")
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(MAX_JSON_BYTES + 1)
    assert_user_error(runner.invoke(app, ["report", str(big), "--out", out]), "big.json", "32 MB")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)  # past the recursion limit of Python's JSON reader
    assert_user_error(runner.invoke(app, ["report", str(deep), "--out", out]), "deep.json", "deeper")
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"kind": "diagnosis", "notes": json.loads("[" * 70 + "]" * 70)}))
    assert_user_error(runner.invoke(app, ["report", str(nested), "--out", out]), "nested.json",
                      f"deeper than {MAX_JSON_DEPTH} levels")


def test_a_socket_as_source_is_one_line(tmp_path):
    folder = Path(tempfile.mkdtemp(dir="/tmp"))  # a socket's path must be short
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(folder / "s.json"))
            assert_user_error(runner.invoke(app, ["report", str(folder / "s.json"), "--out", str(tmp_path / "r.html")]),
                              "s.json", "is a socket, not a regular file")
    finally:
        shutil.rmtree(folder)


@pytest.mark.slow
def test_dev_zero_and_fifos_are_one_line_without_hanging(tmp_path):
    """In one child process held to 4 GB of address space (`cli_batch`): a hang fails the test by the
    timeout instead of hanging it, a read without end by MemoryError."""
    out = str(tmp_path / "r.html")
    for name in ("fifo.json", "fifo.db"):
        os.mkfifo(tmp_path / name)
    os.mkfifo(tmp_path / "pipe.html")  # as the page to write: the write would block
    # a FIFO among a folder's results, or as an experiment's figure, is passed over
    folder = tmp_path / "results"
    experiment_json(folder, ["exp-pipe.svg"])
    os.mkfifo(folder / "exp-pipe.svg")
    os.mkfifo(folder / "other.json")
    zero, fifo_json, fifo_db, pipe, among = cli_batch(
        ["report", "/dev/zero", "--out", out], ["report", tmp_path / "fifo.json", "--out", out],
        ["report", tmp_path / "fifo.db", "--out", out], ["report", "--out", tmp_path / "pipe.html"],
        ["report", folder, "--out", out], address_space=4 * 2**30)
    assert_user_error(zero, "'/dev/zero'", "character device")
    assert_user_error(fifo_json, "fifo.json", "FIFO")
    assert_user_error(fifo_db, "fifo.db", "FIFO")
    assert_user_error(pipe, "pipe.html", "FIFO")
    assert among.exit_code == 0, among.output
    assert any("Figure 'exp-pipe.svg' is not embedded" in n and "FIFO" in n for n in notes_of(Path(out).read_text()))


@pytest.fixture
def tampered_store(results_dir, tmp_path):
    """The results folder's store, damaged by hand: metrics as a list, a 1 MB label, a mathtext label, a
    history nested 70 levels, and layer records of the wrong types."""
    path = tmp_path / "tampered.db"
    shutil.copy(results_dir / "runs.db", path)
    con = sqlite3.connect(path)
    (first, second) = [k for (k,) in con.execute("SELECT key FROM runs ORDER BY rowid")]
    con.execute("UPDATE runs SET metrics = '[1, 2]', label = ? WHERE key = ?", (BIG_LABEL, first))
    con.execute("UPDATE runs SET label = ?, history = ? WHERE key = ?", (MATH_LABEL, "[" * 70 + "]" * 70, second))
    con.execute("UPDATE layer_records SET step = 'x' WHERE rowid = (SELECT min(rowid) FROM layer_records "
                "WHERE run_key = ?)", (second,))
    con.execute("UPDATE layer_records SET value = 'abc' WHERE rowid = (SELECT max(rowid) FROM layer_records "
                "WHERE run_key = ?)", (second,))
    con.commit()
    con.close()
    return path, first, second


BIG_LABEL = "L" * 999_999 + "!"
MATH_LABEL = r"$\frac{1}{$ and $x^2$"


@pytest.mark.slow
def test_tampered_store_renders_with_cut_labels_and_notes(tampered_store, tmp_path):
    path, first, second = tampered_store
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    page = parse(html)
    rows = {r[0][0]: r for r in page.tables["runs"] if r}
    # metrics as a list: its numbers are '-' (and the alerts of a run not monitored)
    assert [cell for cell in rows[first][3:]] == [("-", None)] * 5
    # the 1 MB label is cut on the page and whole in the embedded data and the download
    assert rows[first][1][0] == BIG_LABEL[: SHOWN_CHARS - 1] + "…"
    embedded = json.loads(page.scripts["gradvet-data"])[str(path)]["runs"]
    assert [r["label"] for r in embedded if r["key"] == first] == [BIG_LABEL]
    csv_link = next(a for a in page.links if a.get("download") == "runs.csv")
    assert f"\n{first},{BIG_LABEL},done," in base64.b64decode(csv_link["href"].split(",", 1)[1]).decode()
    # the mathtext label is drawn as written (matplotlib's SVG keeps text as text), not parsed
    assert rows[second][1][0] == MATH_LABEL
    assert escape(MATH_LABEL, quote=False) in figure_svg(html, f"profile-{second}")
    legend = figure_svg(html, "learning-curves")  # the first run's curve (the second's history is gone)
    assert "L" * 59 + "…" in legend and "L" * 60 not in legend  # figures cut labels to 60 characters
    assert {"metrics", "history", "layer_records rows"} <= fields_named(html)
    assert any(n.startswith(f"Text longer than {SHOWN_CHARS} characters is cut") for n in notes_of(html))
    assert html.count('data-figure="profile-') == 2  # both runs' layers are still drawn


TAMPERED_JSON = {
    "diagnosis": {"kind": "diagnosis", "verdict": 3, "ratio": "small", "notes": "one", "remedies": [1, {"action": []}],
                  "layers": [{"name": "a", "delta": "big", "ratio_to_last": 0.5}, "junk", {"name": ["x"], "delta": 1e-3}],
                  "histograms": {"$\\frac{$": {"edges": [0, 1, 2], "counts": [3, 4]}, "bad": {"edges": [0], "counts": [1]}}},
    "missing": {"kind": "diagnosis"},
    "choice": {"kind": "choice", "rows": [{"rank": 1, "name": "$\\sqrt{x}$", "quality": "high", "ratio": [1]}, 7],
               "weights": [1], "depth": {"a": 1}, "rules": "none", "steps": None},
    "theory": {"kind": "theory", "activation": ["tanh"], "chi1": "one", "phase": 5, "profile": {"a": 1},
               "phase_diagram": {"sb2": [0.1, "x", 0.2], "critical_sw2": [1e308, 2.0, -1e308]}, "sw2": True},
    "experiment": {"experiment": "exp", "tables": {"not": "a list"}, "figures": "exp.svg", "quick": "yes",
                   "seeds": "many", "result": [1]},
}


@pytest.mark.slow
def test_tampered_json_results_render_with_dashes_and_notes(tmp_path):
    paths = []
    for name, record in TAMPERED_JSON.items():
        paths.append(tmp_path / name / f"{name}.json")
        paths[-1].parent.mkdir()
        paths[-1].write_text(json.dumps(record))
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", *map(str, paths), "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    page = parse(html)
    layers = [r for r in page.tables["diagnosis-layers"] if r]
    assert [(r[0][0], r[1]) for r in layers] == [("a", ("-", None)), ("-", ("0.001", "0.001"))]
    assert json.loads(page.scripts["gradvet-data"])[str(paths[0])] == TAMPERED_JSON["diagnosis"]  # kept whole
    assert [r[4][0] for r in page.tables["choice-ranking"] if r] == ["-"]  # quality "high" is no number
    assert dict((r[0][0], r[1][0]) for r in page.tables["theory-numbers"] if r) == {"sw2": "-", "chi1": "-",
                                                                                    "phase": "-"}
    # mathtext is drawn as written in the histogram title and the bar label
    assert "$\\frac{$" in figure_svg(html, "histograms") and "$\\sqrt{x}$" in figure_svg(html, "choice-quality")
    assert fields_named(html) == {"verdict", "ratio", "notes", "remedies entries", "action", "layers entries", "delta",
                                  "name", "histograms entries", "rows entries", "quality", "weights", "depth", "rules",
                                  "activation", "sw2", "chi1", "phase", "profile", "tables", "figures", "quick",
                                  "seeds", "result"}
    assert html.count('data-figure="histograms"') == 1
    # numbers near the float range cannot be placed on matplotlib's linear axes: said in the figure's place,
    # its data still downloadable
    assert "not drawn: matplotlib cannot place these values on its axes" in figure_svg(html, "phase-diagram")
    link = next(a for a in page.links if a.get("download") == "phase-diagram.csv")
    assert base64.b64decode(link["href"].split(",", 1)[1]).decode() == "sb2,critical sw2\n0.1,1e+308\n0.2,-1e+308\n"
