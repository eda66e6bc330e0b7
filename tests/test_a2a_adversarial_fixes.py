"""What an adversarial run of ``swarm a2a`` found: more requests at once than the handle's
connections were answered "cannot reach its swarm's Redis" (and logged once each); an
HTTP+JSON subscription cut by an outage logged a traceback and said 500 INTERNAL; a 503's
detail said INTERNAL_ERROR; a completion event naming no finding ended every stream of its
task "not found" (and stopped the pushes); ``pageSize`` 0 and a repeated query parameter
were taken; the push sender said it followed the swarm again only at the next event; a
``statusTimestampAfter`` that is no time was answered in protobuf's words. Real servers:
Redis, ``swarm a2a``, a webhook receiver."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm.a2a_server import create_app
from redis_swarm.a2a_server._push import PushDispatcher, push_client

from ._a2a import QUEUE, SWARM, TOKEN, A2AServer, Receiver, receiver, start_a2a, stop
from ._servers import RedisServer, ServerFactory

HEADERS = {"Authorization": f"Bearer {TOKEN}", "A2A-Version": "1.0"}


@pytest.fixture
def hook() -> Iterator[Receiver]:
    yield from receiver()


def _rpc_body(method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


def _rpc(a2a: A2AServer, method: str, params: Any) -> Any:
    return httpx.post(a2a.url + "/", json=_rpc_body(method, params), headers=HEADERS,
                      timeout=20).json()  # fmt: skip


def _message() -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": "look"}]}


def _sse_events(text: str) -> list[tuple[str, Any]]:
    """The (event name, JSON data) of each event of an SSE body."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.split("\n")
        data = "\n".join(line[5:].lstrip() for line in lines if line.startswith("data:"))
        if data:
            name = next((line[6:].strip() for line in lines if line.startswith("event:")), "")
            out.append((name, json.loads(data)))
    return out


# --- 1. more requests at once than connections: they wait, else are answered busy


def test_more_requests_at_once_than_connections_all_answered(servers: ServerFactory) -> None:
    """80 GetTasks at once on a handle of 10 connections: 70 were answered "cannot reach
    its swarm's Redis" (Redis was fine). Now each waits its turn."""
    redis = servers.start()

    async def body() -> None:
        async with AsyncSwarm(f"{redis.url}?max_connections=10", swarm="a2a-many") as swarm:
            task = await swarm.post_task(QUEUE, "look it up")
            app = create_app(swarm, queues=[QUEUE], base_url="http://127.0.0.1:1/",
                             token=TOKEN, push=False)  # fmt: skip
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://a", timeout=60
            ) as client:
                rpc = _rpc_body("GetTask", {"id": task.id})
                answers = await asyncio.gather(
                    *(client.post("/", json=rpc, headers=HEADERS) for _ in range(80)),
                    *(client.get(f"/tasks/{task.id}", headers=HEADERS) for _ in range(80)),
                )
            said = [a.json() for a in answers]
            assert all(a.status_code == 200 for a in answers), said
            assert all(s.get("result", s).get("id") == task.id for s in said), said

    asyncio.run(body())


