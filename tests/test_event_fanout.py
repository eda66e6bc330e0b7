"""One follower of the event log for many listeners (``_event_fanout.py``), what the
dashboard's streams and the A2A server's waiters on a task are both built on: listeners of
either kind served by the one follower (one blocked XREAD, whatever their count), an event
that comes while a listener reads its backlog given once, a listener that falls behind
dropped while the others keep their events, and a closed fan-out ending every listener, now
and later. The A2A subscriber that falls behind is ended as well (it was buffered without
end)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

import pytest
import redis

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._models import Event, EventType
from redis_swarm.a2a_server._feed import TaskFeed

from ._servers import RedisServer, ServerFactory

if TYPE_CHECKING:
    from redis_swarm._event_fanout import Listener

SWARM = "fanout"

Body = Callable[[Swarm, AsyncSwarm, redis.Redis], Awaitable[None]]


@pytest.fixture
def server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of this test's own: the blocked XREADs counted are the test's."""
    started = servers.start()
    yield started
    started.stop()


def _run(server: RedisServer, body: Body) -> None:
    """Run ``body(worker, swarm, raw)``: a sync handle that makes events, the async handle the
    fan-out follows through, and a plain client that counts the server's blocked XREADs."""
    worker = Swarm(server.url, swarm=SWARM)
    raw = redis.Redis.from_url(server.url, decode_responses=True)

    async def run() -> None:
        async with AsyncSwarm(server.url, swarm=SWARM) as swarm:
            await body(worker, swarm, raw)

    try:
        asyncio.run(run())
    finally:
        raw.close()
        worker.close()


def _xreads(raw: redis.Redis) -> int:
    """Clients of ``raw``'s server blocked in XREAD now."""
    return sum(1 for c in raw.client_list() if c.get("cmd") == "xread" and "b" in c["flags"])


def _most_xreads(raw: redis.Redis, for_s: float) -> int:
    """The most clients seen blocked in XREAD at once over ``for_s`` seconds."""
    most, deadline = 0, time.monotonic() + for_s
    while time.monotonic() < deadline:
        most = max(most, _xreads(raw))
        time.sleep(0.02)
    return most


