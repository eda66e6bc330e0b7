"""``RedisTaskEventStream``: the a2a-sdk ``TaskEventStream`` on Redis, one stream per task.

Entries are keyed by the task version their event produced, so ``subscribe(after=N)`` reads
on from version N and misses nothing, then waits (a blocking read) for what comes next.
``RedisVersionedTaskStore`` appends each event with the save that produced it (atomically,
like the SDK's database store); ``publish`` then finds it there and adds nothing, and adds
what another store saved. ``destroy`` deletes the task's stream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from a2a.server.cluster import TaskEventStream, TaskVersion, VersionedEvent

from ._codec import as_int, event_bytes, event_of
from ._handle import SwarmBacked, Target

__all__ = ["RedisTaskEventStream"]

# How long one blocking read waits before the subscription reads again (no event is missed
# between two reads: each starts after the last entry seen).
BLOCK_S = 5.0


class RedisTaskEventStream(SwarmBacked, TaskEventStream):
    """Task events across the replicas of an a2a-sdk server, in Redis streams.

    ``target``: an ``AsyncSwarm``, or the URL / ``Settings`` to make one (with ``swarm``, its
    name; closed by ``aclose``): the same swarm as the task store's. ``block_s``: how long
    each blocking read of a subscription waits.
    """

    def __init__(
        self, target: Target = None, *, swarm: str | None = None, block_s: float = BLOCK_S
    ) -> None:
        super().__init__(target, swarm)
        self._block_s = block_s

    async def publish(self, task_id: str, event: VersionedEvent) -> None:
        """Add an event to the task's stream, unless its version is there already."""
        await self.swarm.a2a_publish(task_id, as_int(event.version), event_bytes(event.event))

    async def subscribe(
        self, task_id: str, *, after: TaskVersion
    ) -> AsyncGenerator[VersionedEvent, None]:
        """Yield the task's events newer than ``after``, in order, then each as it comes;
        it never ends by itself (close it, as the SDK does, when the task is done)."""
        cursor: int | str = as_int(after)
        while True:
            for item in await self.swarm.a2a_events(task_id, cursor, self._block_s):
                cursor = item.cursor
                version = TaskVersion(item.version)
                if version.is_after(after):
                    yield VersionedEvent(event=event_of(item.data), version=version)

    async def destroy(self, task_id: str) -> None:
        """Delete the task's stream (a finished task's; its subscribers just wait on)."""
        await self.swarm.a2a_destroy(task_id)
