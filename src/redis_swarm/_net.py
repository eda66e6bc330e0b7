"""Network facts the faces share (the dashboard, ``swarm a2a``, the MCP server's HTTP
transport), and what a bare connection to each address of a URL meets (``knock``: the
doctor's report of a server it cannot reach)."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._config import Settings, url_host
from ._errors import ConfigError
from ._printable import printable

__all__ = [
    "HOST_SHOWN",
    "Listening",
    "announced_host",
    "every_interface",
    "http_url",
    "is_loopback",
    "knock",
    "listen",
    "loopback_only",
    "shown_host",
]

# The most of a --host value a message shows: it is typed, but may be any length.
HOST_SHOWN = 80


def shown_host(host: str) -> str:
    """``host`` quoted for a message: cut to HOST_SHOWN characters, every control or
    bidirectional character (a newline too) shown as an escape, not obeyed by the terminal."""
    cut = host if len(host) <= HOST_SHOWN else host[: HOST_SHOWN - 1] + "…"
    return printable(repr(cut))


_LOOPBACK_NAMES = {"localhost", "localhost.", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for a host name or address that only this machine can reach."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_only(host: str) -> bool:
    """True for a face's --host that only this machine can reach: a loopback name or address
    (``is_loopback``), or a name every address of which is loopback (the machine's own name,
    where /etc/hosts gives it 127.0.0.1 alone). A name that does not resolve is not. The
    rule of the token a web face needs off loopback (``_web.require_token_off_loopback``);
    never of a request's Host header, which is the client's word (resolving it would let a
    name of anyone's that resolves to 127.0.0.1 in: DNS rebinding)."""
    if is_loopback(host):
        return True
    try:
        addresses = socket.getaddrinfo(host.strip("[]"), None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):  # (ValueError: a NUL in it)
        return False
    return bool(addresses) and all(is_loopback(str(a[4][0])) for a in addresses)


def http_url(host: str, port: int, path: str = "/") -> str:
    """``http://HOST:PORT/PATH``, an IPv6 address in brackets."""
    return f"http://{url_host(host)}:{port}{path}"


@dataclass(frozen=True)
class Listening:
    """The sockets a face that serves HTTP listens on (one per address of its host, all on
    ``port``), to hand to its server. Already listening: connections made from now on wait
    in the queue until the server accepts them. A context manager that closes them (the
    server closes them too when it stops; closing twice is harmless)."""

    port: int
    sockets: tuple[socket.socket, ...]

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()

    def __enter__(self) -> Listening:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def listen(host: str, port: int) -> Listening:
    """Listen on every address of ``host`` (``localhost``: 127.0.0.1, and ::1 where the
    machine names it so too), all on ``port``, or for 0 ("any free port") on one the system
    finds free on all of them; the port (to announce in the face's URL, not ``:0``) and the
    sockets, to hand to the server. The port is held from here on: the URL a face announces
    is its own, and no other program can take the port before the server serves. Refuses,
    before the face announces its URL, an address it cannot listen on (a port in use, a
    host not of this machine), with what to do instead."""
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:  # (a name IDNA cannot encode: the latter)
        why = exc.strerror if isinstance(exc, socket.gaierror) else "not a host name"
        raise ConfigError(
            f"cannot listen on --host {shown_host(host)}: {why}: give an address or name of "
            "this machine (127.0.0.1, 0.0.0.0, ::)"
        ) from None
    # Each address once (getaddrinfo may list one twice), all on one port.
    unique = list(dict.fromkeys((f, k, p, a) for f, k, p, _name, a in addresses))
    picks = 1
    while True:
        try:
            return _listen_all(unique, port)
        except _NotBound as failed:
            # Port 0: the port the first address got may be taken on another: pick again.
            if port == 0 and failed.port != 0 and picks < _PICKS:
                picks += 1
                continue
            free = _free_port(failed.address)
            raise ConfigError(_why_not_listening(host, failed.port, failed.error, free)) from None


# Port 0 on several addresses: how many ports to try for one that is free on all of them.
_PICKS = 5

_Address = tuple[int, int, int, tuple[Any, ...]]  # family, type, proto, sockaddr


class _NotBound(Exception):
    """``address`` could not be bound (or listened on) on ``port``."""

    def __init__(self, address: tuple[Any, ...], port: int, error: OSError) -> None:
        super().__init__(address, port, error)
        self.address, self.port, self.error = address, port, error


def _listen_all(addresses: Sequence[_Address], port: int) -> Listening:
    """Listen on every address on ``port`` (0: on the port the first one got); all of them,
    or none (those already open are closed)."""
    with contextlib.ExitStack() as opened:
        sockets = []
        for family, kind, proto, address in addresses:
            try:
                sock = opened.enter_context(socket.socket(family, kind, proto))
                port = _bind(sock, (address[0], port, *address[2:]))
                # Two sockets with SO_REUSEADDR may bind one port; only one can listen:
                # a port is ours once listen succeeds.
                sock.listen()
            except OSError as exc:
                raise _NotBound(address, port, exc) from None
            # The server's event loop accepts without blocking (asyncio would set it too).
            sock.setblocking(False)
            sockets.append(sock)
        opened.pop_all()  # all listen: they are the caller's now
    return Listening(port, tuple(sockets))


def _bind(sock: socket.socket, address: tuple[Any, ...]) -> int:
    """Bind ``sock`` to ``address`` as uvicorn (asyncio's ``create_server``) would: reusing a
    port in TIME_WAIT, IPv6 only on an IPv6 address (IPv4 is bound apart); the port it got."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(address)
    port: int = sock.getsockname()[1]
    return port


def _free_port(address: tuple[Any, ...]) -> str:
    """`` N (N is free now)``: a port of that address the system finds free, or nothing."""
    family = socket.AF_INET6 if len(address) == 4 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            port = _bind(sock, (address[0], 0, *address[2:]))
    except OSError:
        return ""
    return f" N ({port} is free now)"


def _why_not_listening(host: str, port: int, exc: OSError, free: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} is already in use on {host} (another server, or another copy of "
            f"this one): pick a free port with --port{free}, or stop what listens there"
        )
    if exc.errno == errno.EACCES:
        return (
            f"not allowed to listen on port {port} (ports below 1024 need root): pick "
            f"another with --port{free}"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        # (a host getaddrinfo resolved: shown as typed)
        return f"--host {host} is not an address of this machine: pick one of its addresses"
    return (
        f"cannot listen on {shown_host(host)} port {port}: {exc.strerror or exc}: check --host "
        "and --port"
    )


def _every_ipv4_interface(host: str) -> bool:
    """Whether ``host`` is IPv4's wildcard, ``0.0.0.0``. (Not IPv6's ``::``: ``listen`` binds
    it IPv6-only, and the machine's name may resolve to IPv4 alone, so ``[::]`` stays as it
    is said.)"""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address.is_unspecified


def announced_host(host: str) -> tuple[str, bool]:
    """The host a served URL names, and whether ``host`` is IPv4's wildcard (``0.0.0.0``:
    every interface). That is no address another machine can open: the URL names this
    machine by its name instead (its fully qualified one when the resolver knows one, else
    the host name), which every interface answers to. The dashboard's URL, the A2A card's and
    the MCP server's say it so."""
    if not _every_ipv4_interface(host):
        return host, False
    name = socket.getfqdn()
    if not name or "." not in name or name.startswith("localhost"):
        name = socket.gethostname() or name
    return name, True


