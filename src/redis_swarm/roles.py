"""The seed's API, kept: ``SwarmMemoryShard``, ``EphemeralWorker``, ``SonnetCoordinator`` and
V1's ``RedisSwarmCoordinator``, as thin wrappers over the core; plus the modern role classes
``MemoryShard``, ``Worker`` and ``Coordinator`` that return typed records.

The seed's examples and init prompts run with only their import line changed. Unlike the seed,
a claim is a lease (a worker that dies gives its task back), contexts are published atomically
and never expire under a reader, and findings are listed in one round trip.

The seed's methods return the seed's shapes, typed below: every key the seed's dict had, with
the seed's type (what it read back from a Redis hash is a string here too: V1's ``priority``,
``context_capacity``, ``metadata`` as JSON, ``parent_id`` ``"none"``), plus a few extra keys.

These classes are a face, so they read ``SWARM_URL`` and ``SWARM_NAME`` when given no server.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict
from urllib.parse import quote

from ._client import Swarm
from ._config import DEFAULT_HOME, Settings, swarm_from_env
from ._errors import AlreadyCompleted, NotFound, ValidationError
from ._models import Agent, ContextInfo, Finding, Message, Synthesis, Task, dumps, iso

__all__ = [
    "Coordinator",
    "EphemeralWorker",
    "MemoryShard",
    "RedisSwarmCoordinator",
    "SonnetCoordinator",
    "SwarmMemoryShard",
    "Worker",
]

_QUEUE_PREFIX = "queue:"

# --- the seed's return shapes ----------------------------------------------------------------


class SeedFinding(TypedDict):
    """``SwarmMemoryShard.get_all_findings`` items; ``content`` is the finding as reported."""

    finding_id: str
    task_id: str
    worker_id: str
    timestamp: str
    content: dict[str, Any]
    queue: str | None
    pass_name: str | None
    superseded: bool


class WorkerContext(TypedDict):
    """``SwarmMemoryShard.get_context_for_worker``."""

    parent_shard_id: str
    specialization: str
    context_preview: str
    context_full_location: str
    findings_count: int
    context_version: str | None
    context_size_bytes: int


class SeedTask(TypedDict):
    """``EphemeralWorker.claim_task``: the seed's task record, ``data`` decoded."""

    task_id: str
    parent_shard: str | None
    type: str
    description: str
    data: Any
    pass_name: str
    posted_at: str
    status: str
    queue: str
    priority: int
    token: str | None
    attempt: int


class ShardStatus(TypedDict):
    """One entry of ``SonnetCoordinator.get_swarm_status()["shards"]``; ``tasks`` counts the
    shard's posted tasks by status (``pending_tasks`` is pending plus delayed)."""

    shard_id: str
    specialization: str | None
    findings_count: int
    pending_tasks: int
    alive: bool | None
    last_seen: str | None
    tasks: dict[str, int]


class SeedSwarmStatus(TypedDict):
    """``SonnetCoordinator.get_swarm_status``."""

    total_shards: int
    shards: list[ShardStatus]
    coordinator_id: str
    queues: dict[str, dict[str, int]]
    pending_tasks: int


class CoordinatorStatus(TypedDict):
    """``Coordinator.status``."""

    coordinator_id: str
    queues: dict[str, dict[str, int]]
    shards: list[dict[str, Any]]


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
    attempt: int


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


def _connect(
    *,
    url: str | None,
    swarm: str | None,
    redis_host: str | None,
    redis_port: int | None,
    redis_db: int = 0,
    redis_password: str | None = None,
    redis_ssl: bool = False,
    redis_username: str | None = None,
) -> Swarm:
    """A Swarm from the seed's keyword arguments, a URL, or the environment."""
    name = swarm or swarm_from_env(os.environ.get("SWARM_NAME"))
    if url is None and redis_host is None and redis_port is None:
        home = os.environ.get("SWARM_HOME") or str(DEFAULT_HOME)
        settings = Settings.from_url(
            os.environ.get("SWARM_URL") or "embedded", swarm=name, home=home
        )
        return Swarm(settings)
    if url is None:
        auth = ""
        if redis_password is not None or redis_username is not None:
            auth = quote(redis_username or "", safe="")
            if redis_password is not None:
                auth += ":" + quote(redis_password, safe="")
            auth += "@"
        scheme = "rediss" if redis_ssl else "redis"
        url = f"{scheme}://{auth}{redis_host or 'localhost'}:{redis_port or 6379}/{redis_db}"
    return Swarm(Settings.from_url(url, swarm=name))


def _agent_name(prefix: str, label: str | None = None) -> str:
    """``memory_research_1a2b3c4d``: the seed's id shape, reduced to characters keys allow."""
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in (label or ""))
    middle = f"_{cleaned[:40]}" if cleaned else ""
    return f"{prefix}{middle}_{secrets.token_hex(4)}"


def _queue(name: str) -> str:
    """The seed named queues ``queue:X``; the queue here is ``X``."""
    return name[len(_QUEUE_PREFIX) :] if name.startswith(_QUEUE_PREFIX) else name


def _stamp(ms: int | None) -> str:
    """A time as the seed showed it (ISO-8601; empty when unknown)."""
    return iso(ms) or ""


def _finding_dict(finding: Finding) -> SeedFinding:
    """A finding in the seed's shape: finding_id, task_id, worker_id, timestamp, content."""
    content: dict[str, Any] = {"summary": finding.summary}
    if finding.details is not None:
        content["details"] = finding.details
    content["sources"] = list(finding.sources)
    if finding.confidence is not None:
        content["confidence"] = finding.confidence
    content.update(finding.extra or {})
    return {
        "finding_id": finding.id,
        "task_id": finding.task_id,
        "worker_id": finding.worker or "unknown",
        "timestamp": _stamp(finding.created_at),
        "content": content,
        "queue": finding.queue,
        "pass_name": finding.pass_name,
        "superseded": finding.superseded,
    }


def _task_dict(task: Task) -> SeedTask:
    """A task in the seed's shape (task_id, parent_shard, type, description, data, ...)."""
    return {
        "task_id": task.id,
        "parent_shard": task.parent,
        "type": task.queue,
        "queue": task.queue,
        "description": task.description,
        "data": task.data if task.data is not None else {},
        "pass_name": task.pass_name or "unknown",
        "posted_at": _stamp(task.created_at),
        "status": task.status.value,
        "priority": task.priority,
        "token": task.token,
        "attempt": task.attempts,
    }


class _Role:
    """Shared construction: the seed's keywords, or ``url=``, or nothing (environment)."""

    def __init__(
        self,
        redis_host: str | None = None,
        redis_port: int | None = None,
        *,
        redis_password: str | None = None,
        redis_ssl: bool = False,
        redis_db: int = 0,
        redis_username: str | None = None,
        url: str | None = None,
        swarm: str | Swarm | None = None,
    ) -> None:
        if isinstance(swarm, Swarm):
            self.swarm = swarm
        else:
            self.swarm = _connect(
                url=url,
                swarm=swarm,
                redis_host=redis_host,
                redis_port=redis_port,
                redis_db=redis_db,
                redis_password=redis_password,
                redis_ssl=redis_ssl,
                redis_username=redis_username,
            )

    def close(self) -> None:
        self.swarm.close()


# --- modern role classes ------------------------------------------------------------------


class MemoryShard(_Role):
    """A long-lived agent that holds a big context, posts tasks and synthesises findings."""

    role = "shard"

    def __init__(
        self,
        specialization: str = "general",
        *,
        model: str | None = None,
        capacity_tokens: int | None = 200_000,
        agent_id: str | None = None,
        **connect: Any,
    ) -> None:
        super().__init__(**connect)
        self.specialization = specialization
        self.agent_id = agent_id or _agent_name("memory", specialization)
        self.agent = self.swarm.register(
            self.role,
            name=self.agent_id,
            model=model,
            specialization=specialization,
            capacity_tokens=capacity_tokens,
        )

    def publish(self, content: str | bytes | os.PathLike[str], source: str) -> ContextInfo:
        return self.swarm.publish_context(self.agent_id, content, source=source)

    def post(self, queue: str, description: str, data: Any = None, **options: Any) -> Task:
        return self.swarm.post_task(
            _queue(queue), description, data, parent=self.agent_id, **options
        )

    def findings(self, *, queue: str | None = None, pass_name: str | None = None) -> list[Finding]:
        """Every finding reported to this shard (all pages), oldest first."""
        out: list[Finding] = []
        cursor: str | None = None
        while True:
            page = self.swarm.findings(
                shard=self.agent_id,
                queue=_queue(queue) if queue else None,
                pass_name=pass_name,
                cursor=cursor,
                limit=500,
            )
            out.extend(page.items)
            cursor = page.cursor
            if cursor is None:
                return out

    def synthesize(self, pass_name: str, text: str, sources: Sequence[str]) -> Synthesis:
        return self.swarm.synthesize(self.agent_id, pass_name, text, list(sources))

    def heartbeat(self) -> None:
        self.swarm.heartbeat(self.agent_id)


class Worker(_Role):
    """An ephemeral worker: claim one task, read the shard's context, report, forget."""

    def __init__(
        self,
        redis_host: str | None = None,
        redis_port: int | None = None,
        *,
        worker_id: str | None = None,
        model: str | None = None,
        **connect: Any,
    ) -> None:
        super().__init__(redis_host, redis_port, **connect)
        self.worker_id = worker_id or _agent_name("worker")
        self.model = model
        self.task: Task | None = None
        self.context_version: str | None = None

    def claim(
        self, queue: str | Sequence[str], *, wait_s: float = 0, lease_s: int | None = None
    ) -> Task | None:
        queues = [_queue(queue)] if isinstance(queue, str) else [_queue(q) for q in queue]
        self.task = self.swarm.claim(queues, worker=self.worker_id, lease_s=lease_s, wait_s=wait_s)
        self.context_version = None
        return self.task

    def _claimed(self) -> Task:
        if self.task is None:
            raise ValidationError("no task claimed yet: call claim_task('queue:NAME') first")
        return self.task

    def parent_context(self) -> str:
        task = self._claimed()
        if not task.parent:
            raise NotFound(f"task {task.id} names no parent shard, so there is no context to read")
        info = self.swarm.context_info(task.parent)
        self.context_version = info.version
        return self.swarm.get_context(task.parent, version=info.version)

    def report(self, finding: Mapping[str, Any]) -> Finding:
        task = self._claimed()
        return self.swarm.report(
            task.id,
            task.token,
            finding,
            worker=self.worker_id,
            model=self.model,
            context_version=self.context_version,
        )


class Coordinator(_Role):
    """Watches the swarm, asks shards for syntheses, and messages agents."""

    def __init__(
        self,
        redis_host: str | None = None,
        redis_port: int | None = None,
        *,
        agent_id: str | None = None,
        model: str | None = None,
        **connect: Any,
    ) -> None:
        super().__init__(redis_host, redis_port, **connect)
        self.agent_id = agent_id or _agent_name("coordinator")
        self.agent = self.swarm.register("coordinator", name=self.agent_id, model=model)

    def status(self) -> CoordinatorStatus:
        shards = self.swarm.agents(role="shard")
        return {
            "coordinator_id": self.agent_id,
            "queues": self.swarm.queue_stats(),
            "shards": [a.to_dict() for a in shards],
        }

    def request_synthesis(self, shard_id: str, pass_name: str, instructions: str) -> Message:
        return self.swarm.request_synthesis(shard_id, pass_name, instructions, sender=self.agent_id)


# --- the seed's classes (swarm_architecture_v2.py) -----------------------------------------


