"""Turn gradvet's results into report sections.

A source is a results store (runs.db), a JSON result, or a folder holding them. Only regular
files are read, JSON of bounded size and nesting (`report.reading`). JSON results are told
apart by their content: an experiment's or the demo's NAME.json has "experiment"; the others
carry "kind": "diagnosis" (`gradvet diagnose --json`), "choice" (`gradvet choose --json`) or
"theory" (`gradvet theory --json`).

A result may have been edited or damaged: every field is read through `report.fields`, so a
field of another type is shown as '-' (or left out) and named in a note, never a crash.
An experiment's figures are embedded only from SVG files it wrote beside its JSON
(`figure_file`), as images that cannot run script or fetch anything (`page.svg_image`).
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from gradvet.base.errors import GradvetError
from gradvet.base.files import (
    MAX_FIGURE_BYTES,
    RESULT_FILES,
    file_kind,
    is_regular_file,
    read_json,
    read_regular_file,
    require_regular_file,
)
from gradvet.probe.diagnosis_blocks import RATIO_NAME
from gradvet.probe.diagnosis_text import BLOCK_COLUMNS
from gradvet.probe.metrics import drawn_columns
from gradvet.report import svg_figures as figs
from gradvet.report.fields import Fields, number, numbers
from gradvet.report.page import Page, Section, clip, esc, fmt, svg_image

STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
MAX_RUN_DETAILS = 6  # runs of a store drawn one by one (heatmap, profile)


def kind_of(record: Any) -> str | None:
    if isinstance(record, dict):
        if "experiment" in record and "tables" in record:
            return "experiment"
        kind = record.get("kind")
        if isinstance(kind, str) and kind in ("diagnosis", "choice", "theory"):
            return kind
    return None


def add_source(page: Page, path: Path) -> None:
    """Add the sections for one source (store, JSON result or folder) to `page`."""
    if path.is_dir():
        found = sorted(path.glob("*.json")) + sorted(p for p in path.iterdir() if p.suffix in STORE_SUFFIXES)
        found = [p for p in found if is_regular_file(p) and (p.suffix in STORE_SUFFIXES or kind_of(_quiet_json(p)))]
        if not found:
            raise GradvetError(f"{str(path)!r} holds no gradvet results (*.json from gradvet, or a runs.db store).")
        for item in found:
            add_source(page, item)
        return
    if not path.exists():
        raise GradvetError(f"{str(path)!r} does not exist; give {RESULT_FILES}.")
    require_regular_file(path, RESULT_FILES)
    if path.suffix in STORE_SUFFIXES:
        add_store(page, path)
        return
    record = read_json(path)
    kind = kind_of(record)
    if kind is None:
        raise GradvetError(f"{str(path)!r} is not a gradvet result (expected the JSON of an experiment, the demo, "
                           "diagnose, choose or theory).")
    page.sources[str(path)] = record
    add_record(page, record, path, str(path))


ADDERS = {}  # kind -> function(page, record, path), filled below


def add_record(page: Page, record: dict, path: Path, name: str) -> None:
    """The sections of one result. Fields of the wrong type are shown as '-' and named in a note; anything
    the adders still cannot draw is one GradvetError naming the result."""
    kind = kind_of(record)
    try:
        ADDERS[kind](page, record, path)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, OverflowError) as err:
        raise GradvetError(f"{name!r} is not a well-formed {kind} result "
                           f"({type(err).__name__}: {err}).") from None


def _quiet_json(path: Path) -> Any:
    """The JSON in `path`, or None when it cannot be read as such (a folder's other files)."""
    try:
        return read_json(path)
    except GradvetError:
        return None


def _close(sec: Section, fields: Fields) -> None:
    """Say in `sec` which fields could not be shown."""
    sec.note(fields.note())


# -- experiments and the demo ----------------------------------------------------------------------
def add_experiment(page: Page, record: dict, path: Path) -> None:
    f = Fields()
    name = f.text(record, "experiment", "experiment")
    sec = page.section(name, "gradvet demo" if name == "demo" else f"experiment: {name}")
    sec.text(f"data <b>{sec.show(f.text(record, 'data', 'digits'))}</b>, seeds {sec.show(f.number(record, 'seeds'))}"
             + (", quick version" if f.flag(record, "quick") else "")
             + f"; runs trained {sec.show(f.number(record, 'runs_trained'))}, "
             f"reused {sec.show(f.number(record, 'runs_reused'))}.")
    result = f.mapping(record, "result")
    lines = f.texts(result, "recommendation")
    if lines:
        sec.raw('<div class="card"><h3>what the measurements say</h3><ul class="tight">'
                + "".join(f"<li>{sec.show(line)}</li>" for line in lines) + "</ul></div>")
    for i, table in enumerate(f.records(record, "tables")):
        rows = f.entries(table, "rows", list)
        sec.table(f.text(table, "title", "-"), f.texts(table, "columns"), rows, f"{name}-table-{i + 1}",
                  f.text(table, "note", ""))
    for entry in f.items(record, "figures"):
        svg, refusal = figure_file(entry, path.parent)
        if svg is not None:
            stem = PurePath(entry).stem
            sec.figure(svg_image(svg, stem), stem, stem, data=result or None)
        elif refusal:
            sec.note(refusal)
    _close(sec, f)
    store = path.parent / "runs.db"
    if store.exists():
        add_store(page, store)


FIGURE_RULE = "only .svg files the experiment wrote beside its JSON (a plain file name) are embedded"


def figure_file(entry: Any, folder: Path) -> tuple[bytes | None, str]:
    """The SVG a figure entry of an experiment's JSON names, read from `folder` (the JSON's own): an entry is a
    plain file name (no folder, no '..') of a regular .svg file inside `folder`, of at most MAX_FIGURE_BYTES.
    Returns (the file's bytes, '') or (None, why it is not embedded); the producer's other files (its PNG
    twins, summary.md) are passed over with no reason given."""
    shown = repr(clip(entry, 80) if isinstance(entry, str) else type(entry).__name__)

    def refused(why: str) -> tuple[None, str]:
        return None, f"Figure {shown} is not embedded ({why}): {FIGURE_RULE}."

    if not isinstance(entry, str) or not entry or "/" in entry or "\\" in entry or entry in (".", ".."):
        return refused("not a plain file name")
    if PurePath(entry).suffix.lower() != ".svg":
        return None, ""
    candidate = folder / entry
    try:
        inside = candidate.resolve(strict=True).parent == folder.resolve(strict=True)
        info = os.stat(candidate)
    except (OSError, RuntimeError):
        return refused("no such file beside the JSON")
    if not inside:
        return refused("a link to a file outside the JSON's folder")
    if not stat.S_ISREG(info.st_mode):
        return refused(file_kind(info.st_mode))
    if info.st_size > MAX_FIGURE_BYTES:
        return refused(f"{info.st_size:,} bytes, more than {MAX_FIGURE_BYTES // 2**20} MB")
    try:
        data = read_regular_file(candidate, MAX_FIGURE_BYTES, "an .svg file")
    except GradvetError:  # replaced or grown since the look above
        return refused("it changed while it was read")
    if b"<svg" not in data:
        return refused("no <svg> element in it")
    return data, ""


# -- results stores --------------------------------------------------------------------------------
def add_store(page: Page, path: Path) -> None:
    from gradvet.sweep import Store

    if str(path) in page.sources:  # already shown (a folder and an experiment beside it name the same store)
        return
    require_regular_file(path, RESULT_FILES)
    f = Fields()
    with Store(path, create=False) as store:
        runs = [f.bounded(r) for r in store.runs(history=True)]
        for name in sorted({name for r in runs for name in r.get("unreadable") or {}}):
            f.wrong(name)  # the store's own note: a JSON field it could not read comes back as None
        records = {i: store.layer_records(r["key"]) for i, r in enumerate(runs[:MAX_RUN_DETAILS])}
    page.sources[str(path)] = {"runs": runs}
    sec = page.section("runs", f"runs in {path.name}")
    rows = []
    for r in runs:
        m = f.mapping(r, "metrics")
        monitored = f.flag(f.mapping(r, "spec"), "monitor") or bool(f.items(r, "alerts"))
        rows.append([f.text(r, "key"), f.text(r, "label"), f.text(r, "status"), f.number(m, "steps_done"),
                     f.number(m, "final_loss"), f.number(m, "test_accuracy"), f.number(m, "wall_time"),
                     len(f.items(r, "alerts")) if monitored else None])
    sec.table(f"{len(runs)} runs", ["key", "run", "status", "steps", "final loss", "test accuracy", "wall time (s)",
                                    "alerts"], rows, "runs", "alerts: of the runs trained with monitor = true")
    curves, marks, marked = {}, {}, {}
    for r in runs[:12]:
        h = f.mapping(r, "history")
        steps, loss = numbers(f.items(h, "step")), numbers(f.items(h, "loss"))
        n = min(len(steps), len(loss))
        if n:
            label = f.text(r, "label", "-")
            curves[label] = ([math.nan if x is None else x for x in steps[:n]], loss[:n])
            marked[label] = _alerts(r, f)
            marks[label] = [_on_curve(a["step"] + 1, *curves[label]) for a in marked[label]]
    if curves:
        data = {label: {"step": list(xs), "loss": list(ys), "alerts": marked[label]} for label, (xs, ys) in curves.items()}
        shown = sum(map(len, marks.values()))
        sec.figure(figs.learning_curves(curves, log=True, alerts=marks), "training loss per step (log scale)" + (
            f"; triangles: the monitor's {shown} alerts (at the loss of their step)" if shown else ""),
                   "learning-curves", data=data)
    for i, r in enumerate(runs[:MAX_RUN_DETAILS]):
        trace = _trace(records[i], f)
        if len(trace):
            _trace_figures(sec, trace, f.text(r, "label", "-"), f.text(r, "key", str(i)), _alerts(r, f))
    _alert_table(sec, runs, f)
    _close(sec, f)


ALERT_TABLE_ROWS = 200  # alerts listed in a store's table (the embedded data keeps them all)


def _alerts(run: dict, fields: Fields) -> list[dict]:
    """A stored run's alerts that can be placed: a whole-number step from 0, a kind (others left out, named)."""
    good = []
    for alert in fields.records(run, "alerts"):
        step = alert.get("step")
        if isinstance(step, int) and not isinstance(step, bool) and step >= 0 and isinstance(alert.get("kind"), str):
            good.append(alert)
        else:
            fields.wrong("alerts entries")
    return good


def _on_curve(x: int, steps: list, losses: list) -> tuple[float, float]:
    """(x, the loss at step x) for an alert's marker; at a non-finite loss (or a step past the curve), the
    last finite loss before it, so that the marker sits on a log axis."""
    finite = [(s, v) for s, v in zip(steps, losses) if s is not None and s <= x and v is not None
              and math.isfinite(v) and v > 0]
    return (float(x), finite[-1][1] if finite else math.nan)


def _alert_table(sec, runs: list[dict], fields: Fields) -> None:
    """Every alert of the store's runs, run by run, in the order they were raised."""
    rows = [[fields.text(r, "key", "-"), fields.text(r, "label", "-"), a["step"], fields.text(a, "kind", "-"),
             fields.text(a, "layer", "-"), fields.text(a, "message", "-"), fields.text(a, "remedy", "-")]
            for r in runs for a in _alerts(r, fields)]
    if not rows:
        return
    sec.table(f"{len(rows)} alerts of the monitored runs", ["key", "run", "step", "kind", "layer", "message", "remedy"],
              rows[:ALERT_TABLE_ROWS], "alerts",
              "step: optimiser steps from 0 (the learning curve's step is one more)" + (
                  f"; the first {ALERT_TABLE_ROWS} of {len(rows)} shown" if len(rows) > ALERT_TABLE_ROWS else ""))


def _trace(rows: list[tuple], fields: Fields):
    """A Trace of a run's stored (step, layer, metric, value) rows; a row of other types is left out (and named)."""
    from gradvet.probe.trace import Trace

    good = []
    for step, layer, metric, value in rows:
        step_ok = isinstance(step, int) and not isinstance(step, bool)
        value = number(value)
        if step_ok and isinstance(layer, str) and isinstance(metric, str) and value is not None:
            good.append((step, layer, metric, value))
    if len(good) < len(rows):
        fields.wrong("layer_records rows")
    return Trace(good)


def _trace_figures(sec, trace, label: str, stem: str, alerts: list[dict] = ()) -> None:
    """Per-layer gradient norms at the first and last recorded step, and layer x step over training (the run's
    alerts marked on it: on their layer's row, or across the rows for the whole model)."""
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
        row_of = {name: i for i, name in enumerate(layers)}
        marks = [(a["step"], row_of.get(a.get("layer"))) for a in alerts]
        caption = "each row a layer, each column a recorded step; colour: gradient norm (log scale)" + (
            "; red: the monitor's alerts (a cross on the layer named, a dashed line for the whole model)"
            if marks else "")
        sec.figure(figs.layer_step_heatmap(layers, steps, grid, title=f"{label}: ||dL/d output|| per layer and step",
                                           alerts=marks), caption, f"heatmap-{stem}", ["layer", *[str(s) for s in steps]],
                   heat_rows, data={"layers": layers, "steps": steps, "alerts": [
                       {**a, "row": row} for a, (_, row) in zip(alerts, marks)]} if marks else None)


# -- one diagnosis ---------------------------------------------------------------------------------
DIAGNOSIS_KEYS = (("delta", "||dL/dz||"), ("ratio_to_last", "ratio to last"), ("predicted_ratio", "predicted"))
VERDICTS = ("vanishing", "exploding", "healthy")


def add_diagnosis(page: Page, record: dict, path: Path | None = None) -> None:
    f = Fields()
    sec = page.section("diagnosis", "diagnosis")
    verdict = f.text(record, "verdict", "-")
    css = f' class="verdict-{verdict}"' if verdict in VERDICTS else ""
    notes = "".join(f"<p><b>note:</b> {sec.show(n)}</p>" for n in f.texts(record, "notes"))
    theory = f.text(record, "prediction_note")
    remedies = f.records(record, "remedies")
    sec.raw(f'<div class="card"><p>{sec.show(f.text(record, "model", "the model"))} on '
            f'{sec.show(f.text(record, "data", "?"))}, step {sec.show(f.number(record, "step"))}: '
            f"<span{css}>{sec.show(verdict.upper())}</span> "
            f"({RATIO_NAME if f.text(record, 'basis') == 'blocks' else 'delta_1/delta_L'} = "
            f"{sec.show(f.number(record, 'ratio'))})</p>"
            f"<p><b>cause:</b> {sec.show(f.text(record, 'cause', '-'))}</p>" + notes
            + (f"<p><b>theory:</b> {sec.show(theory)}</p>" if theory else "")
            + ("<h3>remedies, most promising first</h3><ol>"
               + "".join(f"<li><b>{sec.show(f.text(r, 'action', '-'))}</b>: {sec.show(f.text(r, 'why', '-'))}</li>"
                         for r in remedies) + "</ol>" if remedies else "") + "</div>")
    blocks = f.records(record, "blocks")  # a residual net: the stream per block, the verdict's basis
    if blocks:
        sec.table("per block, on the residual stream", [label for label, _ in BLOCK_COLUMNS],
                  [[f.text(b, "name", "-"), *(f.number(b, key) for _, key in BLOCK_COLUMNS[1:])] for b in blocks],
                  "diagnosis-blocks")
    layers = f.records(record, "layers")
    names = [f.text(lay, "name", "-") for lay in layers]
    shown = drawn_columns(layers)  # the probe's metric columns, as in the terminal
    keys = [key for key, _ in DIAGNOSIS_KEYS] + [c.key for c in shown]
    values = {key: [f.number(lay, key) for lay in layers] for key in keys}
    measured, predicted = values["ratio_to_last"], values["predicted_ratio"]
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
        columns = ["layer", *[label for _, label in DIAGNOSIS_KEYS], *[c.label for c in shown]]
        sec.table("per layer", columns, [[n, *[values[k][i] for k in keys]] for i, n in enumerate(names)],
                  "diagnosis-layers")
    hists = _histograms(f.mapping(record, "histograms"), f)
    if hists:
        drawn = min(len(hists), figs.MAX_PANELS)
        sec.figure(figs.histograms(hists, "activation outputs per layer (one batch)"),
                   "histogram of each activation layer's outputs on the diagnosed batch"
                   + (f" (the first {drawn} of {len(hists)} layers)" if drawn < len(hists) else ""), "histograms",
                   data=f.mapping(record, "histograms"))
    _close(sec, f)


def _histograms(found: dict, fields: Fields) -> dict[str, tuple[list[float], list[float]]]:
    """{layer: (edges, counts)} of the histograms that can be drawn: n + 1 finite edges and n finite counts;
    any other is left out (and named)."""
    out = {}
    for name, h in found.items():
        h = h if isinstance(h, dict) else {}
        edges, counts = numbers(h.get("edges")), numbers(h.get("counts"))
        if len(counts) >= 1 and len(edges) == len(counts) + 1 and all(
                v is not None and math.isfinite(v) for v in edges + counts):
            out[str(name)] = (edges, counts)
        else:
            fields.wrong("histograms entries")
    return out


# -- a recommendation ------------------------------------------------------------------------------
CHOICE_COLUMNS = (("rank", "rank"), ("name", "activation"), ("init", "init"), ("score", "score"),
                  ("quality", "accuracy"), ("ratio", "delta_1/delta_L at init"), ("dead_fraction", "dead"),
                  ("saturated_fraction", "saturated"), ("step_time", "s per step"), ("diverged", "seeds diverged"),
                  ("reason", "why"))
CHOICE_TEXT = ("name", "init", "reason")  # the other columns are numbers


def add_choice(page: Page, record: dict, path: Path | None = None) -> None:
    """`gradvet choose --json`: the ranking, the comparison, the rules checked, the advice."""
    f = Fields()
    sec = page.section("choice", "choosing an activation")
    rows = f.records(record, "rows")
    norm = f.text(record, "norm")
    sec.text(f"MLP depth {sec.show(f.number(record, 'depth'))}, width {sec.show(f.number(record, 'width'))}"
             f"{sec.show(f', {norm} norm') if norm else ''}{', residual' if f.flag(record, 'residual') else ''} on "
             f"{sec.show(f.text(record, 'data', '-'))} ({sec.show(f.text(record, 'task', '-'))}); winner "
             f"<b>{sec.show(f.text(record, 'winner', '-'))}</b>. {sec.show(f.text(record, 'budget_note', ''))}")
    if rows:
        columns = [title for _, title in CHOICE_COLUMNS]
        table = [[f.text(r, k, "-") if k in CHOICE_TEXT else f.number(r, k) for k, _ in CHOICE_COLUMNS] for r in rows]
        quality = f.text(record, "quality_name", "accuracy")
        columns[columns.index("accuracy")] = quality
        weights = f.mapping(record, "weights")
        sec.table("ranking, best first", columns, table, "choice-ranking",
                  "score = quality - penalties (gradient ratio far from 1, dead and saturated units, cost); weights: "
                  + ", ".join(f"{k} {fmt(f.number(weights, k))}" for k in weights))
        names = [f.text(r, "name", "-") for r in rows]
        qualities, ratios = [f.number(r, "quality") for r in rows], [f.number(r, "ratio") for r in rows]
        sec.figure(figs.bars(names, qualities, quality, f"{quality} after {fmt(f.number(record, 'steps'))} steps"),
                   f"{quality} per candidate (mean over seeds)", "choice-quality", ["activation", quality],
                   [[n, q] for n, q in zip(names, qualities)])
        sec.figure(figs.bars(names, ratios, "delta_1/delta_L at initialisation",
                             "first-layer gradient relative to the last (log scale)", log=True),
                   "measured by the probe at initialisation; 1 is ideal", "choice-ratios", ["activation", "ratio"],
                   [[n, r] for n, r in zip(names, ratios)])
    rules = f.records(record, "rules")
    if rules:
        sec.raw('<div class="card"><h3>the article\'s rules, checked on this architecture</h3><ul class="tight">'
                + "".join(f"<li><b>{sec.show(f.text(r, 'mark', '-'))}</b>: {sec.show(f.text(r, 'text', '-'))} "
                          f"({sec.show(f.text(r, 'evidence', '-'))})</li>" for r in rules) + "</ul></div>")
    advice = [(k, f.text(record, k)) for k in ("output_advice", "init_advice", "norm_advice")]
    advice = [(k, v) for k, v in advice if v]
    if advice:
        sec.raw('<div class="card"><h3>advice</h3><ul class="tight">' + "".join(
            f"<li><b>{esc(k.replace('_advice', ''))}</b>: {sec.show(v)}</li>" for k, v in advice) + "</ul></div>")
    _close(sec, f)


# -- theory ----------------------------------------------------------------------------------------
THEORY_KEYS = ("sw2", "sb2", "q_star", "q_star_kind", "chi1", "phase", "xi_q", "xi_c", "xi_grad", "critical_sw2", "depth",
               "predicted_delta_1_over_delta_L")
THEORY_TEXT = ("phase", "q_star_kind")  # the other quantities are numbers


def add_theory(page: Page, record: dict, path: Path | None = None) -> None:
    f = Fields()
    name = f.text(record, "activation", "?")
    sec = page.section("theory", f"theory: {name}")
    sec.table("mean-field numbers", ["quantity", "value"],
              [[k, f.text(record, k, "-") if k in THEORY_TEXT else f.number(record, k)] for k in THEORY_KEYS
               if k in record], "theory-numbers",
              "W ~ N(0, sw2/n), b ~ N(0, sb2); chi1 < 1 ordered (vanishing), > 1 chaotic (exploding)")
    profile = numbers(f.items(record, "profile"))
    depth = fmt(f.number(record, "depth"))
    if profile:
        names = [f"hidden.{i}" for i in range(len(profile))]
        sec.figure(figs.layer_profile(names, {"predicted (mean-field theory)": profile},
                                      title=f"predicted backward signal at depth {depth}"),
                   "theory's expected ||delta_l|| / ||delta_L||, from the input variance q0 = 1",
                   "theory-profile", ["layer", "predicted ratio"], [[n, v] for n, v in zip(names, profile)])
    pd = f.mapping(record, "phase_diagram")
    points = [(b, s) for b, s in zip(numbers(f.items(pd, "sb2")), numbers(f.items(pd, "critical_sw2")))
              if b is not None]
    if points:
        sw2, sb2 = f.number(record, "sw2"), f.number(record, "sb2")
        marker = (sw2, sb2) if sw2 is not None and sb2 is not None and math.isfinite(sw2) else None
        sec.figure(figs.phase_diagram([b for b, _ in points], [s for _, s in points], name, marker),
                   "the edge of chaos (chi1 = 1) over the bias variance", "phase-diagram", ["sb2", "critical sw2"],
                   [[b, s] for b, s in points])
    _close(sec, f)


ADDERS.update(experiment=add_experiment, diagnosis=add_diagnosis, choice=add_choice, theory=add_theory)
