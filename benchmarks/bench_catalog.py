"""Speed of the activation catalog, measured side by side in one process.

Goals (issue 2): all properties of the whole catalog computed in under 2 s on
a 2-core machine, cached after; `gradvet activations` answers in about the
time `import torch` takes. Prints times and the ratios; asserts nothing.

    .venv/bin/python benchmarks/bench_catalog.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time


def wall(cmd: list[str], env: dict[str, str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    cache = tempfile.mkdtemp(prefix="gradvet-bench-")
    os.environ["GRADVET_CACHE_DIR"] = cache
    import torch

    torch.set_num_threads(1)  # as `gradvet` sets it (GRADVET_THREADS, default 1): the library leaves it alone
    import gradvet
    from gradvet.activations import cache as disk
    from gradvet.activations.cost import relative_cost
    from gradvet.activations.properties import compute

    acts = gradvet.activations.catalog()
    compute(acts[0])  # warm-up: first autograd call, scipy import

    start = time.perf_counter()
    for act in acts:
        compute(act)
    t_props = time.perf_counter() - start

    start = time.perf_counter()
    for act in acts:
        relative_cost(act)
    t_cost = time.perf_counter() - start

    start = time.perf_counter()
    for act in gradvet.activations.catalog():
        act.properties  # noqa: B018  computes with cost and writes the cache
    t_first = time.perf_counter() - start

    disk.clear_memory()
    start = time.perf_counter()
    for act in gradvet.activations.catalog():
        act.properties  # noqa: B018  read back from disk
    t_cached = time.perf_counter() - start

    env = dict(os.environ)
    exe = os.path.join(os.path.dirname(sys.executable), "gradvet")
    t_torch = wall([sys.executable, "-c", "import torch"], env)
    t_cli = wall([exe, "activations"], env)
    t_json = wall([exe, "activations", "--json"], env)

    n = len(acts)
    print(f"catalog: {n} activations, torch {gradvet.activations.core.torch.__version__}, "
          f"{os.cpu_count()} CPUs")
    print(f"properties of the whole catalog, no cost      {t_props:7.3f} s   ({1000 * t_props / n:.1f} ms each; goal < 2 s)")
    print(f"relative cost of the whole catalog            {t_cost:7.3f} s")
    print(f"first use: properties + cost, cache written   {t_first:7.3f} s")
    print(f"cached: properties read back from disk        {t_cached:7.3f} s")
    print(f"`python -c 'import torch'`                    {t_torch:7.3f} s")
    print(f"`gradvet activations` (cached)                {t_cli:7.3f} s   ratio to import torch {t_cli / t_torch:.2f}")
    print(f"`gradvet activations --json` (cached)         {t_json:7.3f} s   ratio to import torch {t_json / t_torch:.2f}")


if __name__ == "__main__":
    main()
