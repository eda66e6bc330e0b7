"""Resumable A2A streams (``a2a_server/_resume.py``), read by a raw SSE client (httpx) from a
real ``swarm a2a``: every update carries an SSE ``id:``; a stream that breaks is resumed with
``SubscribeToTask`` and ``Last-Event-ID``, over either binding, and every update is seen
exactly once, even when the break falls between the finding's artifact and the final status."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from redis_swarm import Swarm
from redis_swarm.a2a_server._resume import Position, before

from ._a2a import QUEUE, A2AServer, work_one

# An SSE event: its id, and its update (a task, a status or an artifact update).
Frame = tuple[str | None, str, dict[str, Any]]


def _told(frame: Frame) -> tuple[str, str]:
    """What one update tells: its kind and state (or the artifact's text)."""
    _id, kind, payload = frame
    if kind == "artifactUpdate":
        return kind, payload["artifact"]["parts"][0]["text"]
    return kind, payload["status"]["state"]


@contextlib.contextmanager
def _stream(
    a2a: A2AServer, method: str, path: str, last_id: str | None = None, **kw: Any
) -> Iterator[Iterator[Frame]]:
    """The SSE events of one request as (id, what it tells); leaving the block drops the
    connection, whatever was not read yet."""
    headers = {**a2a.headers, "A2A-Version": "1.0", "Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    with httpx.stream(method, a2a.url + path, headers=headers, timeout=10, **kw) as response:
        assert response.status_code == 200, response.read()

        def frames() -> Iterator[Frame]:
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                if "data" in fields:
                    data = json.loads(fields["data"])
                    # JSON-RPC wraps the update in its result; HTTP+JSON does not.
                    [(kind, payload)] = data.get("result", data).items()
                    yield fields.get("id"), kind, payload
                fields = {}

        yield frames()


def _rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


def test_a_broken_stream_resumes_with_every_update_once(a2a: A2AServer, a2a_worker: Swarm) -> None:
    message = {
        "messageId": str(uuid.uuid4()),
        "role": "ROLE_USER",
        "parts": [{"text": "resume me"}],
    }
    seen: list[Frame] = []
    # 1. JSON-RPC SendStreamingMessage: the task arrives, then the connection drops.
    with _stream(a2a, "POST", "/", json=_rpc("SendStreamingMessage", {"message": message})) as s:
        seen.append(next(s))
    task_id = seen[0][2]["id"]
    # 2. While nobody listens, a worker takes the task and reports.
    assert work_one(a2a_worker, QUEUE, "resumed") == task_id
    # 3. HTTP+JSON: resumed after the task; it drops after the artifact, before the status.
    with _stream(a2a, "GET", f"/tasks/{task_id}:subscribe", seen[-1][0]) as s:
        seen += [next(s), next(s)]
    # 4. JSON-RPC SubscribeToTask resumed after the artifact: the final status, then the end.
    with _stream(a2a, "POST", "/", seen[-1][0], json=_rpc("SubscribeToTask", {"id": task_id})) as s:
        seen += list(s)

    assert [_told(frame) for frame in seen] == [
        ("task", "TASK_STATE_SUBMITTED"),
        ("statusUpdate", "TASK_STATE_WORKING"),
        ("artifactUpdate", "resumed"),
        ("statusUpdate", "TASK_STATE_COMPLETED"),
    ]
    ids = [frame[0] for frame in seen]
    assert all(ids) and len(set(ids)) == len(ids)
    # Resumed after the final status: nothing is left to send.
    body = _rpc("SubscribeToTask", {"id": task_id})
    headers = {**a2a.headers, "A2A-Version": "1.0", "Last-Event-ID": str(ids[-1])}
    answer = httpx.post(a2a.url + "/", json=body, headers=headers).text
    assert "nothing to subscribe to" in answer


@pytest.mark.parametrize(
    "text", ["", "nonsense", "1-0.0", "1-0.x.4", "1-0.0.99", "a-0.0.1", "1-0.0.1.2"]
)
def test_a_last_event_id_not_ours_is_ignored(text: str) -> None:
    assert Position.parse(text) is None


def test_positions_read_back_and_step_back() -> None:
    at = Position("1700000000000-3", 1, 3)
    assert Position.parse(str(at)) == at
    assert before("1700000000000-3") == "1700000000000-2"
    assert before("1700000000000-0") == "1699999999999-18446744073709551615"
    assert before("0-0") == "0-0"
