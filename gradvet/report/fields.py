"""Reading the fields of a result that may have been edited by hand or damaged.

A result reaches the report as plain JSON (a file, a row of a store), so any field may be
missing or of another type than gradvet writes. `Fields` reads each field as the type the
page needs and, where the value is of another type, answers None (shown '-') or an empty
list or dict instead, and remembers the field's name; `note()` then tells the reader of the
page which fields could not be shown. Nothing here raises on a record's content.
"""

from __future__ import annotations

from typing import Any

from gradvet.base.files import MAX_JSON_DEPTH, nesting_depth


def number(value: Any) -> float | None:
    """A JSON number back as a float (the strings 'nan', 'inf', '-inf' included); None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an integer beyond the float range
            return float("inf") if value > 0 else float("-inf")
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return None


def numbers(values: Any) -> list[float | None]:
    """Each entry of a list as `number` (a non-list reads as no entries)."""
    return [number(v) for v in values] if isinstance(values, list) else []


class Fields:
    """Typed reads of a record's fields; the names of those of the wrong type gather in `problems`."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def _get(self, record: Any, key: str) -> Any:
        return record.get(key) if isinstance(record, dict) else None

    def wrong(self, key: str) -> None:
        """Name `key` among the fields that could not be shown."""
        if key not in self.problems:
            self.problems.append(key)

    def text(self, record: Any, key: str, default: str | None = None) -> str | None:
        """A string field; `default` when missing or of another type."""
        value = self._get(record, key)
        if isinstance(value, str):
            return value
        if value is not None:
            self.wrong(key)
        return default

    def number(self, record: Any, key: str) -> float | None:
        """A number field (see `number`); None when missing or not a number."""
        value = self._get(record, key)
        out = number(value)
        if out is None and value is not None:
            self.wrong(key)
        return out

    def flag(self, record: Any, key: str) -> bool:
        """A true/false field; false when missing or not a boolean."""
        value = self._get(record, key)
        if value is not None and not isinstance(value, bool):
            self.wrong(key)
        return value is True

    def items(self, record: Any, key: str) -> list:
        """A list field; [] when missing or not a list."""
        value = self._get(record, key)
        if value is not None and not isinstance(value, list):
            self.wrong(key)
        return value if isinstance(value, list) else []

    def mapping(self, record: Any, key: str) -> dict:
        """An object field; {} when missing or not an object."""
        value = self._get(record, key)
        if value is not None and not isinstance(value, dict):
            self.wrong(key)
        return value if isinstance(value, dict) else {}

    def records(self, record: Any, key: str) -> list[dict]:
        """A list of objects; entries that are not objects are left out (and named)."""
        return self.entries(record, key, dict)

    def texts(self, record: Any, key: str) -> list[str]:
        """A list of strings; other entries are left out (and named)."""
        return self.entries(record, key, str)

    def entries(self, record: Any, key: str, kind: type) -> list:
        """A list field's entries of type `kind`; the others are left out (and named)."""
        found = self.items(record, key)
        kept = [item for item in found if isinstance(item, kind)]
        if len(kept) < len(found):
            self.wrong(f"{key} entries")
        return kept

    def bounded(self, record: dict, cap: int = MAX_JSON_DEPTH) -> dict:
        """`record` with each value nested deeper than `cap` levels replaced by None (and named)."""
        out = {}
        for key, value in record.items():
            if nesting_depth(value, cap) > cap:
                self.wrong(str(key))
                value = None
            out[key] = value
        return out

    def note(self) -> str:
        """One sentence naming the fields that could not be shown; '' when all could."""
        if not self.problems:
            return ""
        return ("Shown as '-' or left out, because they are not of the type gradvet writes: "
                + ", ".join(self.problems) + ".")
