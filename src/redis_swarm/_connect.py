"""Build the right redis-py client for a Settings: standalone, unix, TLS, cluster, sentinel.

Every client retries connection errors and socket timeouts with exponential backoff and
jitter, and checks idle connections before use. Operations are written to be safe to retry
(client-generated ids, idempotent scripts), so a retried command after a lost reply never
applies twice.
"""

from __future__ import annotations

import ssl as _ssl
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from ._config import Settings

__all__ = ["async_client", "sync_client"]

SyncClient = redis.Redis | RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

_RETRY_ON = [redis.ConnectionError, redis.TimeoutError]
_CERT_REQS = {
    "required": _ssl.CERT_REQUIRED,
    "optional": _ssl.CERT_OPTIONAL,
    "none": _ssl.CERT_NONE,
}


def _backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(base=0.05, cap=2.0)


def _common(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.connect_timeout,
        "username": settings.username,
        "password": settings.password,
    }
    if settings.ssl:
        kwargs.update(
            ssl=True,
            ssl_ca_certs=settings.ssl_ca_certs,
            ssl_certfile=settings.ssl_certfile,
            ssl_keyfile=settings.ssl_keyfile,
            ssl_cert_reqs=_CERT_REQS[settings.ssl_cert_reqs],
            ssl_check_hostname=settings.ssl_cert_reqs == "required",
        )
    return kwargs


def _socket_path(settings: Settings) -> str:
    if settings.kind == "embedded":
        from ._embedded import EmbeddedServer

        return EmbeddedServer(settings.home, durability=settings.durability).ensure_running()
    assert settings.path is not None
    return settings.path


def sync_client(settings: Settings) -> SyncClient:
    """A connected-on-demand synchronous client for ``settings``."""
    retry = Retry(_backoff(), settings.retries, supported_errors=tuple(_RETRY_ON))
    common = _common(settings)
    if settings.kind in ("embedded", "unix"):
        return redis.Redis(
            unix_socket_path=_socket_path(settings),
            db=settings.db,
            retry=retry,
            health_check_interval=settings.health_check_interval,
            socket_timeout=settings.socket_timeout,
            socket_connect_timeout=settings.connect_timeout,
            username=settings.username,
            password=settings.password,
        )
    if settings.kind == "cluster":
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in settings.nodes],  # type: ignore[no-untyped-call]
            retry=retry,
            health_check_interval=settings.health_check_interval,
            **common,
        )
    if settings.kind == "sentinel":
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(settings.nodes),
            sentinel_kwargs={k: v for k, v in common.items() if k.startswith(("ssl", "socket"))},
            retry=retry,
            health_check_interval=settings.health_check_interval,
            **common,
        )
        assert settings.service_name is not None
        master: Any = sentinel.master_for(settings.service_name, db=settings.db)  # type: ignore[no-untyped-call]
        return master  # type: ignore[no-any-return]
    return redis.Redis(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        retry=retry,
        health_check_interval=settings.health_check_interval,
        **common,
    )


def async_client(settings: Settings) -> AsyncClient:
    """The asyncio twin of ``sync_client``."""
    retry = redis.asyncio.retry.Retry(
        _backoff(), settings.retries, supported_errors=tuple(_RETRY_ON)
    )
    common = _common(settings)
    if settings.kind in ("embedded", "unix"):
        return redis.asyncio.Redis(
            unix_socket_path=_socket_path(settings),
            db=settings.db,
            retry=retry,
            health_check_interval=settings.health_check_interval,
            socket_timeout=settings.socket_timeout,
            socket_connect_timeout=settings.connect_timeout,
            username=settings.username,
            password=settings.password,
        )
    if settings.kind == "cluster":
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in settings.nodes],
            retry=retry,
            health_check_interval=settings.health_check_interval,
            **common,
        )
    if settings.kind == "sentinel":
        sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(settings.nodes),
            sentinel_kwargs={k: v for k, v in common.items() if k.startswith(("ssl", "socket"))},
            retry=retry,
            health_check_interval=settings.health_check_interval,
            **common,
        )
        assert settings.service_name is not None
        master: Any = sentinel.master_for(settings.service_name, db=settings.db)
        return master  # type: ignore[no-any-return]
    return redis.asyncio.Redis(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        retry=retry,
        health_check_interval=settings.health_check_interval,
        **common,
    )
