"""Tests of gradvet.data: the built-in datasets, the MNIST IDX reader, .npz files."""

from __future__ import annotations

import dataclasses
import gzip
import random
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gradvet.base.errors import GradvetError
from gradvet.data import NAMES, Dataset, load

# ---------------------------------------------------------------- general


@pytest.mark.parametrize(
    ("name", "opts"),
    [
        ("digits", {}),
        ("adding", {"length": 10, "n_train": 30, "n_test": 7}),
        ("memory", {"length": 10, "n_train": 30, "n_test": 7}),
    ],
)
def test_tensors_are_contiguous_cpu_with_documented_dtypes(name, opts):
    ds = load(name, **opts)
    assert isinstance(ds, Dataset)
    for t in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        assert t.is_contiguous() and t.device.type == "cpu"
    assert ds.x_train.dtype == ds.x_test.dtype == torch.float32
    if ds.task == "regression":
        assert ds.y_train.dtype == torch.float32 and ds.y_train.shape == (len(ds.x_train), 1)
        assert ds.n_classes == 1
    else:
        assert ds.y_train.dtype == torch.int64 and ds.y_train.dim() == 1
    expected_dims = 3 if ds.sequence else 2
    assert ds.x_train.dim() == expected_dims and ds.x_train.shape[-1] == ds.n_features
    assert ds.name in ds.describe() and "\n" not in ds.describe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"


def test_names_are_the_registry():
    assert set(NAMES) == {"digits", "mnist1d", "mnist", "adding", "memory"}


def test_unknown_name_suggests_close_match_and_mentions_paths():
    with pytest.raises(GradvetError) as err:
        load("digts")
    msg = str(err.value)
    assert "'digts'" in msg and "did you mean 'digits'" in msg
    assert all(name in msg for name in NAMES)
    assert ".npz" in msg and "MNIST" in msg


def test_names_are_case_insensitive():
    ds = load("ADDING", length=6, n_train=3, n_test=2)
    assert ds.name == "adding" and ds.seq_len == 6


def test_unknown_option_is_named_with_close_match_and_allowed_ones():
    with pytest.raises(GradvetError) as err:
        load("adding", lenght=10)
    msg = str(err.value)
    assert "'lenght'" in msg and "did you mean 'length'" in msg
    assert "n_train" in msg and "seed" in msg
    with pytest.raises(GradvetError, match="'flavour'"):
        load("digits", flavour=1)


def test_bad_option_value_is_a_gradvet_error():
    with pytest.raises(GradvetError, match="length=1"):
        load("adding", length=1)
    with pytest.raises(GradvetError, match="n_symbols"):
        load("memory", n_symbols=1.5)


# ---------------------------------------------------------------- digits


def test_digits_shapes_classes_and_labels():
    ds = load("digits")
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert ds.n_features == 64 and ds.x_train.shape[1] == 64 and ds.x_test.shape[1] == 64
    assert ds.n_classes == 10 and ds.task == "multiclass" and not ds.sequence and ds.seq_len is None
    assert abs(len(ds.x_test) - 0.25 * 1797) <= 1
    assert set(ds.y_train.tolist()) == set(range(10))
    assert set(ds.y_test.tolist()) == set(range(10))


def test_digits_standardised_with_train_statistics():
    ds = load("digits")
    x = ds.x_train.numpy().astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    np.testing.assert_allclose(mean, 0.0, atol=1e-5)
    constant = std < 1e-6  # pixels that never vary in the training set
    assert constant.any() and (~constant).sum() > 50
    np.testing.assert_allclose(std[~constant], 1.0, atol=1e-4)
    # the test split is scaled with the train statistics, not its own
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    xr_train, xr_test, _, _ = train_test_split(
        raw.data, raw.target, test_size=0.25, random_state=0, stratify=raw.target
    )
    mu, sd = xr_train.mean(axis=0), xr_train.std(axis=0)
    sd[sd == 0] = 1.0
    np.testing.assert_allclose(ds.x_test.numpy(), (xr_test - mu) / sd, rtol=1e-5, atol=1e-5)
    assert not np.allclose(ds.x_test.numpy().mean(axis=0), 0.0, atol=1e-3)


def test_digits_split_is_fixed_and_stratified():
    a, b = load("digits"), load("digits")
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    train = np.bincount(a.y_train.numpy(), minlength=10) / len(a.y_train)
    test = np.bincount(a.y_test.numpy(), minlength=10) / len(a.y_test)
    np.testing.assert_allclose(train, test, atol=0.01)


