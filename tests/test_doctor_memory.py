"""``swarm doctor`` says when Redis refuses writes for memory: above its ``maxmemory`` with a
policy that frees nothing (``noeviction``, or ``volatile-*`` with no key that has a time to
live) every write is refused, and the error sends the user to doctor, so doctor fails (exit 1,
``ok`` false) saying so and what to do. Close to the limit (above 90% of it), it warns. A
server that cannot persist (MISCONF) refuses writes too: doctor fails it as well."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import ConnectionFailed, Swarm
from redis_swarm._embedded import _version_of

from ._cli import Cli
from ._servers import RedisServer, ServerFactory
from .test_connect_defects_misconf import _bgsave

# Memory held by a key of another application, so that what the doctor's own connections
# add to used_memory is small beside it (the shares set below stay where they are put).
BALLAST_BYTES = 8 * 1024 * 1024


@pytest.fixture
def ballasted(servers: ServerFactory) -> Iterator[RedisServer]:
    server = servers.start()
    with contextlib.closing(server.client()) as admin:
        admin.set("other-app:blob", b"x" * BALLAST_BYTES)
    Cli(server.url)("up")  # (the swarm's function library in place, as on a server in use)
    try:
        yield server
    finally:
        server.stop()


def _memory_warnings(report: dict[str, Any]) -> list[str]:
    """The doctor's warnings but the one of a server without persistence (the fixtures' run
    with appendonly no and save '': tests/test_doctor_persistence.py)."""
    return [w for w in report.get("warnings", []) if "keeps the swarm in memory only" not in w]


def _limit_to(server: RedisServer, policy: str, share: float) -> None:
    """maxmemory set so that the memory in use is ``share`` of it, under ``policy``."""
    with contextlib.closing(server.client()) as admin:
        admin.config_set("maxmemory-policy", policy)
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory", int(used / share))


@pytest.mark.parametrize("policy", ["noeviction", "volatile-lru"])  # (no key has a TTL)
def test_doctor_fails_when_redis_refuses_writes_for_memory(
    ballasted: RedisServer, policy: str
) -> None:
    _limit_to(ballasted, policy, 1.1)
    # What the user met: every write refused, pointing at 'swarm doctor'.
    with Swarm(ballasted.url, swarm="test") as swarm, pytest.raises(ConnectionFailed) as refused:
        swarm.post_task("q", "refused")
    assert "out of memory" in str(refused.value) and "swarm doctor" in str(refused.value)

    cli = Cli(ballasted.url)
    report = cli("doctor", "--json", expect=1).json()
    assert report["ok"] is False
    assert report["maxmemory_bytes"] < report["used_memory_bytes"]
    [warning] = [w for w in report["warnings"] if "refuses every write now" in w]
    assert f"maxmemory-policy {policy}" in warning
    assert "CONFIG SET maxmemory" in warning and "swarm gc" in warning
    assert "rs:{NAME}:*" in warning  # (the keys of an old swarm, to delete)
    human = cli("doctor", expect=1)
    assert "warning: Redis refuses every write now" in human.stdout

    # Raised again: the writes pass, and so does the doctor.
    _limit_to(ballasted, policy, 0.5)
    assert _memory_warnings(cli("doctor", "--json").json()) == []


def test_doctor_warns_when_redis_is_close_to_refusing_writes(ballasted: RedisServer) -> None:
    _limit_to(ballasted, "noeviction", 0.95)
    cli = Cli(ballasted.url)
    report = cli("doctor", "--json").json()
    assert report["ok"] is True
    [warning] = _memory_warnings(report)
    assert "of its maxmemory" in warning and "above it, it refuses writes" in warning
    assert "CONFIG SET maxmemory" in warning and "swarm gc" in warning
    assert "\n" not in warning
    assert "warning: Redis uses" in cli("doctor").stdout


def test_doctor_is_silent_under_the_limit_or_without_one(ballasted: RedisServer) -> None:
    cli = Cli(ballasted.url)
    assert _memory_warnings(cli("doctor", "--json").json()) == []  # maxmemory 0: no limit
    _limit_to(ballasted, "noeviction", 0.7)
    assert _memory_warnings(cli("doctor", "--json").json()) == []


def test_doctor_fails_when_redis_cannot_persist(servers: ServerFactory) -> None:
    """MISCONF: the last RDB snapshot failed (its directory removed), so Redis refuses writes
    and PING until one succeeds (as tests/test_connect_defects_misconf.py brings it about)."""
    extra = ["--save", "3600 1"]
    if (_version_of(servers.binary) or (0,))[0] >= 7:
        extra += ["--enable-protected-configs", "yes"]  # (CONFIG SET dir)
    server = servers.start(extra=extra)
    try:
        Cli(server.url)("up")
        with contextlib.closing(server.client()) as admin:
            gone = server.dir / "gone"
            gone.mkdir()
            admin.config_set("dir", str(gone))
            gone.rmdir()
            _bgsave(admin, "err")
        cli = Cli(server.url)
        report = cli("doctor", "--json", expect=1).json()
        assert report["ok"] is False
        assert any("cannot persist writes" in w for w in report["warnings"]), report
        assert "cannot persist writes" in cli("doctor", expect=1).stdout
    finally:
        with contextlib.closing(server.client()) as admin:
            admin.config_set("save", "")
        server.stop()


def test_a_cluster_master_refusing_writes_is_not_hidden_by_a_fuller_one_that_evicts() -> None:
    """On a cluster, the node that refuses writes is the one said, though another (allkeys-*,
    which evicts to make room) is fuller. INFO as the masters answer it."""
    from redis_swarm._ops.server import _fullest

    evicting = {"role": "master", "used_memory": 105, "maxmemory": 100,
                "maxmemory_policy": "allkeys-lru"}  # fmt: skip
    refusing = {"role": "master", "used_memory": 101, "maxmemory": 100,
                "maxmemory_policy": "noeviction"}  # fmt: skip
    for nodes in ([evicting, refusing], [refusing, evicting]):
        fill = _fullest(nodes)
        assert fill is not None and fill.refuses_writes and fill.policy == "noeviction"
