"""``apply_role`` on a cluster's nodes, found by CLUSTER NODES and dialled by IP: a persist
slower than the connect timeout is not a node that did not answer, and a TLS failure on a
node is an error to fix, not a node to skip.

The short timeout (the connect timeout, 1 s here) was the socket timeout of every command
sent to a node found so: an ACL SETUSER that succeeded and an ACL SAVE that outlasted it
(an fsync on a busy disk) reported a master as not answering ("nothing was applied", though
it held the user) and a replica as skipped (though it had the user). Now only the probe's
PING has it; the SETUSER and its persisting get the URL's socket timeout.

A node's TLS failure (its certificate names the host of the URL, not the IP the node is
dialled by) was "did not answer" too: a replica skipped without a word on what to fix, a
master "a master holding hash slots: did not answer (...)". Now it is the translated TLS
error, which says what to change.

Clusters of one node each (it holds every slot), made in about a second: one behind a proxy
that holds ACL SAVE back, one on TLS with a certificate for the host name alone."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_swarm import ConnectionFailed, Settings, apply_role

from ._servers import RedisServer, ServerFactory, _spawn, free_port, system_redis
from ._tls import _ca, _leaf, _write_cert, _write_key

SWARM = "acl-apply-review"
# How long the proxy holds ACL SAVE back: more than the URL's connect_timeout (1 s), far less
# than its socket timeout (10 s, the default).
SLOW_SAVE_S = 1.6
_ACL_SAVE = b"*2\r\n$3\r\nACL\r\n$4\r\nSAVE\r\n"  # as redis-py sends it


class SlowSaveProxy:
    """Forwards 127.0.0.1:``port`` to a server, holding back each ACL SAVE ``SLOW_SAVE_S``:
    a server whose aclfile takes that long to write (its fsync on a busy disk)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.saves = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self._sockets += [client, upstream]
                for pipe in ((client, upstream, True), (upstream, client, False)):
                    threading.Thread(target=self._pipe, args=pipe, daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if up and _ACL_SAVE in data:
                    self.saves += 1
                    time.sleep(SLOW_SAVE_S)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


def _cluster_of_one(
    servers: ServerFactory, args: list[str], port: int, bind: str = "127.0.0.1", **tls: str
) -> None:
    """Start a cluster-enabled redis-server with ``args`` (its own port among them, ``port``)
    and give it every slot; ``tls``: the TLS options of an admin client to it."""
    workdir = servers.new_dir()
    args = [
        *args,
        "--dir", str(workdir),
        "--save", "",
        "--bind", *bind.split(),
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-port", str(free_port()),
        # (a node that met no other knows no IP of its own: CLUSTER NODES would say ':PORT')
        "--cluster-announce-ip", "127.0.0.1",
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
    assert made.persisted == {where: "saved to the aclfile"}
    with redis.Redis(host="127.0.0.1", port=proxy.target_port, decode_responses=True) as admin:
        assert admin.acl_getuser("slow-save") is not None
        admin.execute_command("ACL", "LOAD")  # (the aclfile holds it too)
        assert admin.acl_getuser("slow-save") is not None


@pytest.fixture(scope="module")
def tls_by_name(servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A TLS cluster of one node, on 127.0.0.1 and 127.0.0.2, whose certificate names
    127.0.0.2 alone: it announces that as its host name (clients follow it: CLUSTER SLOTS
    gives it, as it would a name), while CLUSTER NODES gives its IP, 127.0.0.1, which the
    apply dials. Its URL (by 127.0.0.2). (A certificate for 'localhost' would not do: redis-py
    dials a cluster's startup node 'localhost' by its IP.)"""
    folder: Path = tmp_path_factory.mktemp("pki-by-name")
    ca = _ca("by-name test CA")
    cert, key = _leaf("by-name", ca, server=True, ips=("127.0.0.2",))
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
        "--cluster-announce-hostname", "127.0.0.2",
        "--cluster-preferred-endpoint-type", "hostname",
    ]  # fmt: skip
    tls = {"ssl_ca_certs": str(folder / "ca.crt"), "ssl_check_hostname": False}
    _cluster_of_one(servers, args, port, "127.0.0.1 127.0.0.2", **tls)  # type: ignore[arg-type]
    return f"rediss+cluster://127.0.0.2:{port}?ssl_ca_certs={folder / 'ca.crt'}&connect_timeout=1"


def test_a_tls_failure_on_a_node_is_the_tls_error_not_a_node_that_did_not_answer(
    tls_by_name: str,
) -> None:
    settings = Settings.from_url(tls_by_name, swarm=SWARM)
    port = settings.nodes[0][1]
    for version in (None, (7, 0)):  # (given, the servers are not asked their version first)
        with pytest.raises(ConnectionFailed) as caught:
            apply_role(settings, "worker", "tls-by-name", version=version)
        message = str(caught.value)
        assert message.startswith(f"TLS to rediss://127.0.0.1:{port}/0?ssl_ca_certs="), message
        assert "the server's certificate does not name this host" in message, message
        assert "did not answer" not in message
