"""Speed of the mean-field theory, measured in one process with every cache emptied first.

Goals (issue 6): q*, chi1 and the depth scales for every catalog entry at one
(sw2, sb2) in under 1 s together; one phase diagram (50 values of sb2) in under
1 s. Also timed: the catalog's mean-field numbers (critical sw2, chi1 at He and
Xavier variance), computed once and then read from the disk cache. Prints times
and their ratio to the goal; asserts nothing.

    .venv/bin/python benchmarks/bench_theory.py [--sw2 1.5 --sb2 0.05]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def cold(theory) -> None:
    """Empty the in-memory caches of the theory (properties stay: they are the catalog's)."""
    for fn in (theory._q_star, theory._rule, theory.critical_line, theory.at_infinity):
        fn.cache_clear()


def timed(fn, theory, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        cold(theory)
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sw2", type=float, default=1.5)
    parser.add_argument("--sb2", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["GRADVET_CACHE_DIR"] = tempfile.mkdtemp(prefix="gradvet-bench-")
    import scipy.optimize  # noqa: F401  imported once, as any session would
    import torch

    torch.set_num_threads(1)
    import gradvet
    from gradvet import theory
    from gradvet.activations import cache as disk

    acts = gradvet.activations.catalog()
    for act in acts:
        act.properties  # noqa: B018  the catalog's own cost, measured by bench_catalog.py

    rows = []

    def catalog_scales():
        for act in acts:
            theory.depth_scales(act, args.sw2, args.sb2)

    t = timed(catalog_scales, theory, args.repeats)
    rows.append((f"q*, chi1, depth scales: {len(acts)} entries at sw2={args.sw2:g}, sb2={args.sb2:g}", t, 1.0))
    for name in ("tanh", "erf", "selu", "relu", "gelu", "sigmoid"):
        t = timed(lambda n=name: theory.phase_diagram(n), theory, args.repeats)
        rows.append((f"phase diagram of {name} (50 values of sb2)", t, 1.0))

    def catalog_mean_field():
        for act in acts:
            theory._compute_mean_field(act)

    t = timed(catalog_mean_field, theory, args.repeats)
    rows.append((f"mean-field numbers of {len(acts)} entries (critical sw2, chi1 at He, Xavier)", t, None))
    for act in acts:
        theory.mean_field(act)  # fills the disk cache
    disk.clear_memory()
    start = time.perf_counter()
    for act in acts:
        theory.mean_field(act)
    rows.append(("the same, read back from the disk cache", time.perf_counter() - start, None))

    width = max(len(r[0]) for r in rows)
    print(f"{'task':<{width}}  {'seconds':>8}  {'goal':>5}  {'time/goal':>9}")
    for label, seconds, goal in rows:
        ratio = f"{seconds / goal:9.2f}" if goal else f"{'':>9}"
        print(f"{label:<{width}}  {seconds:8.3f}  {goal if goal else '-':>5}  {ratio}")


if __name__ == "__main__":
    main()
