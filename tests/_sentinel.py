"""A real Sentinel setup for tests: 1 master, 1 replica, 3 sentinels on loopback free ports.

Short ``down-after-milliseconds`` and ``failover-timeout`` make a failover take seconds.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from ._servers import RedisServer, ServerFactory, _spawn, _wait_ready, free_port, system_redis

SERVICE = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


@dataclass
class LocalSentinel:
    master: RedisServer
    replica: RedisServer
    sentinels: list[RedisServer]
    service: str = SERVICE

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def master_port(self) -> int:
        """The master's port as the first sentinel that answers sees it now."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError), _client(sentinel) as client:
                address = client.execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
                )
                return int(address[1])
        raise RuntimeError("no sentinel answered")

    def data_nodes(self) -> list[RedisServer]:
        return [self.master, self.replica]

    def roles(self) -> dict[int, str]:
        """port -> 'master' or 'slave' for each data node that answers, as it sees itself."""
        out: dict[int, str] = {}
        for node in self.data_nodes():
            if node.proc.poll() is not None:
                continue
            with contextlib.suppress(redis.RedisError), _client(node) as client:
                out[node.port or 0] = str(client.info("replication")["role"])
        return out

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.data_nodes() if n.port == port)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every sentinel knows the replica and the two other sentinels, and the
        replica's link is up: only then can a failover be agreed on."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            last = self._not_ready()
            if not last:
                return
            time.sleep(0.1)
        raise RuntimeError(f"sentinels not ready within {timeout:.0f}s: {last}")

    def switch_over(self, timeout: float = 20.0) -> None:
        """Ask the first sentinel for a switchover (SENTINEL FAILOVER). A sentinel answers
        NOGOODSLAVE until its own view of the replica (its periodic PING and INFO of it) is
        fresh, which on a loaded machine can lag what wait_ready saw on the replica itself:
        asked again until it accepts. INPROG is one under way: the client's own retry of a
        request whose reply was slow (on a loaded machine), which the first one started."""
        deadline = time.monotonic() + timeout
        with _client(self.sentinels[0]) as client:
            while True:
                try:
                    client.execute_command("SENTINEL", "FAILOVER", self.service)
                    return
                except redis.ResponseError as exc:
                    if str(exc).startswith("INPROG"):
                        return
                    if "NOGOODSLAVE" not in str(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(0.2)

    def _not_ready(self) -> str:
        try:
            master = self.master_port()
            for sentinel in self.sentinels:
                with _client(sentinel) as client:
                    replicas = client.execute_command("SENTINEL", "REPLICAS", self.service)
                    others = client.execute_command("SENTINEL", "SENTINELS", self.service)
                    if not any(_ok_replica(r) for r in replicas):
                        return f"sentinel {sentinel.port} sees no healthy replica"
                    if len(others) < len(self.sentinels) - 1:
                        return f"sentinel {sentinel.port} knows {len(others)} other sentinels"
            for node in self.data_nodes():
                if node.port == master or node.proc.poll() is not None:
                    continue
                with _client(node) as client:
                    link = client.info("replication").get("master_link_status")
                    if link != "up":
                        return f"replica {node.port} link {link}"
        except redis.RedisError as exc:
            return str(exc)
        return ""


def _ok_replica(entry: object) -> bool:
    if isinstance(entry, dict):
        fields = entry
    else:
        items = list(entry)  # type: ignore[call-overload]
        fields = dict(zip(items[::2], items[1::2], strict=False))
    flags = str(fields.get("flags", ""))
    return "s_down" not in flags and "disconnected" not in flags


def _client(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port or 0, decode_responses=True)


def start_sentinel(
    factory: ServerFactory, *, sentinels: int = 3, data_binary: str | None = None
) -> LocalSentinel:
    """The set; ``data_binary``: the master's and the replica's redis-server (another
    version's), the sentinels' being the system one."""
    binary = system_redis()
    fast_sync = ["--repl-diskless-sync-delay", "0"]
    data = data_binary or binary
    master = factory.start(binary=data, extra=fast_sync)
    replica = factory.start(
        binary=data, extra=[*fast_sync, "--replicaof", "127.0.0.1", str(master.port)]
    )
    watchers = []
    for _ in range(sentinels):
        workdir = factory.new_dir()
        port = free_port()
        config = workdir / "sentinel.conf"  # sentinels rewrite their config: one each
        config.write_text(
            f"port {port}\n"
            "bind 127.0.0.1\n"
            f"dir {workdir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        args = [binary, str(config), "--sentinel"]
        server = RedisServer(_spawn(args, workdir), workdir, port=port, args=args)
        factory.servers.append(server)
        _wait_ready(server)
        watchers.append(server)
    setup = LocalSentinel(master, replica, watchers)
    setup.wait_ready()
    return setup


@contextlib.contextmanager
def running_sentinel(factory: ServerFactory, *, sentinels: int = 3) -> Iterator[LocalSentinel]:
    """``start_sentinel``'s set, every process stopped at the end."""
    setup = start_sentinel(factory, sentinels=sentinels)
    try:
        yield setup
    finally:
        for server in [*setup.sentinels, *setup.data_nodes()]:
            server.stop()


@contextlib.contextmanager
def guarded_sentinel(factory: ServerFactory) -> Iterator[LocalSentinel]:
    """A set as docs/deployment.md's recipe makes it (each data node refusing writes with no
    good replica: else the doctor warns), every process stopped at the end."""
    with running_sentinel(factory) as setup:
        for node in setup.data_nodes():
            with node.client() as client:
                client.config_set("min-replicas-to-write", "1")
        yield setup
