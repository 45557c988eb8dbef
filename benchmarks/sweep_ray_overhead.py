"""What Ray costs on one machine: the same small sweep with `--workers 2` and with `--backend ray`.

Eight runs of a tiny MLP (digits, depth 2, width 8), each into a fresh store,
side by side in one process on the machine's cores (2 here):

* local, workers=2: a fresh process pool (its start-up and imports included);
* ray, cold: run_sweep starts its own local Ray instance and stops it after
  (what `gradvet sweep --backend ray` does without --address);
* ray, warm: an instance already up with its workers warmed by an earlier
  sweep (what a long-lived cluster gives): the steady per-run cost.

Prints wall time per run for each, the ratio to local, Ray's start-up and
shutdown times, and checks that both backends stored the same losses.
Asserts nothing.

    .venv/bin/python benchmarks/sweep_ray_overhead.py [--runs 8] [--steps 200]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    try:
        import ray
    except ImportError:
        print("sweep_ray_overhead: skipped, the ray extra is not installed (pip install 'gradvet[ray]').")
        return
    import torch

    from gradvet.spec import RunSpec
    from gradvet.sweep import Store, run_sweep

    torch.set_num_threads(1)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="gradvet-bench-ray-"))

    def specs(first_seed: int) -> list[RunSpec]:
        return [RunSpec(data="digits", depth=2, width=8, steps=args.steps, eval_every=0, seed=first_seed + i)
                for i in range(args.runs)]

    def sweep(name: str, grid: list[RunSpec], **kwargs) -> float:
        start = time.perf_counter()
        summary = run_sweep(grid, tmp / f"{name}.db", **kwargs)
        wall = time.perf_counter() - start
        assert summary.ran == len(grid) and summary.failed == 0, summary
        return wall

    grid = specs(0)
    walls = {"local, --workers 2": sweep("local", grid, workers=2)}
    walls["ray, cold (own instance)"] = sweep("ray-cold", grid, backend="ray")

    start = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    t_init = time.perf_counter() - start
    sweep("ray-warm-up", specs(1000), backend="ray")  # workers started, gradvet and torch imported
    walls["ray, warm (instance up)"] = sweep("ray-warm", grid, backend="ray")
    start = time.perf_counter()
    ray.shutdown()
    t_shutdown = time.perf_counter() - start

    with Store(tmp / "ray-warm.db") as db:  # seconds the warm runs themselves reported (gradvet.train's wall_time)
        train = sum(r["metrics"]["wall_time"] for r in db.runs())
    with Store(tmp / "local.db") as local, Store(tmp / "ray-warm.db") as warm, Store(tmp / "ray-cold.db") as cold:
        same = all(local.get(s.key)["history"]["loss"] == warm.get(s.key)["history"]["loss"]
                   == cold.get(s.key)["history"]["loss"] for s in grid)

    n = len(grid)
    base = walls["local, --workers 2"] / n
    print(f"{n} runs (digits, MLP depth 2 x width 8, {args.steps} steps, one torch thread each) on {cpus} CPUs; "
          f"a warm run trains in {train / n:.2f} s")
    print(f"{'backend':<27}{'wall s':>8}{'s / run':>9}{'vs local':>10}{'  overhead s / run':>19}")
    ideal = train / cpus  # the training alone, spread over the CPUs
    for name, wall in walls.items():
        overhead = (wall - ideal) / n
        print(f"{name:<27}{wall:8.2f}{wall / n:9.3f}{wall / n / base:10.2f}{overhead:19.3f}")
    print(f"overhead = (wall - {n} warm runs' training / {cpus} CPUs) / {n}: start-up, imports, scheduling, saving")
    print(f"ray start-up (ray.init, local, {cpus} CPUs) {t_init:.2f} s; shutdown {t_shutdown:.2f} s")
    print(f"same losses from both backends: {same}")


if __name__ == "__main__":
    main()
