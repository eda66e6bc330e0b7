"""``swarm mcp --channel`` marks read what it showed the session: a message whose whole text
(and data) a notice carried, once the session has received that notice (it answers the ping
sent after it), so that the session's hooks (one agent id, ``SWARM_AGENT``) do not show it a
second time. A notice that counts messages, cuts one or asks for a synthesis marks nothing;
nor does one the session did not confirm; and the read cursor never passes a message that
was not shown whole."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

import anyio

from redis_swarm import Settings, Swarm
from redis_swarm._hooks import HookOptions, handle
from redis_swarm.mcp_server._channel import BODY_CHARS, METHOD

from ._helpers import SRC, eventually
from .test_channel import Heard, _client, _next, _params, _registered

NAME = "frank"


def _stop(redis_url: str, home: Path, agent: str) -> str:
    """What the session's Stop hook (SWARM_AGENT=agent) refuses the stop with ('' if it lets
    the session stop)."""
    with Swarm(Settings.from_url(redis_url, swarm="test", home=home)) as swarm:
        return handle(swarm, "Stop", {"session_id": "s1"}, HookOptions(agent=agent)).block


def test_a_message_pushed_whole_is_read_and_stop_does_not_show_it_again(
    core: Swarm, redis_url: str, swarm_home: Path
) -> None:
    core.register("coordinator", name="lead")
    heard = Heard()

    async def body() -> None:
        async with _client(redis_url, "legacy", heard, NAME):
            await _registered(core, NAME)
            t = time.monotonic()
            sent = core.send(NAME, "please look at X", sender="lead", data={"file": "x.py"})
            event = await _next(heard, 1, t)
            assert "please look at X" in event.content and '"file":"x.py"' in event.content
            assert "marked read" in event.content, event.content
            await eventually(lambda: core.message_status(sent.id).read)
            assert list(core.inbox(NAME, ack=False)) == []
            block = await anyio.to_thread.run_sync(_stop, redis_url, swarm_home, NAME)
            assert block == "", block

            t = time.monotonic()
            cast = core.broadcast("freeze at noon", sender="lead")
            event = await _next(heard, 2, t)
            assert "freeze at noon" in event.content
            await eventually(lambda: NAME in core.message_status(cast.id).read_by)
            assert list(core.inbox(NAME, ack=False)) == []

    anyio.run(body)


def test_only_what_notices_showed_whole_is_read(core: Swarm, redis_url: str) -> None:
    """Counted, cut and synthesis-request notices mark nothing; a message shown whole after
    unread ones it cannot be read past stays unread until they are read, then is read with
    the next one. (Each notice for the watched queue ``work`` comes after the watcher has
    done with the notices before it: what is unread then stays so.)"""
    core.register("coordinator", name="lead")
    name = "frank-2"

    async def told_of_a_task(heard: Heard, count: int) -> None:
        t = time.monotonic()
        core.post_task("work", f"sync {count}")
        event = await _next(heard, count, t)
        assert event.meta["kind"] == "task", event

    def unread() -> list[str]:
        return [m.id for m in core.inbox(name, ack=False)]

    async def body() -> None:
        async with _client(redis_url, "legacy", Heard(), name):
            await _registered(core, name)
        away = [core.send(name, f"while away {n}", sender="lead") for n in range(2)]
        heard = Heard()
        async with _client(redis_url, "legacy", heard, name):
            counted = await _next(heard, 1, time.monotonic())
            assert counted.meta == {"kind": "message", "count": "2"}

            t = time.monotonic()
            after = core.send(name, "shown whole, after two unread", sender="lead")
            event = await _next(heard, 2, t)
            assert "shown whole, after two unread" in event.content
            assert "marked read" not in event.content, event.content
            await told_of_a_task(heard, 3)
            assert unread() == [away[0].id, away[1].id, after.id]

            core.inbox(name, limit=2)  # the session reads the two counted ones
            t = time.monotonic()
            nxt = core.send(name, "and the next one", sender="lead")
            await _next(heard, 4, t)
            await eventually(lambda: unread() == [])  # through the one shown before too
            assert core.message_status(after.id).read and core.message_status(nxt.id).read

            t = time.monotonic()
            long = core.send(name, "y" * (BODY_CHARS + 1), sender="lead")
            event = await _next(heard, 5, t)
            assert "clipped" in event.content
            await told_of_a_task(heard, 6)
            asked = core.request_synthesis(name, "P1", "cite everything", sender="lead")
            event = await _next(heard, 7, time.monotonic())
            assert event.meta["kind"] == "synthesis_request"
            await told_of_a_task(heard, 8)
            assert unread() == [long.id, asked.id]

    anyio.run(body)


class _Lines:
    """The server's JSON-RPC messages, read on a thread as they come."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, args=(out,), daemon=True)
        self.reader.start()

    def close(self) -> None:
        """Once the server has exited: its output ended, the reader done."""
        self.reader.join(10)
        self.out.close()

    def _read(self, out: IO[str]) -> None:
        for line in out:
            self.lines.put(line)
        self.lines.put("")

    def next(self, wanted: str | None = None) -> dict[str, Any]:
        """The next message (whose method is ``wanted``, when given)."""
        while True:
            try:
                line = self.lines.get(timeout=15)
            except queue.Empty:
                raise AssertionError(f"no {wanted or 'reply'} from the server") from None
            assert line, f"the server closed its output before {wanted or 'its reply'}"
            message: dict[str, Any] = json.loads(line)
            if wanted is None or message.get("method") == wanted:
                return message


