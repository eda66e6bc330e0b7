"""Real redis-server processes for tests: on free ports or unix sockets, never on 6379."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from redis_swarm._embedded import _version_of, find_redis_server

MIN_SYSTEM_VERSION = (7, 0)


def system_redis(*, tls: bool = False) -> str:
    """The ``redis-server`` on PATH when it is Redis >= 7 (ACL selectors, TLS, cluster, sentinel
    tests need it); skips the calling test with the reason otherwise."""
    import pytest

    path = shutil.which("redis-server")
    if path is None:
        pytest.skip("no redis-server on PATH: run scripts/system-deps.sh")
    version = _version_of(path)
    if version is None or version[:2] < MIN_SYSTEM_VERSION:
        pytest.skip(f"{path} is Redis {version}; these tests need >= 7.0 (scripts/system-deps.sh)")
    if tls and not _links_openssl(path):
        pytest.skip(f"{path} is built without TLS: install Debian's redis-server")
    return path


def _links_openssl(path: str) -> bool:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    return b"tls-cert-file" in data and (b"libssl" in data or b"OPENSSL" in data)


PORT_ATTEMPTS = 4  # ports tried before a start that keeps meeting taken ones fails


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    assert port != 6379
    return port


@dataclass
class RedisServer:
    """One running redis-server started by a test fixture."""

    proc: subprocess.Popen[bytes]
    dir: Path
    port: int | None = None
    socket_path: Path | None = None
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        if self.socket_path is not None:
            return f"unix://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        if self.socket_path is not None:
            return redis.Redis(unix_socket_path=str(self.socket_path))
        return redis.Redis(host="127.0.0.1", port=self.port or 6379)

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self) -> None:
        """Start again on the same port/socket and data directory."""
        self.stop()
        self.proc = _spawn(self.args, self.dir)
        _wait_ready(self)


def _spawn(args: list[str], workdir: Path) -> subprocess.Popen[bytes]:
    with open(workdir / "redis.log", "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)


class PortTaken(RuntimeError):
    """The port chosen for a new server was taken before the server could bind it (another
    test's server, or an outgoing connection's ephemeral port): ``free_port`` only promises
    that the port was free when it asked."""


def _wait_ready(server: RedisServer, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            log = (server.dir / "redis.log").read_text(errors="replace")[-2000:]
            failure = PortTaken if "Address already in use" in log else RuntimeError
            raise failure(f"redis-server exited ({server.proc.returncode}): {log}")
        with contextlib.suppress(redis.RedisError, OSError):
            client = server.client()
            try:
                if client.ping():
                    _check_answered_by(server, client)
                    return
            finally:
                client.close()
        time.sleep(0.02)
    raise RuntimeError("redis-server did not become ready")


def _check_answered_by(server: RedisServer, client: redis.Redis) -> None:
    """Raise PortTaken when the server that answered on ``server``'s port is not its process:
    its own failed to bind, and a test would otherwise talk to another test's server."""
    try:
        pid = int(client.info("server")["process_id"])
    except (redis.RedisError, KeyError, ValueError):
        return  # a user without INFO: nothing to compare, the process check above stands
    if pid == server.proc.pid:
        return
    server.stop()
    raise PortTaken(f"port {server.port} answered by another redis-server (pid {pid})")


class ServerFactory:
    """Starts real servers; stops them all at the end of the session."""

    def __init__(self) -> None:
        self.binary = find_redis_server().path
        self.servers: list[RedisServer] = []
        self._root = Path(tempfile.mkdtemp(prefix="rs-test-"))

    def new_dir(self) -> Path:
        """A fresh working directory, removed at the end of the session."""
        return Path(tempfile.mkdtemp(dir=self._root))

    def start(
        self,
        *,
        unix: bool = False,
        appendonly: bool = False,
        extra: list[str] | None = None,
        port: int | None = None,
        binary: str | None = None,
    ) -> RedisServer:
        for attempt in range(1, PORT_ATTEMPTS + 1):
            workdir = self.new_dir()
            args = [binary or self.binary, "--dir", str(workdir), "--save", ""]
            args += ["--appendonly", "yes" if appendonly else "no"]
            server_port: int | None = None
            sock: Path | None = None
            if unix:
                sock = workdir / "redis.sock"
                args += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
            else:
                server_port = port or free_port()
                args += ["--port", str(server_port), "--bind", "127.0.0.1"]
            args += extra or []
            server = RedisServer(
                _spawn(args, workdir), workdir, port=server_port, socket_path=sock, args=args
            )
            try:
                _wait_ready(server)
            except PortTaken:
                if port is not None or attempt == PORT_ATTEMPTS:
                    raise  # a port the caller chose is the caller's to retry
                continue
            self.servers.append(server)
            return server
        raise AssertionError("unreachable: the last attempt raises")

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        shutil.rmtree(self._root, ignore_errors=True)


@contextlib.contextmanager
def server_factory() -> Iterator[ServerFactory]:
    factory = ServerFactory()
    try:
        yield factory
    finally:
        factory.close()


def user_url(server: RedisServer, user: Any) -> str:
    """The URL of ``server`` (TCP) as an ACL user: ``user`` has ``user`` and ``password``
    (an ``AclUser``)."""
    return f"redis://{user.user}:{user.password}@127.0.0.1:{server.port}"


def role_users(
    server: RedisServer, swarm: str, prefix: str, roles: tuple[str, ...] = ("worker", "shard")
) -> dict[str, Any]:
    """An ACL user of each of ``roles`` on ``server`` for ``swarm``, made by ``apply_role`` as
    ``swarm acl --apply`` makes them, named ``PREFIX-ROLE``: each role's ``AclUser``."""
    from redis_swarm import Settings, apply_role

    admin = Settings.from_url(server.url, swarm=swarm)
    return {role: apply_role(admin, role, f"{prefix}-{role}", swarm=swarm).user for role in roles}


def old_worker_url(server: RedisServer, swarm: str, user: str) -> str:
    """The URL of a worker ``user`` of ``swarm`` made on ``server`` as an older redis-swarm
    made it (``worker_without_dead_zrem``): its report of a dead-lettered task stops
    half-way."""
    admin: Any = server.client()  # (execute_command: untyped)
    try:
        admin.execute_command(*worker_without_dead_zrem(swarm, user))
    finally:
        admin.close()
    return f"redis://{user}:{'p' * 20}@127.0.0.1:{server.port}"


def worker_without_dead_zrem(swarm: str, user: str) -> tuple[str, ...]:
    """The ACL SETUSER of a worker ``user`` of ``swarm`` as an older redis-swarm made it, which
    could not ZREM the dead set: its report of a dead-lettered task stops half-way (its
    finding stored, then refused). Its password: 20 'p's."""
    from redis_swarm._acl import acl_user, key_patterns

    dead = "~" + key_patterns(swarm, "dead")
    rules = []
    for rule in acl_user("worker", swarm, user, password="p" * 20).rules:
        if rule.startswith("(") and dead + " " in rule:
            rule = rule.replace(dead + " ", "")
        rules.append(rule)
    return ("ACL", "SETUSER", user, *rules, f"({dead} +zadd)")
