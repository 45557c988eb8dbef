"""How a sweep groups its runs for batched training (`gradvet.train.batched`).

`plan(todo, workers, mode)` cuts the runs still to do into units of work: every set of
at least MIN_GROUP runs with the same `batch_key` (same architecture, data, optimiser and
budget; differing in seed, init, lr or weight decay) becomes batched units, split into
`workers` nearly equal parts of at least MIN_GROUP runs; every other run is a unit of
its own. mode "off" makes every run a unit of its own.
"""

from __future__ import annotations

from gradvet.base.errors import unknown
from gradvet.spec import RunSpec

MODES = ("auto", "off")
MIN_GROUP = 8  # measured: with the default probe trace, smaller groups gain little or lose


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise unknown("batched mode", mode, MODES)
    return mode


def plan(todo: list[RunSpec], workers: int = 1, mode: str = "auto") -> list[list[RunSpec]]:
    """Units of work, batched groups first (largest first), in a stable order."""
    from gradvet.train.batched import groups_of

    if check_mode(mode) == "off":
        return [[spec] for spec in todo]
    indices, unbatchable = groups_of(todo)
    groups = [[todo[i] for i in g] for g in indices]
    singles: list[list[RunSpec]] = [[todo[i]] for i in unbatchable]
    units: list[list[RunSpec]] = []
    for members in sorted(groups, key=len, reverse=True):
        if len(members) < MIN_GROUP:
            singles.extend([spec] for spec in members)
            continue
        parts = min(workers, len(members) // MIN_GROUP) or 1
        size, extra = divmod(len(members), parts)
        start = 0
        for k in range(parts):
            end = start + size + (1 if k < extra else 0)
            units.append(members[start:end])
            start = end
    return units + singles
