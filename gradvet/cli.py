"""The `gradvet` command line: a thin typer app over the Python API.

User mistakes (GradvetError) print one line to stderr and exit with status 2,
never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gradvet.base.errors import GradvetError, unknown
from gradvet.base.jsonable import jsonable

app = typer.Typer(
    help="gradvet: see, explain and fix vanishing and exploding gradients; choose activations with evidence.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

INTERRUPTED = 130  # exit status after Ctrl-C, as shells report SIGINT

SORT_KEYS = ("name", "family", "max_grad", "mean_gauss", "grad_sq_gauss", "chi1_he", "critical_sw2", "cost",
             "smoothness", "year")


def fail(message: str) -> None:
    """Print one line to stderr and exit with status 2."""
    typer.echo(f"gradvet: error: {message}", err=True)
    raise typer.Exit(2)


def user_errors(command):
    """Turn GradvetError into one line on stderr and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except GradvetError as err:
            fail(str(err))

    return wrapper


def _parse_params(pairs: list[str] | None) -> dict[str, float]:
    params: dict[str, float] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise GradvetError(f"parameter {pair!r} is not of the form NAME=VALUE (for example negative_slope=0.2).")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            raise GradvetError(f"parameter {pair!r}: value {value!r} is not a number.") from None
    return params


def activation_record(act) -> dict[str, Any]:
    """One activation as a JSON-ready dict: name, family, formula, parameters, properties and the
    mean-field numbers (chi1 at He and Xavier variance, the edge of chaos)."""
    from gradvet.theory import mean_field

    return jsonable({
        "name": act.name,
        "family": act.family,
        "formula": act.formula,
        "params": dict(act.params),
        "aliases": list(act.aliases),
        "paper": act.paper,
        "year": act.year,
        "properties": act.properties.to_dict(),
        "mean_field": mean_field(act).to_dict(),
    })


@app.command("activations")
@user_errors
def activations_command(
    family: Annotated[str | None, typer.Option("--family", "-f", help="only this family (relu, tanh, sigmoid, shrink, other)")] = None,
    sort: Annotated[str, typer.Option("--sort", "-s", help="sort key: " + ", ".join(SORT_KEYS))] = "family",
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list instead of a table")] = False,
) -> None:
    """The catalog with its computed properties."""
    from gradvet.activations import catalog
    from gradvet.activations.registry import check_family

    if family is not None:
        check_family(family)
    if sort not in SORT_KEYS:
        raise unknown("sort key", sort, SORT_KEYS)
    acts = catalog(family)
    acts.sort(key=_sort_key(sort))
    if as_json:
        typer.echo(json.dumps([activation_record(a) for a in acts], indent=1))
        return
    from gradvet.report.tables import catalog_table, console

    console().print(catalog_table(acts))


def _sort_key(key: str):
    from gradvet.activations.registry import FAMILIES

    def value(act):
        if key == "name":
            return (act.name,)
        if key == "family":
            return (FAMILIES.index(act.family), act.name)
        if key == "year":
            return (act.year or 9999, act.name)
        if key in ("chi1_he", "critical_sw2"):
            from gradvet.theory import mean_field

            prop = getattr(mean_field(act), key)
        else:
            prop = getattr(act.properties, key)
        if isinstance(prop, str):
            return (prop, act.name)
        number = float("inf") if prop is None else prop
        return (-number if key in ("max_grad", "grad_sq_gauss", "chi1_he") else number, act.name)

    return value


@app.command("show")
@user_errors
def show_command(
    name: Annotated[str, typer.Argument(help="a catalog name or alias, or a formula in x such as 'x*tanh(softplus(x))'")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="parameter NAME=VALUE (repeatable)")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="write a figure of f and f' (.png, .svg or .pdf)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of text")] = False,
) -> None:
    """One activation: formula, derivative, every property, pros and cons."""
    from gradvet.activations import activation

    act = activation(name, **_parse_params(param))
    if plot is not None:
        from gradvet.report.activation_plots import check_output, plot_activation

        check_output(plot)
    record = activation_record(act)
    record["derivative"] = act.derivative_formula
    record["latex"] = act.latex
    record["pros"], record["cons"] = list(act.pros), list(act.cons)
    written = None
    if plot is not None:
        written = plot_activation(act, plot)
        record["plot"] = str(written)
    if as_json:
        typer.echo(json.dumps(record, indent=1))
        return
    from gradvet.report.tables import activation_panel, console

    console().print(activation_panel(act))
    if written:
        typer.echo(f"wrote {written}")


