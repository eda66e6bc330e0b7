"""The role classes that return typed records: ``MemoryShard``, ``Worker``, ``Coordinator``."""

from __future__ import annotations

import ipaddress
import os
import re
import time
import warnings
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from .._context_records import ContextInfo
from .._errors import Conflict, ConnectionFailed, NotFound, ValidationError
from .._hints import LIST_CONTEXTS
from .._models import Agent, Finding, Inbox, Message, Synthesis, Task, TaskStatus
from .._usage import Usage
from .._validate import begins_like_option, check_agent, check_json_keys, option_like
from ._base import (
    Connect,
    ConnectByName,
    PublishOptions,
    Unpack,
    _agent_name,
    _check_text,
    _finding_ids,
    _queue,
    _Role,
    report_sent_said,
)


class CoordinatorStatus(TypedDict):
    """``Coordinator.status``."""

    coordinator_id: str
    queues: dict[str, dict[str, int]]
    shards: list[dict[str, Any]]


class _Agent(_Role):
    """A role registered as an agent under ``agent_id`` (a shard, a coordinator), with an
    inbox of its own."""

    agent_id: str

    def inbox(self, *, limit: int = 10, wait_s: float = 0, ack: bool = True) -> Inbox:
        """This agent's oldest unread messages (sent to it, and broadcasts), at most
        ``limit``: consumed, unless ``ack=False`` (a peek). With ``wait_s``, an empty inbox
        is waited on until a message arrives or ``wait_s`` passes."""
        return self.swarm.inbox(self.agent_id, ack=ack, limit=limit, wait_s=wait_s)


# What is a server's address, not a specialization: an IP address, host:port, a URL, localhost.
_ADDRESS = re.compile(r"localhost|[^\s:/]+:\d{1,5}|[a-z][a-z0-9+.-]*://.*", re.IGNORECASE)


def _no_address(specialization: str) -> str:
    """``MemoryShard``'s specialization, refused when it is a server's address: the seed's
    classes and ``Worker`` / ``Coordinator`` take ``redis_host`` first, this one its
    specialization, so ``MemoryShard("10.0.0.5")`` registered a shard specialised in
    "10.0.0.5" on the default server."""
    text = specialization.strip()
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        if not _ADDRESS.fullmatch(text):
            return specialization
    raise ValidationError(
        f"specialization {specialization!r} is a server's address: MemoryShard takes its "
        f'specialization first and the server by name: MemoryShard("general", '
        f'redis_host={text!r}) or url="redis://..." (SwarmMemoryShard takes redis_host, '
        "redis_port first, as the seed's class did)"
    )


class MemoryShard(_Agent):
    """A long-lived agent that holds a big context, posts tasks and synthesises findings;
    ``inbox()`` reads what coordinators send it (a ``synthesis_request``, ...)."""

    role = "shard"

    def __init__(
        self,
        specialization: str = "general",
        *,
        model: str | None = None,
        capacity_tokens: int | None = 200_000,
        agent_id: str | None = None,
        **connect: Unpack[ConnectByName],
    ) -> None:
        self.specialization = _no_address(_check_text("specialization", specialization))
        if agent_id is not None:  # (checked before connecting; "" is refused, not replaced)
            check_agent("agent_id", agent_id)
        super().__init__(**connect)
        self.agent_id = _agent_name("memory", specialization) if agent_id is None else agent_id
        try:
            self.agent = self.swarm.register(
                self.role,
                name=self.agent_id,
                model=model,
                specialization=specialization,
                capacity_tokens=capacity_tokens,
            )
        except BaseException:
            self.close()
            raise

    def publish(
        self,
        content: str | bytes | os.PathLike[str],
        source: str,
        **options: Unpack[PublishOptions],
    ) -> ContextInfo:
        """Publish ``content`` (text, bytes, or a file's path) as this shard's context, a new
        version that workers of its tasks read; ``source`` says where it came from.
        ``options`` are ``Swarm.publish_context``'s: ``media_type`` (default text/markdown;
        bytes that are not UTF-8 text need one that is not text, e.g.
        ``application/octet-stream``), ``compression``, ``repair``, ``allow_empty``."""
        return self.swarm.publish_context(self.agent_id, content, source=source, **options)

    def post(self, queue: str, description: str, data: Any = None, **options: Any) -> Task:
        """Post a task to ``queue`` (``NAME`` or the seed's ``queue:NAME``) with this shard
        as its parent, so that its worker reads this shard's context and its finding is
        reported to it; ``options`` are ``Swarm.post_task``'s (priority, pass_name, ...)."""
        if data is not None:
            check_json_keys("task data", data)
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
                queue=None if queue is None else _queue(queue),
                pass_name=pass_name,
                cursor=cursor,
                limit=500,
            )
            out.extend(page.items)
            cursor = page.cursor
            if cursor is None:
                return out

    def synthesize(self, pass_name: str, text: str, sources: Sequence[str]) -> Synthesis:
        """Store this shard's synthesis of ``pass_name``, citing ``sources`` (ids of stored
        findings of that pass: ``NotFound`` for one that is not stored)."""
        return self.swarm.synthesize(self.agent_id, pass_name, text, _finding_ids(sources))

    def heartbeat(self) -> None:
        """Mark the shard present. A shard swept as stale (``sweep``, V1's
        ``cleanup_stale_agents``) is registered again under its id, with its profile."""
        self.agent = self._present(self.agent)


