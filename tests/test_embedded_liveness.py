"""The embedded server is never killed by a command while its process lives: not when it
answers an error (MISCONF: it cannot write its AOF, a full disk), not when it answers nothing
(stopped, busy). Only a server whose process is gone is started again, and that is said. Real
servers throughout: a full disk is a file size limit (RLIMIT_FSIZE) on the real redis-server,
which then fails to write its AOF exactly as on a full disk ("No space left on device")."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import redis_swarm._embedded
from redis_swarm import ConnectionFailed, EmbeddedServerError, Swarm
from redis_swarm._embedded import STALL_WAIT, EmbeddedServer, find_redis_server

from .test_embedded import swarm_cli

# How long a silent server is waited for by the tests that wait it out, in place of STALL_WAIT
# (10 s): the waiting and what is said after it are the same, each test 8 s shorter.
SHORT_STALL = 2.0

# `swarm ARGS` with the stall bound set to SHORT_STALL (argv[1]).
_SWARM_SHORT_STALL = """
import sys
import redis_swarm._embedded
redis_swarm._embedded.STALL_WAIT = float(sys.argv[1])
from redis_swarm.cli import main
main(sys.argv[2:], prog_name="swarm")
"""


def _swarm_short_stall(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``swarm_cli``, waiting SHORT_STALL for a silent server instead of STALL_WAIT."""
    return subprocess.run(
        [sys.executable, "-c", _SWARM_SHORT_STALL, str(SHORT_STALL), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SWARM_HOME": str(home)},
        timeout=60,
        check=False,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/cmdline").read_bytes() != b""  # (not a zombie)


@pytest.fixture
def up(swarm_home: Path) -> Iterator[int]:
    """The embedded server of ``swarm_home``, started by ``swarm up``: its pid. Resumed at the
    end, should a test leave it stopped (the home's fixture then stops it)."""
    started = swarm_cli(swarm_home, "up", "--json")
    assert started.returncode == 0, started.stderr
    assert started.stderr == ""  # swarm up says "started" itself, on stdout
    pid = json.loads(started.stdout)["pid"]
    try:
        yield pid
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGCONT)


def test_a_stopped_server_is_waited_for_never_killed(swarm_home: Path, up: int) -> None:
    posted = swarm_cli(swarm_home, "--json", "task", "post", "q", "kept while stopped")
    task = json.loads(posted.stdout)
    os.kill(up, signal.SIGSTOP)
    start = time.monotonic()
    status = _swarm_short_stall(swarm_home, "status")
    took = time.monotonic() - start
    assert status.returncode == 1, status
    assert SHORT_STALL <= took < SHORT_STALL + 15, took  # it waited its bound, then said so
    message = status.stderr.strip()
    assert message.count("\n") == 0 and message.startswith("error: "), message
    assert f"(pid {up})" in message and "is stopped" in message
    assert f"kill -CONT {up}" in message and "nothing stored is lost" in message
    # (the home is not the default one: a plain 'swarm down' would stop another server)
    assert str(swarm_home / "redis.log") in message
    assert f"'swarm --home {swarm_home} down'" in message, message
    assert _alive(up)  # not killed, nor a second server started beside it

    os.kill(up, signal.SIGCONT)
    listed = swarm_cli(swarm_home, "--json", "task", "show", task["id"])
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["description"] == "kept while stopped"
    assert EmbeddedServer(swarm_home).pid() == up and listed.stderr == ""


def test_swarm_down_stops_a_stopped_server_cleanly(swarm_home: Path, up: int) -> None:
    with Swarm(f"embedded://{swarm_home}") as swarm:
        swarm.redis.set("written", "just before")
    os.kill(up, signal.SIGSTOP)
    down = swarm_cli(swarm_home, "down")
    assert down.returncode == 0, down
    # it says its data stays, and where (the README promises it), and what starts that
    # server again: its home named, as in a shell whose SWARM_HOME names another
    assert down.stdout.strip() == (
        f"stopped (its data stays in {swarm_home}: 'swarm --home {swarm_home} up', or the "
        "next command that needs it, starts it again)"
    ), down
    assert not _alive(up)
    assert "Received SIGTERM" in (swarm_home / "redis.log").read_text()  # not SIGKILL
    with Swarm(f"embedded://{swarm_home}") as swarm:
        assert swarm.redis.get("written") == b"just before"  # the AOF was flushed


LIMIT_KB = 1024  # the AOF may grow to 1 MiB; a 2 MiB value does not fit


def _small_disk(tmp_path: Path) -> str:
    """A redis-server that may write files of at most LIMIT_KB (a soft limit, so that a test
    can lift it), and gets an error rather than SIGXFSZ past it: as on a full disk."""
    wrapper = tmp_path / "redis-server"
    wrapper.write_text(
        f"#!/bin/sh\ntrap '' XFSZ\nulimit -S -f {LIMIT_KB}\n"
        f'exec {find_redis_server().path} "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def test_a_server_that_cannot_write_its_aof_is_never_killed(
    swarm_home: Path, tmp_path: Path
) -> None:
    env = {"SWARM_REDIS_SERVER": _small_disk(tmp_path)}
    started = swarm_cli(swarm_home, "up", "--json", env=env)
    assert started.returncode == 0, started.stderr
    pid = json.loads(started.stdout)["pid"]
    try:
        _fill_then_free(swarm_home, env, pid)
    finally:  # (so that the home's fixture can stop it, should the test fail midway)
        if _alive(pid):
            _lift_limit(pid)


def _lift_limit(pid: int) -> None:
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _fill_then_free(swarm_home: Path, env: dict[str, str], pid: int) -> None:
    url = f"embedded://{swarm_home}"
    with Swarm(url) as swarm:
        swarm.post_task("q", "before the disk filled")
        # acknowledged, in memory: the server cannot append it to its AOF
        assert swarm.redis.set("big", "x" * (2 * LIMIT_KB * 1024)) is True
        time.sleep(0.2)
        with pytest.raises(ConnectionFailed) as info:
            swarm.post_task("q", "refused")
    message = str(info.value)
    assert "cannot persist writes" in message and "No space left on device" in message
    assert "nothing stored is lost" in message and "answered an error" not in message
    assert str(swarm_home / "data") in message and "'swarm doctor'" in message

    # A command (the server answers -MISCONF even to PING) leaves it running, and says why.
    post = swarm_cli(swarm_home, "--json", "task", "post", "q", "refused too", env=env)
    assert post.returncode == 1, post
    error = json.loads(post.stderr)
    assert error["error"] == "ConnectionFailed" and "cannot persist writes" in error["message"]
    assert EmbeddedServer(swarm_home).pid() == pid and _alive(pid)
    # swarm down refuses: a stop now would lose the writes it holds in memory
    down = swarm_cli(swarm_home, "down")
    assert down.returncode == 1 and "cannot write its data to disk" in down.stderr, down
    assert f"kill {pid}" in down.stderr and _alive(pid)

    # Room again: the server writes what it held by itself, and takes writes again.
    _lift_limit(pid)
    deadline = time.monotonic() + 15
    while (post := swarm_cli(swarm_home, "task", "post", "q", "after", env=env)).returncode:
        assert time.monotonic() < deadline, post
        time.sleep(0.2)
    assert swarm_cli(swarm_home, "down").returncode == 0
    with Swarm(url) as swarm:  # started again: from its AOF alone
        assert len(swarm.redis.get("big") or b"") == 2 * LIMIT_KB * 1024
        descriptions = [t.description for t in swarm.list_tasks(queue="q").items]
    assert descriptions == ["before the disk filled", "after"]


def test_a_gone_server_is_started_again_and_that_is_said(swarm_home: Path, up: int) -> None:
    first = swarm_cli(swarm_home, "down")
    assert first.returncode == 0
    cold = swarm_cli(swarm_home, "status")  # stopped cleanly: started, and said so
    assert cold.returncode == 0, cold.stderr
    assert cold.stderr.startswith("swarm: started the embedded redis-server under ")
    pid = EmbeddedServer(swarm_home).pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # a crash: its socket and pidfile stay behind
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    again = swarm_cli(swarm_home, "status")
    assert again.returncode == 0, again.stderr
    note = again.stderr.strip()
    assert note.startswith("swarm: the embedded redis-server under ") and note.count("\n") == 0
    assert "had stopped without 'swarm down'" in note and str(swarm_home / "redis.log") in note
    assert swarm_cli(swarm_home, "status").stderr == ""  # running: nothing to say


def _wait_following(home: Path, follow: subprocess.Popen[str]) -> None:
    """Until ``follow`` (``swarm events --follow``) waits on the event stream (a connection of
    the home's server blocked in XREAD): an event posted from then on is one it prints."""
    with Swarm(f"embedded://{home}") as swarm:
        deadline = time.monotonic() + 30
        while not any(c.get("cmd") == "xread" for c in swarm.redis.client_list()):
            assert follow.poll() is None, follow.communicate()
            assert time.monotonic() < deadline, "the follow never waited on the stream"
            time.sleep(0.02)


def test_a_follow_cut_by_swarm_down_says_how_to_start_and_resume(swarm_home: Path, up: int) -> None:
    env = {**os.environ, "SWARM_HOME": str(swarm_home)}
    follow = subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", "events", "--follow", "--type", "task.posted"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_following(swarm_home, follow)
        posted = swarm_cli(swarm_home, "task", "post", "q", "seen")
        assert posted.returncode == 0
        first = follow.stdout.readline() if follow.stdout else ""
        event_id = first.split()[1]
        assert swarm_cli(swarm_home, "down").returncode == 0
        _, err = follow.communicate(timeout=60)
    finally:
        follow.kill()
    assert follow.returncode == 1, err
    message = err.strip()
    assert message.count("\n") == 0 and message.startswith("error: "), message
    assert "the embedded server is not running" in message
    assert f"'swarm --home {swarm_home} up'" in message  # (not the default home: named)
    assert "check that the server runs" not in message
    resume = f"'swarm events --follow --since {event_id} --type task.posted' resumes there"
    assert f"the last event printed was {event_id}" in message and resume in message


def test_a_home_with_a_space_is_known_by_its_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's process title holds its socket's path whole, spaces too: a home with a
    space is still told running (it was not: a command whose socket check failed started a
    second server on the same data)."""
    monkeypatch.setattr(redis_swarm._embedded, "STALL_WAIT", SHORT_STALL)
    home = Path(os.path.realpath(tmp_path)) / "s p"
    server = EmbeddedServer(home)
    try:
        server.ensure_running()
        pid = server.pid()
        assert pid is not None and _alive(pid)
        server.socket_path.unlink()  # the socket gone, the process alive: not a stale server
        with pytest.raises(EmbeddedServerError, match="socket"):
            server.ensure_running()
        assert server.pid() == pid  # no second server beside it
    finally:
        server.stop()


def test_a_socket_path_too_long_is_said_at_once(tmp_path: Path) -> None:
    """A home whose socket path is past the unix limit fails at once, saying why and what
    to do (it waited STALL_WAIT, then blamed something holding the socket)."""
    home = Path(os.path.realpath(tmp_path)) / ("x" * 120)
    start = time.monotonic()
    with pytest.raises(EmbeddedServerError, match="107 bytes"):
        EmbeddedServer(home).ensure_running()
    assert time.monotonic() - start < STALL_WAIT / 2
