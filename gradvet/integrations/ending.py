"""What a callback does with its diagnosis when training ends: print it, write it (JSON or an HTML
report), save the run into a store; on the main process only."""

from __future__ import annotations

import os
from pathlib import Path

from gradvet.base.errors import GradvetError
from gradvet.integrations.distributed import is_main
from gradvet.integrations.session import Session

REPORT_SUFFIXES = (".json", ".html")


def check_report(report: str | os.PathLike[str] | None) -> Path | None:
    """`report` as a Path ending in .json or .html (None stays None); anything else is refused up front."""
    if report is None:
        return None
    path = Path(report)
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise GradvetError(f"report={str(report)!r} must end in .json (the diagnosis as JSON) or .html (a report page).")
    return path


def finish(session: Session, show: bool, report: Path | None, store: str | os.PathLike[str] | None,
           name: str | None, title: str) -> None:
    """After training: print the diagnosis (`show`), write `report`, save into `store`; nothing on a rank
    other than 0, and nothing when no step was recorded (a run shorter than `every`)."""
    if not is_main() or not session.trace.steps():
        return
    diagnosis = session.diagnose()
    if show:
        outside = (f"; {session.outside} trainable parameters are in no watched layer, so gradvet/grad_norm leaves "
                   "them out" if session.outside else "")
        print(f"gradvet ({title}): {len(session.trace.steps())} recorded steps{outside}\n{diagnosis}")
    if report is not None and report.suffix.lower() == ".json":
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(diagnosis.to_json())
    elif report is not None:
        from gradvet.report import write_report

        write_report(report, records=[{**diagnosis.to_dict(), "model": type(session.model).__name__,
                                       "data": title}], title=f"gradvet: {title}")
    if store is not None:
        session.save(store, name)