# ---------------------------------------------------------------- mnist1d


def test_mnist1d_generates_caches_and_leaves_no_trace(tmp_path, monkeypatch):
    import mnist1d.data
    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setenv("GRADVET_CACHE_DIR", str(tmp_path))

    np.random.seed(1234)
    random.seed(1234)
    numpy_before = np.random.get_state()
    python_before = random.getstate()
    ds = load("mnist1d", num_samples=200, seed=3)
    numpy_after = np.random.get_state()
    assert numpy_before[0] == numpy_after[0]
    assert np.array_equal(numpy_before[1], numpy_after[1]) and numpy_before[2:] == numpy_after[2:]
    assert random.getstate() == python_before

    assert ds.n_features == 40 and ds.n_classes == 10 and ds.task == "multiclass"
    assert ds.x_train.shape == (160, 40) and ds.x_test.shape == (40, 40)
    assert set(ds.y_train.tolist()) <= set(range(10))
    cached = list((tmp_path / "data").glob("*.npz"))
    assert len(cached) == 1 and "200" in cached[0].name and "3" in cached[0].name

    def no_generation(*args, **kwargs):
        raise AssertionError("make_dataset called although the cache holds the data")

    monkeypatch.setattr(mnist1d.data, "make_dataset", no_generation)
    again = load("mnist1d", num_samples=200, seed=3)
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.y_test, ds.y_test)
    with pytest.raises(AssertionError, match="make_dataset called"):
        load("mnist1d", num_samples=200, seed=4)  # other options: another cache file


