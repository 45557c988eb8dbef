"""Throughput of sweeps of small networks, measured side by side in one process.

Goals (issue 8):
1. 32 digits MLPs (depth 8, width 64, different seeds), 500 steps each: batched training
   (`gradvet.train.batched`) against one run after another (`gradvet.train.run`), goal >= 8x.
2. Width 512, depth 8: achieved GFLOP/s of batched training as a fraction of this machine's
   matmul peak (a large float32 matmul timed in the same process), goal >= 0.5.
   FLOPs per step: forward 2*B*sum(n_in*n_out) per run, backward twice that.
Prints times and ratios; asserts nothing. One torch thread unless --threads.

    .venv/bin/python benchmarks/sweep_throughput.py [--runs 32 --steps 500] [--threads 1]
"""

from __future__ import annotations

import argparse
import time


def matmul_peak(n: int = 1024, repeats: int = 20) -> float:
    """GFLOP/s of an n x n float32 matmul (best of `repeats`)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def mlp_flops(n_features: int, width: int, depth: int, n_out: int, batch: int) -> float:
    """FLOPs of one training step (forward + backward, weights only) of one MLP."""
    sizes = [n_features] + [width] * depth + [n_out]
    macs = sum(a * b for a, b in zip(sizes, sizes[1:]))
    return 3 * 2 * batch * macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--sequential-runs", type=int, default=8,
                        help="runs timed one after another (the per-run time is the same for all 32)")
    parser.add_argument("--wide-runs", type=int, default=8)
    parser.add_argument("--wide-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from gradvet.data import load
    from gradvet.spec import RunSpec
    from gradvet.train import run
    from gradvet.train.batched import run_batched

    data = load("digits")
    specs = [RunSpec(depth=8, width=64, steps=args.steps, seed=s, eval_every=0) for s in range(args.runs)]
    run(specs[0].replace(steps=5), probe=None, dataset=data)  # warm-up
    print(f"digits MLP depth 8 width 64, {args.steps} SGD steps, batch 64, torch threads {args.threads}")
    for label, probe in (("no probe", None), ("default probe trace", "auto")):
        k = min(args.sequential_runs, args.runs)
        start = time.perf_counter()
        for spec in specs[:k]:
            run(spec, probe=probe, dataset=data)
        per_run_seq = (time.perf_counter() - start) / k
        start = time.perf_counter()
        run_batched(specs, probe=probe, dataset=data)
        per_run_bat = (time.perf_counter() - start) / args.runs
        print(f"  {label:20s} one after another {per_run_seq:7.3f} s/run ({k} timed)   batched x{args.runs} "
              f"{per_run_bat:7.3f} s/run   throughput ratio {per_run_seq / per_run_bat:5.1f} (goal >= 8)")

    peak = matmul_peak()
    wide = [RunSpec(depth=8, width=512, steps=args.wide_steps, seed=s, eval_every=0) for s in range(args.wide_runs)]
    run_batched(wide[:2], probe=None, dataset=data)  # warm-up
    start = time.perf_counter()
    run_batched(wide, probe=None, dataset=data)
    elapsed = time.perf_counter() - start
    flops = mlp_flops(data.n_features, 512, 8, data.n_classes, 64) * args.wide_steps * args.wide_runs
    achieved = flops / elapsed / 1e9
    print(f"width 512 depth 8, {args.wide_runs} runs x {args.wide_steps} steps batched: {achieved:.1f} GFLOP/s; "
          f"matmul peak (1024^2 float32) {peak:.1f} GFLOP/s; fraction {achieved / peak:.2f} (goal >= 0.5)")


if __name__ == "__main__":
    main()
