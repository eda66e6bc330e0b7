"""SIGTERM and SIGHUP stop a command as Ctrl-C does: `timeout 5 swarm task claim Q --wait 30`
(timeout sends SIGTERM) and a terminal closing (SIGHUP) killed a waiting claim silently
(exit -15, -1), its worker's name left on the queue's waiters list (the next post gave a
token to nobody: one task waited a chunk); now the wait is interrupted, says so as Ctrl-C's
does (exit 1) and leaves the list. Once a claim returned, they are held as Ctrl-C is."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from redis_swarm import Swarm, TaskStatus
from redis_swarm._keys import Keys
from redis_swarm.cli import _task_work

from ._cli import Cli, subprocess_env, swarm_bin
from ._raw import blocked_clients, raw_client
from ._waiting import until

WORKER = "w-term"
KEYS = Keys("test")


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as s:
        yield s


def _at_defaults() -> None:
    """The signals as a terminal's shell starts a command: at their defaults, whatever the
    test run inherited (a suite started under ``nohup`` ignores SIGHUP, and so would the
    command)."""
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


def _start(
    redis_url: str, tmp_path: Path, *args: str, before: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    env = subprocess_env(redis_url, "test", swarm_bin(tmp_path / "bin").parent)
    return subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", *args], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, preexec_fn=before or _at_defaults,
    )  # fmt: skip


def _ended(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    try:
        stdout, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate(timeout=10)
    return proc.returncode, stdout.decode(), stderr.decode()


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_terminated_waiting_claim_says_so_and_leaves_the_waiters_list(
    swarm: Swarm, redis_url: str, tmp_path: Path, name: str
) -> None:
    proc = _start(redis_url, tmp_path, "task", "claim", "q-empty", "--wait", "30",
                  "--worker", WORKER)  # fmt: skip
    waiters = KEYS.waiters("q-empty")
    with contextlib.closing(raw_client(redis_url, decode_responses=True)) as raw:
        until(
            lambda: WORKER in raw.lrange(waiters, 0, -1) and blocked_clients(raw) >= 1,
            "the claim waiting, its name on the waiters list",
        )
        proc.send_signal(getattr(signal, name))
        code, stdout, stderr = _ended(proc)
        assert code == 1, (code, stderr)
        assert "\nerror: interrupted: the claim stopped waiting and nothing was " in stderr
        assert "Aborted" not in stderr and "Traceback" not in stderr and stdout == "", stderr
        assert WORKER not in raw.lrange(waiters, 0, -1)
    # (a post now wakes nobody that is gone: the next claim takes it at once)
    posted = swarm.post_task("q-empty", "d")
    claimed = swarm.claim("q-empty", worker="w-other", wait_s=5)
    assert claimed is not None and claimed.id == posted.id


def test_a_hung_up_task_wait_says_the_wait_stopped(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    swarm.post_task("q-open", "d")
    with contextlib.closing(raw_client(redis_url)) as raw:
        before = blocked_clients(raw)
        proc = _start(redis_url, tmp_path, "task", "wait", "--queue", "q-open", "--timeout", "30")
        until(lambda: blocked_clients(raw) > before, "the wait blocking")
    proc.send_signal(signal.SIGHUP)
    code, _stdout, stderr = _ended(proc)
    assert code == 1, (code, stderr)
    assert "error: interrupted: the wait stopped;" in stderr and "Aborted" not in stderr, stderr


def _ignoring_sighup() -> None:
    _at_defaults()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # (as `nohup` starts it)


def test_a_signal_ignored_at_start_stays_ignored(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """`nohup swarm task claim ...`: a SIGHUP the command was started ignoring stays so."""
    proc = _start(
        redis_url, tmp_path, "task", "claim", "q-nohup", "--wait", "30", "--worker", WORKER,
        before=_ignoring_sighup,
    )  # fmt: skip
    waiters = KEYS.waiters("q-nohup")
    with contextlib.closing(raw_client(redis_url, decode_responses=True)) as raw:
        until(lambda: WORKER in raw.lrange(waiters, 0, -1), "the claim waiting")
        proc.send_signal(signal.SIGHUP)
        posted = swarm.post_task("q-nohup", "d")
        code, stdout, stderr = _ended(proc)
    assert code == 0, (code, stderr)
    assert f"claimed {posted.id} (token " in stdout, stdout


def _signal_then(number: int, step: Callable[..., Any]) -> Callable[..., Any]:
    """``step`` preceded by signal ``number`` to this process, as one landing right after
    the claim returned."""

    def signalled(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), number)
        return step(*args, **kwargs)

    return signalled


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_termination_once_the_claim_returned_is_held_as_ctrl_c_is(
    cli: Cli, swarm: Swarm, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    number = getattr(signal, name)
    monkeypatch.setattr(_task_work, "_prune_tokens", _signal_then(number, _task_work._prune_tokens))
    before = signal.getsignal(number)
    posted = swarm.post_task("q", "d")
    out = cli("task", "claim", "q", "--wait", "5", "--worker", WORKER, expect=None)
    assert out.code == 0, out
    assert f"claimed {posted.id} (token " in out.stdout
    assert "interrupted" not in out.stderr and "Aborted" not in out.stderr, out
    assert swarm.get_task(posted.id).status is TaskStatus.CLAIMED
    # (the command's handlers are put back: the signal is this process's again)
    assert signal.getsignal(number) is before


def _serving(proc: subprocess.Popen[bytes], words: bytes) -> None:
    """Wait until the server's stderr says ``words`` (its ready line, which names its URL),
    then until it answers HTTP there (its sockets listen before uvicorn runs: a signal in
    between is a Ctrl-C at start, "Aborted!")."""
    assert proc.stderr is not None
    line = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and words not in line:
        line = proc.stderr.readline()
    found = re.search(rb"http://[^ /]+", line)
    assert found is not None, line
    while time.monotonic() < deadline:
        try:
            httpx.get(found[0].decode() + "/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"the server never answered at {found[0]!r}")


@pytest.mark.parametrize(
    ("args", "ready"),
    [
        (("dashboard", "--port", "0"), b"dashboard of swarm"),
        (("a2a", "--queue", "q-hup", "--port", "0"), b"A2A server of swarm"),
        (("mcp", "--transport", "http", "--port", "0"), b"http://"),
    ],
    ids=["dashboard", "a2a", "mcp-http"],
)
def test_a_hung_up_web_server_stops_as_on_sigterm(
    redis_url: str, tmp_path: Path, args: tuple[str, ...], ready: bytes
) -> None:
    """uvicorn hears SIGINT and SIGTERM only: a SIGHUP raised KeyboardInterrupt inside its
    loop (a traceback, the lifespan's shutdown skipped)."""
    proc = _start(redis_url, tmp_path, *args)
    _serving(proc, ready)
    proc.send_signal(signal.SIGHUP)
    code, _stdout, stderr = _ended(proc)
    assert code == 0 and "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr


def test_a_hung_up_stdio_mcp_server_leaves_at_once(redis_url: str, tmp_path: Path) -> None:
    """It waited for stdin to close (the SDK reads it on a thread no cancellation reaches)."""
    env = subprocess_env(redis_url, "test", swarm_bin(tmp_path / "bin").parent)
    proc = subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", "mcp"], env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_at_defaults,
    )  # fmt: skip
    try:
        # Serving once it answers a client's first request (a fixed wait for its imports
        # lost the race on a loaded machine: the signal came before its handler).
        assert proc.stdin is not None and proc.stdout is not None
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "hup-test", "version": "1"}}}  # fmt: skip
        proc.stdin.write(json.dumps(init).encode() + b"\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready and b'"id":1' in proc.stdout.readline().replace(b" ", b"")
        proc.send_signal(signal.SIGHUP)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 0
