"""The CI set-up is what the README and .ci/run say: Hypothesis derandomised under CI's profile."""

from __future__ import annotations

import os
import re
from pathlib import Path

from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_hypothesis_derandomised():
    script = (ROOT / ".ci" / "run").read_text()
    exported = re.search(r"^export HYPOTHESIS_PROFILE=(\w+)", script, re.MULTILINE)
    assert exported is not None and script.index(exported.group(0)) < script.rindex("\nmake test")
    ci = settings.get_profile(exported.group(1))
    assert ci.derandomize and ci.deadline is None and ci.print_blob
    if os.environ.get("HYPOTHESIS_PROFILE") == exported.group(1):  # under CI: the profile is the one in force
        assert settings.default.derandomize
