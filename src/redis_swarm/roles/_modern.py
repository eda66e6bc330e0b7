"""The role classes that return typed records: ``MemoryShard``, ``Worker``, ``Coordinator``."""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from .._errors import NotFound, ValidationError
from .._models import ContextInfo, Finding, Message, Synthesis, Task
from ._base import _agent_name, _queue, _Role


class CoordinatorStatus(TypedDict):
    """``Coordinator.status``."""

    coordinator_id: str
    queues: dict[str, dict[str, int]]
    shards: list[dict[str, Any]]


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


def _queues(queue: str | Sequence[str]) -> list[str]:
    return [_queue(queue)] if isinstance(queue, str) else [_queue(q) for q in queue]


@dataclass
class _Loop:
    """A worker's ``tasks()`` loop: the queues, lease and wait its reports claim the next
    task with, the task the last report leased, and whether the task yielded was reported
    (its report waited for the next already)."""

    queues: list[str]
    lease_s: int | None
    wait_s: float
    following: Task | None = None
    reported: bool = False


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
        self._loop: _Loop | None = None  # inside ``tasks()``: what a report claims next

    def claim(
        self, queue: str | Sequence[str], *, wait_s: float = 0, lease_s: int | None = None
    ) -> Task | None:
        queues = _queues(queue)
        self.task = self.swarm.claim(queues, worker=self.worker_id, lease_s=lease_s, wait_s=wait_s)
        self.context_version = None
        return self.task

    def tasks(
        self, queue: str | Sequence[str], *, wait_s: float = 0, lease_s: int | None = None
    ) -> Generator[Task, None, None]:
        """Claim and yield tasks of ``queue`` until none is left (after waiting ``wait_s``).
        Each ``report`` in the loop also leases the next task, in the same round trip: one
        round trip per task, not two, and waits for it (``wait_s``) in that round trip too
        when the worker was woken for its task. Leaving the loop early gives back a task
        leased and not yet yielded (released: it counts as neither a failure nor an
        abandon)."""
        loop = _Loop(_queues(queue), lease_s, wait_s)
        self._loop = loop
        try:
            task = self.claim(loop.queues, wait_s=wait_s, lease_s=lease_s)
            while task is not None:
                loop.reported = False
                yield task
                task, loop.following = loop.following, None
                if task is not None:
                    self.task, self.context_version = task, None
                elif not loop.reported:  # not reported: claim (and wait) anew
                    task = self.claim(loop.queues, wait_s=wait_s, lease_s=lease_s)
                # (reported with nothing next: the report waited wait_s already)
        finally:
            self._loop = None
            if loop.following is not None:
                self.swarm.release(loop.following.id, loop.following.token)

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
        """Report the claimed task's finding (inside ``tasks()``, leasing the next task)."""
        task = self._claimed()
        loop = self._loop
        if loop is None:
            return self.swarm.report(
                task.id, task.token, finding, worker=self.worker_id, model=self.model,
                context_version=self.context_version,
            )  # fmt: skip
        found, loop.following = self.swarm.report(
            task.id, task.token, finding, worker=self.worker_id, model=self.model,
            context_version=self.context_version, claim_next=loop.queues,
            next_lease_s=loop.lease_s, wait_s=loop.wait_s,
        )  # fmt: skip
        loop.reported = True
        return found


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
