"""What the MCP face still got wrong after the fifth walkthrough.

1. a search_context cursor paged on under another regex, ignore_case or around than the
   search that made it (counted hits of one matching, shown under another);
2. a tool call in flight when the HTTP server stopped saw its SSE stream just end, with no
   word of what became of it;
3. a client of a server with a fixed --name that opened a new session after its old one's
   client was gone (a restart: no session id to resume) was refused for 5 minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx

from redis_swarm import Swarm
from redis_swarm.mcp_server import build_server

from .._servers import free_port
from ._helpers import HTTP_ACCEPT, HTTP_INIT, SRC, connect, http_server


def test_a_search_cursor_refuses_another_regex_case_or_around(core: Swarm) -> None:
    core.publish_context("ctx", "".join(f"Needle {n}\n" for n in range(40)), source="t")

    async def body() -> None:
        server = build_server(core, role="worker")
        async with connect(server) as worker:
            head, _ = await worker(
                "search_context", owner="ctx", pattern="needle", ignore_case=True, max_hits=5
            )
            cursor = head["next_cursor"]
            for argument, value, paged in (
                ("ignore_case", False, "ignore_case=true"),
                ("regex", True, "regex=false"),
                ("around", 0, "around=2"),
            ):
                said = await worker.error("search_context", cursor=cursor, **{argument: value})
                assert f"this cursor pages search_context with {paged}" in said, said
                assert f"leave {argument} out to go on" in said
            # The cursor's own values, given or left out, go on.
            head, hits = await worker(
                "search_context", cursor=cursor, ignore_case=True, around=2, regex=False, max_hits=5
            )
            assert head["hits"] == [6, 10] and hits is not None and "Needle 5" in hits
            head, _ = await worker("search_context", cursor=cursor, max_hits=5)
            assert head["hits"] == [6, 10]

    anyio.run(body)


def test_a_call_in_flight_when_the_http_server_stops_gets_an_error(
    core: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """SIGTERM while a claim_task waits: its SSE stream's last event is a JSON-RPC error
    for its id saying the server stopped and what to do, not a stream that just ends."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--role", "worker"]
    argv += ["--transport", "http", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/mcp"
    with open(tmp_path / "server.log", "w+") as log, http_server(argv, env, log, url) as proc:
        session = _open_session(url)
        call = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "claim_task", "arguments": {"queue": "empty", "wait_s": 50}},
        }
        with httpx.stream("POST", url, json=call, headers=session, timeout=30) as waiting:
            assert waiting.headers["content-type"].startswith("text/event-stream")
            # (the claim waits on the server: registered, its agent's session open)
            _until(lambda: len(core.agents()) == 1)
            proc.send_signal(signal.SIGTERM)
            sent = [
                json.loads(line[5:]) for line in waiting.iter_lines() if line.startswith("data:")
            ]
        assert proc.wait(20) in (0, -signal.SIGTERM)
    answers = [m for m in sent if m.get("id") == 7]
    assert len(answers) == 1, sent
    error = answers[0]["error"]
    assert "the MCP server stopped before this call finished" in error["message"], error
    assert "call again once the server is back" in error["message"]


def _until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _open_session(url: str) -> dict[str, str]:
    """A handshake-era session over HTTP, initialized: the headers of its requests."""
    opened = httpx.post(url, json=HTTP_INIT, headers=HTTP_ACCEPT, timeout=10)
    assert opened.status_code == 200, opened.text
    session = {
        **HTTP_ACCEPT,
        "mcp-session-id": opened.headers["mcp-session-id"],
        "mcp-protocol-version": HTTP_INIT["params"]["protocolVersion"],  # type: ignore[index]
    }
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert httpx.post(url, json=initialized, headers=session, timeout=10).is_success
    return session


def _call(url: str, session: dict[str, str], tool: str) -> dict[str, Any]:
    """The JSON-RPC reply to a tools/call (its SSE stream's message for the id)."""
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool}}
    reply = httpx.post(url, json=call, headers=session, timeout=10)
    assert reply.status_code == 200, reply.text
    sent = [json.loads(line[5:]) for line in reply.text.splitlines() if line.startswith("data:")]
    (answer,) = [m for m in sent if m.get("id") == 2]
    assert isinstance(answer, dict)
    return answer


def test_a_fixed_name_passes_to_a_new_session_once_the_old_client_is_gone(
    core: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """The old session's client kept its event stream open: while it does, a new session
    under the --name is refused; once it closed (the client gone), the new one takes it."""
    with _named_server(redis_url, tmp_path) as url:
        old = _open_session(url)
        assert "result" in _call(url, old, "read_inbox")
        with httpx.stream("GET", url, headers=old, timeout=30) as listening:
            assert listening.status_code == 200
            new = _open_session(url)
            refused = _call(url, new, "read_inbox")["result"]
            assert refused["isError"] and "held by another open session" in str(refused)
            assert "event stream has closed" in str(refused)
        # The old client is gone (its stream closed): the new session takes the id.
        deadline = time.monotonic() + 10
        while (reply := _call(url, new, "read_inbox")["result"]).get("isError"):
            assert time.monotonic() < deadline, reply
            time.sleep(0.1)
        gone = httpx.post(url, json=HTTP_INIT | {"id": 3}, headers=old, timeout=10)
        assert gone.status_code == 404
        assert [a.id for a in core.agents()] == ["w-1"]


def test_a_client_that_calls_after_its_stream_closed_keeps_its_fixed_name(
    core: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """A client that closed its event stream, then called again, is at work: a new session
    under the --name is refused (the close alone once let any later session take the id
    from it at once, for good)."""
    with _named_server(redis_url, tmp_path) as url:
        old = _open_session(url)
        with httpx.stream("GET", url, headers=old, timeout=30) as listening:
            assert listening.status_code == 200
        time.sleep(0.3)  # (the server sees the stream close)
        assert "result" in _call(url, old, "read_inbox")  # still at work
        new = _open_session(url)
        refused = _call(url, new, "read_inbox")["result"]
        assert refused["isError"] and "held by another open session" in str(refused), refused
        assert "result" in _call(url, old, "read_inbox")  # the old client keeps its id


@contextlib.contextmanager
def _named_server(redis_url: str, tmp_path: Path) -> Iterator[str]:
    """``swarm mcp --role worker --name w-1`` over HTTP, started: its URL."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--role", "worker", "--name", "w-1"]
    argv += ["--transport", "http", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/mcp"
    with open(tmp_path / "server.log", "w+") as log, http_server(argv, env, log, url):
        yield url
