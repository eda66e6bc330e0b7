"""``RedisTaskStore`` (the SDK's ``TaskStore``) and ``RedisVersionedTaskStore`` (its
``VersionedTaskStore``): an a2a-sdk server's tasks in a swarm's Redis.

Both store the same records, so ``RedisVersionedTaskStore.as_task_store`` is a
``RedisTaskStore`` over the very tasks (as the SDK's ``VersionedDatabaseTaskStore`` exposes
its ``DatabaseTaskStore``). Tasks are scoped by owner, resolved from the call context by the
same ``owner_resolver`` as the SDK's stores (default: the user's name).
"""

from __future__ import annotations

import uuid
from typing import Any

from a2a.server.cluster import (
    ConcurrentTaskModificationError,
    StoredTask,
    TaskVersion,
    VersionedTaskStore,
)
from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.owner_resolver import OwnerResolver, resolve_user_scope
from a2a.server.tasks import TaskStore
from a2a.types.a2a_pb2 import ListTasksRequest, ListTasksResponse, Task, TaskState
from a2a.utils.constants import DEFAULT_LIST_TASKS_PAGE_SIZE
from a2a.utils.errors import InvalidParamsError
from a2a.utils.task import (
    ListTasksCursor,
    decode_list_tasks_cursor,
    decode_page_token,
    encode_list_tasks_cursor,
)

from .. import NotFound
from ._codec import EVENTS_KEPT_S, TERMINAL, as_int, event_bytes, kept_ms, status_time_ns
from ._handle import SwarmBacked, Target

__all__ = ["RedisTaskStore", "RedisVersionedTaskStore"]


class _Tasks(SwarmBacked):
    """Reading, listing and deleting, the same for both stores."""

    def __init__(self, target: Target, swarm: str | None, owner_resolver: OwnerResolver) -> None:
        super().__init__(target, swarm)
        self.owner_resolver = owner_resolver

    async def _write(self, task: Task, context: ServerCallContext, **how: Any) -> int | None:
        """Save ``task`` for the caller, ``how`` saying which way (see ``a2a_save``)."""
        return await self.swarm.a2a_save(
            self.owner_resolver(context),
            task.id,
            task.SerializeToString(),
            context_id=task.context_id,
            state=int(task.status.state),
            timestamp_ns=status_time_ns(task),
            **how,
        )

    async def _get(self, task_id: str, context: ServerCallContext) -> StoredTask | None:
        stored = await self.swarm.a2a_get(self.owner_resolver(context), task_id)
        if stored is None:
            return None
        return StoredTask(Task.FromString(stored.data), TaskVersion(stored.version))

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        """The caller's tasks, newest status time first, filtered and paged as the SDK's
        stores do (one round trip per page)."""
        page_size = params.page_size or DEFAULT_LIST_TASKS_PAGE_SIZE
        after: tuple[int | None, str] | None = None
        start_id: str | None = None
        if params.page_token:
            cursor = decode_list_tasks_cursor(params.page_token)
            if cursor is None:  # a legacy token: the id of the page's first task
                start_id = decode_page_token(params.page_token)
                if not start_id:
                    raise InvalidParamsError(f"Invalid page token: {params.page_token}")
            else:
                after = (cursor.timestamp_ns, cursor.task_id)
        since = (
            int(params.status_timestamp_after.ToNanoseconds())
            if params.HasField("status_timestamp_after")
            else None
        )
        try:
            page = await self.swarm.a2a_list(
                self.owner_resolver(context),
                page_size=page_size,
                context_id=params.context_id,
                state=int(params.status),
                timestamp_after_ns=since,
                after=after,
                start_id=start_id,
            )
        except NotFound:
            raise InvalidParamsError(f"Invalid page token: {params.page_token}") from None
        following = None
        if page.next is not None:
            timestamp_ns, task_id = page.next
            following = encode_list_tasks_cursor(ListTasksCursor(timestamp_ns, task_id))
        return ListTasksResponse(
            tasks=[Task.FromString(data) for data in page.tasks],
            total_size=page.total,
            next_page_token=following,
            page_size=page_size,
        )

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        """Delete one of the caller's tasks, with its version and its event stream."""
        await self.swarm.a2a_delete(self.owner_resolver(context), task_id)


class RedisTaskStore(_Tasks, TaskStore):
    """The a2a-sdk ``TaskStore`` on Redis, for a server of one replica.

    ``target``: an ``AsyncSwarm``, or the URL / ``Settings`` to make one (with ``swarm``, its
    name; closed by ``aclose``). ``owner_resolver``: the owner scope of a call context, as
    for the SDK's stores.
    """

    def __init__(
        self,
        target: Target = None,
        *,
        swarm: str | None = None,
        owner_resolver: OwnerResolver = resolve_user_scope,
    ) -> None:
        super().__init__(target, swarm, owner_resolver)

    async def save(self, task: Task, context: ServerCallContext) -> None:
        """Save or overwrite a task of the caller (its version, if any, stays)."""
        await self._write(task, context, mode="plain")

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        """A task of the caller, or None."""
        stored = await self._get(task_id, context)
        return None if stored is None else stored.task


class RedisVersionedTaskStore(_Tasks, VersionedTaskStore):
    """The a2a-sdk ``VersionedTaskStore`` on Redis, for servers of several replicas: each
    save compares and sets the task's version in one script, and appends its event to the
    task's stream in the same step (read them with ``RedisTaskEventStream`` on the same
    swarm).

    ``events_kept_s``: how long a task's event stream is kept once the task is finished
    (None: until the task is deleted or the stream destroyed). Otherwise as
    ``RedisTaskStore``.
    """

    def __init__(
        self,
        target: Target = None,
        *,
        swarm: str | None = None,
        owner_resolver: OwnerResolver = resolve_user_scope,
        events_kept_s: float | None = EVENTS_KEPT_S,
    ) -> None:
        super().__init__(target, swarm, owner_resolver)
        self._events_ttl_ms = kept_ms(events_kept_s)

    @property
    def as_task_store(self) -> TaskStore:
        """A ``RedisTaskStore`` over the same tasks (unversioned saves)."""
        return RedisTaskStore(self.swarm, owner_resolver=self.owner_resolver)

    async def save(
        self,
        task: Task,
        *,
        event: Event | None = None,
        prev: Task | None = None,
        prev_version: TaskVersion,
        context: ServerCallContext,
    ) -> TaskVersion:
        """Save ``task`` if the stored version is still ``prev_version`` (MISSING: a first
        write), and return its new version; else raise ConcurrentTaskModificationError. A
        save moving the task to CANCELED overwrites it whatever its version, unless it is
        finished or absent (then ConcurrentTaskModificationError). ``event`` joins the
        task's event stream under the new version, in the same step."""
        del prev  # the whole task is stored: nothing to diff
        cancel = task.status.state == TaskState.TASK_STATE_CANCELED
        version = await self._write(
            task,
            context,
            mode="cancel" if cancel else "check",
            expected_version=0 if cancel else as_int(prev_version),
            write_id=uuid.uuid4().hex,
            event=event_bytes(event),
            terminal_states=TERMINAL,
            events_ttl_ms=self._events_ttl_ms,
        )
        if version is None:
            raise ConcurrentTaskModificationError(task.id)
        return TaskVersion(version)

    async def get(self, task_id: str, context: ServerCallContext) -> StoredTask | None:
        """A task of the caller with its version (MISSING if only plain saves wrote it)."""
        return await self._get(task_id, context)
