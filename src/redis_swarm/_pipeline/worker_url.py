"""The URL a pipeline's agents reach the swarm with (``[workers] url_env``, a run's
``--worker-url-env``): a variable's name, whose value must be a Redis URL of the run's own
server (``other_server``: a worker user's, as ``swarm acl --role worker`` makes one), checked
before anything is stored (``url_env_problem``)."""

from __future__ import annotations

import contextlib
import ipaddress
import os

from .._config import Settings, url_host
from .._embedded import EmbeddedServer
from .._errors import ConfigError

__all__ = ["other_server", "url_env_problem", "worker_settings"]

_MAKE_WORKER = "swarm acl --role worker --user NAME --apply makes one"
_OWN_USER = "or leave url_env out to run the agents as the pipeline's own user"


def url_env_problem(name: str, settings: Settings | None = None) -> str | None:
    """Why the environment variable ``name`` (the workers' ``url_env``) holds no URL the
    agents could reach the swarm with (unset, empty, not a Redis URL: its error, which shows
    no password; with the run's own ``settings``, a URL of another server: ``other_server``),
    else None."""
    value = os.environ.get(name)
    fix = f"set it to a worker user's Redis URL ({_MAKE_WORKER}), {_OWN_USER}"
    if value is None:
        return f"the environment variable {name} is not set: {fix}"
    if not value.strip():
        return f"the environment variable {name} is empty: {fix}"
    try:
        worker = worker_settings(value, settings)
    except ConfigError as exc:
        return f"the environment variable {name} holds no Redis URL ({exc}): {fix}"
    if settings is None:
        return None
    differs = other_server(worker, settings)
    if differs is None:
        return None
    return (
        f"the environment variable {name} holds a URL of another server than the "
        f"pipeline's ({differs}): {worker.url} for the agents, {settings.url} for the "
        "pipeline. Its agents would work on another swarm than the run's: the plan's "
        "contexts are not there, and the run never sees what they report there, waiting "
        f"for it for ever. Set {name} to a worker user's URL on "
        f"the pipeline's own server, written with {_SAME_PARTS[settings.kind]} as the "
        f"pipeline's ({_MAKE_WORKER}), {_OWN_USER}"
    )


def worker_settings(url: str, settings: Settings | None) -> Settings:
    """The settings of the workers' ``url``, on the swarm and home of the run's ``settings``
    (given): as the agents get them (``embedded`` is the run's home's server)."""
    if settings is None:
        return Settings.from_url(url)
    return Settings.from_url(url, swarm=settings.swarm, home=settings.home)


# --- whether the agents' URL names the run's own server
#
# Decided from what the two URLs say, nothing asked of a server: no host name is resolved
# (what a name resolves to changes, and a load balancer's name and its servers' addresses
# differ), and a worker user may not run INFO (``_acl.WITHHELD``: no run_id to compare).
# A URL the check takes for another server is refused saying which parts to write as the
# pipeline's are written; usernames and passwords differ by design and are not compared.


def other_server(worker: Settings, own: Settings) -> str | None:
    """What makes ``worker`` (the agents' settings) name another server than ``own`` (the
    run's), in words, or None when both name the same one: the same kind of URL (a unix
    socket, the embedded server's included; redis://; rediss://; a cluster's; a Sentinel
    set's), then the same socket file, host and port, cluster (a node in common) or Sentinel
    set (a sentinel in common, the same service name), and the same database."""
    scheme, own_scheme = _scheme(worker), _scheme(own)
    if scheme != own_scheme:
        return f"a {scheme} URL, where the pipeline's is a {own_scheme} one"
    if scheme == _UNIX:
        if _socket_file(worker) != _socket_file(own):
            return "another unix socket"
    elif worker.kind == "standalone":
        if _host_key(worker.host) != _host_key(own.host):
            return f"another host: {url_host(worker.host)}, not {url_host(own.host)}"
        if worker.port != own.port:
            return f"another port: {worker.port}, not {own.port}"
    elif not _nodes(worker) & _nodes(own):
        kind = "node" if worker.kind == "cluster" else "sentinel"
        return (
            f"it names no {kind} that the pipeline's names: another "
            f"{_DEPLOYMENT[worker.kind]}, as far as the URLs tell"
        )
    elif worker.service_name != own.service_name:
        return f"another Sentinel service: {worker.service_name}, not {own.service_name}"
    if worker.db != own.db:  # (a cluster's is always 0)
        return f"another database: {worker.db}, not {own.db}"
    return None


_UNIX = "unix:// (or embedded)"
_DEPLOYMENT = {"cluster": "cluster", "sentinel": "Sentinel set"}
# The parts of a URL of each kind that name its server: a worker's URL writes them alike.
_SAME_PARTS = {
    "embedded": "the same socket path (the embedded server's, HOME/redis.sock) and database",
    "unix": "the same socket path and database",
    "standalone": "the same scheme, host, port and database",
    "cluster": "the same scheme and at least one of the nodes it names",
    "sentinel": (
        "the same scheme, at least one of the sentinels it names, the same service name "
        "and database"
    ),
}


def _scheme(settings: Settings) -> str:
    """The kind of a URL, as the check compares it: the embedded server is a unix socket."""
    if settings.kind in ("embedded", "unix"):
        return _UNIX
    tls = "rediss" if settings.ssl else "redis"
    plus = "" if settings.kind == "standalone" else f"+{settings.kind}"
    return f"{tls}{plus}://"


def _socket_file(settings: Settings) -> str:
    """The socket file of a unix or embedded URL, its symbolic links followed (a file of
    this machine: the same file is the same server)."""
    path = EmbeddedServer(settings.home).socket_path if settings.kind == "embedded" else None
    return os.path.realpath(path or settings.path or "")


# One host to the check: the agents run on the run's machine, where localhost is 127.0.0.1
# or ::1, both of which a Redis server listens on by default (bind 127.0.0.1 -::1). Not every
# loopback address: servers may listen on 127.0.0.2 and 127.0.0.1 with the same port.
_LOCALHOST = frozenset({"localhost", "ip6-localhost", "127.0.0.1", "::1"})


def _host_key(host: str) -> str:
    """``host`` as the check compares it: without case, brackets or a final dot, an address
    in its shortest form, localhost's names and addresses one host (``_LOCALHOST``)."""
    name = host.strip("[]").rstrip(".").lower()
    with contextlib.suppress(ValueError):
        name = ipaddress.ip_address(name).compressed
    return "localhost" if name in _LOCALHOST else name


def _nodes(settings: Settings) -> set[tuple[str, int]]:
    """The nodes of a cluster URL, or the sentinels of a Sentinel one, as compared."""
    return {(_host_key(host), port) for host, port in settings.nodes}
