"""``swarm watch`` following a swarm whose Redis goes away for a while (a restart): it says so
once, tries again, says when Redis is back and goes on from there, an event after the
restart shown once; Ctrl-C still ends it at once, and ``--once`` still fails at once. (It
exited with "cannot reach Redis" once the client's own retries, about 5 s, gave up, where
the dashboard's page reconnects.) Real servers, stopped and restarted on their port."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

from redis_swarm import Swarm

from ._servers import RedisServer, ServerFactory

SWARM = "test"
# Generous bounds, never a measure: the outage is noticed once the client's retries give up
# (about 5 s), the server back within the watch's wait between tries (at most 8 s) plus one
# try.
NOTICED_S = 30.0
SHOWN_S = 15.0
# How long an event shown is watched for a second showing (the watch re-reads an idle swarm
# every second: several re-reads, none of which may print it again).
SETTLE_S = 3.0
UNREACHABLE = "Redis unreachable since"
RECONNECTED = "reconnected to Redis at"


@pytest.fixture
def server(servers: ServerFactory) -> RedisServer:
    """A server of this test's own (it is stopped and restarted), its data kept across a
    restart (an append-only file)."""
    return servers.start(appendonly=True)


def _swarm(*args: str, url: str) -> list[str]:
    return [sys.executable, "-m", "redis_swarm", "--url", url, "--swarm", SWARM, *args]


class _Watch:
    """``swarm watch --interval 1`` with stdout and stderr pipes, each read line by line on a
    thread (a pipe: plain snapshots, or JSON lines with --json)."""

    def __init__(self, url: str, *, json_lines: bool = False) -> None:
        head = ["--json"] if json_lines else []
        drop = ("PYTHONUNBUFFERED", "FORCE_COLOR")
        self.proc = subprocess.Popen(
            _swarm(*head, "watch", "--interval", "1", url=url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if k not in drop},
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.printed: list[str] = []
        self.said: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.readers = [
            threading.Thread(target=_read, args=(self.proc.stdout, self.out, self.printed)),
            threading.Thread(target=_read, args=(self.proc.stderr, self.err, self.said)),
        ]
        for reader in self.readers:
            reader.daemon = True
            reader.start()

    def line(self, lines: queue.Queue[str], within_s: float, what: str) -> str:
        try:
            return lines.get(timeout=within_s)
        except queue.Empty:
            pytest.fail(
                f"{what}: nothing within {within_s:g} s (running: {self.proc.poll() is None}); "
                f"stderr: {''.join(self.said)[-2000:]}"
            )

    def said_line(self, starting: str, within_s: float) -> str:
        """The next stderr line, which must start with ``starting``."""
        line = self.line(self.err, within_s, f"waiting for {starting!r}")
        assert line.startswith(starting), (line, self.said)
        return line

    def snapshot(self, within_s: float = SHOWN_S) -> str:
        """The lines through the next plain snapshot's last section (a swarm with no
        context: its "no context yet" line)."""
        got: list[str] = []
        while not got or "no context yet" not in got[-1]:
            got.append(self.line(self.out, within_s, f"a whole snapshot ({got})"))
        return "".join(got)

    def stop(self) -> int:
        """Ctrl-C it; its exit code (that of its own exit, if it had exited). One still
        running 10 s later is killed and fails the test."""
        if self.proc.poll() is not None:
            self.close()
            return self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"swarm watch did not exit within 10 s of SIGINT: {self.said}")
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for reader in self.readers:
            reader.join(10)


def _read(stream: Any, lines: queue.Queue[str], kept: list[str]) -> None:
    for line in stream:
        kept.append(line)
        lines.put(line)
    stream.close()


def _post_after_restart(server: RedisServer) -> None:
    with Swarm(server.url, swarm=SWARM) as swarm:
        swarm.post_task("q.after", "posted once the server is back")


def test_watch_into_a_pipe_rides_out_a_restart(server: RedisServer) -> None:
    """Into a pipe: the snapshots on stdout; one line on stderr when Redis is lost (when it
    last answered, that it retries, the error) and one when it is back; the server's state
    printed again then, and an event posted after the restart printed once. Meanwhile
    ``--once`` on the stopped server fails at once, as before."""
    watch = _Watch(server.url)
    try:
        assert "no queue with tasks" in watch.snapshot()
        server.stop()
        lost = watch.said_line(UNREACHABLE, NOTICED_S)
        assert ", retrying (last error: cannot reach Redis at " in lost, lost
        once = subprocess.run(
            _swarm("watch", "--once", url=server.url), capture_output=True, text=True, timeout=60
        )
        assert once.returncode == 1, once
        assert once.stderr.startswith("error: cannot reach Redis at "), once.stderr
        assert UNREACHABLE not in once.stderr and not once.stdout
        server.restart()
        back = watch.said_line(RECONNECTED, NOTICED_S)
        assert "(unreachable since " in back, back
        assert "no queue with tasks" in watch.snapshot()  # the swarm as read again, once back
        _post_after_restart(server)
        assert "q.after" in watch.snapshot()
        with pytest.raises(queue.Empty):  # nothing more: the event is not shown again
            watch.out.get(timeout=SETTLE_S)
    finally:
        code = watch.stop()
    assert code == 0
    snapshots = "".join(watch.printed).split(f"redis-swarm {SWARM}")
    assert sum("q.after" in s for s in snapshots) == 1, watch.printed
    assert len(watch.said) == 2, watch.said  # one line each, however long it lasted


def test_watch_json_rides_out_a_restart(server: RedisServer) -> None:
    """--json: every stdout line stays a snapshot; the outage and the reconnection are JSON
    lines on stderr (as the CLI's error lines are with --json); an event posted after the
    restart is in one snapshot line only."""
    watch = _Watch(server.url, json_lines=True)
    try:
        assert json.loads(watch.line(watch.out, SHOWN_S, "the first snapshot"))["queues"] == {}
        server.stop()
        lost = json.loads(watch.line(watch.err, NOTICED_S, "the outage"))
        assert lost["error"] == "ConnectionFailed" and lost["retrying"] is True, lost
        assert lost["message"].startswith("cannot reach Redis at "), lost
        assert isinstance(lost["unreachable_since"], int)
        server.restart()
        back = json.loads(watch.line(watch.err, NOTICED_S, "the reconnection"))
        assert back["reconnected"] is True, back
        assert back["unreachable_since"] == lost["unreachable_since"] <= back["at"], back
        assert json.loads(watch.line(watch.out, SHOWN_S, "the snapshot once back"))
        _post_after_restart(server)
        shown = json.loads(watch.line(watch.out, SHOWN_S, "the event after the restart"))
        assert shown["queues"]["q.after"]["pending"] == 1, shown
        with pytest.raises(queue.Empty):  # nothing more: the event is not shown again
            watch.out.get(timeout=SETTLE_S)
    finally:
        code = watch.stop()
    assert code == 0
    snapshots = [json.loads(line) for line in watch.printed]
    assert all(s["swarm"] == SWARM for s in snapshots), watch.printed
    assert sum("q.after" in s["queues"] for s in snapshots) == 1, watch.printed
    assert len(watch.said) == 2, watch.said


def test_ctrl_c_ends_a_watch_waiting_for_redis(server: RedisServer) -> None:
    """Ctrl-C while it waits for Redis to come back ends it, exit code 0, printing nothing
    more (no error: it was stopped, not failed)."""
    watch = _Watch(server.url)
    try:
        watch.snapshot()
        server.stop()
        watch.said_line(UNREACHABLE, NOTICED_S)
    finally:
        code = watch.stop()
    assert code == 0
    assert len(watch.said) == 1, watch.said
