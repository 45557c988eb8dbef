"""Turn gradvet's results into report sections.

A source is a results store (runs.db), a JSON result, or a folder holding them.
JSON results are told apart by their content: an experiment's or the demo's
NAME.json has "experiment"; the others carry "kind": "diagnosis" (`gradvet
diagnose --json`), "choice" (`gradvet choose --json`) or "theory" (`gradvet
theory --json`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from gradvet.errors import GradvetError
from gradvet.report import svg_figures as figs
from gradvet.report.page import Page, esc, fmt

STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
MAX_RUN_DETAILS = 6  # runs of a store drawn one by one (heatmap, profile)


def _num(value: Any) -> float | None:
    """A JSON number back as a float ('nan'/'inf' strings included); None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return None


def kind_of(record: Any) -> str | None:
    if isinstance(record, dict):
        if "experiment" in record and "tables" in record:
            return "experiment"
        if record.get("kind") in ("diagnosis", "choice", "theory"):
            return record["kind"]
    return None


def add_source(page: Page, path: Path) -> None:
    """Add the sections for one source (store, JSON result or folder) to `page`."""
    if path.is_dir():
        found = sorted(path.glob("*.json")) + sorted(p for p in path.iterdir() if p.suffix in STORE_SUFFIXES)
        found = [p for p in found if p.suffix in STORE_SUFFIXES or kind_of(_read_json(p, quiet=True))]
        if not found:
            raise GradvetError(f"{str(path)!r} holds no gradvet results (*.json from gradvet, or a runs.db store).")
        for item in found:
            add_source(page, item)
        return
    if not path.exists():
        raise GradvetError(f"{str(path)!r} does not exist; give a runs.db store, a gradvet JSON result or a folder.")
    if path.suffix in STORE_SUFFIXES:
        add_store(page, path)
        return
    record = _read_json(path)
    kind = kind_of(record)
    if kind is None:
        raise GradvetError(f"{str(path)!r} is not a gradvet result (expected the JSON of an experiment, the demo, "
                           "diagnose, choose or theory).")
    page.sources[str(path)] = record
    add_record(page, record, path, str(path))


ADDERS = {}  # kind -> function(page, record, path), filled below


def add_record(page: Page, record: dict, path: Path, name: str) -> None:
    """The sections of one result; a malformed one is one GradvetError naming it."""
    kind = kind_of(record)
    try:
        ADDERS[kind](page, record, path)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as err:
        raise GradvetError(f"{name!r} is not a well-formed {kind} result "
                           f"({type(err).__name__}: {err}).") from None


def _read_json(path: Path, quiet: bool = False) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        if quiet:
            return None
        raise GradvetError(f"cannot read {str(path)!r} as JSON: {err}.") from None


# -- experiments and the demo ----------------------------------------------------------------------
def add_experiment(page: Page, record: dict, path: Path) -> None:
    name = record["experiment"]
    sec = page.section(name, "gradvet demo" if name == "demo" else f"experiment: {name}")
    sec.text(f"data <b>{esc(record.get('data', 'digits'))}</b>, seeds {esc(record.get('seeds', 1))}"
             + (", quick version" if record.get("quick") else "")
             + f"; runs trained {esc(record.get('runs_trained', 0))}, reused {esc(record.get('runs_reused', 0))}.")
    lines = record.get("result", {}).get("recommendation")
    if isinstance(lines, list) and lines:
        sec.raw('<div class="card"><h3>what the measurements say</h3><ul class="tight">'
                + "".join(f"<li>{esc(line)}</li>" for line in lines) + "</ul></div>")
    for i, table in enumerate(record.get("tables", [])):
        sec.table(table["title"], table["columns"], table["rows"], f"{name}-table-{i + 1}", table.get("note", ""))
    for fig_path in record.get("figures", []):
        svg = _svg_file(Path(fig_path), path.parent)
        if svg is not None:
            sec.figure(svg, Path(fig_path).stem, Path(fig_path).stem, data=record.get("result"))
    store = path.parent / "runs.db"
    if store.exists():
        add_store(page, store)


