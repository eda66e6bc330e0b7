"""A reader that leaves in the middle of one big write ends the CLI with 141 too (see
test_cli_pipe.py for readers that leave before or between writes). A write to a pipe whose
reader leaves midway returns the part written: an unbuffered standard output
(``PYTHONUNBUFFERED``, which agents' environments often set) dropped the rest without an
error, and ``swarm context get NAME | head -c 1`` exited 0. Real processes, real pipes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm.cli._app import EXIT_PIPE

from ._cli import subprocess_env, swarm_bin

# ~400 KB: one write of it outlasts a pipe's buffer (64 KB), so the reader leaves midway.
TEXT = "".join(f"line {i:07d} {'y' * 80}\n" for i in range(4500))


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.publish_context("shard-1", TEXT, source="big.md")
    swarm_bin(tmp_path / "bin")
    return {
        k: v
        for k, v in subprocess_env(redis_url, "test", tmp_path / "bin").items()
        if k != "PYTHONUNBUFFERED"
    }


COMMANDS = [
    ["context", "get", "shard-1"],  # bytes, a megabyte at a time
    ["context", "read", "shard-1", "--offset", "0", "--length", "200000"],  # one click.echo
    ["--json", "context", "get", "shard-1"],  # one JSON document
]


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_reader_that_leaves_midway(env: dict[str, str], args: list[str], buffered: bool) -> None:
    """``swarm ... | head -c 1``: the reader takes one byte and leaves while the command is
    still writing the rest of one write."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", *args],
        env=env if buffered else {**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.read(1) in (b"l", b"{")
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_PIPE, stderr
    assert b"error" not in stderr and b"Traceback" not in stderr, stderr
    assert b"Exception ignored" not in stderr and b"Broken pipe" not in stderr, stderr


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_a_reader_that_stays_gets_every_byte(env: dict[str, str], buffered: bool) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "redis_swarm", "context", "get", "shard-1"],
        env=env if buffered else {**env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and out.stdout == TEXT.encode(), out.stderr
