"""Sweeps: a grid of RunSpecs trained into a crash-safe SQLite store, resumable after any interruption.

`load_grid(path)` reads the grid file, `run_sweep(specs, store_path)` runs what
the store does not hold yet, `Store(path)` reads (and writes) the results.
"""

from gradvet.sweep.grid import load_grid
from gradvet.sweep.runner import SweepSummary, run_sweep
from gradvet.sweep.store import Store

__all__ = ["Store", "SweepSummary", "load_grid", "run_sweep"]
