"""What a tour of ``swarm a2a`` found: a skill that is no string read as '', a request without
a message told its message had no text, a bad pageToken refused in the swarm's words, another
queue's task told apart from one that does not exist, tasks posted outside A2A with an empty
context id, and ListTasks writing its tasks otherwise than GetTask (whole numbers as floats,
empty fields printed)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

import httpx
import pytest
from starlette.types import Message

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm.a2a_server._wire import WireJson
from redis_swarm.a2a_server.app import create_app

from ._a2a import OTHER, QUEUE, SWARM, TOKEN, A2AServer, work_one
from ._servers import RedisServer
from ._sse import SSEClient


def _rpc(a2a: A2AServer, method: str, params: dict[str, Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    sent = {**a2a.headers, "A2A-Version": "1.0"}
    return httpx.post(a2a.url + "/", json=body, headers=sent, timeout=20).json()


def _message(text: str = "look it up") -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": text}]}


def _error(answer: Any) -> str:
    assert "error" in answer, answer
    message = answer["error"]["message"]
    assert isinstance(message, str)
    return message


# --- 4. SendMessage: a skill that is no string, a request without a message


@pytest.mark.parametrize(
    ("skill", "shown"),
    [(5, "skill 5 is a number"), (True, "skill true is a boolean"),
     ({"q": "research"}, 'skill {"q":"research"} is an object'), (None, "skill null is null"),
     ([QUEUE], 'skill ["research"] is an array')],
)  # fmt: skip
def test_a_skill_that_is_no_string_is_refused_by_its_value_and_type(
    a2a: A2AServer, skill: Any, shown: str
) -> None:
    """It was read as '' ("unknown skill ''"), in the message's metadata or the request's."""
    for where in ("message", "request"):
        message = _message()
        params: dict[str, Any] = {"message": message}
        (message if where == "message" else params)["metadata"] = {"skill": skill}
        said = _error(_rpc(a2a, "SendMessage", params))
        assert said.startswith(shown), said
        assert f"as a string, one of {QUEUE}, {OTHER}" in said and "''" not in said


def test_a_request_without_a_message_is_told_so(a2a: A2AServer) -> None:
    """It was told "the message has no text"."""
    said = _error(_rpc(a2a, "SendMessage", {}))
    assert "the request has no message" in said and "params.message" in said, said
    said = _error(_rpc(a2a, "SendMessage", {"message": {**_message(), "parts": []}}))
    assert "the message has no text" in said  # (a message there is, without text)


# --- 5. a pageToken ListTasks did not give


def test_a_bad_page_token_is_refused_in_a2a_words(a2a: A2AServer) -> None:
    """It was "cursor garbage does not belong to this listing: pass back the cursor ..."."""
    said = _error(_rpc(a2a, "ListTasks", {"pageToken": "garbage"}))
    # (and no word of the older token forms a swarm's own listings gave: test_a2a_walk7_fixes)
    assert said.startswith("pageToken 'garbage' is not one this server gave"), said
    assert "nextPageToken" in said and "leave pageToken out" in said
    assert "cursor" not in said
    said = _error(_rpc(a2a, "ListTasks", {"pageToken": "g" * 5000, "contextId": "c-1"}))
    assert len(said) < 400 and "pageToken 'ggg" in said, said


# --- 7. another queue's task is not found, as one that does not exist


def test_another_queues_task_is_answered_as_one_that_does_not_exist(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    """GetTask said "is not one of this agent's tasks" (so: it exists) where an unknown id
    got "does not exist"; docs/a2a.md says another queue's task is not found."""
    elsewhere = a2a_worker.post_task("elsewhere", "not exposed").id
    unknown = a2a_worker.new_task_id()  # (an id of the right shape that names no task)
    for method, params in (
        ("GetTask", {"id": "{}"}),
        ("CancelTask", {"id": "{}"}),
        ("SubscribeToTask", {"id": "{}"}),
        ("ListTaskPushNotificationConfigs", {"taskId": "{}"}),
    ):
        answers = [
            _rpc(a2a, method, json.loads(json.dumps(params).replace("{}", tid)))["error"]
            for tid in (elsewhere, unknown)
        ]
        first, second = (
            {**a, "message": a["message"].replace(tid, "ID")}
            for a, tid in zip(answers, (elsewhere, unknown), strict=True)
        )
        assert first == second, (method, answers)
        assert "does not exist" in first["message"]
    assert a2a_worker.get_task(elsewhere).status.value == "pending"  # not cancelled


# --- 6. a task posted outside A2A has a context id: its own id