def _svg_file(fig_path: Path, base: Path) -> str | None:
    """The SVG a figure path names (given as written, or beside the JSON), as inline markup."""
    if fig_path.suffix.lower() != ".svg":
        return None
    for candidate in (base / fig_path.name, fig_path):  # beside the JSON first: an archived folder keeps its own
        if candidate.is_file():
            text = candidate.read_text()
            return text[text.index("<svg"):] if "<svg" in text else None
    return None


# -- results stores --------------------------------------------------------------------------------
def add_store(page: Page, path: Path) -> None:
    from gradvet.probe.trace import Trace
    from gradvet.sweep import Store

    if str(path) in page.sources:  # already shown (a folder and an experiment beside it name the same store)
        return
    with Store(path, create=False) as store:
        runs = store.runs(history=True)
        records = {r["key"]: store.layer_records(r["key"]) for r in runs[:MAX_RUN_DETAILS]}
    page.sources[str(path)] = {"runs": runs}
    sec = page.section("runs", f"runs in {path.name}")
    rows = []
    for r in runs:
        m = r.get("metrics") or {}
        rows.append([r["key"], r["label"], r["status"], _num(m.get("steps_done")), _num(m.get("final_loss")),
                     _num(m.get("test_accuracy")), _num(m.get("wall_time"))])
    sec.table(f"{len(runs)} runs", ["key", "run", "status", "steps", "final loss", "test accuracy", "wall time (s)"],
              rows, "runs")
    curves = {}
    for r in runs[:12]:
        h = r.get("history") or {}
        if h.get("step") and h.get("loss"):
            curves[r["label"]] = (h["step"], [_num(v) for v in h["loss"]])
    if curves:
        data = {label: {"step": list(xs), "loss": list(ys)} for label, (xs, ys) in curves.items()}
        sec.figure(figs.learning_curves(curves, log=True), "training loss per step (log scale)", "learning-curves",
                   data=data)
    for r in runs[:MAX_RUN_DETAILS]:
        trace = Trace(records[r["key"]])
        if not len(trace):
            continue
        _trace_figures(sec, trace, r["label"], r["key"])


def _trace_figures(sec, trace, label: str, stem: str) -> None:
    """Per-layer gradient norms at the first and last recorded step, and layer x step over training."""
    metric = "output_grad_norm"
    layers = [name for name in trace.layers() if trace.kinds.get(name) == "weight"][:-1]  # hidden: not the read-out
    if not layers:
        return
    steps = trace.steps()
    grid = np.full((len(layers), len(steps)), np.nan)
    for j, step in enumerate(steps):
        at = trace.at(step)
        for i, name in enumerate(layers):
            value = at.get(name, {}).get(metric)
            grid[i, j] = np.nan if value is None else value
    with np.errstate(divide="ignore", invalid="ignore"):  # ratios to the last hidden layer, as diagnose
        first, last = grid[:, 0] / grid[-1, 0], grid[:, -1] / grid[-1, -1]
    rows = [[name, float(first[i]), float(last[i])] for i, name in enumerate(layers)]
    series = {f"step {steps[0]}": list(first)}
    if len(steps) > 1:
        series[f"step {steps[-1]}"] = list(last)
    sec.figure(figs.layer_profile(layers, series, title=f"{label}: backward signal per layer"),
               f"{label}: ||dL/d output|| per layer relative to the last, at the first and last recorded step",
               f"profile-{stem}", ["layer", f"step {steps[0]}", f"step {steps[-1]}"], rows)
    if len(steps) > 1:
        heat_rows = [[name, *map(float, grid[i])] for i, name in enumerate(layers)]
        sec.figure(figs.layer_step_heatmap(layers, steps, grid, title=f"{label}: ||dL/d output|| per layer and step"),
                   "each row a layer, each column a recorded step; colour: gradient norm (log scale)",
                   f"heatmap-{stem}", ["layer", *[str(s) for s in steps]], heat_rows)