def _queues(queue: str | Sequence[str]) -> list[str]:
    if isinstance(queue, str):
        return [_queue(queue)]
    if not isinstance(queue, Sequence):
        raise ValidationError(
            "claim takes a queue name ('NAME' or 'queue:NAME') or a list of them, "
            f"not {type(queue).__name__}"
        )
    return [_queue(q) for q in queue]


# A task a ``tasks()`` loop moved on from unreported is held (so that the loop does not yield
# it again at once) for at most this share of its lease, never until it runs out: a lease
# that ran out counts as an abandon (a worker gone), and enough of them dead-letter the task.
SKIPPED_HOLD_SHARE = 0.5


@dataclass
class _Loop:
    """A worker's ``tasks()`` loop: the queues, lease and wait its reports claim the next
    task with, the task the last report leased (and when the loop would give it back if
    skipped), whether the task yielded was reported (its report waited for the next
    already), and the tasks the loop moved on from unreported (still leased: given back
    when the loop ends or half their lease has passed, not at once, or the loop would yield
    them again at once)."""

    queues: list[str]
    lease_s: float | None
    wait_s: float
    following: Task | None = None
    following_until: float = 0.0
    reported: bool = False
    # yielded, neither reported nor released; with when to give each back (monotonic)
    skipped: list[tuple[Task, float]] = field(default_factory=list)
    # released in the loop (``release()``): never yielded by it again, held as a skipped
    # task when a claim of the loop leases it again
    released: set[str] = field(default_factory=set)

    def hold_until(self, task: Task) -> float:
        """When to give back ``task``, leased just now, if the loop moves on from it."""
        return time.monotonic() + SKIPPED_HOLD_SHARE * float(self.lease_s or task.lease_s)

    def wait(self) -> float:
        """How long a claim of the loop waits: ``wait_s``, but not past the time to give a
        skipped task back (nothing claimed by then: the loop ends, giving them back)."""
        if not self.skipped:
            return self.wait_s
        until = min(until for _, until in self.skipped)
        return max(0.0, min(self.wait_s, until - time.monotonic()))

    def due(self) -> list[Task]:
        """The skipped tasks to give back now, taken off the list."""
        now = time.monotonic()
        due = [task for task, until in self.skipped if until <= now]
        self.skipped = [(task, until) for task, until in self.skipped if until > now]
        return due

    def held(self) -> list[Task]:
        """Every task leased for the loop and not yielded, or skipped."""
        following = [self.following] if self.following is not None else []
        return following + [task for task, _ in self.skipped]


