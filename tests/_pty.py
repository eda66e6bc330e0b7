"""``swarm`` run on a pseudo-terminal, to read what it shows and type into it (a password
prompt without echo, a question asked twice)."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def read_some(fd: int, wait: float) -> bytes:
    """What the terminal ``fd`` gives within ``wait`` seconds (b"": nothing, or closed)."""
    ready, _, _ = select.select([fd], [], [], wait)
    if not ready:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:  # (Linux: EIO once the other side is closed)
        return b""


@contextlib.contextmanager
def on_a_terminal(
    url: str, *args: str, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``swarm ARGS`` (SWARM_URL ``url``, and ``env``) run on a pseudo-terminal (its stdin,
    stdout and stderr), and the terminal's other side; closed and the child ended after the
    block."""
    leader, follower = pty.openpty()
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), str(REPO / "src")) if p)
    environment = {**os.environ, "SWARM_URL": url, "PYTHONPATH": path, **env}
    child = subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", *args], stdin=follower, stdout=follower,
        stderr=follower, env=environment, start_new_session=True,
    )  # fmt: skip
    os.close(follower)
    try:
        yield child, leader
    finally:
        os.close(leader)
        if child.poll() is None:
            child.kill()
            child.wait()
