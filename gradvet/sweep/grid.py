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
"""

from __future__ import annotations

import itertools
import os
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from gradvet.errors import GradvetError, did_you_mean
from gradvet.spec import RunSpec, field_names

TABLES = ("base", "grid")
NONE_FIELDS = ("norm", "clip", "clip_value", "tbptt")
FLOAT_FIELDS = tuple(f.name for f in fields(RunSpec) if str(f.type).replace(" ", "") in ("float", "float|None"))


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file; one-sentence GradvetErrors for missing, unreadable or malformed files."""
    where = repr(str(path))
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise GradvetError(f"grid file {where} does not exist.") from None
    except IsADirectoryError:
        raise GradvetError(f"grid file {where} is a directory; give a TOML file.") from None
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
            raise GradvetError(f"unknown run field {name!r} in [{table}] of {where}{did_you_mean(name, known)}; "
                               f"fields are: {', '.join(known)}.")


def _tables(data: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for name, value in data.items():
        if name in TABLES:
            if not isinstance(value, dict):
                raise GradvetError(f"{name!r} in {where} must be a table ([{name}]), not {value!r}.")
            continue
        if isinstance(value, dict):
            raise GradvetError(f"unknown table [{name}] in {where}{did_you_mean(name, TABLES)}; "
                               "allowed: [base] and [grid].")
        raise GradvetError(f"{name!r} in {where} is outside any table{did_you_mean(name, field_names())}; "
                           "put fixed fields under [base] and swept fields under [grid].")
    return data.get("base", {}), data.get("grid", {})


def _spec(values: dict[str, Any], context: str) -> RunSpec:
    try:
        spec = RunSpec.from_dict(values)
        spec.key  # noqa: B018 - computing the key checks that every value is plain data
    except GradvetError as err:
        raise GradvetError(f"{context}: {err}") from None
    except (TypeError, ValueError) as err:
        raise GradvetError(f"{context}: unsupported value ({err}).") from None
    return spec


def load_grid(path: str | os.PathLike[str]) -> list[RunSpec]:
    """The RunSpecs of the sweep a grid file describes, in a stable order, without duplicates."""
    path = Path(path)
    where = repr(str(path))
    base, grid = _tables(read_toml(path), where)
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
    fixed = {name: _value(name, value) for name, value in base.items()}
    axes = [[(name, _value(name, v)) for v in values] for name, values in grid.items()]
    points = list(itertools.product(*axes))
    specs: dict[str, RunSpec] = {}
    for number, point in enumerate(points, 1):
        if point:
            shown = ", ".join(f"{name}={value!r}" for name, value in point)
            context = f"grid point {number} of {len(points)} ({shown}) in {where}"
        else:
            context = f"[base] of {where}"
        spec = _spec({**fixed, **dict(point)}, context)
        specs.setdefault(spec.key, spec)
    return list(specs.values())
