"""``swarm doctor`` and ``swarm up``, from an operator's walk through docs/reliability.md and
docs/deployment.md (real servers).

1. A replica's address given as the master: doctor said ok, ``up`` printed the URL; a write
   alone failed, naming neither the master nor a Sentinel URL. Doctor now fails naming the
   master as the replica sees it and redis+sentinel://, ``up`` refuses with the same words,
   and so does the write.
2. A sentinel's port given as a redis:// URL: 'unknown command' of XREVRANGE, TIME, SCRIPT.
   Now: the address is a Redis Sentinel, use redis+sentinel://HOST:PORT/SERVICE.
3. A worker's doctor said ok with the function library missing, which the worker cannot load:
   every call of it fails. Now not ok, saying an admin must run 'swarm up'.
4. ``embedded?durability=strict`` on an embedded server started without strict: doctor
   printed one error and no report. Now the whole report, its durability row failed, exit 1.
5. Above maxmemory the memory row read "-101512 bytes left below maxmemory".
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_swarm import AsyncSwarm, ConnectionFailed, PermissionDenied, Settings, Swarm, apply_role
from redis_swarm._scripts import LOAD_AS_ADMIN

from ._cli import Cli
from ._sentinel import SERVICE, LocalSentinel, start_sentinel
from ._servers import RedisServer, ServerFactory, system_redis
from ._waiting import until
from .test_doctor_memory import _limit_to, ballasted

__all__ = ["ballasted"]  # (the fixture, shared)

# --- 1. a replica's address


@pytest.fixture(scope="module")
def pair(servers: ServerFactory) -> Iterator[tuple[RedisServer, RedisServer]]:
    master = servers.start()
    replica = servers.start(extra=["--replicaof", "127.0.0.1", str(master.port)])
    with contextlib.closing(replica.client()) as client:
        until(
            lambda: client.info("replication").get("master_link_status") == "up",
            "the replica synced",
        )
    Cli(master.url)("up")  # (the library in place: replicated to the replica)
    with contextlib.closing(replica.client()) as client:
        until(lambda: client.function_list(library="redis_swarm"), "the library replicated")
    yield master, replica
    replica.stop()
    master.stop()


def test_doctor_fails_on_a_replica_naming_its_master(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    master, replica = pair
    cli = Cli(replica.url)
    report = cli("doctor", "--quick", "--json", expect=1).json()
    assert report["ok"] is False
    assert f"read-only replica of 127.0.0.1:{master.port}" in report["role"]
    [warning] = [w for w in report["warnings"] if "read-only replica" in w]
    assert f"127.0.0.1:{master.port}" in warning and "redis+sentinel://" in warning
    assert report["function_library"].startswith("version ")  # (replicated from the master)
    human = cli("doctor", "--quick", expect=1)
    assert "read-only replica" in human.stdout


def test_up_refuses_a_replica_and_a_write_names_the_master(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    master, replica = pair
    out = Cli(replica.url)("up", expect=1)
    assert replica.url not in out.stdout
    assert "is a read-only replica: point the URL at the master" in out.stderr
    assert f"127.0.0.1:{master.port}" in out.stderr and "redis+sentinel://" in out.stderr
    with Swarm(replica.url, swarm="test") as swarm, pytest.raises(ConnectionFailed) as refused:
        swarm.post_task("q", "refused")
    said = str(refused.value)
    assert f"127.0.0.1:{master.port}" in said and "redis+sentinel://" in said


def test_an_async_write_to_a_replica_asks_nothing_more_on_the_event_loop(
    pair: tuple[RedisServer, RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync client names the master by asking the replica's INFO on the error path; an
    AsyncSwarm says the error on its event loop, where a blocking INFO (up to 2 s, a DNS
    look-up unbounded) would stall every other task: it says the refusal without it."""
    _, replica = pair
    asked: list[str] = []
    real_info = redis.Redis.info

    def info(client: redis.Redis, *args: Any, **kwargs: Any) -> Any:
        asked.append(threading.current_thread().name)
        return real_info(client, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "info", info)

    async def post() -> None:
        async with AsyncSwarm(replica.url, swarm="test") as swarm:
            await swarm.post_task("q", "refused")

    with pytest.raises(ConnectionFailed) as refused:
        asyncio.run(post())
    assert "is a read-only replica: point the URL at the master" in str(refused.value)
    assert asked == []


