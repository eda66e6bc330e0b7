"""``apply_role`` on a cluster's nodes, found by CLUSTER NODES and dialled at the IP it gives
(the clients' endpoint: these clusters announce no preferred host names): a persist slower
than the connect timeout is not a node that did not answer, and a TLS failure on a node is
an error to fix, not a node to skip.

The short timeout (the connect timeout, 1 s here) was the socket timeout of every command
sent to a node found so: an ACL SETUSER that succeeded and an ACL SAVE that outlasted it
(an fsync on a busy disk) reported a master as not answering ("nothing was applied", though
it held the user) and a replica as skipped (though it had the user). Now only the probe's
PING has it; the SETUSER and its persisting get the URL's socket timeout.

A node's TLS failure (a certificate that does not name the address the node is dialled by)
was "did not answer" too: a replica skipped without a word on what to fix, a master "a
master holding hash slots: did not answer (...)". Now it is the translated TLS error, which
says what to change, raised before any node got the user.

Two clusters, each made in two seconds or so (a node given every slot waits that long to say
the cluster is ok): one of one node behind a proxy that holds ACL SAVE back; one on TLS, a
master holding every slot whose certificate names its address, and its replica whose
certificate names another."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_swarm import ConnectionFailed, Settings, apply_role

from ._acl_save_proxy import AclSaveProxy
from ._servers import RedisServer, ServerFactory, _spawn, free_port, system_redis
from ._tls import _ca, _leaf, _write_cert, _write_key
from ._waiting import until

SWARM = "acl-apply-review"
# How long the proxy holds ACL SAVE back: more than the URL's connect_timeout (1 s), far less
# than its socket timeout (10 s, the default).
SLOW_SAVE_S = 1.6


class SlowSaveProxy(AclSaveProxy):
    """Holds back each ACL SAVE ``SLOW_SAVE_S``: a server whose aclfile takes that long to
    write (its fsync on a busy disk)."""

    def __init__(self, target_port: int) -> None:
        self.saves = 0
        super().__init__(target_port)

    def on_save(self) -> bool:
        self.saves += 1
        time.sleep(SLOW_SAVE_S)
        return True


def _cluster_node(
    servers: ServerFactory, args: list[str], port: int, ca_certs: str | None = None
) -> redis.Redis:
    """Start a cluster-enabled redis-server with ``args`` (its own port among them, ``port``)
    that announces the IP 127.0.0.1, and return an admin client to it (decoded replies; on
    TLS given the CA's ``ca_certs``) once it answers."""
    workdir = servers.new_dir()
    args = [
        *args,
        "--dir", str(workdir),
        "--save", "",
        "--bind", "127.0.0.1",
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-port", str(free_port()),
        # (a node that met no other knows no IP of its own: CLUSTER NODES would say ':PORT')
        "--cluster-announce-ip", "127.0.0.1",
    ]  # fmt: skip
    node = RedisServer(_spawn(args, workdir), workdir, port=port, args=args)
    servers.servers.append(node)
    admin = _admin(port, ca_certs)
    until(lambda: node.proc.poll() is not None or _answers(admin), "the node never answered")
    assert node.proc.poll() is None, (workdir / "redis.log").read_text()[-2000:]
    return admin


def _cluster_of_one(
    servers: ServerFactory, args: list[str], port: int, ca_certs: str | None = None
) -> None:
    """A ``_cluster_node`` given every slot."""
    with contextlib.closing(_cluster_node(servers, args, port, ca_certs)) as admin:
        admin.execute_command("CLUSTER", "ADDSLOTS", *range(16384))  # type: ignore[no-untyped-call]
        until(lambda: admin.cluster("INFO")["cluster_state"] == "ok", "no cluster of one")


def _admin(port: int, ca_certs: str | None = None) -> redis.Redis:
    """A client to the node on ``port``, on TLS given the CA's ``ca_certs`` (any node's
    certificate will do: some name another address)."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        ssl=ca_certs is not None,
        ssl_ca_certs=ca_certs,
        ssl_check_hostname=False,
        decode_responses=True,
    )


def _flags(client: redis.Redis, node_id: str) -> list[str]:
    """The flags of ``node_id`` in the CLUSTER NODES of ``client``'s node (none: unknown)."""
    for node in client.cluster("NODES").values():
        if node["node_id"] == node_id:
            return str(node["flags"]).split(",")
    return []


def _answers(client: redis.Redis) -> bool:
    with contextlib.suppress(redis.ConnectionError):
        return bool(client.ping())
    return False


@pytest.fixture(scope="module")
def slow_save(servers: ServerFactory) -> Iterator[tuple[str, SlowSaveProxy]]:
    """A cluster of one node with an aclfile, announcing the proxy's port as its own (CLUSTER
    NODES, so the apply, dials it there): its URL (connect_timeout=1) and the proxy."""
    port = free_port()
    proxy = SlowSaveProxy(port)
    aclfile = servers.new_dir() / "users.acl"
    aclfile.touch()
    args = [system_redis(), "--port", str(port), "--aclfile", str(aclfile)]
    args += ["--cluster-announce-port", str(proxy.port)]
    _cluster_of_one(servers, args, port)
    yield f"redis+cluster://127.0.0.1:{proxy.port}?connect_timeout=1", proxy
    proxy.close()


def test_a_persist_slower_than_the_connect_timeout_is_applied(
    slow_save: tuple[str, SlowSaveProxy],
) -> None:
    url, proxy = slow_save
    where = f"127.0.0.1:{proxy.port}"
    made = apply_role(Settings.from_url(url, swarm=SWARM), "worker", "slow-save")
    assert proxy.saves == 1  # (its ACL SAVE was held back past the connect timeout)
    assert made.skipped == {}
    assert made.persisted.keys() == {where}
    assert made.persisted[where].startswith("saved to the aclfile /"), made.persisted
    with redis.Redis(host="127.0.0.1", port=proxy.target_port, decode_responses=True) as admin:
        assert admin.acl_getuser("slow-save") is not None
        admin.execute_command("ACL", "LOAD")  # (the aclfile holds it too)
        assert admin.acl_getuser("slow-save") is not None


@pytest.fixture(scope="module")
def tls_misnamed_replica(
    servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, int, int]:
    """A TLS cluster of two nodes on 127.0.0.1, which CLUSTER NODES gives for both (no host
    names announced: the clients dial the IPs, and so does the apply): a master holding every
    slot, whose certificate names 127.0.0.1, and its replica, whose certificate names
    127.0.0.2 alone. The URL (by the master, which redis-py's cluster client verifies; the
    replica it never dials) and the two ports."""
    folder: Path = tmp_path_factory.mktemp("pki-misnamed-replica")
    ca = _ca("misnamed-replica test CA")
    _write_cert(folder / "ca.crt", ca[0])
    ca_certs = str(folder / "ca.crt")
    # (the cluster bus verifies the certificate a node dials with: one made for clients)
    cert, key = _leaf("node-client", ca, server=False)
    _write_cert(folder / "client.crt", cert)
    _write_key(folder / "client.key", key)

    def tls_node(name: str, ip: str, port: int) -> list[str]:
        cert, key = _leaf(name, ca, server=True, ips=(ip,))
        _write_cert(folder / f"{name}.crt", cert)
        _write_key(folder / f"{name}.key", key)
        return [
            system_redis(tls=True),
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cert-file", str(folder / f"{name}.crt"),
            "--tls-key-file", str(folder / f"{name}.key"),
            "--tls-ca-cert-file", ca_certs,
            "--tls-client-cert-file", str(folder / "client.crt"),
            "--tls-client-key-file", str(folder / "client.key"),
            "--tls-auth-clients", "no",
            "--tls-cluster", "yes",
            "--tls-replication", "yes",
        ]  # fmt: skip

    master_port = free_port()
    _cluster_of_one(servers, tls_node("master", "127.0.0.1", master_port), master_port, ca_certs)
    replica_port = free_port()
    replica_args = tls_node("replica", "127.0.0.2", replica_port)
    with (
        contextlib.closing(_cluster_node(servers, replica_args, replica_port, ca_certs)) as replica,
        contextlib.closing(_admin(master_port, ca_certs)) as master,
    ):
        master_id, replica_id = master.cluster("MYID"), replica.cluster("MYID")
        bus_port = master.config_get("cluster-port")["cluster-port"]
        replica.cluster("MEET", "127.0.0.1", master_port, bus_port)
        until(lambda: "master" in _flags(replica, master_id), "the nodes never met")
        replica.cluster("REPLICATE", master_id)
        until(lambda: "slave" in _flags(master, replica_id), "the master never saw its replica")
    url = f"rediss+cluster://127.0.0.1:{master_port}?ssl_ca_certs={ca_certs}"
    return f"{url}&connect_timeout=1", master_port, replica_port


def test_a_tls_failure_on_a_node_is_the_tls_error_not_a_node_that_did_not_answer(
    tls_misnamed_replica: tuple[str, int, int],
) -> None:
    url, master_port, replica_port = tls_misnamed_replica
    settings = Settings.from_url(url, swarm=SWARM)
    for version in (None, (7, 0)):  # (given, the servers are not asked their version first)
        with pytest.raises(ConnectionFailed) as caught:
            apply_role(settings, "worker", "tls-misnamed", version=version)
        message = str(caught.value)
        assert message.startswith(f"TLS to rediss://127.0.0.1:{replica_port}/0?"), message
        assert "the server's certificate does not name this host" in message, message
        assert "did not answer" not in message
    # (every node is reached before any gets the user)
    with contextlib.closing(_admin(master_port, settings.ssl_ca_certs)) as admin:
        assert admin.acl_getuser("tls-misnamed") is None
