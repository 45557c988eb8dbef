"""The base layer: what every other layer may use and which uses none of them.

rng (seeded: a seed for one call, the global stream restored), errors (GradvetError, the "unknown name" sentence), validation (sizes, numbers, paths, named
limits), files (reading regular files of bounded size and nesting), jsonable (strict JSON),
paths (the cache folder), formatting (numbers for people), stats (means, spreads).
Standard library only, plus torch where a check needs it: nothing here imports another
gradvet package.
"""
