"""One reader of the task events per A2A server (``a2a_server/_feed.py``): every waiter on a
task gets its own task's events, each once and in order, from a backlog older than the
reader as well as live; the server holds one blocked XREAD for all of them, and none once
nobody listens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._models import Event
from redis_swarm.a2a_server._feed import TaskFeed

from ._a2a import QUEUE, A2AServer, work_one
from ._servers import RedisServer, ServerFactory

SWARM = "feed"


@pytest.fixture
def feed_server(servers: ServerFactory) -> Iterator[RedisServer]:
    server = servers.start()
    yield server
    server.stop()


Body = Callable[[Swarm, AsyncSwarm, TaskFeed, str], Awaitable[None]]


def _with_feed(server: RedisServer, body: Body) -> None:
    """Run ``body(worker, swarm, feed, since)``: a sync worker handle, the async handle the
    feed reads through, the feed, and the newest event id before the test's own."""
    worker = Swarm(server.url, swarm=SWARM)

    async def run() -> None:
        swarm = AsyncSwarm(server.url, swarm=SWARM)
        try:
            await body(worker, swarm, TaskFeed(swarm, block_s=1.0), await swarm.last_event_id())
        finally:
            await swarm.aclose()

    try:
        asyncio.run(run())
    finally:
        worker.close()


def _xreads(raw: redis.Redis) -> int:
    """Clients of ``raw``'s server blocked in XREAD now."""
    return sum(1 for c in raw.client_list() if c.get("cmd") == "xread" and "b" in c["flags"])