async def _until(check: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _of_task(task_id: str) -> Callable[[Event], bool]:
    """The A2A server's predicate: the events of one task."""
    return lambda event: event.fields.get("task") == task_id


def test_one_follower_serves_listeners_of_both_kinds_on_one_connection(server: RedisServer) -> None:
    from redis_swarm._event_fanout import EventFanout

    async def body(worker: Swarm, swarm: AsyncSwarm, raw: redis.Redis) -> None:
        fanout = EventFanout(swarm, block_s=0.2)
        since = await swarm.last_event_id()
        watched = worker.post_task("q", "watched")
        other = worker.post_task("q", "another")
        # The dashboard's kind (its types) and the A2A server's (task events of its task),
        # both resuming: each reads its backlog, then the follower's hand-out.
        posted = await fanout.listen(since, types=[EventType.TASK_POSTED])
        of_task = await fanout.listen(since, types="task", where=_of_task(watched.id))
        await _until(lambda: _xreads(raw) == 1)
        more = [await fanout.listen(None) for _ in range(40)]
        assert fanout.listening == 42
        assert await asyncio.to_thread(_most_xreads, raw, 0.6) == 1  # (a follower each: 42)
        claimed = worker.claim("q", worker="w")
        assert claimed is not None and claimed.id == watched.id
        worker.report(claimed.id, claimed.token, {"summary": "done"})
        late = worker.post_task("q", "posted live")

        got = [await posted.next(5) for _ in range(3)]
        assert [e.fields["task"] for e in got if e is not None] == [watched.id, other.id, late.id]
        got = [await of_task.next(5) for _ in range(3)]
        assert [e.type for e in got if e is not None] == [
            EventType.TASK_POSTED,
            EventType.TASK_CLAIMED,
            EventType.TASK_COMPLETED,
        ]
        assert await posted.next(0.3) is None and await of_task.next(0.01) is None
        seen = []  # (from now on: the claim and what followed, not the posts before)
        while (event := await more[0].next(0.3)) is not None:
            seen.append(event)
        assert [e.fields["task"] for e in seen if e.type == EventType.TASK_POSTED] == [late.id]
        assert EventType.TASK_CLAIMED in {e.type for e in seen}
        for listener in (posted, of_task, *more):
            listener.close()
        assert (fanout.listening, fanout.following) == (0, False)
        await _until(lambda: _xreads(raw) == 0)  # nobody listens: no wait stays blocked

    _run(server, body)


class _PostingGate:
    """A gate (as the dashboard's) that, around the first call once ``armed``, makes an event
    the follower hands out before that call reads (``during``: it is in the page read too)
    and one it hands out after (``after``: in the queue only)."""

    def __init__(self, worker: Swarm) -> None:
        self.worker = worker
        self.witness: Listener | None = None
        self.armed = False
        self.during: str | None = None
        self.after: str | None = None

    async def _post_and_see(self, text: str) -> str:
        assert self.witness is not None
        task = await asyncio.to_thread(self.worker.post_task, "q", text)
        seen = await self.witness.next(5)  # the follower handed it to every listener
        assert seen is not None and seen.fields["task"] == task.id
        return task.id

    async def __aenter__(self) -> None:
        if self.armed:
            self.during = await self._post_and_see("posted as the backlog is read")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.armed:
            self.armed = False
            self.after = await self._post_and_see("posted once the page was read")


def test_an_event_that_comes_while_a_listener_reads_its_backlog_is_given_once(
    server: RedisServer,
) -> None:
    from redis_swarm._event_fanout import EventFanout

    async def body(worker: Swarm, swarm: AsyncSwarm, raw: redis.Redis) -> None:
        since = await swarm.last_event_id()
        gate = _PostingGate(worker)
        fanout = EventFanout(swarm, types=[EventType.TASK_POSTED], block_s=0.2, gate=gate)
        gate.witness = await fanout.listen(None)  # starts the follower (the gate not armed)
        before = worker.post_task("q", "posted before the listener")
        seen = await gate.witness.next(5)
        assert seen is not None and seen.fields["task"] == before.id
        gate.armed = True
        late = await fanout.listen(since)  # its backlog: up to `before`, at least
        got = []
        while (event := await late.next(0.5)) is not None:
            got.append(event.fields["task"])
        assert gate.during is not None and gate.after is not None
        assert got == [before.id, gate.during, gate.after]  # each once, in order
        late.close()
        gate.witness.close()

    _run(server, body)


def test_a_listener_that_falls_behind_is_dropped_and_the_others_keep_their_events(
    server: RedisServer,
) -> None:
    from redis_swarm._event_fanout import EventFanout, FellBehind

    async def body(worker: Swarm, swarm: AsyncSwarm, raw: redis.Redis) -> None:
        fanout = EventFanout(swarm, types="task", buffer=5, block_s=0.2, rejoin="come back")
        slow = await fanout.listen(None)
        fast = await fanout.listen(None)
        posted = []
        for i in range(8):  # one at a time: fast's queue never holds more than one
            task = await asyncio.to_thread(worker.post_task, "q", f"event {i}")
            event = await fast.next(5)
            assert event is not None and event.fields["task"] == task.id
            posted.append(task.id)
        with pytest.raises(FellBehind, match=r"fell more than 5 events behind .*: come back"):
            await slow.next(1)
        assert await slow.next(0.3) is None  # (dropped: nothing more is queued for it)
        again = await asyncio.to_thread(worker.post_task, "q", "after the drop")
        event = await fast.next(5)
        assert event is not None and event.fields["task"] == again.id
        assert fanout.following
        slow.close()
        fast.close()

    _run(server, body)


def test_a_closed_fanout_ends_every_listener_now_and_later(server: RedisServer) -> None:
    from redis_swarm._event_fanout import Closed, EventFanout

    async def body(worker: Swarm, swarm: AsyncSwarm, raw: redis.Redis) -> None:
        since = await swarm.last_event_id()
        fanout = EventFanout(swarm, block_s=0.2)
        task = worker.post_task("q", "quiet")
        waiting = await fanout.listen(since, types="task", where=_of_task(task.id))
        idle = await fanout.listen(None, types=[EventType.AGENT_JOINED])
        pending = await fanout.listen(None, types="task")
        witness = await fanout.listen(None, types="task")
        other = worker.post_task("q", "handed out before the close")
        seen = await witness.next(5)  # the follower handed it to every listener: it waits
        assert seen is not None and seen.fields["task"] == other.id
        await fanout.aclose()
        assert not fanout.following
        got = await waiting.next(5)
        assert got is not None and got.fields["task"] == task.id  # (its backlog), then the end
        for listener in (waiting, idle):
            with pytest.raises(Closed, match="was closed"):
                await listener.next(5)
        got = await pending.next(5)
        assert got is not None and got.fields["task"] == other.id  # (queued), then the end
        with pytest.raises(Closed):
            await pending.next(5)
        later = await fanout.listen(since, types="task", where=_of_task(task.id))
        got = await later.next(5)
        assert got is not None and got.type == EventType.TASK_POSTED  # the same: no wait
        with pytest.raises(Closed):
            await later.next(5)
        assert not fanout.following  # a listener after the close started none
        for listener in (waiting, idle, pending, witness, later):
            listener.close()
        await _until(lambda: _xreads(raw) == 0)

    _run(server, body)


# --- the A2A server's waiters


async def _drain(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


def test_an_a2a_subscriber_that_falls_behind_is_ended_not_buffered(server: RedisServer) -> None:
    """A client that reads its stream more slowly than its task's events come (one renewed
    more than 1,000 times while it does not read) is ended, as a stream ends when following
    fails; another waiter on the task gets every event. It was buffered without end."""
    most = 1000  # (the feed's bound: _event_fanout.BUFFER)

    async def body(worker: Swarm, swarm: AsyncSwarm, raw: redis.Redis) -> None:
        since = await swarm.last_event_id()
        feed = TaskFeed(swarm, block_s=0.5)
        task = worker.post_task("q", "renewed often")
        claimed = worker.claim("q", worker="w")
        assert claimed is not None and claimed.id == task.id
        slow = feed.events(task.id, since)
        first = await anext(slow)  # (it registered; then it stops reading)
        assert first.type == EventType.TASK_POSTED
        witness = asyncio.create_task(_drain(feed.events(task.id, since)))

        def renew() -> str:
            for _ in range(most + 1):
                worker.renew(claimed.id, claimed.token)
            last = worker.events(types="task", newest=True, limit=1)
            return last[0].id

        newest = await asyncio.to_thread(renew)
        with pytest.raises(Exception) as ended:
            await asyncio.wait_for(_drain(slow), 10)
        assert type(ended.value).__name__ == "FellBehind", repr(ended.value)
        assert f"fell more than {most} events behind" in str(ended.value)
        assert "SubscribeToTask" in str(ended.value)
        feed.close()  # (ends the witness, which read on)
        seen = await asyncio.wait_for(witness, 10)
        assert [e.type for e in seen[:2]] == [EventType.TASK_POSTED, EventType.TASK_CLAIMED]
        assert len(seen) == most + 3 and seen[-1].id == newest
        assert feed.listening == 0

    _run(server, body)


def test_an_a2a_stream_that_fell_behind_ends_with_an_a2a_error() -> None:
    """What the stream's client reads: the A2A server's internal error, in its words."""
    from a2a.utils.errors import InternalError

    from redis_swarm._event_fanout import FellBehind
    from redis_swarm.a2a_server._handler import swarm_errors

    behind = r"fell more than 3 events behind .*SubscribeToTask"
    with pytest.raises(InternalError, match=behind), swarm_errors(SWARM):
        raise FellBehind(3, "subscribe again (SubscribeToTask) from the last update")


# --- a long backlog, and the fan-out's end


async def _post(worker: Swarm, n: int, text: str, seen_by: Listener | None = None) -> list[str]:
    """Post ``n`` tasks (one event each), one at a time, each handed out by the follower
    before the next (``seen_by`` got it: its queue never holds more than one): their ids."""
    ids = []
    for i in range(n):
        ids.append((await asyncio.to_thread(worker.post_task, "q", f"{text} {i}")).id)
        if seen_by is not None:
            event = await seen_by.next(5)
            assert event is not None and event.fields["task"] == ids[-1]
    return ids


def test_a_listener_reading_a_long_backlog_is_not_dropped_for_the_live_events(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live events that fill the queue of a listener still reading its backlog (pages of 4
    here) say nothing of its pace: it catches up, every event once, in order. Once its
    backlog is read, falling behind drops it as before."""
    from redis_swarm import _event_fanout
    from redis_swarm._event_fanout import EventFanout, FellBehind

    monkeypatch.setattr(_event_fanout, "BACKLOG_PAGE", 4)

    async def body(worker: Swarm, swarm: AsyncSwarm, raw: redis.Redis) -> None:
        since = await swarm.last_event_id()
        backlog = await _post(worker, 10, "before")
        fanout = EventFanout(swarm, types="task", buffer=5, block_s=0.2)
        witness = await fanout.listen(None)
        late = await fanout.listen(since)
        first = await late.next(5)  # (a page of its backlog read: four events)
        assert first is not None and first.fields["task"] == backlog[0]
        live = await _post(worker, 8, "live", witness)  # its queue holds 5 at most
        more = await _post(worker, 3, "later", witness)
        got = [first.fields["task"]]
        while (event := await late.next(0.5)) is not None:
            got.append(event.fields["task"])
        assert got == backlog + live + more  # each once, in order: not FellBehind
        await _post(worker, 6, "unread", witness)  # its backlog read: now it is behind
        with pytest.raises(FellBehind):
            await late.next(1)
        late.close()
        witness.close()

    _run(server, body)


def test_a_closed_fanout_asks_redis_nothing_for_a_new_listener(servers: ServerFactory) -> None:
    """A listener after ``close`` is handed its end without a call to Redis: with its server
    gone at shutdown, ``listen`` no longer raises ConnectionFailed."""
    from redis_swarm._event_fanout import Closed, EventFanout

    gone = servers.start()
    url = gone.url
    gone.stop()

    async def run() -> None:
        async with AsyncSwarm(url, swarm=SWARM) as swarm:
            fanout = EventFanout(swarm, block_s=0.2)
            fanout.close()
            listener = await asyncio.wait_for(fanout.listen(None), 10)
            with pytest.raises(Closed):
                await listener.next(1)
            assert not fanout.following
            listener.close()

    asyncio.run(run())


def test_aclose_waits_for_a_follower_stopped_when_its_last_listener_left(
    server: RedisServer,
) -> None:
    async def body(worker: Swarm, swarm: AsyncSwarm, raw: redis.Redis) -> None:
        from redis_swarm._event_fanout import EventFanout

        fanout = EventFanout(swarm, block_s=5)
        listener = await fanout.listen(None)
        await _until(lambda: _xreads(raw) == 1)
        reader = fanout._reader
        assert reader is not None
        listener.close()  # the last one: its follower is cancelled
        await fanout.aclose()
        assert reader.done()  # (waited for, not left running past the fan-out)

    _run(server, body)
