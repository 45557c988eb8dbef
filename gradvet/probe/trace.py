"""`Trace`: the tidy per-(step, layer, metric) record a Probe produces.

Rows are (step, layer, metric, value), layers in forward order within a step.
Exports: pandas, CSV, JSON and TensorBoard (optional extra `gradvet[tensorboard]`).
Non-finite values are kept: an exploding gradient is a result, not an error.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gradvet.base.errors import GradvetError
from gradvet.base.jsonable import jsonable
from gradvet.probe.metrics.registry import implied_kind

Row = tuple[int, str, str, float]
COLUMNS = ("step", "layer", "metric", "value")


class Trace:
    """A list of (step, layer, metric, value) rows with look-ups and exports."""

    def __init__(self, rows: Iterable[Row] = (), kinds: dict[str, str] | None = None):
        self.rows: list[Row] = [(int(s), str(layer), str(m), float(v)) for s, layer, m, v in rows]
        self.kinds: dict[str, str] = dict(kinds or {})
        if not self.kinds:
            self.kinds = infer_kinds(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"Trace({len(self.rows)} rows, {len(self.steps())} steps, {len(self.layers())} layers)"

    def extend(self, rows: Iterable[Row]) -> None:
        self.rows.extend(rows)

    def steps(self) -> list[int]:
        return sorted({r[0] for r in self.rows})

    def layers(self) -> list[str]:
        """Layer names in order of first appearance (forward order)."""
        return list(dict.fromkeys(r[1] for r in self.rows if r[1] != INPUT))

    def metrics(self) -> list[str]:
        return list(dict.fromkeys(r[2] for r in self.rows))

    def at(self, step: int) -> dict[str, dict[str, float]]:
        """{layer: {metric: value}} at one step."""
        out: dict[str, dict[str, float]] = {}
        for s, layer, metric, value in self.rows:
            if s == step:
                out.setdefault(layer, {})[metric] = value
        return out

    def series(self, layer: str, metric: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric of one layer over time."""
        pairs = [(s, v) for s, lay, m, v in self.rows if lay == layer and m == metric]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def to_records(self) -> list[dict[str, Any]]:
        return [dict(zip(COLUMNS, r)) for r in self.rows]

    def to_pandas(self):
        """A pandas DataFrame with columns step, layer, metric, value."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def to_csv(self, path: str | Path) -> Path:
        out = _writable(path)
        with out.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(self.rows)
        return out

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON list of row objects (non-finite values as the strings 'nan', 'inf', '-inf');
        written to `path` when given. Returns the text."""
        text = json.dumps(jsonable(self.to_records()))
        if path is not None:
            _writable(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text: str) -> Trace:
        rows = [(r["step"], r["layer"], r["metric"], float(r["value"])) for r in json.loads(text)]
        return cls(rows)

    def to_tensorboard(self, logdir: str | Path) -> Path:
        """Write every row as a scalar 'layer/metric' at its step (needs the tensorboard package)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise GradvetError(
                "to_tensorboard needs the tensorboard package; install it with: pip install 'gradvet[tensorboard]'."
            ) from None
        out = Path(logdir)
        writer = SummaryWriter(log_dir=str(out))
        try:
            for step, layer, metric, value in self.rows:
                writer.add_scalar(f"{layer or 'model'}/{metric}", value, step)
        finally:
            writer.close()
        return out


INPUT = "<input>"  # pseudo-layer holding the model input's statistics


def infer_kinds(rows: Iterable[Row]) -> dict[str, str]:
    """Layer kinds from the metrics a layer has (for traces read back from a store), as the
    metric units declare them (`probe.metrics.implied_kind`): activation statistics make an
    activation, a norm_layer flag a norm layer, parameter gradients a weight layer, block
    metrics alone a block; anything else is 'other'."""
    rank = {"other": 0, "block": 1, "weight": 2, "norm": 3, "activation": 4}
    kinds: dict[str, str] = {}
    for _, layer, metric, _ in rows:
        if layer == INPUT:
            continue
        kind = implied_kind(metric)
        if rank[kind] > rank[kinds.get(layer, "other")] or layer not in kinds:
            kinds[layer] = kind
    return kinds


def _writable(path: str | Path) -> Path:
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GradvetError(f"cannot write {str(out)!r}: {err.strerror or err}.") from None
    return out