def test_a_task_posted_outside_a2a_is_a_context_of_its_own(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    """Its contextId was "" (ListTasks wrote it; GetTask left it out; streams, where A2A
    requires one, sent none)."""
    task = a2a_worker.post_task(QUEUE, "posted by a shard", {"n": 1})
    got = _rpc(a2a, "GetTask", {"id": task.id})["result"]
    assert got["contextId"] == task.id
    assert got["history"][0]["contextId"] == task.id
    (listed,) = (t for t in _rpc(a2a, "ListTasks", {})["result"]["tasks"] if t["id"] == task.id)
    assert listed["contextId"] == task.id
    # An update of a stream, which A2A requires to name its context.
    body = {"jsonrpc": "2.0", "id": 1, "method": "SubscribeToTask", "params": {"id": task.id}}
    headers = {**a2a.headers, "A2A-Version": "1.0"}
    with httpx.stream("POST", a2a.url + "/", json=body, headers=headers, timeout=10) as response:
        lines = (line for line in response.iter_lines() if line.startswith("data:"))
        assert json.loads(next(lines)[5:])["result"]["task"]["contextId"] == task.id
        a2a_worker.cancel(task.id)
        update = json.loads(next(lines)[5:])["result"]["statusUpdate"]
        assert update["contextId"] == task.id
    # A message sent with a context id keeps it (its pass), as before.
    sent = _rpc(a2a, "SendMessage", {"message": {**_message(), "contextId": "ctx-a"},
                                     "configuration": {"returnImmediately": True}})  # fmt: skip
    assert sent["result"]["task"]["contextId"] == "ctx-a"


# --- 6. ListTasks writes its tasks as GetTask does, with whole numbers as integers


def _completed(a2a: A2AServer, worker: Swarm) -> str:
    sent = _rpc(a2a, "SendMessage", {"message": _message("count"),
                                     "configuration": {"returnImmediately": True}})  # fmt: skip
    task_id = sent["result"]["task"]["id"]
    while work_one(worker, QUEUE, "three") != task_id:  # (the module's others first)
        pass
    return str(task_id)


class _Subscription(SSEClient):
    """``GET /tasks/{id}:subscribe`` in process: the SDK's route reads the request's (empty)
    body first; sse-starlette ends its lines with CRLF."""

    _asked = False

    async def _receive(self) -> Message:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await super()._receive()

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": message.get("body", b"").replace(b"\r\n", b"\n")}
        await super()._send(message)


def _check_written_as_get_task(got: Any, listed: Any) -> None:
    assert listed == got, (listed, got)
    assert got["metadata"]["attempts"] == 1 and isinstance(got["metadata"]["attempts"], int)
    whole = got["artifacts"][0]["parts"][1]["data"]
    assert isinstance(whole["created_at"], int) and isinstance(whole["attempt"], int), whole
    for part in got["history"][0]["parts"]:
        assert "filename" not in part and "mediaType" not in part
    assert "extensions" not in got["history"][0]


def test_the_served_list_tasks_writes_tasks_as_get_task_does(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    """ListTasks wrote "filename": "", "mediaType": "", "extensions": [] that GetTask leaves
    out, and both wrote whole numbers as floats ("attempts": 1.0). (Needs ``WireJson`` among
    ``create_app``'s middleware.)"""
    task_id = _completed(a2a, a2a_worker)
    got = _rpc(a2a, "GetTask", {"id": task_id})["result"]
    page = _rpc(a2a, "ListTasks", {"includeArtifacts": True})["result"]
    (listed,) = (t for t in page["tasks"] if t["id"] == task_id)
    _check_written_as_get_task(got, listed)
    assert page["nextPageToken"] == "" and isinstance(page["totalSize"], int)
    rest = httpx.get(
        f"{a2a.url}/tasks", params={"includeArtifacts": "true"},
        headers={**a2a.headers, "A2A-Version": "1.0"}, timeout=20,
    ).json()  # fmt: skip
    (listed,) = (t for t in rest["tasks"] if t["id"] == task_id)
    _check_written_as_get_task(got, listed)


def test_wire_json_writes_the_apps_answers_and_events(
    a2a: A2AServer, a2a_redis: RedisServer, a2a_worker: Swarm
) -> None:
    """``WireJson`` over the real app, in process: JSON answers of both bindings, and the
    events of a stream."""
    task_id = _completed(a2a, a2a_worker)
    headers = {"Authorization": f"Bearer {TOKEN}", "A2A-Version": "1.0"}

    async def body() -> None:
        swarm = AsyncSwarm(a2a_redis.url, swarm=SWARM)
        app = WireJson(
            create_app(swarm, queues=[QUEUE, OTHER], base_url="http://127.0.0.1:1/",
                       token=TOKEN, push=False)
        )  # fmt: skip
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                rpc = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task_id}}
                answer = await c.post("/", json=rpc, headers=headers)
                assert int(answer.headers["content-length"]) == len(answer.content)
                got = answer.json()["result"]
                rpc = {**rpc, "method": "ListTasks", "params": {"includeArtifacts": True}}
                page = (await c.post("/", json=rpc, headers=headers)).json()["result"]
                (listed,) = (t for t in page["tasks"] if t["id"] == task_id)
                _check_written_as_get_task(got, listed)
                rest = await c.get(f"/tasks/{task_id}", headers=headers)
                assert rest.json() == got
            # A stream's events: the task first (attempts 0, an integer).
            posted = await swarm.post_task(QUEUE, "stream me")
            async with _Subscription(app, f"/tasks/{posted.id}:subscribe", headers) as sse:
                first = await sse.next(10)
                attempts = first.data["task"]["metadata"]["attempts"]
                assert attempts == 0 and isinstance(attempts, int), first.data
                canceller = threading.Thread(target=a2a_worker.cancel, args=(posted.id,))
                canceller.start()
                update = await sse.next(10)
                canceller.join(10)
                assert update.data["statusUpdate"]["status"]["state"] == "TASK_STATE_CANCELED"
        finally:
            await swarm.aclose()

    asyncio.run(body())
