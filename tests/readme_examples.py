"""The README's integration snippets are the files in examples/, included verbatim: a test checks
each block still equals its file, and runs the file."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!-- example: (\S+) -->\n```[a-z]*\n(.*?)```", re.S)


def readme_blocks() -> dict[str, str]:
    """{examples/FILE: the code block under its marker} for every marked block of the README."""
    return {path: code for path, code in MARKER.findall((ROOT / "README.md").read_text())}


def check_and_run(relative: str, workdir: Path, monkeypatch) -> dict:
    """Assert the README shows `relative` verbatim, then run it as __main__ inside `workdir`; its globals."""
    text = (ROOT / relative).read_text()
    assert readme_blocks().get(relative) == text, f"README.md's block for {relative} differs from the file"
    monkeypatch.chdir(workdir)
    return runpy.run_path(str(ROOT / relative), run_name="__main__")
