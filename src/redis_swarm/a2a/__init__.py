"""Redis stores for a2a-sdk servers: the tasks and task events of an Agent2Agent server kept
in a swarm's Redis, so that several replicas of the server share them.

- ``RedisTaskStore``: the SDK's ``TaskStore``, for a server of one replica.
- ``RedisVersionedTaskStore``: the SDK's ``VersionedTaskStore`` (a compare-and-set on a
  version per task, one server-side script), for servers of several replicas.
- ``RedisTaskEventStream``: the SDK's ``TaskEventStream``: a Redis stream per task, so that a
  replica that subscribes after a version misses nothing, and ``destroy`` frees it.

They behave as the SDK's database backends do (``DatabaseTaskStore``,
``VersionedDatabaseTaskStore``, ``DatabaseTaskEventStream``): the same owner scope, listing
filters, order and page tokens. Each takes an ``AsyncSwarm`` or what makes one (a URL or
``Settings``, and a swarm name), so Cluster, Sentinel, TLS and ACL users work as everywhere
in redis-swarm. Needs the ``a2a`` extra (``pip install 'redis-swarm[a2a]'``). See docs/a2a.md.
"""

from __future__ import annotations

from .._extras import extra_missing

try:
    from ._event_stream import RedisTaskEventStream
    from ._task_store import RedisTaskStore, RedisVersionedTaskStore
except ModuleNotFoundError as exc:  # a module of the extra (a2a-sdk, ...) is not installed
    said = extra_missing(exc, "redis_swarm.a2a", "a2a")
    if said is None:
        raise
    raise said from exc

__all__ = ["RedisTaskEventStream", "RedisTaskStore", "RedisVersionedTaskStore"]
