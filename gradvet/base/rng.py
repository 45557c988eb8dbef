"""Seeding torch's global random stream for a block, and giving it back afterwards.

Model builders draw their weights from torch's global CPU generator: `nn.Linear`,
`nn.LSTMCell` and the like initialise themselves from it in their constructors (no
generator argument), and so does a user's model factory. A stored run is keyed by its
seed, so a seed must keep giving exactly the weights it gives today; an explicit
`torch.Generator` would change them unless it replaced every draw, the modules' own
included. Seeding the global generator for good would reset the caller's own random
stream; here it is seeded inside the block only (`torch.random.fork_rng` over the
CPU) and put back as it was when the block ends, by an exception too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Inside the block torch's global CPU generator starts from `seed` (the same numbers as
    `torch.manual_seed(seed)` gives on the CPU); after it, the generator is back in the state
    it had before. `seed=None`: nothing is seeded or restored, the block draws from the
    caller's stream. Device generators (CUDA) are neither seeded nor touched."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield
