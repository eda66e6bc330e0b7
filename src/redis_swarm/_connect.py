"""Build the right redis-py client for a Settings: standalone, unix, TLS, cluster, sentinel.

Every client retries connection errors and socket timeouts with exponential backoff and
jitter, and checks new and idle connections before use with a PING, which any answer
passes (a server that cannot persist refuses PING with MISCONF, and still serves reads); the
sync cluster client's nodes too, which redis-py leaves unchecked (``Cluster``). A TLS
handshake waits ``connect_timeout`` at most, on every redis-py.
Operations are written to be safe to retry (client-generated ids, idempotent scripts), so a
retried command after a lost reply never applies twice.

What each client is built from: the retries, and the rules that cut them short (errors no
retry can fix, the retry window of a request that timed out, no server answering), in
``_retries``; the connections' health check, TLS handshake and shared options in
``_connections``; the Sentinel clients in ``_sentinel``; the Cluster clients in ``_cluster``.
A sync handle sends through ``_direct``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException

from ._config import Settings, check_sentinel_service, unverified_tls
from ._connections import (
    ALIVE_ON_ANY_ANSWER,
    QUIET,
    alive_on_any_answer,
    common,
    pool_options,
)
from ._errors import TlsNotVerified
from ._retries import RETRY_ON, AsyncRetry, Retry, backoff, retry

__all__ = ["AsyncClient", "SyncClient", "async_client", "sync_client"]

SyncClient = redis.Redis | RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


def _nothing_failed(error: Exception) -> None:
    return None


def _socket_path(settings: Settings) -> str:
    if settings.kind == "embedded":
        from ._embedded import EmbeddedServer

        return EmbeddedServer(settings.home, durability=settings.durability).ensure_running()
    assert settings.path is not None
    return settings.path


@dataclass(frozen=True)
class _Kit:
    """The redis-py classes of one side, sync or asyncio: a client is built once, from a kit
    (a cluster's and a sentinel's classes are chosen by ``_cluster`` and ``_sentinel_master``,
    which import their modules: only a cluster or a sentinel URL needs them)."""

    redis: Any
    cluster_node: Any
    retry: Any
    cluster_options: dict[str, Any]


_SYNC = _Kit(redis.Redis, ClusterNode, Retry, {})
_ASYNC = _Kit(
    redis.asyncio.Redis,
    redis.asyncio.cluster.ClusterNode,
    AsyncRetry,
    # On every 5th MOVED (the default), redis-py's asyncio cluster client closes every
    # connection it has, those other coroutines are using too: a command already sent
    # loses its reply (or fails on a closed writer), and a lost reply retried can apply
    # twice (a claim that took a task, retried, takes another; the first stays claimed
    # by nobody). Resharding answers many MOVED. With 0 each MOVED only moves its slot
    # to the node the reply names, as the sync client does between refreshes.
    {"reinitialize_steps": 0},
)


def _client(settings: Settings, kit: _Kit) -> Any:
    _warn_unverified(settings)
    if settings.kind == "cluster":
        from ._cluster import fcall_routed  # (here: a cluster URL's only)

        return fcall_routed(_cluster(settings, kit))
    if settings.kind == "sentinel":
        return _sentinel_master(settings, kit)
    client_retry = retry(kit.retry, settings, settings.retries, tuple(RETRY_ON))
    if settings.kind in ("embedded", "unix"):
        client = kit.redis(
            unix_socket_path=_socket_path(settings),
            db=settings.db,
            retry=client_retry,
            health_check_interval=settings.health_check_interval,
            socket_timeout=settings.socket_timeout,
            socket_connect_timeout=settings.connect_timeout,
            username=settings.username,
            password=settings.password,
            **pool_options(settings),
            **QUIET,
        )
    else:
        client = kit.redis(
            host=settings.host,
            port=settings.port,
            db=settings.db,
            retry=client_retry,
            health_check_interval=settings.health_check_interval,
            **common(settings),
        )
    alive_on_any_answer(client.connection_pool)
    return client


def _warn_unverified(settings: Settings) -> None:
    """``TlsNotVerified`` when ``settings`` connect without checking the server's certificate
    or host name: the client sends the URL's password to whoever answers, and only 'swarm
    doctor' said so. Its text names the option, not the server: a command that reaches
    every node of a cluster says it once (Python shows a warning once per text and place)."""
    said = unverified_tls(settings)
    if said is not None:
        option = f"ssl_cert_reqs={settings.ssl_cert_reqs}"
        warnings.warn(TlsNotVerified(said, option), stacklevel=3)


def _cluster(settings: Settings, kit: _Kit) -> Any:
    """The cluster client of ``settings``, its connections those of ``AnswerMeansAlive``."""
    from ._cluster import (  # (here: a cluster URL's only)
        CLUSTER_INSTANT_RETRIES,
        AsyncCluster,
        Cluster,
        cluster_error,
    )

    options = dict(kit.cluster_options)
    cluster_class = Cluster if kit is _SYNC else AsyncCluster

    def made() -> Any:
        try:
            return cluster_class(
                startup_nodes=[kit.cluster_node(h, p) for h, p in settings.nodes],
                retry=retry(
                    kit.retry,
                    settings,
                    min(settings.retries, CLUSTER_INSTANT_RETRIES),
                    tuple(RETRY_ON),
                ),
                health_check_interval=settings.health_check_interval,
                **options,
                **common(settings),
            )
        except RedisClusterException as exc:  # (the sync client asks a node now)
            raise cluster_error(exc) from exc

    if kit is _SYNC:
        # It asks the URL's nodes for the layout now: retried as the asyncio client's first
        # command is (which asks then, inside the shell's retry): a node restarting is
        # waited for, none answering fails within the window of NoneAnswered.
        layout_retry = retry(Retry, settings, settings.retries, tuple(RETRY_ON))
        return layout_retry.call_with_retry(made, _nothing_failed)
    cluster = made()
    # The asyncio client takes none: it builds each node (those of the URL now, those it
    # discovers later) from its connection_kwargs, which name the class; no node has made a
    # connection yet (it connects at its first command).
    kwargs = cluster.connection_kwargs
    kwargs["connection_class"] = ALIVE_ON_ANY_ANSWER[kwargs["connection_class"]]
    for node in cluster.nodes_manager.startup_nodes.values():
        node.connection_class = kwargs["connection_class"]
    return cluster


def _sentinel_master(settings: Settings, kit: _Kit) -> Any:
    """The client of the master behind the sentinels of ``settings``."""
    from ._sentinel import (  # (here: a sentinel URL's only)
        AsyncSentinel,
        AsyncSentinelConnection,
        AsyncSentinelMaster,
        AsyncSentinelSSLConnection,
        Sentinel,
        SentinelConnection,
        SentinelMaster,
        SentinelSSLConnection,
    )

    classes: tuple[Any, ...] = (
        (Sentinel, SentinelMaster, SentinelConnection, SentinelSSLConnection)
        if kit is _SYNC
        else (
            AsyncSentinel,
            AsyncSentinelMaster,
            AsyncSentinelConnection,
            AsyncSentinelSSLConnection,
        )
    )
    sentinel_class, master, connection, ssl_connection = classes
    check_sentinel_service(settings)
    shared = common(settings)
    # As many connections to each sentinel as to the master: every new connection to the
    # master asks a sentinel first, as many at once as calls open them.
    asked = {k: v for k, v in shared.items() if k.startswith(("ssl", "socket"))}
    asked.update(pool_options(settings))
    # A sentinel answers at once (nothing it does waits, unlike a strict write): its reply is
    # waited for as long as a connection, so that sentinels that take connections and never
    # answer, asked one after another, fail a request within seconds, not socket_timeouts.
    asked["socket_timeout"] = min(settings.socket_timeout, settings.connect_timeout)
    # Each sentinel asked once per lookup: the request's retry is the one that retries (a
    # sentinel client's own default retried up to 10 times before redis-py 8.2, with backoff).
    asked["retry"] = kit.retry(backoff(), 0, supported_errors=tuple(RETRY_ON))
    sentinel = sentinel_class(
        list(settings.nodes),
        settings=settings,
        sentinel_kwargs=asked,
        retry=retry(kit.retry, settings, settings.retries, tuple(RETRY_ON)),
        health_check_interval=settings.health_check_interval,
        **{k: v for k, v in shared.items() if k != "ssl"},  # the class says TLS
    )
    assert settings.service_name is not None
    return sentinel.master_for(
        settings.service_name,
        db=settings.db,
        redis_class=master,
        connection_class=ssl_connection if settings.ssl else connection,
    )


def sync_client(settings: Settings) -> SyncClient:
    """A connected-on-demand synchronous client for ``settings``."""
    client: SyncClient = _client(settings, _SYNC)
    return client


def async_client(settings: Settings) -> AsyncClient:
    """The asyncio twin of ``sync_client``."""
    client: AsyncClient = _client(settings, _ASYNC)
    return client
