"""`gradvet diagnose --model package.module:factory [--model-arg KEY=VALUE]...` on any model.

The factory is called with the `--model-arg`s as keyword arguments (values read as Python
literals: 2, 0.1, True, "text"; anything else is the text itself) and returns

- a model: it is fed by `--data` as before (a dataset of float features), or, with `--data tokens`,
  random token ids (`token_batch`) for a language model;
- `(model, batch)` or `(model, batch, loss_fn)`: one batch of its own, given as `model(batch)` for a
  tensor, `model(*batch)` for a tuple or list and `model(**batch)` for a dict.

The loss is `loss_fn(output, batch)` when given, else the output's `loss` (a Hugging Face model
given `labels`), else, for token ids, the next-token cross-entropy of the output logits. Every
failure (no such module, the factory raising, the model raising on the batch, an output without a
loss) is one sentence naming what to change; the command exits with status 2.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gradvet.base.errors import GradvetError
from gradvet.base.validation import first_line
from gradvet.checkup import call_factory, check_model, check_probe_size, checkup
from gradvet.data import load
from gradvet.probe import Diagnosis, Probe, diagnose

TOKENS = "tokens"  # the synthetic token data set of --data
TOKEN_LENGTH = 32  # tokens per sequence, or the model's context when shorter
RETURNS = "a model, (model, batch) or (model, batch, loss_fn)"


@dataclass
class Made:
    """What a factory returned: the model, and its own batch and loss function if any."""

    model: nn.Module
    batch: Any = None
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None


def parse_model_args(pairs: list[str] | None) -> dict[str, Any]:
    """{KEY: value} of --model-arg KEY=VALUE options (a value is a Python literal where it reads as one)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise GradvetError(f"--model-arg {pair!r} is not of the form KEY=VALUE with KEY a Python name "
                               "(for example n_layer=2).")
        if key in out:
            raise GradvetError(f"--model-arg {key} is given twice; give each argument once.")
        try:
            out[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            out[key] = text
    return out


def make(target: str, kwargs: dict[str, Any] | None = None) -> Made:
    """Call the factory and unpack what it returned into a `Made`."""
    made = call_factory(target, kwargs)
    if isinstance(made, tuple):
        if len(made) not in (2, 3):
            raise GradvetError(f"--model {target!r}: the factory returned a tuple of {len(made)} items; allowed: "
                               f"{RETURNS}.")
        model, batch, loss_fn = (*made, None) if len(made) == 2 else made
        if loss_fn is not None and not callable(loss_fn):
            raise GradvetError(f"--model {target!r}: the third item the factory returned is a "
                               f"{type(loss_fn).__name__}, not a loss function loss_fn(output, batch).")
        return Made(check_model(target, model), batch, loss_fn)
    return Made(check_model(target, made))


def call_model(model: nn.Module, batch: Any) -> Any:
    """model(**batch) for a mapping, model(*batch) for a tuple or list, else model(batch)."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def _call_text(batch: Any) -> str:
    if isinstance(batch, Mapping):
        return f"model(**batch) with keys {', '.join(map(str, batch))}"
    if isinstance(batch, (tuple, list)):
        return f"model(*batch) with {len(batch)} items"
    return "model(batch)"


def _describe(value: Any) -> str:
    if torch.is_tensor(value):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        return f"a {type(value).__name__} with keys {', '.join(map(str, list(value)[:6]))}"
    return f"a {type(value).__name__}"


def loss_of(target: str, model: nn.Module, batch: Any, loss_fn: Callable | None) -> torch.Tensor:
    """The scalar loss of `model` on `batch` (the module docstring), or one sentence saying what to change."""
    try:
        output = call_model(model, batch)
    except Exception as err:  # noqa: BLE001 - the user's model failed on the batch: say so in one sentence
        raise GradvetError(f"--model {target!r}: the model raised {type(err).__name__}: {first_line(err)} when "
                           f"called as {_call_text(batch)}; make the factory return a batch the model takes "
                           "(a tensor: model(batch); a tuple: model(*batch); a dict: model(**batch)).") from None
    if loss_fn is not None:
        try:
            loss = loss_fn(output, batch)
        except Exception as err:  # noqa: BLE001 - the user's loss failed
            raise GradvetError(f"--model {target!r}: loss_fn(output, batch) raised {type(err).__name__}: "
                               f"{first_line(err)}.") from None
    else:
        loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
        if loss is None:
            raise GradvetError(f"--model {target!r}: the model's output ({_describe(output)}) has no loss; return "
                               "(model, batch, loss_fn) from the factory, loss_fn(output, batch) giving the loss, "
                               "or give a Hugging Face model labels in its batch.")
    if not torch.is_tensor(loss) or loss.numel() != 1 or not loss.requires_grad:
        raise GradvetError(f"--model {target!r}: the loss is {_describe(loss)}"
                           + ("" if not torch.is_tensor(loss) or loss.numel() != 1 else " that needs no gradient")
                           + "; it must be a single number computed from the model's parameters.")
    return loss.reshape(())


# -- random token ids for a language model ---------------------------------------------------------
def vocabulary(model: nn.Module) -> int | None:
    """The model's vocabulary size: its config's vocab_size (Hugging Face), else its first nn.Embedding's."""
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(size, int) and size > 0:
        return size
    first = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    return first.num_embeddings if first is not None else None


def context(model: nn.Module) -> int:
    """TOKEN_LENGTH, or the model's context length (config.n_positions or max_position_embeddings) if shorter."""
    config = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings"):
        size = getattr(config, name, None)
        if isinstance(size, int) and size > 1:
            return min(TOKEN_LENGTH, size)
    return TOKEN_LENGTH


def takes_labels(model: nn.Module) -> bool:
    """Whether forward takes input_ids and labels by name (a Hugging Face model with a loss of its own)."""
    try:
        names = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return "input_ids" in names and "labels" in names


def next_token_loss(output: Any, batch: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits (batch, length, vocabulary) at position t against the token at t + 1."""
    logits = output if torch.is_tensor(output) else getattr(output, "logits", None)
    if logits is None or logits.dim() != 3 or logits.shape[:2] != batch.shape:
        raise GradvetError(f"the output ({_describe(output)}) is not next-token logits of shape "
                           f"({batch.shape[0]}, {batch.shape[1]}, vocabulary)")
    return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def token_batch(target: str, model: nn.Module, batch_size: int, seed: int) -> tuple[Any, Callable | None, str]:
    """(batch, loss_fn, description) of `batch_size` sequences of random token ids (uniform over the
    vocabulary, a generator seeded with `seed`): {"input_ids", "labels"} for a model that takes labels,
    else the ids alone with the next-token loss."""
    size = vocabulary(model)
    if size is None:
        raise GradvetError(f"--data {TOKENS} needs a model that takes token ids (a config with vocab_size, or an "
                           f"nn.Embedding); --model {target!r} has neither: give it --data with float features, "
                           "or return (model, batch) from the factory.")
    length = context(model)
    ids = torch.randint(0, size, (batch_size, length), generator=torch.Generator().manual_seed(seed))
    described = f"{TOKENS}: {batch_size} sequences of {length} random token ids below {size}"
    if takes_labels(model):
        return {"input_ids": ids, "labels": ids}, None, described
    return ids, _next_token_or_explain(target), described


def _next_token_or_explain(target: str) -> Callable:
    def loss_fn(output, batch):
        try:
            return next_token_loss(output, batch)
        except GradvetError as err:
            raise GradvetError(f"--model {target!r} on --data {TOKENS}: {err}; return (model, batch, loss_fn) "
                               "from the factory for a model that is not a language model.") from None

    return loss_fn


# -- the check-up ----------------------------------------------------------------------------------
def checkup_batch(target: str, model: nn.Module, batch: Any, loss_fn: Callable | None, steps: int = 0,
                  lr: float = 0.1) -> tuple[Diagnosis, Probe]:
    """Probe `model` on `batch`: one forward and backward pass at initialisation (steps = 0), else
    `steps` SGD steps on the same batch, each recorded; the diagnosis of the last."""
    check_probe_size(model, steps)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr) if steps else None
    with Probe(model, optimizer) as probe:
        for _ in range(max(steps, 1)):
            loss_of(target, model, batch, loss_fn).backward()
            if optimizer is None:
                probe.step()
            else:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
    return diagnose(probe), probe


def checkup_factory(target: str, kwargs: dict[str, Any], data: str | None = None, steps: int = 0, lr: float = 0.1,
                    batch_size: int = 128, seed: int = 0) -> tuple[Diagnosis, str, str]:
    """`gradvet diagnose --model`: (the diagnosis, the data's name, what the model was fed in words) for the
    factory's model on its own batch, on random tokens (`data` 'tokens') or on the dataset `data` (default
    digits)."""
    made = make(target, kwargs)
    if made.batch is not None:
        if data is not None:
            raise GradvetError(f"--data {data} is not used: the factory returned its own batch; leave --data out.")
        diagnosis, _ = checkup_batch(target, made.model, made.batch, made.loss_fn, steps, lr)
        return diagnosis, "batch", f"the factory's batch ({_describe(made.batch)})"
    if data == TOKENS:
        batch, loss_fn, described = token_batch(target, made.model, batch_size, seed)
        diagnosis, _ = checkup_batch(target, made.model, batch, loss_fn, steps, lr)
        return diagnosis, TOKENS, described
    dataset = load(data or "digits")
    diagnosis, _ = checkup(made.model, dataset, steps=steps, lr=lr, batch_size=batch_size, seed=seed)
    return diagnosis, data or "digits", dataset.describe()