def test_mnist1d_matches_the_package_generator(tmp_path, monkeypatch):
    from mnist1d.data import get_dataset_args, make_dataset

    monkeypatch.setenv("GRADVET_CACHE_DIR", str(tmp_path))
    ds = load("mnist1d", num_samples=100, seed=7)
    args = get_dataset_args()
    args.num_samples, args.seed = 100, 7
    state = np.random.get_state()
    made = make_dataset(args)
    np.random.set_state(state)
    np.testing.assert_allclose(ds.x_train.numpy(), made["x"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ds.y_test.numpy(), made["y_test"])


# ---------------------------------------------------------------- mnist (IDX)

_TRAIN, _TEST = 12, 5


def _images(n: int, offset: int) -> np.ndarray:
    return ((np.arange(n * 28 * 28) * 7 + offset) % 256).astype(np.uint8).reshape(n, 28, 28)


def _labels(n: int, offset: int) -> np.ndarray:
    return ((np.arange(n) + offset) % 10).astype(np.uint8)


def _write(path: Path, payload: bytes) -> None:
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as out:
            out.write(payload)
    else:
        path.write_bytes(payload)


def _idx_images(images: np.ndarray) -> bytes:
    return struct.pack(">IIII", 2051, len(images), 28, 28) + images.tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.tobytes()


@pytest.fixture
def mnist_dir(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    _write(folder / "train-images-idx3-ubyte.gz", _idx_images(_images(_TRAIN, 0)))
    _write(folder / "train-labels-idx1-ubyte", _idx_labels(_labels(_TRAIN, 0)))
    _write(folder / "t10k-images-idx3-ubyte", _idx_images(_images(_TEST, 3)))
    _write(folder / "t10k-labels-idx1-ubyte.gz", _idx_labels(_labels(_TEST, 5)))
    return folder


def test_mnist_idx_roundtrip_and_scaling(mnist_dir):
    ds = load("mnist", path=mnist_dir)
    assert ds.x_train.shape == (_TRAIN, 784) and ds.x_test.shape == (_TEST, 784)
    assert ds.n_features == 784 and ds.n_classes == 10 and not ds.sequence
    expected = _images(_TRAIN, 0).reshape(_TRAIN, 784).astype(np.float64) / 255.0
    np.testing.assert_allclose(ds.x_train.numpy(), expected, atol=1e-7)
    np.testing.assert_allclose(ds.x_test.numpy(), _images(_TEST, 3).reshape(_TEST, 784) / 255.0, atol=1e-7)
    assert ds.y_train.tolist() == _labels(_TRAIN, 0).tolist()
    assert ds.y_test.tolist() == _labels(_TEST, 5).tolist()
    assert float(ds.x_train.min()) == 0.0 and float(ds.x_train.max()) == 1.0


def test_mnist_directory_path_limit_and_rows_as_sequence(mnist_dir):
    ds = load(str(mnist_dir), limit=4)
    assert ds.x_train.shape == (4, 784) and ds.y_train.tolist() == [0, 1, 2, 3]
    assert ds.x_test.shape == (_TEST, 784)
    seq = load("mnist", path=mnist_dir, flatten=False)
    assert seq.sequence and seq.seq_len == 28 and seq.n_features == 28
    np.testing.assert_allclose(seq.x_train[2].numpy(), _images(_TRAIN, 0)[2] / 255.0, atol=1e-7)


def test_mnist_missing_files_are_named(tmp_path):
    folder = tmp_path / "partial"
    folder.mkdir()
    _write(folder / "train-images-idx3-ubyte", _idx_images(_images(2, 0)))
    with pytest.raises(GradvetError) as err:
        load("mnist", path=folder)
    msg = str(err.value)
    lacks = msg.split(";")[0]
    assert str(folder) in lacks
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in lacks
    assert "train-images-idx3-ubyte" not in lacks
    assert msg.count(".") >= 1 and "\n" not in msg


def test_mnist_bad_magic_truncation_and_count_mismatch_name_the_file(mnist_dir):
    bad = mnist_dir / "train-labels-idx1-ubyte"
    bad.write_bytes(struct.pack(">II", 2051, _TRAIN) + _labels(_TRAIN, 0).tobytes())
    with pytest.raises(GradvetError, match="train-labels-idx1-ubyte.*magic"):
        load("mnist", path=mnist_dir)

    bad.write_bytes(_idx_labels(_labels(_TRAIN, 0))[:-3])
    with pytest.raises(GradvetError, match="train-labels-idx1-ubyte.*truncated"):
        load("mnist", path=mnist_dir)

    bad.write_bytes(_idx_labels(_labels(_TRAIN - 1, 0)))
    with pytest.raises(GradvetError, match="train-labels-idx1-ubyte"):
        load("mnist", path=mnist_dir)


# ---------------------------------------------------------------- adding


def test_adding_shapes_markers_and_targets():
    ds = load("adding", length=20, n_train=300, n_test=50, seed=1)
    assert ds.x_train.shape == (300, 20, 2) and ds.x_test.shape == (50, 20, 2)
    assert ds.sequence and ds.seq_len == 20 and ds.n_features == 2
    assert ds.task == "regression" and ds.y_train.shape == (300, 1)
    for x, y in ((ds.x_train.numpy(), ds.y_train.numpy()), (ds.x_test.numpy(), ds.y_test.numpy())):
        values, markers = x[..., 0], x[..., 1]
        assert ((values >= 0) & (values < 1)).all()
        assert set(np.unique(markers).tolist()) == {0.0, 1.0}
        assert (markers.sum(axis=1) == 2).all()
        assert (markers[:, :10].sum(axis=1) == 1).all() and (markers[:, 10:].sum(axis=1) == 1).all()
        for i in range(len(x)):
            marked = np.flatnonzero(markers[i] == 1.0)
            assert y[i, 0] == pytest.approx(values[i, marked].sum(), abs=1e-6)


def test_adding_is_deterministic_by_seed():
    a = load("adding", length=15, n_train=40, n_test=10, seed=5)
    b = load("adding", length=15, n_train=40, n_test=10, seed=5)
    c = load("adding", length=15, n_train=40, n_test=10, seed=6)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train) and not torch.equal(a.x_test, c.x_test)


def test_adding_constant_baseline_mse_is_one_sixth():
    ds = load("adding", length=10, n_train=4000, n_test=10, seed=0)
    mse = float(((ds.y_train - 1.0) ** 2).mean())
    assert mse == pytest.approx(1 / 6, abs=0.015)


# ---------------------------------------------------------------- memory


def test_memory_label_is_first_symbol_and_distractors_are_separate():
    k = 3
    ds = load("memory", length=12, n_symbols=k, n_train=500, n_test=100, seed=2)
    assert ds.x_train.shape == (500, 12, 2 * k) and ds.n_features == 2 * k
    assert ds.n_classes == k and ds.task == "multiclass" and ds.seq_len == 12
    for x, y in ((ds.x_train.numpy(), ds.y_train.numpy()), (ds.x_test.numpy(), ds.y_test.numpy())):
        assert (x.sum(axis=2) == 1).all()  # one symbol per step
        np.testing.assert_array_equal(x[:, 0, :k].argmax(axis=1), y)
        assert (x[:, 0, k:] == 0).all()
        assert (x[:, 1:, :k] == 0).all()  # distractors never use the label symbols
        assert (x[:, 1:, k:].sum(axis=2) == 1).all()


def test_memory_is_at_chance_without_the_first_step():
    k = 4
    ds = load("memory", length=8, n_symbols=k, n_train=4000, n_test=10, seed=0)
    y = ds.y_train.numpy()
    majority = np.bincount(y, minlength=k).max() / len(y)
    assert majority == pytest.approx(1 / k, abs=0.03)
    last = ds.x_train[:, -1, k:].numpy().argmax(axis=1)  # a distractor carries no information
    assert (last == y).mean() == pytest.approx(1 / k, abs=0.03)
    assert load("memory", n_symbols=2, n_train=5, n_test=5).task == "binary"


# ---------------------------------------------------------------- npz


def test_npz_classification_roundtrip_with_fixed_split(tmp_path):
    x = np.column_stack([np.arange(40), np.arange(40) * 2.0]).astype(np.float64)
    y = np.arange(40) % 3
    path = tmp_path / "three.npz"
    np.savez(path, x=x, y=y)
    ds = load(str(path))
    assert ds.n_classes == 3 and ds.task == "multiclass" and ds.n_features == 2
    assert len(ds.x_train) == 30 and len(ds.x_test) == 10
    both_x = torch.cat([ds.x_train, ds.x_test]).numpy()
    both_y = torch.cat([ds.y_train, ds.y_test]).numpy()
    rows = both_x[:, 0].astype(int)
    assert sorted(rows.tolist()) == list(range(40))
    np.testing.assert_array_equal(both_y, y[rows])
    np.testing.assert_array_equal(both_x, x[rows])
    again = load(path)
    assert torch.equal(again.x_test, ds.x_test)


def test_npz_given_test_split_binary_and_regression(tmp_path):
    rng = np.random.default_rng(0)
    x, xt = rng.normal(size=(20, 3)), rng.normal(size=(6, 3))
    path = tmp_path / "binary.npz"
    np.savez(path, x=x, y=np.arange(20) % 2, x_test=xt, y_test=np.arange(6) % 2)
    ds = load(path)
    assert ds.task == "binary" and ds.n_classes == 2
    np.testing.assert_allclose(ds.x_test.numpy(), xt, rtol=1e-6)
    assert ds.y_test.tolist() == [0, 1, 0, 1, 0, 1]

    reg = tmp_path / "reg.npz"
    target = rng.normal(size=20)
    np.savez(reg, x=x, y=target, x_test=xt, y_test=rng.normal(size=6))
    ds = load(reg)
    assert ds.task == "regression" and ds.n_classes == 1
    assert ds.y_train.shape == (20, 1) and ds.y_train.dtype == torch.float32
    np.testing.assert_allclose(ds.y_train.numpy()[:, 0], target, rtol=1e-6)


def test_npz_errors_are_clear(tmp_path):
    missing_y = tmp_path / "noy.npz"
    np.savez(missing_y, x=np.zeros((4, 2)))
    with pytest.raises(GradvetError, match=r"noy\.npz has no array 'y'"):
        load(missing_y)
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, x=np.zeros((4, 2)), y=np.zeros(3, dtype=int))
    with pytest.raises(GradvetError, match=r"mismatch\.npz has 4 rows"):
        load(mismatch)
    text = tmp_path / "text.npz"
    np.savez(text, x=np.array([["a", "b"]] * 4), y=np.zeros(4, dtype=int))
    with pytest.raises(GradvetError, match="dtype"):
        load(text)
    with pytest.raises(GradvetError, match=r"absent\.npz"):
        load(tmp_path / "absent.npz")


_UNPICKLED: list[str] = []


class Canary:
    """Records it when an unpickler rebuilds it."""

    def __init__(self) -> None:
        self.alive = True

    def __setstate__(self, state: dict) -> None:
        _UNPICKLED.append("canary")
        self.__dict__.update(state)


def test_npz_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([Canary(), Canary()], dtype=object), y=np.array([0, 1]))
    _UNPICKLED.clear()
    with pytest.raises(GradvetError) as err:
        load(path)
    assert "objects.npz" in str(err.value) and "object array" in str(err.value)
    assert _UNPICKLED == []
