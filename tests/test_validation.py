"""gradvet.base.validation: the one layer of checks on sizes, numbers and paths, and every command-line
case of issue 12 that it answers, typed as the user typed it.

Cases that would allocate gigabytes, hang or start 100,000 threads without the checks run in a
subprocess under an address-space limit and a timeout: the outcome (exit 2, one line naming the
value and the limit) is asserted, never a duration.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_user_error
from typer.testing import CliRunner

from gradvet.base import validation
from gradvet.base.errors import GradvetError
from gradvet.cli import app
from gradvet.spec import RunSpec
from gradvet.sweep import load_grid

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ADDRESS_SPACE = 2 * 2**30  # bytes: torch and gradvet start in well under this; a deep net or a huge grid does not fit
TIMEOUT = 300  # seconds: generous on a busy 2-core machine; the cases end in seconds

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def limited(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -c code args` under ADDRESS_SPACE and TIMEOUT."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    environ = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]), **(env or {}))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=TIMEOUT,
                          preexec_fn=limit, env=environ, cwd=ROOT)


def assert_one_line(stderr: str, *fragments: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# Several command lines in one limited process (one torch import), each through typer's runner
# exactly as typed; prints [exit code, stderr] per command line.
CLI_CASES = """
import json, sys
from typer.testing import CliRunner
from gradvet.cli import app
out = []
for line in json.loads(sys.argv[1]):
    result = CliRunner().invoke(app, line)
    out.append([result.exit_code, result.stderr, repr(result.exception)])
