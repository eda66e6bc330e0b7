"""Who holds the newest leases (``Recent.holding``): what the dashboard and ``swarm watch``
show as the task of an agent that said none (a worker that only claims: ``swarm run``'s, the
seed's). Read by ``recent`` in the round trips it takes anyway, bounded whatever the number
of leases, readable by a worker's ACL user; ``status`` and ``agents`` read them too (the
core decides an agent's task once), in three round trips."""

from __future__ import annotations

import asyncio
from typing import Any

from redis_swarm import AsyncSwarm, Settings, Swarm
from redis_swarm._acl import acl_user
from redis_swarm._acl_apply import apply_user, server_version
from redis_swarm._keys import Keys
from redis_swarm._protocol import Compute, Operation, items_of
from redis_swarm.dashboard._snapshot import Snapshot, snapshot

from ._handles import must
from ._servers import RedisServer


def _snapshot(url: str) -> Snapshot:
    async def read() -> Snapshot:
        async with AsyncSwarm(url, swarm="test") as swarm:
            return await snapshot(swarm)

    return asyncio.run(read())


def _tasks(snap: Snapshot) -> dict[str, str | None]:
    return {a.id: a.current_task for a in snap.agents}


def test_the_snapshot_shows_the_task_a_claiming_worker_holds_until_it_reports(
    server_url: str,
) -> None:
    with Swarm(server_url, swarm="test") as swarm:
        first = swarm.post_task("q", "look")
        held = must(swarm.claim("q", worker="w-1"))  # no heartbeat: the claim registers it
        assert held.id == first.id
        assert _tasks(_snapshot(server_url)) == {"w-1": first.id}
        swarm.report(held.id, held.token, {"summary": "seen"})
        assert _tasks(_snapshot(server_url)) == {"w-1": None}
        # a released lease is no longer held either
        swarm.post_task("q", "again")
        again = must(swarm.claim("q", worker="w-1"))
        assert _tasks(_snapshot(server_url)) == {"w-1": again.id}
        swarm.release(again.id, again.token)
        assert _tasks(_snapshot(server_url)) == {"w-1": None}


def test_recent_names_each_worker_with_its_tasks_newest_lease_first(swarm: Swarm) -> None:
    swarm.post_tasks([{"queue": "a", "description": f"a{i}"} for i in range(3)])
    swarm.post_task("b", "b0")
    short = must(swarm.claim("a", worker="w-1", lease_s=60))
    longer = must(swarm.claim("b", worker="w-1", lease_s=600))
    other = must(swarm.claim("a", worker="w-2", lease_s=300))
    holding = swarm.recent().holding
    assert holding == {"w-1": (longer.id, short.id), "w-2": (other.id,)}
    # the newest leases are those of the latest deadline, across queues
    assert swarm.recent(leases=1).holding == {"w-1": (longer.id,)}
    assert swarm.recent(leases=2).holding == {"w-1": (longer.id,), "w-2": (other.id,)}
    swarm.report(longer.id, longer.token, {"summary": "done"})
    assert swarm.recent().holding == {"w-1": (short.id,), "w-2": (other.id,)}


def test_many_leases_stay_bounded(swarm: Swarm) -> None:
    swarm.post_tasks([{"queue": f"q{i % 3}", "description": f"t{i}"} for i in range(600)])
    for w in range(60):
        assert len(must(swarm.claim(f"q{w % 3}", worker=f"w-{w}", n=10))) == 10
    assert swarm.status().totals["claimed"] == 600
    assert sum(len(ids) for ids in swarm.recent().holding.values()) == 100  # the default
    assert sum(len(ids) for ids in swarm.recent(leases=5).holding.values()) == 5
    most = swarm.recent(leases=10_000).holding
    assert sum(len(ids) for ids in most.values()) == 500  # MAX_VIEW, as the other counts
    assert len({i for ids in most.values() for i in ids}) == 500


def test_a_lease_whose_task_is_no_longer_claimed_names_no_one(swarm: Swarm, raw: Any) -> None:
    # A report landing between recent's reads: its lease was read, its task is completed.
    swarm.post_task("q", "look")
    done = must(swarm.claim("q", worker="w-1"))
    swarm.report(done.id, done.token, {"summary": "seen"})
    raw.zadd(Keys("test").leases("q"), {done.id: 9_999_999_999_999})
    assert swarm.recent().holding == {}


class _Counting(Swarm):
    """A Swarm that counts the round trips (requests sent) of each operation it runs."""

    trips: list[int]

    def _run(self, op: Operation[Any]) -> Any:
        self.trips.append(0)
        return super()._run(self._count(op))

    def _count(self, op: Operation[Any]) -> Operation[Any]:
        reply: Any = None
        error: BaseException | None = None
        while True:
            try:
                request = op.throw(error) if error is not None else op.send(reply)
            except StopIteration as stop:
                return stop.value
            error = None
            if not isinstance(request, Compute) and items_of(request):
                self.trips[-1] += 1
            try:
                reply = yield request
            except BaseException as exc:  # handed to the operation, as the shell does
                error = exc


def test_recent_and_status_stay_three_round_trips(redis_url: str) -> None:
    swarm = _Counting(redis_url, swarm="test")
    swarm.trips = []
    with swarm:
        swarm.post_tasks([{"queue": f"q{i}", "description": "t"} for i in range(4)])
        swarm.post_task("dead", "fails", max_attempts=1)
        doomed = must(swarm.claim("dead", worker="w-9"))
        swarm.fail(doomed.id, doomed.token, "fatal", retry=False)
        for i in range(3):
            done = must(swarm.claim(f"q{i}", worker=f"w-{i}"))
            swarm.report(done.id, done.token, {"summary": "x"})
        held = must(swarm.claim("q3", worker="w-3"))
        swarm.trips = []
        recent = swarm.recent()
        assert recent.holding == {"w-3": (held.id,)} and [t.id for t in recent.dead] == [doomed.id]
        assert len(recent.findings) == 3
        status = swarm.status()
        # status reads the leases too (its roster's task: the core decides it, once)
        assert swarm.trips == [3, 3]
        assert {a.id: a.current_task for a in status.roster}["w-3"] == held.id


def test_a_worker_user_may_read_who_holds_the_leases(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.flushall()
    client.close()
    settings = Settings.from_url(redis_server.url, swarm="test")
    spec = acl_user("worker", "test", "recent-leases-worker", version=server_version(settings))
    apply_user(settings, spec)
    url = f"redis://{spec.user}:{spec.password}@127.0.0.1:{redis_server.port}"
    with Swarm(redis_server.url, swarm="test") as admin, Swarm(url, swarm="test") as worker:
        admin.post_task("q", "look")
        held = must(worker.claim("q", worker="w-1"))
        assert worker.recent().holding == {"w-1": (held.id,)}
