"""What the stores tell the core about a2a-sdk objects: protobuf bytes, and the few facts a
listing filters and sorts on; versions as the integers the core counts."""

from __future__ import annotations

from a2a.server.agent_execution.active_task import TERMINAL_TASK_STATES
from a2a.server.cluster import TaskVersion
from a2a.server.events.event_queue import Event
from a2a.types.a2a_pb2 import StreamResponse, Task, TaskStatusUpdateEvent
from a2a.utils.proto_utils import to_stream_response

# The states a task ends in (the CANCELED rule of VersionedTaskStore.save refuses them).
TERMINAL = tuple(sorted(int(state) for state in TERMINAL_TASK_STATES))

# How long a finished task's event stream is kept: long enough for the replicas tailing it to
# read its last events (the SDK refuses new subscriptions to a finished task).
EVENTS_KEPT_S = 3600.0


def kept_ms(events_kept_s: float | None) -> int:
    """``events_kept_s`` as the scripts take it: ms, 0 for None (kept until deleted)."""
    return 0 if events_kept_s is None else max(1, int(events_kept_s * 1000))


def is_last(event: Event) -> bool:
    """Whether ``event`` finishes its task (a status or task in a terminal state)."""
    return isinstance(event, Task | TaskStatusUpdateEvent) and event.status.state in TERMINAL


def status_time_ns(task: Task) -> int | None:
    """The task's status time in ns, the ListTasks sort key (None: it has none)."""
    if task.HasField("status") and task.status.HasField("timestamp"):
        return int(task.status.timestamp.ToNanoseconds())
    return None


def as_int(version: TaskVersion) -> int:
    """The integer a version wraps (0 for MISSING). The SDK gives versions no accessor; its
    own database backends read the value the same way."""
    value = version._value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"the Redis a2a stores require integer versions, got {type(value).__name__}"
        )
    return value


def event_bytes(event: Event | None) -> bytes:
    """An event as the SDK frames it on the wire (a StreamResponse); b"" for None."""
    return b"" if event is None else to_stream_response(event).SerializeToString()


def event_of(data: bytes) -> Event:
    """The event framed by ``event_bytes``."""
    response = StreamResponse.FromString(data)
    which = response.WhichOneof("payload")
    if which is None:
        raise ValueError("a stored a2a event holds no payload")
    event: Event = getattr(response, which)
    return event