class Worker(_Role):
    """An ephemeral worker: claim one task, read the shard's context, report, forget.

    It holds one task at a time: claiming again before the held task is reported, released
    or failed is refused (``Conflict``), unless the task is no longer leased to it (failed,
    released or settled from elsewhere, or its lease lost). ``close()`` gives a held task
    back to its queue and, when the worker made its own id (no ``worker_id`` given) and has
    claimed a task or sent a heartbeat (which registers it; a claim that took nothing does
    not), deregisters it: an ephemeral worker that is gone is not counted alive; its findings
    keep its name. With the server gone, ``close()`` does not raise: the held task stays
    leased until its lease runs out and then goes back by itself (a ``UserWarning`` names
    it), and the worker is swept as stale. A worker given a
    ``worker_id`` leaves that agent registered: the caller owns that identity (it may be an
    agent registered with a model, with messages waiting, or another process's worker).

    With a ``model``, the worker registers itself (role ``worker``, its model) at its first
    claim, since a claim registers a worker without one: one round trip more, once."""

    _id_named = "worker_id"  # (its repr's)
    # How the refusals name the methods that settle a held task (the seed's class renames).
    _settle = "report() or release()"
    _report_call, _claim_call = "report()", "claim()"

    def __init__(
        self,
        redis_host: str | None = None,
        redis_port: int | None = None,
        *,
        worker_id: str | None = None,
        model: str | None = None,
        **connect: Unpack[Connect],
    ) -> None:
        # Checked before connecting: a bad id is refused here, not at the first claim.
        given = None if worker_id is None else check_agent("worker_id", worker_id)
        super().__init__(redis_host, redis_port, **connect)
        self.worker_id = given or _agent_name("worker")
        self._own_id = given is None  # an identity made here: close() may end it
        self.model = model
        self.task: Task | None = None
        self.context_version: str | None = None
        self._held: Task | None = None  # leased to this worker, not yet reported or released
        self._loop: _Loop | None = None  # inside ``tasks()``: what a report claims next
        self._announced = model is None  # a worker with a model registers at its first claim
        self._joined = False  # registered by a claim or a heartbeat (see close())
        self._claimed_once = False  # a claim was made (one that found nothing too)
        # (task id, how) of the task this worker gave up itself since its last claim:
        # "released" or "failed"; a report of it is refused (see report())
        self._gave_up: tuple[str, str] | None = None
        # (task id, claim number, finding id) of the report tried and not settled: a retry
        # (its reply lost) reports under the same id, so the finding is stored once
        self._report_id: tuple[str, int, str] | None = None
        if given is not None and begins_like_option(given):
            self._refuse_new_option_like(given)

    def _refuse_new_option_like(self, worker_id: str) -> None:
        """Refuse (at once, not at the first claim) a ``worker_id`` beginning with '-' that
        names no registered agent: a claim would register it, and the core refuses a new
        agent so named; one stored before that rule stays usable."""
        try:
            self.swarm.get_agent(worker_id)
        except NotFound:
            self.close()
            raise option_like("worker_id", worker_id) from None

    def _profile(self) -> Agent:
        """The agent this worker is: implicit (as a claim registers it) without a model."""
        return Agent(
            id=self.worker_id, role="worker", model=self.model, implicit=self.model is None
        )

    @property
    def held(self) -> Task | None:
        """The task this worker holds: claimed, not yet reported or released."""
        return self._held

    def claim(
        self, queue: str | Sequence[str], *, wait_s: float = 0, lease_s: float | None = None
    ) -> Task | None:
        """Lease the next task of ``queue`` (None when there is none after ``wait_s``);
        refused while this worker holds one that is still leased to it."""
        held = self._held
        if held is not None:
            if self._leased_to_me(held):
                raise Conflict(
                    f"worker {self.worker_id} still holds task {held.id} (claimed, not "
                    f"reported): call {self._settle} first; a worker holds one task at a time"
                )
            self._held = None  # failed, released or settled from elsewhere: not held
        return self._lease(_queues(queue), wait_s=wait_s, lease_s=lease_s)

    def _leased_to_me(self, task: Task) -> bool:
        """Whether ``task`` is still leased to this worker under the lease it claimed (one
        read): not when it was failed, released or settled from elsewhere, or re-leased."""
        try:
            now = self.swarm.get_task(task.id)
        except NotFound:
            return False
        return (
            now.status == TaskStatus.CLAIMED
            and now.worker == self.worker_id
            and now.attempts == task.attempts
        )

    def _lease(self, queues: list[str], *, wait_s: float, lease_s: float | None) -> Task | None:
        if not self._announced:  # (the claim's implicit registration has no model)
            self._register(self._profile())
            self._announced = self._joined = True
        try:
            self.task = self.swarm.claim(
                queues, worker=self.worker_id, lease_s=lease_s, wait_s=wait_s
            )
        except ConnectionFailed:
            self._joined = True  # its reply lost: the claim may have registered the worker
            raise
        # A claim that takes nothing registers no one: close() then has no one to remove.
        self._joined = self._joined or self.task is not None
        self._held = self.task
        self.context_version, self._gave_up, self._claimed_once = None, None, True
        return self.task

    def release(self) -> Task | None:
        """Give the held task back to its queue now (counted neither as a failure nor as an
        abandon: the next worker gets it at once). None when no task is held, or when the
        held task is no longer leased to this worker (failed, released or settled from
        elsewhere, or its lease lost): there is nothing of it to give back."""
        held = self._held
        if held is None:
            return None
        try:
            released: Task | None = self.swarm.release(held.id, held.token)
        except (Conflict, NotFound):
            released = None  # not this worker's any more: nothing to give back
        self._held = None
        if released is not None:
            self._gave_up = (held.id, "released")
            if self._loop is not None:  # (not yielded by the loop again: see tasks())
                self._loop.released.add(held.id)
        return released

    def fail(self, reason: str, *, retry: bool = True, usage: Usage | None = None) -> Task:
        """Give the held task up as failed, with ``reason`` (one of its ``max_attempts``):
        back to its queue after a backoff while attempts remain and ``retry``, else
        dead-lettered with the reason; returns the task as it is now. ``usage``: what the
        failed agent run cost, when known. The worker holds no task afterwards (also when
        the core refuses: ``LeaseLost`` for a lease that is no longer this worker's)."""
        task = self._claimed()
        held = self._held
        if held is None:
            raise Conflict(
                f"worker {self.worker_id} holds no task to fail: task {task.id} was "
                "reported, released or failed already; claim another one first"
            )
        try:
            failed = self.swarm.fail(held.id, held.token, reason, retry=retry, usage=usage)
        except (Conflict, NotFound):
            self._held = None  # not this worker's any more
            raise
        self._held = None
        self._gave_up = (held.id, "failed")
        return failed

    def heartbeat(self) -> None:
        """Mark the worker present (registered again when it was swept as stale) and renew
        the lease of the task it holds (``LeaseLost`` when it was lost meanwhile)."""
        self._present(self._profile())
        self._announced = self._joined = True
        held = self._held
        if held is not None:
            try:
                self.swarm.renew(held.id, held.token)
            except (Conflict, NotFound):
                self._held = None
                raise

    def _give_back(self) -> None:
        loop, self._loop = self._loop, None
        held = [self._held] if self._held is not None else []
        if loop is not None:
            held += loop.held()
            loop.following, loop.skipped = None, []
        self._held = None
        reached = self._give_back_leases([(task.id, task.token) for task in held])
        if reached and self._joined and self._own_id:
            self._leave(self.worker_id)

    def _release_all(self, tasks: Sequence[Task]) -> None:
        """Give ``tasks`` back as the loop moves on; one whose lease was lost or that was
        settled meanwhile is no longer this worker's to give (at close, see
        ``_give_back_leases``: there a failure does not raise)."""
        for task in tasks:
            try:
                self.swarm.release(task.id, task.token)
            except (Conflict, NotFound):
                continue

    def tasks(
        self, queue: str | Sequence[str], *, wait_s: float = 0, lease_s: float | None = None
    ) -> Generator[Task, None, None]:
        """Claim and yield tasks of ``queue`` until none is left (after waiting ``wait_s``).
        Each ``report`` in the loop also leases the next task, in the same round trip: one
        round trip per task, not two, and waits for it (``wait_s``) in that round trip too
        when the worker was woken for its task. A task the loop moves on from without a
        report stays leased (so that it is not yielded again at once) until the loop ends
        or half its lease has passed, then is given back: at the loop's next step, and a
        claim of the loop waits no longer than that (none by then: the loop ends). So is a
        task leased and not yet yielded when the loop is left early (released: it counts as
        neither a failure nor an abandon)."""
        loop = _Loop(_queues(queue), lease_s, wait_s)
        task = self.claim(loop.queues, wait_s=wait_s, lease_s=lease_s)
        until = loop.hold_until(task) if task is not None else 0.0
        self._loop = loop
        try:
            while task is not None:
                loop.reported = False
                yield task
                self._ensure_open()  # (a loop resumed after close() goes no further)
                if self._held is not None and self._held.id == task.id:
                    loop.skipped.append((self._held, until))  # neither reported nor released
                    self._held = None
                self._release_all(loop.due())
                task, loop.following = loop.following, None
                if task is not None:
                    until = loop.following_until
                    self.task, self._held, self.context_version = task, task, None
                    self._gave_up = None
                elif not loop.reported:  # not reported: claim (and wait) anew
                    task = self._lease(loop.queues, wait_s=loop.wait(), lease_s=lease_s)
                    until = loop.hold_until(task) if task is not None else 0.0
                # (reported with nothing next: the report waited already)
                while task is not None and task.id in loop.released:
                    # Given back in this loop and leased by it again: not yielded again (it
                    # would be at once, for ever), held as a skipped task (given back when
                    # the loop ends or half its lease has passed); another worker had it
                    # to take meanwhile.
                    loop.skipped.append((task, until))
                    self._held = None
                    task = self._lease(loop.queues, wait_s=loop.wait(), lease_s=lease_s)
                    until = loop.hold_until(task) if task is not None else 0.0
        finally:
            if self._loop is loop:  # (close() gave its tasks back already)
                self._loop = None
                self._release_all(loop.held())

    def _claimed(self) -> Task:
        if self.task is None:
            if self._claimed_once:
                raise ValidationError(
                    f"no task held: the last {self._claim_call} found none (the queue was "
                    f"empty, it returned None); call {self._claim_call} again for one"
                )
            raise ValidationError("no task claimed yet: call claim_task('queue:NAME') first")
        return self.task

    def parent_context(self) -> str:
        """The context of the shard that posted the claimed task, at its current version
        (``NotFound`` when the task names no shard, or the shard published none)."""
        parent = self._parent(self._claimed())
        return self._read_context(parent, self.swarm.context_info(parent))

    def _parent(self, task: Task) -> str:
        if not task.parent:
            raise NotFound(
                f"task {task.id} names no parent shard, so there is no context to read: do it "
                "from its description and data, or read a context by its owner's name "
                f"(swarm.get_context(OWNER), swarm context get OWNER {LIST_CONTEXTS}); a "
                "shard's tasks name it when it posts them (post_task(..., parent=SHARD), "
                "swarm task post ... --parent SHARD)"
            )
        return task.parent

    def _read_context(self, owner: str, info: ContextInfo) -> str:
        """``owner``'s context at ``info``'s version, which the report will name."""
        self.context_version = info.version
        return self.swarm.get_context(owner, version=info.version)

    def report(self, finding: Mapping[str, Any]) -> Finding:
        """Report the claimed task's finding (inside ``tasks()``, leasing the next task).
        Refused (``Conflict``) for a task this worker gave up itself (``release()``,
        ``fail()``): another worker may hold it now. A report whose reply was lost
        (``ConnectionFailed`` with ``sent``) may have been stored: trying again reports under
        the same finding id, so that the finding is stored once."""
        task = self._claimed()
        if self._held is None and self._gave_up is not None and self._gave_up[0] == task.id:
            how = "released it" if self._gave_up[1] == "released" else "gave it up as failed"
            raise Conflict(
                f"worker {self.worker_id} {how} itself: task {task.id} is no longer its to "
                "report (another worker may hold it now, whose finding this report would "
                f"supersede); claim again ({self._claim_call}) to report a task"
            )
        check_json_keys("the finding", finding)
        tried = self._report_id
        if tried is None or tried[:2] != (task.id, task.attempts):
            tried = self._report_id = (task.id, task.attempts, self.swarm.new_finding_id())
        fid = tried[2]
        loop = self._loop
        try:
            if loop is None:
                found = self.swarm.report(
                    task.id, task.token, finding, worker=self.worker_id, model=self.model,
                    context_version=self.context_version, finding_id=fid,
                )  # fmt: skip
            else:
                found, loop.following = self.swarm.report(
                    task.id, task.token, finding, worker=self.worker_id, model=self.model,
                    context_version=self.context_version, claim_next=loop.queues,
                    next_lease_s=loop.lease_s, wait_s=loop.wait(), finding_id=fid,
                )  # fmt: skip
            if loop is not None:
                if loop.following is not None:
                    loop.following_until = loop.hold_until(loop.following)
                loop.reported = True
        except (Conflict, NotFound):
            self._settled(task)  # settled meanwhile, or not this worker's: nothing held
            raise
        except ConnectionFailed as exc:
            if not exc.sent:
                raise
            raise report_sent_said(exc, fid, self._report_call) from exc
        self._settled(task)
        return found

    def _settled(self, task: Task) -> None:
        self._report_id = None
        if self._held is not None and self._held.id == task.id:
            self._held = None


