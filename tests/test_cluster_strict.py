"""durability="strict" on a Redis Cluster: each write waits for a replica of its own master.

WAIT acts on the writes of its own connection, so the strict cluster sender groups a
request's items by master and closes each group with WAIT on that master's connection. These
tests check it on a real 3+3 cluster: the waits land on the masters that were written to, a
slot in the middle of a migration is followed through ASK (the wait following the item to the
importing node), a finished migration through MOVED, and a master without a replica is refused
before anything is stored.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from redis_swarm import AsyncSwarm, ConfigError, Settings, Swarm
from redis_swarm import _durability as durability
from redis_swarm._keys import Keys
from redis_swarm.cli import main

from ._cluster import LocalCluster, start_cluster
from ._handles import must
from ._invariants import check_swarm
from ._raw import raw_client
from ._servers import ServerFactory
from ._slots import calls, errors_sent
from .conftest import AsyncAsSync, as_swarm


def masters(*counts: int) -> dict[str, dict[str, Any]]:
    """INFO replication of masters on ports 7000... with these numbers of replicas."""
    return {f"127.0.0.1:{7000 + i}": {"connected_slaves": n} for i, n in enumerate(counts)}


def test_the_cluster_plan_is_wait_when_every_master_has_a_replica() -> None:
    plan = durability.cluster_plan(masters(1, 1, 2), "redis+cluster://x")
    assert plan.command is not None and plan.command[0] == "WAIT"


def test_the_cluster_plan_names_the_masters_without_a_replica() -> None:
    with pytest.raises(ConfigError) as caught:
        durability.cluster_plan(masters(1, 0, 0), "redis+cluster://x")
    message = str(caught.value)
    assert "127.0.0.1:7001" in message and "127.0.0.1:7002" in message
    assert "127.0.0.1:7000" not in message
    assert "durability='normal'" in message
    with pytest.raises(ConfigError):
        durability.cluster_plan({}, "redis+cluster://x")


@pytest.fixture(params=["sync", "async"])
def strict(request: pytest.FixtureRequest, cluster_url: str) -> Iterator[Swarm]:
    settings = Settings.from_url(cluster_url, swarm=f"strict-{request.param}", durability="strict")
    handle = (
        Swarm(settings)
        if request.param == "sync"
        else as_swarm(AsyncAsSync(lambda: AsyncSwarm(settings)))
    )
    yield handle
    handle.close()


def waitcalls(cluster: LocalCluster) -> dict[int, int]:
    """WAIT commands each master has run so far."""
    out: dict[int, int] = {}
    for port in cluster.masters():
        with cluster.node(port).client() as client:
            out[port] = calls(client, "wait")
    return out


def test_strict_writes_wait_on_every_master_they_touch(
    strict: Swarm, redis_cluster: LocalCluster, cluster_url: str
) -> None:
    admin = redis_cluster.client()
    home = admin.get_node_from_key(Keys(strict.name).counts).port  # type: ignore[no-untyped-call]
    strict.post_task("q", "warm-up")  # a node's first script call also loads it (2 waits)
    before = waitcalls(redis_cluster)
    task = strict.post_task("q", "a task")
    after_post = waitcalls(redis_cluster)
    assert after_post[home] == before[home] + 1
    assert sum(after_post.values()) == sum(before.values()) + 1

    claimed = must(strict.claim("q", worker="w"))
    strict.report(claimed.id, claimed.token, {"summary": "done"})
    # a context of many chunks: they spread over the masters, each master waits once
    text = "".join(f"line {i}: {'x' * 60}\n" for i in range(60_000))
    info = strict.publish_context("shard", text, source="test")
    assert strict.get_context("shard") == text
    after = waitcalls(redis_cluster)
    touched = [port for port in after if after[port] > after_post[port]]
    assert len(touched) >= 2, f"the chunks of {info.chunks} chunks landed on one master"
    assert strict.get_task(claimed.id).status.value == "completed"
    assert strict.get_task(task.id).status.value == "pending"
    with raw_client(cluster_url) as client:
        check_swarm(client, strict.name, foreign_ok=True)


def test_a_slot_being_migrated_is_followed_through_ask_and_moved(
    redis_cluster: LocalCluster, cluster_url: str
) -> None:
    """Keys of the swarm's slot moved to another master while the slot is still MIGRATING:
    the source answers ASK and the write goes to the importing node after ASKING, which says
    TRYAGAIN until the slot is handed over; then MOVED sends it to the new owner, and its
    WAIT goes there with it."""
    name = "strict-ask"
    settings = Settings.from_url(cluster_url, swarm=name, durability="strict")
    admin: Any = redis_cluster.client()
    slot = admin.keyslot(Keys(name).counts)
    with Swarm(settings) as swarm:
        swarm.post_task("q", "before the migration")
        source = admin.get_node_from_key(Keys(name).counts).port
        target = next(p for p in redis_cluster.masters() if p != source)
        src: Any = redis_cluster.node(source).client()
        dst: Any = redis_cluster.node(target).client()
        try:
            dst_id, src_id = (
                dst.execute_command("CLUSTER", "MYID"),
                src.execute_command("CLUSTER", "MYID"),
            )
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
            asking_before = calls(dst, "asking")
            waits_before = calls(dst, "wait")

            def hand_over() -> None:
                time.sleep(0.5)
                for node in redis_cluster.masters():
                    with redis_cluster.node(node).client() as client:
                        client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

            finish = threading.Thread(target=hand_over)
            finish.start()
            # ASK from the source; on the target, after ASKING, TRYAGAIN (the script creates
            # keys the slot's migration has not settled yet); retried until the hand-over,
            # after which MOVED sends it to the new owner, where it waits for its replica.
            swarm.post_task("q", "during the migration")
            finish.join()
            assert calls(dst, "asking") > asking_before
            assert calls(dst, "wait") > waits_before
            # the MOVED made the handle read the topology again: the next writes go straight
            # to the new owner (no more MOVED from the old one, no more ASKING)
            moved, asking = errors_sent(src, "MOVED"), calls(dst, "asking")
            swarm.post_task("q", "after the migration")
            swarm.post_task("q", "and again")
            assert (errors_sent(src, "MOVED"), calls(dst, "asking")) == (moved, asking)
            stats = swarm.queue_stats()["q"]
            assert stats["pending"] == 4
        finally:
            src.close()
            dst.close()
    with raw_client(cluster_url) as client:
        check_swarm(client, name, foreign_ok=True)


def test_strict_on_a_cluster_without_replicas_is_refused_and_stores_nothing(
    servers: ServerFactory,
) -> None:
    bare = start_cluster(servers, replicas=0)
    try:
        settings = Settings.from_url(bare.url, swarm="bare", durability="strict")
        with Swarm(settings) as swarm, pytest.raises(ConfigError) as caught:
            swarm.post_task("q", "never stored")
        assert "no connected replica" in str(caught.value)
        with raw_client(bare.url) as client:
            assert list(client.scan_iter("rs:{bare}:*")) == []
        with Swarm(bare.url, swarm="bare") as swarm:  # normal durability works there
            swarm.post_task("q", "stored")
    finally:
        bare.close()
        for node in bare.nodes:
            node.stop()


def test_doctor_says_how_writes_are_made_durable(cluster_url: str) -> None:
    normal = CliRunner().invoke(main, ["--url", cluster_url, "doctor", "--json"])
    assert normal.exit_code == 0, normal.output
    assert json.loads(normal.stdout)["durability"].startswith("normal:")
    url = f"{cluster_url}?durability=strict"
    strict = CliRunner().invoke(main, ["--url", url, "doctor", "--json"])
    assert strict.exit_code == 0, strict.output
    assert "each master wait for one of its replicas" in json.loads(strict.stdout)["durability"]


def test_doctor_refuses_strict_where_it_cannot_be_honoured(servers: ServerFactory) -> None:
    bare = servers.start()  # no AOF, no replica
    result = CliRunner().invoke(main, ["--url", f"{bare.url}?durability=strict", "doctor"])
    assert result.exit_code != 0
    assert "durability='strict' cannot be honoured" in result.output
    assert "durability='normal'" in result.output
