"""The seed's classes (swarm_architecture_v2.py): ``SwarmMemoryShard``, ``EphemeralWorker``
and ``SonnetCoordinator``, over the modern ones, returning the seed's shapes."""

from __future__ import annotations

import contextlib
import shlex
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypedDict

from .._codec import dumps, iso
from .._config import Settings
from .._context_records import ContextInfo
from .._env import ENV_URL
from .._errors import AlreadyCompleted, ConnectionFailed, NotFound, SwarmError, ValidationError
from .._models import Finding, Task
from .._prompts import swarm_command
from .._validate import check_id, check_json_keys
from ._base import (
    Connect,
    PublishOptions,
    UncitedSources,
    Unpack,
    _attempt,
    _finding_ids,
    _stamp,
    _superseded,
    in_callers_words,
    sent_said,
)
from ._modern import Coordinator, MemoryShard, Worker
from ._v1 import V1Message, outgoing, read_messages

# The pass of a task posted outside one, as the seed's task record wrote it (``pass_name or
# "unknown"``): seed code reads a str there. Its finding dicts, which the seed gave no pass,
# say the same, so one task never shows two answers.
_NO_PASS = "unknown"

# The seed's synthesis stored its ``sources`` as given, any strings (its own example cites
# the made-up "finding_12345"); a synthesis here cites only stored findings (the core checks
# them in the same step as the write). So the seed's ``synthesize_findings`` cites the
# sources that are findings of this swarm and keeps the others as plain references, on a
# last line of the text: ``REFERENCES`` and their JSON list; those shaped like finding ids
# are said in an ``UncitedSources`` warning (a typo, another swarm's finding).
REFERENCES = "References (not findings of this swarm): "


def _uncited(
    pass_name: str, stored: str, sources: list[str], unknown: Sequence[str], *, cites_none: bool
) -> str | None:
    """What the ``UncitedSources`` warning of ``synthesize_findings`` says of synthesis
    ``stored``: that it cites no finding (``cites_none``: none of ``sources`` is a finding of
    this swarm), and which of them (``unknown``) are shaped like finding ids but no finding;
    None when it cites some finding and every source shaped like a finding id."""
    of = f"synthesize_findings({pass_name[:80]!r}, ...) stored {stored}"
    is_, them = ("it is", "it") if len(unknown) == 1 else ("they are", "them")
    shaped = (
        f"{', '.join(unknown)}: {is_} no finding of this swarm (another swarm's, of a pass "
        "retired, mistyped, or no finding id at all)"
    )
    if cites_none:
        count = len(dict.fromkeys(sources))
        which, kept = (
            ("its source is no finding", "it is kept as a plain reference")
            if count == 1
            else (f"none of its {count} sources is a finding", "all are kept as plain references")
        )
        return (
            f"{of} citing no finding: {which} of this swarm, so {kept} on the text's last "
            f"line{'; ' + shaped if unknown else ''}. To cite the findings it rests on, pass "
            "their ids (each finding_id of shard.get_all_findings(); check the swarm, "
            "SWARM_NAME) and store the synthesis again; if it rests on those references "
            "alone, as meant, filter this warning (UncitedSources)"
        )
    if not unknown:
        return None
    kept = "a plain reference" if len(unknown) == 1 else "plain references"
    return (
        f"{of} without citing {shaped}, so kept as {kept} on the text's last line. To cite "
        f"{them}, check the ids and the swarm (SWARM_NAME), then store the synthesis again"
    )


class NoTaskClaimed(ValidationError, ValueError):
    """``EphemeralWorker.report_finding`` or ``get_parent_context`` before any claim: a
    ``ValidationError``, and a ``ValueError`` as the seed's was, so that the seed's
    ``except ValueError`` still catches it."""


class NoParentShard(NotFound, ValueError):
    """``EphemeralWorker.get_parent_context`` for a task that names no shard: a
    ``NotFound``, and a ``ValueError`` as the seed's ("No parent shard assigned") was."""


class SeedFinding(TypedDict):
    """``SwarmMemoryShard.get_all_findings`` items; ``content`` is the finding as reported
    (see ``_finding_dict`` for the two things the stored finding cannot tell)."""

    finding_id: str
    task_id: str
    worker_id: str
    timestamp: str
    content: dict[str, Any]
    queue: str | None
    pass_name: str  # _NO_PASS outside a pass, as the task's record says
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
    pass_name: str  # _NO_PASS outside a pass
    posted_at: str
    status: str
    queue: str
    priority: int
    token: str | None
    attempt: int  # which of max_attempts (failures + 1: _attempt); claims counts every lease
    max_attempts: int
    claims: int


