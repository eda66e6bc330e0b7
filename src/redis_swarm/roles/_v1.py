"""V1's all-in-one ``RedisSwarmCoordinator`` (redis_swarm_coordinator.py), over the core,
returning V1's shapes."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from typing import Any, TypedDict

from .._client import Swarm
from .._codec import dumps, iso
from .._errors import AlreadyCompleted, Conflict, ConnectionFailed, NotFound, ValidationError
from .._hints import CHECK_AGENT_ID
from .._models import SYNTHESIS_REQUEST_KIND, Agent, Message, TaskStatus
from .._validate import (
    MAX_LEASE_S,
    MIN_LEASE_S,
    begins_like_option,
    check_json_keys,
    too_deep,
)
from ._base import (
    ConnectV1,
    PublishOptions,
    Unpack,
    _agent_name,
    _attempt,
    _queue,
    _Role,
    _stamp,
    _superseded,
    in_callers_words,
    report_sent_said,
)


class V1Task(TypedDict):
    """``RedisSwarmCoordinator.claim_task``: V1's task hash (``priority`` a string, as V1
    read it back), ``data`` decoded."""

    task_id: str
    queue: str
    type: str
    data: Any
    posted_by: str
    posted_at: str
    priority: str
    status: str
    token: str | None
    attempt: int  # which of max_attempts (failures + 1: _attempt); claims counts every lease
    max_attempts: int
    claims: int


V1Message = TypedDict(
    "V1Message",
    {
        "message_id": str,
        "from": str,
        "to": str,
        "timestamp": str,
        "content": Any,
        "kind": str,
    },
)


V1Message.__doc__ = (
    """``RedisSwarmCoordinator.get_messages`` items: ``content`` is what was sent."""
)


class V1Agent(TypedDict):
    """``RedisSwarmCoordinator.list_active_agents`` items: V1's agent hash (every value a
    string: ``parent_id`` is ``"none"`` without a parent, ``metadata`` JSON), and this
    swarm's ``id``, ``model``, ``specialization``, ``alive`` and ``last_seen``."""

    agent_id: str
    role: str
    context_capacity: str
    parent_id: str
    registered_at: str
    metadata: str
    id: str
    model: str | None
    specialization: str | None
    alive: bool | None
    last_seen: str | None


class V1QueueStatus(TypedDict):
    """``RedisSwarmCoordinator.get_queue_status``: ``tasks`` the first 10 pending ids."""

    queue: str
    pending_tasks: int
    tasks: list[str]
    counts: dict[str, int]


_STATUSES = tuple(s.value for s in TaskStatus)
V1_STALE_S = 300  # V1 took an agent without a heartbeat for 5 minutes as gone

# V1 sent any JSON value. A text goes as the message's text and a dict as its data; any other
# value (a list, a number, true/false, None, an empty text) as the data {"value": VALUE} of a
# message of this kind, with its JSON as the text (cut to _PREVIEW_CHARS for readers such as
# ``swarm msg inbox``), and ``get_messages`` hands back VALUE.
_VALUE_KIND = "json"
_PREVIEW_CHARS = 200


def _preview(value: Any, said_by: str = "send_message") -> str:
    """The text of a message carrying ``value``: its JSON, cut short (refused in the words of
    method ``said_by`` when it is no JSON value)."""
    try:
        encoded = dumps(value)
    except RecursionError:
        raise too_deep("the message") from None
    except (TypeError, ValueError):
        raise ValidationError(
            f"{said_by} sends a text, a dict or another JSON value (a list, a number, "
            f"true/false, None); a {type(value).__name__} is none of these: convert it "
            "(a set to a list, an object to a dict)"
        ) from None
    if len(encoded) <= _PREVIEW_CHARS:
        return encoded
    return encoded[: _PREVIEW_CHARS - 1] + "…"


def _content(msg: Message) -> Any:
    """What was sent: the value of a JSON-value message, the data of a dict, else the text.
    A message with data whose text says more than the data (not the text ``outgoing`` or
    the core's ``request_synthesis`` made of it: one sent with ``send(text, data=...)`` or
    ``swarm msg send TEXT --data``) gives both, ``{"text": TEXT, "data": DATA}``: else a
    reader would never see its text, and reading it marks it read."""
    data = msg.data
    if data is None:
        return msg.body
    if msg.kind == _VALUE_KIND and "value" in data:
        sent = data["value"]
        with contextlib.suppress(ValidationError):  # (a value the seed could not send)
            if msg.body == _preview(sent):
                return sent
    elif msg.kind == SYNTHESIS_REQUEST_KIND or msg.body == _named(data):
        return data  # (the request's text only says what its data holds)
    return {"text": msg.body, "data": data}


def _named(data: Mapping[str, Any]) -> str:
    """The text a dict is sent with: its ``type``, else "message"."""
    return str(data.get("type") or "").strip() or "message"


def outgoing(
    message: Any, said_by: str = "send_message"
) -> tuple[str, str, Mapping[str, Any] | None]:
    """The text, kind and data of a message carrying ``message`` as V1 sent it: a text as
    the text; a dict as the data (its ``type`` names it); any other JSON value as the data
    ``{"value": VALUE}`` of a ``json`` message, its JSON as the text. Refused in the words
    of method ``said_by``."""
    if isinstance(message, str) and message.strip():
        return message, "text", None
    check_json_keys("the message", message)
    if isinstance(message, Mapping):
        return _named(message), "text", message
    return _preview(message, said_by), _VALUE_KIND, {"value": message}


def read_messages(
    swarm: Swarm, agent: str, *, own: bool, limit: int = 10, wait_s: float = 0
) -> list[V1Message]:
    """``agent``'s unread messages (consumed), each as V1's ``get_messages`` gave it, its
    ``content`` as sent. ``own``: ``agent`` is the caller's own, so that its being swept
    is said with what to do (call ``heartbeat()``)."""
    try:
        messages = swarm.inbox(agent, ack=True, limit=limit, wait_s=wait_s)
    except NotFound:
        if not own:
            raise
        raise NotFound(
            f"agent {agent} is not registered any more (swept as stale: no heartbeat "
            "within cleanup_stale_agents' max age; or deregistered), and the messages "
            "it had not read went with it: call heartbeat() to register it again, and "
            "keep calling it"
        ) from None
    return [
        {
            "message_id": msg.id,
            "from": msg.sender or "unknown",
            "to": msg.to,
            "timestamp": _stamp(msg.created_at),
            "content": _content(msg),
            "kind": msg.kind,
        }
        for msg in messages
    ]


def _v1_agent(agent: Agent) -> V1Agent:
    capacity = agent.capacity_tokens
    return {
        "agent_id": agent.id,
        "role": agent.role,
        "context_capacity": "none" if capacity is None else str(capacity),
        "parent_id": agent.parent or "none",
        "registered_at": _stamp(agent.registered_at),
        "metadata": dumps(agent.metadata or {}),
        "id": agent.id,
        "model": agent.model,
        "specialization": agent.specialization,
        "alive": agent.alive,
        "last_seen": iso(agent.last_seen),
    }


