"""The JSON every face prints or returns (the CLI's --json, MCP tool results, the dashboard's
/api answers, A2A's JSON-RPC answers, a hook's answer) writes the characters a terminal acts
on (C1 controls: U+009B is an 8-bit CSI) or that reorder what a reader sees (the bidi
overrides and isolates) as ``\\uXXXX``, as the CLI's human output shows them escaped
(``printable``): they were written raw (``ensure_ascii=False`` escapes only C0 controls), so
an operator piping --json to a terminal, or an MCP client showing a result, got them as a
worker wrote them. The decoded value is the text as stored; other non-ASCII text (é, 漢字,
emoji) stays as it is; and what is stored is unchanged."""

from __future__ import annotations

import json
import uuid
from typing import Any

import anyio
import httpx
from starlette.testclient import TestClient

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._codec import dumps
from redis_swarm._hooks.formats import Answer, render
from redis_swarm.dashboard.app import create_app
from redis_swarm.mcp_server import build_server

from ._a2a import QUEUE, A2AServer
from ._cli import Cli
from .mcp_server._helpers import connect, texts

UNSAFE = ("\x9b", "\u202e", "\u2066", "\x85")
ESCAPES = ("\\u009b", "\\u202e", "\\u2066", "\\u0085")
READABLE = ("é", "漢字", "🦀")
DESCRIPTION = "fix \x9b31m the \u202eparser\u202c and \u2066isolate\u2069: café 漢字 🦀 \x85 next"
DATA = {"note": "over\u202eride é", "items": ["\x9b2J 漢字", "🦀\u2067"]}


def _safe(raw: str) -> None:
    """``raw`` (JSON as a face wrote it) holds none of the unsafe characters raw, their
    escapes instead, and the readable non-ASCII text as it is."""
    for char in UNSAFE:
        assert char not in raw, (char, raw[:500])
    for escape in ESCAPES:
        assert escape in raw, (escape, raw[:500])
    for text in READABLE:
        assert text in raw, (text, raw[:500])


def _post(swarm: Swarm, queue: str = "q.scan") -> str:
    return swarm.post_task(queue, DESCRIPTION, data=DATA).id


def test_cli_json_escapes_what_a_terminal_acts_on(cli: Cli, redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        task_id = _post(swarm)
        stored = swarm.get_task(task_id)
    assert stored.description == DESCRIPTION and stored.data == DATA  # stored as given
    listed = cli("task", "list", "--all", "--json").stdout
    _safe(listed)
    (one,) = [t for t in json.loads(listed)["items"] if t["id"] == task_id]
    assert one["description"] == DESCRIPTION
    shown = cli("task", "show", task_id, "--json").stdout
    _safe(shown)
    assert json.loads(shown)["description"] == DESCRIPTION
    assert json.loads(shown)["data"] == DATA


def test_an_mcp_tool_result_escapes_what_a_terminal_acts_on(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as core:
        _post(core, "work")

        async def body() -> str:
            async with connect(build_server(core, role="all", name="w")) as agent:
                result = await agent.raw("claim_task", queue="work")
                assert not result.is_error, texts(result)
                return texts(result)[0]

        raw = anyio.run(body)
    _safe(raw)
    task = json.loads(raw)["task"]
    assert task["description"] == DESCRIPTION and task["data"] == DATA


def test_the_dashboard_api_escapes_what_a_terminal_acts_on(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        task_id = _post(swarm)
    app = create_app(AsyncSwarm(redis_url, swarm="test"), close_swarm=True)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        answer = client.get("/api/tasks", params={"data": "1"})
        assert answer.status_code == 200, answer.text
        _safe(answer.content.decode())
        (one,) = [t for t in answer.json()["items"] if t["id"] == task_id]
        assert one["description"] == DESCRIPTION and one["data"] == DATA


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def test_an_a2a_answer_escapes_what_a_terminal_acts_on(a2a: A2AServer) -> None:
    message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER",
               "contextId": f"ctx-{uuid.uuid4().hex[:12]}", "parts": [{"text": DESCRIPTION}],
               "metadata": {"skill": QUEUE}}  # fmt: skip
    params = {"message": message, "configuration": {"returnImmediately": True}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params}
    headers = {**a2a.headers, "A2A-Version": "1.0"}
    answer = httpx.post(a2a.url + "/", json=body, headers=headers, timeout=20)
    assert answer.status_code == 200, answer.text
    task_id = answer.json()["result"]["task"]["id"]
    got = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}}
    read = httpx.post(a2a.url + "/", json=got, headers=headers, timeout=20)
    for raw in (answer.content.decode(), read.content.decode()):
        for char in UNSAFE:
            assert char not in raw, (char, raw[:500])
        assert "\\u009b" in raw and "漢字" in raw, raw[:500]
    assert any(DESCRIPTION in s for s in _strings(read.json())), read.text[:500]


def test_a_hook_answer_escapes_what_a_terminal_acts_on() -> None:
    said = render(Answer(context=DESCRIPTION, message=DESCRIPTION), "SessionStart", "claude")
    _safe(said)
    out = json.loads(said)
    assert out["systemMessage"] == DESCRIPTION
    assert out["hookSpecificOutput"]["additionalContext"] == DESCRIPTION


def test_what_is_stored_is_written_as_before() -> None:
    """``dumps``, the storage encoder, writes the characters raw: stored bytes, hashes and
    sizes are what they were."""
    assert dumps({"d": DESCRIPTION}) == json.dumps(
        {"d": DESCRIPTION}, ensure_ascii=False, separators=(",", ":")
    )


def test_the_events_and_watch_json_escape_what_a_terminal_acts_on(cli: Cli, redis_url: str) -> None:
    """``swarm events --json`` (a failure's error is in its event) and ``swarm watch
    --once --json`` (the snapshot: the task's description in its dead letters) print JSON
    lines of their own, not through the CLI's one emit."""
    with Swarm(redis_url, swarm="test") as swarm:
        task_id = swarm.post_task("q.events", "to fail", max_attempts=1).id
        claimed = swarm.claim("q.events", worker="w")
        assert claimed is not None and claimed.token is not None
        swarm.fail(task_id, claimed.token, DESCRIPTION)
    events = cli("events", "--json").stdout
    _safe(events)
    failed = [json.loads(line) for line in events.splitlines() if task_id in line]
    assert any(DESCRIPTION in json.dumps(e, ensure_ascii=False) for e in failed), failed
    watched = cli("watch", "--once", "--json").stdout
    _safe(watched)
    assert DESCRIPTION in json.dumps(json.loads(watched), ensure_ascii=False)
