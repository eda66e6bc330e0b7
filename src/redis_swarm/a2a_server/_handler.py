"""The A2A request handler of ``swarm a2a``: each method calls the swarm's public operations.

The SDK's routes (JSON-RPC and HTTP+JSON) parse the requests and serialise the answers, so
the wire formats are the SDK's; this class only says what each A2A method means for a swarm:

- ``SendMessage`` posts a task to the skill's queue (``_convert.posting``); the task's id is
  the A2A task id, made from the message's id (``_convert.task_id_of``), the message's
  context id its pass. A retry (same message id) gets the task posted first, by its
  dedupe key in its queue or by its id: one of another skill is refused, as another
  message under a used id. (A post the core refuses as another task under a taken id,
  Conflict, a retry whose text changed, has the stored task read: one read, on that path
  only.) Unless the client asked to return immediately, it waits (up to ``wait_s``) for the
  task to settle and returns it as it is.
- ``SendStreamingMessage`` and ``SubscribeToTask`` send the task, then its status and
  artifact updates as the event stream records them, until it settles. The stream position
  is pinned before the task is read, so nothing between the two is missed. Each update
  carries its position (``_resume``: the SSE id); a ``SubscribeToTask`` with a
  ``Last-Event-ID`` sends what followed it, and only that.
- ``GetTask``, ``ListTasks``, ``CancelTask`` are ``get_task``, ``list_tasks`` (newest
  first), ``cancel``. A context id that is the id of a task posted without a pass (its
  context of its own, ``_convert.context_of``) lists that task alone, and a ``SendMessage``
  carrying a task's id as its context id is refused: it would start a pass of that name,
  which no ``ListTasks`` of the context lists.
- The push notification config methods keep webhooks in the swarm (``set_webhook`` ...);
  ``_push`` delivers to them. A config given with a message is checked whole (the swarm's
  rules, ``Swarm.check_webhook``) before the message's task is posted: one refused after
  the post left the task posted, and run, for a client told its message was refused. A
  config for a settled task is refused (UnsupportedOperation,
  as SubscribeToTask refuses one: A2A keeps a config "until task completion", so it would
  never fire; GetTask returns the task); one given with a message whose task has settled
  (a retry) is not stored either, by the same rule (``_no_webhook_for``), the task returned
  with why in its metadata (``PUSH_NOT_STORED_KEY``). Like a webhook given with a message, a
  new one gets the task's events from the moment it was asked for, the server catching up
  on those the stream's follower passed before it was stored: a task that settles meanwhile
  still delivers its final state, and its webhook is removed. No answer carries a webhook's
  secrets (its ``token``, its ``authentication.credentials``: both optional in A2A; those
  its ``url`` carries, a user and password or a ``?token=``, ``?api_key=``, ``?sig=``, are
  shown as ``***``: ``shown_webhook_url``): every client holding this server's token is one
  identity, so one client's List or Get of a task's configs would hand another's webhook
  secrets over. They are kept, and posted.

Only tasks of the exposed queues are visible: another queue's task is "not found". The
swarm's errors reach the client in A2A words (``_words``); what only the server's operator
can fix (Redis unreachable, a user without the right) is logged here; the client is told
to try again later when Redis is unreachable (HTTP+JSON: 503 with a Retry-After,
``RETRY_AFTER_KEY``), and that the server's Redis user lacks a right, or that its connection
to Redis fails in a way no retry mends (``ConnectionFailed.retryable`` False: a certificate
refused), otherwise (an internal error, 500, with no retry advice). More requests at once
than the swarm's handle has connections wait their turn (``_gate``: the swarm this handler
is given is gated by the app), or are answered busy, when to try again said as for an
outage. A stopping
server (``stop``) ends every wait: a blocking ``SendMessage`` answers with the task as it is,
and streams end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event as A2AEvent
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import (
    AgentCard,
    AuthenticationInfo,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatusUpdateEvent,
)
from a2a.utils.constants import DEFAULT_LIST_TASKS_PAGE_SIZE, MAX_LIST_TASKS_PAGE_SIZE
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from a2a.utils.task import apply_history_length

from .. import MAX_PAGE
from .. import _hints as hints
from .._client import AsyncSwarm
from .._errors import (
    Conflict,
    ConnectionFailed,
    InvalidState,
    NotFound,
    PermissionDenied,
    SwarmError,
    ValidationError,
    login_refused,
)
from .._models import Finding, Webhook, event_order, shown_webhook_url
from .._models import Task as SwarmTask
from .._models import TaskStatus as SwarmStatus
from .._translate import causes, pool_exhausted
from ._addresses import REFUSED_ADDRESS, UrlCheck, unresolved
from ._convert import a2a_task, alone_in, posting
from ._feed import TaskFeed, updates_of
from ._gate import RETRY_AFTER_KEY, Busy
from ._logs import LOGGED_FOR_OPERATOR
from ._request import ABSENT, check_members, raw_param
from ._resume import POSITION_KEY, Position, before
from ._states import STATE_OF, STATUS_AFTER, TERMINAL, statuses_in
from ._words import for_operator, in_a2a_words, needs_role

__all__ = [
    "PUSH_NOT_STORED_KEY",
    "RETRY_AFTER_KEY",
    "RETRY_AFTER_S",
    "SwarmRequestHandler",
    "swarm_errors",
]

log = logging.getLogger(__name__)

# How long a blocking SendMessage waits for the task to settle before it answers with the
# task as it is (a client then polls GetTask, subscribes, or gets a push notification).
DEFAULT_WAIT_S = 30.0
# How long one wait on the event stream blocks on the server before it is sent again.
FOLLOW_BLOCK_S = 5.0
# What a client that cannot be served while the swarm's Redis is out of reach is told to
# wait (seconds) before it tries again: the error's data under RETRY_AFTER_KEY, which the
# HTTP+JSON binding answers 503 with a Retry-After header (app.RetryLater).
RETRY_AFTER_S = 5
# The metadata key of the task SendMessage answers with, when the message's push
# notification config was not stored: why (its task has settled: ``_no_webhook_for``).
PUSH_NOT_STORED_KEY = "redis-swarm/pushNotificationConfigNotStored"

Update = A2AEvent
# Told of a webhook set with a message: its task, and the event id its events follow.
WebhookSet = Callable[[str, str], None]


@contextlib.contextmanager
def swarm_errors(swarm: str) -> Iterator[None]:
    """The swarm's errors as the A2A errors the SDK turns into its wire errors, in A2A words.
    What the client cannot fix (the server's Redis unreachable, or its user lacking a right)
    is logged for the operator, not sent to the client with the server's Redis URL and its
    operator's commands (``swarm``: its name, for the operator's log): the client is told to
    try again later when Redis is unreachable (``RETRY_AFTER_KEY``), and that its operator
    must grant a right when the user lacks one, or fix the connection when no retry can
    make it (``ConnectionFailed.retryable`` False): a retry would fail alike, forever."""
    try:
        yield
    except NotFound as exc:
        raise TaskNotFoundError(in_a2a_words(str(exc))) from None
    except InvalidState as exc:
        raise TaskNotCancelableError(in_a2a_words(str(exc))) from None
    except ValidationError as exc:
        raise InvalidParamsError(in_a2a_words(str(exc))) from None
    except ConnectionFailed as exc:  # (Redis gone: it comes back, so the client waits)
        if any(pool_exhausted(cause) for cause in causes(exc)):  # (not Redis: see _gate)
            _say_pool_full(str(exc))
            raise Busy() from None
        if not exc.retryable:  # (its TLS refused, its files: only the operator mends it)
            log.warning("a request failed: %s; no retry fixes that", for_operator(str(exc)))
            raise InternalError(
                "this A2A server cannot connect to its swarm's Redis "
                "for a reason of configuration (such as a TLS certificate refused), which only "
                f"its operator can fix; sending it again will not help until then "
                f"{LOGGED_FOR_OPERATOR}"
            ) from None
        log.warning("a request failed: %s", for_operator(str(exc)))
        raise InternalError(
            "this A2A server cannot reach its swarm's Redis; try again "
            f"later, in {RETRY_AFTER_S} s or more {LOGGED_FOR_OPERATOR}",
            data={RETRY_AFTER_KEY: str(RETRY_AFTER_S)},  # (strings: a google.rpc.ErrorInfo's)
        ) from None
    except PermissionDenied as exc:  # (a misconfiguration: no retry mends it, so no retry data)
        if login_refused(exc):  # (its password rotated, its user revoked: not a right lacked)
            log.warning(
                "a request failed: %s; restart this A2A server with the user's new password "
                "in its SWARM_URL (or another user's)",
                for_operator(str(exc)),
            )
            raise InternalError(
                "this A2A server's login to its swarm's Redis was refused (its password "
                "rotated or its user revoked), which only its operator can fix; sending it "
                f"again will not help until then {LOGGED_FOR_OPERATOR}"
            ) from None
        log.warning("a request failed: %s; %s", for_operator(str(exc)), needs_role(swarm))
        raise InternalError(
            "this A2A server's Redis user lacks a right this request "
            "needs, which only its operator can grant; sending it again will not help until "
            f"then {LOGGED_FOR_OPERATOR}"
        ) from None
    except SwarmError as exc:
        raise InternalError(in_a2a_words(str(exc))) from None


# When the log last said that a request met the handle's pool full (``_say_pool_full``).
_pool_full_said = -math.inf
# How often it says so at most, in seconds: once per burst, not once per request.
POOL_FULL_SAID_EVERY_S = 60.0


def _say_pool_full(said: str) -> None:
    """Log that a request met every connection of the handle in use (the gate keeps fewer
    calls than that at once: another user of the handle took some), once per burst."""
    global _pool_full_said
    if time.monotonic() - _pool_full_said >= POOL_FULL_SAID_EVERY_S:
        _pool_full_said = time.monotonic()
        log.warning("requests answered busy: %s", for_operator(said))


class SwarmRequestHandler(RequestHandler):
    """A2A methods over one swarm, for the tasks of ``queues`` (the first is the default
    skill: a message that names none goes there)."""

    def __init__(
        self,
        swarm: AsyncSwarm,
        queues: Sequence[str],
        *,
        wait_s: float = DEFAULT_WAIT_S,
        url_check: UrlCheck | None = None,
        on_webhook: WebhookSet | None = None,
    ) -> None:
        if not queues:
            raise ValueError("expose at least one queue")
        self.swarm = swarm
        self.queues = list(dict.fromkeys(queues))
        self.wait_s = wait_s
        self.url_check = url_check
        self.on_webhook = on_webhook
        self.feed = TaskFeed(swarm, FOLLOW_BLOCK_S)  # one stream reader for every waiter

    def stop(self) -> None:
        """The server is stopping: end every wait and stream now (and every later one), so
        that none is cut off mid-answer when the server gives up on it."""
        self.feed.close()

    # --- reading

    async def _task(self, task_id: str, *, field: str = "id") -> SwarmTask:
        """One of this agent's tasks. Another queue's is answered as one that does not exist,
        in the same words: whether it exists is none of this client's business. ``field``:
        the request's member that gave the id, named when it gave none."""
        if not task_id:
            raise InvalidParamsError(
                f"the request names no task: params.{field} is missing or empty; give the id "
                f"SendMessage returned, or find the task with ListTasks"
            )
        try:
            with swarm_errors(self.swarm.name):
                task = await self.swarm.get_task(task_id)
        except TaskNotFoundError:
            task = None
        if task is None or task.queue not in self.queues:
            raise TaskNotFoundError(
                in_a2a_words(f"task {task_id} does not exist: {hints.CHECK_TASK_ID}")
            )
        return task

    async def _finding(self, finding_id: str | None) -> Finding | None:
        if not finding_id:
            return None
        with swarm_errors(self.swarm.name):
            return await self.swarm.get_finding(finding_id)

    async def _a2a(self, task: SwarmTask, *, artifacts: bool = True, at: int | None = None) -> Task:
        done = task.status == SwarmStatus.COMPLETED and artifacts
        return a2a_task(task, await self._finding(task.finding_id) if done else None, at=at)

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task:
        task = await self._a2a(await self._task(params.id))
        return apply_history_length(task, params)

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        _check_status(params, context)
        wanted = statuses_in(params.status) if params.status else list(SwarmStatus)
        size = params.page_size or DEFAULT_LIST_TASKS_PAGE_SIZE
        if not params.page_size and _given(context, "pageSize", "page_size"):
            size = 0  # (protobuf reads 0 as left out: the raw request tells them apart)
        if not 1 <= size <= MAX_LIST_TASKS_PAGE_SIZE:
            raise InvalidParamsError(
                f"pageSize {size} is out of range: give a pageSize of 1 to "
                f"{MAX_LIST_TASKS_PAGE_SIZE}, or leave it out for {DEFAULT_LIST_TASKS_PAGE_SIZE}"
            )
        if not wanted:
            return ListTasksResponse(page_size=size)
        after_ms = (
            params.status_timestamp_after.ToMilliseconds()
            if params.HasField("status_timestamp_after")
            else 0
        )
        alone = await self._named_task(params.context_id)
        if alone is not None and alone_in(alone, params.context_id):
            # The task's context of its own: that task, on one page (the filters below
            # still apply).
            items: Sequence[SwarmTask] = (alone,)
            cursor = None
            total = int(alone.status in wanted)
        else:
            with swarm_errors(self.swarm.name):
                page = await self.swarm.list_tasks(
                    queue=self.queues[0] if len(self.queues) == 1 else None,
                    status=wanted[0] if len(wanted) == 1 else None,
                    pass_name=params.context_id or None,
                    cursor=params.page_token or None,
                    limit=size,
                    with_data=True,
                    newest_first=True,  # as A2A clients expect (and the SDK's task stores list)
                )
            items, cursor = page.items, page.cursor
            total = await self._total(params.context_id, wanted)
        # Several queues, or a state that is two statuses (submitted): the page is filtered
        # here, so it may hold fewer than page_size tasks; the token still goes on.
        tasks = [
            apply_history_length(await self._a2a(t, artifacts=params.include_artifacts), params)
            for t in items
            if t.queue in self.queues and t.status in wanted
        ]
        # A task whose record keeps no time of its status (one stored by an older version and
        # moved since: Task.status_since) stays: it cannot be told older than the filter.
        tasks = [
            t
            for t in tasks
            if not t.status.HasField("timestamp") or t.status.timestamp.ToMilliseconds() >= after_ms
        ]
        return ListTasksResponse(
            tasks=tasks, next_page_token=cursor or "", page_size=size, total_size=total
        )

    async def _named_task(self, context_id: str) -> SwarmTask | None:
        """The task of this agent whose id ``context_id`` is, if any (else it names a pass,
        or nothing). A context id may be any text: one that is no valid task id names none."""
        if not context_id:
            return None
        try:
            return await self._task(context_id)
        except (TaskNotFoundError, InvalidParamsError):
            return None

    async def _check_context(self, context_id: str) -> None:
        """Refuse a message whose context id is a task's id: it would post to a pass of that
        name, a context apart from the task's own (which takes no new task) that ListTasks
        of the id would not list."""
        task = await self._named_task(context_id)
        if task is None:
            return
        if alone_in(task, context_id):
            raise InvalidParamsError(
                f"context id {context_id} is task {task.id}'s context of its own (it was "
                "posted without a context): it holds that task alone and takes no new task; "
                "send without a context id to start a new context, or with one of your own"
            )
        raise InvalidParamsError(
            f"context id {context_id} is the id of task {task.id}, not a context: its "
            f"context id is {task.pass_name}; send with that one to add a task to its context"
        )

    async def _total(self, context_id: str, wanted: list[SwarmStatus]) -> int:
        """How many tasks the listing can return for the filter (before
        statusTimestampAfter): the exposed queues' tasks in the wanted statuses, of the pass
        ``context_id`` if given. From the counters the swarm keeps exact (one round trip,
        whatever the number of tasks; two with a context), unless the pass may hold such tasks
        of other queues: no counter keeps a pass's tasks by queue, so they are then counted
        through the pass's listing (at most one round trip per 1,000 of its tasks)."""
        with swarm_errors(self.swarm.name):
            if not context_id:
                return _matching(await self.swarm.queue_stats(), self.queues, wanted)
            by_status = await self.swarm.pass_stats(context_id)
            in_pass = sum(by_status.get(s.value, 0) for s in wanted)
            if not in_pass:
                return 0
            stats = await self.swarm.queue_stats()
            others = [q for q in stats if q not in self.queues]
            if not _matching(stats, others, wanted):
                return in_pass  # (every such task of the swarm is in an exposed queue)
            return await self._count_listed(context_id, wanted)

    async def _count_listed(self, context_id: str, wanted: list[SwarmStatus]) -> int:
        """The exposed queues' tasks of the pass in the wanted statuses, counted through its
        listing (filtered by the server where one queue and one status say it)."""
        count, cursor = 0, None
        while True:
            page = await self.swarm.list_tasks(
                queue=self.queues[0] if len(self.queues) == 1 else None,
                status=wanted[0] if len(wanted) == 1 else None,
                pass_name=context_id,
                cursor=cursor,
                limit=MAX_PAGE,  # the largest page list_tasks gives
            )
            count += sum(1 for t in page.items if t.queue in self.queues and t.status in wanted)
            if page.cursor is None:
                return count
            cursor = page.cursor

    # --- changing

    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        check_members(context, params)
        held = await self._task(params.id)
        if held.status is SwarmStatus.DEAD:
            # FAILED is final in A2A (the core may drop a dead task for good: not from here).
            raise TaskNotCancelableError(
                in_a2a_words(f"task {held.id} failed: a failed task cannot be canceled")
            )
        with swarm_errors(self.swarm.name):
            task = await self.swarm.cancel(params.id)
        # The record keeps when it was cancelled (status_at), a second cancel keeping the first's.
        return await self._a2a(task)

    async def _post(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> tuple[SwarmTask, str, str | None]:
        """Post the message's task; returns it, the event id its updates follow, and why the
        message's push notification config was not stored (None: it was, or it gave none)."""
        check_members(context, params)
        if params.message.task_id:
            task = await self._task(params.message.task_id)
            state = TaskState.Name(STATE_OF[task.status])
            raise UnsupportedOperationError(
                f"task {task.id} is {state}: this agent takes no follow-up input on a task; "
                "send a new message without a task id (the same context id groups them)"
            )
        sent = raw_param(context, "message")
        role = sent.get("role", ABSENT) if isinstance(sent, dict) else None
        post = posting(params, self.queues, sent_role=role)
        if params.message.context_id:
            await self._check_context(params.message.context_id)
        push = params.configuration.task_push_notification_config
        hook_id = push.id or _webhook_id(params.message.message_id)
        if params.configuration.HasField("task_push_notification_config"):
            # All of it, before the task is posted: a config refused after the post left
            # the task posted (and run) for a client told its message was refused.
            await self._check_config(push, hook_id)
        with swarm_errors(self.swarm.name):
            since = await self.swarm.last_event_id()
            try:
                task = await self.swarm.post_task(
                    post.queue,
                    post.description,
                    post.data,
                    pass_name=post.context_id,
                    dedupe_key=post.dedupe_key,
                    task_id=post.task_id,
                )
            except Conflict:  # (its id names a task posted otherwise: the message's id's)
                task = await self.swarm.get_task(post.task_id)
        if task.queue != post.queue:  # (the message's id posted a task to another skill)
            raise InvalidParamsError(
                _other_skill(task, post.queue, params.message.message_id, self.queues)
            )
        not_stored = None
        if params.configuration.HasField("task_push_notification_config"):
            not_stored = _no_webhook_for(task)  # (a retry of a message its task finished)
            if not_stored is None:
                with swarm_errors(self.swarm.name):
                    await self.swarm.set_webhook(
                        task.id,
                        push.url,
                        webhook_id=hook_id,
                        since=since,
                        **_auth(push),
                    )
                if self.on_webhook is not None:
                    self.on_webhook(task.id, since)
        return task, since, not_stored

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        task, since, not_stored = await self._post(params, context)
        if not params.configuration.return_immediately and not task.status.settled:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._settled(task.id, since), self.wait_s)
            task = await self._task(task.id)
        out = _noted(await self._a2a(task), not_stored)
        return apply_history_length(out, params.configuration)

    async def _settled(self, task_id: str, since: str) -> None:
        async for _ in self._follow(task_id, Position(since, 0, 0)):
            pass

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Update]:
        task, since, not_stored = await self._post(params, context)
        first = _noted(await self._a2a(task), not_stored)
        yield _at(first, Position(since, 0, first.status.state))
        if first.status.state not in TERMINAL:
            async for update in self._follow(task.id, Position(since, 0, first.status.state)):
                yield update

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Update]:
        resume = Position.in_headers(context.state.get("headers") or {})
        with swarm_errors(self.swarm.name):
            since = await self.swarm.last_event_id()  # pinned before the read: see above
        if resume is not None and event_order(resume.after) > event_order(since):
            resume = None  # from the future: no id this swarm wrote (a plain subscription)
        if resume is not None and resume.state not in TERMINAL:
            await self._task(params.id)  # one of ours
            async for update in self._follow(params.id, resume):
                yield update
            return
        first = await self._a2a(await self._task(params.id))
        if first.status.state in TERMINAL or resume is not None:
            state = TaskState.Name(resume.state if resume else first.status.state)
            raise UnsupportedOperationError(
                f"task {params.id} is {state}: there is nothing to subscribe to; GetTask returns it"
            )
        yield _at(first, Position(since, 0, first.status.state))
        async for update in self._follow(params.id, Position(since, 0, first.status.state)):
            yield update

    async def _follow(self, task_id: str, start: Position) -> AsyncIterator[Update]:
        """The updates of one task after ``start``, until it settles, each marked with its
        own position (``_resume``). A status the client was already told (``start.state``,
        then each one sent) is not sent again."""
        state, skip = start.state, start.skip
        with swarm_errors(self.swarm.name):
            async with contextlib.aclosing(self.feed.events(task_id, start.after)) as events:
                async for event in events:
                    if event.type not in STATUS_AFTER:
                        continue
                    task = await self.swarm.get_task(task_id)
                    made = await updates_of(self.swarm, event, task)  # (none: not believed)
                    for index, update in enumerate(made):
                        if index < skip:  # the client has it: it resumed in this event
                            continue
                        if isinstance(update, TaskStatusUpdateEvent):
                            if update.status.state == state:
                                continue
                            state = update.status.state
                        last = index == len(made) - 1
                        yield _at(
                            update,
                            Position(event.id, 0, state)
                            if last
                            else Position(before(event.id), index + 1, state),
                        )
                    skip = 0
                    if state in TERMINAL:
                        return

    # --- push notifications

    async def _check_config(self, config: TaskPushNotificationConfig, hook_id: str | None) -> None:
        """Refuse a push notification config that ``set_webhook`` would refuse (its rules,
        the core's: ``Swarm.check_webhook``), that has no url, or whose url this server may
        not post to (``url_check``)."""
        url = config.url
        if not url.strip():
            raise InvalidParamsError(
                "the push notification config has no url: give the http(s) URL of the webhook "
                "the task's updates are posted to (url)"
            )
        with swarm_errors(self.swarm.name):
            self.swarm.check_webhook(url, webhook_id=hook_id, **_auth(config))
        if self.url_check is None:
            return
        try:
            allowed = await self.url_check(url)
        except OSError as exc:  # (fail closed: a name that does not resolve is not taken)
            raise InvalidParamsError(
                f"push notification url {url[:80]!r} is refused: {unresolved(url, exc)}; "
                "check its host name, or send it again once it resolves"
            ) from None
        if not allowed:
            raise InvalidParamsError(
                f"push notification url {url[:80]!r} is refused: {REFUSED_ADDRESS}; give a "
                "URL this server can reach on a public address"
            )

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        check_members(context, params)
        with swarm_errors(self.swarm.name):
            since = await self.swarm.last_event_id()  # pinned before the read: see above
        task = await self._task(params.task_id, field="taskId")
        not_stored = _no_webhook_for(task)
        if not_stored is not None:
            raise UnsupportedOperationError(not_stored)
        await self._check_config(params, params.id or None)
        with swarm_errors(self.swarm.name):
            hook = await self.swarm.set_webhook(
                task.id, params.url, webhook_id=params.id or None, since=since, **_auth(params)
            )
        if self.on_webhook is not None:
            self.on_webhook(task.id, since)
        return _config(hook)

    async def _hooks(self, task_id: str) -> list[Webhook]:
        await self._task(task_id, field="taskId")
        with swarm_errors(self.swarm.name):
            return await self.swarm.webhooks(task_id)

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        for hook in await self._hooks(params.task_id):
            if hook.id == params.id:
                return _config(hook)
        # (not found, as the SDK's own handler answers it: the config is what is not there)
        raise TaskNotFoundError(
            f"task {params.task_id} has no push notification config {params.id[:80]!r}: "
            "ListTaskPushNotificationConfigs lists the ids of its configs"
        )

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        hooks = await self._hooks(params.task_id)
        return ListTaskPushNotificationConfigsResponse(configs=[_config(h) for h in hooks])

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        await self._task(params.task_id, field="taskId")
        with swarm_errors(self.swarm.name):
            await self.swarm.delete_webhook(params.task_id, params.id)

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError("this agent has no extended card")


