"""``redis_swarm.apply_role``: what ``swarm acl`` runs, called from Python on real servers (the
users are real ACL users; each server here is private to this module, so they leak nowhere)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from redis_swarm import (
    AppliedRole,
    PermissionDenied,
    Settings,
    Swarm,
    ValidationError,
    apply_role,
)

from ._servers import RedisServer, ServerFactory, _spawn, _wait_ready, free_port, system_redis
from ._tls import Pki, TlsServer, make_pki

SWARM = "core-acl"
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A private Redis >= 7 (ACL selectors, Functions)."""
    started = servers.start(binary=system_redis())
    yield started
    started.stop()


def _version(client: redis.Redis) -> tuple[int, int]:
    major, minor = str(client.info("server")["redis_version"]).split(".")[:2]
    return int(major), int(minor)


def _user_exists(client: redis.Redis, user: str) -> bool:
    return client.acl_getuser(user) is not None


def test_a_worker_made_from_python_works_and_is_held_to_its_role(server: RedisServer) -> None:
    admin = Settings.from_url(server.url, swarm=SWARM)
    made = apply_role(admin, "worker", "core-worker")
    assert isinstance(made, AppliedRole)
    assert made.user.generated and made.user.password and made.user.swarm == SWARM
    raw = server.client()
    try:
        assert made.version == _version(raw)
        assert _user_exists(raw, "core-worker")
    finally:
        raw.close()
    assert list(made.persisted) == [admin.url]  # (its password masked, were there one)
    assert made.applied == [{"node": admin.url, "persisted": made.persisted[admin.url]}]
    assert "memory only" in made.persisted[admin.url]  # no aclfile, no config file
    with Swarm(admin) as boss:
        task = boss.post_task("core", "read it")
    worker_url = f"redis://core-worker:{made.user.password}@127.0.0.1:{server.port}"
    with Swarm(worker_url, swarm=SWARM) as worker:
        claimed = worker.claim("core", worker="w-1")  # a function of the library it loaded
        assert claimed is not None and claimed.id == task.id
        with pytest.raises(PermissionDenied):
            worker.publish_context("spec", "a worker may not publish contexts", source="test")


def test_apply_role_loads_the_library_a_worker_may_not_load(server: RedisServer) -> None:
    """A server without the swarm's library (FUNCTION FLUSH): apply_role loads it, so that the
    worker it made can run its operations at once."""
    raw = server.client()
    try:
        raw.function_flush()
        made = apply_role(Settings.from_url(server.url, swarm="core-lib"), "worker", "core-w2")
        assert raw.function_list()  # loaded again
    finally:
        raw.close()
    worker_url = f"redis://core-w2:{made.user.password}@127.0.0.1:{server.port}"
    with Swarm(worker_url, swarm="core-lib") as worker:
        assert worker.claim("core", worker="w-2") is None  # it runs: no function is missing


def test_an_open_handle_applies_for_its_own_swarm(server: RedisServer) -> None:
    """Given a ``Swarm``, the user is of that handle's swarm unless told another; applying
    again replaces the password."""
    with Swarm(server.url, swarm="core-other") as admin:
        first = apply_role(admin, "shard", "core-shard", PASSWORD)
        assert first.user.swarm == "core-other" and not first.user.generated
        assert first.user.password == PASSWORD
        second = apply_role(admin, "shard", "core-shard", swarm="core-other")
    base = f"127.0.0.1:{server.port}"
    with Swarm(f"redis://core-shard:{second.user.password}@{base}", swarm="core-other") as ok:
        assert ok.ping() >= 0
    with (
        Swarm(f"redis://core-shard:{PASSWORD}@{base}", swarm="core-other") as old,
        pytest.raises(PermissionDenied),
    ):
        old.ping()


def test_a_dry_run_applies_nothing(server: RedisServer) -> None:
    settings = Settings.from_url(server.url, swarm=SWARM)
    made = apply_role(settings, "coordinator", "core-not-made", dry_run=True)
    raw = server.client()
    try:
        assert made.applied == [] and made.version == _version(raw)
        assert not _user_exists(raw, "core-not-made")
    finally:
        raw.close()
    given = apply_role(settings, "worker", "core-not-made", version=(6, 2), dry_run=True)
    assert given.version == (6, 2) and given.user.warning  # the rules of the version given


