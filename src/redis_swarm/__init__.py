"""redis-swarm: a shared memory and work bus for fleets of AI agents, built on Redis.

The layers, bottom up (docs/architecture.md draws them and says where each change goes)::

    records, errors   _models, _errors, _config, _validate
    keys, scripts     _keys, lua/ + _scripts, _ops/_commands (what each operation sends)
    operations        _ops/: I/O-free generators (_protocol), one per call of the API
    shells            _client: Swarm and AsyncSwarm drive the same operations
    transport         _transport, _connect, _durability, _strict_cluster, _embedded
    faces             cli/, mcp_server/, dashboard/, _runner/, roles/ (the seed's API)
"""

from __future__ import annotations

from ._acl_apply import AppliedRole, apply_role
from ._cache import ContextCache
from ._client import AsyncSwarm, Swarm
from ._config import Settings
from ._errors import (
    AlreadyCompleted,
    ConfigError,
    Conflict,
    ConnectionFailed,
    CorruptRecord,
    EmbeddedServerError,
    InvalidState,
    LeaseLost,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    SwarmError,
    Timeout,
    ValidationError,
)
from ._models import (
    Agent,
    AgentCounts,
    Answer,
    ContextInfo,
    ContextSlice,
    Event,
    EventType,
    Finding,
    GcReport,
    GrepLine,
    Inbox,
    Message,
    MessageStatus,
    Money,
    Page,
    PassProgress,
    Recent,
    SearchHit,
    SwarmStatus,
    Synthesis,
    Task,
    TaskCosts,
    TaskSpec,
    TaskStatus,
    Usage,
    Webhook,
)
from ._ops._work import MAX_PAGE  # the most items one page of a listing holds (its limit)
from ._protocol import Limits
from ._topology import ClusterView, SentinelView, Topology, topology
from .roles import (
    Coordinator,
    EphemeralWorker,
    MemoryShard,
    RedisSwarmCoordinator,
    SonnetCoordinator,
    SwarmMemoryShard,
    Worker,
)

__version__ = "0.1.0"

__all__ = [
    "MAX_PAGE",
    "Agent",
    "AgentCounts",
    "AlreadyCompleted",
    "Answer",
    "AppliedRole",
    "AsyncSwarm",
    "ClusterView",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "ContextCache",
    "ContextInfo",
    "ContextSlice",
    "Coordinator",
    "CorruptRecord",
    "EmbeddedServerError",
    "EphemeralWorker",
    "Event",
    "EventType",
    "Finding",
    "GcReport",
    "GrepLine",
    "Inbox",
    "InvalidState",
    "LeaseLost",
    "Limits",
    "MemoryShard",
    "Message",
    "MessageStatus",
    "Money",
    "NotFound",
    "Page",
    "PassProgress",
    "PayloadTooLarge",
    "PermissionDenied",
    "Recent",
    "RedisSwarmCoordinator",
    "SearchHit",
    "SentinelView",
    "Settings",
    "SonnetCoordinator",
    "Swarm",
    "SwarmError",
    "SwarmMemoryShard",
    "SwarmStatus",
    "Synthesis",
    "Task",
    "TaskCosts",
    "TaskSpec",
    "TaskStatus",
    "Timeout",
    "Topology",
    "Usage",
    "ValidationError",
    "Webhook",
    "Worker",
    "__version__",
    "apply_role",
    "topology",
]
