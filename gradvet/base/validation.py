"""One home for the checks on sizes, numbers and paths that the command line, the API and
grid files share.

Every check either returns the value or raises a `GradvetError` worded by `not_allowed`, one
sentence: "NAME=VALUE is not allowed (WHY); allowed: WHAT." A limit is a module constant,
named in the error, with the measurement that chose it beside it (this machine: 2 CPU cores,
24 GiB, torch 2.13 CPU; `gradvet diagnose` measured with /usr/bin/time).
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from gradvet.base.errors import GradvetError, shown, unknown

# -- limits -----------------------------------------------------------------------------------------

# Hidden layers. `diagnose --depth 10000 --width 8` runs in 34 s at 1.8 GB peak, and `choose` at
# that depth in 45 s at 1.7 GB; at depth 30000 `diagnose` crashed (segfault at 4.5 GB). The
# deepest plain nets trained in the literature have 10,000 layers (Xiao et al. 2018, "Dynamical
# isometry and a mean field theory of CNNs"), so theory's profiles stop there too.
MAX_DEPTH = 10_000

# Weights of the hidden layers, counted as depth x width^2 (depth layers of width x width; an
# upper estimate when the input is narrower). `diagnose` measured about 16 bytes per weight
# (depth 100 width 512: 1.0 GB peak against 0.47 GB for torch and the data alone), and training
# with Adam holds 4 floats per weight (weight, gradient, two moments): 16 bytes as well, so
# 2^27 weights are about 2.1 GB.
MAX_WEIGHTS = 2**27

# Units per hidden layer: a net of two hidden layers of 8192 units has MAX_WEIGHTS weights.
MAX_WIDTH = 8192

# Activation values one step keeps for the backward pass, counted as depth x width x batch_size.
# `diagnose --depth 100 --width 512` measured about 15 bytes per value (peak 1.70 GB at batch
# 1024 against 1.00 GB at batch 128), so 2^27 values are about 2 GB.
MAX_ACTIVATIONS = 2**27

# Examples per step. Layer-wise pre-training draws batch_size examples whatever the dataset's
# size (gradvet.train.pretrain): 2^16 MNIST images are 205 MB of float32.
MAX_BATCH_SIZE = 2**16

# Optimiser steps of one run. The engine keeps about 100 bytes of history per step (three
# Python numbers in lists: 3 x (24 + 8) bytes by sys.getsizeof), so 10^7 steps are about 1 GB.
MAX_STEPS = 10_000_000

# Steps x watched layers of a check-up (`gradvet diagnose --steps`), which records every step of
# every layer: 1000 steps of the depth-10 sigmoid net (21 watched modules) grew the peak by
# 15 MB, about 0.7 KB per layer-step, so 2 x 10^6 layer-steps are about 1.4 GB.
MAX_PROBED_LAYER_STEPS = 2_000_000

# Seeds: torch.manual_seed and torch.Generator take 64-bit seeds, and the stores keep a seed in
# SQLite's signed 64-bit INTEGER, so 0 .. 2^63 - 1.
MAX_SEED = 2**63 - 1

# Torch intra-op threads (GRADVET_THREADS). Each is an OS thread with its own stack; 100,000
# used up the machine's process ids. 256 is far more than gradvet's small models can use, and
# far below Linux's default process-id limit (32768).
MAX_THREADS = 256

# Worker processes of a local sweep: each is a process with torch loaded, and more workers than
# cores only queue behind each other; the same ceiling as threads.
MAX_WORKERS = MAX_THREADS

# Seeds an experiment averages over: every run of a point is held in memory until the point's
# table is made, and the mean of 1000 seeds already has 3% of one seed's spread.
MAX_SEEDS = 1000

# Runs in one grid, counted as the product of its list lengths before anything is expanded.
# Loading a grid of 10^5 runs (building and hashing every RunSpec) took 36 s and 250 MB here;
# 10^5 runs of 0.6 s each are 17 hours of training.
MAX_GRID_RUNS = 100_000

# Size of a grid file: a grid within MAX_GRID_RUNS needs at most the sum of its list lengths in
# values, well under a megabyte of TOML; 10 MiB leaves room for comments.
MAX_GRID_FILE_BYTES = 10 * 2**20

# End of a plotted x axis: at +-1e100 every plot is clean; at +-1e300 numpy overflows in the jump
# detector, and at +-8.9e307 matplotlib's tick locator fails (xmax - xmin overflows float64).
MAX_ABS_X = 1e100


# -- the wording ------------------------------------------------------------------------------------

def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for a "why"."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def not_allowed(name: str, value: Any, allowed: str, why: str = "") -> GradvetError:
    """The one wording of a bad value: "NAME=VALUE is not allowed (WHY); allowed: ALLOWED."."""
    reason = f" ({why})" if why else ""
    return GradvetError(f"{name}={shown(value)} is not allowed{reason}; allowed: {allowed}.")


# -- numbers ----------------------------------------------------------------------------------------

def whole_number(name: str, value: Any, low: int = 0, high: int | None = None, limit: str = "") -> int:
    """`value` if it is an int (not a bool) in [low, high]; `limit` names the constant behind `high`."""
    if high is None:
        allowed = f"a whole number >= {low}"
    else:
        allowed = f"a whole number from {low} to {high}" + (f" ({limit})" if limit else "")
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise not_allowed(name, value, allowed)
    return value


def finite_number(name: str, value: Any, low: float | None = None, above: bool = False,
                  high: float | None = None, limit: str = "", below: bool = False) -> float:
    """`value` as a float if it is a finite int or float, >= low (> low when `above`) and <= high
    (< high when `below`)."""
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if above else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if below else '<='} {high:g}" + (f" ({limit})" if limit else ""))
    allowed = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if above else value >= low
    if ok and high is not None:
        ok = value < high if below else value <= high
    if not ok:
        raise not_allowed(name, value, allowed)
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """`value` if it is True or False (not 0, 1 or a string)."""
    if not isinstance(value, bool):
        raise not_allowed(name, value, "true or false")
    return value


def positive_number(name: str, value: Any) -> float:
    """A finite number > 0 (a learning rate, a clipping threshold, a time budget)."""
    return finite_number(name, value, low=0.0, above=True)


def optional(check, name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
    """None, or `check(name, value, ...)`: for fields where none means "off"."""
    return None if value is None else check(name, value, *args, **kwargs)


def seed(name: str, value: Any) -> int:
    """A random seed: a whole number in [0, MAX_SEED]."""
    return whole_number(name, value, 0, MAX_SEED, "MAX_SEED")


def steps(name: str, value: Any) -> int:
    """Optimiser steps of a run: a whole number in [0, MAX_STEPS]."""
    return whole_number(name, value, 0, MAX_STEPS, "MAX_STEPS")


def batch_size(name: str, value: Any) -> int:
    """Examples per step: a whole number in [1, MAX_BATCH_SIZE]."""
    return whole_number(name, value, 1, MAX_BATCH_SIZE, "MAX_BATCH_SIZE")


def choice(name: str, value: Any, allowed: tuple) -> Any:
    """`value` if it is one of `allowed` (None shown as none), else `unknown`'s sentence with close matches."""
    if value not in allowed:
        raise unknown(name, value, allowed)
    return value