class SwarmMemoryShard(MemoryShard):
    """The seed's memory shard: same constructor, methods and return shapes."""

    def __init__(
        self,
        redis_host: str | None = None,
        redis_port: int | None = None,
        specialization: str = "general",
        *,
        redis_password: str | None = None,
        redis_ssl: bool = False,
        url: str | None = None,
        swarm: str | Swarm | None = None,
    ) -> None:
        super().__init__(
            specialization,
            redis_host=redis_host,
            redis_port=redis_port,
            redis_password=redis_password,
            redis_ssl=redis_ssl,
            url=url,
            swarm=swarm,
        )
        self.context = ""
        self.worker_findings: list[dict[str, Any]] = []  # what collect_worker_finding got

    def load_context(self, context_text: str, context_source: str) -> ContextInfo:
        """Publish the shard's context (any size up to the limit; chunked, atomic)."""
        info = self.publish(context_text, context_source)
        self.context = context_text
        return info

    def spawn_worker_task(
        self,
        task_type: str,
        task_description: str,
        task_data: Any = None,
        pass_name: str | None = None,
    ) -> str:
        """Post a task to queue ``task_type`` for an ephemeral worker; returns its id."""
        task = self.post(task_type, task_description, task_data, pass_name=pass_name)
        return str(task.id)

    def collect_worker_finding(
        self, task_id: str, finding: Mapping[str, Any], worker_id: str | None = None
    ) -> str:
        """Record the finding of a worker this shard ran itself (not through a claim) and
        complete the task; returns the finding's id. Refused while another worker's live
        lease holds the task (that worker reports); on a task already settled the finding is
        kept, marked superseded."""
        try:
            stored = self.swarm.report(task_id, None, finding, worker=worker_id)
            fid = stored.id
        except AlreadyCompleted as exc:
            fid = str(exc.finding_id)
        self.worker_findings.append(dict(finding))
        return fid

    def get_all_findings(self, task_type: str | None = None) -> list[SeedFinding]:
        return [_finding_dict(f) for f in self.findings(queue=task_type)]

    def synthesize_findings(self, pass_name: str, synthesis: str, sources: Sequence[str]) -> str:
        return str(self.synthesize(pass_name, synthesis, sources).id)

    def get_context_for_worker(self) -> WorkerContext:
        """The seed's package, with the context's version and size; ``findings_count`` is
        every finding reported to this shard (one counter read)."""
        try:
            info: ContextInfo | None = self.swarm.context_info(self.agent_id)
        except NotFound:
            info = None
        stats = self.swarm.shard_stats([self.agent_id])[self.agent_id]
        return {
            "parent_shard_id": self.agent_id,
            "specialization": self.specialization,
            "context_preview": self.context[:5000],
            "context_full_location": f"swarm context get {self.agent_id}",
            "findings_count": stats["findings"],
            "context_version": info.version if info else None,
            "context_size_bytes": info.size_bytes if info else 0,
        }


class EphemeralWorker(Worker):
    """The seed's ephemeral worker (constructor: ``redis_host, redis_port`` or ``url=``)."""

    @property
    def task_id(self) -> str | None:
        return self.task.id if self.task is not None else None

    @property
    def parent_shard_id(self) -> str | None:
        return self.task.parent if self.task is not None else None

    def claim_task(self, queue_name: str) -> SeedTask | None:
        """Claim the next task of ``queue:NAME`` (or ``NAME``); None when the queue is empty."""
        task = self.claim(queue_name)
        return None if task is None else _task_dict(task)

    def get_parent_context(self) -> str:
        return self.parent_context()

    def report_finding(self, finding: Mapping[str, Any]) -> str:
        """Report the claimed task's finding; returns its id. As in the seed, a task settled
        meanwhile is no error: the finding is kept, marked superseded."""
        try:
            return str(self.report(finding).id)
        except AlreadyCompleted as exc:
            return str(exc.finding_id)


class SonnetCoordinator(Coordinator):
    """The seed's coordinator (constructor: ``redis_host, redis_port`` or ``url=``)."""

    def get_swarm_status(self) -> SeedSwarmStatus:
        """Every shard with its findings and pending tasks: two round trips whatever the
        number of tasks (the swarm's status, then per-shard counters)."""
        status = self.swarm.status()
        # The seed listed shards in the order they joined.
        agents = sorted(
            (a for a in status.roster if a.role == "shard"),
            key=lambda a: (a.registered_at or 0, a.id),
        )
        counts = self.swarm.shard_stats([a.id for a in agents])
        shards: list[ShardStatus] = []
        for agent in agents:
            mine = counts[agent.id]
            shards.append(
                {
                    "shard_id": agent.id,
                    "specialization": agent.specialization,
                    "findings_count": mine["findings"],
                    "pending_tasks": mine["tasks"]["pending"] + mine["tasks"]["delayed"],
                    "alive": agent.alive,
                    "last_seen": iso(agent.last_seen),
                    "tasks": mine["tasks"],
                }
            )
        return {
            "total_shards": len(shards),
            "shards": shards,
            "queues": status.queues,
            "pending_tasks": status.totals["pending"] + status.totals["delayed"],
            "coordinator_id": self.agent_id,
        }

    def request_synthesis(  # type: ignore[override]
        self, shard_id: str, pass_name: str, instructions: str = ""
    ) -> str:
        return str(super().request_synthesis(shard_id, pass_name, instructions).id)


# --- V1 (redis_swarm_coordinator.py) -------------------------------------------------------

V1_STALE_S = 300  # V1 took an agent without a heartbeat for 5 minutes as gone


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


