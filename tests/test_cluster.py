"""Redis Cluster (issue 9): redis+cluster:// through the same shells, on a real local cluster
of 3 masters and 3 replicas."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from click.testing import CliRunner
from redis.crc import key_slot

from redis_swarm import AsyncSwarm, PermissionDenied, Swarm, apply_role
from redis_swarm._acl import keys_members
from redis_swarm._keys import Keys, chunk_key
from redis_swarm._protocol import Batch, Call, Cmd, Operation
from redis_swarm.cli import main

from ._cluster import LocalCluster
from .conftest import AsyncAsSync, as_swarm


@pytest.fixture(params=["sync", "async"])
def cswarm(request: pytest.FixtureRequest, cluster_url: str) -> Iterator[Swarm]:
    """A Swarm or an AsyncSwarm (driven through the same calls) on the cluster."""
    if request.param == "sync":
        handle = Swarm(cluster_url, swarm="test")
    else:
        handle = as_swarm(AsyncAsSync(lambda: AsyncSwarm(cluster_url, swarm="test")))
    yield handle
    handle.close()


def _one(request: Cmd | Call | Batch) -> Operation[Any]:
    reply = yield request
    return reply


def run(swarm: Swarm, request: Cmd | Call | Batch) -> Any:
    """Drive one request through the shell (sync, or the async one via its adapter)."""
    if isinstance(swarm, AsyncAsSync):
        inner: AsyncSwarm = swarm._swarm
        return swarm.call(inner._run(_one(request)))
    return swarm._run(_one(request))


def test_url_and_settings(cluster_url: str) -> None:
    with Swarm(cluster_url, swarm="test") as swarm:
        assert swarm.settings.kind == "cluster" and len(swarm.settings.nodes) == 3
        assert swarm.settings.url.startswith("redis+cluster://")


def test_ping_and_server_info(cswarm: Swarm) -> None:
    assert cswarm.ping() >= 0
    info = cswarm.server_info()
    assert info.mode == "cluster" and info.version.startswith("7")
    assert info.appendfsync is not None and info.server_time_ms > 1_700_000_000_000


def test_a_script_with_keys_runs_on_the_right_node(cswarm: Swarm) -> None:
    keys = Keys("test")
    now = run(cswarm, Call("ping", (keys.tasks, keys.events), (0,)))
    assert now > 1_700_000_000_000
    assert run(cswarm, Call("ping", (), (1234,))) == 1234


def test_a_batch_mixes_commands_and_scripts_across_slots(cswarm: Swarm) -> None:
    a, b = Keys("alpha"), Keys("beta")
    replies = run(
        cswarm,
        Batch(
            (
                Cmd("HSET", a.tasks, "t-1", "{}"),
                Call("ping", (a.tasks,), (7,)),
                Cmd("HSET", b.tasks, "t-2", "{}"),
                Call("ping", (b.events,), (8,)),
                Cmd("HGET", a.tasks, "t-1"),
            )
        ),
    )
    assert replies == [1, 7, 1, 8, b"{}"]


def test_a_batch_survives_a_flushed_script_cache(
    cswarm: Swarm, redis_cluster: LocalCluster
) -> None:
    admin = redis_cluster.client()
    admin.execute_command("SCRIPT FLUSH", target_nodes=admin.ALL_NODES)  # type: ignore[no-untyped-call]
    k = Keys("gamma")
    replies = run(
        cswarm, Batch((Call("ping", (k.tasks,), (5,)), Cmd("PING"), Call("ping", (), (6,))))
    )
    assert replies == [5, True, 6]
    admin.execute_command("SCRIPT FLUSH", target_nodes=admin.ALL_NODES)  # type: ignore[no-untyped-call]
    assert run(cswarm, Call("ping", (k.events,), (9,))) == 9


def test_errors_in_a_cluster_batch_are_raised(cswarm: Swarm) -> None:
    from redis_swarm import SwarmError

    k = Keys("delta")
    with pytest.raises(SwarmError) as info:
        run(cswarm, Batch((Cmd("SET", k.tasks, "x"), Cmd("HGET", k.tasks, "f"))))
    assert "WRONGTYPE" in str(info.value)


def test_every_key_of_a_swarm_shares_one_slot() -> None:
    """The hash tag keeps a swarm's coordination keys in one slot (atomic scripts)."""
    keys = Keys("team-a")
    slots = set()
    for member in keys_members():
        if member == "chunk":
            continue
        value = getattr(keys, member)
        arity = 0 if isinstance(value, str) else len(inspect.signature(value).parameters)
        key = value if isinstance(value, str) else value(*(["x"] * arity))
        slots.add(key_slot(key.encode()))
    assert len(slots) == 1


