"""``?durability=strict`` for a worker of ``swarm acl`` (a user that may not run INFO), on
real servers: the strict plan is probed around INFO, and a replica online counts.

- One server (or Sentinel's master: the same probe), on both shells, with an online replica
  whose ack lags the master's latest write (the replica sends one a second; here it sleeps
  through a write): strict writes go through, waiting for the replica (``WAIT 0 1`` counted 0
  then, so a worker's strict writes failed at random with "it has no connected replica").
- A Redis Cluster: the plan asks each master around INFO too (it was refused: "may not run
  'info'"), on both shells.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from redis_swarm import AsyncSwarm, Settings, Swarm, apply_role

from ._cluster import LocalCluster
from ._servers import RedisServer, ServerFactory, role_users, system_redis, user_url
from ._waiting import until
from .conftest import AsyncAsSync, as_swarm

SWARM = "wq"


@pytest.fixture
def pair(servers: ServerFactory) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A master and its replica (which may run DEBUG SLEEP), caught up with the master."""
    master = servers.start(binary=system_redis())
    replica = servers.start(
        binary=system_redis(),
        extra=["--replicaof", "127.0.0.1", str(master.port), "--enable-debug-command", "local"],
    )
    yield master, replica
    replica.stop()
    master.stop()


def _caught_up(master: RedisServer) -> None:
    client = master.client()
    try:

        def acked() -> bool:
            info = client.info("replication")
            replica = info.get("slave0", {})
            return bool(
                replica.get("state") == "online"
                and int(replica.get("offset", 0)) >= int(info["master_repl_offset"])
            )

        until(acked, "replica online and caught up")
    finally:
        client.close()


def _handle(shell: str, settings: Settings) -> Swarm:
    if shell == "sync":
        return Swarm(settings)
    return as_swarm(AsyncAsSync(lambda: AsyncSwarm(settings)))


@pytest.mark.parametrize("shell", ["sync", "async"])
def test_a_worker_strict_write_waits_for_a_replica_whose_ack_lags(
    pair: tuple[RedisServer, RedisServer], shell: str
) -> None:
    master, replica = pair
    worker = role_users(master, SWARM, "ha1", ("worker",))["worker"]
    settings = Settings.from_url(user_url(master, worker) + "?durability=strict", swarm=SWARM)
    _caught_up(master)
    # Healthy and idle: the probe answers at once (it waits only where no replica is).
    handle = _handle(shell, settings)
    try:
        started = time.monotonic()
        assert handle.durability().startswith("strict: WAIT"), handle.durability()
        assert time.monotonic() - started < 1.0
    finally:
        handle.close()
    # The replica sleeps through a write to the master: its ack is behind until it wakes.
    sleeper = replica.client()
    asleep = threading.Thread(target=sleeper.execute_command, args=("DEBUG", "SLEEP", "1"))
    asleep.start()
    try:
        time.sleep(0.2)  # (DEBUG SLEEP has begun)
        admin = master.client()
        admin.set("elsewhere", "1")  # anyone's write moves the master's offset past the ack
        admin.close()
        handle = _handle(shell, settings)
        try:
            task = handle.post_task("wq", "x")
            assert handle.durability().startswith("strict: WAIT")
            assert handle.get_task(task.id).status == "pending"
        finally:
            handle.close()
    finally:
        asleep.join(10)
        sleeper.close()


@pytest.fixture
def cluster_worker(redis_cluster: LocalCluster, cluster_url: str) -> Iterator[str]:
    """A strict URL of the session's cluster as a worker user (removed at the end)."""
    made = apply_role(Settings.from_url(cluster_url, swarm=SWARM), "worker", "legal-worker")
    user = made.user
    credentials = f"redis+cluster://{user.user}:{user.password}@"
    yield cluster_url.replace("redis+cluster://", credentials) + "?durability=strict"
    for node in redis_cluster.nodes:
        with contextlib.suppress(Exception):
            client = node.client()
            client.acl_deluser(user.user)
            client.close()


@pytest.mark.parametrize("shell", ["sync", "async"])
def test_a_worker_strict_write_on_a_cluster_probes_around_info(
    cluster_worker: str, shell: str
) -> None:
    settings = Settings.from_url(cluster_worker, swarm=SWARM)
    handle = (
        Swarm(settings) if shell == "sync" else as_swarm(AsyncAsSync(lambda: AsyncSwarm(settings)))
    )
    try:
        task = handle.post_task("wq", "x")
        assert handle.durability().startswith("strict: cluster"), handle.durability()
        assert handle.get_task(task.id).status == "pending"
    finally:
        handle.close()