def _session(core: Swarm, stdin: IO[str], lines: _Lines) -> list[str]:
    """A session that confirms the first message pushed, refuses the second's ping and goes
    away before answering the third's; returns the ids of those two."""

    def write(message: dict[str, Any]) -> None:
        stdin.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
        stdin.flush()

    info = {"name": "claude-code", "version": "2.1.80"}
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": info}
    write({"id": 1, "method": "initialize", "params": init})
    assert "result" in lines.next()
    write({"method": "notifications/initialized"})
    anyio.run(_registered, core, NAME)

    def pushed(text: str) -> dict[str, Any]:
        sent = core.send(NAME, text, sender="lead")
        notice = lines.next(METHOD)
        assert text in notice["params"]["content"]
        ping = lines.next("ping")
        return {"sent": sent, "ping": ping["id"]}

    confirmed = pushed("confirmed")
    write({"id": confirmed["ping"], "result": {}})
    anyio.run(eventually, lambda: core.message_status(confirmed["sent"].id).read)

    refused = pushed("refused")
    write({"id": refused["ping"], "error": {"code": -32603, "message": "not now"}})
    core.post_task("work", "after the refusal")  # its notice: the watcher is past it
    lines.next(METHOD)
    assert not core.message_status(refused["sent"].id).read

    unanswered = pushed("never answered")
    stdin.close()  # the session goes away with the ping unanswered
    return [refused["sent"].id, unanswered["sent"].id]


def test_a_push_the_session_did_not_confirm_stays_unread(
    core: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """Over stdio, by hand: the server pings after a notice showing a message whole; answered,
    the message is read; answered with an error, or never (the session closed), it stays
    unread for read_inbox and the hooks to show."""
    core.register("coordinator", name="lead")
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    params = _params(redis_url, "--watch-queue", "work", name=NAME)
    with open(tmp_path / "stderr.log", "w") as errlog:
        proc = subprocess.Popen(
            [params.command, *params.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=errlog, text=True, env=env,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        stdin, lines = proc.stdin, _Lines(proc.stdout)
        try:
            left = _session(core, stdin, lines)
        finally:  # (its output is the reader thread's: closing stdin ends the server)
            if not stdin.closed:
                stdin.close()
            try:
                code = proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            finally:
                lines.close()
        assert code == 0
    assert [m.id for m in core.inbox(NAME, ack=False)] == left
