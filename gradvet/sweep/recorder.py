"""`SweepSummary` (what one sweep did) and `Recorder`, through which a backend saves its runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gradvet.spec import RunSpec
from gradvet.sweep.outcome import Outcome, error_text
from gradvet.sweep.store import Store
from gradvet.sweep.store_file import StoreWriteError


@dataclass
class SweepSummary:
    """What one `run_sweep` call did. total = skipped + ran; ran = done + diverged + failed."""

    total: int
    skipped: int
    ran: int = 0
    done: int = 0
    diverged: int = 0
    failed: int = 0
    store: str = ""

    def line(self) -> str:
        """'12 runs: 4 already done, 8 ran (7 done, 1 diverged, 0 failed); store runs.db'."""
        runs = "run" if self.total == 1 else "runs"
        return (f"{self.total} {runs}: {self.skipped} already done, {self.ran} ran ({self.done} done, "
                f"{self.diverged} diverged, {self.failed} failed); store {self.store}")

    def __str__(self) -> str:
        return self.line()


class Recorder:
    """What a backend reports to while it runs: marks runs as running, saves each outcome into the
    store, counts it in the summary and advances the progress display (the main process is the
    only writer of runs; the runs' own heartbeats aside, `gradvet.sweep.live`)."""

    def __init__(self, store: Store, summary: SweepSummary, progress: Any) -> None:
        self.store, self.summary, self.progress = store, summary, progress

    def start(self, spec: RunSpec) -> None:
        self.store.mark_running(spec)

    def finish(self, outcome: Outcome) -> None:
        """Save one outcome (a result that cannot be stored is stored as 'failed'; a store that
        cannot be written, its disk full, raises StoreWriteError and the run stays unsaved)."""
        if outcome.error is None:
            try:
                self.store.save(outcome)
            except StoreWriteError:
                raise
            except Exception as err:  # noqa: BLE001 - e.g. a bad status or a malformed layer record
                outcome.error = error_text(err)
        if outcome.error is not None:
            self.store.save_failure(outcome.spec, outcome.error)
            outcome.status = "failed"
        self.summary.ran += 1
        setattr(self.summary, outcome.status, getattr(self.summary, outcome.status) + 1)
        if self.progress is not None:
            self.progress.advance(outcome)

    def forget(self, keys: list[str]) -> None:
        """Best effort, while interrupted: drop the 'running' rows of runs that did not finish."""
        try:
            self.store.forget_running(keys)
        except Exception:  # noqa: BLE001 - they are re-run on resume either way
            pass
