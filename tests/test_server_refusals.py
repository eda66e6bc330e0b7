"""What a server that refuses a write says, on real servers: a full one (maxmemory reached,
noeviction) is a ConnectionFailed that says so and what to do, and loses nothing stored; a
replica is named as one. redis-py strips the codes of these replies ("OOM", "READONLY"), so
they read as any error did: "Redis ... answered an error: command not allowed when used
memory > 'maxmemory'."."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import AsyncSwarm, ConnectionFailed, Swarm
from redis_swarm._protocol import Cmd, Operation

from ._cli import Cli
from ._servers import RedisServer, ServerFactory


@pytest.fixture
def server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of the test's own: its maxmemory is set."""
    started = servers.start()
    yield started
    started.stop()


def _set_maxmemory(server: RedisServer, value: str) -> None:
    client = server.client()
    client.config_set("maxmemory", value)
    client.close()


def test_a_full_server_says_it_is_out_of_memory_and_loses_nothing(server: RedisServer) -> None:
    cli = Cli(server.url)
    kept = cli.json("task", "post", "qoom", "posted before")
    _set_maxmemory(server, "1")  # noeviction (the default): every write is refused
    out = cli("--json", "task", "post", "qoom", "x", expect=1)
    error = json.loads(out.stderr)
    assert error["error"] == "ConnectionFailed", error
    message = error["message"]
    assert "is out of memory" in message and "answered an error" not in message
    assert "nothing stored is lost" in message
    assert "CONFIG SET maxmemory" in message and "swarm gc" in message
    human = cli("task", "claim", "qoom", expect=1)  # a claim writes: refused the same way
    assert human.stderr.startswith("error: Redis at ") and "out of memory" in human.stderr
    # reads still work, and what was stored is there
    shown = cli.json("task", "show", kept["id"])
    assert shown["status"] == "pending" and shown["description"] == "posted before"
    with Swarm(server.url, swarm="test") as swarm, pytest.raises(ConnectionFailed) as info:
        swarm.post_task("qoom", "y")
    assert "out of memory" in str(info.value)

    async def post_async() -> None:
        async with AsyncSwarm(server.url, swarm="test") as swarm:
            await swarm.post_task("qoom", "z")

    with pytest.raises(ConnectionFailed, match="out of memory"):
        asyncio.run(post_async())
    _set_maxmemory(server, "0")  # room again: the refused writes can be made
    cli("task", "post", "qoom", "posted after")
    stats = cli.json("task", "list", "--queue", "qoom")["items"]
    assert [t["description"] for t in stats] == ["posted before", "posted after"]


def _one(request: Cmd) -> Operation[Any]:
    reply = yield request
    return reply


def test_a_write_to_a_replica_names_it(servers: ServerFactory) -> None:
    master = servers.start()
    replica = servers.start(extra=["--replicaof", "127.0.0.1", str(master.port)])
    try:
        client = replica.client()
        deadline = time.monotonic() + 15
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica never synced"
            time.sleep(0.05)
        client.close()
        with Swarm(replica.url, swarm="test") as swarm, pytest.raises(ConnectionFailed) as info:
            swarm._run(_one(Cmd("SET", "k", "v")))
        assert "is a read-only replica: point the URL at the master" in str(info.value)
    finally:
        replica.stop()
        master.stop()
