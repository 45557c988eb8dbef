"""Shared checks for command-line tests, and `cli_batch`: several commands in one guarded process."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def assert_user_error(result, *fragments):
    """A user mistake: exit status 2, exactly one line on stderr naming each fragment, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


_CLI_BATCH = """
import json, sys
exec(sys.argv[2])
from typer.testing import CliRunner
from gradvet.cli import app
answers = []
for args in json.loads(sys.argv[1]):
    r = CliRunner().invoke(app, args)
    answers.append({"exit_code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr, "output": r.output})
print(json.dumps(answers))
"""


def cli_batch(*commands: Sequence[object], timeout: float = 300, address_space: int | None = None,
              prelude: str = "") -> list[SimpleNamespace]:
    """Each `gradvet ARGS` of `commands` through typer's CliRunner (exit_code, stdout, stderr, output),
    in order, in one fresh Python process: `prelude` (Python source) runs first; with `address_space`
    (bytes) the process is held to it. The timeout guards all of them against a hang for the price of
    one start-up (importing torch); a test about the process itself (signals, exit status of the real
    executable) starts its own instead. tests/ and the repository root are on the path."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    argv = [sys.executable, "-c", _CLI_BATCH, json.dumps([[str(a) for a in c] for c in commands]), prelude]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit if address_space else None)
    assert done.returncode == 0, done.stderr[-3000:]
    return [SimpleNamespace(**answer) for answer in json.loads(done.stdout.splitlines()[-1])]
