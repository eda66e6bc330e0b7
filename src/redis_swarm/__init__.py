"""redis-swarm: a shared memory and work bus for fleets of AI agents, built on Redis.

The layers, bottom up (docs/architecture.md draws them and says where each change goes)::

    records, errors   _models, _usage, _context_records, _codec, _errors, _config, _validate
    keys, scripts     _keys, lua/ + _scripts, _ops/_commands (what each operation sends)
    operations        _ops/: I/O-free generators (_protocol), one per call of the API
    shells            _client: Swarm and AsyncSwarm drive the same operations
    transport         _transport, _connect (+ _retries, _connections, _sentinel, _cluster,
                      _direct), _durability, _strict_cluster, _embedded
    faces             cli/, mcp_server/, dashboard/, _runner/, roles/ (the seed's API)
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from ._config import Settings
from ._context_records import ContextInfo, ContextSlice, GcReport, GrepLine, SearchHit
from ._errors import (
    AlreadyCompleted,
    BroadcastsTrimmed,
    ConfigError,
    Conflict,
    ConnectionFailed,
    CorruptRecord,
    EmbeddedServerError,
    InvalidState,
    LeaseLost,
    LibraryReplaced,
    NotFound,
    PartlyApplied,
    PayloadTooLarge,
    PermissionDenied,
    SwarmError,
    TaskDataDamaged,
    TaskDeadLettered,
    Timeout,
    TlsNotVerified,
    ValidationError,
)
from ._models import (
    Agent,
    AgentCounts,
    Answer,
    Event,
    EventsTrimmed,
    EventType,
    Finding,
    Inbox,
    IndexEntries,
    Message,
    MessageStatus,
    Page,
    PassCosts,
    PassProgress,
    Recent,
    RecordDamage,
    RetiredAsk,
    RetiredPass,
    RetiredQuestions,
    SwarmStatus,
    Synthesis,
    Task,
    TaskCosts,
    TaskSpec,
    TaskStatus,
    UnrecordedRun,
    Webhook,
)
from ._usage import Money, Usage

if _typing.TYPE_CHECKING:
    from ._acl_apply import AppliedRole, apply_role
    from ._acl_revoke import RevokedUser, revoke_user
    from ._cache import ContextCache
    from ._client import AsyncSwarm, Swarm
    from ._ops.bulk import CancelledTasks, RequeuedTasks
    from ._ops.counters import CounterCheck, Recounted
    from ._ops.server import ServerInfo
    from ._ops.tasks import ShardStats
    from ._protocol import Limits
    from ._topology import ClusterView, SentinelView, Topology, topology
    from ._validate import MAX_PAGE  # the most items one page of a listing holds (its limit)
    from .roles import (
        Coordinator,
        EphemeralWorker,
        MemoryShard,
        RedisSwarmCoordinator,
        SonnetCoordinator,
        SwarmMemoryShard,
        Worker,
    )

# The names above under TYPE_CHECKING are imported on first use (PEP 562), each from its module
# here: they reach redis-py, whose own import loads its asyncio client and, where OpenTelemetry
# is installed, its metrics (a quarter of a second). The records and errors, which pull nothing
# but the standard library, are imported at once. A command that never reaches Redis (`swarm
# hooks install`, `swarm task --help`) and a program that only needs a record so never pay for
# it, and `swarm hook` pays for no more than it sends (tests/test_import_cost.py).
_LAZY_FROM: dict[str, str] = {
    **dict.fromkeys(("AppliedRole", "apply_role"), "._acl_apply"),
    **dict.fromkeys(("RevokedUser", "revoke_user"), "._acl_revoke"),
    "ContextCache": "._cache",
    **dict.fromkeys(("AsyncSwarm", "Swarm"), "._client"),
    "MAX_PAGE": "._validate",
    "Limits": "._protocol",
    # The results of operations defined beside them (doctor's checks, shard_stats, the bulk
    # cancel and requeue).
    **dict.fromkeys(("CancelledTasks", "RequeuedTasks"), "._ops.bulk"),
    **dict.fromkeys(("CounterCheck", "Recounted"), "._ops.counters"),
    "ServerInfo": "._ops.server",
    "ShardStats": "._ops.tasks",
    **dict.fromkeys(("ClusterView", "SentinelView", "Topology", "topology"), "._topology"),
    **dict.fromkeys(
        (
            "Coordinator",
            "EphemeralWorker",
            "MemoryShard",
            "RedisSwarmCoordinator",
            "SonnetCoordinator",
            "SwarmMemoryShard",
            "Worker",
        ),
        ".roles",
    ),
}

if not _typing.TYPE_CHECKING:  # (to the type checker, an unknown name stays an error)

    def __getattr__(name: str) -> object:
        module = _LAZY_FROM.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(module, __name__), name)
        globals()[name] = value  # bound now: the next use is a plain lookup
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__version__ = "0.1.0"

__all__ = [
    "MAX_PAGE",
    "Agent",
    "AgentCounts",
    "AlreadyCompleted",
    "Answer",
    "AppliedRole",
    "AsyncSwarm",
    "BroadcastsTrimmed",
    "CancelledTasks",
    "ClusterView",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "ContextCache",
    "ContextInfo",
    "ContextSlice",
    "Coordinator",
    "CorruptRecord",
    "CounterCheck",
    "EmbeddedServerError",
    "EphemeralWorker",
    "Event",
    "EventType",
    "EventsTrimmed",
    "Finding",
    "GcReport",
    "GrepLine",
    "Inbox",
    "IndexEntries",
    "InvalidState",
    "LeaseLost",
    "LibraryReplaced",
    "Limits",
    "MemoryShard",
    "Message",
    "MessageStatus",
    "Money",
    "NotFound",
    "Page",
    "PartlyApplied",
    "PassCosts",
    "PassProgress",
    "PayloadTooLarge",
    "PermissionDenied",
    "Recent",
    "RecordDamage",
    "Recounted",
    "RedisSwarmCoordinator",
    "RequeuedTasks",
    "RetiredAsk",
    "RetiredPass",
    "RetiredQuestions",
    "RevokedUser",
    "SearchHit",
    "SentinelView",
    "ServerInfo",
    "Settings",
    "ShardStats",
    "SonnetCoordinator",
    "Swarm",
    "SwarmError",
    "SwarmMemoryShard",
    "SwarmStatus",
    "Synthesis",
    "Task",
    "TaskCosts",
    "TaskDataDamaged",
    "TaskDeadLettered",
    "TaskSpec",
    "TaskStatus",
    "Timeout",
    "TlsNotVerified",
    "Topology",
    "UnrecordedRun",
    "Usage",
    "ValidationError",
    "Webhook",
    "Worker",
    "__version__",
    "apply_role",
    "revoke_user",
    "topology",
]