def network_depth(name: str, value: Any) -> int:
    """Layers of a network (built, or in theory's profile): a whole number in [1, MAX_DEPTH]."""
    return whole_number(name, value, 1, MAX_DEPTH, "MAX_DEPTH")


def architecture(depth: Any, width: Any, batch: Any | None = None) -> None:
    """An MLP's size: depth in [1, MAX_DEPTH], width in [1, MAX_WIDTH], depth x width^2 within
    MAX_WEIGHTS and, given the batch size, depth x width x batch within MAX_ACTIVATIONS."""
    network_depth("depth", depth)
    whole_number("width", width, 1, MAX_WIDTH, "MAX_WIDTH")
    weights = depth * width * width
    if weights > MAX_WEIGHTS:
        raise not_allowed("depth x width^2", weights, f"at most {MAX_WEIGHTS} hidden weights (MAX_WEIGHTS)",
                          why=f"depth={depth}, width={width}")
    if batch is not None:
        values = depth * width * batch_size("batch_size", batch)
        if values > MAX_ACTIVATIONS:
            raise not_allowed("depth x width x batch_size", values,
                              f"at most {MAX_ACTIVATIONS} activation values per step (MAX_ACTIVATIONS)",
                              why=f"depth={depth}, width={width}, batch_size={batch}")