def every_interface(host: str) -> str:
    """What a served URL's line adds for IPv4's wildcard ``host`` (else nothing)."""
    return f"listening on every interface ({host}); " if _every_ipv4_interface(host) else ""


# How long ``knock`` waits for each address: it says whether anything listens, not how fast.
KNOCK_TIMEOUT_S = 1.0
# The most addresses ``knock`` waits on at once: their waits overlap, so a cluster's silent
# nodes cost the doctor one KNOCK_TIMEOUT_S, not one each (a URL rarely names more).
KNOCK_AT_ONCE = 16


def knock(settings: Settings, timeout_s: float = KNOCK_TIMEOUT_S) -> dict[str, str]:
    """What a bare connection to each address of ``settings``' URL meets (its server, the
    sentinels or the cluster's nodes it names, its unix socket), in words: for a server that
    could not be reached, where the trouble starts (nothing listening, no answer, a name
    that does not resolve, a socket file missing or not the user's), or that it is past the
    connection (TLS, a password, the server's answer). Nothing is sent. The embedded server:
    {} (its own error says whether it runs)."""
    if settings.kind == "embedded":
        return {}
    if settings.kind == "unix":
        return {settings.path or "": _knock_unix(settings.path or "", timeout_s)}
    from concurrent.futures import ThreadPoolExecutor  # (here: only the doctor's report knocks)

    nodes = settings.nodes or ((settings.host, settings.port),)

    def met(node: tuple[str, int]) -> str:
        return _knock_tcp(*node, timeout_s)

    with ThreadPoolExecutor(min(KNOCK_AT_ONCE, len(nodes)), thread_name_prefix="knock") as pool:
        answers = list(pool.map(met, nodes))  # (in the URL's order, whichever came first)
    return {f"{url_host(h)}:{p}": said for (h, p), said in zip(nodes, answers, strict=True)}


_REACHED = (
    "accepts connections: the trouble is past the connection (TLS, a user or password, or "
    "the server's answer)"
)


def _knock_tcp(host: str, port: int, timeout_s: float) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return _REACHED
    except socket.gaierror as exc:
        return f"the host name does not resolve ({exc.strerror}): check its spelling and DNS"
    except ConnectionRefusedError:
        return "refuses connections: nothing listens on that port (is the server started?)"
    except TimeoutError:
        return (
            f"no answer within {timeout_s:g} s: a firewall, a host that is down or unreachable, "
            "or a wrong address"
        )
    except OSError as exc:
        return exc.strerror or str(exc)


def _knock_unix(path: str, timeout_s: float) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(path)
            return _REACHED
        except FileNotFoundError:
            return "no such socket file: the server is not running there (or the path is wrong)"
        except PermissionError:
            return "the socket is not yours to open: run as its owner, or fix its unixsocketperm"
        except ConnectionRefusedError:
            return "refuses connections: the socket file is left from a server that stopped"
        except TimeoutError:
            return f"no answer within {timeout_s:g} s: the server is paused or overloaded"
        except OSError as exc:
            return exc.strerror or str(exc)
