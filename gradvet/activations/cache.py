"""On-disk cache of computed properties, so `gradvet activations` answers at once.

One JSON file per version of the catalog's source: the file name carries a
hash of `gradvet/activations/*.py` and of torch's version, so a change to any
formula or to the property code invalidates it (properties cannot drift from
the code). Writes are atomic (temp file + rename); an unwritable cache
directory only means no caching. Location: $GRADVET_CACHE_DIR, else
$XDG_CACHE_HOME/gradvet, else ~/.cache/gradvet.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from gradvet.paths import cache_dir

if TYPE_CHECKING:
    from gradvet.activations.core import Activation
    from gradvet.activations.properties import Properties

_memory: dict[str, dict] = {}


@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    """Hash of the catalog's source files and torch's version."""
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _path() -> Path:
    return cache_dir() / f"properties-{source_hash()}.json"


def _load() -> dict:
    path = _path()
    key = str(path)
    if key not in _memory:
        try:
            _memory[key] = json.loads(path.read_text())
        except (OSError, ValueError):
            _memory[key] = {}
    return _memory[key]


def _save(table: dict) -> None:
    path = _path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        on_disk = {}
        try:
            on_disk = json.loads(path.read_text())
        except (OSError, ValueError):
            pass
        on_disk.update(table)  # keep what another process wrote meanwhile
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".properties-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            json.dump(on_disk, out)
        os.replace(tmp, path)
    except OSError:
        pass


def properties(act: Activation, compute: Callable[[Activation], Properties]) -> Properties:
    """Cached properties of `act`; computed (and stored) when missing."""
    from gradvet.activations.properties import Properties

    if act.cache_key is None:
        return compute(act)
    table = _load()
    if act.cache_key in table:
        try:
            return Properties.from_cache(table[act.cache_key])
        except (TypeError, KeyError, ValueError):
            pass
    props = compute(act)
    table[act.cache_key] = props.to_cache()
    _save(table)
    return props


def clear_memory() -> None:
    """Forget what was read from disk (tests point GRADVET_CACHE_DIR elsewhere)."""
    _memory.clear()
