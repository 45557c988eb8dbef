"""The `Activation` object and the blueprint (`Entry`) the catalog builds it from.

An `Entry` is one row of the catalog: name, family, formula text, named
parameters with defaults and allowed ranges, and builders for the forward
function, its closed-form derivative and a torch module. `Entry.build(**p)`
checks the parameters and returns an `Activation` with the values bound.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from gradvet.base.errors import GradvetError, did_you_mean

if TYPE_CHECKING:
    from gradvet.activations.properties import Properties

Tensor = torch.Tensor
TensorFn = Callable[[Tensor], Tensor]


def magnitude(x: Tensor) -> Tensor:
    """|x| written with torch.where.

    Same values and derivative as x.abs(), but autograd's double backward of
    abs imports torch._dynamo (about 2 s), which the property checks would pay.
    """
    return torch.where(x < 0, -x, x)


@dataclass(frozen=True)
class Param:
    """A named real parameter with a default and an allowed interval.

    `low`/`high` are bounds (None: unbounded); `open_low`/`open_high` make the
    bound strict.
    """

    name: str
    default: float
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    doc: str = ""

    def allowed(self) -> str:
        """The allowed interval in words, e.g. '0 < alpha <= 10'."""
        parts = []
        if self.low is not None:
            parts.append(f"{self.low:g} {'<' if self.open_low else '<='} ")
        parts.append(self.name)
        if self.high is not None:
            parts.append(f" {'<' if self.open_high else '<='} {self.high:g}")
        return "".join(parts) if len(parts) > 1 else f"{self.name} any finite number"

    def check(self, value: Any, owner: str) -> float:
        """The value as a float, or a GradvetError naming it and the allowed range."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise GradvetError(
                f"{owner}: parameter {self.name}={value!r} is not a number; allowed: {self.allowed()}."
            ) from None
        bad = not math.isfinite(number)
        if self.low is not None:
            bad |= number < self.low or (self.open_low and number == self.low)
        if self.high is not None:
            bad |= number > self.high or (self.open_high and number == self.high)
        if bad:
            raise GradvetError(
                f"{owner}: parameter {self.name}={value!r} is out of range; allowed: {self.allowed()}."
            )
        return number


@dataclass(frozen=True, eq=False)
class Activation:
    """One activation function with its parameters bound.

    `fn(x)` is the function and `grad(x)` its closed-form derivative f'(x),
    both elementwise on tensors of any floating dtype. `module()` returns an
    `nn.Module` (PyTorch's own where one exists). `properties` are computed
    from `fn` and `grad`, never typed by hand (see `activations.properties`).
    """

    name: str
    family: str
    formula: str
    fn: TensorFn
    grad: TensorFn
    params: Mapping[str, float] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    pros: tuple[str, ...] = ()
    cons: tuple[str, ...] = ()
    paper: str = ""
    year: int | None = None
    make_module: Callable[[], nn.Module] | None = None
    source: str = "catalog"  # catalog | formula | registered
    cache_key: str | None = None  # None: properties are not cached on disk

    def module(self) -> nn.Module:
        """A fresh `nn.Module` computing this activation."""
        if self.make_module is not None:
            return self.make_module()
        return ActivationModule(self)

    @functools.cached_property
    def properties(self) -> Properties:
        """Computed properties (range, monotonicity, smoothness, max f', Gaussian moments...)."""
        from gradvet.activations.properties import properties_of

        return properties_of(self)

    @functools.cached_property
    def max_grad(self) -> float:
        """max |f'| over the real line (`properties.max_grad`), computed alone when the properties
        are not at hand (see `properties.max_grad_of`)."""
        from gradvet.activations.properties import max_grad_of

        return max_grad_of(self)

    @functools.cached_property
    def latex(self) -> str:
        """LaTeX of the formula, produced by SymPy from the plain-text formula."""
        from gradvet.activations import symbolic

        return symbolic.latex_of(self)

    @functools.cached_property
    def derivative_formula(self) -> str:
        """Plain-text f'(x), differentiated symbolically from the formula and simplified."""
        from gradvet.activations import symbolic

        return symbolic.derivative_text_of(self)

    def label(self) -> str:
        """Name with non-default parameters, e.g. 'leaky_relu(negative_slope=0.2)'."""
        if not self.params:
            return self.name
        inner = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        if self.source == "formula":
            return f"{self.name} with {inner}"
        return f"{self.name}({inner})"

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def __repr__(self) -> str:
        return f"Activation({self.label()}, family={self.family!r}, formula={self.formula!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Activation):
            return NotImplemented
        return (self.name, self.formula, dict(self.params), self.source) == (
            other.name, other.formula, dict(other.params), other.source)

    def __hash__(self) -> int:
        return hash((self.name, self.formula, tuple(sorted(self.params.items()))))


