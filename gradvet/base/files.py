"""Reading the report's source files safely: regular files only, of bounded size and nesting.

A report source is named by the user and may be anything a path can name. `/dev/zero` would
be read forever and a FIFO would block the read forever, so a file is checked with `os.stat`
before it is opened and again with `os.fstat` on the opened descriptor (opened with
O_NONBLOCK, so that a FIFO swapped in between cannot block the open); only regular files are
read, and never more than their cap. JSON nested deeper than any gradvet result is refused
too: the report walks results recursively, and json's own RecursionError is caught.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from gradvet.base.errors import GradvetError

MAX_JSON_BYTES = 32 * 2**20  # a gradvet result JSON (the full trainable-depth grid is well under 1 MB)
MAX_JSON_DEPTH = 64  # nesting levels; gradvet writes at most about 6
MAX_FIGURE_BYTES = 16 * 2**20  # one SVG figure an experiment wrote beside its JSON

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def file_kind(mode: int) -> str:
    """What a stat mode names, in words ('a regular file', 'a FIFO (named pipe)', ...)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((words for test, words in _KINDS if test(mode)), "not a regular file")


def _megabytes(size: int) -> str:
    return f"{size / 2**20:g} MB"


def require_regular_file(path: Path, allowed: str) -> os.stat_result:
    """The stat of `path` if it is a regular file (symlinks followed); else one sentence naming it and `allowed`."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise GradvetError(f"cannot read {str(path)!r}: {err.strerror or err}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise GradvetError(f"{str(path)!r} is {file_kind(info.st_mode)}, not a regular file; give {allowed}.")
    return info


def is_regular_file(path: Path) -> bool:
    """Whether `path` names a regular file (no error for anything else)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def read_regular_file(path: Path, limit: int, allowed: str) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them (a larger file is one sentence naming it)."""
    require_regular_file(path, allowed)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise GradvetError(f"cannot read {str(path)!r}: {err.strerror or err}.") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):  # replaced between the two looks
            raise GradvetError(f"{str(path)!r} is {file_kind(info.st_mode)}, not a regular file; give {allowed}.")
        data = handle.read(limit + 1) if info.st_size <= limit else b""
    if info.st_size > limit or len(data) > limit:
        raise GradvetError(f"{str(path)!r} holds {max(info.st_size, len(data)):,} bytes, more than the "
                           f"{_megabytes(limit)} the report reads; give {allowed}.")
    return data


def nesting_depth(value: Any, cap: int = MAX_JSON_DEPTH) -> int:
    """How deeply lists and dicts nest in `value` (a scalar is 0), counted without recursion
    and only up to `cap` + 1: anything deeper answers `cap` + 1."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (list, tuple, dict)):
            depth += 1
            if depth > cap:
                return cap + 1
            deepest = max(deepest, depth)
            todo.extend((v, depth) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


RESULT_FILES = "a runs.db store, a gradvet JSON result or a folder of them"


def read_json(path: Path) -> Any:
    """The JSON value in the file `path`: a regular file of at most MAX_JSON_BYTES, nested at most
    MAX_JSON_DEPTH levels, UTF-8 (strict JSON plus the NaN/Infinity Python writes)."""
    data = read_regular_file(path, MAX_JSON_BYTES, RESULT_FILES)
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise GradvetError(f"{str(path)!r} nests its JSON deeper than Python's reader allows; a gradvet result "
                           f"nests at most {MAX_JSON_DEPTH} levels.") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise GradvetError(f"cannot read {str(path)!r} as JSON: {err}.") from None
    if nesting_depth(value) > MAX_JSON_DEPTH:
        raise GradvetError(f"{str(path)!r} nests its JSON deeper than {MAX_JSON_DEPTH} levels; a gradvet result "
                           "nests fewer.")
    return value
