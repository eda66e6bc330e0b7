"""A server that cannot persist (MISCONF) is alive: it answers PING with an error, and a
new connection must not take that for a dead server. Reads go on; writes fail with the
"cannot persist writes" message. A real server, brought into MISCONF the way it happens in
production: its RDB snapshot fails (its data directory is gone) with ``save`` on and
``stop-writes-on-bgsave-error yes`` (the default)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest
import redis

from redis_swarm import AsyncSwarm, ConnectionFailed, Settings, Swarm
from redis_swarm._embedded import _version_of

from ._cli import Cli
from ._servers import RedisServer, ServerFactory

SWARM = "misconf"


def _bgsave_status(admin: redis.Redis) -> str:
    persistence = admin.info("persistence")
    if persistence.get("rdb_bgsave_in_progress"):
        return "running"
    return str(persistence["rdb_last_bgsave_status"])


def _bgsave(admin: redis.Redis, expected: str) -> None:
    """A BGSAVE, waited for until it ended with ``expected`` ('ok' or 'err')."""
    admin.bgsave()
    deadline = time.monotonic() + 15
    while (status := _bgsave_status(admin)) != expected:
        assert status in ("running", "ok", "err") and time.monotonic() < deadline, status
        time.sleep(0.05)


@pytest.fixture
def misconf(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server that snapshots (``save`` on) whose last snapshot failed: its data directory
    was removed (a chmod would not stop root). It refuses writes and PING with MISCONF until
    a snapshot succeeds again."""
    extra = ["--save", "3600 1"]
    if (_version_of(servers.binary) or (0,))[0] >= 7:
        extra += ["--enable-protected-configs", "yes"]  # (CONFIG SET dir)
    server = servers.start(extra=extra)
    with contextlib.closing(server.client()) as admin:
        gone = server.dir / "gone"
        gone.mkdir()
        admin.config_set("dir", str(gone))
        gone.rmdir()
        _bgsave(admin, "err")
        with pytest.raises(redis.ResponseError, match=r"^MISCONF"):
            admin.ping()
    try:
        yield server
    finally:
        with contextlib.closing(server.client()) as admin:
            admin.config_set("save", "")  # (else its shutdown would try to save, and fail)
        server.stop()


def _post_before(server: RedisServer) -> str:
    """A task posted while the server could still persist: its id."""
    with contextlib.closing(server.client()) as admin:
        admin.config_set("stop-writes-on-bgsave-error", "no")
    try:
        with Swarm(server.url, swarm=SWARM) as swarm:
            return swarm.post_task("q.misconf", "posted before").id
    finally:
        with contextlib.closing(server.client()) as admin:
            admin.config_set("stop-writes-on-bgsave-error", "yes")


def test_new_connections_read_from_a_server_that_cannot_persist(misconf: RedisServer) -> None:
    task_id = _post_before(misconf)
    # A new handle (new connections, each checked with a PING first) reads.
    with Swarm(misconf.url, swarm=SWARM) as swarm:
        assert swarm.get_task(task_id).description == "posted before"
        assert swarm.queue_stats()["q.misconf"]["pending"] == 1
        # A write still fails, saying why and what to do.
        with pytest.raises(ConnectionFailed, match="cannot persist writes"):
            swarm.post_task("q.misconf", "refused")

    async def read_async() -> str:
        async with AsyncSwarm(misconf.url, swarm=SWARM) as swarm:
            description = (await swarm.get_task(task_id)).description
            with pytest.raises(ConnectionFailed, match="cannot persist writes"):
                await swarm.post_task("q.misconf", "refused")
            return description

    assert asyncio.run(read_async()) == "posted before"

    # The CLI, one process per command: each a new connection.
    cli = Cli(misconf.url, swarm=SWARM)
    assert cli.json("task", "show", task_id)["description"] == "posted before"
    refused = cli("task", "post", "q.misconf", "refused", expect=1)
    assert "cannot persist writes" in refused.stderr, refused.stderr


def test_a_connection_idle_past_its_health_check_reads_too(misconf: RedisServer) -> None:
    """The health check of a connection idle longer than health_check_interval is a PING
    too: answered MISCONF, the connection is kept and the read goes on."""
    task_id = _post_before(misconf)
    settings = Settings.from_url(misconf.url, swarm=SWARM, health_check_interval=1)
    with Swarm(settings) as swarm:
        assert swarm.get_task(task_id).description == "posted before"
        time.sleep(1.2)
        assert swarm.get_task(task_id).description == "posted before"
