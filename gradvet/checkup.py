"""A quick check-up of any model on a dataset: probe it at initialisation (or over a few
SGD steps) and diagnose its gradient flow. Used by `gradvet diagnose`; `probe_at_init` is the
one home of "probe a model once at initialisation" (`gradvet.choose` uses it too)."""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradvet.base import validation
from gradvet.base.errors import GradvetError
from gradvet.base.validation import first_line, not_allowed
from gradvet.data import Dataset
from gradvet.probe import Probe, diagnose
from gradvet.probe.diagnosis import Diagnosis
from gradvet.probe.histograms import activation_histograms
from gradvet.probe.layers import watched_modules
from gradvet.probe.predicted import predict_for


@contextlib.contextmanager
def _working_directory_importable():
    """The current directory first on `sys.path` inside the block (as `python -m` has it), and
    taken out again after it, so loading a user's factory leaves `sys.path` as it was."""
    here = str(Path.cwd())
    if here in sys.path:
        yield
        return
    sys.path.insert(0, here)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(here)


FACTORY = ("a Python function or class that takes no arguments and returns a torch.nn.Module, (model, batch) "
           "or (model, batch, loss_fn)")
FACTORY_WITH_ARGS = "a Python function or class that takes the --model-arg names as keyword arguments"


def call_factory(target: str, kwargs: dict[str, Any] | None = None) -> Any:
    """Call `package.module:factory` with `kwargs` and return what it returns (the current directory
    is importable while it is imported and called, as for `python -m`; `sys.path` is as it was
    afterwards).

    The factory is called only when it is a Python function or class that can be called with
    `kwargs`: a built-in (os.system, os.abort) or one needing other arguments is refused before it
    runs, and an exception it raises is reported in one sentence."""
    kwargs = dict(kwargs or {})
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise GradvetError(f"--model {target!r} must look like package.module:factory (a callable returning the model).")
    with _working_directory_importable():  # the factory may import more of its package when called
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise GradvetError(f"--model {target!r}: cannot import module {module_name!r} ({err}).") from None
        except (Exception, SystemExit) as err:  # noqa: BLE001 - the user's module failed as it loaded
            raise GradvetError(f"--model {target!r}: importing module {module_name!r} raised "
                               f"{type(err).__name__}: {first_line(err)}; fix the module first.") from None
        factory = getattr(module, attr, None)
        if factory is None or not callable(factory):
            raise GradvetError(f"--model {target!r}: module {module_name!r} has no callable {attr!r}.")
        _check_factory(target, factory, kwargs)
        try:
            return factory(**kwargs)
        except (Exception, SystemExit) as err:  # noqa: BLE001 - the user's code failed: say so in one sentence
            why = f"{attr}() raised {type(err).__name__}: {first_line(err)}"
            raise not_allowed("--model", target, FACTORY_WITH_ARGS if kwargs else FACTORY, why=why) from None


