"""Test-wide set-up: a private property cache, so tests never read a stale one; Hypothesis's
profile from HYPOTHESIS_PROFILE ("ci" in .ci/run: the same examples on every run)."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
from hypothesis import settings

# Small tensors everywhere: a second intra-op thread only adds hand-over latency, and on a
# busy two-core machine it makes the suite several times slower.
torch.set_num_threads(1)

_CACHE = tempfile.mkdtemp(prefix="gradvet-test-cache-")
os.environ["GRADVET_CACHE_DIR"] = _CACHE
os.environ.setdefault("MPLBACKEND", "Agg")

# "ci": examples drawn from a fixed seed (a red CI run is reproducible and not a roll of the dice),
# no per-example deadline (a loaded machine is slow, not wrong), and a failing example printed as
# a blob that @reproduce_failure replays. Locally the default profile keeps exploring new examples.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache directory for one test."""
    from gradvet.activations import cache

    monkeypatch.setenv("GRADVET_CACHE_DIR", str(tmp_path / "cache"))
    cache.clear_memory()
    yield tmp_path / "cache"
    cache.clear_memory()