# -- one diagnosis ---------------------------------------------------------------------------------
def add_diagnosis(page: Page, record: dict, path: Path | None = None) -> None:
    sec = page.section("diagnosis", "diagnosis")
    verdict = record.get("verdict", "?")
    what = record.get("model", "the model")
    sec.raw(f'<div class="card"><p>{esc(what)} on {esc(record.get("data", "?"))}, step {esc(record.get("step", 0))}: '
            f'<span class="verdict-{esc(verdict)}">{esc(verdict.upper())}</span> '
            f"(delta_1/delta_L = {esc(fmt(_num(record.get('ratio'))))})</p>"
            f"<p><b>cause:</b> {esc(record.get('cause', ''))}</p>"
            + "".join(f"<p><b>note:</b> {esc(n)}</p>" for n in record.get("notes", []))
            + (f"<p><b>theory:</b> {esc(record['prediction_note'])}</p>" if record.get("prediction_note") else "")
            + ("<h3>remedies, most promising first</h3><ol>"
               + "".join(f"<li><b>{esc(r['action'])}</b>: {esc(r['why'])}</li>" for r in record.get("remedies", []))
               + "</ol>" if record.get("remedies") else "") + "</div>")
    layers = record.get("layers", [])
    names = [lay["name"] for lay in layers]
    measured = [_num(lay.get("ratio_to_last")) for lay in layers]
    predicted = [_num(lay.get("predicted_ratio")) for lay in layers]
    has_prediction = any(p is not None for p in predicted)
    if layers:
        rows = [[n, m, p] for n, m, p in zip(names, measured, predicted)]
        series = {"measured (probe)": measured}
        if has_prediction:
            series["predicted (mean-field theory)"] = predicted
        sec.figure(figs.layer_profile(names, series),
                   "the backward signal delta_l = ||dL/dz_l|| per hidden layer, relative to the last"
                   + (", measured and predicted by mean-field theory" if has_prediction else ""),
                   "diagnosis-profile", ["layer", "measured ratio", "predicted ratio"], rows)
        columns = ["layer", "||dL/dz||", "ratio to last", "predicted", "activation factor", "weight factor",
                   "forward std", "dead", "saturated"]
        keys = ["delta", "ratio_to_last", "predicted_ratio", "activation_gain", "weight_gain", "forward_std",
                "dead_fraction", "saturated_fraction"]
        sec.table("per layer", columns, [[lay["name"], *[_num(lay.get(k)) for k in keys]] for lay in layers],
                  "diagnosis-layers")
    hists = record.get("histograms") or {}
    if hists:
        data = {name: (h["edges"], h["counts"]) for name, h in hists.items()}
        sec.figure(figs.histograms(data, "activation outputs per layer (one batch)"),
                   "histogram of each activation layer's outputs on the diagnosed batch", "histograms", data=hists)


# -- a recommendation ------------------------------------------------------------------------------
CHOICE_COLUMNS = (("rank", "rank"), ("name", "activation"), ("init", "init"), ("score", "score"),
                  ("quality", "accuracy"), ("ratio", "delta_1/delta_L at init"), ("dead_fraction", "dead"),
                  ("saturated_fraction", "saturated"), ("step_time", "s per step"), ("diverged", "seeds diverged"),
                  ("reason", "why"))