def _lease(timeout: object) -> float:
    """``claim_task``'s ``timeout``, the lease it asks for, checked in the caller's words
    (the core's would name its ``lease_s``), against the core's bounds."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not MIN_LEASE_S <= timeout <= MAX_LEASE_S
    ):
        raise ValidationError(
            f"timeout is {timeout!r}: it is the lease, in seconds, from {MIN_LEASE_S:g} to "
            f"{MAX_LEASE_S:,.0f} ({MAX_LEASE_S / 86_400:g} days): how long the task stays this "
            "agent's before another may claim it (claim_task waits for no task: it returns "
            "None at once)"
        )
    return timeout


class RedisSwarmCoordinator(_Role):
    """V1's all-in-one coordinator, over the core: claims are leases, contexts versioned.

    ``heartbeat()`` registers its agent again when it was swept (``cleanup_stale_agents``);
    the other calls do not, and ``get_messages()`` of the swept agent raises ``NotFound``
    saying so. ``close()`` gives back the tasks it claimed and did not complete, then
    deregisters each agent this handle registered (always under an id it made,
    ``<role>_<8 hex>``) that claimed a task through it: a worker that is gone is not counted
    alive, as ``EphemeralWorker``'s. V1's roles are free text (``haiku_worker``), so what
    makes the agent a worker is its claim; one that only posted, sent or read messages (a
    coordinator, a shard) stays, with its inbox, until it is swept as stale. With the server
    gone, ``close()`` does not raise: a claimed task stays leased until its lease runs out and
    then goes back by itself (a ``UserWarning`` names it)."""

    def __init__(
        self,
        redis_host: str | None = None,
        redis_port: int | None = None,
        redis_db: int = 0,
        **connect: Unpack[ConnectV1],
    ) -> None:
        super().__init__(redis_host, redis_port, redis_db=redis_db, **connect)
        self.agent_id: str | None = None
        self.role: str | None = None
        self.parent_id: str | None = None
        self._agent: Agent | None = None  # as registered: what heartbeat() registers again
        self._tokens: dict[str, str | None] = {}  # claimed, not completed: task id -> token
        # a report tried and not settled (its reply lost?): task id -> its finding id, which
        # the retry reports under, so that the finding is stored once
        self._finding_ids: dict[str, str] = {}
        self._workers: set[str] = set()  # agents of this handle that claimed: close() ends them

    def _me(self, agent_id: str | None = None) -> str:
        agent = agent_id or self.agent_id
        if not agent:
            raise ValidationError("no agent registered: call register_agent(role) first")
        return agent

    def register_agent(
        self,
        role: str,
        context_capacity: int = 200_000,
        parent_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Register a new agent (``<role>_<8 hex>``) that this object then acts as. A
        ``parent_id`` must name a registered agent (the core's ``NotFound``, nothing
        registered, when it does not: a typo would be stored as the parent). A second call
        registers a second agent: the first stays registered, and this object acts as the new
        one (a ``UserWarning`` says so)."""
        meta = dict(metadata or {}) if isinstance(metadata, Mapping | None) else {}
        if isinstance(role, str) and begins_like_option(role):
            raise ValidationError(
                f"role {role[:40]!r} begins with '-': the agent's name is made from it "
                f"({role[:40]}_<8 hex>), which a command naming it would read as an option; "
                "begin the role with an ASCII letter, a digit, '.' or '_'"
            )
        try:
            agent = self.swarm.register(
                role,
                name=_agent_name(role),
                model=meta.get("model"),
                specialization=meta.get("specialization"),
                capacity_tokens=context_capacity,
                parent=parent_id,
                metadata=meta if isinstance(metadata, Mapping | None) else metadata,  # refused
            )
        except ValidationError as exc:
            exc = in_callers_words(exc, "parent agent", "parent_id")
            raise in_callers_words(exc, "capacity_tokens", "context_capacity") from None
        before = self.agent_id
        self._agent = agent
        self.agent_id, self.role, self.parent_id = agent.id, role, parent_id
        if before is not None:
            # Doubtful, not wrong (a handle may register several agents), and nothing is lost:
            # the first agent keeps its record, inbox, context and tasks.
            warnings.warn(
                f"register_agent: this RedisSwarmCoordinator acted as agent {before}; it now "
                f"acts as {agent.id}, and {before} stays registered (its heartbeat() no longer "
                f"restores it if swept): use one RedisSwarmCoordinator per agent, or pass "
                f"agent_id={before!r} to the methods that act as an agent",
                UserWarning,
                stacklevel=2,
            )
        return str(agent.id)

    def heartbeat(self, agent_id: str | None = None) -> None:
        """Mark the agent present. This coordinator's own agent, swept as stale, is
        registered again with its role, capacity, parent and metadata; another agent
        (``agent_id``) that is not registered raises ``NotFound``."""
        agent = self._me(agent_id)
        if self._agent is not None and agent == self._agent.id:
            self._agent = self._present(self._agent)
            return
        try:
            self.swarm.heartbeat(agent)
        except NotFound:
            raise NotFound(
                f"agent {agent} is not registered (never, or swept as stale or deregistered): "
                "this object restores only its own agent; the object that registered "
                f"{agent} brings it back with its own heartbeat(), or register it anew: swarm "
                f"agents register {agent} --role ROLE (Swarm.register(ROLE, name={agent!r})); "
                f"{CHECK_AGENT_ID}"
            ) from None

    def update_context(
        self,
        context: str,
        agent_id: str | None = None,
        version: str | None = None,
        **options: Unpack[PublishOptions],
    ) -> str:
        """Publish a context; returns its version, a content hash (a caller-chosen tag could
        name two different texts). ``version``, the caller's tag, is kept as the version's
        source (shown by ``swarm context list``/``info``; ``"v1"`` when none is given).
        ``options`` are ``MemoryShard.publish``'s (``media_type``, ``allow_empty``, ...)."""
        source = "v1" if version is None else version
        try:
            info = self.swarm.publish_context(self._me(agent_id), context, source=source, **options)
        except ValidationError as exc:
            raise in_callers_words(exc, "source", "version") from None
        return str(info.version)

    def get_context(self, agent_id: str) -> str | None:
        """The current context ``agent_id`` published, as text; None when it has none."""
        try:
            return self.swarm.get_context(agent_id)
        except NotFound:
            return None

    def post_task(self, queue_name: str, task_type: str, task_data: Any, priority: int = 0) -> str:
        """Post a task to ``queue:NAME`` (or ``NAME``), ``task_type`` its description and
        ``task_data`` its data, with this agent as its parent; returns the task's id."""
        if task_data is not None:
            check_json_keys("task_data", task_data)
        task = self.swarm.post_task(
            _queue(queue_name),
            task_type,
            task_data,
            priority=priority,
            parent=self.agent_id,
        )
        return str(task.id)

    def claim_task(self, queue_name: str, timeout: int = 60) -> V1Task | None:
        """Claim the highest-priority task; ``timeout`` is the lease in seconds."""
        me = self._me()  # (this handle's agent: an id register_agent made, never a caller's)
        task = self.swarm.claim(_queue(queue_name), worker=me, lease_s=_lease(timeout))
        if task is None:
            return None
        self._workers.add(me)
        self._tokens[task.id] = task.token
        return {
            "task_id": task.id,
            "queue": task.queue,
            "type": task.description,
            "data": task.data if task.data is not None else {},
            "posted_by": task.parent or "unknown",
            "posted_at": _stamp(task.created_at),
            "priority": str(task.priority),
            "status": task.status.value,
            "token": task.token,
            "attempt": _attempt(task),
            "max_attempts": task.max_attempts,
            "claims": task.attempts,
        }

    def complete_task(self, task_id: str, result: Any) -> str:
        """Report ``result`` as the task's finding (a dict with a summary, or any value).
        Without this coordinator's claim of the task, it is completed from outside any
        lease: refused while another worker's live lease holds it. A task settled meanwhile
        keeps the finding, marked superseded, and a ``SupersededFinding`` warning says so.
        A report refused (a result that is no JSON, the server unreachable) keeps the claim:
        call it again (a report whose reply was lost is tried again under the same finding
        id, stored once), or ``close()`` gives the task back."""
        token = self._tokens.get(task_id)
        if isinstance(result, Mapping) and "summary" in result:
            finding: Mapping[str, Any] = result
        else:
            finding = {"summary": str(result)[:2000], "result": result}
        check_json_keys("the result", result)
        fid = self._finding_ids.get(task_id) if isinstance(task_id, str) else None
        if fid is None:
            fid = self.swarm.new_finding_id()
            if isinstance(task_id, str):
                self._finding_ids[task_id] = fid
        try:
            done = str(
                self.swarm.report(task_id, token, finding, worker=self.agent_id, finding_id=fid).id
            )
        except AlreadyCompleted as exc:
            done = _superseded(exc, "complete_task()")
        except (Conflict, NotFound):
            self._settled(task_id)  # not this handle's lease any more: nothing to give back
            raise
        except ConnectionFailed as exc:
            if not exc.sent:
                raise
            raise report_sent_said(exc, fid, "complete_task()") from exc
        self._settled(task_id)
        return done

    def _settled(self, task_id: str) -> None:
        """Forget the claim and the report of ``task_id``: reported, or not this handle's."""
        if isinstance(task_id, str):
            self._tokens.pop(task_id, None)
            self._finding_ids.pop(task_id, None)

    def send_message(self, to_agent_id: str, message: Any) -> str:
        """Send ``message`` to a registered agent's inbox, as V1 did: a text, a dict (its
        ``type`` names it), or any other JSON value (a list, a number, true/false, None,
        ""); ``get_messages`` gives each back as sent. Returns the message's id."""
        text, kind, data = outgoing(message)
        sent = self.swarm.send(to_agent_id, text, sender=self.agent_id, kind=kind, data=data)
        return str(sent.id)

    def get_messages(self, agent_id: str | None = None, limit: int = 10) -> list[V1Message]:
        """The agent's unread messages (consumed). This coordinator's agent swept as stale
        raises ``NotFound``: its unread messages went with it; ``heartbeat()`` registers it
        again."""
        agent = self._me(agent_id)
        return read_messages(self.swarm, agent, own=agent == self.agent_id, limit=limit)

    def list_active_agents(self, include_subagents: bool = False) -> list[V1Agent]:
        """Agents with a heartbeat in the last 5 minutes (V1's rule); sub-agents (those
        registered with a parent) only with ``include_subagents``."""
        agents = self.swarm.agents(alive=True, stale_after_s=V1_STALE_S)
        return [_v1_agent(a) for a in agents if include_subagents or not a.parent]

    def get_queue_status(self, queue_name: str) -> V1QueueStatus:
        """The task counts of ``queue:NAME`` (or ``NAME``) by status, every status at zero
        for a queue never posted to, and the ids of its first 10 pending tasks."""
        queue = _queue(queue_name)
        # A queue never posted to has no counters: its counts are every status at zero, the
        # shape a known queue's have.
        counts = self.swarm.queue_stats().get(queue) or dict.fromkeys(_STATUSES, 0)
        page = self.swarm.list_tasks(queue=queue, status="pending", limit=10)
        return {
            "queue": queue,
            "pending_tasks": counts.get("pending", 0),
            "counts": counts,
            "tasks": [t.id for t in page.items],
        }

    def cleanup_stale_agents(self, max_age_seconds: int = 300) -> list[str]:
        """Deregister the agents not seen for ``max_age_seconds`` (``Swarm.sweep``); returns
        their ids."""
        try:
            return list(self.swarm.sweep(max_age_seconds))
        except ValidationError as exc:
            raise in_callers_words(exc, "stale_after_s", "max_age_seconds") from None

    def _give_back(self) -> None:
        claimed, self._tokens = self._tokens, {}
        workers, self._workers = self._workers, set()
        if not self._give_back_leases(list(claimed.items())):
            return  # the server unreachable: the workers go stale and are swept
        for agent in sorted(workers):
            self._leave(agent)
