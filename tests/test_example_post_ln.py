"""examples/post_ln_diagnosis.py runs, prints a diagnosis with a verdict and no '?' or 'nan', and the
README shows what it prints."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_the_post_ln_example_prints_a_verdict_and_the_readme_shows_it(capsys):
    with torch.random.fork_rng(devices=[]):  # the example seeds torch's generator; the tests' stream stays as it was
        namespace = runpy.run_path(str(ROOT / "examples" / "post_ln_diagnosis.py"), run_name="__main__")
    printed = capsys.readouterr().out
    diagnosis = namespace["diagnosis"]
    assert printed.startswith(f"verdict: {diagnosis.verdict} at step 0")
    assert diagnosis.basis == "blocks" and len(diagnosis.blocks) == 24 and diagnosis.stream.normalisation == "post"
    assert "?" not in printed and "nan" not in printed.lower()
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"<!-- post-ln example output -->\n```text\n(.*?)```", readme, re.S).group(1)
    lines, expected = printed.splitlines(), shown.splitlines()
    assert len(lines) == len(expected)
    assert [line.split(":")[0] for line in lines] == [line.split(":")[0] for line in expected]
    assert [line.split()[0] for line in lines[2:26]] == [line.split()[0] for line in expected[2:26]]  # the blocks
