"""The work queue under load: many processes, many tasks."""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import AsyncSwarm, Swarm, TaskSpec
from redis_swarm._keys import Keys

from ._raw import raw_client
from ._servers import RedisServer, ServerFactory
from ._task_workers import claim_and_report
from .conftest import AsyncAsSync, as_swarm

KEYS = Keys("test")


def test_eight_processes_share_5000_tasks(swarm: Swarm, redis_url: str) -> None:
    total, processes = 5000, 8
    mode = "sync" if isinstance(swarm, Swarm) else "async"
    posted = swarm.post_tasks([TaskSpec("bulk", f"task {i}", {"i": i}) for i in range(total)])
    # forkserver: each worker is a fork of a process that imported redis_swarm already (as in
    # the chaos tests), not a new interpreter paying the imports: 8 of them cost seconds.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([claim_and_report.__module__])
    start = ctx.Event()
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=claim_and_report,
            args=(redis_url, "test", "bulk", f"w{n}", mode, start, results),
        )
        for n in range(processes)
    ]
    for proc in workers:
        proc.start()
    start.set()
    claims: dict[str, list[tuple[str, int]]] = dict(results.get(timeout=90) for _ in workers)
    for proc in workers:
        proc.join(30)
        assert proc.exitcode == 0
    every = [claim for worker in claims.values() for claim in worker]
    # While leases hold (900 s here), each task is claimed exactly once, with token 1.
    assert len(every) == total
    assert Counter(task_id for task_id, _ in every) == Counter(t.id for t in posted)
    assert {token for _, token in every} == {1}
    assert sum(1 for worker in claims.values() if worker) >= 2  # the work was shared
    # Every task ends completed, none lost: from the counters and from the records themselves.
    assert swarm.queue_stats()["bulk"] == {
        "pending": 0, "delayed": 0, "claimed": 0, "completed": total, "dead": 0, "cancelled": 0,
    }  # fmt: skip
    client = raw_client(redis_url)
    states = [json.loads(raw) for raw in client.hvals(KEYS.tasks)]
    findings = [json.loads(raw) for raw in client.hvals(KEYS.findings)]
    client.close()
    assert len(states) == total and all(s["status"] == "completed" for s in states)
    assert len(findings) == total and not any(f["superseded"] for f in findings)
    assert {f["task_id"] for f in findings} == {t.id for t in posted}


# --- queue_stats is O(queues): 100,000 tasks are posted once, on a server of this module


@pytest.fixture(scope="module")
def crowded(servers: ServerFactory) -> RedisServer:
    server = servers.start()
    with Swarm(server.url, swarm="test") as swarm:
        specs = [TaskSpec(f"q{i % 7}", "x", pass_name=f"P{i % 2}") for i in range(100_000)]
        for i in range(0, len(specs), 25_000):
            swarm.post_tasks(specs[i : i + 25_000])
        for _ in range(10):
            task = swarm.claim("q3", worker="w")
            assert task is not None
            swarm.report(task.id, task.token, {"summary": "ok"})
    return server


@pytest.fixture(params=["sync", "async"])
def crowded_swarm(request: pytest.FixtureRequest, crowded: RedisServer) -> Iterator[Swarm]:
    if request.param == "sync":
        with Swarm(crowded.url, swarm="test") as handle:
            yield handle
    else:
        adapter = AsyncAsSync(lambda: AsyncSwarm(crowded.url, swarm="test"))
        yield as_swarm(adapter)
        adapter.close()


def _commands_during(server: RedisServer, call: Any) -> tuple[Any, dict[str, int]]:
    """What ``call`` returned, and the commands the server ran meanwhile (commandstats)."""
    client = server.client()
    client.config_resetstat()
    result = call()
    stats = client.info("commandstats")
    client.close()
    ran = {name[len("cmdstat_") :]: v["calls"] for name, v in stats.items()}
    ran.pop("config|resetstat", None)
    return result, ran


def test_queue_stats_of_100000_tasks_is_one_round_trip(
    crowded: RedisServer, crowded_swarm: Swarm
) -> None:
    crowded_swarm.ping()  # connect first: the handshake is not part of the call
    stats, ran = _commands_during(crowded, crowded_swarm.queue_stats)
    assert ran == {"hgetall": 1}
    assert sorted(stats) == [f"q{i}" for i in range(7)]
    assert sum(s["pending"] for s in stats.values()) == 100_000 - 10
    assert stats["q3"]["completed"] == 10
    stats, ran = _commands_during(crowded, lambda: crowded_swarm.pass_stats("P0"))
    assert stats["pending"] >= 49_990
    assert ran == {"hmget": 1}