def threads(name: str, text: str) -> int:
    """A thread count given as text (an environment variable): a whole number in [1, MAX_THREADS]."""
    digits = text.strip()
    # more digits than MAX_THREADS has are too many whatever they say (and int() of a huge string is slow)
    if digits.isascii() and digits.isdigit() and len(digits) <= len(str(MAX_THREADS)):
        if 1 <= int(digits) <= MAX_THREADS:
            return int(digits)
    raise not_allowed(name, text, f"a whole number from 1 to {MAX_THREADS} (MAX_THREADS)")


def x_range(xmin: Any, xmax: Any) -> tuple[float, float]:
    """A plotted x axis: finite ends within +-MAX_ABS_X, xmin below xmax."""
    for name, value in (("xmin", xmin), ("xmax", xmax)):
        finite_number(name, value, low=-MAX_ABS_X, high=MAX_ABS_X, limit="MAX_ABS_X")
    if not xmin < xmax:
        raise not_allowed("xmax", xmax, f"a number above xmin={shown(xmin)}", why="the x range would be empty")
    return float(xmin), float(xmax)


# -- paths ------------------------------------------------------------------------------------------

def output_folder(name: str, path: str | os.PathLike[str]) -> Path:
    """A folder that exists or can be created (it is created here) and that a file can be written into."""
    problem = _folder_problem(Path(path))
    if problem:
        raise not_allowed(name, path, "a folder that can be created and written to", why=problem)
    return Path(path)


def output_file(name: str, path: str | os.PathLike[str], suffixes: tuple[str, ...] = ()) -> Path:
    """A file to write: one of `suffixes` (when given), not a folder, in a folder that can be
    created (it is created here) and written to."""
    out = Path(path)
    allowed = "a file in a writable folder" + (f", ending in {', '.join(suffixes)}" if suffixes else "")
    if suffixes and out.suffix.lower() not in suffixes:
        raise not_allowed(name, path, allowed, why=f"unknown file type {out.suffix or '(none)'!r}")
    problem = _folder_problem(out.parent)
    if problem:
        raise not_allowed(name, path, allowed, why=f"its folder: {problem}")
    if out.is_dir():
        raise not_allowed(name, path, allowed, why="it is a folder")
    return out


def _folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be created or written into, or None (it exists afterwards)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "it is a file, not a folder"
    except OSError as err:
        return f"cannot create it: {err.strerror or err}"
    if not folder.is_dir():
        return "it is not a folder"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return f"cannot write in it: {err.strerror or err}"
    return None


def regular_file(name: str, path: str | os.PathLike[str], max_bytes: int | None = None, limit: str = "") -> Path:
    """An existing regular file (not a folder, FIFO, device or socket, so reading it cannot hang)
    of at most `max_bytes` bytes. Checked with stat, before anything opens it."""
    allowed = "a regular file" + (f" of at most {max_bytes} bytes ({limit})" if max_bytes is not None else "")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise not_allowed(name, path, allowed, why="it does not exist") from None
    except OSError as err:
        raise not_allowed(name, path, allowed, why=err.strerror or str(err)) from None
    if stat.S_ISDIR(info.st_mode):
        raise not_allowed(name, path, allowed, why="it is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise not_allowed(name, path, allowed, why="it is a FIFO, device or socket, not a regular file")
    if max_bytes is not None and info.st_size > max_bytes:
        raise not_allowed(name, path, allowed, why=f"it has {info.st_size} bytes")
    return Path(path)