def _waiting(counts: Mapping[str, int]) -> int:
    """The seed's ``pending_tasks``: tasks waiting for a worker. The seed's queues held every
    task not yet claimed; here a failed task waits out its backoff as ``delayed`` before it
    is back in its queue, still work no worker has, so it is counted too."""
    return counts.get("pending", 0) + counts.get("delayed", 0)


class ShardStatus(TypedDict):
    """One entry of ``SonnetCoordinator.get_swarm_status()["shards"]``; ``tasks`` counts the
    shard's posted tasks by status (``pending_tasks``: ``_waiting``)."""

    shard_id: str
    specialization: str | None
    findings_count: int
    pending_tasks: int
    alive: bool | None
    last_seen: str | None
    tasks: dict[str, int]


class SeedSwarmStatus(TypedDict):
    """``SonnetCoordinator.get_swarm_status`` (``pending_tasks``: ``_waiting``)."""

    total_shards: int
    shards: list[ShardStatus]
    coordinator_id: str
    queues: dict[str, dict[str, int]]
    pending_tasks: int


def _finding_dict(finding: Finding) -> SeedFinding:
    """A finding in the seed's shape: finding_id, task_id, worker_id, timestamp, content.

    ``content`` is the finding as reported, no key added: the keys the core knows
    (``summary``, ``details``, ``sources``, ``confidence``) first, since it stores them apart
    from the others, then the others in the order reported. ``sources`` is left out when
    empty: the core stores no ``sources`` as an empty list, so the two look the same."""
    content: dict[str, Any] = {"summary": finding.summary}
    if finding.details is not None:
        content["details"] = finding.details
    if finding.sources:
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
        "pass_name": finding.pass_name or _NO_PASS,
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
        "pass_name": task.pass_name or _NO_PASS,
        "posted_at": _stamp(task.created_at),
        "status": task.status.value,
        "priority": task.priority,
        "token": task.token,
        "attempt": _attempt(task),
        "max_attempts": task.max_attempts,
        "claims": task.attempts,
    }


# The characters of the shard's context a WorkerContext shows (the seed's 5,000).
PREVIEW_CHARS = 5000


