"""Datasets for experiments on vanishing and exploding gradients.

`load(name_or_path, **options)` returns a `Dataset` (train/test tensors plus
shape facts). Names, matched case-insensitively:

* ``digits``  - scikit-learn's 8x8 digits, standardised (tabular, 10 classes);
* ``mnist1d`` - MNIST-1D, generated locally and cached (40 features, 10 classes);
* ``mnist``   - MNIST from its IDX files (option ``path``: their directory);
* ``adding``  - the adding problem (sequence regression);
* ``memory``  - the first-symbol memory task (sequence classification).

A path also works: a ``.npz`` file with arrays ``x`` and ``y``, or a directory
holding the four MNIST IDX files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gradvet.base import validation
from gradvet.base.errors import GradvetError, unknown
from gradvet.data.dataset import Dataset
from gradvet.data.mnist import load_mnist
from gradvet.data.mnist1d import load_mnist1d
from gradvet.data.options import check_names, option_names
from gradvet.data.sequences import load_adding, load_memory
from gradvet.data.tabular import load_digits, load_npz

_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "mnist1d": load_mnist1d,
    "mnist": load_mnist,
    "adding": load_adding,
    "memory": load_memory,
}

NAMES: tuple[str, ...] = tuple(_LOADERS)


def options(name: str) -> tuple[str, ...]:
    """The options the dataset `name` accepts (e.g. ('length', 'n_train', 'n_test', 'seed'))."""
    return option_names(_LOADERS[name.lower()])


def load(name_or_path: str | os.PathLike[str] = "digits", **opts: Any) -> Dataset:
    """The dataset called `name_or_path` (see the module docstring), or the one
    stored at that path; `opts` are the loader's options. Every dataset also
    takes `n_train`: keep only the first n training examples (e.g. Nielsen's
    1,000), where the loader has no such option of its own."""
    n_train = opts.pop("n_train", None) if not _has_option(name_or_path, "n_train") else None
    data = _load(name_or_path, **opts)
    if n_train is None:
        return data
    return data.head(validation.whole_number("n_train", n_train, 1))


def _has_option(name_or_path, option: str) -> bool:
    key = os.fspath(name_or_path).strip().lower()
    return key in _LOADERS and option in option_names(_LOADERS[key])


def _load(name_or_path: str | os.PathLike[str], **opts: Any) -> Dataset:
    text = os.fspath(name_or_path)
    key = text.strip().lower()
    if key in _LOADERS:
        loader = _LOADERS[key]
        check_names(key, opts, option_names(loader))
        return loader(**opts)
    path = Path(text).expanduser()
    if text.lower().endswith(".npz"):
        check_names(path.name, opts, option_names(load_npz))
        return load_npz(path, **opts)
    if path.is_dir():
        allowed = tuple(o for o in option_names(load_mnist) if o != "path")
        check_names(str(path), opts, allowed)
        return load_mnist(path=path, **opts)  # names the missing files if any
    if path.is_file():
        raise GradvetError(
            f"{path} is a file but not a .npz; give a .npz file with arrays 'x' and 'y' or an MNIST directory."
        )
    raise unknown("dataset", text, f"{', '.join(NAMES)}, or a path to a .npz file or to a directory holding the "
                  "MNIST IDX files", choices=NAMES, spelled=key)


__all__ = ["NAMES", "Dataset", "load", "options"]
