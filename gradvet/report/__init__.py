"""Figures and reports. Matplotlib is used through `matplotlib.figure.Figure`
directly (no pyplot state, no GUI backend), so figures render headless.

`write_report(sources, out)` writes one self-contained HTML file (see `report.page`)
from results stores, JSON results and folders of them (see `report.sources`), with the
activation explorer (`report.explorer`) as its last tab. Sources are untrusted data: files
are read by `report.reading` (regular files, bounded size and nesting), fields by
`report.fields` (a field of the wrong type is shown as '-' and named in a note).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gradvet.base.errors import GradvetError
from gradvet.base.version import VERSION


def _check_out(out: str | os.PathLike[str]) -> Path:
    path = Path(out)
    if path.suffix.lower() not in (".html", ".htm"):
        raise GradvetError(f"report {str(path)!r} must be an .html file.")
    if path.exists() and not path.is_file():  # a directory, or a FIFO that would block the write forever
        from gradvet.base.files import file_kind

        raise GradvetError(f"report {str(path)!r} is {file_kind(path.stat().st_mode)}, not a regular file; "
                           "give a file name ending in .html.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GradvetError(f"cannot write report {str(path)!r}: {err.strerror or err}.") from None
    return path


def build_page(sources: Iterable[str | os.PathLike[str]] = (), records: Iterable[dict[str, Any]] = (),
               activations: Iterable[str] = (), title: str = "gradvet report", selected: str | None = None):
    """A `Page` with a section per source (path) and per in-memory record, and the explorer."""
    from gradvet.report.explorer import add_explorer
    from gradvet.report.page import Page
    from gradvet.report.sources import add_record, add_source, kind_of

    page = Page(title, f"gradvet {VERSION}: gradient flow, measured and explained")
    for source in sources:
        add_source(page, Path(source))
    for i, record in enumerate(records):
        kind = kind_of(record)
        if kind is None:
            raise GradvetError("a record for the report must be a gradvet result (experiment, diagnosis, choice, theory).")
        page.sources[f"record-{i + 1}"] = record
        add_record(page, record, Path.cwd(), f"record {i + 1}")
    add_explorer(page, activations, selected)
    return page


def write_report(out: str | os.PathLike[str], sources: Iterable[str | os.PathLike[str]] = (),
                 records: Iterable[dict[str, Any]] = (), activations: Iterable[str] = (),
                 title: str = "gradvet report", selected: str | None = None) -> Path:
    """Write the report to `out` (.html); returns its path."""
    path = _check_out(out)
    html = build_page(sources, records, activations, title, selected).render()
    try:
        path.write_text(html)
    except OSError as err:
        raise GradvetError(f"cannot write report {str(path)!r}: {err.strerror or err}.") from None
    return path


__all__ = ["build_page", "write_report"]
