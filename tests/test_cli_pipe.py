"""A closed standard output ends the CLI quietly, as it ends git or grep: ``swarm events |
head -1`` prints no error, no traceback and no "Exception ignored" at exit, and exits 141
(what the shell reports for git and grep there, killed by SIGPIPE). Real processes, real
pipes: the reader leaves before the command has written all it has."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from redis_swarm import Swarm
from redis_swarm.cli._app import EXIT_ERROR, EXIT_PIPE, _Group, _stdout_gone

from ._cli import subprocess_env, swarm_bin

EVENTS = 1000  # ~100 KB of event lines: more than a pipe holds, so the writer outlives head


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.post_tasks([{"queue": f"q{i % 50}", "description": "x" * 60} for i in range(EVENTS)])
    swarm_bin(tmp_path / "bin")
    return subprocess_env(redis_url, "test", tmp_path / "bin")


def _quiet(stderr: bytes) -> None:
    assert b"error" not in stderr and b"Traceback" not in stderr, stderr
    assert b"Exception ignored" not in stderr and b"Broken pipe" not in stderr, stderr
    assert stderr == b"", stderr


def test_events_into_head_through_a_shell(env: dict[str, str]) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    script = f'swarm events --limit {EVENTS} | head -1; echo "codes ${{PIPESTATUS[*]}}" >&2'
    out = subprocess.run(
        [bash, "-c", script], env=env, capture_output=True, timeout=60, check=False
    )
    assert out.stdout.count(b"\n") == 1 and b"task.posted" in out.stdout
    assert out.stderr.endswith(f"codes {EXIT_PIPE} 0\n".encode()), out.stderr
    _quiet(out.stderr.rpartition(b"codes")[0])


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize(
    "args",
    [
        ["events", "--limit", str(EVENTS)],  # click.echo, line by line
        ["status"],  # a rich table
        ["--json", "status"],  # one JSON document
        ["task", "list", "--limit", "100"],  # a rich table of many rows
    ],
    ids=" ".join,
)
def test_a_reader_that_left_before_the_output(
    env: dict[str, str], args: list[str], buffered: bool
) -> None:
    """Its reading end closed before the command writes: its first write meets it (a
    buffered stdout keeps what it could not write; an unbuffered one keeps nothing)."""
    env = {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", *args],
        env=env if buffered else {**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_PIPE, stderr
    _quiet(stderr)


def test_an_open_pipe_still_gets_everything(env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "redis_swarm", "events", "--limit", str(EVENTS)],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.count(b"task.posted") == EVENTS


def test_only_standard_output_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another pipe that breaks (an agent's stdin, a socket) is an error, said in one line."""
    read, write = os.pipe()
    with os.fdopen(write, "w") as out:
        monkeypatch.setattr(sys, "stdout", out)
        assert not _stdout_gone()
        os.close(read)
        assert _stdout_gone()

    @click.group(cls=_Group)
    def group() -> None:
        pass

    @group.command()
    def feed() -> None:
        raise BrokenPipeError(32, "Broken pipe")

    result = CliRunner().invoke(group, ["feed"])
    assert result.exit_code == EXIT_ERROR and result.stderr == "error: [Errno 32] Broken pipe\n"
