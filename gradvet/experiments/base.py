"""What every named experiment shares: a registry, a context that trains through
the results store (so reruns are instant and an interrupted experiment resumes),
averaging over seeds, tables, figures and a JSON result.

An experiment is a function `fn(ctx: Context) -> None` registered with
`@experiment("name", "title")`; it calls `ctx.run(spec)` for training runs,
`ctx.table(...)` for its tables, `ctx.figure(stem, kind, data)` for figures (plain data,
drawn by the caller's view: `experiments.view`), and `ctx.result[...] = ...` for
machine-readable numbers.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradvet.base import validation
from gradvet.base.errors import GradvetError, did_you_mean
from gradvet.base.jsonable import jsonable
from gradvet.experiments.view import FigureData, Table, View
from gradvet.spec import RunSpec
from gradvet.train.result import Run

EXPERIMENTS: dict[str, tuple[str, Callable[[Context], None]]] = {}


def experiment(name: str, title: str):
    """Register `fn(ctx)` as the experiment `name`."""

    def register(fn: Callable[[Context], None]) -> Callable[[Context], None]:
        EXPERIMENTS[name] = (title, fn)
        return fn

    return register


@dataclass
class Context:
    """Where an experiment runs: data, output folder, seeds, quick mode, store, and the view that
    shows it (None: nothing printed, no figure file written)."""

    name: str
    data: str = "digits"
    out: Path = Path("gradvet-report")
    seeds: int = 1
    quick: bool = False
    store_path: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    view: View | None = None
    tables: list[Table] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)  # the files written (by the view), listed in the JSON
    figure_data: list[FigureData] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)  # results (`to_dict()`) for a report beside the JSON
    reused: int = 0
    trained: int = 0

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.store_path is None:
            self.store_path = self.out / "runs.db"
        validation.whole_number("seeds", self.seeds, 1, validation.MAX_SEEDS, "MAX_SEEDS")

    def data_spec(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        """(data, data_options) for this context's RunSpecs: --data as given, or "mnist" with
        (("path", DIR),) when --data mnist comes with --mnist-dir DIR."""
        mnist_dir = self.options.get("mnist_dir")
        if self.data.strip().lower() == "mnist" and mnist_dir:
            return "mnist", (("path", str(mnist_dir)),)
        return self.data, ()

    # -- training through the store -----------------------------------------------------------
    def run(self, spec: RunSpec, dataset=None) -> Run:
        """The Run for `spec`: read back from the store when it is there, else trained and stored."""
        from gradvet.sweep import Store
        from gradvet.train import run as train

        self.out.mkdir(parents=True, exist_ok=True)
        with Store(self.store_path) as store:
            row = store.get(spec.key)
            if row is not None and row["status"] in ("done", "diverged"):
                self.reused += 1
                return run_from_store(spec, row, store.layer_records(spec.key))
        result = train(spec, dataset=dataset)
        with Store(self.store_path) as store:
            store.save(result)
        self.trained += 1
        return result

    def runs_over_seeds(self, spec: RunSpec, dataset=None) -> list[Run]:
        """The same run for seeds 0..seeds-1."""
        return [self.run(spec.replace(seed=s), dataset=dataset) for s in range(self.seeds)]

    # -- output -------------------------------------------------------------------------------------
    def table(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], note: str = "") -> Table:
        table = Table(title, list(columns), [list(r) for r in rows], note)
        self.tables.append(table)
        if self.view is not None:
            self.view.table(table)
        return table

    def figure(self, stem: str, kind: str, data: dict[str, Any]) -> list[Path]:
        """Keep a figure as plain data (`kind` and `data`: see `experiments.view.FigureData`); the view, when
        there is one, draws it into OUT/NAME-STEM.png and .svg. Returns the files written."""
        figure = FigureData(stem, kind, data)
        self.figure_data.append(figure)
        if self.view is None:
            return []
        self.out.mkdir(parents=True, exist_ok=True)
        paths = self.view.figure(figure, self.out / f"{self.name}-{stem}")
        self.figures += paths
        return paths

    def say(self, text: str) -> None:
        if self.view is not None:
            self.view.say(text)

    @property
    def json_path(self) -> Path:
        return self.out / f"{self.name}.json"

    def write_json(self) -> Path:
        """OUT/NAME.json: tables, figures (their file names: they lie beside it) and the experiment's own numbers
        (non-finite as strings)."""
        path = self.json_path
        payload = {
            "experiment": self.name, "data": self.data, "seeds": self.seeds, "quick": self.quick,
            "tables": [t.to_dict() for t in self.tables], "figures": [p.name for p in self.figures],
            "result": self.result, "runs_trained": self.trained, "runs_reused": self.reused,
        }
        path.write_text(json.dumps(jsonable(payload), indent=1))
        return path


def run_from_store(spec: RunSpec, row: dict[str, Any], records: list[tuple]) -> Run:
    """Rebuild a Run from its stored row and layer records."""
    extra = row.get("extra") or {}
    return Run(spec=spec, status=row["status"], history=row.get("history") or {}, metrics=row.get("metrics") or {},
               through_time=extra.get("through_time", {}), pretrain=extra.get("pretrain", []),
               layer_records=[tuple(r) for r in records])


def mean_sd(values: Iterable[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (sd 0 for one value; nan for none)."""
    good = [v for v in values if v is not None and math.isfinite(v)]
    if not good:
        return math.nan, math.nan
    return statistics.fmean(good), (statistics.stdev(good) if len(good) > 1 else 0.0)


def fmt_mean_sd(values: Iterable[float | None], digits: int = 3) -> str:
    """'0.912 +- 0.004' (or '0.912' for one seed)."""
    values = list(values)
    mean, sd = mean_sd(values)
    if math.isnan(mean):
        return "nan"
    return f"{mean:.{digits}g}" if len(values) == 1 else f"{mean:.{digits}g} +- {sd:.1g}"


def run_experiment(name: str, data: str = "digits", out: str | Path = "gradvet-report", seeds: int = 1,
                   quick: bool = False, store: str | Path | None = None, view: View | None = None,
                   **options) -> Context:
    """Run the experiment `name`; returns its Context (tables, figure data, result, JSON written). `view`
    (see `experiments.view`) shows it as it runs and draws its figures; without one nothing is printed."""
    if name not in EXPERIMENTS:
        raise GradvetError(
            f"unknown experiment {name!r}{did_you_mean(name, EXPERIMENTS)}; experiments: {', '.join(EXPERIMENTS)}."
        )
    title, fn = EXPERIMENTS[name]
    ctx = Context(name=name, data=data, out=Path(out), seeds=seeds, quick=quick,
                  store_path=Path(store) if store else None, options=options, view=view)
    validation.output_folder("out", ctx.out)
    start = time.perf_counter()
    if view is not None:
        view.rule(f"[bold]{name}[/bold]: {title}")
    fn(ctx)
    ctx.result["wall_time"] = time.perf_counter() - start
    ctx.write_json()
    return ctx
