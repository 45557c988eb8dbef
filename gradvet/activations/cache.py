"""On-disk cache of computed per-activation records (properties; the theory's numbers), so
`gradvet activations` answers at once.

One JSON file per record kind and per version of the code that computes it: the
file name carries a hash of that code (`gradvet/activations/*.py` for properties)
and of torch's version, so a change to any formula or to the property code
invalidates it (records cannot drift from the code). Writes are atomic (temp file
+ rename); an unwritable cache directory only means no caching. A cache is never a
reason to fail: a file that is not a JSON object of records (null, a list, garbage,
nested too deep, not a regular file, larger than MAX_FILE_BYTES) is ignored and
rewritten, and a record that does not decode, or does not encode back to itself
(a wrong schema), is computed again. Location:
$GRADVET_CACHE_DIR, else $XDG_CACHE_HOME/gradvet, else ~/.cache/gradvet.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch

from gradvet.base.paths import cache_dir

if TYPE_CHECKING:
    from gradvet.activations.protocol import ActivationLike

R = TypeVar("R")
CATALOG_SOURCES = tuple(sorted(Path(__file__).parent.glob("*.py")))
MAX_FILE_BYTES = 64 * 2**20  # the whole catalog's properties take about 100 kB
_memory: dict[str, dict] = {}


def read_table(path: Path) -> dict:
    """The records in the cache file at `path`: a JSON object, else {} (missing, unreadable or not a table)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return {}
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            return {}
        with os.fdopen(os.dup(fd), "rb") as fh:
            table = json.loads(fh.read())
    except (OSError, ValueError, RecursionError):
        return {}
    finally:
        os.close(fd)
    return table if isinstance(table, dict) else {}


def _same_json(a: object, b: object) -> bool:
    try:
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        return False


@functools.lru_cache(maxsize=8)
def source_hash(sources: tuple[Path, ...] = CATALOG_SOURCES) -> str:
    """Hash of the given source files (the catalog's by default) and torch's version."""
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sources:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class DiskTable:
    """A JSON file of records keyed by `Activation.cache_key`, named `PREFIX-HASH.json` after
    a hash of the code that computes them (`sources`)."""

    def __init__(self, prefix: str, sources: tuple[Path, ...] = CATALOG_SOURCES) -> None:
        self.prefix = prefix
        self.sources = tuple(sorted(sources))

    def path(self) -> Path:
        return cache_dir() / f"{self.prefix}-{source_hash(self.sources)}.json"

    def _load(self) -> dict:
        path = self.path()
        key = str(path)
        if key not in _memory:
            _memory[key] = read_table(path)
        return _memory[key]

    def _save(self, table: dict) -> None:
        path = self.path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            on_disk = read_table(path)
            on_disk.update(table)  # keep what another process wrote meanwhile
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{self.prefix}-", suffix=".json")
            with os.fdopen(fd, "w") as out:
                json.dump(on_disk, out)
            os.replace(tmp, path)
        except OSError:
            pass

    def get(self, act: ActivationLike, compute: Callable[[ActivationLike], R],
            encode: Callable[[R], dict], decode: Callable[[dict], R]) -> R:
        """The record of `act`: read back, or computed and stored when missing or unreadable.
        Activations without a `cache_key` (formulas, parameterised copies) are always computed."""
        if act.cache_key is None:
            return compute(act)
        record = self.stored(act, encode, decode)
        if record is not None:
            return record
        record = compute(act)
        table = self._load()
        table[act.cache_key] = encode(record)
        self._save(table)
        return record

    def stored(self, act: ActivationLike, encode: Callable[[R], dict], decode: Callable[[dict], R]) -> R | None:
        """The record of `act` as stored, or None (no `cache_key`, missing, or not of today's schema);
        nothing is computed."""
        if act.cache_key is None:
            return None
        raw = self._load().get(act.cache_key)
        if isinstance(raw, dict):
            try:
                record = decode(raw)
                if _same_json(encode(record), raw):  # every field there, nothing foreign: the schema of today
                    return record
            except (TypeError, KeyError, ValueError, AttributeError, RecursionError):
                pass
        return None


PROPERTIES = DiskTable("properties")  # read and written by `properties.properties_of`


def clear_memory() -> None:
    """Forget what was read from disk (tests point GRADVET_CACHE_DIR elsewhere)."""
    _memory.clear()
