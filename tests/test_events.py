"""The event stream: contents, filters, paging, following (both shells)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest

from redis_swarm import AsyncSwarm, Event, EventType, Limits, Swarm, ValidationError
from redis_swarm._keys import Keys

from ._cancel import lose_a_cancellation
from ._handles import untyped
from ._raw import raw_client


def _activity(swarm: Swarm) -> None:
    swarm.register("shard", name="s1")
    swarm.register("worker", name="w1", parent="s1")
    swarm.publish_context("s1", "hello\n", source="notes.md")
    swarm.send("s1", "done", sender="w1")
    swarm.broadcast("all", sender="s1")
    swarm.request_synthesis("s1", "Pass 1", "go")
    swarm.deregister("w1")


def test_every_event_a_script_emits_is_an_event_type() -> None:
    """EventType is the one list of event names: a script may append no other, and every
    name in it is appended by some script."""
    lua = resources.files("redis_swarm") / "lua"
    sources = [f.read_text() for f in lua.iterdir() if f.name.endswith(".lua")]
    # An event name is the only dotted word a script quotes ('task.claimed').
    emitted = {name for text in sources for name in re.findall(r"'([a-z_]+\.[a-z_]+)'", text)}
    assert emitted == {t.value for t in EventType}
    # And every emit names its type with such a literal (task_event too, by the same rule).
    for text in sources:
        for call in re.findall(r"\b(?:emit|task_event)\(([^)]*)", text):
            if "etype" not in call:  # the helpers' own definitions pass it through
                assert re.search(r"'[a-z_]+\.[a-z_]+'", call), call


def test_every_change_is_recorded(swarm: Swarm) -> None:
    _activity(swarm)
    events = swarm.events()
    assert all(isinstance(e, Event) for e in events)
    assert [e.type for e in events] == [
        EventType.AGENT_JOINED,
        EventType.AGENT_JOINED,
        EventType.CONTEXT_PUBLISHED,
        EventType.MESSAGE_SENT,
        EventType.MESSAGE_SENT,
        EventType.MESSAGE_SENT,
        EventType.SYNTHESIS_REQUESTED,
        EventType.AGENT_LEFT,
    ]
    ids = [e.id for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    assert all(e.at == int(e.id.split("-")[0]) for e in events)
    published = events[2].fields
    assert published["owner"] == "s1" and published["size_bytes"] == "6"
    assert published["version"] == swarm.context_info("s1").version
    assert events[3].fields == {
        "message": events[3].fields["message"],
        "to": "s1",
        "from": "w1",
        "kind": "text",
    }
    assert events[4].fields["to"] == "*"
    assert events[7].fields == {"agent": "w1", "unread": "0"}
    # A republish of identical content changes nothing and records nothing.
    swarm.publish_context("s1", "hello\n", source="notes.md")
    assert len(swarm.events()) == len(events)


def test_filters_and_paging(swarm: Swarm) -> None:
    _activity(swarm)
    everything = swarm.events()
    agents = swarm.events(types=["agent"])
    assert [e.type.value for e in agents] == ["agent.joined", "agent.joined", "agent.left"]
    assert swarm.events(types="agent.*") == agents
    assert swarm.events(types=EventType.AGENT_LEFT) == agents[-1:]
    assert swarm.events(types=[EventType.CONTEXT_PUBLISHED, "synthesis.requested"]) == [
        e for e in everything if e.type.value in ("context.published", "synthesis.requested")
    ]
    # Paging: pass the last id back as since (exclusive).
    first = swarm.events(limit=3)
    rest = swarm.events(since=first[-1].id)
    assert first + rest == everything
    assert swarm.events(since=everything[-1].id) == []
    # since as a time in ms is inclusive.
    assert swarm.events(since=everything[2].at)[0].at == everything[2].at
    assert swarm.events(types="agent", limit=1) == agents[:1]
    for bad in ["nope", "task.nope", "agent.joined.x"]:
        with pytest.raises(ValidationError, match="unknown event type"):
            swarm.events(types=[bad])
    for since in ["yesterday", -1, 1.5, "1-2-3"]:
        with pytest.raises(ValidationError, match="since"):
            untyped(swarm).events(since=since)
    for limit in [0, 100_000]:
        with pytest.raises(ValidationError, match="limit"):
            swarm.events(limit=limit)
    # The newest: the last ones, still oldest first, within since and the type filter.
    assert swarm.events(limit=3, newest=True) == everything[-3:]
    assert swarm.events(newest=True) == everything
    assert swarm.events(types="agent", limit=2, newest=True) == agents[-2:]
    assert swarm.events(since=everything[-3].id, limit=10, newest=True) == everything[-2:]
    assert swarm.events(since=everything[-1].id, newest=True) == []
    with pytest.raises(ValidationError, match="newest"):
        untyped(swarm).events(newest="yes")


def test_filters_page_through_many_events(server_url: str) -> None:
    with Swarm(server_url, swarm="test") as s:
        s.register("shard", name="s1")
        with raw_client(server_url) as r, r.pipeline(transaction=False) as pipe:
            for i in range(2500):  # other areas' events, as the work queue writes them
                pipe.xadd(Keys("test").events, {"type": "task.posted", "task": f"t-{i}"})
            pipe.execute()
        s.register("shard", name="s2")
        joined = s.events(types="agent.joined")
        assert [e.fields["agent"] for e in joined] == ["s1", "s2"]
        assert len(s.events(limit=10_000)) == 2502
        assert len(s.events(types="task", limit=2000)) == 2000
        # back through the pages to the first match
        assert [e.fields["agent"] for e in s.events(types="agent", newest=True)] == ["s1", "s2"]
        newest = s.events(types="task", limit=1500, newest=True)
        assert [e.fields["task"] for e in newest] == [f"t-{i}" for i in range(1000, 2500)]


def test_the_stream_is_capped(server_url: str) -> None:
    with Swarm(server_url, swarm="test", limits=Limits(events_maxlen=100)) as s:
        s.register("shard", name="s1")
        for i in range(400):
            s.send("s1", str(i))
        with raw_client(server_url) as r:
            assert 100 <= r.xlen(Keys("test").events) <= 250


def test_follow_events_sync(server_url: str) -> None:
    with Swarm(server_url, swarm="test") as s:
        s.register("shard", name="old")  # before following: not yielded

        def later() -> None:
            time.sleep(0.2)
            with Swarm(server_url, swarm="test") as other:
                other.register("worker", name="w1")
                other.send("old", "hi")
                other.register("worker", name="w2")

        threading.Thread(target=later).start()
        got: list[Event] = []
        for event in s.follow_events(types=["agent.joined"], block_s=0.5):
            got.append(event)
            if len(got) == 2:
                break
        assert [e.fields["agent"] for e in got] == ["w1", "w2"]
        # Following from a past id replays what came after it.
        first = s.events()[0]
        replay = s.follow_events(since=first.id, block_s=0.1)
        assert next(replay).fields["agent"] == "w1"
        # From a time in ms: inclusive.
        assert next(s.follow_events(since=first.at, block_s=0.1)).id == first.id


def test_follow_events_async(server_url: str) -> None:
    async def main() -> list[str]:
        async with AsyncSwarm(server_url, swarm="test") as s:
            got: list[str] = []

            async def produce() -> None:
                await asyncio.sleep(0.2)
                await s.register("worker", name="a1")
                await s.broadcast("x")
                await s.register("worker", name="a2")

            # Followed from before the first registration (a time in ms is inclusive): a
            # cursor taken at the first read could come after it on a loaded machine.
            since = int(time.time() * 1000)
            task = asyncio.create_task(produce())
            async for event in s.follow_events(types="agent", since=since, block_s=0.5):
                got.append(event.fields["agent"])
                if len(got) == 2:
                    break
            await task
            return got

    assert asyncio.run(asyncio.wait_for(main(), 30)) == ["a1", "a2"]


def test_follow_events_async_stops_after_a_lost_cancellation(server_url: str) -> None:
    """A cancellation whose CancelledError was swallowed (as Python 3.11's wait_for can do
    inside redis-py) still stops the follower at its next step, instead of following on."""

    async def main() -> list[str]:
        async with AsyncSwarm(server_url, swarm="test") as s:
            since = int(time.time() * 1000)
            for name in ("a1", "a2", "a3"):
                await s.register("worker", name=name)
            got: list[str] = []

            async def follow() -> None:
                async for event in s.follow_events(
                    types="agent", since=since, block_s=0.2, timeout_s=5
                ):
                    got.append(event.fields["agent"])
                    await lose_a_cancellation(asyncio.sleep(0))

            with pytest.raises(asyncio.CancelledError):
                await follow()
            return got

    assert asyncio.run(asyncio.wait_for(main(), 30)) == ["a1"]


def test_follow_events_waits_quietly(server_url: str) -> None:
    """With nothing happening, each wait returns after block_s and the loop goes on."""
    with Swarm(server_url, swarm="test") as s:
        stream = s.follow_events(block_s=0.1)

        def poke() -> None:
            time.sleep(0.5)
            with Swarm(server_url, swarm="test") as other:
                other.register("worker", name="late")

        threading.Thread(target=poke).start()
        start = time.monotonic()
        assert next(stream).fields["agent"] == "late"
        assert time.monotonic() - start >= 0.4


def test_last_event_id_pins_now(swarm: Swarm) -> None:
    assert swarm.last_event_id() == "0-0"
    swarm.post_task("q.pin", "one")
    pinned = swarm.last_event_id()
    assert pinned == swarm.events()[-1].id
    later = swarm.post_task("q.pin", "two")
    after = swarm.events(since=pinned)
    assert [e.fields["task"] for e in after] == [later.id]


def test_follow_events_ends_at_its_timeout_however_quiet(server_url: str) -> None:
    with Swarm(server_url, swarm="test") as s:
        s.register("worker", name="before")
        start = time.monotonic()
        assert list(s.follow_events(block_s=5.0, timeout_s=0.3)) == []
        assert 0.25 <= time.monotonic() - start < 2.0  # not the 5 s of one wait
        # what came before the deadline is yielded, then it ends
        first = s.events()[0]
        replayed = list(s.follow_events(since=first.at, timeout_s=0.2))  # inclusive
        assert [e.fields["agent"] for e in replayed] == ["before"]

    async def main() -> list[Event]:
        async with AsyncSwarm(server_url, swarm="test") as a:
            return [event async for event in a.follow_events(timeout_s=0.2)]

    start = time.monotonic()
    assert asyncio.run(main()) == []
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize(("block_s", "timeout_s"), [(0, None), (-1, None), (1.0, -1.0)])
def test_follow_events_refuses_bad_waits(server_url: str, block_s: float, timeout_s: Any) -> None:
    with Swarm(server_url, swarm="test") as s, pytest.raises(ValidationError):
        next(s.follow_events(block_s=block_s, timeout_s=timeout_s))


def test_a_since_in_the_future_is_refused(server_url: str) -> None:
    """An id or a time after both the clock and the newest event was never sent: a listing
    from it would be empty and a follow silent until then (docs/cli.md, docs/dashboard.md),
    so every read from a since refuses it, naming the newest event."""
    with Swarm(server_url, swarm="test") as swarm:
        _refuses_the_future(swarm)

    async def follow(since: str) -> list[Event]:
        async with AsyncSwarm(server_url, swarm="test") as a:
            return [event async for event in a.follow_events(since=since, timeout_s=0.1)]

    with pytest.raises(ValidationError, match="is in the future"):
        asyncio.run(follow("99999999999999-0"))


def _refuses_the_future(swarm: Swarm) -> None:
    swarm.post_task("q.future", "one")
    newest = swarm.last_event_id()
    next_year = int(time.time() * 1000) + 86_400_000 * 365
    for since in (next_year, f"{next_year}-0", "99999999999999-0"):
        reads: tuple[Callable[[str | int], object], ...] = (
            lambda at: swarm.events(since=at),
            lambda at: swarm.events(since=at, newest=True),
            swarm.events_trimmed,
            lambda at: next(iter(swarm.follow_events(since=at, timeout_s=0.1)), None),
        )
        for read in reads:
            with pytest.raises(ValidationError) as refused:
                read(since)
            message = str(refused.value)
            assert message.startswith(f"since '{since}' (")
            assert f"is in the future (the newest event is {newest} (" in message
    # the present and the past are read as before: nothing refused
    now = int(time.time() * 1000)
    assert swarm.events(since=now + 1000) == []  # within the clock's slack
    assert [e.id for e in swarm.events(since=0)] == [newest]


def test_a_since_ahead_of_a_lagging_clock_but_not_of_the_events_is_read(server_url: str) -> None:
    """The server's clock stamps the event ids: a handle whose clock lags it by an hour
    still reads from the newest event's time (it is there), and refuses only past it."""
    lagging = lambda: int(time.time() * 1000) - 3_600_000  # noqa: E731
    with Swarm(server_url, swarm="test", clock=lagging) as s:
        s.post_task("q.lag", "one")
        newest = s.events()[-1]
        assert [e.id for e in s.events(since=newest.at)] == [newest.id]
        assert list(s.follow_events(since=newest.at, timeout_s=0.1)) == [newest]
        with pytest.raises(ValidationError, match="is in the future"):
            s.events(since=newest.at + 86_400_000)
