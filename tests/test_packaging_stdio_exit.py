"""``swarm mcp`` on stdio ends at the end of its input leaving no file open: run with warnings
as errors, as a packager's or a client's smoke test may, it says nothing at exit."""

from __future__ import annotations

import os
import subprocess
import sys

from ._cli import SRC


def test_the_stdio_server_closes_its_copy_of_stdin_at_end_of_input(redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "redis_swarm", "--url", redis_url, "--swarm",
         "x", "mcp"],
        stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ResourceWarning" not in done.stderr and "unclosed" not in done.stderr, done.stderr
