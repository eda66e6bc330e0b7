"""A waiting claim on a cluster whose slot moves: the claim script behind the wait ran and
leased a task, while the push of the worker's name on the queue's waiters list, in the same
pipeline, failed (redis-py, following its ASK, gave up: "TTL exhausted"; its asyncio client
sent ASKING down one free connection to the importing node and the command down another,
answered MOVED back: the last test). That error was
raised for the whole batch, which the shell's cluster retry sent again with the same lease
secrets: the second claim found nothing, and ``claim`` returned None while the task stayed
leased to the worker for its whole lease (seen in tests/test_cluster_reshard.py, an
AsyncSwarm's waiting claim). The push is a hint, as the wait is: its error must not throw the
claim's reply away.

The slot is put half-moved by hand: its master MIGRATING towards another master that is not
(yet) IMPORTING it, so that a command on a key the master lacks is sent there by ASK and
back by MOVED until redis-py gives up, while the claim's script is refused with TRYAGAIN
(its keys split: some exist, some not). Once the push has failed, the move is called off
(STABLE): the wait and the claim, which redis-py sends again one by one, then run.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._config import Settings
from redis_swarm._connect import async_client
from redis_swarm._keys import Keys
from redis_swarm._protocol import WAITER_PUSH, WAKE_WAIT, Call, Cmd, raise_first

from ._cluster import LocalCluster
from ._slots import owner
from .conftest import AsyncAsSync

SWARM = "redirected"


def _node(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port)


def _errors(port: int, prefix: str) -> int:
    """How many replies of ``prefix`` (TRYAGAIN, ASK, MOVED) the node sent since the reset."""
    with _node(port) as node:
        stats = node.info("errorstats")
    return int(stats.get(f"errorstat_{prefix}", {}).get("count", 0))


@pytest.fixture(params=["sync", "async"])
def handle(request: pytest.FixtureRequest, cluster_url: str) -> Iterator[Any]:
    url = cluster_url
    if request.param == "sync":
        sync = Swarm(url, swarm=SWARM)
        yield sync
        sync.close()
    else:
        adapter = AsyncAsSync(lambda: AsyncSwarm(url, swarm=SWARM))
        yield adapter
        adapter.close()


def test_a_waiting_claim_keeps_its_lease_when_the_push_before_its_wait_fails(
    redis_cluster: LocalCluster, handle: Any
) -> None:
    keys = Keys(SWARM)
    slot = key_slot(keys.tasks.encode())
    source = owner(redis_cluster, slot)
    elsewhere = next(port for port in redis_cluster.masters() if port != source)
    with _node(elsewhere) as node:
        elsewhere_id = node.execute_command("CLUSTER", "MYID")
    handle.register("worker", name="w")
    # Found the queue empty just now: the next waiting claim starts with its wait (the push,
    # the BLPOP and the claim script in one pipeline).
    assert handle.claim("q", worker="w") is None
    task = handle.post_task("q", "moved under its claim")
    stop = threading.Event()

    def call_the_move_off() -> None:
        # The first pass refuses the wait and the claim with TRYAGAIN (2); redis-py then sends
        # each failed command again, one by one, in order: a third TRYAGAIN is the wait's,
        # so the push's ASK and MOVED rounds are over (it failed).
        while _errors(source, "TRYAGAIN") < 3 and not stop.is_set():
            time.sleep(0.002)
        with _node(source) as node:
            node.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")

    for port in (source, elsewhere):
        with _node(port) as node:
            node.config_resetstat()
    with _node(source) as node:
        node.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", elsewhere_id)
    mover = threading.Thread(target=call_the_move_off)
    mover.start()
    try:
        claimed = handle.claim("q", worker="w", wait_s=0.05)
    finally:
        stop.set()
        mover.join()
        with _node(source) as node:
            node.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
    with _node(source) as node:
        record = json.loads(node.hget(keys.tasks, task.id) or b"{}")
    # The push went back and forth (ASK there, MOVED back) until redis-py gave it up.
    assert _errors(source, "ASK") > 1 and _errors(elsewhere, "MOVED") > 1
    assert record["status"] == "claimed"  # (the claim script ran)
    assert claimed is not None, f"claim returned None, the task leased to it: {record}"
    assert claimed.id == task.id
    assert record["attempts"] == claimed.attempts == 1
    handle.report(claimed.id, claimed.token, {"summary": "done"})


def test_the_asyncio_client_follows_an_ask_with_two_free_connections(
    redis_cluster: LocalCluster, cluster_url: str
) -> None:
    """redis-py's asyncio client sent ASKING down one free connection to the importing node
    and the command down the other: MOVED back, ASK again, until "TTL exhausted" (the
    failed push above, in the reshard test)."""
    key = "{asked}moved"
    slot = key_slot(key.encode())
    source = owner(redis_cluster, slot)
    target = next(port for port in redis_cluster.masters() if port != source)
    with _node(source) as src, _node(target) as dst:
        src.set(key, "here")
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src.cluster("MYID"))
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst.cluster("MYID"))
        src.migrate("127.0.0.1", target, [key], 0, 5000)

    async def read() -> list[Any]:
        client: Any = async_client(Settings.from_url(cluster_url))
        try:
            await client.initialize()
            node = client.nodes_manager.get_node("127.0.0.1", target)
            # (two commands at once: two connections to the importing node, both free after)
            await asyncio.gather(*(client.ping(target_nodes=node) for _ in range(2)))
            return [await client.get(key) for _ in range(3)]
        finally:
            await client.aclose()

    try:
        assert asyncio.run(read()) == [b"here"] * 3
    finally:
        with _node(source) as src, _node(target) as dst:
            undo = dst.pipeline(transaction=False)  # (one connection: ASKING, then DEL)
            undo.execute_command("ASKING")
            undo.delete(key)
            undo.execute()
            for node in (src, dst):
                node.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")


def test_only_the_push_right_before_a_wait_is_left_to_the_claim_behind() -> None:
    """raise_first returns the error of a waiter's push that a wait follows (the claim behind
    them judges it, ``claiming.claim``), and raises any other error as a pipeline does: a
    push no wait follows, or the claim's own."""
    refused = redis.ResponseError("NOPERM this user has no permissions to access the key")
    claim = Call("task_claim", ("k",), ())
    push, wait = Cmd(WAITER_PUSH, "waiters", "w"), Cmd(WAKE_WAIT, "own", 1)
    replies: list[Any] = [refused, None, [0]]
    assert raise_first(replies, (push, wait, claim)) == replies
    with pytest.raises(redis.ResponseError):
        raise_first([refused, [0]], (push, claim))
    with pytest.raises(redis.ResponseError):
        raise_first([1, None, refused], (push, wait, claim))