class RedisSwarmCoordinator(_Role):
    """V1's all-in-one coordinator, over the core: claims are leases, contexts versioned."""

    def __init__(
        self,
        redis_host: str | None = None,
        redis_port: int | None = None,
        redis_db: int = 0,
        *,
        redis_password: str | None = None,
        redis_ssl: bool = False,
        url: str | None = None,
        swarm: str | Swarm | None = None,
    ) -> None:
        super().__init__(
            redis_host=redis_host,
            redis_port=redis_port,
            redis_db=redis_db,
            redis_password=redis_password,
            redis_ssl=redis_ssl,
            url=url,
            swarm=swarm,
        )
        self.agent_id: str | None = None
        self.role: str | None = None
        self.parent_id: str | None = None
        self._tokens: dict[str, str | None] = {}

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
        meta = dict(metadata or {})
        agent = self.swarm.register(
            role,
            name=_agent_name(role),
            model=meta.get("model"),
            specialization=meta.get("specialization"),
            capacity_tokens=context_capacity,
            parent=parent_id,
            metadata=meta,
        )
        self.agent_id, self.role, self.parent_id = agent.id, role, parent_id
        return str(agent.id)

    def heartbeat(self, agent_id: str | None = None) -> None:
        self.swarm.heartbeat(self._me(agent_id))

    def update_context(
        self, context: str, agent_id: str | None = None, version: str | None = None
    ) -> str:
        """Publish a context; returns its version (a content hash: ``version`` is ignored,
        since a caller-chosen tag could name two different texts)."""
        info = self.swarm.publish_context(self._me(agent_id), context, source=version or "v1")
        return str(info.version)

    def get_context(self, agent_id: str) -> str | None:
        try:
            return self.swarm.get_context(agent_id)
        except NotFound:
            return None

    def post_task(self, queue_name: str, task_type: str, task_data: Any, priority: int = 0) -> str:
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
        task = self.swarm.claim(_queue(queue_name), worker=self._me(), lease_s=timeout)
        if task is None:
            return None
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
            "attempt": task.attempts,
        }

    def complete_task(self, task_id: str, result: Any) -> str:
        """Report ``result`` as the task's finding (a dict with a summary, or any value).
        Without this coordinator's claim of the task, it is completed from outside any
        lease: refused while another worker's live lease holds it."""
        token = self._tokens.pop(task_id, None)
        if isinstance(result, Mapping) and "summary" in result:
            finding: Mapping[str, Any] = result
        else:
            finding = {"summary": str(result)[:2000], "result": result}
        try:
            return str(self.swarm.report(task_id, token, finding, worker=self.agent_id).id)
        except AlreadyCompleted as exc:
            return str(exc.finding_id)

    def send_message(self, to_agent_id: str, message: Any) -> str:
        body = message if isinstance(message, str) else None
        data = None if isinstance(message, str) else message
        sent = self.swarm.send(
            to_agent_id,
            body or str(message.get("type", "message")),
            sender=self.agent_id,
            data=data,
        )
        return str(sent.id)

    def get_messages(self, agent_id: str | None = None, limit: int = 10) -> list[V1Message]:
        out: list[V1Message] = []
        for msg in self.swarm.inbox(self._me(agent_id), ack=True, limit=limit):
            out.append(
                {
                    "message_id": msg.id,
                    "from": msg.sender or "unknown",
                    "to": msg.to,
                    "timestamp": _stamp(msg.created_at),
                    "content": msg.data if msg.data is not None else msg.body,
                    "kind": msg.kind,
                }
            )
        return out

    def list_active_agents(self, include_subagents: bool = False) -> list[V1Agent]:
        """Agents with a heartbeat in the last 5 minutes (V1's rule); sub-agents (those
        registered with a parent) only with ``include_subagents``."""
        agents = self.swarm.agents(alive=True, stale_after_s=V1_STALE_S)
        return [_v1_agent(a) for a in agents if include_subagents or not a.parent]

    def get_queue_status(self, queue_name: str) -> V1QueueStatus:
        queue = _queue(queue_name)
        counts = self.swarm.queue_stats().get(queue, {})
        page = self.swarm.list_tasks(queue=queue, status="pending", limit=10)
        return {
            "queue": queue,
            "pending_tasks": counts.get("pending", 0),
            "counts": counts,
            "tasks": [t.id for t in page.items],
        }

    def cleanup_stale_agents(self, max_age_seconds: int = 300) -> list[str]:
        return list(self.swarm.sweep(max_age_seconds))
