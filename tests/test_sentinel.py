"""Sentinel (issue 9): redis+sentinel:// finds the master, and a retrying client survives a
failover, whether the master dies (kill -9) or is switched over (SENTINEL FAILOVER)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import AsyncSwarm, ConfigError, Settings, Swarm
from redis_swarm._keys import Keys
from redis_swarm._protocol import Call, Cmd, Operation

from ._sentinel import LocalSentinel, start_sentinel
from ._servers import ServerFactory
from .conftest import AsyncAsSync, as_swarm

COUNTER = Keys("fo").counts


@pytest.fixture(scope="module")
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    setup = start_sentinel(servers)
    yield setup
    for server in [*setup.sentinels, *setup.data_nodes()]:
        server.stop()


def _one(request: Cmd | Call) -> Operation[Any]:
    reply = yield request
    return reply


def run(swarm: Swarm, request: Cmd | Call) -> Any:
    if isinstance(swarm, AsyncAsSync):
        inner: AsyncSwarm = swarm._swarm
        return swarm.call(inner._run(_one(request)))
    return swarm._run(_one(request))


def bump(swarm: Swarm, times: int) -> None:
    for _ in range(times):
        run(swarm, Cmd("HINCRBY", COUNTER, "n", 1))


def count(swarm: Swarm) -> int:
    return int(run(swarm, Cmd("HGET", COUNTER, "n")) or 0)


@pytest.fixture(params=["sync", "async"])
def sswarm(request: pytest.FixtureRequest, sentinel: LocalSentinel) -> Iterator[Swarm]:
    sentinel.wait_ready()
    # Enough retries to ride out a failover (down-after 1 s + election + promotion).
    settings = Settings.from_url(sentinel.url, swarm="fo", retries=40)
    if request.param == "sync":
        handle = Swarm(settings)
    else:
        handle = as_swarm(AsyncAsSync(lambda: AsyncSwarm(settings)))
    yield handle
    handle.close()


def test_sentinel_url_finds_the_master(sswarm: Swarm, sentinel: LocalSentinel) -> None:
    assert sswarm.settings.kind == "sentinel"
    assert sswarm.ping() >= 0
    before = count(sswarm)
    bump(sswarm, 3)
    assert count(sswarm) == before + 3
    assert run(sswarm, Call("ping", (COUNTER,), (0,))) > 1_700_000_000_000
    info = sswarm.server_info()
    assert info.version.startswith("7") and info.mode == "standalone"
    # the write went to the master that the sentinels name
    master = sentinel.node(sentinel.master_port())
    with master.client() as client:
        assert client.info("replication")["role"] == "master"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_service_name_no_sentinel_monitors_fails_at_once(
    sentinel: LocalSentinel, kind: str
) -> None:
    """A misspelt service name: every sentinel answers that it monitors no such master, which
    no retry changes: a ConfigError at once naming the one they monitor (it used to be
    retried for the failover window, 53 s with a Sentinel URL's default retries)."""
    url = sentinel.url.replace(f"/{sentinel.service}", "/mymastr")
    if kind == "sync":
        swarm = Swarm(url, swarm="fo")
    else:
        swarm = as_swarm(AsyncAsSync(lambda: AsyncSwarm(url, swarm="fo")))
    start = time.monotonic()
    try:
        with pytest.raises(ConfigError) as info:
            swarm.ping()
    finally:
        swarm.close()
    took = time.monotonic() - start
    message = str(info.value)
    assert "monitors a master named 'mymastr'" in message, message
    assert f"monitor {sentinel.service!r} (SENTINEL MASTERS)" in message, message
    assert took < 3.0, f"{took:.1f} s"


def test_a_retrying_client_survives_the_master_dying(sentinel: LocalSentinel) -> None:
    sentinel.wait_ready()
    settings = Settings.from_url(sentinel.url, swarm="fo", retries=40)
    with Swarm(settings) as swarm:
        run(swarm, Cmd("DEL", COUNTER))
        bump(swarm, 20)
        assert run(swarm, Cmd("WAIT", 1, 5000)) == 1  # the replica has every write
        old = sentinel.master_port()
        sentinel.node(old).kill()
        start = time.monotonic()
        bump(swarm, 1)  # blocks, retrying, until the sentinels promote the replica
        outage = time.monotonic() - start
        print(f"sentinel failover outage seen by the client: {outage:.2f}s")
        bump(swarm, 19)
        assert count(swarm) == 40
        assert run(swarm, Call("ping", (COUNTER,), (0,))) > 0
    new = sentinel.master_port()
    assert new != old
    assert outage < 30, f"failover took {outage:.1f}s"
    # bring the dead master back as a replica of the new one, for the next test
    dead = sentinel.node(old)
    dead.args = [*dead.args, "--replicaof", "127.0.0.1", str(new)]
    dead.restart()
    sentinel.wait_ready()


def test_a_retrying_async_client_survives_a_switchover(sentinel: LocalSentinel) -> None:
    sentinel.wait_ready()
    settings = Settings.from_url(sentinel.url, swarm="fo", retries=40)
    swarm = as_swarm(AsyncAsSync(lambda: AsyncSwarm(settings)))
    try:
        run(swarm, Cmd("DEL", COUNTER))
        bump(swarm, 10)
        old = sentinel.master_port()
        sentinel.switch_over()
        deadline = time.monotonic() + 30
        done = 10
        while sentinel.master_port() == old or done < 40:
            assert time.monotonic() < deadline, "no switchover within 30 s"
            bump(swarm, 1)
            done += 1
        assert count(swarm) == done
    finally:
        swarm.close()
    assert sentinel.master_port() != old