async def _until(check: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _take(events: AsyncIterator[Event], n: int) -> list[Event]:
    out = []
    async for event in events:
        out.append(event)
        if len(out) == n:
            break
    return out


def _lifecycle(worker: Swarm, task_id: str) -> None:
    task = worker.claim("q", worker="w")
    assert task is not None and task.id == task_id
    worker.report(task.id, task.token, {"summary": "done"})


def test_every_listener_gets_its_own_tasks_events_through_one_reader(
    feed_server: RedisServer,
) -> None:
    raw = redis.Redis.from_url(feed_server.url, decode_responses=True)

    async def body(worker: Swarm, swarm: AsyncSwarm, feed: TaskFeed, since: str) -> None:
        tasks = [worker.post_task("q", f"task {i}") for i in range(8)]
        streams = [feed.events(t.id, since) for t in tasks]
        takers = [asyncio.create_task(_take(s, 3)) for s in streams]
        await _until(lambda: feed.listening == 8)
        # (its reader may not have sent its first XREAD yet, on a loaded machine)
        await _until(lambda: _xreads(raw) >= 1)
        for _ in range(5):  # one reader for all eight, never more
            assert await asyncio.to_thread(_xreads, raw) <= 1
            await asyncio.sleep(0.05)
        for task in tasks:
            await asyncio.to_thread(_lifecycle, worker, task.id)
        got = await asyncio.wait_for(asyncio.gather(*takers), 20)
        for task, events in zip(tasks, got, strict=True):
            assert {e.fields["task"] for e in events} == {task.id}
            assert [e.type.value for e in events] == [
                "task.posted",  # (after since: the backlog, older than the reader)
                "task.claimed",
                "task.completed",
            ]
        for stream in streams:
            await stream.aclose()
        assert feed.listening == 0
        await _until(lambda: _xreads(raw) == 0)  # nobody listens: no wait stays blocked

    try:
        _with_feed(feed_server, body)
    finally:
        raw.close()


def test_a_late_listener_gets_the_backlog_then_live_events_each_once(
    feed_server: RedisServer,
) -> None:
    """A listener whose position is older than the reader's (a resume) reads what it missed
    from the stream, then takes the reader's hand-outs, skipping what the backlog gave."""

    async def body(worker: Swarm, swarm: AsyncSwarm, feed: TaskFeed, since: str) -> None:
        task = worker.post_task("q", "watched")
        other = worker.post_task("q", "keeps the reader running")
        first = feed.events(other.id, since)
        first_taker = asyncio.create_task(_take(first, 1))
        await _until(lambda: feed.listening == 1)
        claimed = worker.claim("q", worker="w")
        assert claimed is not None and claimed.id == task.id
        await asyncio.sleep(0.2)  # the reader hands task.claimed out to nobody
        late = feed.events(task.id, since)
        late_taker = asyncio.create_task(_take(late, 3))
        await _until(lambda: feed.listening == 2)
        worker.report(claimed.id, claimed.token, {"summary": "done"})
        events = await asyncio.wait_for(late_taker, 20)
        assert [e.type.value for e in events] == [
            "task.posted",
            "task.claimed",
            "task.completed",
        ]
        assert len({e.id for e in events}) == 3
        assert [e.type.value for e in await first_taker] == ["task.posted"]
        await late.aclose()
        await first.aclose()

    _with_feed(feed_server, body)


def test_an_error_of_the_reader_reaches_every_listener_and_the_next_starts_again(
    feed_server: RedisServer,
) -> None:
    async def body(worker: Swarm, swarm: AsyncSwarm, feed: TaskFeed, since: str) -> None:
        task = worker.post_task("q", "watched")
        stream = feed.events(task.id, since)
        taker = asyncio.create_task(_take(stream, 2))
        await _until(lambda: feed.listening == 1)
        reader = feed._reader
        assert reader is not None
        boom = RuntimeError("the stream broke")
        feed._fail(boom)  # as the reader does when following fails
        with pytest.raises(RuntimeError, match="the stream broke"):
            await taker
        await stream.aclose()
        reader.cancel()
        again = feed.events(task.id, since)
        assert [e.type.value for e in await _take(again, 1)] == ["task.posted"]
        await again.aclose()

    _with_feed(feed_server, body)


# --- through a real swarm a2a


@contextlib.contextmanager
def _streaming(a2a: A2AServer, text: str) -> Iterator[Iterator[dict[str, Any]]]:
    message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": text}]}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage",
            "params": {"message": message}}  # fmt: skip
    headers = {**a2a.headers, "A2A-Version": "1.0", "Accept": "text/event-stream"}
    with httpx.stream("POST", a2a.url + "/", json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200

        def updates() -> Iterator[dict[str, Any]]:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    yield json.loads(line.removeprefix("data:"))["result"]

        yield updates()


def test_many_streams_of_one_server_share_one_wait_on_redis(
    a2a: A2AServer, a2a_redis: RedisServer, a2a_worker: Swarm
) -> None:
    raw = redis.Redis.from_url(a2a_redis.url, decode_responses=True)
    before = _xreads(raw)  # the push dispatcher's own follow
    outcomes: dict[int, list[str]] = {}
    started = threading.Barrier(7)

    def client(i: int) -> None:
        with _streaming(a2a, f"stream {i}") as updates:
            first = next(updates)
            started.wait(20)
            kinds = [next(iter(first))]
            for update in updates:
                kinds.append(next(iter(update)))
            outcomes[i] = kinds

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    started.wait(20)
    # Each stream waits on the feed now: the most XREADs seen blocked at once, for a while.
    most, deadline = 0, time.monotonic() + 2
    while time.monotonic() < deadline:
        most = max(most, _xreads(raw))
        time.sleep(0.02)
    assert most == before + 1  # six streams, one more blocked XREAD (one each, before)
    for _ in range(6):
        work_one(a2a_worker, QUEUE, "done")
    for thread in threads:
        thread.join(30)
    raw.close()
    assert len(outcomes) == 6
    for kinds in outcomes.values():
        assert kinds == ["task", "statusUpdate", "artifactUpdate", "statusUpdate"], kinds


def test_a_closed_feed_ends_every_listener_now_and_later(feed_server: RedisServer) -> None:
    """A stopping server closes the feed: a listener waiting on a quiet task ends (its
    stream ends, a blocking SendMessage answers) instead of waiting to be cancelled."""

    async def body(worker: Swarm, swarm: AsyncSwarm, feed: TaskFeed, since: str) -> None:
        task = worker.post_task("q", "quiet")
        waiting = asyncio.create_task(_take(feed.events(task.id, since), 5))
        await _until(lambda: feed.listening == 1)
        feed.close()
        got = await asyncio.wait_for(waiting, 5)
        assert [e.type.value for e in got] == ["task.posted"]  # (its backlog), then the end
        later = await asyncio.wait_for(_take(feed.events(task.id, since), 5), 5)
        assert [e.type.value for e in later] == ["task.posted"]  # (the same: no wait)
        assert feed.listening == 0

    _with_feed(feed_server, body)
