"""Stopping calls: an ``AsyncSwarm`` call whose task is cancelled raises CancelledError (even
when Python 3.11's ``asyncio.wait_for``, which redis-py wraps around every command, loses the
cancellation), a cancelled claim leaves no task leased to nobody, and closing a handle stops
the calls still running on it (another task's, another thread's) instead of letting
redis-py's retry reconnect them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from redis_swarm import AsyncSwarm, Swarm, TaskSpec
from redis_swarm._errors import Conflict
from redis_swarm._models import TaskStatus

from ._proxy import LatencyProxy
from ._servers import RedisServer, ServerFactory

SWARM = "cancel"


def _eventually(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _clients(own: redis.Redis) -> int:
    """The connections open on the server (``own``'s among them)."""
    return int(own.info("clients")["connected_clients"])


def _blocked(own: redis.Redis) -> bool:
    return int(own.info("clients")["blocked_clients"]) >= 1


async def _cancelled_at_once(call: Callable[[], Awaitable[Any]]) -> Any:
    """``call()`` in a task cancelled as soon as it runs (suspended in its first request):
    what awaiting the task gave (CancelledError when the cancellation was honoured)."""
    task = asyncio.ensure_future(call())
    await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError as exc:
        return exc


# --- D1: a cancellation is never lost


def test_a_cancelled_call_raises_even_when_its_reply_came_with_the_cancellation(
    redis_url: str,
) -> None:
    """Cancelled while its request is in flight, a call raises CancelledError: it never
    returns its result as if nothing happened (redis-py's wait_for, on Python 3.11, returns
    the reply and drops the cancellation). A cancelled claim leaves no task claimed."""

    async def main() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            (posted,) = await swarm.post_tasks([TaskSpec("q", "t")])
            calls: dict[str, Callable[[], Awaitable[Any]]] = {
                "ping": swarm.ping,
                "get_task": lambda: swarm.get_task(posted.id),
                "claim": lambda: swarm.claim("q", worker="w"),
            }
            for name, call in calls.items():
                for _ in range(20):
                    got = await _cancelled_at_once(call)
                    assert isinstance(got, asyncio.CancelledError), (name, got)
            task = await swarm.get_task(posted.id)
            assert task.status is TaskStatus.PENDING and task.abandons == 0

    asyncio.run(main())


def test_a_cancelled_worker_loop_stops(redis_url: str) -> None:
    """A worker loop (claim with a wait, report) stops when its task is cancelled, wherever
    the cancellation finds it."""

    async def worker(swarm: AsyncSwarm, reported: list[str]) -> None:
        while True:
            task = await swarm.claim("q", worker="w", wait_s=0.05)
            if task is not None:
                await swarm.report(task.id, task.token, {"summary": "ok"})
                reported.append(task.id)

    async def main() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            await swarm.post_tasks([TaskSpec("q", "t") for _ in range(60)])
            for round_ in range(10):
                reported: list[str] = []
                loop = asyncio.create_task(worker(swarm, reported))
                for _ in range(round_ % 4):  # cancelled at several points of its loop
                    await asyncio.sleep(0)
                loop.cancel()
                done, _ = await asyncio.wait({loop}, timeout=10)
                assert loop in done and loop.cancelled(), f"round {round_}: still running"

    asyncio.run(main())


def test_a_task_that_caught_a_cancellation_can_still_call(redis_url: str) -> None:
    """Only a cancellation that comes during a call stops it: a task that caught one (and
    did not ``uncancel()``) goes on calling."""

    async def main() -> None:
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            started = asyncio.Event()

            async def shrugs() -> float:
                try:
                    started.set()
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    pass
                return await swarm.ping()

            task = asyncio.create_task(shrugs())
            await started.wait()
            task.cancel()
            assert isinstance(await task, float)  # (ping: the round trip's seconds)

    asyncio.run(main())


# --- D3: a cancelled claim gives back what it leased


@pytest.mark.parametrize("n", [None, 3])
def test_a_claim_cancelled_while_its_reply_is_on_the_way_releases_its_tasks(
    n: int | None, redis_server: RedisServer, redis_url: str
) -> None:
    """The claim script ran (its tasks are claimed on the server) and its reply is still on
    the way when the claim is cancelled: the reply is read all the same and the tasks
    released, neither a failure nor an abandon, before CancelledError goes on."""
    with (
        LatencyProxy(redis_server.port or 0) as link,
        Swarm(redis_url, swarm=SWARM) as near,
    ):
        posted = near.post_tasks([TaskSpec("q", "t") for _ in range(3)])
        leased = 1 if n is None else n

        async def main() -> None:
            async with AsyncSwarm(link.url, swarm=SWARM) as far:
                await far.ping()  # (connected: the claim is one round trip)
                # (each way: the reply comes 0.5 s after the script ran, within the drain)
                link.delay_s = 0.5
                claim = asyncio.create_task(far.claim("q", worker="w", n=n))
                while near.queue_stats()["q"]["claimed"] < leased:
                    assert not claim.done()
                    await asyncio.sleep(0.005)
                claim.cancel()
                link.delay_s = 0.0
                with pytest.raises(asyncio.CancelledError):
                    await claim

        asyncio.run(main())
        assert near.queue_stats()["q"]["pending"] == 3
        for task in posted:
            task = near.get_task(task.id)
            assert task.status is TaskStatus.PENDING, task
            assert task.abandons == 0 and task.failures == 0


# --- D2: closing stops the calls still running


def test_aclose_stops_a_waiting_claim_without_reconnecting_it(
    own_server: RedisServer, own: redis.Redis
) -> None:
    """aclose() while another task's claim waits: the claim raises Conflict at once (not
    reconnected by redis-py's retry to wait to its end), and no connection stays open."""

    before = _clients(own)

    async def main() -> None:
        swarm = AsyncSwarm(own_server.url, swarm=SWARM)
        claim = asyncio.create_task(swarm.claim("q", worker="w", wait_s=60))
        while not _blocked(own):
            assert not claim.done()
            await asyncio.sleep(0.01)
        await swarm.aclose()
        done, _ = await asyncio.wait({claim}, timeout=10)
        assert claim in done, "the claim went on after aclose()"
        with pytest.raises(Conflict, match="closed"):
            claim.result()

    asyncio.run(main())
    _eventually("a connection stayed open after aclose()", lambda: _clients(own) <= before)


def test_aclose_lets_a_stopped_ask_withdraw_its_question(
    own_server: RedisServer, own: redis.Redis
) -> None:
    """An ask stopped by aclose() gives up its question as an interrupted ask does (nobody
    waits for its answer now), then raises Conflict."""

    async def main() -> None:
        swarm = AsyncSwarm(own_server.url, swarm=SWARM)
        await swarm.publish_context("owner", "what the owner knows", source="owner")
        ask = asyncio.create_task(swarm.ask("owner", "anyone?", timeout_s=60))
        while not _blocked(own):
            assert not ask.done()
            await asyncio.sleep(0.01)
        await swarm.aclose()
        done, _ = await asyncio.wait({ask}, timeout=10)
        assert ask in done, "the ask went on after aclose()"
        with pytest.raises(Conflict, match="closed"):
            ask.result()
        async with AsyncSwarm(own_server.url, swarm=SWARM) as again:
            stats = await again.queue_stats()
        assert [s["cancelled"] for s in stats.values()] == [1], stats

    asyncio.run(main())


def test_close_stops_a_call_of_another_thread(own_server: RedisServer, own: redis.Redis) -> None:
    """The sync handle's close() while another thread's claim waits: that claim raises
    Conflict at once, not reconnected, and no connection stays open."""
    before = _clients(own)
    swarm = Swarm(own_server.url, swarm=SWARM)
    swarm.ping()
    got: list[Any] = []

    def claim() -> None:
        try:
            got.append(swarm.claim("q", worker="w", wait_s=60))
        except Exception as exc:
            got.append(exc)

    thread = threading.Thread(target=claim, daemon=True)
    thread.start()
    _eventually("the claim never waited", lambda: _blocked(own))
    swarm.close()
    thread.join(10)
    assert not thread.is_alive(), "the claim went on after close()"
    assert len(got) == 1 and isinstance(got[0], Conflict), got
    _eventually("a connection stayed open after close()", lambda: _clients(own) <= before)


def test_a_report_cancelled_while_its_reply_is_on_the_way_releases_its_next_task(
    redis_server: RedisServer, redis_url: str
) -> None:
    """report(claim_next=) ran (its task completed, the next one claimed in the same
    script) and its reply is still on the way when it is cancelled: the finding stays
    stored, the next task is released (neither a failure nor an abandon), then
    CancelledError goes on."""
    with (
        LatencyProxy(redis_server.port or 0) as link,
        Swarm(redis_url, swarm=SWARM) as near,
    ):
        first, second = near.post_tasks([TaskSpec("q", "a"), TaskSpec("q", "b")])

        async def main() -> str:
            async with AsyncSwarm(link.url, swarm=SWARM) as far:
                task = await far.claim("q", worker="w")
                assert task is not None and task.id == first.id
                link.delay_s = 0.5  # (as for the claim above)
                report = asyncio.create_task(
                    far.report(task.id, task.token, {"summary": "x"}, worker="w", claim_next="q")
                )
                while near.queue_stats()["q"]["completed"] < 1:
                    assert not report.done()
                    await asyncio.sleep(0.005)
                assert near.queue_stats()["q"]["claimed"] == 1  # (the next one, same script)
                report.cancel()
                link.delay_s = 0.0
                with pytest.raises(asyncio.CancelledError):
                    await report
                return task.id

        reported = asyncio.run(main())
        stats = near.queue_stats()["q"]
        assert (stats["completed"], stats["pending"], stats["claimed"]) == (1, 1, 0), stats
        assert [f.task_id for f in near.findings(queue="q").items] == [reported]
        nxt = near.get_task(second.id)
        assert nxt.status is TaskStatus.PENDING, nxt
        assert nxt.abandons == 0 and nxt.failures == 0


# --- a cancelled call waits for the reply already on its way, for a short while only


async def _claim_cut(url: str, before: Callable[[AsyncSwarm], Awaitable[Any]]) -> float:
    """How long a claim through ``url``, after ``before`` and cancelled after 0.3 s (as
    ``asyncio.timeout(0.3)`` would), took to raise CancelledError."""
    async with AsyncSwarm(url, swarm=SWARM) as swarm:
        await swarm.ping()  # (connected: the claim is sent at once)
        await before(swarm)
        start = time.monotonic()
        claim = asyncio.ensure_future(swarm.claim("q", worker="w"))
        await asyncio.wait({claim}, timeout=0.3)
        claim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await claim
        return time.monotonic() - start


def test_a_claim_cut_by_a_timeout_on_a_server_that_never_answers_ends_soon(
    redis_server: RedisServer,
) -> None:
    """The server holds the claim's reply (a far, hung or paused server): the claim cut by
    its caller (a timeout) waits for it a short while (DRAIN_S), not its socket_timeout (10 s)
    and its retries."""
    with LatencyProxy(redis_server.port or 0) as link:

        async def hold(_: AsyncSwarm) -> None:
            link.delay_s = 5.0  # (each way: no reply within 10 s)

        took = asyncio.run(_claim_cut(link.url, hold))
    assert took < 3, f"the cancelled claim took {took:.1f} s"


def test_a_claim_cut_by_a_timeout_on_a_dead_server_ends_soon(servers: ServerFactory) -> None:
    """The server is gone: the claim cut by its caller (a timeout) makes no more attempts
    (no reconnection, no backoff: 50 s of them with retries=20)."""
    server = servers.start()

    async def kill(_: AsyncSwarm) -> None:
        server.kill()

    try:
        took = asyncio.run(_claim_cut(f"{server.url}?retries=20", kill))
    finally:
        server.stop()
    assert took < 3, f"the cancelled claim took {took:.1f} s"


def test_a_cancelled_claim_whose_connection_drops_is_not_sent_again(
    redis_server: RedisServer, redis_url: str
) -> None:
    """The connection of a cancelled claim, waiting for its reply, drops: the claim is not
    retried (no reconnection, no resend that would lease a task for nobody)."""
    with (
        LatencyProxy(redis_server.port or 0) as link,
        Swarm(redis_url, swarm=SWARM) as near,
    ):
        (posted,) = near.post_tasks([TaskSpec("q", "t")])

        async def main() -> int:
            async with AsyncSwarm(link.url, swarm=SWARM) as far:
                await far.ping()
                link.delay_s = 5.0  # (the claim is held on its way: it never reaches Redis)
                claim = asyncio.create_task(far.claim("q", worker="w"))
                await asyncio.sleep(0.2)
                connections = link.stats.connections
                claim.cancel()
                link.delay_s = 0.0
                link.cut()
                with pytest.raises(asyncio.CancelledError):
                    await claim
                return link.stats.connections - connections

        assert asyncio.run(main()) == 0, "the cancelled claim reconnected"
        task = near.get_task(posted.id)
        assert task.status is TaskStatus.PENDING and task.abandons == 0, task
