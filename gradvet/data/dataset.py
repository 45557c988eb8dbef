"""The `Dataset` record every loader returns: train/test tensors plus the facts a
model builder needs (features, classes, task, whether x is a sequence).

Conventions (all tensors contiguous, on CPU):

* x is float32, shaped (N, F), or (N, T, F) when `sequence` is True
  (`n_features` is then F, the features per time step, and `seq_len` is T);
* y is int64 of shape (N,) for "multiclass" and "binary" tasks, float32 of
  shape (N, 1) for "regression" (`n_classes` is 1 there).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

TASKS = ("multiclass", "binary", "regression")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split with its shape facts (see the module docstring)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_features: int
    n_classes: int
    task: str
    sequence: bool
    seq_len: int | None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r} is not one of {', '.join(TASKS)}")
        x_dims = 3 if self.sequence else 2
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dim() != x_dims or x.shape[-1] != self.n_features or x.dtype != torch.float32:
                raise ValueError(f"x_{split} has shape {tuple(x.shape)} and dtype {x.dtype}")
            if len(y) != len(x):
                raise ValueError(f"x_{split} has {len(x)} rows but y_{split} has {len(y)}")
            if self.task == "regression":
                if y.dtype != torch.float32 or y.dim() != 2 or y.shape[1] != 1:
                    raise ValueError(f"y_{split} must be float32 of shape (N, 1) for regression")
            elif y.dtype != torch.int64 or y.dim() != 1:
                raise ValueError(f"y_{split} must be int64 of shape (N,) for classification")
            if self.sequence and x.shape[1] != self.seq_len:
                raise ValueError(f"x_{split} has {x.shape[1]} steps, not seq_len={self.seq_len}")

    @classmethod
    def from_arrays(
        cls,
        name: str,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_test: np.ndarray,
        y_test: np.ndarray,
        n_classes: int,
        task: str,
    ) -> Dataset:
        """Build a Dataset from numpy arrays: casts x to float32 and y to int64
        (classification) or float32 (N, 1) (regression), copies into contiguous
        CPU tensors, and reads `n_features`, `sequence` and `seq_len` off x."""
        sequence = np.ndim(x_train) == 3
        return cls(
            name=name,
            x_train=_x_tensor(x_train),
            y_train=_y_tensor(y_train, task),
            x_test=_x_tensor(x_test),
            y_test=_y_tensor(y_test, task),
            n_features=int(np.shape(x_train)[-1]),
            n_classes=int(n_classes),
            task=task,
            sequence=sequence,
            seq_len=int(np.shape(x_train)[1]) if sequence else None,
        )

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return len(self.x_train)

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return len(self.x_test)

    def head(self, n: int) -> Dataset:
        """The same dataset with only its first `n` training examples (the test set unchanged)."""
        return dataclasses.replace(self, x_train=self.x_train[:n].contiguous(), y_train=self.y_train[:n].contiguous())

    def describe(self) -> str:
        """One line, e.g. 'digits: multiclass, 10 classes, 64 features, 1347 train / 450 test'."""
        if self.task == "regression":
            target = "regression"
        else:
            target = f"{self.task}, {self.n_classes} classes"
        if self.sequence:
            shape = f"sequences of {self.seq_len} steps x {self.n_features} features"
        else:
            shape = f"{self.n_features} features"
        return f"{self.name}: {target}, {shape}, {self.n_train} train / {self.n_test} test"


def _x_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32).copy())


def _y_tensor(y: np.ndarray, task: str) -> torch.Tensor:
    if task == "regression":
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32).reshape(-1, 1).copy())
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64).reshape(-1).copy())