class Coordinator(_Agent):
    """Watches the swarm, asks shards for syntheses, and messages agents (``send``,
    ``broadcast``); ``inbox()`` reads what agents send it."""

    def __init__(
        self,
        redis_host: str | None = None,
        redis_port: int | None = None,
        *,
        agent_id: str | None = None,
        model: str | None = None,
        **connect: Unpack[Connect],
    ) -> None:
        if agent_id is not None:  # (checked before connecting; "" is refused, not replaced)
            check_agent("agent_id", agent_id)
        super().__init__(redis_host, redis_port, **connect)
        self.agent_id = _agent_name("coordinator") if agent_id is None else agent_id
        try:
            self.agent = self.swarm.register("coordinator", name=self.agent_id, model=model)
        except BaseException:
            self.close()
            raise

    def heartbeat(self) -> None:
        """Mark the coordinator present (registered again when it was swept as stale)."""
        self.agent = self._present(self.agent)

    def status(self) -> CoordinatorStatus:
        """This coordinator's id, the task counts of every queue, and the registered
        shards (each as a dict)."""
        shards = self.swarm.agents(role="shard")
        return {
            "coordinator_id": self.agent_id,
            "queues": self.swarm.queue_stats(),
            "shards": [a.to_dict() for a in shards],
        }

    def request_synthesis(self, shard_id: str, pass_name: str, instructions: str = "") -> Message:
        """Put a ``synthesis_request`` for ``pass_name`` in the shard's inbox, with
        ``instructions`` (none by default, as the seed's class); the shard reads it with
        ``inbox()`` and answers with ``synthesize``."""
        return self.swarm.request_synthesis(shard_id, pass_name, instructions, sender=self.agent_id)

    def send(
        self,
        agent_id: str,
        text: str,
        *,
        kind: str = "text",
        data: Mapping[str, Any] | None = None,
    ) -> Message:
        """Put a message in a registered agent's inbox (``NotFound`` when it is not), from
        this coordinator; ``kind`` names it, ``data`` carries a JSON object with it."""
        if data is not None:
            check_json_keys("the message's data", data)
        return self.swarm.send(agent_id, text, sender=self.agent_id, kind=kind, data=data)

    def broadcast(
        self, text: str, *, kind: str = "text", data: Mapping[str, Any] | None = None
    ) -> Message:
        """Send a message to every agent (each reads it once, in its own inbox): those
        registered now, this coordinator aside (its ``receivers``). With none it reaches
        nobody, and a ``UserWarning`` says so."""
        return self._broadcast("broadcast", text, kind=kind, data=data)

    def _broadcast(
        self, said_by: str, text: str, *, kind: str, data: Mapping[str, Any] | None
    ) -> Message:
        """``broadcast`` as method ``said_by`` names it in its warning."""
        if data is not None:
            check_json_keys("the message's data", data)
        sent = self.swarm.broadcast(text, sender=self.agent_id, kind=kind, data=data)
        if sent.unreached:  # (nobody ever reads it: said in the core's words)
            warnings.warn(f"{said_by}: {sent.unreached}", UserWarning, stacklevel=3)
        return sent