print(json.dumps(out))
"""


# -- sizes that must have a limit: refused before anything large is built ---------------------------------

@pytest.mark.slow
def test_huge_depths_and_grids_are_refused_before_any_large_allocation(tmp_path):
    huge = tmp_path / "huge.toml"
    huge.write_text("[grid]\n" + "".join(f"{name} = {list(range(1, 1001))}\n" for name in ("seed", "depth", "steps")))
    store = tmp_path / "runs.db"
    cases = [
        (["diagnose", "--depth", "30000", "--width", "8"], ("depth=30000", "MAX_DEPTH")),
        (["choose", "--depth", "100000", "--width", "8"], ("depth=100000", "MAX_DEPTH")),
        (["theory", "tanh", "--depth", "1000000000"], ("depth=1000000000", "MAX_DEPTH")),
        (["diagnose", "--depth", "2", "--width", "100000"], ("width=100000", "MAX_WIDTH")),
        (["diagnose", "--depth", "1000", "--width", "4096"], ("depth x width^2=16777216000", "MAX_WEIGHTS")),
        (["diagnose", "--depth", "10000", "--width", "100", "--batch-size", "256"],
         ("depth x width x batch_size=256000000", "MAX_ACTIVATIONS")),
        (["sweep", str(huge), "--store", str(store)], ("grid size=1000000000", "1000 seed x 1000 depth x 1000 steps",
                                                       "MAX_GRID_RUNS")),
    ]
    proc = limited(CLI_CASES, json.dumps([args for args, _ in cases]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for (args, fragments), (code, stderr, exception) in zip(cases, json.loads(proc.stdout)):
        assert code == 2, (args, stderr, exception)
        assert_one_line(stderr, *fragments)
    assert not store.exists()  # nothing ran


@pytest.mark.slow
def test_gradvet_threads_is_checked_before_torch_starts_threads():
    main = "from gradvet.cli import main; sys.argv[0] = 'gradvet'; main()"
    for value, shown in (("100000", "'100000'"), ("0", "'0'"), ("abc", "'abc'"), ("9" * 5000, "'999")):
        proc = limited("import sys; " + main, "theory", "tanh", "--depth", "3", env={"GRADVET_THREADS": value})
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert_one_line(proc.stderr, f"GRADVET_THREADS={shown}", "from 1 to 256 (MAX_THREADS)")
    ok = limited("import sys; " + main, "theory", "tanh", "--depth", "3", env={"GRADVET_THREADS": "2"})
    assert ok.returncode == 0 and "predicted delta_1/delta_L at depth 3" in ok.stdout, ok.stderr[-2000:]


def test_ray_tasks_read_gradvet_threads_by_the_same_rule(monkeypatch):
    from gradvet.sweep.ray_backend import _threads

    monkeypatch.delenv("GRADVET_THREADS", raising=False)
    assert _threads() == 1
    monkeypatch.setenv("GRADVET_THREADS", "3")
    assert _threads() == 3
    monkeypatch.setenv("GRADVET_THREADS", "100000")
    with pytest.raises(GradvetError, match="GRADVET_THREADS='100000' is not allowed.*MAX_THREADS"):
        _threads()


def test_threads_text():
    assert validation.threads("T", "1") == 1 and validation.threads("T", " 256 ") == validation.MAX_THREADS
    for text in ("257", "0", "-1", "1.5", "", "٣", "1e3"):
        with pytest.raises(GradvetError, match=r"^T=.* is not allowed; allowed: a whole number from 1 to 256"):
            validation.threads("T", text)


def test_sweep_workers_have_a_limit(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text("[base]\nsteps = 3\n")
    assert_user_error(run("sweep", str(grid), "--store", str(tmp_path / "r.db"), "--workers", "100000"),
                      "--workers=100000", "MAX_WORKERS")
    assert not (tmp_path / "r.db").exists()


# -- plain bad values ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,fragments", [
    (("plot", "relu", "--xmax", "inf"), ("xmax=inf", "MAX_ABS_X")),
    (("plot", "relu", "--xmin", "-1e308", "--xmax", "1e308"), ("xmin=-1e+308", "MAX_ABS_X")),
    (("plot", "relu", "--xmin", "nan"), ("xmin=nan", "finite")),
    (("plot", "relu", "--xmin", "2", "--xmax", "2"), ("xmax=2.0", "above xmin=2.0")),
    (("diagnose", "--steps", "2", "--lr", "-1"), ("lr=-1.0", "> 0")),
    (("diagnose", "--lr", "nan"), ("lr=nan", "finite")),
    (("diagnose", "--lr", "inf"), ("lr=inf", "finite")),
    (("diagnose", "--batch-size", "0"), ("batch_size=0", "MAX_BATCH_SIZE")),
    (("diagnose", "--batch-size", "-1"), ("batch_size=-1", "MAX_BATCH_SIZE")),
    (("diagnose", "--seed", str(2**70)), ("seed=1180591620717411303424", "9223372036854775807 (MAX_SEED)")),
    (("diagnose", "--seed", "-1"), ("seed=-1", "MAX_SEED")),
    (("diagnose", "--model", "os:system"), ("--model='os:system'", "builtin_function_or_method", "no arguments")),
    (("diagnose", "--model", "torch.nn:Linear"), ("--model='torch.nn:Linear'", "in_features")),
    (("diagnose", "--steps", "200000"), ("steps=200000", "21 watched layers", "MAX_PROBED_LAYER_STEPS")),
    (("experiment", "cause", "--quick", "--seeds", "0"), ("seeds=0", "MAX_SEEDS")),
    (("choose", "--depth", "4", "--width", "8", "--budget", "nan"), ("budget=nan",)),
])
def test_bad_values_are_one_line_and_exit_2(args, fragments):
    assert_user_error(run(*args), *fragments)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")
@pytest.mark.parametrize("command", [("demo",), ("experiment", "cause", "--quick")])
def test_output_folders_that_cannot_be_made(tmp_path, command):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    for out, why in (("/proc/x", "cannot create it"), (str(a_file), "it is a file, not a folder"),
                     (str(a_file / "sub"), "cannot create it")):
        assert_user_error(run(*command, "--out", out), f"out={out!r}", why, "a folder that can be created and written")
    assert a_file.read_text() == "keep me"
    assert not Path("/proc/x").exists()


def test_the_factory_is_called_only_when_it_is_python_code_without_arguments(tmp_path, monkeypatch):
    (tmp_path / "validation_factories.py").write_text(textwrap.dedent("""
        import itertools, sys
        import torch.nn as nn
        calls = itertools.count()
        tick = calls.__next__                  # a built-in: calling it would advance the count
        def needs_width(width):
            next(calls)
            return nn.Linear(64, width)
        def broken():
            raise RuntimeError("CUDA is not available\\nsecond line")
        def leaves():
            sys.exit(3)
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert_user_error(run("diagnose", "--model", "validation_factories:tick"), "--model='validation_factories:tick'", "not called")
    assert_user_error(run("diagnose", "--model", "validation_factories:needs_width"), "needs arguments", "'width'")
    import validation_factories

    assert next(validation_factories.calls) == 0  # neither was called
    assert_user_error(run("diagnose", "--model", "validation_factories:broken"), "broken() raised RuntimeError: CUDA is not available")
    assert_user_error(run("diagnose", "--model", "validation_factories:leaves"), "leaves() raised SystemExit: 3")


# -- grids: the whole grid checked before the first run ------------------------------------------------------

