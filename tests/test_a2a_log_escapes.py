"""``swarm a2a``'s log writes no terminal escape a client sent: the SDK logs a client's
A2A-Version header ("Version mismatch: actual='...'") and its JSON-RPC request id ("Request
Error (ID: ...)") as they came, and the log goes to the operator's terminal, which obeys an
OSC 52 clipboard write, a screen clear, a window title. Every line of the SDK's loggers and
of the server's own is written with each control character shown as an escape
(``_printable.printable``). A real ``swarm a2a`` process (its stderr as the operator sees
it), and the app in process with the filters ``swarm a2a`` installs (caplog)."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from redis_swarm import AsyncSwarm
from redis_swarm.a2a_server import create_app
from redis_swarm.a2a_server._logs import one_line_client_errors

from ._a2a import QUEUE, SWARM, TOKEN, start_a2a, stop
from ._servers import RedisServer

CLEAR = "0.3\x1b[2J"  # a version, then a screen clear
CLIPBOARD = "\x1b]52;c;QUFB\x07x"  # an OSC 52 clipboard write, BEL-terminated
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _raw_controls(text: str) -> list[str]:
    """Every C0 (but newline and tab) and C1 control character, and DEL, in ``text``."""
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]


def _hostile(url: str) -> list[httpx.Response]:
    """The requests that put a client's escapes in the SDK's log lines."""
    task = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "t-1"}}
    unknown = {"jsonrpc": "2.0", "id": CLIPBOARD, "method": "NoSuchMethod", "params": {}}
    with httpx.Client(base_url=url, timeout=10) as client:
        return [
            client.post("/", json=task, headers={**AUTH, "A2A-Version": CLEAR}),
            client.get("/tasks/t-1", headers={**AUTH, "A2A-Version": CLEAR}),
            client.post("/", json=unknown, headers={**AUTH, "A2A-Version": "1.0"}),
        ]


def test_the_servers_log_shows_a_clients_escapes_escaped(a2a_redis: RedisServer) -> None:
    server = start_a2a(a2a_redis.url, SWARM, TOKEN, "--queue", QUEUE)
    try:
        answers = _hostile(server.url)
    finally:
        log = stop(server)
    assert all(answer.status_code < 500 for answer in answers), answers
    assert "Version mismatch" in log and "Request Error" in log, log
    assert not _raw_controls(log), (_raw_controls(log), log)
    assert "actual='0.3\\x1b[2J'" in log, log
    assert "(ID: \\x1b]52;c;QUFB\\x07x)" in log, log


def test_the_apps_log_records_hold_no_control_character(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The app in process: every record of the SDK's loggers and of the server's own, as
    any handler gets it (its message made whole, its traceback), holds none."""
    one_line_client_errors()

    async def run() -> list[httpx.Response]:
        async with AsyncSwarm(redis_server.url, swarm=SWARM) as swarm:
            app = create_app(swarm, queues=[QUEUE], base_url="http://127.0.0.1:1/", push=False)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                task = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "t"}}
                unknown = {"jsonrpc": "2.0", "id": CLIPBOARD, "method": "Nope", "params": {}}
                return [
                    await c.post("/", json=task, headers={"A2A-Version": CLEAR}),
                    await c.get("/tasks/t", headers={"A2A-Version": CLEAR}),
                    await c.post("/", json=unknown, headers={"A2A-Version": "1.0"}),
                    await c.post("/", content=b"{\x1b[2J", headers={"A2A-Version": "1.0"}),
                ]

    with caplog.at_level(logging.DEBUG):
        asyncio.run(run())
    records = [r for r in caplog.records if r.name.startswith(("a2a", "redis_swarm.a2a"))]
    lines = [logging.Formatter().format(r) for r in records]
    said = "\n".join(lines)
    assert "Version mismatch" in said and "Request Error" in said, said
    assert not _raw_controls(said), (_raw_controls(said), said)
    assert "\\x1b]52;c;QUFB\\x07x" in said, said
