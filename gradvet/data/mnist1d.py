"""MNIST-1D (Greydanus & Kobak, "Scaling down deep learning with MNIST-1D",
ICML 2024): 1-D signals of length 40 made from 10 digit templates by random
padding, translation, shear, scaling and correlated + i.i.d. noise; 10 classes.

Generated locally with `mnist1d.data.make_dataset(get_dataset_args())`
(never `get_dataset`, which downloads a pickle from GitHub). Of the
`num_samples` requested, num_samples // 10 are made per class; the first 80%
(the package's `train_split`) are training data. The package standardises x
over the whole dataset to mean 0 and std 1.

`make_dataset` seeds numpy's and `random`'s global generators; their states
are saved and restored around it, so loading leaves no trace in global RNG
state. The result is cached as an .npz (no pickle) under
`cache_dir() / "data"`, written atomically (temp file + os.replace).
"""

from __future__ import annotations

import os
import random
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from gradvet.base.errors import GradvetError
from gradvet.base.paths import cache_dir
from gradvet.data.dataset import Dataset
from gradvet.data.options import as_int

_FORMAT = 1  # bump when the cached arrays change meaning
_KEYS = ("x", "y", "x_test", "y_test")


def load_mnist1d(*, num_samples: int = 5000, seed: int = 42) -> Dataset:
    """MNIST-1D with `num_samples` examples (80% train) generated with `seed`."""
    num_samples = as_int("mnist1d", "num_samples", num_samples, minimum=10)
    seed = as_int("mnist1d", "seed", seed, minimum=0, maximum=2**32 - 1)
    path = cache_path(num_samples, seed)
    arrays = _read_cache(path)
    if arrays is None:
        arrays = _generate(num_samples, seed)
        _write_cache(path, arrays)
    return Dataset.from_arrays(
        "mnist1d", arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"], n_classes=10, task="multiclass"
    )


def cache_path(num_samples: int, seed: int) -> Path:
    """Where the arrays for these options are cached."""
    return cache_dir() / "data" / f"mnist1d-v{_FORMAT}-n{num_samples}-seed{seed}.npz"


def _generate(num_samples: int, seed: int) -> dict[str, np.ndarray]:
    try:
        import mnist1d.data as m1d
    except ImportError:
        raise GradvetError(
            "dataset 'mnist1d' needs the package mnist1d, which is not installed; run: pip install mnist1d."
        ) from None
    args = m1d.get_dataset_args()
    args.num_samples = num_samples
    args.seed = seed
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    try:
        made = m1d.make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return {
        "x": np.asarray(made["x"], dtype=np.float32),
        "y": np.asarray(made["y"], dtype=np.int64),
        "x_test": np.asarray(made["x_test"], dtype=np.float32),
        "y_test": np.asarray(made["y_test"], dtype=np.int64),
    }


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when absent or unreadable (then regenerated)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in _KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Atomic write; an unwritable cache directory only means no caching."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".mnist1d-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as out:
                np.savez(out, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass
