"""Reading a store's rows back, whatever was done to the file: a field that cannot be read is None, with a note.

A store is a plain SQLite file anyone can edit. A row whose JSON field (spec, metrics, history,
extra) is not valid JSON, is JSON but not an object, or is nested more than `MAX_JSON_DEPTH`
levels deep, reads back with that field None and ``record["unreadable"] = {field: why}``, so
that listings and reports show "-" and say why instead of crashing. gradvet itself writes
objects nested at most 4 levels (history: a dict of lists; extra: through_time's dict of lists).
Text columns that hold something else (NULL, a number, a blob) read back as text, and the UNIX
times as float or None. Layer records come back as SQLite holds them (a NULL value as NaN); the
views that draw them leave out rows of other types (`gradvet.report.sources`).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_JSON_DEPTH = 64  # as the report's reader of result files (gradvet.base.files)
JSON_FIELDS = ("spec", "metrics", "history", "extra")
TEXT_FIELDS = ("key", "label", "status")
TIME_FIELDS = ("started", "finished")


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), counted up to `limit` + 1, iteratively."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in item if isinstance(child, (dict, list)))
    return deepest


def read_object(text: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(the JSON object in `text`, None), or (None, why it cannot be read); (None, None) for NULL."""
    if text is None:
        return None, None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        return None, f"a stored {type(text).__name__}, not JSON text"
    too_deep = f"JSON nested more than {MAX_JSON_DEPTH} levels deep"
    try:
        value = json.loads(text)
    except RecursionError:
        return None, too_deep
    except ValueError:
        return None, "not valid JSON"
    if not isinstance(value, dict):
        return None, f"a JSON {_json_kind(value)}, not an object"
    # a text with few brackets cannot be deep; walk the value only when it might be
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return None, too_deep
    return value, None


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def as_text(value: Any) -> str:
    """A text column as text ('' for NULL, UTF-8 for a blob, str() for a number)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def as_time(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def decode_row(row: tuple, columns: list[str]) -> dict[str, Any]:
    """One `runs` row as a record: JSON fields decoded, unreadable ones None and noted in record['unreadable']."""
    record = dict(zip(columns, row))
    unreadable: dict[str, str] = {}
    for name in JSON_FIELDS:
        if name in record:
            record[name], why = read_object(record[name])
            if why is not None:
                unreadable[name] = why
    for name in TEXT_FIELDS:
        if name in record:
            record[name] = as_text(record[name])
    if "error" in record and record["error"] is not None:
        record["error"] = as_text(record["error"])
    for name in TIME_FIELDS:
        if name in record:
            record[name] = as_time(record[name])
    if unreadable:
        record["unreadable"] = unreadable
    return record


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_number(value: Any) -> float | None:
    """A REAL column as a float (NULL: NaN, as SQLite stores a NaN); anything else None."""
    if value is None:
        return math.nan
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def decode_alert(row: tuple, fields: tuple[str, ...]) -> dict[str, Any]:
    """One `alerts` row (without its run key) as a dict of `gradvet.Alert`'s fields: step and since whole
    numbers (or None), value a float (NULL: NaN), the others text (layer None when NULL)."""
    alert = dict(zip(fields, row))
    for name in ("step", "since"):
        alert[name] = as_int(alert[name])
    alert["value"] = as_number(alert["value"])
    for name in ("kind", "message", "remedy", "detector"):
        alert[name] = as_text(alert[name])
    if alert["layer"] is not None:
        alert["layer"] = as_text(alert["layer"])
    return alert


def decode_progress(row: tuple) -> dict[str, Any]:
    """One `progress` row (without its run key): step, steps, loss, grad_norm, layers ({layer: norm},
    {} when unreadable), updated."""
    step, steps, loss, grad_norm, layers, updated = row
    decoded, _ = read_object(layers)
    layers = {str(k): v for k, v in (decoded or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {"step": as_int(step), "steps": as_int(steps), "loss": as_number(loss), "grad_norm": as_number(grad_norm),
            "layers": layers, "updated": as_time(updated)}