@app.command("plot")
@user_errors
def plot_command(
    names: Annotated[list[str] | None, typer.Argument(help="names or formulas to overlay")] = None,
    family: Annotated[str | None, typer.Option("--family", "-f", help="draw the family chart (relu, tanh, sigmoid, ...)")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output file (.png, .svg or .pdf)")] = Path("activations.png"),
    xmin: Annotated[float, typer.Option(help="left end of the x axis")] = -5.0,
    xmax: Annotated[float, typer.Option(help="right end of the x axis")] = 5.0,
) -> None:
    """Overlay activations (function and derivative panels), or draw a family chart."""
    from gradvet.activations import activation
    from gradvet.activations.registry import check_family
    from gradvet.base.validation import x_range
    from gradvet.report.activation_plots import check_output, plot_family, plot_overlay

    x_range(xmin, xmax)
    check_output(out)
    if family is not None and names:
        raise GradvetError("give either activation names or --family, not both.")
    if family is not None:
        written = plot_family(check_family(family), out, (xmin, xmax))
    else:
        if not names:
            raise GradvetError("nothing to plot: give activation names or formulas, or --family relu|tanh|sigmoid.")
        written = plot_overlay([activation(n) for n in names], out, (xmin, xmax))
    typer.echo(f"wrote {written}")


@app.command("demo")
@user_errors
def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the figures, summary and run store")] = Path("gradvet-report"),
) -> None:
    """The article's story, measured: vanishing gradients, why, the fixes, exploding gradients, the advice."""
    import time

    from gradvet.demo import run_demo
    from gradvet.report import write_report
    from gradvet.report.experiment_view import ExperimentView
    from gradvet.report.tables import console

    con = console()
    start = time.perf_counter()
    ctx = run_demo(out, view=ExperimentView(con))
    ctx.result["report"] = str(write_report(ctx.out / "index.html", sources=[ctx.json_path], records=ctx.records,
                                            title="gradvet demo"))
    con.print(f"\n[bold]Done in {time.perf_counter() - start:.0f} s.[/bold] Open {ctx.result['report']} in a browser "
              f"(the whole report, with the activation explorer); or look at {ctx.out}/summary.md and the figures "
              f"there ({', '.join(p.name for p in ctx.figures if p.suffix == '.png')}); runs: {ctx.trained} trained, "
              f"{ctx.reused} reused from {ctx.store_path}.")
    con.print("Next: [bold]gradvet diagnose --model yourpackage.module:make_model[/bold] on your own network; "
              "[bold]gradvet experiment remedies --quick[/bold] for every remedy measured; "
              "[bold]gradvet activations[/bold] and [bold]gradvet plot --family relu --out relu.png[/bold] for the catalog.")