# --- 2. a sentinel's address


@pytest.fixture(scope="module")
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    setup = start_sentinel(servers, sentinels=1)
    yield setup
    for server in (*setup.sentinels, setup.replica, setup.master):
        server.stop()


@pytest.mark.parametrize("command", [("status",), ("doctor", "--quick"), ("up",)])
def test_a_sentinels_address_is_said_to_be_one(
    sentinel: LocalSentinel, command: tuple[str, ...]
) -> None:
    port = sentinel.sentinels[0].port
    out = Cli(f"redis://127.0.0.1:{port}")(*command, expect=1)
    assert "is a Redis Sentinel, not a data server" in out.stderr, out
    assert f"redis+sentinel://127.0.0.1:{port}/SERVICE" in out.stderr
    assert repr(SERVICE) in out.stderr and "unknown command" not in out.stderr


def test_a_cluster_url_naming_a_sentinel_is_said_to_be_one(sentinel: LocalSentinel) -> None:
    """It was told to use redis://, which then said "a Sentinel": one step lost."""
    port = sentinel.sentinels[0].port
    out = Cli(f"redis+cluster://127.0.0.1:{port}?retries=0")("status", expect=1)
    assert "is a Redis Sentinel, not a data server" in out.stderr, out
    assert f"redis+sentinel://127.0.0.1:{port}/SERVICE" in out.stderr, out


# --- 3. a worker, the library missing


def test_a_workers_doctor_fails_when_the_library_is_missing(servers: ServerFactory) -> None:
    server = servers.start(binary=system_redis())
    try:
        made = apply_role(Settings.from_url(server.url), "worker", "wt-worker", swarm="wt")
        url = f"redis://wt-worker:{made.user.password}@127.0.0.1:{server.port}"
        with contextlib.closing(server.client()) as admin:
            admin.function_delete("redis_swarm")
        with Swarm(url, swarm="wt") as worker, pytest.raises(PermissionDenied) as refused:
            worker.claim("q", worker="a1")
        assert LOAD_AS_ADMIN in str(refused.value)
        report = Cli(url, swarm="wt")("doctor", "--quick", "--json", expect=1).json()
        assert report["ok"] is False
        assert (
            report["function_library"] == f"not loaded: this user cannot load it: {LOAD_AS_ADMIN}"
        )
    finally:
        server.stop()


# --- 4. strict on an embedded server started without it


def test_strict_on_an_embedded_server_without_it_keeps_the_report(swarm_home: Path) -> None:
    env = {"SWARM_HOME": str(swarm_home), "SWARM_URL": "embedded"}
    Cli("embedded", env=env)("up")
    strict = Cli(
        "embedded?durability=strict", env={**env, "SWARM_URL": "embedded?durability=strict"}
    )
    out = strict("doctor", "--json", expect=1)
    report = out.json()
    assert report["ok"] is False
    assert report["durability"].startswith("failed: durability='strict' cannot be honoured")
    assert report["corrupt_records"]["checked"] is True and report["ping_ms"] is not None
    human = strict("doctor", expect=1)
    assert "corrupt_records" in human.stdout and "durability" in human.stdout


# --- 5. above maxmemory


def test_the_memory_row_says_bytes_over_maxmemory(ballasted: RedisServer) -> None:
    _limit_to(ballasted, "noeviction", 1.1)
    report = Cli(ballasted.url)("doctor", "--quick", "--json", expect=1).json()
    row = report["memory"]
    assert row.startswith("refusing every write now: ") and "bytes over maxmemory" in row
    assert "-" not in row.split(":")[1] and "," in row, row
