"""MNIST (LeCun, Bottou, Bengio & Haffner 1998) from the four IDX files of
its distribution, read and checked with numpy, no download.

The IDX format (http://yann.lecun.com/exdb/mnist/): a big-endian uint32 magic
number 0x00000800 | (number of dimensions), with type byte 0x08 = unsigned
byte, so 0x00000803 (2051) for images (N, rows, cols) and 0x00000801 (2049)
for labels (N,); then one big-endian uint32 per dimension; then the
N * rows * cols bytes, row-major. Each file may be plain or gzipped (`.gz`).

Pixels are scaled to [0, 1] (x / 255). With `flatten=True` (default) x is
(N, rows * cols) = (N, 784); with `flatten=False` it is the row-by-row
sequential MNIST of (N, rows, cols): one image row per time step. The number
of classes is max(label) + 1 (10 for MNIST and Fashion-MNIST).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from gradvet.base.errors import GradvetError
from gradvet.base.paths import cache_dir
from gradvet.data.dataset import Dataset
from gradvet.data.options import as_bool, as_int

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def default_dir() -> Path:
    """Where `load("mnist")` looks without `path`: cache_dir() / "data" / "mnist"."""
    return cache_dir() / "data" / "mnist"


def load_mnist(*, path: str | Path | None = None, flatten: bool = True, limit: int | None = None) -> Dataset:
    """MNIST from the IDX files in `path` (default `default_dir()`); `limit` keeps
    the first `limit` training examples."""
    directory = Path(path) if path is not None else default_dir()
    flatten = as_bool("mnist", "flatten", flatten)
    if limit is not None:
        limit = as_int("mnist", "limit", limit, minimum=1)
    missing = _missing(directory)
    if missing:
        where = "does not exist" if not directory.is_dir() else "lacks " + ", ".join(missing)
        raise GradvetError(
            f"MNIST directory {directory} {where}; it must hold {', '.join(FILES)} (each plain or .gz)."
        )
    files = [_find(directory, name) for name in FILES]
    x_train = read_idx(files[0], IMAGES_MAGIC)
    y_train = read_idx(files[1], LABELS_MAGIC)
    x_test = read_idx(files[2], IMAGES_MAGIC)
    y_test = read_idx(files[3], LABELS_MAGIC)
    for images, labels, f_img, f_lab in ((x_train, y_train, files[0], files[1]), (x_test, y_test, files[2], files[3])):
        if len(images) != len(labels):
            raise GradvetError(
                f"{f_img} holds {len(images)} images but {f_lab} holds {len(labels)} labels; they must match."
            )
        if len(images) == 0:
            raise GradvetError(f"{f_img} holds no images.")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise GradvetError(
            f"{files[0]} holds images of {x_train.shape[1:]} pixels but {files[2]} of {x_test.shape[1:]}; "
            "they must match."
        )
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    if n_classes < 2:
        raise GradvetError(f"{files[1]} and {files[3]} hold only label 0; a classification needs 2 or more classes.")

    def pixels(images: np.ndarray) -> np.ndarray:
        scaled = images.astype(np.float32) / np.float32(255.0)
        return scaled.reshape(len(images), -1) if flatten else scaled

    task = "binary" if n_classes == 2 else "multiclass"
    return Dataset.from_arrays(
        "mnist", pixels(x_train), y_train, pixels(x_test), y_test, n_classes=n_classes, task=task
    )


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array of an IDX file with the expected `magic` number."""
    data = _read_bytes(path)
    n_dims = magic & 0xFF
    header = 4 * (1 + n_dims)
    if len(data) < header:
        raise GradvetError(f"{path} is truncated: {len(data)} bytes, shorter than its {header}-byte IDX header.")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise GradvetError(
            f"{path} has magic number 0x{found:08X}, not 0x{magic:08X} of an IDX file of {kind}."
        )
    dims = struct.unpack(f">{n_dims}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    body = len(data) - header
    if body != expected:
        problem = "is truncated" if body < expected else "has trailing bytes"
        raise GradvetError(
            f"{path} {problem}: its header {tuple(dims)} announces {expected} data bytes but it holds {body}."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise GradvetError(f"{path} cannot be read ({exc}).") from None


def _find(directory: Path, name: str) -> Path:
    plain = directory / name
    return plain if plain.is_file() else directory / f"{name}.gz"


def _missing(directory: Path) -> list[str]:
    return [name for name in FILES if not _find(directory, name).is_file()]
