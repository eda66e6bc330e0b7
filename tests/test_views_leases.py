"""Who holds the newest leases: what the agent listings (``agents``, ``status().roster``, so
the dashboard and ``swarm watch`` too) give as the task of an agent that said none (a worker
that only claims: ``swarm run``'s, the seed's). The core decides it once, in ``agents``, from
the newest ``HELD_LEASES`` leases across queues, readable by a worker's ACL user; ``recent``
reads no leases (the dashboard reads both: the leases once), in two round trips, three when
there are dead letters.

(Was tests/test_recent_leases.py, which read them through ``Recent.holding``.)"""

from __future__ import annotations

from typing import Any

from redis_swarm import Settings, Swarm, apply_role
from redis_swarm._keys import Keys
from redis_swarm._ops.agents import HELD_LEASES
from redis_swarm._protocol import Compute, Notice, Operation, items_of

from ._handles import must
from ._servers import RedisServer
from ._spying import Spying


def _tasks(swarm: Swarm) -> dict[str, str | None]:
    return {a.id: a.current_task for a in swarm.agents()}


def test_a_worker_shows_its_newest_lease_across_queues(swarm: Swarm) -> None:
    swarm.post_tasks([{"queue": "a", "description": f"a{i}"} for i in range(3)])
    swarm.post_task("b", "b0")
    short = must(swarm.claim("a", worker="w-1", lease_s=60))
    longer = must(swarm.claim("b", worker="w-1", lease_s=600))
    other = must(swarm.claim("a", worker="w-2", lease_s=300))
    assert _tasks(swarm) == {"w-1": longer.id, "w-2": other.id}
    swarm.report(longer.id, longer.token, {"summary": "done"})
    assert _tasks(swarm) == {"w-1": short.id, "w-2": other.id}
    assert {a.id: a.current_task for a in swarm.status().roster} == _tasks(swarm)


def test_only_the_newest_leases_are_looked_at(swarm: Swarm) -> None:
    swarm.post_tasks([{"queue": f"q{i % 3}", "description": f"t{i}"} for i in range(600)])
    for w in range(60):  # each worker's leases end later than the one before's
        assert len(must(swarm.claim(f"q{w % 3}", worker=f"w-{w}", n=10, lease_s=60 + w))) == 10
    assert swarm.status().totals["claimed"] == 600
    showing = {agent for agent, task in _tasks(swarm).items() if task is not None}
    assert showing == {f"w-{w}" for w in range(60 - HELD_LEASES // 10, 60)}


def test_a_lease_whose_task_is_no_longer_claimed_names_no_one(swarm: Swarm, raw: Any) -> None:
    # A report landing between the reads: its lease was read, its task is completed.
    swarm.post_task("q", "look")
    done = must(swarm.claim("q", worker="w-1"))
    swarm.report(done.id, done.token, {"summary": "seen"})
    raw.zadd(Keys("test").leases("q"), {done.id: 9_999_999_999_999})
    assert _tasks(swarm) == {"w-1": None}


class _Counting(Spying):
    """A Swarm that counts the round trips of each operation it runs."""

    trips: list[int]

    def _run(self, op: Operation[Any]) -> Any:
        self.trips.append(0)
        return super()._run(op)

    def seen(self, request: Any) -> None:
        if not isinstance(request, Compute | Notice) and items_of(request):
            self.trips[-1] += 1


def test_recent_reads_no_leases_status_reads_them(redis_url: str) -> None:
    swarm = _Counting(redis_url, swarm="test")
    swarm.trips = []
    with swarm:
        swarm.post_tasks([{"queue": f"q{i}", "description": "t"} for i in range(4)])
        for i in range(3):
            done = must(swarm.claim(f"q{i}", worker=f"w-{i}"))
            swarm.report(done.id, done.token, {"summary": "x"})
        held = must(swarm.claim("q3", worker="w-3"))
        swarm.trips = []
        assert len(swarm.recent().findings) == 3
        status = swarm.status()
        # the leases are status's alone: its roster's task (the core decides it, once)
        assert swarm.trips == [2, 3]
        assert {a.id: a.current_task for a in status.roster}["w-3"] == held.id
        # a third round trip for recent when there are dead letters: their tasks
        swarm.post_task("dead", "fails", max_attempts=1)
        doomed = must(swarm.claim("dead", worker="w-9"))
        swarm.fail(doomed.id, doomed.token, "fatal", retry=False)
        swarm.trips = []
        assert [t.id for t in swarm.recent().dead] == [doomed.id]
        assert swarm.trips == [3]


def test_a_worker_user_may_read_who_holds_the_leases(redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.flushall()
    client.close()
    settings = Settings.from_url(redis_server.url, swarm="test")
    spec = apply_role(settings, "worker", "views-leases-worker").user
    url = f"redis://{spec.user}:{spec.password}@127.0.0.1:{redis_server.port}"
    with Swarm(redis_server.url, swarm="test") as admin, Swarm(url, swarm="test") as worker:
        admin.post_task("q", "look")
        held = must(worker.claim("q", worker="w-1"))
        assert {a.id: a.current_task for a in worker.status().roster} == {"w-1": held.id}
