"""`gradvet demo`: exits 0, writes its files, tells the story with numbers that hold, reuses its store."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from gradvet.cli import app


def test_demo_writes_its_files_and_reuses_the_store(tmp_path):
    out = tmp_path / "report"
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--out", str(out)])
    assert first.exit_code == 0, first.output
    names = {p.name for p in out.iterdir()}
    assert {"summary.md", "demo.json", "runs.db", "demo-activations.png", "demo-activations.svg",
            "demo-exploding.png", "demo-exploding.svg"} <= names
    result = json.loads((out / "demo.json").read_text())["result"]
    # the story's claims, as numbers
    assert result["sigmoid_at_init"]["verdict"] == "vanishing" and result["sigmoid_at_init"]["ratio"] < 1e-3
    training = result["training"]
    assert training["relu"]["test_accuracy"] > 0.8 > training["sigmoid"]["test_accuracy"]
    assert training["tanh"]["test_accuracy"] > training["sigmoid"]["test_accuracy"]
    assert training["relu"]["speed_at_init"] > 1e3 * training["sigmoid"]["speed_at_init"]
    assert result["exploding"]["clipped"]["status"] == "done"
    assert "Recommendation" in first.stdout and "summary.md" in first.stdout and "Next:" in first.stdout
    assert "runs: 7 trained, 0 reused" in first.stdout.replace("\n", " ")
    # the HTML report: the demo's numbers, the sigmoid net's diagnosis with theory's prediction, the runs
    html = (out / "index.html").read_text()
    embedded = json.loads(re.search(r'<script type="application/json" id="gradvet-data">(.*?)</script>', html).group(1))
    record = embedded["record-1"]
    assert record["kind"] == "diagnosis" and record["ratio"] == result["sigmoid_at_init"]["ratio"]
    assert 0.5 < record["predicted_ratio"] / record["ratio"] < 2
    for marker in ('data-table="diagnosis-layers"', 'data-figure="histograms"', 'data-table="runs"',
                   'data-figure="demo-activations"', 'id="explorer-data"'):
        assert marker in html
    second = runner.invoke(app, ["demo", "--out", str(out)])
    assert second.exit_code == 0, second.output
    assert "runs: 0 trained, 7 reused" in second.stdout.replace("\n", " ")
