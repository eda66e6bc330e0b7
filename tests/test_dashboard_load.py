"""The dashboard under load, against real Redis: open event streams share one follower (a
hundred tabs no longer take every connection of its handle), a burst of requests waits its
turn instead of meeting the core's advice for claim callers, a token given two ways with
two values is refused, and a lost Redis is logged once, and its return once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import httpx
import pytest
import redis

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm.dashboard.app import create_app

from ._servers import RedisServer, ServerFactory
from ._sse import SSEClient

SWARM = "load"
BASE = "http://127.0.0.1:8765"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def _url(redis_url: str, **options: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"{redis_url}{'&' if '?' in redis_url else '?'}{query}" if query else redis_url


def _http(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


def test_open_event_streams_take_no_connection_of_their_own(redis_url: str) -> None:
    """Thirty open streams on a handle of 8 connections: the status is still read, and every
    stream gets a new event. (Each stream followed the log itself: 8 of them took every
    connection, the status was refused 503, and the streams over 8 failed.)"""

    async def scenario() -> None:
        swarm = AsyncSwarm(_url(redis_url, max_connections=8), swarm=SWARM)
        app = create_app(swarm, close_swarm=True)
        clients = [SSEClient(app, "/api/events") for _ in range(30)]
        try:
            for client in clients:
                await client.__aenter__()
                assert client.status == 200
            async with _http(app) as http:
                status = await http.get("/api/status")
                assert status.status_code == 200, status.text
            with Swarm(redis_url, swarm=SWARM) as sync:
                task = sync.post_task("q", "one event for every viewer")
            for client in clients:
                message = await client.next(10)
                assert message.event == "task.posted", message
                assert message.data["fields"]["task"] == task.id
        finally:
            for client in clients:
                await client.__aexit__(None, None, None)
            await swarm.aclose()

    run(scenario())


def test_one_stream_over_the_most_is_refused_503(redis_url: str) -> None:
    async def scenario() -> None:
        swarm = AsyncSwarm(redis_url, swarm=SWARM)
        app = create_app(swarm, close_swarm=True, max_streams=3)
        clients = [SSEClient(app, "/api/events") for _ in range(3)]
        try:
            for client in clients:
                await client.__aenter__()
                assert client.status == 200
            async with _http(app) as http:
                over = await http.get("/api/events")
                assert over.status_code == 503
                assert over.json()["error"] == "TooManyStreams"
                assert "already serves 3 event streams" in over.json()["message"]
                assert over.headers["retry-after"] == "1"
                # One closed: the next one is served again.
                await clients.pop().__aexit__(None, None, None)
                async with SSEClient(app, "/api/events") as again:
                    assert again.status == 200
        finally:
            for client in clients:
                await client.__aexit__(None, None, None)
            await swarm.aclose()

    run(scenario())


def test_the_streams_share_one_follower_that_stops_when_nobody_listens(redis_url: str) -> None:
    from redis_swarm.dashboard._feed import EventHub  # (here: the module's others run on HEAD)

    async def scenario() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            hub = EventHub(swarm, block_s=0.2)
            since = await swarm.last_event_id()
            with Swarm(redis_url, swarm=SWARM) as sync:
                before = sync.post_task("q", "before the streams opened")
                first = await hub.open(since, None)  # resumes: reads the backlog itself
                second = await hub.open(None, None)  # from now on
                assert (hub.streams, hub.following) == (2, True)
                after = sync.post_task("q", "after")
            got = await first.next(5)
            assert got is not None and got.fields["task"] == before.id
            got = await first.next(5)
            assert got is not None and got.fields["task"] == after.id
            got = await second.next(5)
            assert got is not None and got.fields["task"] == after.id
            assert await first.next(0.3) is None and await second.next(0.01) is None
            first.close()
            second.close()
            assert (hub.streams, hub.following) == (0, False)
            await hub.aclose()

    run(scenario())


def test_a_stream_that_falls_behind_is_dropped_not_buffered(redis_url: str) -> None:
    from redis_swarm.dashboard._feed import EventHub, FellBehind

    async def scenario() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            hub = EventHub(swarm, buffer=5, block_s=0.2)
            slow = await hub.open(None, None)
            with Swarm(redis_url, swarm=SWARM) as sync:
                for i in range(10):
                    sync.post_task("q", f"event {i}")

            async def read_all() -> None:
                for _ in range(20):
                    await slow.next(2)

            with pytest.raises(FellBehind, match="fell more than 5 events behind"):
                await read_all()
            slow.close()
            await hub.aclose()

    run(scenario())


def test_a_closed_hub_ends_its_streams_and_opens_none(redis_url: str) -> None:
    """At shutdown the open streams end (they waited for an event for ever, only the app's
    own stop ending them), and a stream opened after starts no follower nobody cancels."""
    from redis_swarm.dashboard._feed import EventHub, HubStopped

    async def scenario() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            hub = EventHub(swarm, block_s=0.2)
            stream = await hub.open(None, None)
            await hub.aclose()
            with pytest.raises(HubStopped, match="the dashboard is stopping"):
                await stream.next(5)
            stream.close()
            with pytest.raises(HubStopped):
                await hub.open(None, None)
            assert not hub.following

    run(scenario())


def test_a_burst_of_requests_waits_its_turn(redis_url: str) -> None:
    """120 status reads at once on a handle of 10 connections: each waits its turn and is
    answered 200 (they were refused 503 with the core's advice for claim callers)."""

    async def scenario() -> None:
        with Swarm(redis_url, swarm=SWARM) as sync:
            for owner in ("a", "b", "c", "d", "e", "f"):
                sync.publish_context(owner, f"context of {owner}", source="notes.md")
        swarm = AsyncSwarm(_url(redis_url, max_connections=10), swarm=SWARM)
        app = create_app(swarm, close_swarm=True)
        try:
            async with _http(app) as http:
                answers = await asyncio.gather(*(http.get("/api/status") for _ in range(120)))
        finally:
            await swarm.aclose()
        refused = [a.text for a in answers if a.status_code != 200]
        assert not refused, refused[0]

    run(scenario())


def test_a_request_that_waits_too_long_is_told_the_dashboard_is_busy(
    redis_server: RedisServer,
) -> None:
    """Redis paused under a handle of 5 connections (one turn): the requests over it wait
    their turn 0.2 s, then are answered 503 "busy", with Retry-After."""

    async def scenario() -> None:
        swarm = AsyncSwarm(_url(redis_server.url, max_connections=5), swarm=SWARM)
        app = create_app(swarm, close_swarm=True, busy_wait_s=0.2)
        try:
            async with _http(app) as http:
                assert (await http.get("/api/status")).status_code == 200
                pauser = redis.Redis.from_url(redis_server.url)
                pauser.client_pause(1500)  # (every command, reads too)
                pauser.close()
                answers = await asyncio.gather(*(http.get("/api/status") for _ in range(4)))
        finally:
            await swarm.aclose()
        busy = [a for a in answers if a.status_code == 503]
        assert len(busy) == 3, [a.text for a in answers]
        assert sum(a.status_code == 200 for a in answers) == 1
        for answer in busy:
            assert answer.json()["error"] == "Busy"
            assert answer.json()["message"].startswith("the dashboard is busy")
            assert "try again" in answer.json()["message"]
            assert "connection problem" not in answer.text and "claim" not in answer.text
            assert answer.headers["retry-after"] == "1"

    run(scenario())


@pytest.mark.parametrize(
    ("header", "query"), [("wrong", "s3cret-token"), ("s3cret-token", "wrong")]
)
def test_a_token_given_two_ways_with_two_values_is_refused(
    redis_url: str, header: str, query: str
) -> None:
    """Whichever of the two is right: the header no longer wins silently."""

    async def scenario() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            app = create_app(swarm, token="s3cret-token")
            async with _http(app) as http:
                refused = await http.get(
                    "/api/status",
                    params={"token": query},
                    headers={"Authorization": f"Bearer {header}"},
                )
                assert refused.status_code == 400
                message = refused.json()["message"]
                assert "Authorization header and in ?token=" in message and "once" in message
                assert "s3cret" not in message and "wrong" not in message
                assert refused.headers["x-content-type-options"] == "nosniff"
                same = await http.get(
                    "/api/status",
                    params={"token": "s3cret-token"},
                    headers={"Authorization": "Bearer s3cret-token"},
                )
                assert same.status_code == 200

    run(scenario())


@pytest.fixture
def server(servers: ServerFactory) -> RedisServer:
    """A server of this test's own (it is stopped and restarted)."""
    return servers.start(appendonly=True)


def test_a_lost_redis_is_logged_once_and_its_return_once(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        # (no retries: each request fails at once while the server is down)
        swarm = AsyncSwarm(_url(server.url, retries=0, connect_timeout=1), swarm=SWARM)
        app = create_app(swarm, close_swarm=True)
        try:
            async with _http(app) as http:
                assert (await http.get("/api/status")).status_code == 200
                server.stop()
                for _ in range(3):
                    assert (await http.get("/api/status")).status_code == 503
                server.restart()
                for _ in range(3):
                    assert (await http.get("/api/status")).status_code == 200
        finally:
            await swarm.aclose()

    with caplog.at_level(logging.INFO, logger="redis_swarm.dashboard"):
        run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "redis_swarm.dashboard"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Redis unreachable at ") and "cannot reach Redis" in lines[0]
    assert lines[1].startswith("Redis answers again at ") and "unreachable since" in lines[1]
