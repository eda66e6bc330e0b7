"""Network facts the faces share (the dashboard, ``swarm a2a``, the MCP server's HTTP
transport)."""

from __future__ import annotations

import ipaddress

__all__ = ["http_url", "is_loopback"]

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