def test_a_busy_server_says_busy_once_and_when_to_try_again(
    servers: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Every turn held: a request waits the gate's moment, then is answered busy (HTTP+JSON
    503 with Retry-After, its status and detail's reason UNAVAILABLE; JSON-RPC -32603 with
    retry data), never "cannot reach Redis"; the log says busy once for the burst, and once
    that it is over."""
    redis = servers.start()
    caplog.set_level(logging.INFO)

    async def body() -> None:
        async with AsyncSwarm(f"{redis.url}?max_connections=6", swarm="a2a-busy") as swarm:
            task = await swarm.post_task(QUEUE, "look it up")
            app = create_app(swarm, queues=[QUEUE], base_url="http://127.0.0.1:1/",
                             token=TOKEN, push=False)  # fmt: skip
            gate = app.state.gate
            gate.turns.wait_s = 0.2
            release = asyncio.Event()
            holders = [
                asyncio.create_task(gate.run(release.wait())) for _ in range(gate.turns.size)
            ]
            await asyncio.sleep(0.05)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
                rpc = _rpc_body("GetTask", {"id": task.id})
                answers = await asyncio.gather(
                    *(client.get(f"/tasks/{task.id}", headers=HEADERS) for _ in range(5)),
                    *(client.post("/", json=rpc, headers=HEADERS) for _ in range(5)),
                )
                for answer in answers[:5]:
                    assert answer.status_code == 503, answer.text
                    assert answer.headers["retry-after"] == "1"
                    error = answer.json()["error"]
                    assert error["status"] == "UNAVAILABLE"
                    assert error["details"][0]["reason"] == "UNAVAILABLE"
                    assert error["message"].startswith("this A2A server is busy")
                for answer in answers[5:]:
                    error = answer.json()["error"]
                    assert error["code"] == -32603, error
                    assert "'retryAfterSeconds': '1'" in str(error["data"]), error
                    assert "busy" in error["message"] and "cannot reach" not in error["message"]
                release.set()
                await asyncio.gather(*holders)
                assert (await client.get(f"/tasks/{task.id}", headers=HEADERS)).status_code == 200

    asyncio.run(body())
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([line for line in lines if line.startswith("busy:")]) == 1, lines
    assert len([line for line in lines if line.startswith("no longer busy: 10")]) == 1, lines
    assert not [line for line in lines if "a request failed" in line], lines


# --- 2. an HTTP+JSON subscription cut by an outage: one line, 503 UNAVAILABLE


def test_a_rest_subscription_cut_by_an_outage_says_unavailable_without_a_traceback(
    servers: ServerFactory,
) -> None:
    redis = servers.start()
    server = start_a2a(f"{redis.url}?retries=0", SWARM, TOKEN, "--queue", QUEUE)
    try:
        sent = {"message": _message(), "configuration": {"returnImmediately": True}}
        task = httpx.post(server.url + "/message:send", json=sent, headers=HEADERS,
                          timeout=20).json()["task"]  # fmt: skip
        events: list[tuple[str, Any]] = []

        def subscribe() -> None:
            url = f"{server.url}/tasks/{task['id']}:subscribe"
            with httpx.stream("GET", url, headers=HEADERS, timeout=30) as answer:
                events.extend(_sse_events(answer.read().decode()))

        reading = threading.Thread(target=subscribe)
        reading.start()
        time.sleep(1.0)  # (the stream is open: its first event sent, the feed following)
        redis.stop()
        reading.join(30)
        assert not reading.is_alive()
        name, data = events[-1]
        assert name == "error", events
        error = data["error"]
        assert error["code"] == 503 and error["status"] == "UNAVAILABLE", error
        assert error["details"][0]["reason"] == "UNAVAILABLE", error
        assert error["details"][0]["metadata"]["retryAfterSeconds"] == "5"
        # And a request answered while Redis is away: its detail agrees with its status.
        answer = httpx.get(f"{server.url}/tasks/{task['id']}", headers=HEADERS, timeout=20)
        assert answer.status_code == 503
        assert answer.json()["error"]["details"][0]["reason"] == "UNAVAILABLE"
    finally:
        err = stop(server)
    assert "Error during REST SSE stream" not in err and "Traceback" not in err, err
    assert "a request failed" in err


def _forged_then_completed(
    a2a_redis: RedisServer,
    a2a_worker: Swarm,
    task_id: str,
    finding: str,
    subscribe: Callable[[], None],
) -> None:
    """While ``subscribe`` reads the task's stream (in a thread), a completion naming
    ``finding`` is forged (a worker's user may write the event stream), then the task is
    claimed and reported for real ("found it"); returns once the stream has ended."""
    reading = threading.Thread(target=subscribe)
    reading.start()
    time.sleep(1.0)
    a2a_redis.client().xadd(
        f"rs:{{{SWARM}}}:events",
        {"type": "task.completed", "task": task_id, "queue": QUEUE, "worker": "x",
         "finding": finding},
    )  # fmt: skip
    time.sleep(0.5)
    claimed = a2a_worker.claim(QUEUE, worker="w", wait_s=5)
    assert claimed is not None and claimed.id == task_id
    a2a_worker.report(claimed.id, claimed.token, {"summary": "found it"})
    reading.join(30)
    assert not reading.is_alive()


# --- 3. a completion naming a finding that does not exist


def test_a_completion_naming_no_finding_keeps_streams_and_pushes(
    a2a: A2AServer, a2a_redis: RedisServer, a2a_worker: Swarm, hook: Receiver
) -> None:
    """The event (a worker's user may write it) ended every stream of the task with 404
    "finding ... does not exist", each resume alike, and stopped the push notifications."""
    sent = {"message": _message(), "configuration": {"returnImmediately": True}}
    task = httpx.post(a2a.url + "/message:send", json=sent, headers=HEADERS,
                      timeout=20).json()["task"]  # fmt: skip
    config = {"taskId": task["id"], "url": hook.url}
    assert "result" in _rpc(a2a, "CreateTaskPushNotificationConfig", config)
    url = f"{a2a.url}/tasks/{task['id']}:subscribe"
    events: list[tuple[str, Any]] = []

    def subscribe(headers: dict[str, str]) -> None:
        with httpx.stream("GET", url, headers=headers, timeout=30) as answer:
            events.extend(_sse_events(answer.read().decode()))

    _forged_then_completed(
        a2a_redis, a2a_worker, task["id"], "f-nonexistent", lambda: subscribe(HEADERS)
    )
    assert [name for name, _ in events if name == "error"] == [], events
    last = events[-1][1]
    assert last["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED", events
    assert any("artifactUpdate" in data for _, data in events), events
    # A resume from the stream's first event replays past the event, to the end.
    first_id = events[0][1]["task"]["metadata"]["redis-swarm/position"]
    events.clear()
    subscribe({**HEADERS, "Last-Event-ID": first_id})
    assert [name for name, _ in events if name == "error"] == [], events
    assert events[-1][1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    # The pushes went on too: the webhook got the final state.
    posts = hook.wait_for(3)
    states = [body.get("statusUpdate", {}).get("status", {}).get("state") for _, body in posts]
    assert "TASK_STATE_COMPLETED" in states, posts


# --- 4. pageSize 0, a query parameter given twice


def test_page_size_zero_and_a_repeated_parameter_are_refused(a2a: A2AServer) -> None:
    answer = _rpc(a2a, "ListTasks", {"pageSize": 0})
    assert answer["error"]["code"] == -32602 and "pageSize 0" in answer["error"]["message"]
    rest = httpx.get(a2a.url + "/tasks?pageSize=0", headers=HEADERS, timeout=20)
    assert rest.status_code == 400 and "pageSize 0" in rest.json()["error"]["message"]
    twice = httpx.get(a2a.url + "/tasks?pageSize=2&pageSize=3", headers=HEADERS, timeout=20)
    assert twice.status_code == 400, twice.text
    said = twice.json()["error"]["message"]
    assert "'pageSize' is given twice ('2' and '3'): give it once" in said
    assert httpx.get(a2a.url + "/tasks?pageSize=2", headers=HEADERS, timeout=20).is_success


# --- 5. the push sender says it follows again as soon as Redis is back


def test_push_notifications_say_they_follow_again_without_an_event(
    servers: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    redis = servers.start()
    caplog.set_level(logging.INFO, logger="redis_swarm.a2a_server._push")

    def said(words: str) -> bool:
        return any(words in r.getMessage() for r in caplog.records)

    async def body() -> None:
        async with (
            AsyncSwarm(f"{redis.url}?retries=0", swarm="a2a-back") as swarm,
            push_client() as http,
        ):
            dispatcher = PushDispatcher(swarm, [QUEUE], http)
            running = asyncio.create_task(dispatcher.run())
            try:
                await asyncio.sleep(0.5)
                redis.stop()
                deadline = time.monotonic() + 20
                while not said("push notifications paused"):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                redis.restart()
                deadline = time.monotonic() + 20  # (the waits: 1 s, 2 s, 4 s...)
                while not said("following the swarm again"):
                    assert time.monotonic() < deadline, "recovery never said"
                    await asyncio.sleep(0.05)
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

    asyncio.run(body())


# --- 6. a statusTimestampAfter that is no time


def test_a_status_timestamp_that_is_no_time_is_refused_naming_it(a2a: A2AServer) -> None:
    answer = _rpc(a2a, "ListTasks", {"statusTimestampAfter": "not-a-date"})
    said = answer["error"]["message"]
    assert answer["error"]["code"] == -32602, answer
    assert "params.statusTimestampAfter 'not-a-date' is not a timestamp" in said
    assert "ISO 8601" in said and "does not match format" not in said
    rest = httpx.get(a2a.url + "/tasks?statusTimestampAfter=not-a-date", headers=HEADERS,
                     timeout=20)  # fmt: skip
    assert rest.status_code == 400
    assert "statusTimestampAfter 'not-a-date' is not a timestamp" in rest.json()["error"]["message"]
    good = _rpc(a2a, "ListTasks", {"statusTimestampAfter": "2026-01-31T12:00:00Z"})
    assert "result" in good, good


# --- 6. a completion naming another task's finding


def test_a_completion_naming_another_tasks_finding_is_not_believed(
    a2a: A2AServer, a2a_redis: RedisServer, a2a_worker: Swarm
) -> None:
    """A forged ``task.completed`` (a worker's user may write the stream) naming a real finding
    of another task gave the subscribed task that finding as its artifact."""
    other = a2a_worker.post_task(QUEUE, "another task")
    leased = a2a_worker.claim(QUEUE, worker="w", wait_s=5)
    assert leased is not None and leased.id == other.id
    foreign = a2a_worker.report(leased.id, leased.token, {"summary": "the other task's secret"})
    sent = {"message": _message(), "configuration": {"returnImmediately": True}}
    task = httpx.post(a2a.url + "/message:send", json=sent, headers=HEADERS,
                      timeout=20).json()["task"]  # fmt: skip
    url = f"{a2a.url}/tasks/{task['id']}:subscribe"
    events: list[tuple[str, Any]] = []

    def subscribe() -> None:
        with httpx.stream("GET", url, headers=HEADERS, timeout=30) as answer:
            events.extend(_sse_events(answer.read().decode()))

    _forged_then_completed(a2a_redis, a2a_worker, task["id"], foreign.id, subscribe)
    assert "the other task's secret" not in json.dumps(events), events
    assert events[-1][1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED", events
    assert "found it" in json.dumps([d for _, d in events if "artifactUpdate" in d]), events