@pytest.mark.parametrize("text,fragments", [
    ("[base]\nsteps = 3\n[grid]\nactivation = ['relu', 'relux', 'tanh']\nseed = [0, 1]\n",
     ("grid point 3 of 6 (activation='relux', seed=0)", "unknown activation 'relux'", "1 more of the 6 grid points")),
    ("[base]\nsteps = 3\n[grid]\nactivation = ['relu', '__import__(\"os\").system(\"true\")']\n",
     ("grid point 2 of 2", "__import__")),
    ("[base]\nsteps = 3\ndata = '/etc/passwd'\n", ("[base] of", "/etc/passwd", "not a .npz")),
    ("[base]\nactivation = 'elu'\nactivation_params = {alpha = -1}\n", ("[base] of", "alpha")),
    ("[grid]\ndepth = [4, 20000]\nwidth = [8, 16]\n", ("grid point 3 of 4", "depth=20000", "MAX_DEPTH",
                                                       "1 more of the 4 grid points")),
    ("", ("has no fields",)),
    ("# only a comment\n[base]\n[grid]\n", ("has no fields",)),
])
def test_bad_grids_run_nothing_and_exit_2(tmp_path, text, fragments):
    grid, store = tmp_path / "g.toml", tmp_path / "runs.db"
    grid.write_text(text)
    assert_user_error(run("sweep", str(grid), "--store", str(store)), str(grid), *fragments)
    assert not store.exists()  # nothing trained, no store made


def test_a_fifo_as_grid_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "grid.toml"
    os.mkfifo(fifo)
    code = "import sys; from gradvet.cli import main; sys.argv[0] = 'gradvet'; main()"
    proc = limited(code, "sweep", str(fifo), "--store", str(tmp_path / "runs.db"))  # reading it would block
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert_one_line(proc.stderr, str(fifo), "FIFO", "regular file")


def test_grid_file_size_limit(tmp_path, monkeypatch):
    grid = tmp_path / "g.toml"
    grid.write_text("[base]\nsteps = 3\n" + "# padding\n" * 20)
    monkeypatch.setattr(validation, "MAX_GRID_FILE_BYTES", 100)
    size = os.stat(grid).st_size
    assert size > 100
    with pytest.raises(GradvetError, match=rf"it has {size} bytes\); allowed: a regular file of at most 100 bytes"):
        load_grid(grid)


def test_grid_size_is_the_product_counted_before_expanding(tmp_path, monkeypatch):
    grid = tmp_path / "g.toml"
    grid.write_text("[base]\nsteps = 3\n[grid]\nseed = [0, 1, 2]\nlr = [0.1, 0.2]\ndepth = [2, 3]\n")
    monkeypatch.setattr(validation, "MAX_GRID_RUNS", 12)
    assert len(load_grid(grid)) == 3 * 2 * 2
    monkeypatch.setattr(validation, "MAX_GRID_RUNS", 11)
    with pytest.raises(GradvetError, match=r"grid size=12 is not allowed \(3 seed x 2 lr x 2 depth in"):
        load_grid(grid)


def test_each_distinct_activation_and_dataset_is_tried_once(tmp_path, monkeypatch):
    import gradvet.activations
    import gradvet.data

    calls = {"activation": [], "data": []}
    real_activation, real_load = gradvet.activations.activation, gradvet.data.load
    monkeypatch.setattr(gradvet.activations, "activation",
                        lambda name, **p: calls["activation"].append(name) or real_activation(name, **p))
    monkeypatch.setattr(gradvet.data, "load", lambda name, **o: calls["data"].append(name) or real_load(name, **o))
    grid = tmp_path / "g.toml"
    grid.write_text("[grid]\nactivation = ['relu', 'tanh']\nseed = [0, 1, 2]\ndata = ['digits']\n")
    assert len(load_grid(grid)) == 6
    assert sorted(calls["activation"]) == ["relu", "tanh"] and calls["data"] == ["digits"]


# -- the limits agree with what the libraries accept ------------------------------------------------------------

def test_max_seed_is_what_torch_and_sqlite_take():
    torch.Generator().manual_seed(validation.MAX_SEED)
    torch.Generator().manual_seed(0)
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (seed INTEGER)")
    con.execute("INSERT INTO t VALUES (?)", (validation.MAX_SEED,))
    assert con.execute("SELECT seed FROM t").fetchone()[0] == validation.MAX_SEED
    with pytest.raises(OverflowError):  # SQLite's INTEGER is signed 64-bit: one more does not fit
        con.execute("INSERT INTO t VALUES (?)", (validation.MAX_SEED + 1,))
    assert RunSpec(seed=validation.MAX_SEED).seed == validation.MAX_SEED
    with pytest.raises(GradvetError, match="seed=9223372036854775808 is not allowed"):
        RunSpec(seed=validation.MAX_SEED + 1)


