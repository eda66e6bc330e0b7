"""redis-swarm: a shared memory and work bus for fleets of AI agents, built on Redis."""

from __future__ import annotations

from ._cache import ContextCache
from ._client import AsyncSwarm, Swarm
from ._config import Settings
from ._errors import (
    AlreadyCompleted,
    ConfigError,
    Conflict,
    ConnectionFailed,
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
    ContextInfo,
    ContextSlice,
    Event,
    EventType,
    Finding,
    Message,
    Page,
    SearchHit,
    Synthesis,
    Task,
    TaskSpec,
    TaskStatus,
)
from ._protocol import Limits
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
    "Agent",
    "AlreadyCompleted",
    "AsyncSwarm",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "ContextCache",
    "ContextInfo",
    "ContextSlice",
    "Coordinator",
    "EmbeddedServerError",
    "EphemeralWorker",
    "Event",
    "EventType",
    "Finding",
    "InvalidState",
    "LeaseLost",
    "Limits",
    "MemoryShard",
    "Message",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "PermissionDenied",
    "RedisSwarmCoordinator",
    "SearchHit",
    "Settings",
    "SonnetCoordinator",
    "Swarm",
    "SwarmError",
    "SwarmMemoryShard",
    "Synthesis",
    "Task",
    "TaskSpec",
    "TaskStatus",
    "Timeout",
    "ValidationError",
    "Worker",
    "__version__",
]
