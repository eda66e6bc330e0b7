"""``RedisTaskEventStream``: the a2a-sdk ``TaskEventStream`` on Redis, one stream per task.

Entries are keyed by the task version their event produced, so ``subscribe(after=N)`` reads
on from version N and misses nothing, then waits (a blocking read) for what comes next.
``RedisVersionedTaskStore`` appends each event with the save that produced it (atomically,
like the SDK's database store); ``publish`` then finds it there and adds nothing, and adds
what another versioned store saved. A finished task's stream expires; ``destroy`` deletes it
at once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from a2a.server.cluster import TaskEventStream, TaskVersion, VersionedEvent

from .._client import raise_if_cancelled
from ._codec import EVENTS_KEPT_S, as_int, event_bytes, event_of, is_last, kept_ms
from ._handle import SwarmBacked, Target

__all__ = ["RedisTaskEventStream"]

# How long one blocking read waits before the subscription reads again (no event is missed
# between two reads: each starts after the last entry seen).
BLOCK_S = 5.0


class RedisTaskEventStream(SwarmBacked, TaskEventStream):
    """Task events across the replicas of an a2a-sdk server, in Redis streams.

    ``target``: an ``AsyncSwarm``, or the URL / ``Settings`` to make one (with ``swarm``, its
    name; closed by ``aclose``): the same swarm as the task store's. ``block_s``: how long
    each blocking read of a subscription waits. ``events_kept_s``: how long a task's stream
    is kept after its last event is published (None: until destroyed).
    """

    def __init__(
        self,
        target: Target = None,
        *,
        swarm: str | None = None,
        block_s: float = BLOCK_S,
        events_kept_s: float | None = EVENTS_KEPT_S,
    ) -> None:
        super().__init__(target, swarm)
        self._block_s = block_s
        self._kept_ms = kept_ms(events_kept_s)

    async def publish(self, task_id: str, event: VersionedEvent) -> None:
        """Add an event to the task's stream, unless its version is there already. An event
        without a version (a message-only reply; a store that does not version) stays on its
        replica, as with the SDK's database stream: it would open a stream no save closes."""
        if event.version.is_missing:
            return
        await self.swarm.a2a_publish(
            task_id,
            as_int(event.version),
            event_bytes(event.event),
            self._kept_ms if is_last(event.event) else 0,
        )

    async def subscribe(
        self, task_id: str, *, after: TaskVersion
    ) -> AsyncGenerator[VersionedEvent, None]:
        """Yield the task's events newer than ``after``, in order, then each as it comes;
        it never ends by itself (close it, as the SDK does, when the task is done)."""
        cursor: int | str = as_int(after)
        while True:
            # A subscriber whose task was cancelled stops even when the cancellation was lost
            # in a read that ended as it came (Python 3.11's wait_for, inside redis-py).
            raise_if_cancelled()
            for item in await self.swarm.a2a_events(task_id, cursor, self._block_s):
                cursor = item.cursor
                version = TaskVersion(item.version)
                if version.is_after(after):
                    yield VersionedEvent(event=event_of(item.data), version=version)

    async def destroy(self, task_id: str) -> None:
        """Delete the task's stream (a finished task's; its subscribers just wait on)."""
        await self.swarm.a2a_destroy(task_id)
