"""A forged task event that says a task settled (a worker's Redis user may XADD the event
stream) is not believed: the task's record says its state.

A ``task.completed`` naming no finding ended every A2A stream of a claimed task as completed,
without an artifact; a ``task.dead`` ended them as failed while GetTask said submitted; the
push notifications alike (and the webhook was removed). Nothing was logged."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._acl import AclUser
from redis_swarm.a2a_server._feed import updates_of

from ._a2a import QUEUE, TOKEN, A2AServer, Receiver, receiver, start_a2a, stop
from ._servers import RedisServer, role_users, user_url
from .test_a2a_adversarial_fixes import HEADERS, _message, _rpc, _sse_events

SWARM = "forged-end"
EVENTS = f"rs:{{{SWARM}}}:events"
SETTLING = ("task.completed", "task.dead", "task.cancelled")


@pytest.fixture(scope="module")
def worker_user(acl_server: RedisServer) -> AclUser:
    user: AclUser = role_users(acl_server, SWARM, "forged", ("worker",))["worker"]
    return user


@pytest.fixture(scope="module")
def served(acl_server: RedisServer) -> Iterator[A2AServer]:
    server = start_a2a(acl_server.url, SWARM, TOKEN, "--queue", QUEUE)
    yield server
    stop(server)


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    yield from receiver()


def _forge(server: RedisServer, user: AclUser, fields: dict[str, str]) -> None:
    """XADD ``fields`` to the swarm's event stream as the worker ``user``."""
    client = redis.Redis(
        host="127.0.0.1", port=server.port or 0, username=user.user, password=user.password
    )
    try:
        client.xadd(EVENTS, fields)  # type: ignore[arg-type]
    finally:
        client.close()


def _states(events: list[tuple[str, Any]]) -> list[str]:
    return [
        d["statusUpdate"]["status"]["state"] for _, d in events if "statusUpdate" in d
    ]  # fmt: skip


@pytest.mark.parametrize("forged", SETTLING)
def test_a_forged_final_event_neither_ends_streams_nor_pushes(
    forged: str,
    acl_server: RedisServer,
    worker_user: AclUser,
    served: A2AServer,
    webhook: Receiver,
) -> None:
    """The stream and the webhook go on past the forged event to the task's real end: its
    completion with its finding."""
    sent = {"message": _message(), "configuration": {"returnImmediately": True}}
    task = httpx.post(served.url + "/message:send", json=sent, headers=HEADERS,
                      timeout=20).json()["task"]  # fmt: skip
    config = {"taskId": task["id"], "url": webhook.url}
    assert "result" in _rpc(served, "CreateTaskPushNotificationConfig", config)
    events: list[tuple[str, Any]] = []

    def subscribe() -> None:
        url = f"{served.url}/tasks/{task['id']}:subscribe"
        with httpx.stream("GET", url, headers=HEADERS, timeout=30) as answer:
            events.extend(_sse_events(answer.read().decode()))

    reading = threading.Thread(target=subscribe)
    reading.start()
    time.sleep(1.0)
    _forge(acl_server, worker_user, {"type": forged, "task": task["id"], "queue": QUEUE})
    time.sleep(1.0)
    assert reading.is_alive(), events  # the stream did not end on the forged event
    shown = _rpc(served, "GetTask", {"id": task["id"]})["result"]
    assert shown["status"]["state"] == "TASK_STATE_SUBMITTED", shown
    with Swarm(user_url(acl_server, worker_user), swarm=SWARM) as worker:
        claimed = worker.claim(QUEUE, worker="w", wait_s=5)
        assert claimed is not None and claimed.id == task["id"]
        worker.report(claimed.id, claimed.token, {"summary": "found it"})
    reading.join(30)
    assert not reading.is_alive()
    states = _states(events)
    assert states[-1] == "TASK_STATE_COMPLETED", events
    assert "TASK_STATE_FAILED" not in states and "TASK_STATE_CANCELED" not in states, events
    artifacts = [d for _, d in events if "artifactUpdate" in d]
    assert "found it" in json.dumps(artifacts), events
    posts = [body for _, body in webhook.wait_for(3)]
    pushed = [p.get("statusUpdate", {}).get("status", {}).get("state") for p in posts]
    assert "TASK_STATE_COMPLETED" in pushed, posts
    assert "TASK_STATE_FAILED" not in pushed and "TASK_STATE_CANCELED" not in pushed, posts
    assert "found it" in json.dumps([p for p in posts if "artifactUpdate" in p]), posts


def test_updates_of_believes_the_record_and_says_so_once(
    acl_server: RedisServer, worker_user: AclUser, caplog: pytest.LogCaptureFixture
) -> None:
    """Each forged final event of an open task makes no update and one log line; a
    completion naming no finding, of a completed task, carries the task's own finding."""
    caplog.set_level(logging.WARNING, logger="redis_swarm.a2a_server._feed")

    async def body() -> None:
        async with AsyncSwarm(acl_server.url, swarm=SWARM) as swarm:
            task = await swarm.post_task(QUEUE, "look")
            since = await swarm.last_event_id()
            for forged in SETTLING:
                _forge(acl_server, worker_user, {"type": forged, "task": task.id, "queue": QUEUE})
            read = await swarm.events(since=since, types="task")
            assert [e.type.value for e in read] == list(SETTLING)
            for event in read:
                caplog.clear()
                assert await updates_of(swarm, event, await swarm.get_task(task.id)) == []
                said = [r.getMessage() for r in caplog.records]
                assert said == [
                    f"task event {event.id} says task {task.id} is {event.type.value.split('.')[1]}"
                    f", but the task is pending: the event is skipped"
                ], said
            # Completed for real: a completion naming no finding carries the task's own.
            claimed = await swarm.claim(QUEUE, worker="w", wait_s=5)
            assert claimed is not None and claimed.id == task.id
            await swarm.report(claimed.id, claimed.token, {"summary": "the real one"})
            since = await swarm.last_event_id()
            _forge(acl_server, worker_user, {"type": "task.completed", "task": task.id,
                                             "queue": QUEUE})  # fmt: skip
            (event,) = await swarm.events(since=since, types="task")
            caplog.clear()
            made = await updates_of(swarm, event, await swarm.get_task(task.id))
            assert "the real one" in str(made[0]), made
            assert [r.getMessage() for r in caplog.records] == [
                f"task event {event.id} says task {task.id} completed with no finding: its "
                "update carries the task's own finding"
            ]

    asyncio.run(body())
