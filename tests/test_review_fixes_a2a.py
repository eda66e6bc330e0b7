"""A task posted outside A2A without a pass is a context of its own, its id (``context_of``),
and that context id now goes back in: ``ListTasks`` with it listed the pass of that name
(none: an empty page), and a ``SendMessage`` carrying it made a new pass named after the
task, a context apart. Now the context lists that task, and a message sent in it is refused,
saying what to send instead. ``swarm a2a`` as a real process on a real server."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from redis_swarm import Swarm

from ._a2a import QUEUE, A2AServer

HIDDEN = "elsewhere"  # a queue this agent does not expose


def _rpc(a2a: A2AServer, method: str, params: dict[str, Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    sent = {**a2a.headers, "A2A-Version": "1.0"}
    return httpx.post(a2a.url + "/", json=body, headers=sent, timeout=20).json()


def _listed(a2a: A2AServer, **params: Any) -> tuple[list[str], int, str]:
    """ListTasks: the ids listed, totalSize, nextPageToken."""
    answer = _rpc(a2a, "ListTasks", params)
    assert "result" in answer, answer
    result = answer["result"]
    ids = [t["id"] for t in result.get("tasks", [])]
    return ids, int(result.get("totalSize", 0)), result.get("nextPageToken", "")


def _send(a2a: A2AServer, context_id: str) -> Any:
    message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER",
               "parts": [{"text": "one more"}], "contextId": context_id}  # fmt: skip
    params = {"message": message, "configuration": {"returnImmediately": True}}
    return _rpc(a2a, "SendMessage", params)


def _error(answer: Any) -> str:
    assert "error" in answer, answer
    assert answer["error"]["code"] == -32602, answer  # invalid params
    message = answer["error"]["message"]
    assert isinstance(message, str)
    return message


def test_a_task_without_a_pass_is_listed_by_its_context_id(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    task = a2a_worker.post_task(QUEUE, "posted by a shard, without a pass")
    assert task.pass_name is None
    got = _rpc(a2a, "GetTask", {"id": task.id})["result"]
    assert got["contextId"] == task.id
    # Its context lists it, and only it (it listed the pass of that name: nothing).
    assert _listed(a2a, contextId=got["contextId"]) == ([task.id], 1, "")
    (listed,) = _rpc(a2a, "ListTasks", {"contextId": task.id})["result"]["tasks"]
    assert listed == got
    # The other filters still apply.
    assert _listed(a2a, contextId=task.id, status="TASK_STATE_COMPLETED") == ([], 0, "")
    assert _listed(a2a, contextId=task.id, status="TASK_STATE_SUBMITTED") == ([task.id], 1, "")
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert _listed(a2a, contextId=task.id, statusTimestampAfter=later) == ([], 1, "")
    # A task this agent does not expose is no context of its: nothing listed, nothing told.
    hidden = a2a_worker.post_task(HIDDEN, "not exposed")
    assert _listed(a2a, contextId=hidden.id) == ([], 0, "")


def test_a_message_in_a_tasks_own_context_is_refused(a2a: A2AServer, a2a_worker: Swarm) -> None:
    task = a2a_worker.post_task(QUEUE, "posted by a shard, without a pass")
    said = _error(_send(a2a, task.id))
    assert f"context id {task.id} is task {task.id}'s context of its own" in said, said
    assert "send without a context id" in said
    # No pass was made of its name: its context still lists the task alone.
    assert not a2a_worker.list_tasks(pass_name=task.id).items
    assert _listed(a2a, contextId=task.id) == ([task.id], 1, "")
    # The id of a task that has a pass is no context either: its real one is named.
    sent = _send(a2a, f"ctx-{uuid.uuid4()}")
    in_pass = sent["result"]["task"]
    said = _error(_send(a2a, in_pass["id"]))
    assert f"its context id is {in_pass['contextId']}" in said, said
    assert not a2a_worker.list_tasks(pass_name=in_pass["id"]).items
    # A context id of the client's own, or new, still makes its pass, listed by it.
    again = _send(a2a, in_pass["contextId"])["result"]["task"]
    assert again["contextId"] == in_pass["contextId"]
    ids, total, _ = _listed(a2a, contextId=in_pass["contextId"])
    assert ids == [again["id"], in_pass["id"]] and total == 2
    odd = "a context: not an id!"  # (any text is a context id; no task is named so)
    assert _send(a2a, odd)["result"]["task"]["contextId"] == odd
