"""`gradvet demo`: exits 0, writes its files, tells the story with numbers that hold, reuses its store."""

from __future__ import annotations

import json

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
    second = runner.invoke(app, ["demo", "--out", str(out)])
    assert second.exit_code == 0, second.output
    assert "runs: 0 trained, 7 reused" in second.stdout.replace("\n", " ")
