"""The per-role Redis users a test makes on its private server, as `swarm acl --apply`
makes them: one place for the URLs the ACL tests connect with."""

from __future__ import annotations

from collections.abc import Iterable

from redis_swarm import Settings, apply_role

from ._servers import RedisServer


def role_urls(
    server: RedisServer, swarm: str, prefix: str, roles: Iterable[str] = ("worker", "shard")
) -> dict[str, str]:
    """Role -> the URL of a user of that role in ``swarm`` (named ``PREFIX-ROLE``), made on
    ``server`` (a TCP one)."""
    out = {}
    for role in roles:
        made = apply_role(Settings.from_url(server.url, swarm=swarm), role, f"{prefix}-{role}")
        out[role] = f"redis://{made.user.user}:{made.user.password}@127.0.0.1:{server.port}"
    return out
