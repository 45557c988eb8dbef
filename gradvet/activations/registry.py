"""Look-up of activations by name, alias or formula, and registration of new ones.

Names are matched case-, hyphen-, underscore- and space-insensitively
("Leaky-ReLU" finds leaky_relu), aliases included ("swish-1" finds silu),
in the manner of timm's activation registry. Text that is not a plain name
is read as a formula in x (see `activations.formula`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import torch

from gradvet.activations import other_family, relu_family, sigmoid_family, tanh_family
from gradvet.activations.core import Activation, Entry
from gradvet.base.errors import GradvetError, unknown

FAMILIES = ("relu", "tanh", "sigmoid", "shrink", "other", "custom")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\- ]*$")

_entries: dict[str, Entry] = {}
_lookup: dict[str, str] = {}  # normalised name or alias -> canonical name


def normalise(name: str) -> str:
    """'Leaky-ReLU' -> 'leakyrelu': lower case without '-', '_' or spaces."""
    return re.sub(r"[\s_\-]", "", name.lower())


def _add(entry: Entry, replace: bool = False) -> None:
    keys = [normalise(entry.name), *(normalise(a) for a in entry.aliases)]
    for key in keys:
        owner = _lookup.get(key)
        if owner is not None and owner != entry.name and not replace:
            raise GradvetError(f"name {key!r} of {entry.name!r} is already taken by {owner!r}; choose another name.")
    if entry.name in _entries and not replace:
        raise GradvetError(
            f"activation {entry.name!r} is already in the catalog; pass replace=True to register over it."
        )
    if entry.name in _entries:  # drop the old entry's aliases
        for key in [k for k, v in _lookup.items() if v == entry.name]:
            del _lookup[key]
    _entries[entry.name] = entry
    for key in keys:
        _lookup[key] = entry.name


for _entry in (*sigmoid_family.ENTRIES, *tanh_family.ENTRIES, *relu_family.ENTRIES, *other_family.ENTRIES):
    _add(_entry)

BUILTIN = frozenset(_entries)


def names(family: str | None = None) -> list[str]:
    """Canonical names of the catalog (registered ones included), sorted."""
    if family is not None:
        check_family(family)
    return sorted(n for n, e in _entries.items() if family is None or e.family == family)


def families() -> list[str]:
    """The families present in the catalog, in display order."""
    present = {e.family for e in _entries.values()}
    return [f for f in FAMILIES if f in present]


def check_family(family: str) -> str:
    if family not in families():
        raise unknown("family", family, families())
    return family


def entry(name: str) -> Entry:
    """The catalog entry for a name or alias, or a GradvetError with close matches."""
    canonical = _lookup.get(normalise(name))
    if canonical is None:
        spelled = list(_entries) + [a for e in _entries.values() for a in e.aliases]
        raise unknown("activation", name, f"one of the {len(_entries)} names `gradvet activations` lists, "
                      "or a formula in x such as 'x*sigmoid(x)'", choices=spelled)
    return _entries[canonical]


def is_name(text: str) -> bool:
    """True for text that reads as a name (letters, digits, _ - space), not a formula."""
    return bool(_NAME_RE.match(text.strip())) and text.strip() != "x"


def activation(name_or_formula: str | Activation, **params: Any) -> Activation:
    """The activation for a catalog name or alias, or one built from a formula in x.

    >>> activation("leaky_relu", negative_slope=0.2).params
    {'negative_slope': 0.2}
    >>> activation("x*tanh(softplus(x))").family
    'custom'
    """
    if isinstance(name_or_formula, Activation):
        if params:
            raise GradvetError(
                f"parameters {sorted(params)} given for the ready-made activation {name_or_formula.label()}; "
                "pass a name or formula to set parameters."
            )
        return name_or_formula
    if not isinstance(name_or_formula, str):
        raise GradvetError(
            f"activation {name_or_formula!r} is neither a name, a formula nor an Activation."
        )
    text = name_or_formula.strip()
    if not text:
        raise GradvetError("activation '' is empty; give a name such as 'relu' or a formula in x such as 'x*sigmoid(x)'.")
    if is_name(text):
        return entry(text).build(**params)
    from gradvet.activations.from_formula import formula_activation

    return formula_activation(text, **params)


def catalog(family: str | None = None) -> list[Activation]:
    """Every catalog activation with default parameters, sorted by name."""
    return [_entries[n].build() for n in names(family)]


def _autograd_grad(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """f' by autograd of an elementwise f (each output depends on its own input only)."""

    def grad(x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xd = x if x.requires_grad else x.detach().requires_grad_(True)
            y = fn(xd)
            if not y.requires_grad:
                return torch.zeros_like(x)
            (d,) = torch.autograd.grad(y.sum(), xd, create_graph=x.requires_grad, allow_unused=True)
        return torch.zeros_like(x) if d is None else d

    return grad


def register(
    name: str,
    fn: Callable[[torch.Tensor], torch.Tensor],
    grad: Callable[[torch.Tensor], torch.Tensor] | None = None,
    *,
    family: str = "custom",
    formula: str = "",
    aliases: Iterable[str] = (),
    pros: Iterable[str] = (),
    cons: Iterable[str] = (),
    paper: str = "",
    year: int | None = None,
    module: Callable[[], torch.nn.Module] | None = None,
    replace: bool = False,
) -> Activation:
    """Add a user's elementwise callable to the catalog; it gets every property and figure.

    `grad` is the closed-form derivative if you have one; without it f' comes
    from autograd. The new name works everywhere a catalog name does.
    """
    if not isinstance(name, str) or not is_name(name):
        raise GradvetError(
            f"name {name!r} is not allowed; a name starts with a letter and has only letters, digits, '_' or '-'."
        )
    if not callable(fn):
        raise GradvetError(f"register({name!r}): fn {fn!r} is not callable.")
    if grad is not None and not callable(grad):
        raise GradvetError(f"register({name!r}): grad {grad!r} is not callable.")
    if family not in FAMILIES:
        raise unknown("family", family, FAMILIES, context=f"register({name!r})")
    canonical = name.strip()
    if canonical in BUILTIN and not replace:
        raise GradvetError(f"activation {canonical!r} is a built-in catalog entry; choose another name.")
    user_fn = fn
    user_grad = grad if grad is not None else _autograd_grad(fn)
    new = Entry(
        name=canonical,
        family=family,
        formula=formula or getattr(fn, "__name__", "user function"),
        fn=lambda x: user_fn(x),
        grad=lambda x: user_grad(x),
        aliases=tuple(aliases),
        pros=tuple(pros),
        cons=tuple(cons),
        paper=paper,
        year=year,
        module=module,
        source="registered",
    )
    _add(new, replace=replace)
    return new.build()


def unregister(name: str) -> None:
    """Remove a registered (not built-in) activation."""
    canonical = entry(name).name
    if canonical in BUILTIN:
        raise GradvetError(f"activation {canonical!r} is built in and cannot be removed.")
    del _entries[canonical]
    for key in [k for k, v in _lookup.items() if v == canonical]:
        del _lookup[key]
