"""Test-wide set-up: a private property cache, so tests never read a stale one."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

# Small tensors everywhere: a second intra-op thread only adds hand-over latency, and on a
# busy two-core machine it makes the suite several times slower.
torch.set_num_threads(1)

_CACHE = tempfile.mkdtemp(prefix="gradvet-test-cache-")
os.environ["GRADVET_CACHE_DIR"] = _CACHE
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache directory for one test."""
    from gradvet.activations import cache

    monkeypatch.setenv("GRADVET_CACHE_DIR", str(tmp_path / "cache"))
    cache.clear_memory()
    yield tmp_path / "cache"
    cache.clear_memory()
