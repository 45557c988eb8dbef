"""Synthetic long-range sequence tasks, where gradients must travel back
through many time steps: the classic probes of vanishing gradients in RNNs.

adding (Hochreiter & Schmidhuber 1997, experiment 4; in the form of Le,
Jaitly & Hinton 2015, "A simple way to initialize recurrent networks of
rectified linear units"): each sequence has T steps of 2 features, a value
v_t ~ U(0, 1) and a marker m_t that is 1 at exactly two steps, one drawn
uniformly from the first half [0, T // 2) and one from the second half
[T // 2, T), 0 elsewhere. The target is the sum of the two marked values,
y = sum_t m_t v_t (a regression, shape (N, 1)). Predicting the constant 1
gives MSE = Var(v_a + v_b) = 2 * 1/12 = 1/6 ~= 0.167: the baseline a model
must beat to show it carries information across the sequence.

memory ("first-symbol memory task", in the spirit of Hochreiter &
Schmidhuber's long-time-lag tasks): with K symbols, x has 2K features per
step. At t = 0 the class symbol c ~ U{0..K-1} is shown one-hot in features
0..K-1; the remaining T - 1 steps show distractor symbols drawn uniformly
from another K symbols (one-hot in features K..2K-1). The label is c, so the
model must carry it across all T - 1 distractor steps; chance accuracy is 1/K.

Both are deterministic for a given seed and touch no global RNG state: the
seed feeds a `numpy.random.SeedSequence` whose two children generate the
train and test sets, so n_train does not change the test set.
"""

from __future__ import annotations

import numpy as np

from gradvet.data.dataset import Dataset
from gradvet.data.options import as_int

ADDING_BASELINE_MSE = 1.0 / 6.0  # Var(U1 + U2) for independent U(0, 1)


def _generators(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    train, test = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(train), np.random.default_rng(test)


def make_adding(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` adding-problem sequences of `length` steps: x (n, length, 2) float32, y (n,) float32."""
    values = rng.random((n, length), dtype=np.float32)
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    markers = np.zeros((n, length), dtype=np.float32)
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=-1), y


def load_adding(*, length: int = 50, n_train: int = 2000, n_test: int = 500, seed: int = 0) -> Dataset:
    """The adding problem (regression; constant-1 baseline MSE = 1/6)."""
    length = as_int("adding", "length", length, minimum=2)
    n_train = as_int("adding", "n_train", n_train, minimum=1)
    n_test = as_int("adding", "n_test", n_test, minimum=1)
    seed = as_int("adding", "seed", seed, minimum=0)
    rng_train, rng_test = _generators(seed)
    x_train, y_train = make_adding(n_train, length, rng_train)
    x_test, y_test = make_adding(n_test, length, rng_test)
    return Dataset.from_arrays("adding", x_train, y_train, x_test, y_test, n_classes=1, task="regression")


def make_memory(n: int, length: int, n_symbols: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` first-symbol memory sequences: x (n, length, 2K) float32 one-hot, y (n,) int64."""
    labels = rng.integers(0, n_symbols, size=n)
    distractors = rng.integers(0, n_symbols, size=(n, length - 1))
    x = np.zeros((n, length, 2 * n_symbols), dtype=np.float32)
    rows = np.arange(n)
    x[rows, 0, labels] = 1.0
    steps = np.arange(1, length)
    x[rows[:, None], steps[None, :], n_symbols + distractors] = 1.0
    return x, labels.astype(np.int64)


def load_memory(
    *, length: int = 50, n_symbols: int = 4, n_train: int = 2000, n_test: int = 500, seed: int = 0
) -> Dataset:
    """The first-symbol memory task (K-class classification; chance accuracy 1/K)."""
    length = as_int("memory", "length", length, minimum=2)
    n_symbols = as_int("memory", "n_symbols", n_symbols, minimum=2)
    n_train = as_int("memory", "n_train", n_train, minimum=1)
    n_test = as_int("memory", "n_test", n_test, minimum=1)
    seed = as_int("memory", "seed", seed, minimum=0)
    rng_train, rng_test = _generators(seed)
    x_train, y_train = make_memory(n_train, length, n_symbols, rng_train)
    x_test, y_test = make_memory(n_test, length, n_symbols, rng_test)
    task = "binary" if n_symbols == 2 else "multiclass"
    return Dataset.from_arrays("memory", x_train, y_train, x_test, y_test, n_classes=n_symbols, task=task)


def chance_accuracy(n_symbols: int) -> float:
    """Accuracy of guessing on the memory task: 1 / K."""
    return 1.0 / n_symbols
