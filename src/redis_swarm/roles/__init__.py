"""The seed's API, kept: ``SwarmMemoryShard``, ``EphemeralWorker``, ``SonnetCoordinator`` and
V1's ``RedisSwarmCoordinator``, as thin wrappers over the core; plus the modern role classes
``MemoryShard``, ``Worker`` and ``Coordinator`` that return typed records.

The seed's examples and init prompts run with only their import line changed. Unlike the seed,
a claim is a lease (a worker that dies gives its task back), contexts are published atomically
and never expire under a reader, and findings are listed in one round trip.

The seed's methods return the seed's shapes, typed (``SeedTask``, ``V1Task``, ...): every key
the seed's dict had, with the seed's type (what it read back from a Redis hash is a string here
too: V1's ``priority``, ``context_capacity``, ``metadata`` as JSON, ``parent_id`` ``"none"``),
plus a few extra keys.

Every class is a context manager (``close()`` gives back what it holds), a heartbeat
registers a swept agent again, and a worker holds one task at a time: docs/seed.md.

Where each part lives: ``_modern.py`` the typed classes, ``_seed.py`` the seed's, ``_v1.py``
V1's coordinator, ``_base.py`` what they share (connecting, the seed's names and stamps).

These classes are a face, so they read ``SWARM_URL`` and ``SWARM_NAME`` when given no server.
"""

from __future__ import annotations

from ._base import SupersededFinding as SupersededFinding
from ._base import UncitedSources as UncitedSources
from ._modern import Coordinator as Coordinator
from ._modern import CoordinatorStatus as CoordinatorStatus
from ._modern import MemoryShard as MemoryShard
from ._modern import Worker as Worker
from ._seed import EphemeralWorker as EphemeralWorker
from ._seed import NoParentShard as NoParentShard
from ._seed import NoTaskClaimed as NoTaskClaimed
from ._seed import SeedFinding as SeedFinding
from ._seed import SeedSwarmStatus as SeedSwarmStatus
from ._seed import SeedTask as SeedTask
from ._seed import ShardStatus as ShardStatus
from ._seed import SonnetCoordinator as SonnetCoordinator
from ._seed import SwarmMemoryShard as SwarmMemoryShard
from ._seed import WorkerContext as WorkerContext
from ._v1 import V1_STALE_S as V1_STALE_S
from ._v1 import RedisSwarmCoordinator as RedisSwarmCoordinator
from ._v1 import V1Agent as V1Agent
from ._v1 import V1Message as V1Message
from ._v1 import V1QueueStatus as V1QueueStatus
from ._v1 import V1Task as V1Task

__all__ = [
    "Coordinator",
    "EphemeralWorker",
    "MemoryShard",
    "RedisSwarmCoordinator",
    "SonnetCoordinator",
    "SwarmMemoryShard",
    "Worker",
]
