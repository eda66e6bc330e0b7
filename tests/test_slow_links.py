"""Slow links: every core operation costs a small, fixed number of round trips.

Each test talks to a real server through a LatencyProxy that delays every chunk 25 ms each
way (a 50 ms round trip: another continent), and counts round trips as the proxy's
*exchanges* (a request sent after a reply; a pipelined batch is one); the counts of every
operation at two scales are taken at a 20 ms round trip (``COUNT_DELAY``; a big upload's at
50 ms), which tells round trips apart as well in less than half the time. Counts are taken on
a connected handle and a server that holds the scripts already: connecting and the first use
of the function library (Function not found, FUNCTION LOAD) happen once per server, and
``test_a_new_handle_pays_a_bounded_start`` bounds them separately.

Standalone only: a cluster client is sent by the cluster to the nodes' own addresses, which
a single proxy cannot stand in front of.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from redis_swarm import ContextCache, Swarm
from redis_swarm._ops import _work
from redis_swarm._ops import tasks as tasks_ops

from ._handles import make_swarm
from ._op_costs import BIG, BOUNDS, SMALL, Meter, Scale, every_operation, prepare, text_of
from ._proxy import LatencyProxy
from ._servers import RedisServer

T = TypeVar("T")

DELAY = 0.025  # one way: a 50 ms round trip
RTT = 2 * DELAY
# A round trip is counted right whatever the delay, as long as a request is all sent before
# the first reply to it comes back: a request in many chunks (a new version of a 3.2 MB
# context) is sent at DELAY, every other operation of the count at this one.
COUNT_DELAY = 0.01
UPLOADS = {"publish_context, new version"}
QUEUE_PAGED = "paged"
SHARD_AGENT = "shard-agent"


def load_scripts(server: RedisServer) -> None:
    """What any live swarm has after 'swarm up': the function library on the server."""
    with Swarm(server.url) as swarm:
        swarm.load_functions()


@pytest.fixture
def proxy(redis_server: RedisServer, redis_url: str) -> Iterator[LatencyProxy]:
    load_scripts(redis_server)
    with LatencyProxy(redis_server.port or 0, delay_s=DELAY) as link:
        yield link


@pytest.fixture
def near(redis_url: str) -> Iterator[Any]:
    """A direct handle on the same swarm, to build state without paying the far link."""
    handle = make_swarm("sync", redis_url)
    yield handle
    handle.close()


def far_handle(kind: str, proxy: LatencyProxy, cache: ContextCache | None = None) -> Any:
    """A handle through the proxy, connected (its connection set-up is not counted)."""
    handle = make_swarm(kind, proxy.url, cache=cache if cache is not None else ContextCache())
    handle.ping()
    return handle


class CountingMeter(Meter):
    """A Meter that runs each operation at COUNT_DELAY, and those in UPLOADS at DELAY."""

    def __call__(self, op: str, fn: Callable[[], T]) -> T:
        self.proxy.delay_s = DELAY if op in UPLOADS else COUNT_DELAY
        try:
            return super().__call__(op, fn)
        finally:
            self.proxy.delay_s = COUNT_DELAY


def costs_at(scale: Scale, kind: str, proxy: LatencyProxy, near: Any) -> dict[str, int]:
    near.redis.flushdb()
    prepare(near, scale)
    cache = ContextCache()
    proxy.delay_s = COUNT_DELAY
    far = far_handle(kind, proxy, cache)
    meter = CountingMeter(proxy)
    try:
        every_operation(far, near, cache, meter, scale)
    finally:
        far.close()
        proxy.delay_s = DELAY
    return meter.by_op()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_every_operation_costs_a_fixed_number_of_round_trips(
    kind: str, proxy: LatencyProxy, near: Any
) -> None:
    small = costs_at(SMALL, kind, proxy, near)
    big = costs_at(BIG, kind, proxy, near)
    assert set(small) == set(BOUNDS), "every operation is measured and bounded"
    over = {op: (n, BOUNDS[op]) for op, n in big.items() if n > BOUNDS[op] or n < 1}
    assert not over, "(measured, designed) round trips"
    grew = {op: (small[op], big[op]) for op in small if small[op] != big[op]}
    assert not grew, f"round trips grew with the swarm ({SMALL.describe()} -> {BIG.describe()})"


def test_a_new_handle_pays_a_bounded_start(redis_server: RedisServer, redis_url: str) -> None:
    """A fresh worker process on a far link. Connecting costs up to 3 round trips (redis-py
    8: HELLO, CLIENT MAINT_NOTIFICATIONS, and the health-check PING it sends before a new
    connection's first command; CLIENT SETINFO is switched off); the first claim on a server
    without the function library 2 more ("Function not found", then FUNCTION LOAD and the
    call again; on Redis 6.2, NOSCRIPT, then SCRIPT LOAD and the call again)."""
    client = redis_server.client()
    client.script_flush()
    client.function_flush()
    client.close()
    with LatencyProxy(redis_server.port or 0, delay_s=DELAY) as link:
        for state, bound in (("scripts not loaded", 3 + 3), ("scripts loaded", 3 + 1)):
            swarm = make_swarm("sync", link.url)
            link.reset_stats()
            swarm.claim("q", worker="new")
            swarm.close()
            assert 2 <= link.stats.exchanges <= bound, (state, link.stats)
            assert link.stats.connections == 1


def test_paging_costs_a_round_trip_per_page(proxy: LatencyProxy, near: Any) -> None:
    """Listings are O(pages), by design: a page per round trip, whatever the page size."""
    near.post_tasks([{"queue": QUEUE_PAGED, "description": f"t{i}"} for i in range(450)])
    far = far_handle("sync", proxy)
    meter = Meter(proxy)
    cursor: str | None = None
    pages = 0
    while True:
        page = meter("page", functools.partial(far.list_tasks, cursor=cursor, limit=100))
        pages += 1
        cursor = page.cursor
        if cursor is None:
            break
    far.close()
    assert pages == math.ceil(450 / 100)
    assert [c.round_trips for c in meter.costs] == [1] * pages


@pytest.mark.parametrize("from_sets", [True, False])
def test_a_filtered_listing_costs_a_fixed_number_of_round_trips_per_page(
    proxy: LatencyProxy, near: Any, monkeypatch: pytest.MonkeyPatch, from_sets: bool
) -> None:
    """By a status with a per-queue set: the counters, then the sets (few tasks hold it) or
    the scan (too many: ``LIVE_READ_MAX`` 0 here), a page each; the data of a page one more."""
    if not from_sets:
        monkeypatch.setattr(tasks_ops, "LIVE_READ_MAX", 0)
    near.post_tasks([{"queue": QUEUE_PAGED, "description": f"t{i}"} for i in range(450)])
    far = far_handle("sync", proxy)
    meter = Meter(proxy)
    for with_data in (False, True):
        cursor: str | None = None
        listed: list[str] = []
        while True:
            page = meter(
                f"data {with_data}",
                functools.partial(
                    far.list_tasks, status="pending", cursor=cursor, limit=100, with_data=with_data
                ),
            )
            listed += [t.id for t in page.items]
            cursor = page.cursor
            if cursor is None:
                break
        assert len(listed) == len(set(listed)) == 450
    far.close()
    pages = math.ceil(450 / 100)
    extra = 1 if from_sets else 0  # the scan reads a page's data with its records
    assert [c.round_trips for c in meter.costs] == [2] * pages + [2 + extra] * pages


def test_filtered_events_cost_a_round_trip_per_thousand_scanned(
    proxy: LatencyProxy, near: Any
) -> None:
    """``events(types=...)`` filters on the client, reading the stream 1,000 entries per round
    trip until ``limit`` match: O(events scanned / 1,000). Unfiltered, O(limit / 1,000)."""
    near.post_tasks([{"queue": "noise", "description": f"n{i}"} for i in range(2_500)])
    near.register("shard", name=SHARD_AGENT)
    near.request_synthesis(SHARD_AGENT, "p", "at the end of the stream")
    far = far_handle("sync", proxy)
    meter = Meter(proxy)
    found = meter("filtered", lambda: far.events(types="synthesis.requested"))
    meter("unfiltered", lambda: far.events(limit=2_000))
    far.close()
    assert len(found) == 1
    scanned = 2_500 + 3  # task.posted events, then agent.registered and synthesis.requested
    assert meter.by_op() == {"filtered": math.ceil(scanned / 1000), "unfiltered": 2}


def test_a_report_from_a_process_that_never_saw_the_task(
    proxy: LatencyProxy, near: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task's queue names the keys of its scripts: a process that posted or claimed it
    knows it; another one (a reviewer cancelling, a worker reporting after a restart) asks
    for it first, one round trip more."""
    task = near.post_task("q", "claimed elsewhere")
    claimed = near.claim("q", worker="elsewhere")
    monkeypatch.setattr(_work, "_ROUTES", _work._Routes())  # a process that never saw it
    far = far_handle("sync", proxy)
    meter = Meter(proxy)
    meter("report", lambda: far.report(claimed.id, claimed.token, {"summary": "late"}))
    far.close()
    assert claimed.id == task.id
    assert meter.by_op() == {"report": 2}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wall_time_is_round_trips_times_the_round_trip(
    kind: str, proxy: LatencyProxy, near: Any
) -> None:
    """At 50 ms per round trip the link is the cost: each round trip counted is one paid on
    the link (an operation takes at least its round trips times 50 ms), and the counts are
    fixed. How little it takes beyond that (the local work on a 3.2 MB context) is a speed
    figure, measured by ``benchmarks/slow_links.py`` (each operation's wall time beside its
    round trips), not asserted here: a loaded machine stretches it without bound."""
    near.post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(20)])
    content = text_of(3_200_000, seed=2)
    cache = ContextCache()
    far = far_handle(kind, proxy, cache)
    meter = Meter(proxy)
    meter("claim", lambda: far.claim("q", worker="far"))
    meter("queue_stats", far.queue_stats)
    meter("publish", lambda: far.publish_context("big", content, source="big.md"))
    cache.clear()
    meter("get_context, cold", lambda: far.get_context("big"))
    meter("get_context, warm", lambda: far.get_context("big"))
    far.close()
    for cost in meter.costs:
        floor = cost.round_trips * RTT
        assert cost.seconds >= floor * 0.95, cost
    # a cold read: the pointer and the copy of the current version in one round trip
    assert [c.round_trips for c in meter.costs] == [1, 1, 4, 1, 1]
