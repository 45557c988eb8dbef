"""Throughput of sweeps of small networks: batched training against one run after another,
measured side by side in one process (interleaved rounds; per contender the median round).

Goals (issue 17; issue 8's wide-MLP goal below):
1. 16 digits MLPs (depth 8, width 64, different seeds), 500 SGD steps each, end to end (model
   built, trained, evaluated; data loaded once, start-up not counted): batched training
   (`gradvet.train.batched.run_batched`) against `gradvet.train.run` one after another,
   - with the default probe trace: throughput ratio >= 4;
   - without it: >= 0.6 of the physical ceiling.
   The ceiling is the ratio batched training would reach if its step cost only its matrix
   products, run at the batched-matmul rate measured here on the step's own shapes: per layer
   the forward product (R, B, n_in) @ (R, n_in, n_out), the input gradient (R, B, n_out) @
   (R, n_out, n_in) (not for the first layer) and the weight gradient (R, n_out, B) @ (R, B, n_in),
   each `torch.bmm`, the median of several in each round (the same conditions as the contenders').
   Ceiling ratio = (one-by-one s/run) / (steps x that matmul
   time / R); fraction of the ceiling = achieved ratio / ceiling ratio.
2. Width 512, depth 8: achieved GFLOP/s of batched training as a fraction of this machine's
   matmul peak (a 1024^2 float32 matmul timed in the same process), goal >= 0.5 (issue 8).
   FLOPs per step: forward 2*B*sum(n_in*n_out) per run, backward twice that.
Prints times and ratios; asserts nothing. One torch thread unless --threads.

    .venv/bin/python benchmarks/sweep_throughput.py [--runs 16 --steps 500 --rounds 3] [--threads 1]
    .venv/bin/python benchmarks/sweep_throughput.py --steps 60 --rounds 1 --sequential-runs 2 --wide-runs 0   # quick
"""

from __future__ import annotations

import argparse
import statistics
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


def mlp_sizes(n_features: int, width: int, depth: int, n_out: int) -> list[int]:
    return [n_features] + [width] * depth + [n_out]


def mlp_flops(n_features: int, width: int, depth: int, n_out: int, batch: int) -> float:
    """FLOPs of one training step (forward + backward, weights only) of one MLP."""
    sizes = mlp_sizes(n_features, width, depth, n_out)
    macs = sum(a * b for a, b in zip(sizes, sizes[1:]))
    return 3 * 2 * batch * macs


def batched_matmul_time(sizes: list[int], runs: int, batch: int, repeats: int = 30) -> tuple[float, float]:
    """(seconds, FLOPs) of the matrix products of one batched training step of `runs` MLPs of
    layer sizes `sizes` (see the module docstring), each product's time the median of `repeats`."""
    import torch

    total, flops = 0.0, 0.0
    for layer, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        products = [((runs, batch, n_in), (runs, n_in, n_out)), ((runs, n_out, batch), (runs, batch, n_in))]
        if layer > 0:
            products.append(((runs, batch, n_out), (runs, n_out, n_in)))
        for shape_a, shape_b in products:
            a, b = torch.randn(shape_a), torch.randn(shape_b)
            torch.bmm(a, b)
            taken = []
            for _ in range(repeats):
                start = time.perf_counter()
                torch.bmm(a, b)
                taken.append(time.perf_counter() - start)
            total += statistics.median(taken)
            flops += 2 * shape_a[0] * shape_a[1] * shape_a[2] * shape_b[2]
    return total, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sequential-runs", type=int, default=4,
                        help="runs timed one after another per round (the per-run time is the same for all)")
    parser.add_argument("--wide-runs", type=int, default=8, help="0 skips the width-512 measurement")
    parser.add_argument("--wide-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true",
                        help="also print where a batched group's time goes (torch.profiler, with and without the trace)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from gradvet.data import load
    from gradvet.spec import RunSpec
    from gradvet.train import run
    from gradvet.train.batched import run_batched

    data = load("digits")
    specs = [RunSpec(depth=args.depth, width=args.width, steps=args.steps, seed=s, eval_every=0)
             for s in range(args.runs)]
    run(specs[0].replace(steps=5), dataset=data)  # warm-up
    run_batched([s.replace(steps=5) for s in specs[:2]], dataset=data)
    k = min(args.sequential_runs, args.runs)
    times: dict[tuple[str, str], list[float]] = {}
    matmul: list[float] = []
    for _ in range(args.rounds):
        for label, probe in (("no probe", None), ("default probe trace", "auto")):
            start = time.perf_counter()
            for spec in specs[:k]:
                run(spec, probe=probe, dataset=data)
            times.setdefault((label, "one"), []).append((time.perf_counter() - start) / k)
            start = time.perf_counter()
            run_batched(specs, probe=probe, dataset=data)
            times.setdefault((label, "batched"), []).append((time.perf_counter() - start) / args.runs)
        sizes = mlp_sizes(data.n_features, args.width, args.depth, data.n_classes)
        seconds, flops = batched_matmul_time(sizes, args.runs, specs[0].batch_size)
        matmul.append(seconds)
    step_mm = statistics.median(matmul)
    rate = flops / step_mm / 1e9
    print(f"digits MLP depth {args.depth} width {args.width}, {args.runs} runs x {args.steps} SGD steps, batch "
          f"{specs[0].batch_size}, end to end; torch threads {args.threads}; {args.rounds} rounds (median)")
    print(f"  batched matmul rate on the step's shapes: {rate:.1f} GFLOP/s ({step_mm * 1e3:.2f} ms of products "
          f"per step for all {args.runs} runs)")
    ideal = args.steps * step_mm / args.runs
    for label, goal in (("no probe", None), ("default probe trace", 4.0)):
        one = statistics.median(times[(label, "one")])
        bat = statistics.median(times[(label, "batched")])
        ratio, ceiling = one / bat, one / ideal
        wanted = f"goal >= {goal:g}" if goal else "goal: fraction >= 0.6"
        print(f"  {label:20s} one after another {one:6.3f} s/run ({k} timed)   batched x{args.runs} {bat:6.3f} s/run"
              f"   ratio {ratio:5.2f}   ceiling {ceiling:5.2f}   fraction of ceiling {ratio / ceiling:4.2f}   ({wanted})")

    if args.profile:
        from torch.profiler import profile

        for label, probe in (("no probe", None), ("default probe trace", "auto")):
            with profile() as prof:
                run_batched(specs, probe=probe, dataset=data)
            print(f"\nbatched x{args.runs}, {args.steps} steps, {label}: operators by own CPU time")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))

    if args.wide_runs:
        peak = matmul_peak()
        wide = [RunSpec(depth=8, width=512, steps=args.wide_steps, seed=s, eval_every=0) for s in range(args.wide_runs)]
        run_batched(wide[:2], probe=None, dataset=data)  # warm-up
        start = time.perf_counter()
        run_batched(wide, probe=None, dataset=data)
        elapsed = time.perf_counter() - start
        flops_wide = mlp_flops(data.n_features, 512, 8, data.n_classes, 64) * args.wide_steps * args.wide_runs
        achieved = flops_wide / elapsed / 1e9
        print(f"width 512 depth 8, {args.wide_runs} runs x {args.wide_steps} steps batched: {achieved:.1f} GFLOP/s; "
              f"matmul peak (1024^2 float32) {peak:.1f} GFLOP/s; fraction {achieved / peak:.2f} (goal >= 0.5)")


if __name__ == "__main__":
    main()
