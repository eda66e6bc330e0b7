"""Network facts the faces share (the dashboard, ``swarm a2a``, the MCP server's HTTP
transport)."""

from __future__ import annotations

import errno
import ipaddress
import socket
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


def check_can_listen(host: str, port: int) -> None:
    """Refuse, before a face that serves HTTP announces its URL, an address it cannot listen
    on: a port in use, else the server printed the URL, then failed with its own error and
    exit code. Binds as the server will (every address of ``host``, reusing a port in
    TIME_WAIT) and lets go at once; ``port`` 0 always binds."""
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(
            f"cannot listen on --host {host}: {exc.strerror}: give an address or name of "
            "this machine (127.0.0.1, 0.0.0.0, ::)"
        ) from None
    for family, kind, proto, _name, address in addresses:
        try:
            _bind(family, kind, proto, address)
        except OSError as exc:
            raise ConfigError(_why_not_listening(host, port, exc, _free_port(address))) from None


def _bind(family: int, kind: int, proto: int, address: tuple[Any, ...]) -> int:
    """Bind a socket to ``address`` as the server will, let go of it; the port it got."""
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # the server binds IPv6 only, and IPv4 apart
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        port: int = sock.getsockname()[1]
        return port


def _free_port(address: tuple[Any, ...]) -> str:
    """`` N (N is free now)``: a port of that address the system finds free, or nothing."""
    family = socket.AF_INET6 if len(address) == 4 else socket.AF_INET
    try:
        port = _bind(family, socket.SOCK_STREAM, 0, (address[0], 0, *address[2:]))
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
