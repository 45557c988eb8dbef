"""Shared checks for command-line tests."""

from __future__ import annotations


def assert_user_error(result, *fragments):
    """A user mistake: exit status 2, exactly one line on stderr naming each fragment, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
