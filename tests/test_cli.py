"""The command line, through typer's runner and once through the real console script."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_helpers import assert_user_error
from typer.testing import CliRunner

from gradvet.activations import names
from gradvet.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def test_activations_json_lists_the_catalog():
    result = run("activations", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert sorted(d["name"] for d in data) == names()
    relu = next(d for d in data if d["name"] == "relu")
    assert relu["family"] == "relu"
    assert relu["properties"]["max_grad"] == 1.0
    assert relu["properties"]["range_hi"] == "inf"  # strict JSON: no Infinity literal


def test_activations_family_and_sort():
    data = json.loads(run("activations", "--family", "tanh", "--sort", "max_grad", "--json").stdout)
    assert {d["family"] for d in data} == {"tanh"}
    grads = [d["properties"]["max_grad"] for d in data]
    assert grads == sorted(grads, reverse=True)


def test_catalog_carries_the_mean_field_numbers():
    data = json.loads(run("activations", "--family", "tanh", "--sort", "critical_sw2", "--json").stdout)
    edges = [d["mean_field"]["critical_sw2"] for d in data]
    known = [e for e in edges if e is not None]
    assert known == sorted(known) and edges[: len(known)] == known  # ascending, none last
    tanh = next(d for d in data if d["name"] == "tanh")["mean_field"]
    assert tanh["critical_sw2"] == pytest.approx(1.0, abs=1e-12) and tanh["chi1_xavier"] == pytest.approx(1.0, abs=1e-6)
    relu = json.loads(run("show", "relu", "--json").stdout)["mean_field"]
    numbers = {key: relu[key] for key in ("critical_sw2", "chi1_he", "chi1_xavier")}
    assert numbers == pytest.approx({"critical_sw2": 2.0, "chi1_he": 1.0, "chi1_xavier": 0.5}, rel=1e-12)
    leaky = json.loads(run("show", "leaky_relu", "-p", "negative_slope=0.2", "--json").stdout)["mean_field"]
    assert leaky["chi1_he"] == pytest.approx(2 * (1 + 0.04) / 2, rel=1e-12)
    text = run("show", "tanh").stdout
    assert "edge of chaos" in text and "sw2 = 1 at sb2 = 0" in text


def test_activations_table_shows_every_name():
    result = run("activations")
    assert result.exit_code == 0
    for name in ("relu", "sigmoid", "tanh", "gelu_tanh"):
        assert name in result.stdout
    assert "E[f'(z)^2]" in result.stdout and "edge sw2" in result.stdout and "chi1 He" in result.stdout


def test_activations_bad_family_and_sort():
    assert_user_error(run("activations", "--family", "rleu"), "'rleu'", "relu")
    assert_user_error(run("activations", "--sort", "max_grd"), "'max_grd'", "max_grad")


def test_show_name_json_has_derivative_and_properties():
    result = run("show", "Leaky-ReLU", "-p", "negative_slope=0.2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "leaky_relu" and data["params"] == {"negative_slope": 0.2}
    assert "negative_slope" in data["derivative"]
    assert data["properties"]["grad_sq_gauss"] == pytest.approx((1 + 0.04) / 2)
    assert data["pros"] and data["cons"]


def test_show_text_and_plot(tmp_path):
    png, svg = tmp_path / "gelu.png", tmp_path / "sub" / "gelu.svg"
    result = run("show", "gelu", "--plot", str(png))
    assert result.exit_code == 0, result.output
    assert "max |f'|" in result.stdout and "Hendrycks" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run("show", "gelu", "--plot", str(svg)).exit_code == 0
    assert b"<svg" in svg.read_bytes()[:500]


def test_show_formula():
    result = run("show", "x*tanh(log(1+exp(x)))", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["family"] == "custom"
    assert data["properties"]["smoothness"] == "C-inf"


@pytest.mark.parametrize("args,fragments", [
    (("show", "relux"), ("'relux'", "relu")),
    (("show", "__import__('os').system('echo hi')"), ("__import__",)),
    (("show", "x.__class__"), ("x.__class__",)),
    (("show", "elu", "-p", "alpha=-1"), ("alpha=-1", "0 < alpha")),
    (("show", "elu", "-p", "alhpa=1"), ("'alhpa'", "alpha")),
    (("show", "elu", "-p", "alpha"), ("'alpha'", "NAME=VALUE")),
    (("show", "x*(", ), ("x*(",)),
])
def test_show_bad_input_is_one_line_and_exit_2(args, fragments):
    assert_user_error(run(*args), *fragments)


def test_unwritable_or_bad_outputs(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_user_error(run("show", "relu", "--plot", str(blocker / "a.png")), str(blocker / "a.png"))
    assert_user_error(run("show", "relu", "--plot", str(tmp_path / "a.txt")), "'.txt'", ".png")
    assert_user_error(run("plot", "relu", "--out", str(tmp_path / "x.jpeg")), ".jpeg")


def test_plot_overlay_and_family(tmp_path):
    out = tmp_path / "cmp.png"
    result = run("plot", "sigmoid", "tanh", "relu", "x*sigmoid(x)", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000
    fam = tmp_path / "fam.svg"
    assert run("plot", "--family", "sigmoid", "--out", str(fam)).exit_code == 0
    svg = fam.read_text()
    assert "hard_sigmoid" in svg and "log_sigmoid" in svg  # one panel per member


def test_plot_needs_something_and_a_valid_family(tmp_path):
    assert_user_error(run("plot", "--out", str(tmp_path / "a.png")), "nothing to plot")
    assert_user_error(run("plot", "--family", "sigmod", "--out", str(tmp_path / "a.png")), "sigmoid")
    assert_user_error(run("plot", "relu", "--xmin", "3", "--xmax", "1", "--out", str(tmp_path / "a.png")), "xmax=1.0", "xmin=3.0")


def test_console_script_exits_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "gradvet.cli", "show", "sigmoidd"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "sigmoid" in proc.stderr
