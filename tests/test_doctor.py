"""``swarm doctor`` as the users ``swarm acl`` makes see it, on a real Redis 7: it fails when
the user may not touch the swarm named (every real command would be refused), its JSON keeps
one shape, the rows a user may not read say so, and TLS that does not verify the server is
a warning."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._acl import AclUser
from redis_swarm._models import RECORD_KINDS
from redis_swarm.cli._server import FSYNC_UNKNOWN, NOT_VISIBLE

from ._cli import Cli
from ._servers import RedisServer, ServerFactory, role_users, system_redis
from ._tls import Pki, TlsServer, make_pki, start_tls_server

SWARM = "legal"


@pytest.fixture(scope="module")
def server(servers: ServerFactory) -> Iterator[RedisServer]:
    """Redis 7 with AOF on (so that a shard sees AOF, but not its fsync policy)."""
    started = servers.start(binary=system_redis(), appendonly=True)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def users(server: RedisServer) -> dict[str, AclUser]:
    return role_users(server, SWARM, SWARM)


def _url(server: RedisServer, spec: AclUser) -> str:
    return f"redis://{spec.user}:{spec.password}@127.0.0.1:{server.port}"


def test_a_user_of_another_swarm_fails_naming_the_swarm_and_the_user(
    server: RedisServer, users: dict[str, AclUser]
) -> None:
    worker = users["worker"]
    cli = Cli(_url(server, worker), swarm="other")
    report = cli.json("doctor", expect=1)
    assert report["ok"] is False and report["user"] == worker.user
    (warning,) = report["warnings"]
    assert f"'{worker.user}' may not read the keys of swarm 'other'" in warning
    assert "--swarm" in warning and str(worker.password) not in warning
    # the documented shape, though nothing could be read
    records = report["corrupt_records"]
    assert all(records[kind] == [] for kind in RECORD_KINDS)
    assert records["checked"] is False and "other" in records["reason"]
    human = cli("doctor", expect=1)
    assert "warning: the Redis user 'legal-worker' may not read the keys of swarm 'other'" in (
        " ".join(human.stdout.split())
    )
    # its own swarm: every check passes
    mine = Cli(_url(server, worker), swarm=SWARM).json("doctor")
    assert mine["ok"] is True and "warnings" not in mine
    assert mine["corrupt_records"] == {**{kind: [] for kind in RECORD_KINDS}, "checked": True}


def test_rows_a_worker_may_not_read_say_so(server: RedisServer, users: dict[str, AclUser]) -> None:
    cli = Cli(_url(server, users["worker"]), swarm=SWARM)
    report = cli.json("doctor")
    assert report["binary"] is None and report["used_memory_bytes"] is None  # JSON: null
    rows = {
        line.split(None, 1)[0]: " ".join(line.split()[1:])
        for line in cli("doctor").stdout.splitlines()
        if line.strip()
    }
    assert "None" not in rows.values()
    for row in ("binary", "used_memory_bytes", "maxmemory_bytes", "maxmemory_policy"):
        assert rows[row] == NOT_VISIBLE, rows


def test_a_shard_sees_aof_but_not_its_fsync_policy(
    server: RedisServer, users: dict[str, AclUser]
) -> None:
    report = Cli(_url(server, users["shard"]), swarm=SWARM).json("doctor")
    assert report["persistence"] == FSYNC_UNKNOWN and "unknown" in FSYNC_UNKNOWN
    assert report["ok"] is True
    admin = Cli(server.url, swarm=SWARM).json("doctor")  # may run CONFIG GET
    assert admin["persistence"] == "aof everysec"


def test_record_kinds_are_the_ones_the_core_reads(server: RedisServer) -> None:
    with Swarm(server.url, swarm=SWARM) as swarm:
        assert tuple(swarm.corrupt_records()) == RECORD_KINDS


@pytest.fixture(scope="module")
def tls_server(servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> TlsServer:
    pki: Pki = make_pki(Path(tmp_path_factory.mktemp("pki")))
    return start_tls_server(servers, pki)


@pytest.mark.parametrize(
    ("option", "row", "warned"),
    [
        ("", "on, certificate and host name verified", None),
        (
            "&ssl_cert_reqs=none",
            "on, the server's certificate and host name not verified",
            "ssl_cert_reqs=none",
        ),
        (
            "&ssl_cert_reqs=optional",
            "on, the server's host name not verified",
            "ssl_cert_reqs=optional",
        ),
    ],
)
def test_tls_that_does_not_verify_the_server_is_a_warning(
    tls_server: TlsServer, option: str, row: str, warned: str | None
) -> None:
    report = Cli(tls_server.url + option).json("doctor")
    assert report["ok"] is True and report["tls"].startswith(row)
    # (the fixture's server keeps nothing: appendonly no, save '', warned of apart)
    warnings = [w for w in report.get("warnings", []) if "in memory only" not in w]
    if warned is None:
        assert not warnings
    else:
        (warning,) = warnings
        assert warning.startswith(warned) and "pretend to be" in warning


def test_text_doctor_says_an_unverified_server_once(tls_server: TlsServer) -> None:
    """The doctor's own warning said it, and the warning every handle gives as it connects
    said it again on stderr."""
    out = Cli(tls_server.url + "&ssl_cert_reqs=none")("doctor")
    assert out.code == 0, out
    assert (out.stdout + out.stderr).count("pretend to be the server") == 1, out
