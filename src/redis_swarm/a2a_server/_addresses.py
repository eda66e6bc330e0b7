"""The rule for a webhook's address, at registration and before each post (one function).

A server off loopback posts only to public addresses: a client could otherwise make it post
inside its network. ``webhook_allowed`` reads a URL three ways:

- True: http(s), and every address its host resolves to is public: post.
- False: forbidden for good: not http(s), no host, or an address on loopback, a private,
  shared (100.64.0.0/10), link-local, multicast, reserved or unspecified range (an
  IPv4-mapped IPv6 address judged as the IPv4 address it carries). The SDK's
  ``validate_push_notification_url`` has the same ranges; its check of one address is
  private to it, so it is written here.
- It raises ``OSError``: the host does not resolve, now. That is a network error, not a
  verdict: a resolver's temporary failure (``EAI_AGAIN``) looks like a name that does not
  exist, and a post to it is retried as one that could not connect (the SDK's check read
  both as "refused", so one failed lookup dropped an update for good, the final one too).
  A webhook given by a client is refused while its host does not resolve: fail closed.

The resolver is a parameter (``Resolver``): the event loop's ``getaddrinfo`` unless told.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence

__all__ = [
    "REFUSED_ADDRESS",
    "Resolver",
    "UrlCheck",
    "blocked_ip",
    "loop_resolver",
    "unresolved",
    "webhook_allowed",
]

# The rule for a webhook's URL (True: this server may post to it; False: never; OSError: its
# host does not resolve now), at registration and before each post: see the module.
UrlCheck = Callable[[str], Awaitable[bool]]
# A host and port's addresses (IP literals); OSError when the host does not resolve.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
# Why a URL a UrlCheck answered False for is refused.
REFUSED_ADDRESS = (
    "it is not http(s) with a host, or its host resolves to a loopback, private, link-local "
    "or other non-public address (this server posts only to public addresses)"
)


def unresolved(url: str, exc: OSError) -> str:
    """Why a URL whose host did not resolve (``exc``) was not posted to, nor taken."""
    host = urllib.parse.urlsplit(url).hostname or url[:80]
    return f"its host {host[:80]!r} does not resolve now ({exc})"


async def loop_resolver(host: str, port: int) -> Sequence[str]:
    """The addresses of ``host``, by the running event loop's resolver (a thread: never
    blocking the loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def blocked_ip(ip: str) -> bool:
    """True if ``ip`` is no public unicast address (see the module); one that is not an IP
    address at all is blocked too."""
    try:
        address = ipaddress.ip_address(ip.split("%", maxsplit=1)[0])  # (no IPv6 scope)
    except ValueError:
        return True
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return (
        not address.is_global
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def webhook_allowed(url: str, resolve: Resolver = loop_resolver) -> bool:
    """The rule (see the module): True to post to ``url``, False never; raises OSError when
    its host does not resolve now."""
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:  # (a port out of range, a malformed IPv6 literal)
        return False
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return False
    addresses = await resolve(parsed.hostname, port)
    if not addresses:  # (a resolver that answers nothing: nothing to post to, for now)
        raise OSError(f"no address for {parsed.hostname!r}")
    return not any(blocked_ip(ip) for ip in addresses)