def load_factory(target: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """The nn.Module `package.module:factory` builds (`call_factory`), with trainable parameters."""
    return check_model(target, call_factory(target, kwargs))


def check_model(target: str, model: Any) -> nn.Module:
    """`model` if it is an nn.Module with trainable parameters; else one sentence naming `target`."""
    attr = target.partition(":")[2]
    if not isinstance(model, nn.Module):
        raise GradvetError(f"--model {target!r}: {attr}() returned {type(model).__name__}, not a torch.nn.Module.")
    if not any(p.requires_grad for p in model.parameters()):
        raise GradvetError(f"--model {target!r}: the model has no trainable parameters.")
    return model


def _check_factory(target: str, factory, kwargs: dict[str, Any]) -> None:
    """Refuse, without calling it, a factory that is built in or cannot be called with `kwargs`."""
    allowed = FACTORY_WITH_ARGS if kwargs else FACTORY
    if not (inspect.isfunction(factory) or inspect.isclass(factory) or inspect.ismethod(factory)
            or isinstance(factory, functools.partial)):
        raise not_allowed("--model", target, allowed, why=f"it is a {type(factory).__name__}, which is not called")
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as err:
        why = f"it does not take these arguments: {err}" if kwargs else f"it needs arguments: {err}"
        raise not_allowed("--model", target, allowed, why=why) from None
    except ValueError:  # no signature to read (some classes): calling it tells
        pass


def check_settings(steps: int, lr: float, batch_size: int, seed: int) -> None:
    """The check-up's own numbers: steps in [0, MAX_STEPS], a finite lr > 0, batch size and seed in range."""
    validation.steps("steps", steps)
    validation.positive_number("lr", lr)
    validation.batch_size("batch_size", batch_size)
    validation.seed("seed", seed)


def check_probe_size(model: nn.Module, steps: int) -> None:
    """Every step of every watched layer is recorded: steps x layers within MAX_PROBED_LAYER_STEPS."""
    layers = len(watched_modules(model))
    if max(steps, 1) * layers > validation.MAX_PROBED_LAYER_STEPS:
        raise not_allowed("steps", steps, f"steps x watched layers <= {validation.MAX_PROBED_LAYER_STEPS} "
                          "(MAX_PROBED_LAYER_STEPS)", why=f"the model has {layers} watched layers")


def _loss(data: Dataset) -> nn.Module:
    return nn.MSELoss() if data.task == "regression" else nn.CrossEntropyLoss()


def _first_batch_loss(model: nn.Module, data: Dataset, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor):
    try:
        out = model(x)
        return loss_fn(out, y)
    except (RuntimeError, ValueError, IndexError) as err:
        raise GradvetError(
            f"data {data.name!r} ({data.describe()}) does not fit the model: {first_line(err)}."
        ) from None



def _batches(data: Dataset, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Training batches of min(batch_size, N) examples drawn with replacement (torch.randint from a
    generator seeded with `seed`), for ever."""
    generator = torch.Generator().manual_seed(seed)
    n = data.x_train.shape[0]
    while True:
        idx = torch.randint(0, n, (min(batch_size, n),), generator=generator)
        yield data.x_train[idx], data.y_train[idx]


def probe_at_init(model: nn.Module, data: Dataset, loss_fn: nn.Module | None = None, batch_size: int = 128,
                  seed: int = 0) -> Probe:
    """`model` as it starts, probed: one forward and backward pass (training mode, no update) on the
    first batch `_batches` draws, inside a `Probe`. `loss_fn` defaults to cross-entropy, or mean
    squared error for regression."""
    x, y = next(_batches(data, batch_size, seed))
    model.train()
    with Probe(model) as probe:
        _first_batch_loss(model, data, loss_fn or _loss(data), x, y).backward()
        probe.step()
    return probe


def checkup(model: nn.Module, data: Dataset, steps: int = 0, lr: float = 0.1, batch_size: int = 128,
            seed: int = 0) -> tuple[Diagnosis, Probe]:
    """Probe `model` on `data`: one forward/backward at initialisation when steps = 0 (`probe_at_init`),
    else `steps` SGD steps on the same batches, recording every step; returns the diagnosis of the last."""
    check_settings(steps, lr, batch_size, seed)
    check_probe_size(model, steps)
    loss_fn = _loss(data)
    if steps == 0:
        probe = probe_at_init(model, data, loss_fn, batch_size, seed)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        model.train()
        with Probe(model, optimizer) as probe:
            for step, (x, y) in zip(range(steps), _batches(data, batch_size, seed)):
                loss = _first_batch_loss(model, data, loss_fn, x, y) if step == 0 else loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
    return full_diagnosis(probe, model, data.x_train[: min(512, data.x_train.shape[0])], data.sequence), probe


def full_diagnosis(probe: Probe, model: nn.Module, batch: torch.Tensor, sequence: bool = False) -> Diagnosis:
    """The probe's diagnosis with mean-field theory's predicted profile beside it (flat data only)
    and the activation histograms of `model` on `batch`."""
    diagnosis = diagnose(probe)
    if not sequence:
        diagnosis.attach_prediction(predict_for(model, batch))
    diagnosis.histograms = activation_histograms(model, batch)
    return diagnosis
