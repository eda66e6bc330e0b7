"""``apply_role`` dials each cluster node as redis-py's cluster client does.

A node that has met no other knows no IP of its own: CLUSTER NODES lists it as ``:PORT``,
and the apply dialled an empty host ("Name or service not known"), failing on a cluster of
one started without ``cluster-announce-ip``. It is now dialled by the host it was asked at,
as redis-py does with the empty host CLUSTER SLOTS gives for it.

A cluster that announces host names (``cluster-announce-hostname``, shown ``IP:PORT@BUS,NAME``)
and prefers them (``cluster-preferred-endpoint-type hostname``) has its clients dial the
names, and may hold TLS certificates that name them alone: the apply dialled the IP and
failed verification. It now dials the name; with the IP preferred, the IP, as the clients do.

Clusters of one node each (it holds every slot), made in about a second."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
import redis

from redis_swarm import Settings, apply_role

from ._servers import RedisServer, ServerFactory, _spawn, free_port, system_redis
from ._tls import _ca, _leaf, _write_cert, _write_key

SWARM = "acl-cluster-hosts"
# A name that resolves nowhere (RFC 6761): dialled, it fails ("Name or service not known").
NOWHERE = "nowhere.invalid"


def _cluster_of_one(
    servers: ServerFactory, args: list[str], port: int, *, bind: str = "127.0.0.1", **tls: str
) -> None:
    """Start a cluster-enabled redis-server with ``args`` (its own port among them, ``port``)
    that announces no IP (CLUSTER NODES lists it as ``:PORT``), and give it every slot;
    ``tls``: the TLS options of an admin client to it."""
    workdir = servers.new_dir()
    args = [
        *args,
        "--dir", str(workdir),
        "--save", "",
        "--bind", *bind.split(),
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-port", str(free_port()),
    ]  # fmt: skip
    node = RedisServer(_spawn(args, workdir), workdir, port=port, args=args)
    servers.servers.append(node)
    admin = redis.Redis(host="127.0.0.1", port=port, ssl=bool(tls), **tls)  # type: ignore[arg-type]
    deadline = time.monotonic() + 30
    with contextlib.closing(admin):
        while not _answers(admin):
            assert node.proc.poll() is None, (workdir / "redis.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the node never answered"
            time.sleep(0.05)
        admin.execute_command("CLUSTER", "ADDSLOTS", *range(16384))  # type: ignore[no-untyped-call]
        while admin.cluster("INFO")["cluster_state"] != "ok":
            assert time.monotonic() < deadline, "the cluster of one never came up"
            time.sleep(0.05)


def _answers(client: redis.Redis) -> bool:
    with contextlib.suppress(redis.ConnectionError):
        return bool(client.ping())
    return False


@pytest.mark.parametrize(
    "announced",
    [
        [],
        # A host name announced, the IP preferred (the default): the clients dial the IP
        # (here none: the host asked), never the name, which resolves nowhere.
        ["--cluster-announce-hostname", NOWHERE, "--cluster-preferred-endpoint-type", "ip"],
    ],
    ids=["no-hostname", "hostname-not-preferred"],
)
def test_a_cluster_of_one_that_knows_no_ip_of_its_own_gets_the_user(
    servers: ServerFactory, announced: list[str]
) -> None:
    port = free_port()
    _cluster_of_one(servers, [system_redis(), "--port", str(port), *announced], port)
    with redis.Redis(host="127.0.0.1", port=port, decode_responses=True) as admin:
        listed = admin.execute_command("CLUSTER", "NODES")
        assert f" :{port}@" in listed, listed  # (the node names no host of its own)
    settings = Settings.from_url(f"redis+cluster://127.0.0.1:{port}", swarm=SWARM)
    made = apply_role(settings, "worker", "alone")
    assert made.skipped == {}
    assert list(made.persisted) == [f"127.0.0.1:{port}"]
    with redis.Redis(host="127.0.0.1", port=port, decode_responses=True) as admin:
        assert admin.acl_getuser("alone") is not None


@pytest.fixture(scope="module")
def tls_by_hostname(servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A TLS cluster of one node, on 127.0.0.1 and 127.0.0.2, that announces the IP
    127.0.0.1 and the host name 127.0.0.2, and prefers host names: CLUSTER NODES shows
    ``127.0.0.1:PORT@BUS,127.0.0.2``, CLUSTER SLOTS (its clients) the name. Its certificate
    names the name alone. Its URL, by the name. (The name is not 'localhost': redis-py dials
    a node given as 'localhost' by its IP, so a certificate for 'localhost' alone fails its
    own cluster client, before any apply.)"""
    folder: Path = tmp_path_factory.mktemp("pki-by-hostname")
    ca = _ca("by-hostname test CA")
    cert, key = _leaf("by-hostname", ca, server=True, ips=("127.0.0.2",))
    _write_cert(folder / "ca.crt", ca[0])
    _write_cert(folder / "server.crt", cert)
    _write_key(folder / "server.key", key)
    port = free_port()
    args = [
        system_redis(tls=True),
        "--port", "0",
        "--tls-port", str(port),
        "--tls-cert-file", str(folder / "server.crt"),
        "--tls-key-file", str(folder / "server.key"),
        "--tls-ca-cert-file", str(folder / "ca.crt"),
        "--tls-auth-clients", "no",
        "--tls-cluster", "yes",
        "--cluster-announce-ip", "127.0.0.1",
        "--cluster-announce-hostname", "127.0.0.2",
        "--cluster-preferred-endpoint-type", "hostname",
    ]  # fmt: skip
    tls = {"ssl_ca_certs": str(folder / "ca.crt"), "ssl_check_hostname": False}
    _cluster_of_one(servers, args, port, bind="127.0.0.1 127.0.0.2", **tls)  # type: ignore[arg-type]
    return f"rediss+cluster://127.0.0.2:{port}?ssl_ca_certs={folder / 'ca.crt'}&connect_timeout=1"


def test_a_node_announcing_a_preferred_host_name_is_dialled_by_it(tls_by_hostname: str) -> None:
    settings = Settings.from_url(tls_by_hostname, swarm=SWARM)
    port = settings.nodes[0][1]
    made = apply_role(settings, "worker", "by-hostname")
    assert made.skipped == {}
    assert list(made.persisted) == [f"127.0.0.2:{port}"]