def test_many_swarms_spread_over_every_master(
    redis_cluster: LocalCluster, cluster_url: str
) -> None:
    names = [f"swarm-{i}" for i in range(60)]
    with Swarm(cluster_url, swarm="test") as swarm:
        run(swarm, Batch(tuple(Cmd("HSET", Keys(n).tasks, "t", n) for n in names)))
        # chunks of one swarm spread too (their own tag per digest)
        digests = [f"{i:02x}" * 32 for i in range(30)]
        run(swarm, Batch(tuple(Cmd("SET", chunk_key("swarm-0", d), b"c") for d in digests)))
        assert run(swarm, Cmd("HGET", Keys("swarm-7").tasks, "t")) == b"swarm-7"
    sizes = {}
    for port in redis_cluster.masters():
        with redis_cluster.node(port).client() as client:
            sizes[port] = client.dbsize()
    assert len(sizes) == 3 and all(size > 5 for size in sizes.values()), sizes
    assert sum(sizes.values()) == len(names) + len(digests)


def test_doctor_on_a_cluster(cluster_url: str) -> None:
    result = CliRunner().invoke(main, ["--url", cluster_url, "doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mode"] == "cluster" and report["kind"] == "cluster"


def test_acl_users_are_applied_on_every_node(redis_cluster: LocalCluster, cluster_url: str) -> None:
    from redis_swarm import Settings

    made = apply_role(Settings.from_url(cluster_url), "worker", "cluster-worker", swarm="team-a")
    spec, applied = made.user, made.applied
    assert len(applied) == 6
    keys = Keys("team-a")
    auth = f"cluster-worker:{spec.password}@"
    with Swarm(cluster_url.replace("://", "://" + auth), swarm="team-a") as worker:
        assert worker.ping() >= 0
        run(worker, Cmd("HSET", keys.tasks, "t-1", "{}"))
        run(worker, Call("ping", (keys.tasks,), (0,)))
        with pytest.raises(PermissionDenied):
            run(worker, Cmd("HSET", keys.contexts, "o", "{}"))
        with pytest.raises(PermissionDenied):
            run(worker, Cmd("HSET", Keys("team-b").tasks, "t-1", "{}"))
        assert worker.server_info().mode == "cluster"


# --- the real operations on a cluster (every test of the swarm fixture runs here too)


def test_fifty_swarms_land_on_every_master(redis_cluster: LocalCluster, cluster_url: str) -> None:
    """Many swarms spread over the slots: each has its own hash tag, so 50 swarm names use
    every master, and each swarm's keys stay together on one."""
    names = [f"team-{i}" for i in range(50)]
    homes: dict[str, set[int]] = {}
    base = Swarm(cluster_url, swarm="team-0")
    try:
        for name in names:
            swarm = Swarm(base.settings.with_swarm(name), client=base.redis)
            task = swarm.post_task("q", f"work of {name}", pass_name="P1")
            claimed = swarm.claim("q", worker="w-1")
            assert claimed is not None and claimed.id == task.id
            swarm.report(task.id, claimed.token, {"summary": name})
            swarm.register("shard", name="s-1")
    finally:
        base.close()
    for port in redis_cluster.masters():
        with redis_cluster.node(port).client() as client:
            for key in client.scan_iter("rs:{team-*"):
                swarm_name = key.decode().split("{", 1)[1].split("}", 1)[0]
                homes.setdefault(swarm_name, set()).add(port)
    assert sorted(homes) == sorted(names)
    assert all(len(ports) == 1 for ports in homes.values()), homes  # one node per swarm
    used = {port for ports in homes.values() for port in ports}
    assert used == set(redis_cluster.masters())


def test_a_multi_chunk_context_spreads_over_the_cluster(
    redis_cluster: LocalCluster, cluster_url: str
) -> None:
    from redis_swarm import Limits
    from redis_swarm._cache import ContextCache

    text = "".join(f"{i:05d} the quick brown fox jumps over the lazy dog\n" for i in range(4000))
    limits = Limits(context_chunk_bytes=8 * 1024)
    with Swarm(cluster_url, swarm="big", limits=limits) as shard:
        info = shard.publish_context("shard-1", text, source="big.md")
        assert info.chunks >= 20
        # the chunks of this one version already live on more than one master
        with redis_cluster.client() as admin:
            manifest = json.loads(admin.hget(Keys("big").contexts, "shard-1") or b"{}")
            where = {
                admin.get_node_from_key(chunk_key("big", part[0])).port
                for part in manifest["parts"]
            }
        assert len(where) > 1, where
        for i in range(4):  # past the kept versions: old chunks are released on their nodes
            shard.publish_context("shard-1", text + f"edit {i}\n", source="big.md")
    holders = {}
    for port in redis_cluster.masters():
        with redis_cluster.node(port).client() as client:
            holders[port] = sum(1 for _ in client.scan_iter("rs:chunk:*"))
    assert all(count > 0 for count in holders.values()), holders
    cold = ContextCache(max_bytes=0)
    with Swarm(cluster_url, swarm="big", cache=cold) as reader:
        assert reader.get_context("shard-1").endswith("edit 3\n")
        assert reader.read_context("shard-1", lines=(100, 101)).text.startswith("00099")
        hits = reader.search_context("shard-1", "03999 the quick")
        assert [hit.line for hit in hits] == [4000]
        assert len(reader.context_versions("shard-1")) == 3


def test_agents_messages_and_events_on_a_cluster(cswarm: Swarm) -> None:
    shard = cswarm.register("shard", name="shard-1")
    worker = cswarm.register("worker", name="w-1")
    cswarm.send(worker.id, "hello", sender=shard.id)
    cswarm.broadcast("all hands", sender=shard.id)
    assert [m.body for m in cswarm.inbox(worker.id)] == ["hello", "all hands"]
    assert cswarm.inbox(worker.id) == []
    types = [e.type for e in cswarm.events()]
    assert "agent.joined" in types and "message.sent" in types
    time.sleep(0.01)
    assert set(cswarm.sweep(0.0)) == {shard.id, worker.id}  # deletes their inboxes too
    assert cswarm.agents() == []


def test_a_retrying_client_survives_a_master_failover(
    redis_cluster: LocalCluster, cluster_url: str
) -> None:
    """Kill -9 the master of a swarm's slot: its replica takes over (cluster-node-timeout 2 s)
    and a client with enough retries carries on without losing an acknowledged write. A sync
    and an async client (each on a swarm of its own on that master) ride out the same
    failover, side by side: one failover, not one per shell."""
    admin = redis_cluster.client()
    victim = redis_cluster.masters()[0]
    names = [
        f"fo-{i}"
        for i in range(10_000)
        if admin.get_node_from_key(Keys(f"fo-{i}").counts).port == victim  # type: ignore[no-untyped-call]
    ][:2]
    url = f"{cluster_url}?retries=60"
    handles: dict[str, Any] = {
        "sync": Swarm(url, swarm=names[0]),
        "async": AsyncAsSync(lambda: AsyncSwarm(url, swarm=names[1])),
    }
    counts = {"sync": Keys(names[0]).counts, "async": Keys(names[1]).counts}
    outages: dict[str, float] = {}

    def through_the_failover(kind: str) -> None:
        handle = handles[kind]
        start = time.monotonic()
        run(handle, Cmd("HINCRBY", counts[kind], "n", 1))  # retried until the replica is promoted
        outages[kind] = time.monotonic() - start
        print(f"cluster failover outage seen by a {kind} client: {outages[kind]:.2f}s")

    try:
        for kind, handle in handles.items():
            for _ in range(10):
                run(handle, Cmd("HINCRBY", counts[kind], "n", 1))
            assert int(run(handle, Cmd("HGET", counts[kind], "n"))) == 10
        # (WAIT would go to a random node of the cluster: ask the victim's replica instead)
        replica = redis_cluster.replica_of(victim)
        with replica.client() as direct:
            direct.execute_command("READONLY")
            deadline = time.monotonic() + 10
            while any(direct.hget(key, "n") != b"10" for key in counts.values()):
                assert time.monotonic() < deadline, "the replica did not catch up"
                time.sleep(0.01)
        redis_cluster.node(victim).kill()
        with ThreadPoolExecutor(len(handles)) as pool:
            for done in [pool.submit(through_the_failover, kind) for kind in handles]:
                done.result()
        for kind, handle in handles.items():
            for _ in range(9):
                run(handle, Cmd("HINCRBY", counts[kind], "n", 1))
            assert int(run(handle, Cmd("HGET", counts[kind], "n"))) == 20
            assert run(handle, Call("ping", (counts[kind],), (0,))) > 0
    finally:
        for handle in handles.values():
            handle.close()
        # the old master comes back as a replica of the promoted one
        redis_cluster.node(victim).restart()
        redis_cluster.wait_ok()
    assert victim not in redis_cluster.masters()
    assert sorted(outages) == ["async", "sync"]
    assert all(outage < 30 for outage in outages.values()), outages


def test_the_work_queue_of_many_swarms_on_a_cluster(cluster_url: str) -> None:
    for name in ("legal", "medical", "finance"):
        with Swarm(cluster_url, swarm=name) as swarm:
            posted = swarm.post_tasks(
                [{"queue": "q1", "description": f"task {i}", "pass_name": "P1"} for i in range(5)]
            )
            assert len(posted) == 5
            while (task := swarm.claim("q1", worker="w-1")) is not None:
                swarm.renew(task.id, task.token)
                swarm.report(task.id, task.token, {"summary": task.description})
            assert swarm.queue_stats()["q1"]["completed"] == 5
            assert swarm.wait(pass_name="P1", timeout_s=5)
            assert len(swarm.findings(pass_name="P1").items) == 5
