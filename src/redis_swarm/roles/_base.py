"""What every role class shares: connecting from the seed's keywords, a URL or the
environment; the seed's agent names and ``queue:X`` names; its time stamps."""

from __future__ import annotations

import os
import secrets
from urllib.parse import quote

from .._client import Swarm
from .._config import DEFAULT_HOME, Settings, swarm_from_env
from .._models import iso

_QUEUE_PREFIX = "queue:"


def _connect(
    *,
    url: str | None,
    swarm: str | None,
    redis_host: str | None,
    redis_port: int | None,
    redis_db: int = 0,
    redis_password: str | None = None,
    redis_ssl: bool = False,
    redis_username: str | None = None,
) -> Swarm:
    """A Swarm from the seed's keyword arguments, a URL, or the environment."""
    name = swarm or swarm_from_env(os.environ.get("SWARM_NAME"))
    if url is None and redis_host is None and redis_port is None:
        home = os.environ.get("SWARM_HOME") or str(DEFAULT_HOME)
        settings = Settings.from_url(
            os.environ.get("SWARM_URL") or "embedded", swarm=name, home=home
        )
        return Swarm(settings)
    if url is None:
        auth = ""
        if redis_password is not None or redis_username is not None:
            auth = quote(redis_username or "", safe="")
            if redis_password is not None:
                auth += ":" + quote(redis_password, safe="")
            auth += "@"
        scheme = "rediss" if redis_ssl else "redis"
        url = f"{scheme}://{auth}{redis_host or 'localhost'}:{redis_port or 6379}/{redis_db}"
    return Swarm(Settings.from_url(url, swarm=name))


def _agent_name(prefix: str, label: str | None = None) -> str:
    """``memory_research_1a2b3c4d``: the seed's id shape, reduced to characters keys allow."""
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in (label or ""))
    middle = f"_{cleaned[:40]}" if cleaned else ""
    return f"{prefix}{middle}_{secrets.token_hex(4)}"


def _queue(name: str) -> str:
    """The seed named queues ``queue:X``; the queue here is ``X``."""
    return name[len(_QUEUE_PREFIX) :] if name.startswith(_QUEUE_PREFIX) else name


def _stamp(ms: int | None) -> str:
    """A time as the seed showed it (ISO-8601; empty when unknown)."""
    return iso(ms) or ""


class _Role:
    """Shared construction: the seed's keywords, or ``url=``, or nothing (environment)."""

    def __init__(
        self,
        redis_host: str | None = None,
        redis_port: int | None = None,
        *,
        redis_password: str | None = None,
        redis_ssl: bool = False,
        redis_db: int = 0,
        redis_username: str | None = None,
        url: str | None = None,
        swarm: str | Swarm | None = None,
    ) -> None:
        if isinstance(swarm, Swarm):
            self.swarm = swarm
        else:
            self.swarm = _connect(
                url=url,
                swarm=swarm,
                redis_host=redis_host,
                redis_port=redis_port,
                redis_db=redis_db,
                redis_password=redis_password,
                redis_ssl=redis_ssl,
                redis_username=redis_username,
            )

    def close(self) -> None:
        self.swarm.close()
