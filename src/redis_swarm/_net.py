"""Network facts the faces share (the dashboard, ``swarm a2a``, the MCP server's HTTP
transport)."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

from ._errors import ConfigError

__all__ = ["check_can_listen", "http_url", "is_loopback"]

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


def http_url(host: str, port: int, path: str = "/") -> str:
    """``http://HOST:PORT/PATH``, an IPv6 address in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


def check_can_listen(host: str, port: int) -> int:
    """The port a face that serves HTTP will listen on: ``port``, or for 0 ("any free port")
    one the system finds free on every address of ``host``, to announce in its URL (not
    ``:0``). Refuses, before the face announces its URL, an address it cannot listen on: a
    port in use, else the server printed the URL, then failed with its own error and exit
    code. Binds as the server will (every address of ``host``, reusing a port in TIME_WAIT)
    and lets go at once: the server binds the port again, so another program could take it
    in between (rarely: a port bound, never listened on, is free again at once)."""
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(
            f"cannot listen on --host {host}: {exc.strerror}: give an address or name of "
            "this machine (127.0.0.1, 0.0.0.0, ::)"
        ) from None
    # The server binds each address once (``localhost``: 127.0.0.1 and ::1), all on one port.
    unique = list(dict.fromkeys((f, k, p, a) for f, k, p, _name, a in addresses))
    picks = 1
    while True:
        try:
            return _bind_all(unique, port)
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
    """``address`` could not be bound on ``port``."""

    def __init__(self, address: tuple[Any, ...], port: int, error: OSError) -> None:
        super().__init__(address, port, error)
        self.address, self.port, self.error = address, port, error


def _bind_all(addresses: Sequence[_Address], port: int) -> int:
    """Bind every address on ``port`` (0: on the port the first one got), holding each until
    all are bound, then let go; the port."""
    with contextlib.ExitStack() as bound:
        for family, kind, proto, address in addresses:
            try:
                sock = bound.enter_context(socket.socket(family, kind, proto))
                port = _bind(sock, (address[0], port, *address[2:]))
            except OSError as exc:
                raise _NotBound(address, port, exc) from None
    return port


def _bind(sock: socket.socket, address: tuple[Any, ...]) -> int:
    """Bind ``sock`` to ``address`` as the server will; the port it got."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if sock.family == socket.AF_INET6:  # the server binds IPv6 only, and IPv4 apart
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
        return f"--host {host} is not an address of this machine: pick one of its addresses"
    return f"cannot listen on {host} port {port}: {exc.strerror or exc}: check --host and --port"