def test_bad_requests_and_non_admins_are_refused_in_one_line(server: RedisServer) -> None:
    settings = Settings.from_url(server.url, swarm=SWARM)
    with pytest.raises(ValidationError, match="at least 16"):
        apply_role(settings, "worker", "core-short", "short")
    with pytest.raises(ValidationError, match="unknown role"):
        apply_role(settings, "boss", "core-boss")
    worker = apply_role(settings, "worker", "core-w3")
    as_worker = Settings.from_url(
        f"redis://core-w3:{worker.user.password}@127.0.0.1:{server.port}", swarm=SWARM
    )
    with pytest.raises(PermissionDenied) as info:
        apply_role(as_worker, "worker", "core-w4", version=(7, 0))
    assert "\n" not in str(info.value) and (worker.user.password or "?") not in str(info.value)
    raw = server.client()
    try:
        assert not _user_exists(raw, "core-w4")
    finally:
        raw.close()


# --- Sentinel over TLS: the replicas get the user too


SERVICE = "aclmaster"


@dataclass
class TlsSentinel:
    master: TlsServer
    replica: TlsServer
    sentinel: TlsServer

    @property
    def url(self) -> str:
        assert self.master.pki is not None
        return (
            f"rediss+sentinel://127.0.0.1:{self.sentinel.port}/{SERVICE}"
            f"?ssl_ca_certs={self.master.pki.ca}"
        )


def _tls_args(pki: Pki, port: int, workdir: Path) -> list[str]:
    return [
        "--dir", str(workdir),
        "--port", "0",
        "--bind", "127.0.0.1",
        "--tls-port", str(port),
        "--tls-cert-file", str(pki.server_cert),
        "--tls-key-file", str(pki.server_key),
        "--tls-ca-cert-file", str(pki.ca),
        "--tls-auth-clients", "no",
        "--tls-replication", "yes",
    ]  # fmt: skip


def _tls_node(factory: ServerFactory, pki: Pki, extra: list[str]) -> TlsServer:
    workdir, port = factory.new_dir(), free_port()
    args = [system_redis(tls=True), *_tls_args(pki, port, workdir), "--save", "", *extra]
    server = TlsServer(_spawn(args, workdir), workdir, port=port, args=args, pki=pki)
    factory.servers.append(server)
    _wait_ready(server)
    return server


def _tls_sentinel(factory: ServerFactory, pki: Pki, master: TlsServer) -> TlsServer:
    workdir, port = factory.new_dir(), free_port()
    config = workdir / "sentinel.conf"  # a sentinel rewrites its config
    lines = " ".join(_tls_args(pki, port, workdir)).replace(" --", "\n--").splitlines()
    config.write_text(
        "\n".join(line.removeprefix("--") for line in lines)
        + f"\nsentinel monitor {SERVICE} 127.0.0.1 {master.port} 1\n"
    )
    args = [system_redis(tls=True), str(config), "--sentinel"]
    server = TlsServer(_spawn(args, workdir), workdir, port=port, args=args, pki=pki)
    factory.servers.append(server)
    _wait_ready(server)
    return server


def _wait(what: str, ready: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready within {timeout:.0f}s: {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def tls_sentinel(servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> TlsSentinel:
    """A master, its replica and one sentinel, all on TLS only (replication too)."""
    pki = make_pki(tmp_path_factory.mktemp("acl-pki"))
    master = _tls_node(servers, pki, ["--repl-diskless-sync-delay", "0"])
    replica = _tls_node(servers, pki, ["--replicaof", "127.0.0.1", str(master.port)])

    def replica_linked() -> bool:
        with replica.client() as client:
            return bool(client.info("replication").get("master_link_status") == "up")

    _wait("the replica's link", replica_linked)
    sentinel = _tls_sentinel(servers, pki, master)

    def replica_listed() -> bool:
        with sentinel.client() as client:
            found = client.execute_command("SENTINEL", "REPLICAS", SERVICE)
        flags = [str(entry.get("flags", "")) for entry in found]
        return any("s_down" not in f and "disconnected" not in f for f in flags)

    _wait("the sentinel lists the replica", replica_listed)
    return TlsSentinel(master, replica, sentinel)


def test_a_tls_sentinel_deployment_gets_the_user_on_its_replicas(
    tls_sentinel: TlsSentinel,
) -> None:
    """The replicas were asked of the sentinels on a connection without the URL's TLS options:
    TLS sentinels refused it, redis-py took that for no replica, and the user was made on the
    master alone (gone after a failover)."""
    made = apply_role(Settings.from_url(tls_sentinel.url, swarm=SWARM), "worker", "tls-worker")
    nodes = {f"127.0.0.1:{s.port}" for s in (tls_sentinel.master, tls_sentinel.replica)}
    assert set(made.persisted) == nodes
    for node in (tls_sentinel.master, tls_sentinel.replica):
        with node.client() as client:
            assert _user_exists(client, "tls-worker"), node.port
    worker_url = tls_sentinel.url.replace("://", f"://tls-worker:{made.user.password}@", 1)
    with Swarm(worker_url, swarm=SWARM) as worker:
        assert worker.claim("core", worker="w-tls") is None  # the library is loaded: it runs
