"""Strict JSON for numbers that may be NaN or infinite (a diverged run is a result to report)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def jsonable(value: Any) -> Any:
    """`value` with non-finite floats as the strings 'nan', 'inf', '-inf', tuples as lists,
    paths as strings and dict keys as strings, so json.dumps gives strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