@app.command("sweep")
@user_errors
def sweep_command(
    grid: Annotated[Path, typer.Argument(help="grid file (TOML): a [base] table of fixed fields, a [grid] table of lists")],
    store: Annotated[Path, typer.Option("--store", help="SQLite file the runs go into (created if missing)")] = Path("runs.db"),
    workers: Annotated[int | None, typer.Option("--workers", "-w", help="runs to train in parallel (processes; local backend; default 1)")] = None,
    backend: Annotated[str, typer.Option("--backend", help="local (this machine) or ray (a Ray cluster; needs gradvet[ray]): one 1-CPU task per run")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster to join, HOST:6379 or auto (default: RAY_ADDRESS, else a new local Ray instance)")] = None,
    batched: Annotated[str, typer.Option("--batched", help="auto: runs differing only in seed, init, lr or weight decay train together as one vectorised model (local backend); off: one by one")] = "auto",
) -> None:
    """Train every run of a grid into a store; finished runs are skipped, so rerunning resumes.

    With --backend ray every run is a Ray task taking 1 CPU, as many at once as the cluster has CPUs;
    this process is the only writer of the store.
    """
    from gradvet.base.validation import MAX_WORKERS, whole_number
    from gradvet.sweep import load_grid, run_sweep
    from gradvet.sweep.backend import check_backend
    from gradvet.sweep.batched import check_mode

    check_backend(backend)
    check_mode(batched)
    if workers is not None:
        whole_number("--workers", workers, 1, MAX_WORKERS, "MAX_WORKERS")
    if backend == "ray" and workers is not None:
        raise GradvetError("--workers is for --backend local; with --backend ray each run takes 1 CPU and the "
                           "cluster's CPUs set how many run at once.")
    if backend == "local" and address is not None:
        raise GradvetError(f"--address {address} is for --backend ray; the local backend runs on this machine.")
    specs = load_grid(grid)
    try:  # a bad store is reported (GradvetError) before anything runs
        summary = run_sweep(specs, store, workers=workers or 1, progress=True, backend=backend, address=address,
                            batched=batched)
    except KeyboardInterrupt:
        typer.echo(f"gradvet: interrupted; finished runs are kept in {store}, run the same command to resume.", err=True)
        raise typer.Exit(INTERRUPTED) from None
    typer.echo(summary.line())


@app.command("runs")
@user_errors
def runs_command(
    store: Annotated[Path, typer.Option("--store", help="SQLite file written by `gradvet sweep`")] = Path("runs.db"),
    status: Annotated[str | None, typer.Option("--status", help="only runs with this status: running, done, diverged or failed")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list instead of a table")] = False,
) -> None:
    """The runs in a store: key, label, status, steps, final loss, test accuracy, wall time, alerts
    (of monitored runs; the JSON lists them)."""
    from gradvet.sweep import Store

    with Store(store, create=False) as db:
        records = db.runs(status)
    if as_json:
        typer.echo(json.dumps(jsonable(records), indent=1, allow_nan=False))
        return
    from gradvet.report.tables import console

    console().print(_runs_table(records, str(store)))


RUNS_CELL_CHARS = 120  # longest text shown in a cell of `gradvet runs` (the JSON keeps it whole)


def _cell(value: Any, limit: int = RUNS_CELL_CHARS) -> str:
    """`value` as one table cell: at most `limit` characters, cut with '...' and the full length."""
    text = "-" if value is None else str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _runs_table(records: list[dict[str, Any]], store: str):
    """A rich table of stored runs (an error column when some failed; a note on unreadable fields)."""
    from rich.table import Table
    from rich.text import Text

    from gradvet.base.formatting import number

    def metric(record: dict[str, Any], name: str, digits: int = 4) -> str:
        value = (record.get("metrics") or {}).get(name)
        return number(float(value), digits) if isinstance(value, (int, float)) else "-"

    failed = any(r["error"] for r in records)
    unreadable = [r for r in records if r.get("unreadable")]
    caption = None
    if unreadable:
        listed = "; ".join(f"{_cell(r['key'], 16)}: " + ", ".join(f"{k} {why}" for k, why in r["unreadable"].items())
                           for r in unreadable[:3])
        more = f"; and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
        caption = Text(f"{len(unreadable)} of {len(records)} runs have fields that cannot be read, shown as - "
                       f"({listed}{more})")
    table = Table(title=Text(f"{len(records)} runs in {_cell(store)}"), caption=caption, header_style="bold",
                  pad_edge=False)
    for col, justify in (("key", "left"), ("label", "left"), ("status", "left"), ("steps", "right"),
                         ("final loss", "right"), ("test acc", "right"), ("wall time", "right"), ("alerts", "right")):
        table.add_column(Text(col), justify=justify, no_wrap=col in ("key", "status"))
    if failed:
        table.add_column(Text("error"), justify="left")
    for r in records:
        steps = (r.get("metrics") or {}).get("steps_done")
        wall = metric(r, "wall_time", 3)
        monitored = (r.get("spec") or {}).get("monitor") is True or bool(r.get("alerts"))
        cells = [r["key"], r["label"], r["status"], steps, metric(r, "final_loss"), metric(r, "test_accuracy", 3),
                 "-" if wall == "-" else f"{wall} s", len(r.get("alerts") or ()) if monitored else "-"]
        if failed:
            cells.append(r["error"] or "")
        table.add_row(*(Text(_cell(c)) for c in cells))
    return table


WATCH_INTERVAL_LIMITS = (0.1, 3600.0)  # seconds between frames of `gradvet watch`


@app.command("watch")
@user_errors
def watch_command(
    store: Annotated[Path, typer.Argument(help="SQLite file a sweep writes (or wrote)")],
    interval: Annotated[float, typer.Option("--interval", help="seconds between frames")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="print one frame and exit")] = False,
) -> None:
    """A live view of the runs in a store while a sweep writes it: progress, loss, per-layer gradient
    profile, alerts as they come. Reads only (never blocks the sweep); Ctrl-C ends it with status 0."""
    from gradvet.base.validation import finite_number
    from gradvet.report.watch_view import watch

    finite_number("--interval", interval, low=WATCH_INTERVAL_LIMITS[0], high=WATCH_INTERVAL_LIMITS[1])
    try:
        watch(store, interval, once)
    except KeyboardInterrupt:  # the way a viewer is closed: not an interrupted piece of work
        raise typer.Exit(0) from None


@app.command("diagnose")
@user_errors
def diagnose_command(
    depth: Annotated[int, typer.Option(help="hidden layers of the built MLP")] = 10,
    width: Annotated[int, typer.Option(help="units per hidden layer")] = 64,
    activation: Annotated[str, typer.Option(help="catalog name or formula")] = "sigmoid",
    init: Annotated[str, typer.Option(help="normal, nielsen, xavier, he, lecun, orthogonal, lsuv, critical, default, "
                                           "or gaussian:sw2=S,sb2=B")] = "xavier",
    norm: Annotated[str | None, typer.Option(help="batch or layer normalisation")] = None,
    residual: Annotated[bool, typer.Option(help="identity skips around hidden blocks")] = False,
    data: Annotated[str | None, typer.Option(help="dataset name or .npz path (default digits); tokens: random token "
                                                  "ids for a --model language model")] = None,
    steps: Annotated[int, typer.Option(help="SGD steps before the diagnosis (0: at initialisation)")] = 0,
    lr: Annotated[float, typer.Option(help="learning rate for --steps")] = 0.1,
    batch_size: Annotated[int, typer.Option(help="examples per step")] = 128,
    model: Annotated[str | None, typer.Option("--model", help="your own model: package.module:factory, returning a "
                                                           "model, (model, batch) or (model, batch, loss_fn)")] = None,
    model_arg: Annotated[list[str] | None, typer.Option("--model-arg", help="KEY=VALUE passed to the factory "
                                                                         "(repeatable)")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print the diagnosis as JSON")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="also write an HTML report to this .html file")] = None,
    store: Annotated[Path | None, typer.Option("--store", help="a post-mortem of a stored run instead: the store "
                                                               "(with --run)")] = None,
    run_key: Annotated[str | None, typer.Option("--run", help="the stored run's key, or the start of it "
                                                              "(gradvet runs lists them)")] = None,
) -> None:
    """Probe a model's gradient flow and say whether it vanishes or explodes, why, and what to do.
    With --store and --run: the post-mortem of a stored run (where the growth started, which layer blew
    up first, what preceded it, the alerts, what would have prevented it)."""
    if store is not None or run_key is not None:
        _postmortem(store, run_key, as_json)
        return
    _check_report(report)

    from gradvet.base.rng import seeded
    from gradvet.checkup import check_settings, checkup
    from gradvet.data import load
    from gradvet.integrations.factory import TOKENS, checkup_factory, parse_model_args
    from gradvet.models.build import build
    from gradvet.spec import RunSpec

    check_settings(steps, lr, batch_size, seed)  # before anything is loaded, built or called
    if model is None and (model_arg or data == TOKENS):
        raise GradvetError(f"{'--model-arg' if model_arg else '--data tokens'} is for your own model: give "
                           "--model package.module:factory.")
    if model is not None:
        kwargs = parse_model_args(model_arg)
        # A user's factory and its model's draws (dropout) take torch's global stream: it starts
        # from --seed in this command and is given back as it was after it (gradvet.base.rng).
        with seeded(seed):
            diagnosis, data, fed = checkup_factory(model, kwargs, data, steps=steps, lr=lr, batch_size=batch_size,
                                                   seed=seed)
        what = model
    else:
        data = data or "digits"
        spec = RunSpec(data=data, depth=depth, width=width, activation=activation, init=init,
                       norm=None if norm in (None, "none") else norm, residual=residual, seed=seed,
                       batch_size=batch_size)
        dataset = load(data)
        with seeded(seed):
            n_out = 1 if dataset.task == "regression" else dataset.n_classes
            sample = dataset.x_train[:512]
            net = build(spec, dataset.n_features, n_out, dataset.sequence, sample=sample)
            what = f"MLP depth {depth} width {width} {activation} init {init}" + (f" {norm}norm" if norm else "") + \
                (" residual" if residual else "")
            diagnosis, _ = checkup(net, dataset, steps=steps, lr=lr, batch_size=batch_size, seed=seed)
        fed = dataset.describe()
    record = {**diagnosis.to_dict(), "model": what, "data": data, "fed": fed, "steps": steps}
    _write_report(report, record)
    if as_json:
        typer.echo(json.dumps(record, indent=1))
        return
    from gradvet.report.diagnosis_view import render
    from gradvet.report.tables import console

    con = console()
    when = "at initialisation" if steps == 0 else f"after {steps} SGD steps (lr {lr:g})"
    con.print(f"[bold]{what}[/bold] on {fed}, {when}")
    con.print(render(diagnosis))


def _postmortem(store: Path | None, run_key: str | None, as_json: bool) -> None:
    from gradvet.monitor.postmortem import postmortem
    from gradvet.sweep import Store

    if store is None or run_key is None:
        raise GradvetError("a post-mortem needs both --store STORE and --run KEY (`gradvet runs --store STORE` "
                           "lists the keys).")
    with Store(store, create=False, read_only=True) as db:
        keys = [r["key"] for r in db.runs()]
        matches = [k for k in keys if k == run_key] or [k for k in keys if run_key and k.startswith(run_key)]
        if not matches:
            raise unknown("run", run_key, f"a key of the {len(keys)} runs `gradvet runs --store {store}` lists",
                          choices=keys)
        if len(matches) > 1:
            raise GradvetError(f"run {run_key!r} starts {len(matches)} keys ({', '.join(matches[:4])}"
                               f"{', ...' if len(matches) > 4 else ''}); give more of the key.")
        record = db.get(matches[0])
        records = db.layer_records(matches[0])
    pm = postmortem(record, records)
    if as_json:
        typer.echo(json.dumps(jsonable(pm.to_dict()), indent=1, allow_nan=False))
        return
    typer.echo(f"post-mortem of {pm.key} ({pm.label}), {pm.status}; steps counted from 0:")
    for sentence in pm.story():
        typer.echo(f"- {sentence}")


@app.command("experiment")
@user_errors
def experiment_command(
    name: Annotated[str, typer.Argument(help="speed-of-learning, cause, activations, remedies, exploding, rnn, trainable-depth, residual")],
    data: Annotated[str, typer.Option(help="dataset name or .npz path (mnist needs --mnist-dir)")] = "digits",
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for tables, figures, JSON and the run store")] = Path("gradvet-report"),
    seeds: Annotated[int, typer.Option(help="seeds to average over (spread shown)")] = 1,
    quick: Annotated[bool, typer.Option("--quick", help="a small version that finishes in well under a minute")] = False,
    store: Annotated[Path | None, typer.Option(help="SQLite store for the runs (default OUT/runs.db)")] = None,
    mnist_dir: Annotated[Path | None, typer.Option("--mnist-dir", help="folder with the four MNIST IDX files")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="also write an HTML report to this .html file")] = None,
) -> None:
    """Run one of the article's experiments on real training."""
    from gradvet.experiments import run_experiment
    from gradvet.report.experiment_view import ExperimentView
    from gradvet.report.tables import console

    _check_report(report)

    con = console()
    options = {"mnist_dir": str(mnist_dir)} if mnist_dir else {}
    ctx = run_experiment(name, data=data, out=out, seeds=seeds, quick=quick, store=store, view=ExperimentView(con),
                         **options)
    con.print(f"\n{len(ctx.figures)} figures and {name}.json written to {ctx.out}/; runs: {ctx.trained} trained, "
              f"{ctx.reused} reused from {ctx.store_path}")
    if report is not None:
        from gradvet.report import write_report

        con.print(f"report: {write_report(report, sources=[ctx.out / f'{ctx.name}.json'])}")


@app.command("theory")
@user_errors
def theory_command(
    name: Annotated[str, typer.Argument(help="a catalog name or a formula in x")],
    sw2: Annotated[float | None, typer.Option(help="weight variance sw2 (W ~ N(0, sw2/n)); default: the edge of chaos, else 1")] = None,
    sb2: Annotated[float, typer.Option(help="bias variance sb2")] = 0.0,
    depth: Annotated[int, typer.Option(help="depth for the verdict and the predicted profile")] = 20,
    phase_diagram: Annotated[bool, typer.Option("--phase-diagram", help="draw the order-chaos boundary over sb2")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="figure file for --phase-diagram (.png, .svg, .pdf)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="also write an HTML report to this .html file")] = None,
) -> None:
    """Mean-field prediction before training: q*, chi1, depth scales, and vanishing or exploding at a depth."""
    _check_report(report)

    from gradvet import theory as T
    from gradvet.activations import activation
    from gradvet.base.validation import network_depth

    network_depth("depth", depth)
    act = activation(name)
    if phase_diagram:
        if out is None:
            raise GradvetError("--phase-diagram needs --out FILE for the figure.")
        from gradvet.report.activation_plots import check_output
        from gradvet.report.theory_plots import plot_phase_diagram

        check_output(out)
        data = T.phase_diagram(act)
        written = plot_phase_diagram(act, data, out)
        if as_json:
            typer.echo(json.dumps(jsonable({"activation": act.label(), **data, "figure": str(written)}), indent=1))
        else:
            typer.echo(f"wrote {written}")
        return
    critical = T.critical_sw2(act, sb2)
    sw2 = sw2 if sw2 is not None else (critical if critical is not None else 1.0)
    fp = T.q_star(act, sw2, sb2)
    scales = T.depth_scales(act, sw2, sb2)
    profile = T.predict_profile(act, depth, sw2, sb2)
    ratio = profile[0]
    phase = f"{T.phase(scales.chi1)}: {T.PHASE_MEANING[T.phase(scales.chi1)]}"
    transient = T.transient_note(scales.chi1, profile)
    record = {"kind": "theory", "activation": act.label(), "sw2": sw2, "sb2": sb2, "q_star": fp.q, "q_star_iterations": fp.iterations,
              "q_star_converged": fp.converged, "q_star_note": fp.message, "q_star_kind": fp.kind,
              "chi1": scales.chi1, "phase": phase, "transient_note": transient,
              "xi_q": scales.xi_q, "xi_c": scales.xi_c, "xi_grad": scales.xi_grad, "critical_sw2": critical,
              "depth": depth, "predicted_delta_1_over_delta_L": ratio, "profile": profile}
    if report is not None:
        record["phase_diagram"] = T.phase_diagram(act)
        _write_report(report, record, act=act)
    if as_json:
        typer.echo(json.dumps(jsonable(record), indent=1))
        return
    lines = [f"{act.label()} with W ~ N(0, {sw2:.4g}/n), b ~ N(0, {sb2:.4g})",
             f"  q* = {fp.q:.6g}  ({fp.message or f'{fp.iterations} evaluations'})",
             f"  chi1 = {scales.chi1:.6g} {T.KIND_TEXT[fp.kind]}: {phase}",
             f"  depth scales: xi_q = {scales.xi_q:.4g}, xi_c = {scales.xi_c:.4g}, xi_grad = {scales.xi_grad:.4g}",
             f"  edge of chaos at sb2 = {sb2:g}: sw2 = {critical:.6g}" if critical else
             f"  no edge of chaos at sb2 = {sb2:g} (chi1 does not pass through 1 at a fixed point the signal "
             "reaches, for sw2 in [0.01, 100]; --phase-diagram shows where there is one)",
             f"  predicted delta_1/delta_L at depth {depth}: {ratio:.3g}"] + ([f"  {transient}"] if transient else [])
    typer.echo("\n".join(lines))


def _check_report(report: Path | None) -> None:
    """Refuse a bad --report path before any work is done."""
    if report is not None:
        from gradvet.report import _check_out

        _check_out(report)


def _write_report(report: Path | None, record: dict, act=None) -> None:
    """Write the --report page for one result; `act` (an Activation) is shown first in its explorer."""
    if report is not None:
        from gradvet.report import write_report

        path = write_report(report, records=[record], selected=act.label() if act is not None else None,
                            activations=[act] if act is not None else ())
        typer.echo(f"report: {path}", err=True)


@app.command("report")
@user_errors
def report_command(
    sources: Annotated[list[Path] | None, typer.Argument(help="results: a runs.db store, a JSON result of gradvet, or a folder of them")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="the .html file to write")] = Path("gradvet-report.html"),
    activation_: Annotated[list[str] | None, typer.Option("--activation", "-a", help="also show this activation or formula in the explorer (repeatable)")] = None,
) -> None:
    """One self-contained HTML report (figures, tables, downloadable data, activation explorer)."""
    from gradvet.activations import activation
    from gradvet.report import write_report

    _check_report(out)
    extra = [activation(name) for name in activation_ or []]  # a bad name or formula fails here, with close matches
    path = write_report(out, sources=sources or [], activations=extra, selected=extra[0].label() if extra else None)
    typer.echo(f"wrote {path}")


@app.command("choose")
@user_errors
def choose_command(
    depth: Annotated[int, typer.Option(help="hidden layers of your MLP")],
    width: Annotated[int, typer.Option(help="units per hidden layer")],
    data: Annotated[str, typer.Option(help="dataset name or .npz path")] = "digits",
    norm: Annotated[str | None, typer.Option(help="batch or layer normalisation (none: without)")] = None,
    residual: Annotated[bool, typer.Option("--residual", help="identity skips around hidden blocks")] = False,
    task: Annotated[str | None, typer.Option(help="binary, multiclass or regression (default: the dataset's)")] = None,
    budget: Annotated[float, typer.Option(help="seconds of work at most (candidates or seeds are cut to fit)")] = 60.0,
    candidates: Annotated[str | None, typer.Option(help="comma-separated names or formulas (default: ten common ones)")] = None,
    seeds: Annotated[int, typer.Option(help="seeds per candidate")] = 2,
    steps: Annotated[int, typer.Option(help="training steps per run")] = 300,
    lr: Annotated[float, typer.Option(help="learning rate (plain SGD)")] = 0.1,
    as_json: Annotated[bool, typer.Option("--json", help="print the choice as JSON")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="also write an HTML report to this .html file")] = None,
) -> None:
    """Rank activations for your architecture by measurement: theory, a probe at init, short training."""
    import contextlib

    _check_report(report)

    from gradvet.choose import choose
    from gradvet.report.tables import console

    con = console()
    status = con.status("measuring") if (not as_json and sys.stdout.isatty()) else contextlib.nullcontext()
    with status as live:
        def say(text: str) -> None:
            if live is not None:
                live.update(f"measuring {text}")

        result = choose(depth, width, data=data, task=task, candidates=candidates, norm=norm, residual=residual,
                        budget=budget, seeds=seeds, steps=steps, lr=lr, progress=say)
    if report is not None:
        from gradvet.activations import activation

        _write_report(report, result.to_dict(), act=activation(result.winner) if result.winner else None)
    if as_json:
        typer.echo(result.to_json())
        return
    from gradvet.report.choice_view import render

    con.print(render(result))


def main() -> None:
    """Console-script entry point.

    torch runs on GRADVET_THREADS intra-op threads (default 1): gradvet's models are small,
    and on a 2-core machine with other work a second thread makes them several times slower.
    Anything but a whole number from 1 to gradvet.base.validation.MAX_THREADS is refused (exit 2).
    """
    import os

    import torch

    from gradvet.base.validation import threads

    try:
        torch.set_num_threads(threads("GRADVET_THREADS", os.environ.get("GRADVET_THREADS") or "1"))
        app()
    except GradvetError as err:  # a bad GRADVET_THREADS, or raised outside a command
        typer.echo(f"gradvet: error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
