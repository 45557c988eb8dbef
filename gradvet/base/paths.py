"""Where gradvet keeps its caches: $GRADVET_CACHE_DIR, else $XDG_CACHE_HOME/gradvet,
else ~/.cache/gradvet (read at call time, so tests can point it elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The directory gradvet caches into (not created here)."""
    if os.environ.get("GRADVET_CACHE_DIR"):
        return Path(os.environ["GRADVET_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gradvet"