class SwarmMemoryShard(MemoryShard):
    """The seed's memory shard: same constructor, methods and return shapes."""

    def __init__(
        self,
        redis_host: str | None = None,
        redis_port: int | None = None,
        specialization: str = "general",
        *,
        agent_id: str | None = None,
        model: str | None = None,
        capacity_tokens: int | None = 200_000,
        **connect: Unpack[Connect],
    ) -> None:
        super().__init__(
            specialization,
            model=model,
            capacity_tokens=capacity_tokens,
            agent_id=agent_id,
            redis_host=redis_host,
            redis_port=redis_port,
            **connect,
        )
        self.context = ""
        self._context_version: str | None = None  # the version self.context is the text of
        self.worker_findings: list[dict[str, Any]] = []  # what collect_worker_finding got

    def load_context(
        self, context_text: str, context_source: str, **options: Unpack[PublishOptions]
    ) -> ContextInfo:
        """Publish the shard's context, a text (any size up to the limit; chunked, atomic).
        Anything but a ``str`` is refused (``ValidationError``): bytes and files are
        published by ``publish()``, which takes them as they are. ``options`` are
        ``publish()``'s (``media_type``, ``allow_empty``, ...)."""
        if not isinstance(context_text, str):
            raise ValidationError(
                f"load_context takes the context as text (a str), not "
                f"{type(context_text).__name__}: pass a file's text, Path(...).read_text("
                "encoding='utf-8'), or bytes decoded, data.decode('utf-8'); to publish bytes "
                "or a file as they are, call shard.publish(content, source, media_type=...)"
            )
        try:
            info = self.publish(context_text, context_source, **options)
        except ValidationError as exc:
            raise in_callers_words(exc, "source", "context_source") from None
        self.context, self._context_version = context_text, info.version
        return info

    def spawn_worker_task(
        self,
        task_type: str,
        task_description: str,
        task_data: Any = None,
        pass_name: str | None = None,
        *,
        task_id: str | None = None,
        dedupe_key: str | None = None,
    ) -> str:
        """Post a task to queue ``task_type`` for an ephemeral worker; returns its id.
        ``task_id`` (default: a new one) posts it under that id: a retry with the same id
        after a lost reply returns the task stored, never posts it twice (a
        ``ConnectionFailed`` whose request was sent names the id to retry with).
        ``dedupe_key``: a task of the queue posted with the same key is returned, nothing
        posted."""
        tid = self.swarm.new_task_id() if task_id is None else task_id
        try:
            task = self.post(
                task_type,
                task_description,
                task_data,
                pass_name=pass_name,
                task_id=tid,
                dedupe_key=dedupe_key,
            )
        except ConnectionFailed as exc:
            if not exc.sent:
                raise
            raise sent_said(
                exc,
                f"the task may be posted as {tid}; retry with task_id={tid!r}: a task stored "
                "under that id is returned, not posted again",
            ) from exc
        return str(task.id)

    def collect_worker_finding(
        self, task_id: str, finding: Mapping[str, Any], worker_id: str | None = None
    ) -> str:
        """Record the finding of a worker this shard ran itself (not through a claim) and
        complete the task; returns the finding's id. Refused while another worker's live
        lease holds the task (that worker reports); on a task already settled the finding is
        kept, marked superseded, and a ``SupersededFinding`` warning says so. A task another
        shard spawned is refused, nothing stored: its own shard collects it (or the worker
        holding its lease reports)."""
        check_json_keys("the finding", finding)
        parent = self.swarm.get_task(task_id).parent
        if parent is not None and parent != self.agent_id:
            raise ValidationError(
                f"task {task_id} was spawned by shard {parent!r}, not by this shard "
                f"({self.agent_id!r}): collect its finding through {parent!r}, or report it "
                "from the worker that holds its lease; nothing was stored"
            )
        try:
            stored = self.swarm.report(task_id, None, finding, worker=worker_id)
            fid = stored.id
        except AlreadyCompleted as exc:
            fid = _superseded(exc, "collect_worker_finding()")
        self.worker_findings.append(dict(finding))
        return fid

    def get_all_findings(self, task_type: str | None = None) -> list[SeedFinding]:
        """Every finding reported to this shard, oldest first, as the seed's dicts; those of
        the tasks of queue ``task_type`` only, when given."""
        return [_finding_dict(f) for f in self.findings(queue=task_type)]

    def synthesize_findings(self, pass_name: str, synthesis: str, sources: Sequence[str]) -> str:
        """Store the synthesis of a pass; returns its id. ``sources`` that are findings of
        this swarm are cited (the synthesis's ``sources``); the others (any other text: the
        seed's example cites made-up ids) are kept as plain references, on the text's last
        line (``REFERENCES`` and their JSON list), and those shaped like finding ids are
        named in an ``UncitedSources`` warning. Sources none of which is a finding of this
        swarm are stored all the same (the seed's contract: any strings), as a synthesis
        citing no finding, which an ``UncitedSources`` warning says. An empty
        ``sources`` is refused, by the core as by every face: it is almost always a pass or
        shard whose findings were not found.
        Findings of any pass are cited (the seed's pass names are free labels; the typed
        ``synthesize`` cites only its pass's, the core's rule)."""
        sources = _finding_ids(sources)
        for source in sources:
            if isinstance(source, Mapping) and "finding_id" in source:
                raise ValidationError(
                    "sources are finding ids, not findings: pass [f['finding_id'] for f in "
                    "findings] (the finding_id of each dict get_all_findings() returned)"
                )
            if not isinstance(source, str):
                raise ValidationError(
                    "sources are finding ids or other references, each a string, not "
                    f"{type(source).__name__}"
                )
        ids = [s for s in sources if _could_be_finding(s)]
        unknown: tuple[str, ...] = ()
        try:
            stored = self._synthesis(pass_name, synthesis, sources, ids)
        except NotFound as exc:
            unknown = exc.missing
            if not unknown:
                raise
            ids = [i for i in ids if i not in set(unknown)]
            stored = self._synthesis(pass_name, synthesis, sources, ids)
        said = _uncited(pass_name, stored, sources, unknown, cites_none=not ids)
        if said is not None:
            warnings.warn(UncitedSources(said), stacklevel=2)
        return stored

    def _synthesis(self, pass_name: str, text: str, sources: list[str], cited: list[str]) -> str:
        """Store ``text`` citing ``cited``, the other ``sources`` written on its last line
        (then citing no finding is what was asked: the core refuses an empty citation
        otherwise)."""
        kept = set(cited)
        references = [s for s in dict.fromkeys(sources) if s not in kept]
        if references and isinstance(text, str) and text.strip():  # (else the core says)
            text = f"{text}\n\n{REFERENCES}{dumps(references)}"
        # (the seed's pass names are free labels: its own flow synthesises "Pass 1" from the
        # findings of tasks posted in "Pass 1: Signal Capture", so it cites across passes)
        made = self.swarm.synthesize(
            self.agent_id,
            pass_name,
            text,
            cited,
            cites_none=bool(references) and not cited,
            across_passes=True,
        )
        return str(made.id)

    def get_messages(self, limit: int = 10, wait_s: float = 0) -> list[V1Message]:
        """The shard's unread messages (consumed), oldest first, as V1's ``get_messages``
        gives them: a coordinator's ``request_synthesis`` is one of ``kind``
        ``"synthesis_request"``, its ``content`` ``{"pass_name", "instructions"}``. With
        ``wait_s``, an empty inbox is waited on that long."""
        return read_messages(self.swarm, self.agent_id, own=True, limit=limit, wait_s=wait_s)

    def get_context_for_worker(self) -> WorkerContext:
        """The seed's package, with the context's version and size; ``findings_count`` is
        every finding reported to this shard (one counter read). ``context_preview`` is the
        start of the shard's current context, what a worker's ``get_parent_context`` reads:
        a context that is not UTF-8 text (bytes published with their own media type) raises
        ``ValidationError`` here as there, never an empty preview."""
        try:
            info: ContextInfo | None = self.swarm.context_info(self.agent_id)
        except NotFound:
            info = None
        preview = ""
        if info is not None:
            # The text load_context published, when it is still current (no read); else the
            # current one's, read as the worker reads it (the cache keeps it).
            text = (
                self.context
                if info.version == self._context_version
                else self.swarm.get_context(self.agent_id, version=info.version)
            )
            preview = text[:PREVIEW_CHARS]
        stats = self.swarm.shard_stats([self.agent_id])[self.agent_id]
        return {
            "parent_shard_id": self.agent_id,
            "specialization": self.specialization,
            "context_preview": preview,
            # a shell command that reaches this swarm from anywhere: this install's swarm with
            # the options swarm prompt writes (the URL, never its password: SWARM_URL then
            # gives it; the swarm's name; an embedded server's home)
            "context_full_location": _location(self.swarm.settings, self.agent_id),
            "findings_count": stats["findings"],
            "context_version": info.version if info else None,
            "context_size_bytes": info.size_bytes if info else 0,
        }


