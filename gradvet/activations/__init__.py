"""The activation catalog: every common activation, its exact derivative and computed properties.

`activation(name_or_formula, **params)` returns an `Activation`; `names()`
lists the catalog; `register(name, fn, grad=None)` adds a user's own.
"""

from gradvet.activations.core import Activation, ActivationModule, Entry, Param
from gradvet.activations.registry import (
    FAMILIES,
    activation,
    catalog,
    entry,
    families,
    names,
    normalise,
    register,
    unregister,
)

__all__ = [
    "FAMILIES",
    "Activation",
    "ActivationModule",
    "Entry",
    "Param",
    "activation",
    "catalog",
    "entry",
    "families",
    "names",
    "normalise",
    "register",
    "unregister",
]
