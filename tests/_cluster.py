"""A real local Redis Cluster for tests: 3 masters + 3 replicas on free loopback ports.

The nodes are plain ``redis-server --cluster-enabled yes`` processes joined with
``redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`` (about 2 s). A short
``cluster-node-timeout`` keeps failover tests quick. One cluster is shared per session.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from dataclasses import dataclass, field

import redis
from redis.cluster import ClusterNode, RedisCluster

from ._servers import RedisServer, ServerFactory, free_port, system_redis

NODE_TIMEOUT_MS = 2000


def redis_cli() -> str:
    import pytest

    path = shutil.which("redis-cli")
    if path is None:
        pytest.skip("no redis-cli on PATH (Debian: redis-tools): run scripts/system-deps.sh")
    return path


@dataclass
class LocalCluster:
    """A running cluster of ``nodes`` (masters first, as created)."""

    nodes: list[RedisServer]
    replicas_per_master: int = 1
    _clients: list[RedisCluster] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [node.port or 0 for node in self.nodes]

    @property
    def url(self) -> str:
        """A redis+cluster:// URL naming the first three nodes as startup nodes."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports[:3])
        return f"redis+cluster://{hosts}"

    def client(self) -> RedisCluster:
        """An admin cluster client (closed by ``close``)."""
        client = RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", p) for p in self.ports[:3]]  # type: ignore[no-untyped-call]
        )
        self._clients.append(client)
        return client

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def roles(self) -> dict[int, str]:
        """port -> 'master' or 'slave', as the cluster itself sees it now."""
        out: dict[int, str] = {}
        for node in self.nodes:
            if node.proc.poll() is not None:
                continue
            with contextlib.suppress(redis.RedisError), _direct(node) as client:
                out[node.port or 0] = str(client.info("replication")["role"])
        return out

    def replica_of(self, master: int) -> RedisServer:
        """The live replica of the master on port ``master``."""
        for node in self.nodes:
            if node.proc.poll() is not None or node.port == master:
                continue
            with contextlib.suppress(redis.RedisError), _direct(node) as client:
                info = client.info("replication")
                if info["role"] == "slave" and int(info["master_port"]) == master:
                    return node
        raise RuntimeError(f"no replica of {master}")

    def wait_replicating(self, master: int, timeout: float = 30.0) -> None:
        """Until a write to ``master`` shows on its replica. A replica can report its link up
        while it does not follow its master's stream yet (seen for up to ~1 s after the
        cluster is created): a failover to it then would lose every write of that second."""
        client = self.client()
        key = next(
            f"replication-probe-{i}"
            for i in range(100_000)
            if client.get_node_from_key(f"replication-probe-{i}").port == master  # type: ignore[no-untyped-call]
        )
        replica = self.replica_of(master)
        with _direct(self.node(master)) as writer, _direct(replica) as reader:
            reader.execute_command("READONLY")
            deadline = time.monotonic() + timeout
            for n in range(10_000_000):
                writer.set(key, n)
                time.sleep(0.02)
                if reader.get(key) == str(n):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{replica.port} does not replicate {master} yet")
            writer.delete(key)

    def masters(self) -> list[int]:
        return sorted(p for p, role in self.roles().items() if role == "master")

    def flush(self) -> None:
        """Empty every master (replicas follow)."""
        for port in self.masters():
            with _direct(self.node(port)) as client:
                client.flushall()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says cluster_state:ok, knows every node, and every replica's
        link to its master is up."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            last = self._not_ok()
            if not last:
                return
            time.sleep(0.05)
        raise RuntimeError(f"the cluster did not become ok within {timeout:.0f}s: {last}")

    def _not_ok(self) -> str:
        live = [n for n in self.nodes if n.proc.poll() is None]
        for node in live:
            try:
                with _direct(node) as client:
                    info = client.cluster("INFO")
                    if isinstance(info, bytes | str):
                        info = _parse_info(info)
                    if info.get("cluster_state") != "ok":
                        return f"{node.port}: cluster_state={info.get('cluster_state')}"
                    if int(info.get("cluster_slots_ok", 0)) != 16384:
                        return f"{node.port}: slots_ok={info.get('cluster_slots_ok')}"
                    replication = client.info("replication")
                    if replication["role"] == "slave" and replication["master_link_status"] != "up":
                        return f"{node.port}: replica link {replication['master_link_status']}"
            except redis.RedisError as exc:
                return f"{node.port}: {exc}"
        return ""

    def close(self) -> None:
        for client in self._clients:
            with contextlib.suppress(redis.RedisError):
                client.close()
        self._clients.clear()


def state_of(port: int) -> str:
    """The ``cluster_state`` the node on ``port`` says (ok, fail)."""
    with redis.Redis(port=port) as node:
        return _parse_info(node.execute_command("CLUSTER", "INFO")).get("cluster_state", "")


def _parse_info(text: bytes | str) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _direct(node: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=node.port or 0, decode_responses=True)


def start_lone_node(factory: ServerFactory) -> RedisServer:
    """One cluster-enabled node of its own (no slots, no peers): to join a cluster later
    (``redis-cli --cluster add-node``), or as a cluster that cannot serve."""
    return factory.start(
        binary=system_redis(),
        extra=[
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-port", str(free_port()),
        ],
    )  # fmt: skip


def start_cluster(
    factory: ServerFactory,
    *,
    masters: int = 3,
    replicas: int = 1,
    node_timeout_ms: int = NODE_TIMEOUT_MS,
    extra: list[str] | None = None,
) -> LocalCluster:
    """Start ``masters * (1 + replicas)`` nodes and join them into one cluster."""
    binary = system_redis()
    cli = redis_cli()
    args = [
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", str(node_timeout_ms),
        # a replica takes over even if it lost its link a while ago (fast tests)
        "--cluster-replica-validity-factor", "0",
        # replicas sync at once (the default waits 5 s for more replicas to share one transfer)
        "--repl-diskless-sync-delay", "0",
        *(extra or []),
    ]  # fmt: skip
    # The bus port is given explicitly (Redis 7 cluster-port): the default, port + 10000,
    # may be taken, or above 65535 for the high ports the OS hands out.
    nodes = [
        factory.start(binary=binary, extra=[*args, "--cluster-port", str(free_port())])
        for _ in range(masters * (1 + replicas))
    ]
    cluster = LocalCluster(nodes, replicas)
    create = [
        cli,
        "--cluster", "create",
        *(f"127.0.0.1:{port}" for port in cluster.ports),
        "--cluster-replicas", str(replicas),
        "--cluster-yes",
    ]  # fmt: skip
    result = subprocess.run(create, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed: {result.stdout[-2000:]}")
    cluster.wait_ok()
    if replicas:
        for master in cluster.masters():
            cluster.wait_replicating(master)
    return cluster
