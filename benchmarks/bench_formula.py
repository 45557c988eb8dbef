"""Speed of the formula display's simplification, `gradvet.activations.formula.simplified`, side by
side with plain `sympy.simplify` on the same expressions, in one process.

Goal (issue 12): showing a formula's derivative takes well under 2 s, however large the
expression: `simplified` runs sympy.simplify only up to _SIMPLIFY_MAX_OPS operations and uses
cheap rewrites above. tests/test_formula.py checks that bound by counting the calls to
sympy.simplify (no clock in the tests); the seconds are measured here. Prints the times and
their ratios; asserts nothing.

    .venv/bin/python benchmarks/bench_formula.py [--repeats 3] [--no-plain-large]

--no-plain-large skips plain sympy.simplify on the large expression (several seconds).
"""

from __future__ import annotations

import argparse
import statistics
import time


def best_of(fn, expr, repeats: int) -> float:
    """The median wall time of fn(expr) over `repeats` calls, sympy's caches emptied before each."""
    from sympy.core.cache import clear_cache

    times = []
    for _ in range(repeats):
        clear_cache()
        start = time.perf_counter()
        fn(expr)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-plain-large", action="store_true")
    args = parser.parse_args()

    import sympy

    from gradvet.activations import formula

    cases = {
        "d/dx mish, x*tanh(log(1+exp(x)))": formula.derivative(formula.parse("x*tanh(log(1+exp(x)))")),
        "d2/dx2 sqrt(x**2+1)*atan(x)+asinh(x)*tanh(x)": formula.derivative(
            formula.derivative(formula.parse("sqrt(x**2+1)*atan(x)+asinh(x)*tanh(x)"))),
    }
    formula.simplified(formula.derivative(formula.parse("tanh(x)")))  # warm-up: sympy's lazy imports
    print(f"sympy {sympy.__version__}; sympy.simplify runs up to {formula._SIMPLIFY_MAX_OPS} operations; "
          f"median of {args.repeats}")
    print(f"{'expression':48s} {'ops':>4s} {'simplified':>11s} {'sympy.simplify':>15s} {'plain/ours':>10s}")
    for i, (name, expr) in enumerate(cases.items()):
        ops = sympy.count_ops(expr)
        ours = best_of(formula.simplified, expr, args.repeats)
        if i and args.no_plain_large:
            print(f"{name:48s} {ops:4d} {ours:10.3f}s {'(skipped)':>15s}")
            continue
        plain = best_of(sympy.simplify, expr, 1 if ops > formula._SIMPLIFY_MAX_OPS else args.repeats)
        print(f"{name:48s} {ops:4d} {ours:10.3f}s {plain:14.3f}s {plain / ours:9.1f}x")


if __name__ == "__main__":
    main()