def _location(settings: Settings, owner: str) -> str:
    """The shell command that prints ``owner``'s context: this install's ``swarm`` with the
    options that reach its swarm. A URL holding a password is never written: the command then
    takes it from ``SWARM_URL`` of the shell that runs it (``--url "$SWARM_URL"``, an empty
    URL refused when unset: never the embedded server, which the option left out would
    reach)."""
    command = f"{swarm_command(settings)} context get {shlex.quote(owner)}"
    if not settings.holds_secret:
        return command
    program, _, rest = command.partition(" --swarm ")
    return f'{program} --url "${ENV_URL}" --swarm {rest}'


def _could_be_finding(source: str) -> bool:
    """Whether ``source`` has the shape of a finding id (else it is a reference at once)."""
    try:
        check_id("finding", source)
    except ValidationError:
        return False
    return True


class EphemeralWorker(Worker):
    """The seed's ephemeral worker (constructor: ``redis_host, redis_port`` or ``url=``).

    One task at a time: ``claim_task`` while a claimed task is neither reported nor
    released raises ``Conflict`` (the seed's worker claims once, reports, and is gone).
    ``close()`` gives back a claimed task and deregisters the worker that claimed one under
    the id it made itself (``worker_<8 hex>``), never an agent named by a ``worker_id`` given;
    with the server gone it does not raise (the task comes back when its lease runs out, a
    ``UserWarning`` says so): see ``Worker``."""

    _settle = "report_finding() or release_task()"
    _report_call, _claim_call = "report_finding()", "claim_task()"

    @property
    def task_id(self) -> str | None:
        """The id of the task this worker holds; None before its first claim."""
        return self.task.id if self.task is not None else None

    @property
    def parent_shard_id(self) -> str | None:
        """The shard that posted the task this worker holds (its parent); None when it holds
        none, or the task names no shard."""
        return self.task.parent if self.task is not None else None

    def claim_task(self, queue_name: str) -> SeedTask | None:
        """Claim the next task of ``queue:NAME`` (or ``NAME``); None when the queue is empty."""
        task = self.claim(queue_name)
        return None if task is None else _task_dict(task)

    def claim_tasks(self, queue_name: str, wait_s: float = 0) -> Iterator[SeedTask]:
        """The seed's worker loop in one round trip per task: yields each claimed task (as
        ``claim_task`` returns it) until none is left; ``report_finding`` inside the loop
        also leases the next one. Leaving the loop early gives back a task leased for it."""
        with contextlib.closing(self.tasks(queue_name, wait_s=wait_s)) as tasks:
            for task in tasks:
                yield _task_dict(task)

    def _claimed(self) -> Task:
        try:
            return super()._claimed()
        except ValidationError as exc:
            raise NoTaskClaimed(str(exc)) from None

    def _parent(self, task: Task) -> str:
        try:
            return super()._parent(task)
        except NotFound as exc:
            raise NoParentShard(str(exc)) from None

    def get_parent_context(self) -> str:
        """The context of the shard that posted the claimed task, at its current version;
        ``""`` when the shard published none, as the seed read it (``parent_context()``
        raises ``NotFound`` there)."""
        parent = self._parent(self._claimed())
        try:
            info = self.swarm.context_info(parent)
        except NotFound:
            return ""
        return self._read_context(parent, info)

    def release_task(self) -> str | None:
        """Give the claimed task back to its queue, unreported (not counted as a failure):
        returns its id, or None when no task is held."""
        released = self.release()
        return None if released is None else str(released.id)

    def report_finding(self, finding: Mapping[str, Any]) -> str:
        """Report the claimed task's finding; returns its id. As in the seed, a task settled
        meanwhile is no error: the finding is kept, marked superseded, and a
        ``SupersededFinding`` warning says so (the returned id cannot)."""
        try:
            return str(self.report(finding).id)
        except AlreadyCompleted as exc:
            return _superseded(exc, "report_finding()")


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
                    "pending_tasks": _waiting(mine["tasks"]),
                    "alive": agent.alive,
                    "last_seen": iso(agent.last_seen),
                    "tasks": mine["tasks"],
                }
            )
        return {
            "total_shards": len(shards),
            "shards": shards,
            "queues": status.queues,
            "pending_tasks": _waiting(status.totals),
            "coordinator_id": self.agent_id,
        }

    def request_synthesis(  # type: ignore[override]
        self, shard_id: str, pass_name: str, instructions: str = ""
    ) -> str:
        """Put a ``synthesis_request`` in the shard's inbox; returns the message's id. Sent
        to a coordinator (this one included), which synthesises no pass, it is sent all the
        same (nothing is lost) with a ``UserWarning`` saying so."""
        sent = super().request_synthesis(shard_id, pass_name, instructions)
        # (a failure to look, once it is sent, fails nothing: a retry would send it twice)
        with contextlib.suppress(SwarmError):
            role = self.swarm.get_agent(shard_id).role
            if "coordinator" in role:  # (V1's roles are free text: sonnet_coordinator)
                warnings.warn(
                    f"request_synthesis: {shard_id} is a coordinator (role {role}), not a "
                    f"shard: its inbox holds the request ({sent.id}), but a shard "
                    "synthesises a pass (SwarmMemoryShard.get_messages reads the request); "
                    "pass a shard's agent_id (get_swarm_status lists the shards)",
                    UserWarning,
                    stacklevel=2,
                )
        return str(sent.id)

    def send_message(self, to_agent_id: str, message: Any) -> str:
        """Send ``message`` to a registered agent's inbox (``NotFound`` when it is not), as
        V1's ``send_message`` does: a text, a dict (its ``type`` names it), or any other JSON
        value; the agent's ``get_messages`` gives it back as sent. Returns its id."""
        text, kind, data = outgoing(message)
        return str(self.send(to_agent_id, text, kind=kind, data=data).id)

    def broadcast_message(self, message: Any) -> str:
        """Send ``message`` (as ``send_message`` takes it) to every agent; returns its id.
        With no other agent registered it reaches nobody, and a ``UserWarning`` says so."""
        text, kind, data = outgoing(message, said_by="broadcast_message")
        return str(self._broadcast("broadcast_message", text, kind=kind, data=data).id)

    def get_messages(self, limit: int = 10, wait_s: float = 0) -> list[V1Message]:
        """The coordinator's unread messages (consumed), as ``SwarmMemoryShard``'s."""
        return read_messages(self.swarm, self.agent_id, own=True, limit=limit, wait_s=wait_s)