class ActivationModule(nn.Module):
    """An `nn.Module` applying an `Activation` without its own PyTorch module.

    The backward pass uses autograd through `fn` (the closed-form `grad`
    agrees with it; the catalog's tests check that).
    """

    def __init__(self, activation: Activation):
        super().__init__()
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        return self.activation.fn(x)

    def extra_repr(self) -> str:
        return self.activation.label()


@dataclass(frozen=True)
class Entry:
    """A catalog row: the blueprint of an Activation.

    `fn(x, **params)` and `grad(x, **params)` are written out by hand in torch
    (grad in closed form, not autograd); `module(**params)` returns PyTorch's
    own module when one exists. `formula` is plain text in the formula
    grammar of `activations.formula` with the parameter names in it, so the
    tests can parse it and check it against `fn`.
    """

    name: str
    family: str
    formula: str
    fn: Callable[..., Tensor]
    grad: Callable[..., Tensor]
    params: tuple[Param, ...] = ()
    aliases: tuple[str, ...] = ()
    pros: tuple[str, ...] = ()
    cons: tuple[str, ...] = ()
    paper: str = ""
    year: int | None = None
    module: Callable[..., nn.Module] | None = None
    source: str = "catalog"  # catalog | registered

    def bind(self, given: Mapping[str, Any]) -> dict[str, float]:
        """Checked parameter values: defaults overridden by `given`."""
        known = {p.name: p for p in self.params}
        for key in given:
            if key not in known:
                allowed = ", ".join(known) if known else "none"
                raise GradvetError(
                    f"{self.name}: unknown parameter {key!r}{did_you_mean(key, known)}; "
                    f"its parameters are: {allowed}."
                )
        values = {name: p.check(given.get(name, p.default), self.name) for name, p in known.items()}
        _check_joint(self.name, values)
        return values

    def build(self, **given: Any) -> Activation:
        """An Activation with parameters bound (defaults for those not given)."""
        values = self.bind(given)
        fn, grad, make = self.fn, self.grad, self.module

        def bound_fn(x: Tensor) -> Tensor:
            return fn(x, **values)

        def bound_grad(x: Tensor) -> Tensor:
            return grad(x, **values)

        make_module = functools.partial(make, **values) if make is not None else None
        key = f"{self.name}|" + ",".join(f"{k}={v!r}" for k, v in values.items())
        return Activation(
            name=self.name,
            family=self.family,
            formula=self.formula,
            fn=bound_fn,
            grad=bound_grad,
            params=values,
            aliases=self.aliases,
            pros=self.pros,
            cons=self.cons,
            paper=self.paper,
            year=self.year,
            make_module=make_module,
            source=self.source,
            cache_key=key if self.source == "catalog" else None,
        )


def _check_joint(owner: str, values: Mapping[str, float]) -> None:
    """Constraints that tie two parameters together (lower <= upper, min < max)."""
    for lo, hi in (("lower", "upper"), ("min_val", "max_val"), ("t_left", "t_right")):
        if lo in values and hi in values and values[lo] > values[hi]:
            raise GradvetError(
                f"{owner}: {lo}={values[lo]:g} is above {hi}={values[hi]:g}; allowed: {lo} <= {hi}."
            )
