"""`load_grid`: a TOML file of fixed fields and swept fields -> the list of RunSpecs to run.

    [base]                      # fields every run shares
    steps = 300
    norm = "none"               # TOML has no null: "none" for norm, clip, clip_value, tbptt

    [grid]                      # fields to sweep: each a non-empty list
    activation = ["relu", "tanh"]
    depth = [4, 16]
    seed = [0, 1, 2]

The sweep is the Cartesian product of the [grid] lists, fields in file order
(the last field varies fastest), values in list order; specs that come out
equal (same key) are kept once. Integers given for float fields (lr = 1) are
read as floats, so `lr = 1` and `lr = 1.0` are the same run.

The whole grid is checked before anything runs: the file is a regular file of at most
MAX_GRID_FILE_BYTES with at least one field, the product of the list lengths is at most
MAX_GRID_RUNS (counted before anything is expanded), and every point is a valid RunSpec whose
activation (name or formula, with its parameters) builds and whose data loads, each distinct
activation and dataset tried once. A bad grid is one GradvetError naming the first bad point
and how many more there are.
"""

from __future__ import annotations

import itertools
import math
import os
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from gradvet.base import validation
from gradvet.base.errors import GradvetError, did_you_mean, unknown
from gradvet.spec import RunSpec, field_names

TABLES = ("base", "grid")
NONE_FIELDS = ("norm", "clip", "clip_value", "tbptt")
FLOAT_FIELDS = tuple(f.name for f in fields(RunSpec) if str(f.type).replace(" ", "") in ("float", "float|None"))


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file; one-sentence GradvetErrors for a missing, special (FIFO, device), huge,
    unreadable or malformed file."""
    where = repr(str(path))
    validation.regular_file("grid", path, validation.MAX_GRID_FILE_BYTES, "MAX_GRID_FILE_BYTES")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as err:
        raise GradvetError(f"grid file {where} cannot be read ({err.strerror or err}).") from None
    except UnicodeDecodeError:
        raise GradvetError(f"grid file {where} is not UTF-8 text; give a TOML file.") from None
    except tomllib.TOMLDecodeError as err:  # the message ends "(at line L, column C)"
        raise GradvetError(f"grid file {where} is not valid TOML: {err}.") from None


def _value(name: str, value: Any) -> Any:
    """TOML value -> RunSpec value: "none" -> None where allowed, int -> float for float fields."""
    if name in NONE_FIELDS and isinstance(value, str) and value.lower() == "none":
        return None
    if name in FLOAT_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check_fields(table: str, names: list[str], where: str) -> None:
    known = field_names()
    for name in names:
        if name not in known:
            raise unknown("run field", name, known, context=f"[{table}] of {where}")


def _tables(data: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for name, value in data.items():
        if name in TABLES:
            if not isinstance(value, dict):
                raise GradvetError(f"{name!r} in {where} must be a table ([{name}]), not {value!r}.")
            continue
        if isinstance(value, dict):
            raise unknown("table", f"[{name}]", "[base] and [grid]", choices=TABLES, spelled=name, context=where)
        raise GradvetError(f"{name!r} in {where} is outside any table{did_you_mean(name, field_names())}; "
                           "put fixed fields under [base] and swept fields under [grid].")
    return data.get("base", {}), data.get("grid", {})


def _spec(values: dict[str, Any]) -> RunSpec:
    try:
        spec = RunSpec.from_dict(values)
        spec.key  # noqa: B018 - computing the key checks that every value is plain data
    except GradvetError:
        raise
    except (TypeError, ValueError) as err:
        raise GradvetError(f"unsupported value ({err}).") from None
    return spec


def _size(grid: dict[str, list], where: str) -> int:
    """Runs in the grid: the product of its list lengths, refused above MAX_GRID_RUNS."""
    runs = math.prod(len(values) for values in grid.values())
    if runs > validation.MAX_GRID_RUNS:
        lengths = " x ".join(f"{len(values)} {name}" for name, values in grid.items())
        raise validation.not_allowed("grid size", runs, f"at most {validation.MAX_GRID_RUNS} runs (MAX_GRID_RUNS)",
                                     why=f"{lengths} in {where}")
    return runs


def check_inputs(spec: RunSpec, seen: dict[str, str | None]) -> None:
    """The spec's activation builds (with its parameters) and its data loads; each distinct one
    is tried once, its outcome kept in `seen` (key -> error or None)."""
    from gradvet.activations import activation
    from gradvet.data import load

    params = dict(spec.activation_params)
    for key, attempt in ((repr(("activation", spec.activation, spec.activation_params)),
                          lambda: activation(spec.activation, **params)),
                         (repr(("data", spec.data, spec.data_options)),
                          lambda: load(spec.data, **dict(spec.data_options)))):
        if key not in seen:
            try:
                attempt()
                seen[key] = None
            except GradvetError as err:
                seen[key] = str(err)
            except Exception as err:  # noqa: BLE001 - e.g. a corrupt .npz: the run would fail the same way
                seen[key] = f"cannot be used ({type(err).__name__}: {validation.first_line(err)})."
        if seen[key] is not None:
            raise GradvetError(seen[key])


def load_grid(path: str | os.PathLike[str]) -> list[RunSpec]:
    """The RunSpecs of the sweep a grid file describes, in a stable order, without duplicates;
    every point checked first (see the module docstring)."""
    path = Path(path)
    where = repr(str(path))
    base, grid = _tables(read_toml(path), where)
    if not base and not grid:
        raise GradvetError(f"grid file {where} has no fields; give fixed fields under [base] and/or lists "
                           "to sweep under [grid].")
    _check_fields("base", list(base), where)
    _check_fields("grid", list(grid), where)
    for name, values in grid.items():
        if name in base:
            raise GradvetError(f"field {name!r} is in both [base] and [grid] of {where}; put it in one of them.")
        if not isinstance(values, list):
            raise GradvetError(f"[grid] field {name!r} in {where} must be a list of values "
                               f"(for example {name} = [{values!r}]), not {values!r}.")
        if not values:
            raise GradvetError(f"[grid] field {name!r} in {where} is an empty list; give at least one value.")
    runs = _size(grid, where)
    fixed = {name: _value(name, value) for name, value in base.items()}
    axes = [[(name, _value(name, v)) for v in values] for name, values in grid.items()]
    specs: dict[str, RunSpec] = {}
    seen: dict[str, str | None] = {}
    first_error, bad = "", 0
    for number, point in enumerate(itertools.product(*axes), 1):
        try:
            spec = _spec({**fixed, **dict(point)})
            check_inputs(spec, seen)
        except GradvetError as err:
            bad += 1
            if not first_error:
                shown = ", ".join(f"{name}={validation.shown(value)}" for name, value in point)
                context = f"grid point {number} of {runs} ({shown}) in {where}" if point else f"[base] of {where}"
                first_error = f"{context}: {err}"
            continue
        specs.setdefault(spec.key, spec)
    if bad:
        more = f"; {bad - 1} more of the {runs} grid points are bad too, and nothing was run." if bad > 1 else ""
        raise GradvetError(first_error.rstrip(".") + more if more else first_error)
    return list(specs.values())
