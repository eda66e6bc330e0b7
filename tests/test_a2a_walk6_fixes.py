"""What a sixth walk of ``swarm a2a`` with real clients found:

1. ``POST /tasks/ID:cancel`` with a body that is no JSON object (``{not json``, ``[1,2]``,
   ``null``, ``"str"``) answered 200 and cancelled the task: the SDK's cancel route reads no
   body, and the check of its members skipped one that did not parse. Every HTTP+JSON POST
   route now refuses such a body (400, INVALID_ARGUMENT, saying to send a JSON object), the
   ones that parse it too (``null`` was "TypeError: 'NoneType' object is not iterable",
   ``"str"`` read as ``{}``); no body at all still cancels.
2. A GET with a body had its query read from the body: ``GET /tasks?status=BOGUS`` with a
   body of ``{}`` listed every task.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from redis_swarm import Swarm

from ._a2a import TOKEN, A2AServer

HEADERS = {"Authorization": f"Bearer {TOKEN}", "A2A-Version": "1.0"}
JSON = {**HEADERS, "Content-Type": "application/json"}
NOT_OBJECTS = [b"{not json", b"[1,2]", b"null", b'"str"', b"1", b"true"]


def _post_task(a2a: A2AServer) -> str:
    message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": "go"}]}
    body = {"message": message, "configuration": {"returnImmediately": True}}
    answer = httpx.post(a2a.url + "/message:send", json=body, headers=HEADERS, timeout=20)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["task"]["id"])


def _refused(answer: httpx.Response) -> str:
    assert answer.status_code == 400, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT", error
    message = str(error["message"])
    assert "JSON object" in message and "TypeError" not in message, message
    return message


@pytest.mark.parametrize("body", NOT_OBJECTS)
def test_a_cancel_whose_body_is_no_json_object_is_refused_and_cancels_nothing(
    a2a: A2AServer, a2a_worker: Swarm, body: bytes
) -> None:
    task_id = _post_task(a2a)
    answer = httpx.post(f"{a2a.url}/tasks/{task_id}:cancel", content=body, headers=JSON,
                        timeout=20)  # fmt: skip
    said = _refused(answer)
    if body == b"{not json":
        assert "not JSON" in said, said
    else:
        assert "the request body is " in said, said
    assert a2a_worker.get_task(task_id).status.value == "pending"
    # The same under a tenant's prefix.
    answer = httpx.post(f"{a2a.url}/team/tasks/{task_id}:cancel", content=body, headers=JSON,
                        timeout=20)  # fmt: skip
    _refused(answer)
    assert a2a_worker.get_task(task_id).status.value == "pending"


def test_every_post_route_refuses_a_body_that_is_no_json_object_alike(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    """The subscription's POST read no body either (it subscribed); the others parse it, in
    the SDK's words: ``null`` a TypeError, ``"str"`` taken for ``{}``."""
    task_id = _post_task(a2a)
    paths = ["/message:send", "/message:stream", f"/tasks/{task_id}:subscribe",
             f"/tasks/{task_id}/pushNotificationConfigs"]  # fmt: skip
    for path in paths:
        for body in NOT_OBJECTS:
            answer = httpx.post(a2a.url + path, content=body, headers=JSON, timeout=5)
            _refused(answer)
    assert a2a_worker.webhooks(task_id) == []
    assert a2a_worker.get_task(task_id).status.value == "pending"
    # No body, or an object, still cancels.
    for body in (b"", b"{}", b'{"metadata": {"why": "changed my mind"}}'):
        task_id = _post_task(a2a)
        answer = httpx.post(f"{a2a.url}/tasks/{task_id}:cancel", content=body, headers=JSON,
                            timeout=20)  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"]["state"] == "TASK_STATE_CANCELED"
        assert a2a_worker.get_task(task_id).status.value == "cancelled"


def test_a_get_with_a_body_reads_its_query(a2a: A2AServer) -> None:
    answer = httpx.request("GET", a2a.url + "/tasks?status=TASK_STATE_BOGUS", content=b"{}",
                           headers=JSON, timeout=20)  # fmt: skip
    assert answer.status_code == 400, answer.text
    assert "is not a task state" in answer.json()["error"]["message"]