def _matching(
    stats: dict[str, dict[str, int]], queues: Sequence[str], wanted: list[SwarmStatus]
) -> int:
    """The tasks of ``queues`` in the ``wanted`` statuses, by ``queue_stats``' counters."""
    return sum(stats.get(q, {}).get(s.value, 0) for q in queues for s in wanted)


def _check_status(params: ListTasksRequest, context: ServerCallContext) -> None:
    """Refuse a ListTasks status that is no task state. The SDK reads an unknown one as 0
    (unspecified), which means every state: so the raw request is read; only a status left
    out (or unspecified) lists every state. The JS SDK's JSON-RPC client sends a status left
    out as "UNRECOGNIZED" (protobuf-es's name of an enum's unknown value): left out too."""
    states = dict(TaskState.items())  # name -> number
    raw = raw_param(context, "status")
    if raw == _UNRECOGNIZED:  # (the JS SDK's JSON-RPC client's status left out: see above)
        return
    if raw is None or raw is ABSENT:  # (None: no raw request; the parsed value then)
        known = params.status in states.values()
    elif isinstance(raw, str):
        number = raw.isascii() and raw.isdigit() and len(raw) < 10  # (a query's "3")
        known = raw in states or (number and int(raw) in states.values())
    else:
        known = type(raw) is int and raw in states.values()
    if not known:
        shown = params.status if raw is None or raw is ABSENT else raw
        names = ", ".join(name for name, number in states.items() if number)
        raise InvalidParamsError(
            f"status {str(shown)[:40]!r} is not a task state: give one of {names}, "
            "or leave it out for tasks in every state"
        )


