"""The rule for a webhook's address, at registration and before each post (one function).

A server off loopback posts only to public addresses: a client could otherwise make it post
inside its network. ``webhook_target`` reads a URL three ways:

- Its addresses (IP literals, in the resolver's order): http(s), and every address its host
  resolves to is public: post, to those addresses (``pin``), the next one tried when one
  cannot be connected to (as the HTTP client would have tried each address of the name).
- None: forbidden for good: not http(s), no host, or an address on loopback, a private,
  shared (100.64.0.0/10), link-local, multicast, reserved or unspecified range. An IPv6
  address that carries an IPv4 one, IPv4-mapped (``::ffff:0:0/96``) or 6to4
  (``2002::/16``: ``2002:7f00:1::`` reaches 127.0.0.1 through a relay), is judged as the
  IPv4 address it carries; a Teredo one (``2001::/32``, a tunnel to a host behind a NAT)
  and a site-local one (``fec0::/10``, deprecated but still routed inside some networks;
  Python 3.11 counts it global) are blocked whatever they carry. The SDK's
  ``validate_push_notification_url`` has the same ranges (it lets 6to4 and site-local
  through); its check of one address is private to it, so it is written here.
- It raises ``OSError``: the host does not resolve, now. That is a network error, not a
  verdict: a resolver's temporary failure (``EAI_AGAIN``) looks like a name that does not
  exist, and a post to it is retried as one that could not connect (the SDK's check read
  both as "refused", so one failed lookup dropped an update for good, the final one too).
  A webhook given by a client is refused while its host does not resolve: fail closed.

The post goes to an address that was checked (``pin``), not to the URL's host: the HTTP
client would resolve the name again, and a name that answers a public address to the check
and 127.0.0.1 to the connection (DNS rebinding) reached a private address. The request keeps
the URL's host name where it speaks to the server: its ``Host`` header, and TLS (SNI, and
the certificate checked against that name, not against the address). So the post is made
directly, never through a proxy from the environment (``HTTPS_PROXY``): httpcore's tunnel
through an HTTP proxy does not carry the TLS name over (it checked the certificate against
the address), and a proxy would resolve the name again itself.

The resolver is a parameter (``Resolver``): the event loop's ``getaddrinfo`` unless told;
so is the rule for one address (``blocked_ip`` unless told).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence

import httpx

__all__ = [
    "REFUSED_ADDRESS",
    "AddressCheck",
    "Resolver",
    "UrlCheck",
    "blocked_ip",
    "loop_resolver",
    "pin",
    "unresolved",
    "webhook_allowed",
    "webhook_target",
]

# The rule for a webhook's URL, at registration (True: this server may post to it; False:
# never; OSError: its host does not resolve now): ``webhook_allowed``.
UrlCheck = Callable[[str], Awaitable[bool]]
# The same rule before each post, which gives the addresses to post to, in the order to try
# them (None: never): ``webhook_target``. See the module.
AddressCheck = Callable[[str], Awaitable[Sequence[str] | None]]
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
    if isinstance(address, ipaddress.IPv6Address):
        if address.teredo is not None or address.is_site_local:
            return True
        # An address that carries an IPv4 one reaches it: judged as that address.
        carried = address.ipv4_mapped or address.sixtofour
        if carried is not None:
            address = carried
    return (
        not address.is_global
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def webhook_target(
    url: str, resolve: Resolver = loop_resolver, blocked: Callable[[str], bool] = blocked_ip
) -> tuple[str, ...] | None:
    """The rule (see the module): the addresses to post ``url`` to, in the resolver's order
    (each once: one to try after another that could not be connected to), None never;
    raises OSError when its host does not resolve now. Every address the host has must pass
    ``blocked``."""
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        httpx.URL(url)  # (what the post parses: a URL it would refuse is no webhook)
    except (ValueError, httpx.InvalidURL):  # (a port out of range, a malformed IPv6 literal)
        return None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None
    addresses = await resolve(parsed.hostname, port)
    if not addresses:  # (a resolver that answers nothing: nothing to post to, for now)
        raise OSError(f"no address for {parsed.hostname!r}")
    if any(blocked(ip) for ip in addresses):
        return None
    return tuple(dict.fromkeys(addresses))  # (each once: a resolver may name one twice)


async def webhook_allowed(url: str, resolve: Resolver = loop_resolver) -> bool:
    """True if this server may post to ``url`` (``webhook_target`` gives an address); raises
    OSError when its host does not resolve now."""
    return await webhook_target(url, resolve) is not None


def pin(request: httpx.Request, address: str) -> None:
    """Send ``request`` to ``address``, the one its URL was checked at, rather than to what
    its host resolves to when the client connects (see the module). Its ``Host`` header
    (set when it was built) and TLS keep the URL's host name. A pinned HTTPS request closes
    its connection after its answer: the client's pool keys a connection by address, so a
    later request to the same address for another host name would reuse one whose
    certificate was checked for this name only."""
    url = request.url
    request.extensions["sni_hostname"] = url.raw_host.decode("ascii")  # (IDNA-encoded)
    request.url = url.copy_with(host=address)
    if url.scheme == "https":
        request.headers["Connection"] = "close"
