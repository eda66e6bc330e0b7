"""Push notifications write whole numbers as the server's answers do: as integers. Their
bodies were written ``1.0`` (protobuf's ``Struct`` holds numbers as doubles): a finding's
``"created_at": 1796411822435.0``, ``"attempt": 1.0``, where GetTask and the streams say
``1796411822435`` and ``1``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from redis_swarm import Swarm

from ._a2a import QUEUE, A2AServer, Receiver, receiver, work_one


@pytest.fixture
def hook() -> Iterator[Receiver]:
    yield from receiver()


def _rpc(a2a: A2AServer, method: str, params: dict[str, Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    sent = {**a2a.headers, "A2A-Version": "1.0"}
    answer = httpx.post(a2a.url + "/", json=body, headers=sent, timeout=20).json()
    assert "result" in answer, answer
    return answer["result"]


def _floats(value: Any, where: str = "") -> list[str]:
    """Where ``value`` (JSON as Python) holds a float."""
    if isinstance(value, float):
        return [f"{where}: {value!r}"]
    if isinstance(value, dict):
        return [f for key, item in value.items() for f in _floats(item, f"{where}.{key}")]
    if isinstance(value, list):
        return [f for n, item in enumerate(value) for f in _floats(item, f"{where}[{n}]")]
    return []


def test_a_push_notification_writes_whole_numbers_as_integers(
    a2a: A2AServer, a2a_worker: Swarm, hook: Receiver
) -> None:
    message = {
        "messageId": str(uuid.uuid4()),
        "role": "ROLE_USER",
        "parts": [{"text": "count them"}],
    }
    config = {"returnImmediately": True, "taskPushNotificationConfig": {"url": hook.url}}
    sent = _rpc(a2a, "SendMessage", {"message": message, "configuration": config})
    task_id = sent["task"]["id"]
    while work_one(a2a_worker, QUEUE, "three") != task_id:  # (another test's task first)
        pass
    posts = hook.wait_for(4)
    bodies = [body for _, body in posts if body[next(iter(body))]["taskId"] == task_id]
    assert [next(iter(b)) for b in bodies][-2:] == ["artifactUpdate", "statusUpdate"], bodies
    (artifact,) = (b["artifactUpdate"]["artifact"] for b in bodies if "artifactUpdate" in b)
    finding = artifact["parts"][1]["data"]
    assert isinstance(finding["created_at"], int), finding
    assert finding["attempt"] == 1 and isinstance(finding["attempt"], int), finding
    for body in bodies:
        assert _floats(body) == [], body
    # As GetTask writes the same finding (one writing: _wire.render).
    got = _rpc(a2a, "GetTask", {"id": task_id})
    assert got["artifacts"][0]["parts"][1]["data"] == finding