def _given(context: ServerCallContext, *names: str) -> bool:
    """Whether the request gave a value (null is none) under one of ``names``."""
    return any(raw_param(context, name) not in (None, ABSENT) for name in names)


# What protobuf-es (the JS SDK) writes for an enum field it holds no value of.
_UNRECOGNIZED = "UNRECOGNIZED"


def _no_webhook_for(task: SwarmTask) -> str | None:
    """Why a push notification config for ``task`` is not stored, None when it is: one rule
    for CreateTaskPushNotificationConfig and a config given with a message (a retry of one
    whose task has settled). A2A keeps a config "until task completion": one for a settled
    task would never fire, nor be removed, its secrets kept for good."""
    state = STATE_OF[task.status]
    if state not in TERMINAL:
        return None
    # (a failed task is a dead one, which the swarm's operator may requeue: docs/a2a.md,
    # "A failed task reopened")
    unless = (
        " unless the swarm's operator requeues it (then it may be given one again)"
        if state == TaskState.TASK_STATE_FAILED
        else ""
    )
    return (
        f"task {task.id} is {TaskState.Name(state)}: it changes no more{unless}, so a push "
        "notification config would never fire, and none is stored; GetTask returns the task "
        "(its artifacts too)"
    )


def _noted(task: Task, not_stored: str | None) -> Task:
    """``task`` as SendMessage answers it, saying under ``PUSH_NOT_STORED_KEY`` why the
    message's push notification config was not stored, if it was not."""
    if not_stored is not None:
        task.metadata[PUSH_NOT_STORED_KEY] = not_stored
    return task


