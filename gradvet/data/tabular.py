"""Tabular datasets: scikit-learn's bundled digits, and any user `.npz` file.

digits: the UCI optical handwritten digits as shipped with scikit-learn
(`sklearn.datasets.load_digits`: 1797 images of 8x8 = 64 pixels with values
0..16, 10 classes; no download). A fixed stratified split
(`train_test_split(test_size=0.25, random_state=0, stratify=y)`) and
standardisation with the training statistics only, z = (x - mean_train) /
std_train per feature (population std, ddof=0), so no test information leaks
into the scaling; constant pixels (std 0) keep std 1, i.e. they become 0.

npz: a file with arrays `x` and `y` (and optionally `x_test`, `y_test`;
without them a fixed 25% test split drawn with seed 0). Integer (or bool) y
means classification with n_classes = max(y) + 1 ("binary" when that is 2),
float y means regression. x of shape (N, F) is tabular, (N, T, F) a sequence.
The file is read with `allow_pickle=False`: object arrays are refused, never
unpickled.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from gradvet.base.errors import GradvetError
from gradvet.data.dataset import Dataset
from gradvet.data.options import as_fraction

NPZ_SPLIT_SEED = 0


def load_digits(*, test_size: float = 0.25) -> Dataset:
    """scikit-learn's digits (64 features, 10 classes), fixed stratified split, standardised."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    test_size = as_fraction("digits", "test_size", test_size)
    bunch = sk_load_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=0, stratify=y
    )
    x_train, x_test = standardise(x_train, x_test)
    return Dataset.from_arrays("digits", x_train, y_train, x_test, y_test, n_classes=10, task="multiclass")


def standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z = (x - mean) / std with the per-feature mean and std (ddof=0) of the
    training set applied to both splits; features with std 0 get std 1."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def load_npz(path: str | Path, *, test_size: float = 0.25) -> Dataset:
    """A dataset from a `.npz` file holding `x`, `y` and optionally `x_test`, `y_test`."""
    path = Path(path)
    test_size = as_fraction(path.name, "test_size", test_size)
    arrays = _read_npz(path)
    x, y = arrays["x"], arrays["y"]
    if "x_test" in arrays:
        x_train, y_train, x_test, y_test = x, y, arrays["x_test"], arrays["y_test"]
    else:
        x_train, y_train, x_test, y_test = _split(path, x, y, test_size)
    if _is_labels(y):
        labels = np.concatenate([y_train.reshape(-1), y_test.reshape(-1)]).astype(np.int64)
        if labels.size and labels.min() < 0:
            raise GradvetError(f"{path} has negative labels in y; integer labels must be 0, 1, 2, ...")
        n_classes = int(labels.max()) + 1 if labels.size else 0
        if n_classes < 2:
            raise GradvetError(
                f"{path} has integer labels with fewer than 2 classes; a classification needs 2 or more."
            )
        task = "binary" if n_classes == 2 else "multiclass"
    else:
        n_classes, task = 1, "regression"
    name = path.stem
    return Dataset.from_arrays(name, x_train, y_train, x_test, y_test, n_classes=n_classes, task=task)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The checked arrays of `path`; every problem is a one-sentence GradvetError."""
    if not path.is_file():
        raise GradvetError(f"no such .npz file: {path}.")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise GradvetError(f"{path} is not a readable .npz file ({exc}).") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise GradvetError(f"{path} holds a single array, not the named arrays 'x' and 'y' of an .npz archive.")
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for key in ("x", "y"):
            if key not in archive.files:
                found = ", ".join(repr(f) for f in archive.files) or "no arrays"
                raise GradvetError(f"{path} has no array {key!r} (it holds {found}); it needs 'x' and 'y'.")
        has_test = [key in archive.files for key in ("x_test", "y_test")]
        if any(has_test) and not all(has_test):
            raise GradvetError(f"{path} has only one of 'x_test' and 'y_test'; give both or neither.")
        for key in ("x", "y", "x_test", "y_test"):
            if key not in archive.files:
                continue
            try:
                arrays[key] = archive[key]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                if "pickle" in str(exc):
                    reason = "is an object array, which gradvet never unpickles"
                else:
                    reason = f"cannot be read ({exc})"
                raise GradvetError(f"array {key!r} in {path} {reason}; store plain numeric arrays.") from None
    for key, arr in arrays.items():
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
            raise GradvetError(f"array {key!r} in {path} has dtype {arr.dtype}, not a real numeric type.")
    for x_key, y_key in (("x", "y"), ("x_test", "y_test")):
        if x_key not in arrays:
            continue
        x, y = arrays[x_key], arrays[y_key]
        if x.ndim not in (2, 3):
            raise GradvetError(f"array {x_key!r} in {path} has shape {x.shape}; it must be (N, F) or (N, T, F).")
        if not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
            raise GradvetError(f"array {y_key!r} in {path} has shape {y.shape}; it must be (N,) or (N, 1).")
        if len(x) != len(y):
            raise GradvetError(f"{path} has {len(x)} rows in {x_key!r} but {len(y)} in {y_key!r}; they must match.")
        if len(x) == 0:
            raise GradvetError(f"array {x_key!r} in {path} is empty.")
        if not np.all(np.isfinite(x)):
            raise GradvetError(f"array {x_key!r} in {path} holds NaN or infinite values.")
    if "x_test" in arrays:
        if arrays["x_test"].shape[1:] != arrays["x"].shape[1:]:
            raise GradvetError(
                f"{path} has 'x' rows of shape {arrays['x'].shape[1:]} but 'x_test' rows of shape "
                f"{arrays['x_test'].shape[1:]}; they must match."
            )
        if _is_labels(arrays["y"]) != _is_labels(arrays["y_test"]):
            raise GradvetError(
                f"{path} has 'y' of dtype {arrays['y'].dtype} but 'y_test' of dtype {arrays['y_test'].dtype}; "
                "both must be integer (classification) or both float (regression)."
            )
    for key in ("y", "y_test"):
        if key in arrays and not _is_labels(arrays[key]) and not np.all(np.isfinite(arrays[key])):
            raise GradvetError(f"array {key!r} in {path} holds NaN or infinite values.")
    return arrays


def _is_labels(arr: np.ndarray) -> bool:
    """Integer or bool arrays hold class labels; float arrays hold regression targets."""
    return arr.dtype.kind in "iub"


def _split(path: Path, x: np.ndarray, y: np.ndarray, test_size: float) -> tuple[np.ndarray, ...]:
    """A fixed random split: a permutation drawn with seed 0, the last
    ceil(test_size * N) examples of it for testing."""
    n = len(x)
    n_test = int(np.ceil(test_size * n))
    if n_test < 1 or n_test >= n:
        raise GradvetError(f"{path} has {n} examples, too few to split off a {test_size:.0%} test set.")
    order = np.random.default_rng(NPZ_SPLIT_SEED).permutation(n)
    train, test = order[: n - n_test], order[n - n_test :]
    return x[train], y[train], x[test], y[test]
