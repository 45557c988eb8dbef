"""Which catalog activation a callable computes, found by its values rather than its name.

A model's activation is often a class gradvet has never heard of: Hugging Face's
`NewGELUActivation` (gelu_tanh written out), `GELUActivation` (gelu), timm's, or a user's
`Swish` computing x*sigmoid(x). `identify(fn)` evaluates `fn` on a fixed float64 grid and
checks that it acts elementwise:

- it returns a tensor of the grid's shape, twice the same (no randomness, as dropout has);
- each value depends on its own input only: the same values on a permuted grid (permuted),
  on the grid's first half alone (softmax or a normalisation would change) and on the grid
  laid out as a matrix (an operation along the last dimension would change);

then compares the values with every catalog entry at its default parameters (torch.allclose,
rtol = atol = 1e-6 after casting to float64: Hugging Face's NewGELU equals gelu_tanh up to
rounding, while gelu and gelu_tanh differ by 2e-4). Where several entries match (silu and
swish with beta = 1) the one with the fewest parameters wins, then a built-in one, then the
first by name. `identify_module(module)` does this for a parameter-free leaf module,
calling its `forward` (its hooks do not fire), with gradients off and torch's CPU random
stream put back as it was (`torch.random.fork_rng`); a module whose buffers change is
restored and not identified. Results are cached by the module's class and plain settings.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
from torch import nn

from gradvet.activations.core import Activation
from gradvet.activations.registry import BUILTIN, entry, names

TOLERANCE = 1e-6  # rtol and atol of the comparison with a catalog entry (float64)
GRID_RANGE, GRID_POINTS = 12.0, 4801  # -12..12 in steps of 0.005: past relu6's and hardtanh's kinks
_SETTINGS = (bool, int, float, str, type(None))

_catalog_values: dict[str, tuple[object, torch.Tensor | None]] = {}  # name -> (its Entry, values on the grid)
_by_module: dict[tuple, Activation | None] = {}


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=TOLERANCE, atol=TOLERANCE,
                                                 equal_nan=True)


def _values(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor | None:
    """fn on a fresh copy of x (fn may work in place), or None when it fails or returns no tensor."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = fn(x.clone())
    except Exception:  # any failure means: not an elementwise activation
        return None
    if not torch.is_tensor(y) or not y.is_floating_point() or y.shape != x.shape:
        return None
    return y.detach().to("cpu", torch.float64)


@functools.cache
def grid() -> torch.Tensor:
    """The float64 points every callable and catalog entry is evaluated on."""
    return torch.linspace(-GRID_RANGE, GRID_RANGE, GRID_POINTS, dtype=torch.float64)


@functools.cache
def _permutation() -> torch.Tensor:
    return torch.randperm(GRID_POINTS, generator=torch.Generator().manual_seed(0))  # its own generator


def elementwise_values(fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
    """fn's values on `grid()` when fn acts elementwise and deterministically (see the module
    docstring), else None."""
    x = grid()
    y = _values(fn, x)
    if y is None:
        return None
    half, perm, whole = GRID_POINTS // 2, _permutation(), 60 * 80
    checks = ((x, y), (x[perm], y[perm]), (x[:half], y[:half]), (x[:whole].reshape(60, 80), y[:whole].reshape(60, 80)))
    for x, expected in checks:
        got = _values(fn, x)
        if got is None or not _close(got, expected):
            return None
    return y


def _entry_values(name: str) -> torch.Tensor | None:
    """A catalog entry's values on the grid at its default parameters (cached while the entry stays)."""
    current = entry(name)
    cached = _catalog_values.get(name)
    if cached is not None and cached[0] is current:
        return cached[1]
    try:
        with torch.no_grad():
            values = current.build().fn(grid().clone()).to(torch.float64)
    except Exception:  # an entry that cannot run on the grid matches nothing
        values = None
    _catalog_values[name] = (current, values)
    return values


def identify(fn: Callable[[torch.Tensor], torch.Tensor]) -> Activation | None:
    """The catalog Activation (default parameters) whose values `fn` computes, or None when
    `fn` is not elementwise or matches no entry. Gradients off; the CPU random stream is put
    back as it was."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        y = elementwise_values(fn)
    if y is None:
        return None
    matches = [n for n in names() if (v := _entry_values(n)) is not None and _close(y, v)]
    if not matches:
        return None
    best = min(matches, key=lambda n: (len(entry(n).params), n not in BUILTIN, n))
    return entry(best).build()


def _settings(module: nn.Module) -> tuple:
    """The module's plain attributes (numbers, strings, flags; `training` among them), for the cache key."""
    return tuple(sorted((k, v) for k, v in vars(module).items()
                        if not k.startswith("_") and isinstance(v, _SETTINGS)))


def identify_module(module: nn.Module) -> Activation | None:
    """The catalog Activation a parameter-free leaf module computes (`identify` on its forward),
    or None for a module with parameters or children, or whose buffers change when it runs."""
    if any(True for _ in module.parameters()) or any(True for _ in module.children()):
        return None
    key: tuple | None = (type(module), _settings(module))
    try:
        return _by_module[key]  # type: ignore[index]  # a tuple here; None only below
    except KeyError:
        pass
    except TypeError:  # an unhashable setting: identify without caching
        key = None
    buffers = [(b, b.detach().clone()) for b in module.buffers()]
    found = identify(module.forward)
    changed = False
    for buffer, before in buffers:
        if not torch.equal(buffer, before):
            with torch.no_grad():
                buffer.copy_(before)
            changed = True
    found = None if changed else found
    if key is not None:
        _by_module[key] = found
    return found