def _other_skill(task: SwarmTask, skill: str, message_id: str, queues: Sequence[str]) -> str:
    """The refusal of a message whose messageId posted ``task`` to another skill than the
    one it names (``skill``): a retry is the same message, so this one is another message
    under a used id. Another server's task (a queue not exposed here) is not named."""
    new_id = "give each new message a new unique messageId (a UUID)"
    if task.queue not in queues:
        return f"messageId {message_id[:80]!r} was already used by another message: {new_id}"
    return (
        f"messageId {message_id[:80]!r} already posted task {task.id}, to skill {task.queue}; "
        f"this message names skill {skill}: a retry must be the same message (it then "
        f"returns that task), and a new message needs a new id: {new_id}"
    )


def _at(update: Update, position: Position) -> Update:
    """``update`` marked with its position in the stream (``_resume.SSEIds`` makes it the SSE
    event's id)."""
    update.metadata[POSITION_KEY] = str(position)
    return update


def _webhook_id(message_id: str) -> str | None:
    """The id of a webhook given with a message without one: the same for a retry of the
    message (which gets the same task), so a retry does not add a second webhook."""
    if not message_id:
        return None
    return "msg-" + hashlib.sha256(message_id.encode()).hexdigest()[:24]


def _auth(config: TaskPushNotificationConfig) -> dict[str, str | None]:
    auth = config.authentication
    return {
        "token": config.token or None,
        "auth_scheme": auth.scheme or None,
        "auth_credentials": auth.credentials or None,
    }


def _config(hook: Webhook) -> TaskPushNotificationConfig:
    """A webhook as a config, its secrets kept but not shown (see the module): no ``token``
    and no ``authentication.credentials``, both optional in A2A, and its ``url`` with the
    secrets it carries masked; its authentication's ``scheme``, which A2A requires of an
    ``AuthenticationInfo``, stays."""
    shown = shown_webhook_url(hook.url)
    out = TaskPushNotificationConfig(id=hook.id, task_id=hook.task_id, url=shown)
    if hook.auth_scheme:
        out.authentication.CopyFrom(AuthenticationInfo(scheme=hook.auth_scheme))
    return out