def test_plots_at_the_x_limit_are_drawn_without_warnings(tmp_path):
    from gradvet.report.activation_plots import plot_family, plot_overlay

    limit = validation.MAX_ABS_X
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy overflow or matplotlib complaints would raise here
        for path in (plot_overlay(["relu", "gelu", "selu"], tmp_path / "o.png", (-limit, limit)),
                     plot_family("sigmoid", tmp_path / "f.png", (-limit, limit))):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(GradvetError, match="MAX_ABS_X"):
        plot_overlay(["relu"], tmp_path / "o.png", (-limit, math.nextafter(limit, math.inf)))


def test_the_weight_count_bounds_the_mlps_hidden_weights():
    """depth x width^2, the number checked against MAX_WEIGHTS, is at least the hidden weights a
    built MLP has (counted by torch) whenever the input is no wider than the hidden layers."""
    from gradvet.models import mlp

    for depth, width, n_in in ((1, 8, 8), (3, 16, 5), (5, 7, 7)):
        model = mlp(n_in, 10, depth, width, "relu", "he")
        hidden = sum(b.linear.weight.numel() for b in model.hidden)
        assert hidden <= depth * width * width
        assert hidden == depth * width * width - (width - n_in) * width  # exact: the first layer is n_in wide


def test_spec_limits_at_and_past_the_edge():
    RunSpec(depth=validation.MAX_DEPTH, width=1, batch_size=1)
    RunSpec(depth=2, width=validation.MAX_WIDTH, batch_size=1)  # exactly MAX_WEIGHTS
    for bad, fragment in ((dict(depth=validation.MAX_DEPTH + 1), "MAX_DEPTH"),
                          (dict(width=validation.MAX_WIDTH + 1, depth=1), "MAX_WIDTH"),
                          (dict(depth=3, width=validation.MAX_WIDTH), "MAX_WEIGHTS"),
                          (dict(batch_size=validation.MAX_BATCH_SIZE + 1), "MAX_BATCH_SIZE"),
                          (dict(steps=validation.MAX_STEPS + 1), "MAX_STEPS"),
                          (dict(depth=True), "depth=True"),
                          (dict(lr=float("nan")), "lr=nan"),
                          (dict(momentum=float("inf")), "momentum=inf")):
        with pytest.raises(GradvetError, match=fragment) as info:
            RunSpec(**bad)
        assert "\n" not in str(info.value) and "is not allowed" in str(info.value)


# -- the helpers ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,ok", [(0, False), (1, True), (10, True), (11, False), (True, False), (3.0, False),
                                      ("3", False), (None, False), (2**200, False)])
def test_whole_number_bounds_are_inclusive(value, ok):
    if ok:
        assert validation.whole_number("n", value, 1, 10, "LIMIT") == value
    else:
        with pytest.raises(GradvetError, match=r"^n=.* is not allowed; allowed: a whole number from 1 to 10 \(LIMIT\)\.$"):
            validation.whole_number("n", value, 1, 10, "LIMIT")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 0.0, -1e-300, False, "1"])
def test_positive_number_refuses(value):
    with pytest.raises(GradvetError, match="allowed: a finite number > 0"):
        validation.positive_number("lr", value)


def test_a_long_value_is_shown_on_one_short_line():
    with pytest.raises(GradvetError) as info:
        validation.whole_number("depth", "x\n" * 10**6, 1)
    assert len(str(info.value)) < 300 and "\n" not in str(info.value)


def test_output_file_and_folder(tmp_path):
    out = validation.output_file("figure", tmp_path / "new" / "deeper" / "f.png", (".png",))
    assert out.parent.is_dir()  # the folder is made, the file is not
    assert not out.exists()
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(GradvetError, match=r"\(it is a folder\)"):
        validation.output_file("figure", tmp_path / "dir.png", (".png",))
    with pytest.raises(GradvetError, match=r"unknown file type '.jpeg'"):
        validation.output_file("figure", tmp_path / "f.jpeg", (".png", ".svg"))
    assert validation.output_folder("out", tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == []  # the write test leaves nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(GradvetError, match="cannot write in it"):
            validation.output_folder("out", folder)
    finally:
        folder.chmod(0o700)


def test_regular_file(tmp_path):
    text = tmp_path / "t.toml"
    text.write_text("x")
    assert validation.regular_file("grid", text) == text
    for path, why in ((tmp_path / "none", "it does not exist"), (tmp_path, "it is a directory"),
                      (Path("/dev/null"), "FIFO, device or socket")):
        with pytest.raises(GradvetError, match=why):
            validation.regular_file("grid", path)