def add_choice(page: Page, record: dict, path: Path | None = None) -> None:
    """`gradvet choose --json`: the ranking, the comparison, the rules checked, the advice."""
    sec = page.section("choice", "choosing an activation")
    rows = record.get("rows", [])
    norm = f", {record['norm']} norm" if record.get("norm") else ""
    sec.text(f"MLP depth {esc(record.get('depth'))}, width {esc(record.get('width'))}{esc(norm)}"
             f"{', residual' if record.get('residual') else ''} on {esc(record.get('data'))} "
             f"({esc(record.get('task'))}); winner <b>{esc(record.get('winner'))}</b>. {esc(record.get('budget_note', ''))}")
    if rows:
        columns = [title for _, title in CHOICE_COLUMNS]
        table = [[_num(r.get(k)) if _num(r.get(k)) is not None else r.get(k) for k, _ in CHOICE_COLUMNS] for r in rows]
        quality = record.get("quality_name", "accuracy")
        columns[columns.index("accuracy")] = quality
        sec.table("ranking, best first", columns, table, "choice-ranking",
                  "score = quality - penalties (gradient ratio far from 1, dead and saturated units, cost); weights: "
                  + ", ".join(f"{k} {v:g}" for k, v in (record.get("weights") or {}).items()))
        names = [r["name"] for r in rows]
        sec.figure(figs.bars(names, [_num(r.get("quality")) for r in rows], quality,
                             f"{quality} after {record.get('steps')} steps"),
                   f"{quality} per candidate (mean over seeds)", "choice-quality", ["activation", quality],
                   [[n, _num(r.get("quality"))] for n, r in zip(names, rows)])
        sec.figure(figs.bars(names, [_num(r.get("ratio")) for r in rows], "delta_1/delta_L at initialisation",
                             "first-layer gradient relative to the last (log scale)", log=True),
                   "measured by the probe at initialisation; 1 is ideal", "choice-ratios", ["activation", "ratio"],
                   [[n, _num(r.get("ratio"))] for n, r in zip(names, rows)])
    rules = record.get("rules") or []
    if rules:
        sec.raw('<div class="card"><h3>the article\'s rules, checked on this architecture</h3><ul class="tight">'
                + "".join(f"<li><b>{esc(r.get('mark'))}</b>: {esc(r.get('text'))} ({esc(r.get('evidence'))})</li>"
                          for r in rules) + "</ul></div>")
    advice = [(k, record.get(k)) for k in ("output_advice", "init_advice", "norm_advice") if record.get(k)]
    if advice:
        sec.raw('<div class="card"><h3>advice</h3><ul class="tight">' + "".join(
            f"<li><b>{esc(k.replace('_advice', ''))}</b>: {esc(v)}</li>" for k, v in advice) + "</ul></div>")


# -- theory ----------------------------------------------------------------------------------------
def add_theory(page: Page, record: dict, path: Path | None = None) -> None:
    sec = page.section("theory", f"theory: {record.get('activation', '?')}")
    keys = ["sw2", "sb2", "q_star", "chi1", "phase", "xi_q", "xi_c", "xi_grad", "critical_sw2", "depth",
            "predicted_delta_1_over_delta_L"]
    sec.table("mean-field numbers", ["quantity", "value"],
              [[k, _num(record.get(k)) if _num(record.get(k)) is not None else record.get(k)] for k in keys if k in record],
              "theory-numbers", "W ~ N(0, sw2/n), b ~ N(0, sb2); chi1 < 1 ordered (vanishing), > 1 chaotic (exploding)")
    profile = record.get("profile")
    if profile:
        names = [f"hidden.{i}" for i in range(len(profile))]
        sec.figure(figs.layer_profile(names, {"predicted (mean-field theory)": [_num(v) for v in profile]},
                                      title=f"predicted backward signal at depth {record.get('depth')}"),
                   "theory's expected ||delta_l|| / ||delta_L||, from the input variance q0 = 1",
                   "theory-profile", ["layer", "predicted ratio"], [[n, _num(v)] for n, v in zip(names, profile)])
    pd = record.get("phase_diagram")
    if pd:
        sw2, sb2 = _num(record.get("sw2")), _num(record.get("sb2"))
        marker = (sw2, sb2) if sw2 is not None and sb2 is not None and math.isfinite(sw2) else None
        sec.figure(figs.phase_diagram(pd["sb2"], [_num(v) for v in pd["critical_sw2"]], record.get("activation", ""),
                                      marker),
                   "the edge of chaos (chi1 = 1) over the bias variance", "phase-diagram", ["sb2", "critical sw2"],
                   [[b, _num(s)] for b, s in zip(pd["sb2"], pd["critical_sw2"])])


ADDERS.update(experiment=add_experiment, diagnosis=add_diagnosis, choice=add_choice, theory=add_theory)
