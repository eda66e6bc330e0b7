"""The swarm's records: tasks, findings, syntheses and answers (with their statuses), agents,
messages, events, and what every face's status shows.

Records are frozen dataclasses with ``str`` enums for statuses, encoded by ``_codec`` (the
only way they cross a boundary); what agent runs cost is ``_usage``'s, contexts' records
``_context_records``'.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import re
import typing
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, NamedTuple, TypeVar, overload

from ._codec import Record, counted, dumps, first_few, iso, loads
from ._config import mask_query, mask_url
from ._context_records import ContextInfo
from ._errors import ValidationError
from ._hints import LIST_PASSES
from ._keys import ASSIST_QUEUE
from ._usage import Usage, summed_figures
from ._validate import DEFAULT_MAX_ATTEMPTS, DEFAULT_TASK_LEASE_S, check_name

__all__ = [
    "BEAT_EVERY_S",
    "DEFAULT_MAX_ABANDONS",
    "MAX_ERROR_CHARS",
    "NAMES_LISTED",
    "OPEN_STATUSES",
    "PLANNED_SYNTHESIS",
    "RECORD_KINDS",
    "REPAIR_COMMAND",
    "STALE_AFTER_S",
    "SYNTHESIS_NAMED",
    "Agent",
    "AgentCounts",
    "Answer",
    "Event",
    "EventType",
    "EventsTrimmed",
    "Finding",
    "Inbox",
    "IndexEntries",
    "Message",
    "MessageStatus",
    "Page",
    "PassCosts",
    "PassProgress",
    "Recent",
    "RecordDamage",
    "RetiredAsk",
    "RetiredPass",
    "RetiredQuestions",
    "SwarmStatus",
    "Synthesis",
    "Task",
    "TaskCosts",
    "TaskSpec",
    "TaskStatus",
    "TypeFilter",
    "UnrecordedRun",
    "Webhook",
    "anchor_held",
    "anchor_of",
    "anchored_record",
    "answer_fields",
    "event_order",
    "failed_runs_of",
    "kept_cost_key",
    "kept_costs",
    "lease_token",
    "listed_names",
    "own_report_key",
    "pipeline_label_prefix",
    "planning_task_of",
    "retired_owner_of",
    "runs_of",
    "stored_error",
    "synthesis_run_for",
    "synthesizer_task_of",
    "type_filter",
    "type_wanted",
    "unknown_pass",
    "unknown_queues",
    "unrecorded_owner",
    "unrecorded_owner_of",
    "unrecorded_run_key",
]


# Abandoned leases (expired with no report: the worker vanished) a task survives by default.
DEFAULT_MAX_ABANDONS = 10
# A task's ``failed_cost`` while its last failure said nothing of what its run cost (the
# word task_update.lua writes).
COST_UNTOLD = "unknown"

# Seconds without a sign of life after which every view calls an agent stale, by default
# (``stale_after_s``; what a running slot's beats are spaced by is derived from it).
STALE_AFTER_S = 60.0
# The longest between two beats of a running slot (swarm run): a third of the time after
# which the views call an agent stale (a lease of minutes is renewed less often than that),
# so that a beat late or lost still leaves it alive. A live agent may be silent this long.
BEAT_EVERY_S = STALE_AFTER_S / 3


# The most names a message about an unknown one lists (the passes, the queues there are).
NAMES_LISTED = 10


def listed_names(names: Iterable[str], none: str = "none yet") -> str:
    """``names`` as every message about an unknown name says them: each quoted as JSON (as
    the name asked for is, ``dumps``: a name may hold a space or a comma), the first
    ``NAMES_LISTED`` of them ("a", "b" and 3 more), ``none`` when there are none."""
    return first_few([dumps(n) for n in names], NAMES_LISTED, none)


# The passes ``unknown_pass`` lists when none has tasks: "none yet" would be wrong once a
# pass was retired, which the counters it lists from no longer show.
_NO_PASS_HOLDS_TASKS = "none holds tasks now"
_WAITED_FOR = "nothing to wait for and no findings to read"  # what ``wait`` asks of a pass


def unknown_pass(
    name: str,
    passes: Sequence[str],
    lists: str = LIST_PASSES,
    retired: RetiredPass | None = None,
    *,
    doing: str = _WAITED_FOR,
) -> str:
    """What the core says of a pass no task was ever posted to (a misspelt one, whose
    counters read as zeros: ``wait`` and ``retire_pass`` refuse it with this, ``swarm status
    --pass`` notes it): what there is not to do with it (``doing``, in the words of what was
    asked: ``retire_pass`` says "nothing to retire"), the passes there are, and ``lists``,
    the hint that lists them, ``LIST_PASSES`` (which the MCP and A2A faces reword by that
    key); or, for a pass ``retire_pass`` removed (``retired``, from ``retired_passes``),
    that it was retired, and when."""
    if retired is not None:
        return (
            f"pass {dumps(name)} was retired on {iso(retired.at) or 'an unknown date'}: its "
            f"{counted(retired.tasks, 'settled task')} and "
            f"{counted(retired.findings, 'finding')} were removed, so "
            f"there is {doing}; "
            "its synthesis, if it had one, is kept"
        )
    listed = listed_names(_in_natural_order(passes), none=_NO_PASS_HOLDS_TASKS)
    return (
        f"no task has ever been posted to pass {dumps(name)}: {doing}. Check its name (the "
        f"passes: {listed}; {lists}), or post its tasks first"
    )


def unknown_queues(
    queues: Sequence[str], known: Iterable[str], lists: str = LIST_PASSES
) -> str | None:
    """What the core says of those of ``queues`` (the queues a claim asked for) no task was
    ever posted to, given ``known``, the queues there are (``queue_stats``' keys): a misspelt
    name finds nothing, ever, so its claimer must check the name rather than stop or wait.
    Names the queues there are, and ``lists``, the hint that lists them (the one
    ``unknown_pass`` ends with: ``swarm status --all`` lists queues and passes alike, which
    the MCP face rewords by that key). None when each queue asked was posted to. The
    peer-assist queue is a name of the swarm's own, a target before anything was posted to
    it (docs/ask.md): never said unknown."""
    there = set(known)
    unknown = [q for q in dict.fromkeys(queues) if q not in there and q != ASSIST_QUEUE]
    if not unknown:
        return None
    which = "queue" if len(unknown) == 1 else "queues"
    return (
        f"no task was ever posted to {which} {listed_names(unknown)}: check the name (the "
        f"queues: {listed_names(_in_natural_order(there))}; {lists})"
    )


def _in_natural_order(names: Iterable[str]) -> list[str]:
    """``names`` (of passes, of queues) in the order every listing shows them in (day-3
    before day-10), whatever order the caller read them in."""
    from ._printable import natural_key  # (here: _printable imports this module)

    return sorted(names, key=natural_key)


class EventType(str, enum.Enum):
    """Every state change recorded in the swarm's event stream (field ``type``)."""

    AGENT_JOINED = "agent.joined"
    AGENT_LEFT = "agent.left"
    AGENT_STALE = "agent.stale"
    CONTEXT_PUBLISHED = "context.published"
    TASK_POSTED = "task.posted"
    TASK_CLAIMED = "task.claimed"
    TASK_RENEWED = "task.renewed"
    TASK_RELEASED = "task.released"
    TASK_COMPLETED = "task.completed"
    TASK_FAILED = "task.failed"
    TASK_RETRIED = "task.retried"
    TASK_EXPIRED = "task.expired"
    TASK_DUE = "task.due"
    TASK_DEAD = "task.dead"
    TASK_CANCELLED = "task.cancelled"
    TASK_REQUEUED = "task.requeued"
    FINDING_REPORTED = "finding.reported"
    FINDING_SUPERSEDED = "finding.superseded"
    SYNTHESIS_CREATED = "synthesis.created"
    SYNTHESIS_REQUESTED = "synthesis.requested"
    MESSAGE_SENT = "message.sent"
    PASS_RETIRED = "pass.retired"
    QUESTIONS_RETIRED = "questions.retired"


# What a reader asks of the event stream by type: exact types, and areas (prefixes).
TypeFilter = tuple[frozenset[str], tuple[str, ...]]


def type_filter(types: Iterable[EventType | str] | EventType | str | None) -> TypeFilter | None:
    """Exact event types, or areas (``"task"`` or ``"task.*"``: every task event)."""
    if types is None:
        return None
    if isinstance(types, str):  # EventType is a str too
        types = [types]
    known = {t.value for t in EventType}
    areas = {v.split(".")[0] for v in known}
    exact: set[str] = set()
    prefixes: list[str] = []
    for item in types:
        value = item.value if isinstance(item, EventType) else item
        if not isinstance(value, str):
            raise ValidationError(f"event types must be strings, not {type(value).__name__}")
        area = value[:-2] if value.endswith(".*") else value
        if value in known:
            exact.add(value)
        elif area in areas:
            prefixes.append(area + ".")
        else:
            raise ValidationError(
                f"unknown event type {value!r}: use one of {', '.join(sorted(known))}, "
                f"or an area such as 'task' or 'agent.*'"
            )
    return frozenset(exact), tuple(prefixes)


def event_order(event_id: str | int) -> tuple[int, int]:
    """An event id, or any stream id (``MS-SEQ``), as numbers, to compare two ids (the one
    place of that order: event followers, message cursors, a channel's newest); a time in
    epoch ms (a ``since`` that starts at it, inclusive) as just before its first id."""
    if isinstance(event_id, int):
        return event_id, -1
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def type_wanted(kind: str, flt: TypeFilter | None) -> bool:
    """Whether an event of type ``kind`` is one the filter ``flt`` (``type_filter``'s; None:
    every type) asks for."""
    return flt is None or kind in flt[0] or kind.startswith(flt[1])


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Record, Generic[T]):
    """One page of a listing; pass ``cursor`` back to get the next (None: no more).
    ``corrupt`` names the records of the page that are stored unreadable (not JSON, or a
    value out of range): they are left out of ``items``; ``swarm doctor`` counts them.
    A record as every other (``to_dict``: ``{"items": [each item's to_dict()], "cursor",
    "corrupt"}``, ``to_json``), so that a face renders it as it renders them."""

    items: tuple[T, ...]
    cursor: str | None = None
    corrupt: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...
    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        """``page[0]``: an item, as of a list (``Inbox``, ``events()``)."""
        return self.items[index]


# The roles an agent joins a swarm in: its Redis user's rights (_acl, which adds the
# operator's admin), its MCP tools, its init prompt, its hooks' registration.
SwarmRole = Literal["worker", "shard", "coordinator"]
SWARM_ROLES: tuple[SwarmRole, ...] = typing.get_args(SwarmRole)
# The roles a Redis user is made for (swarm acl): the agents', then the operator's admin.
AclRole = Literal[SwarmRole, "admin"]  # (Literal flattens)
ACL_ROLES: tuple[AclRole, ...] = typing.get_args(AclRole)


# === work queue records: Task, Finding, Synthesis (and their statuses) ===


class TaskStatus(str, enum.Enum):
    """Where a task is in its life. ``pending``, ``delayed`` and ``claimed`` are open; the
    others are settled (``dead`` can be reopened by ``requeue_dead`` or a late report)."""

    PENDING = "pending"
    DELAYED = "delayed"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def settled(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.DEAD, TaskStatus.CANCELLED)


# The open statuses' values (pending, delayed, claimed): a pass or queue with a task in one
# of them is not settled.
OPEN_STATUSES: tuple[str, ...] = tuple(s.value for s in TaskStatus if not s.settled)


@dataclass(frozen=True)
class TaskSpec(Record):
    """One task to post (``post_tasks`` takes a list of these, or of dicts with these keys)."""

    queue: str
    description: str
    data: Any = None
    pass_name: str | None = None
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    lease_s: float = DEFAULT_TASK_LEASE_S
    not_before: int | None = None
    dedupe_key: str | None = None
    parent: str | None = None
    max_abandons: int | None = None  # None: the queue's setting, else DEFAULT_MAX_ABANDONS
    delay_s: float | None = None  # instead of not_before: seconds from now, the server's clock


@dataclass(frozen=True)
class Task(Record):
    """A unit of work in a queue. ``attempts`` counts its claims. ``token`` is set only on the
    task ``claim`` returned (and ``renew``, given it): the lease's fencing token
    ``ATTEMPT.SECRET``, which renew, fail, release and report must present. Only a hash of
    the secret is stored, so a task read any other way has no token, and no one but the
    lease's holder can act on the lease.

    Two budgets are counted apart: ``failures`` (``fail``: the work was tried and failed)
    against ``max_attempts``, and ``abandons`` (a lease expired with no report, fail or
    release: its worker vanished) against ``max_abandons``. Either reaching its limit
    dead-letters the task, with a ``dead_reason`` naming the limit. ``failed_usage`` sums
    what the failed attempts cost (their ``fail`` carried the agent CLI's usage): money
    spent that no finding records; ``failed_run_count`` counts those attempts, a requeue's
    reset of ``failures`` aside.

    ``status_at`` is when the task took its status (epoch ms, the server's clock), written by
    every change of status but the three the hot path makes, whose times the record already
    has: a post (``created_at``), a claim (``claimed_at``), a report (``completed_at``). So a
    claimed or completed task may keep an earlier change's ``status_at``, and a task stored
    before the field existed has none: ``status_since`` is the time to read, for any status."""

    id: str
    queue: str
    description: str
    data: Any = None
    status: TaskStatus = TaskStatus.PENDING
    pass_name: str | None = None
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    attempts: int = 0
    failures: int = 0
    abandons: int = 0
    max_abandons: int = DEFAULT_MAX_ABANDONS
    lease_s: float = DEFAULT_TASK_LEASE_S
    created_at: int = 0
    not_before: int | None = None
    dedupe_key: str | None = None
    parent: str | None = None
    worker: str | None = None
    lease_deadline: int | None = None
    claimed_at: int | None = None
    completed_at: int | None = None
    status_at: int | None = None
    finding_id: str | None = None
    last_error: str | None = None
    dead_reason: str | None = None
    failed_usage: Usage | None = None
    # Every failed run (fail) it had, which a requeue leaves (it sets ``failures`` back to 0,
    # while ``failed_usage`` keeps summing): None for a task stored before it was counted.
    failed_run_count: int | None = None
    # The attempt (its claim's ``attempts``) whose failure was the last: None for a task that
    # has not failed since it was recorded (``_runner.failure_taken`` reads it).
    failed_attempt: int | None = None
    # Whether that failure's cost is on ``failed_usage``: ``COST_UNTOLD`` while its ``fail``
    # said nothing of it (``add_failed_usage`` may add it, once: then "added"); None when the
    # fail gave it, or for a task that has not failed.
    failed_cost: str | None = None
    # The length of the lease its claim asked for (ms; the task's ``lease_s`` when the claim
    # asked none), what a renewal that asks no length extends the lease by: its last claim's
    # (kept once the lease ended); None for a task never claimed, or claimed before it was
    # recorded.
    lease_ms: int | None = None
    # A secret (the lease's): kept out of repr, which logs show; to_dict keeps it.
    token: str | None = dataclasses.field(default=None, repr=False)

    @property
    def claimed_lease_s(self) -> float:
        """The lease its last claim took, in seconds (``lease_ms``): what a renewal that asks
        no length extends it by, renewals coming every third of it; for a record without
        it, from its claim to its lease's deadline; else (never claimed) the task's own
        ``lease_s``, which only a claim that asks none takes: claim(lease_s=30) of a task of
        900 holds it 30 s. A whole number of seconds as an int."""
        asked = self.lease_ms
        if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
            taken = asked / 1000
        elif self.lease_deadline and self.claimed_at:
            taken = (self.lease_deadline - self.claimed_at) / 1000
        else:
            return self.lease_s
        return int(taken) if taken.is_integer() else taken

    @property
    def status_since(self) -> int | None:
        """When the task took its current status (epoch ms), where its record says so: a
        claimed task's claim, a completed task's report, else ``status_at``, else (a task
        never moved since its post) its posting; None for a record stored before
        ``status_at`` existed that was moved since (cancelled, dead-lettered, released, ...)."""
        if self.status == TaskStatus.CLAIMED:
            return self.claimed_at
        if self.status == TaskStatus.COMPLETED:
            return self.completed_at
        if self.status_at is not None:
            return self.status_at
        if self.status in (TaskStatus.PENDING, TaskStatus.DELAYED) and self.attempts == 0:
            return self.created_at or None
        return None


# The kinds of record ``Swarm.corrupt_records`` reads, by the names it returns them under
# (``_ops/doctor.corrupt_records`` says what each holds).
RECORD_KINDS = (
    "task", "finding", "synthesis", "agent", "context", "version", "chunk", "message", "cursor",
    "index", "key",
)  # fmt: skip

# The doctor's repair of the indexes (``Swarm.repair_indexes``), as a command says it.
REPAIR_COMMAND = "swarm doctor --repair"


@dataclass(frozen=True)
class IndexEntries:
    """What one index (``index``, its key) holds wrong: the stored records it lacks, each id
    with the score it belongs at (its record's ``created_at``; None: its record does not
    say, so it can be re-added only once the record is rewritten), and its entries whose
    record is no longer stored (``dangling``: a listing skips them)."""

    index: str
    lacking: dict[str, int | None] = dataclasses.field(default_factory=dict)
    dangling: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordDamage:
    """What ``Swarm.record_damage`` found: ``found``, what ``corrupt_records`` returns; the
    entries of each index it names (``indexes``, by key); and the completed tasks whose
    finding is no longer stored (``lost_findings``: task id -> the finding id it names); and
    the reports stored half-way (``half_stored``: finding id -> its task's id): a report's
    first try that stopped after storing its finding (a command its user's ACL refused: Redis
    does not roll a script back), its finding in no index and its task not completed with
    it. Its retry, with the same finding id, completes the report (lua/_report.lua knows the
    first try by the finding missing from the findings' index), so no index is lacking it
    and the repair never adds it."""

    found: dict[str, list[str]]
    indexes: tuple[IndexEntries, ...] = ()
    lost_findings: dict[str, str] = dataclasses.field(default_factory=dict)
    half_stored: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Finding(Record):
    """One worker's structured result for a task, with its lineage. ``superseded`` findings
    arrived after the task was settled: kept, never dropped, but not the task's result."""

    id: str
    task_id: str
    queue: str | None = None
    pass_name: str | None = None
    shard: str | None = None
    worker: str | None = None
    model: str | None = None
    context_version: str | None = None
    summary: str = ""
    details: str | None = None
    sources: tuple[str, ...] = ()
    confidence: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    created_at: int = 0
    superseded: bool = False
    attempt: int | None = None  # the attempt of the lease that reported (None: no lease)
    usage: Usage | None = None  # what the agent run behind it cost, when its CLI said
    # Set only on the finding ``report`` (and ``answer``) returns, as ``Task.token`` on the
    # task ``claim`` returns, never stored: the worker of a later lease that held the task
    # when this report completed it (its own lease had run out and the task was leased
    # again), whose report of it will be superseded, and that lease's attempt. None: its
    # lease was the current one.
    overtaken_by: str | None = None
    overtaken_attempt: int | None = None

    def overtaken_said(
        self, *, what: str = "task", deed: str = "report", why: str | None = None
    ) -> str | None:
        """What a report (``deed``) of this finding's ``what`` (a task, a question) whose
        lease had run out and was taken by another (``overtaken_by``) tells its sender: it
        completed it all the same, and the other's will be kept superseded; None when its
        lease was the current one. The holder named the report's own worker (two processes
        sharing a name) is said as a later lease of that name, by its attempt. ``why``: how
        the lease was lost, seen first elsewhere (a renewal refused), said instead of how
        the report found it, and said even when no later lease holds it."""
        holder = self.overtaken_by
        if holder is None and why is None:
            return None
        said = f"your {deed} came first all the same, so it is the {what}'s {deed}"
        if holder is None:
            return f"{why}; {said}"
        from ._printable import shown_name  # (here: _printable imports this module)

        # (read from the task's record, which a worker may write: shown as a name, a forged
        # line break or escape sequence quoted, in every face that says these words)
        named = shown_name(holder)
        later = "" if self.overtaken_attempt is None else f" (attempt {self.overtaken_attempt})"
        if holder == self.worker:
            taker = f"a later lease{later} of the same worker name, {named}, took it"
            whose = "that lease's"
        else:
            taker, whose = f"{named} leased it again{later}", f"{named}'s"
        if why is None:
            why = (
                f"the lease of {what} {self.task_id} ended before this {deed} (it ran out, or "
                f"was released) and {taker}"
            )
        return f"{why}; {said}, and {whose} will be kept superseded"


@dataclass(frozen=True)
class Synthesis(Record):
    """A shard's synthesis of a pass, citing the findings it rests on (all of which exist)."""

    id: str
    shard: str
    pass_name: str
    text: str
    sources: tuple[str, ...] = ()
    created_at: int = 0
    model: str | None = None  # the model of the agent that wrote it, where known
    usage: Usage | None = None  # what the agent that wrote it cost, when its CLI said


@dataclass(frozen=True)
class Answer(Record):
    """The answer to a question (``Swarm.ask``): the first finding reported for the question
    task. ``text`` is the finding's details when it has them, else its summary; ``cost_usd``
    and ``usage`` are what the answering agent's run cost, when its CLI said;
    ``context_version`` the version of the owner's context it was made from, when its
    answerer said (``answer(..., context_version=)``; ``swarm serve`` does)."""

    text: str
    finding_id: str
    question_id: str
    queue: str
    answerer: str | None = None
    model: str | None = None
    cost_usd: float | None = None
    summary: str = ""
    sources: tuple[str, ...] = ()
    asker_task: str | None = None
    created_at: int = 0
    usage: Usage | None = None
    question: str = ""  # the question's text (the first asker's, when a dedupe key shared it)
    context_version: str | None = None  # the context version it was made from, when said


# The kind of the message ``request_synthesis`` sends (its ``synthesis.requested`` event
# names it too).
SYNTHESIS_REQUEST_KIND = "synthesis_request"
QUESTION_KIND = "question"  # the data of a question task: {"kind": "question", ...}
ANSWER_KIND = "answer"  # an answer is a finding whose extra has {"kind": "answer", ...}


def answer_fields(question: Task) -> dict[str, Any]:
    """What makes a finding the answer to ``question`` (``kind``, and the asker's task when
    the question names one); {} when the task is no question (``Swarm.ask`` posts questions
    with data ``{"kind": "question", ...}``)."""
    data = question.data if isinstance(question.data, dict) else {}
    if data.get("kind") != QUESTION_KIND:
        return {}
    fields: dict[str, Any] = {"kind": ANSWER_KIND}
    if isinstance(data.get("asker_task"), str):
        fields["asker_task"] = data["asker_task"]
    return fields


# === what every agent run on one task cost (sums of usages: _usage) ===


@dataclass(frozen=True)
class TaskCosts:
    """What every agent run on one task cost, record by record (``Swarm.task_costs``): the
    finding that completed it, the superseded ones reported on it after it was settled
    (their runs cost too), and its failed runs (``task.failed_usage``); ``total`` sums
    them. ``searched_all`` is False when the superseded ones were looked for among only the
    first ``scan_limit`` findings of its pass (else its queue) reported after it settled."""

    # What ``total`` covers, said under it wherever it is shown.
    COVERS: ClassVar[str] = (
        "its finding, the findings reported on it after it was settled, its failed runs"
    )

    task: Task
    finding: Finding | None = None
    superseded: tuple[Finding, ...] = ()
    searched_all: bool = True
    scan_limit: int = 0
    # A pipeline's synthesizer task (``synthesis_run_for``) completed once the synthesis was
    # written: that synthesis, its synthesizer's run that was taken. The task's finding then
    # only says so (no agent run reported it): the synthesis is the run, not the finding.
    synthesis: Synthesis | None = None

    def run_records(self) -> tuple[Finding | Synthesis | Task, ...]:
        """The records of the runs ``total`` sums: the finding (a synthesizer task's: its
        synthesis instead), the superseded ones, the task (its failed runs)."""
        first = self.finding if self.synthesis is None else self.synthesis
        return (*(r for r in (first, *self.superseded) if r is not None), self.task)

    def usages(self) -> list[Usage | None]:
        return [r.failed_usage if isinstance(r, Task) else r.usage for r in self.run_records()]

    def runs(self) -> tuple[int, int]:
        """How many agent runs ``total`` sums, and how many of them reported no cost
        (``runs_of``: the one count, a pass's and a pipeline's too)."""
        return runs_of(self.run_records())

    def covers(self) -> str:
        """What ``total`` covers (``COVERS``, and a synthesizer task's synthesis)."""
        if self.synthesis is None:
            return self.COVERS
        return f"{self.COVERS}, and the synthesis {self.synthesis.id} (its run that was taken)"

    @property
    def total(self) -> dict[str, Any]:
        """Every run's ``FIGURES`` summed (``summed_figures``)."""
        return summed_figures(self.usages())


def lease_token(attempts: int, secret: str) -> str:
    """The token of the lease an attempt holds: its number and the secret its claim sent
    (``ATTEMPT.SECRET``; the task keeps only the secret's seal). A claim's task carries it;
    one whose reply was lost is proved with it (``ConnectionFailed.lease_secrets``)."""
    return f"{attempts}.{secret}"


@dataclass(frozen=True)
class UnrecordedRun:
    """One agent run paid for that no other record holds (``Swarm.unrecorded_runs``: a
    pipeline's): ``key``, what its writer named it by; ``pass_name``, the pass it was run
    for; ``usage``, what it cost (None: its CLI said nothing); ``what``, whose run it was;
    ``anchor``, the record of the pass it was run for (None: none known). ``failed`` and
    ``runs``: whether its runs failed and how many; one failed run (none gave what was
    asked of it), but for the cost of a record of a pipeline's retired bookkeeping
    (``kept_cost_key``), which says them of that record: a planner's task list is one run,
    not failed; a task's failed runs are as many as it had."""

    key: str
    pass_name: str
    usage: Usage | None
    what: str
    anchor: str | None = None
    failed: bool = True
    runs: int = 1

    @classmethod
    def stored(cls, key: str, raw: str | bytes) -> UnrecordedRun:
        """The run kept under ``key`` (its JSON record, ``raw``): ``failed`` and ``runs``
        from its fields, or, for a kept cost an older version wrote, from its key, which
        said them (``_kept_key``). Raises one of ``UNREADABLE`` for a record that cannot be
        read."""
        record = loads(raw)
        usage, anchor = record.get("usage"), record.get("anchor")
        failed, runs = record.get("failed", True), record.get("runs", 1)
        kept = _kept_key(key)
        if kept is not None and kept[1] is not None and "runs" not in record:
            failed, runs = kept[1]
        if not isinstance(failed, bool) or type(runs) is not int or runs < 1:
            raise ValueError(f"unrecorded run {key}: failed {failed!r}, runs {runs!r}")
        return cls(
            key=key,
            pass_name=str(record["pass"]),
            usage=Usage.from_dict(usage) if usage is not None else None,
            what=str(record["what"]),
            anchor=str(anchor) if anchor is not None else None,
            failed=failed,
            runs=runs,
        )


# The longest error a task keeps (its ``last_error``): a longer one is cut (``stored_error``).
MAX_ERROR_CHARS = 8_000


def stored_error(error: str) -> str:
    """``error`` as a task stores it (``fail``'s, as its ``last_error``): cut to
    ``MAX_ERROR_CHARS``, ending in "…" when it was."""
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"


def failed_runs_of(task: Task) -> int:
    """How many failed runs ``task`` had: its ``failed_run_count``; for a task stored before
    they were counted, its ``failures`` (at least one when it has ``failed_usage``: a
    requeue set them back to 0, so that may be fewer than there were; lua/task_update.lua's
    fail seeds the count by the same rule)."""
    if task.failed_run_count is not None:
        return task.failed_run_count
    return max(task.failures, 1) if task.failed_usage is not None else task.failures


def runs_of(records: Iterable[Finding | Synthesis | Task | None]) -> tuple[int, int]:
    """How many agent runs ``records`` stand for, and how many of them reported no cost
    (unknown, so that a sum of the others is less than what was spent): a finding or a
    synthesis is one run; a task's failed runs are its ``failed_run_count``
    (``failed_runs_of``), all without a cost when their sum has none (None: no record, no
    run). The one count of them: a pipeline's, a pass's (``PassCosts``), a lineage's, a
    task's (``TaskCosts``)."""
    runs = unpriced = 0
    for record in records:
        if record is None:
            continue
        if isinstance(record, Task):
            usage, count = record.failed_usage, failed_runs_of(record)
        else:
            usage, count = record.usage, 1
        runs += count
        if usage is None or usage.cost_usd is None:
            unpriced += count
    return runs, unpriced


# How the id of a synthesis a pipeline wrote begins (``_pipeline.names.synthesis_id``): the
# ids of its pass's planning and synthesizer tasks are made from it (``planning_task_of``,
# ``synthesizer_task_of``), which is how ``Swarm.pass_costs`` finds those tasks (they carry
# no pass name) from the pass's synthesis, as the pipeline's lineage does.
PLANNED_SYNTHESIS = "s-pl-"


def synthesizer_task_of(synthesis: str) -> str:
    """The id of the synthesizer task of the synthesis ``synthesis`` (an id): where a
    pipeline records its synthesizer's refused or failed runs, found from the synthesis
    alone. Taken only when its data names the synthesis (a task may merely have the id)."""
    return "t-" + synthesis.removeprefix("s-")


# The key under which a pipeline's synthesizer task (its data) and the finding that closes it
# (its extra) name their synthesis: written by ``_pipeline.agents``, read by
# ``synthesis_run_for`` and ``Swarm.task_costs``.
SYNTHESIS_NAMED = "synthesis"


def synthesis_run_for(task: Task) -> str | None:
    """The synthesis ``task`` is a pipeline's synthesizer task of (its data names it, and
    its id is the one ``synthesizer_task_of`` derives from it), None for any other task:
    the task records the synthesizer's refused and failed runs, the synthesis its run that
    was taken."""
    data = task.data if isinstance(task.data, dict) else {}
    sid = data.get(SYNTHESIS_NAMED)
    return sid if isinstance(sid, str) and synthesizer_task_of(sid) == task.id else None


def planning_task_of(synthesis: str) -> str | None:
    """The id of the planning task of the pass whose synthesis is ``synthesis`` (an id; None:
    no pipeline wrote it), where a planned pass's planner runs: its finding is the tasks
    planned and what the planner cost. Taken only when its data names the pass."""
    if not synthesis.startswith(PLANNED_SYNTHESIS):
        return None
    return "t-plan-" + synthesis.removeprefix(PLANNED_SYNTHESIS)


# The agent runs a pipeline paid for that no other record holds (``UnrecordedRun``) are kept
# per run of it (``unrecorded_owner``), each naming its pass's label and the record of the
# pass it was run for (``anchor_of``); a pass's label names its pipeline and run
# (``pipeline_label_prefix``), which is how ``Swarm.pass_costs`` finds them from the pass
# alone, as ``swarm pipeline status`` does from its plan: both count those the pass holds
# the record of (``anchor_held``).
_LABEL_RUN = " run"  # (in a pass's label, between its pipeline's name and a run from 2)
_LABEL_END = ": "  # (and before the pass's name)


def pipeline_label_prefix(name: str, run: int) -> str:
    """How the label (the pass name in the swarm) of every pass of run ``run`` of pipeline
    ``name`` begins: its name, `` runN`` from run 2 (`` run2``), then ``: ``."""
    return f"{name}{_LABEL_RUN}{run}{_LABEL_END}" if run != 1 else f"{name}{_LABEL_END}"


def unrecorded_owner(name: str, run: int) -> str:
    """Whose the agent runs of run ``run`` of pipeline ``name`` that no other record holds
    are, in the swarm (``Swarm.unrecorded_runs``)."""
    return f"pipeline {name} run {run}"


def unrecorded_owner_of(pass_name: str) -> str | None:
    """The ``unrecorded_owner`` of the pipeline run whose label ``pass_name`` could be (see
    ``pipeline_label_prefix``), None when it is no pipeline's (a pass named by hand may
    look like one: the runs kept there name their pass, and only those of this one count)."""
    head, end, _ = pass_name.partition(_LABEL_END)
    name, mark, number = head.partition(_LABEL_RUN)
    if not end or (mark and not (number.isascii() and number.isdigit())):
        return None
    run = int(number) if mark else 1
    try:
        check_name("pipeline name", name)
    except ValidationError:
        return None
    if not pass_name.startswith(pipeline_label_prefix(name, run)):  # (" run1", " run02")
        return None
    return unrecorded_owner(name, run)


def anchor_of(record: Task | Finding) -> str:
    """A record of a pass as an unrecorded run of it names it (its ``anchor``): its id and
    when it was made (the ids of a planning or synthesizer task are derived from names
    alone, and a swarm emptied since a run was paid may hold a new one under the same id)."""
    return f"{record.id}@{record.created_at}"


def anchored_record(anchor: str) -> str:
    """The id of the record ``anchor`` names (``anchor_of``)."""
    return anchor.rpartition("@")[0]


def unrecorded_run_key(key: str) -> str:
    """The key an unrecorded run named by ``key`` is kept under (``Swarm.record_unrecorded_run``):
    a digest of it (a claim's token is its lease's secret: never stored)."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def own_report_key(finding_id: str) -> str:
    """What names the run of a worker agent that reported its task itself (its finding
    ``finding_id``) with no usage of its own, kept as a run no other record holds with what
    its CLI said the run cost (no operation sets a usage on a stored finding: a worker may
    not rewrite one). Every reader prices that finding with it: one run, counted once
    (``swarm pipeline status`` and ``Swarm.pass_costs``)."""
    return f"reported by its agent:{finding_id}"


def anchor_held(anchor: str | None, held: Container[str]) -> bool:
    """Whether an unrecorded run of a pass, run for the record ``anchor`` (None: none
    known), counts in the pass whose records are ``held`` (their ``anchor_of``): the one
    rule of ``swarm pipeline status`` and ``Swarm.pass_costs``. A run of a swarm emptied
    since names a record the pass no longer holds."""
    return anchor is None or anchor in held


# What each record of a finished pipeline run's bookkeeping cost (a planner's task list, the
# failed runs summed on a planning or synthesizer task) is kept when ``swarm pipeline
# retire`` removes it, as an ``UnrecordedRun`` of its own owner (``retired_owner_of``), under
# a key naming the record once (``kept_cost_key``), its anchor the bookkeeping task it stands
# for: ``swarm pipeline status`` and ``Swarm.pass_costs`` count it once that task went
# (``kept_costs``), so that a pass's spend reads the same after the retirement as before.
_RETIRED_OWNER = " retired bookkeeping"  # (after the ``unrecorded_owner`` of its run)
_KEPT = "bk"  # how a kept cost's key begins; then ":" and a digest of the record


def retired_owner_of(owner: str) -> str:
    """Whose, in the swarm (``Swarm.unrecorded_runs``), the kept costs of the retired
    bookkeeping are of the pipeline run whose unrecorded runs are ``owner``'s
    (``unrecorded_owner``): apart from those, so that each reader counts them by their rule
    (``kept_costs``), not as runs no other record holds."""
    return f"{owner}{_RETIRED_OWNER}"


def kept_cost_key(record_id: str) -> str:
    """The key the cost of the bookkeeping record ``record_id`` is kept under (see
    ``retired_owner_of``): the same each time it is kept (kept twice: once)."""
    return f"{_KEPT}:{unrecorded_run_key(record_id)[:24]}"


def _kept_key(key: str) -> tuple[str, tuple[bool, int] | None] | None:
    """The record a kept cost's ``key`` names (its digest: ``kept_cost_key``), with whether
    its runs failed and how many when the key says them (``bkf3:DIGEST``: a version before
    they were fields of the record wrote so; ``bkr1:`` a run not failed); None for a key no
    kept cost has. The one reader of the key."""
    head, colon, digest = key.partition(":")
    if not colon or not digest or not head.startswith(_KEPT):
        return None
    how, count = head[len(_KEPT) : len(_KEPT) + 1], head[len(_KEPT) + 1 :]
    if not how:
        return digest, None
    if how not in ("f", "r") or not (count.isascii() and count.isdigit()):
        return None
    return digest, (how == "f", max(1, int(count)))


def kept_costs(
    runs: Iterable[UnrecordedRun], pass_name: str, held: Container[str]
) -> list[UnrecordedRun]:
    """The kept costs of a pipeline run's retired bookkeeping (``runs``: its
    ``retired_owner_of``'s) that count in pass ``pass_name``, whose records are ``held``
    (their ``anchor_of``): those of the pass whose record went (one still held counts as
    itself), each once (one an older version kept under the old key, kept again since,
    counts once: the one with its fields), in the order of their keys. The one rule of
    ``swarm pipeline status`` and ``Swarm.pass_costs``."""
    counted: dict[str, UnrecordedRun] = {}
    for run in sorted(runs, key=lambda r: r.key):
        kept = _kept_key(run.key)
        if kept is None or run.pass_name != pass_name or run.anchor is None:
            continue
        if run.anchor not in held and (kept[1] is None or kept[0] not in counted):
            counted[kept[0]] = run
    return sorted(counted.values(), key=lambda r: r.key)


@dataclass(frozen=True)
class PassCosts(Record):
    """What every agent run behind one pass cost (``Swarm.pass_costs``), summed: its
    findings, superseded ones too (a report that came after its task was settled cost as
    much), the failed and refused runs summed on its tasks (``failed_usage``), its
    syntheses, a pipeline's planner and synthesizer runs of it (their records carry no
    pass name: found from its synthesis, ``planning_task_of``, ``synthesizer_task_of``), and
    the pipeline's runs of it that no other record holds (``UnrecordedRun``: found from the
    pass's label, ``unrecorded_owner_of``, those of a record the pass holds, ``anchor_held``).
    ``total`` is their ``FIGURES`` summed (None: no run reported that figure, never 0),
    ``failed`` the failed runs' part of it, ``by_model`` the same per model
    (``add_model_figures``; ``unknown`` where no model is known). ``runs`` counts the agent
    runs behind them and ``runs_without_cost`` those that reported no cost (``runs_of``):
    when some did, ``total``'s cost is less than what was spent.

    ``planning`` and ``synthesis`` are parts of ``total``, each with its runs: what the
    pipeline's planner of the pass cost (its task lists, its refused or failed runs), and
    what writing its syntheses cost (every synthesis of the pass, and the pipeline
    synthesizer's refused or failed runs); ``unrecorded``, of ``total`` and of ``failed``,
    what the pipeline's runs of the pass that no other record holds cost (a worker's, a
    planner's or a synthesizer's: none gave what was asked of it); the rest is its workers'.
    ``retired_bookkeeping``, of ``planning`` and ``synthesis`` (and of ``failed``, their
    failed runs), what the records of the pipeline's bookkeeping that ``swarm pipeline
    retire`` removed cost (``kept_costs``), counted as those records were before it.

    ``findings`` (``superseded`` of them), ``tasks`` and ``syntheses``: how many records were
    summed. ``searched_all`` is False when only the first ``scan_limit`` records of each
    kind were read (the sums are theirs); ``corrupt`` records stored unreadable were left
    out; ``retired``: the pass was retired (``retire_pass``), its settled tasks and their
    findings removed, and with them the record of what their runs cost."""

    # What ``total`` covers, said under it wherever it is shown.
    COVERS: ClassVar[str] = (
        "its findings (superseded ones too), its tasks' failed runs, its syntheses, a "
        "pipeline's planner and synthesizer runs and its runs no other record holds"
    )
    # What ``total`` never covers, said under it too: an answer to a question a worker
    # asked is a finding of the question's queue (one more read per task to find); a
    # pipeline's planner and synthesizer are found from the pass's synthesis, so before it
    # is written, a pipeline's status counts them alone.
    NOT_COUNTED: ClassVar[str] = (
        "a pipeline's planner and synthesizer runs while the pass has no synthesis yet "
        "(swarm pipeline status counts them), the answers to questions its workers asked "
        "(swarm lineage shows each with its cost)"
    )

    pass_name: str
    total: dict[str, Any]
    failed: dict[str, Any]
    by_model: dict[str, dict[str, Any]]
    runs: int = 0
    runs_without_cost: int = 0
    findings: int = 0
    superseded: int = 0
    tasks: int = 0
    syntheses: int = 0
    searched_all: bool = True
    scan_limit: int = 0
    corrupt: int = 0
    retired: RetiredPass | None = None
    # The parts of ``total`` (``FIGURES`` each, None where unknown), with their runs.
    planning: dict[str, Any] = dataclasses.field(default_factory=dict)
    planning_runs: int = 0
    synthesis: dict[str, Any] = dataclasses.field(default_factory=dict)
    synthesis_runs: int = 0
    unrecorded: dict[str, Any] = dataclasses.field(default_factory=dict)
    unrecorded_runs: int = 0
    retired_bookkeeping: dict[str, Any] = dataclasses.field(default_factory=dict)
    retired_bookkeeping_runs: int = 0
    # Per model of ``by_model``: ``{"runs", "runs_without_cost"}``, the runs summed under it
    # and how many of them reported no cost (its line's cost is then less than was spent).
    model_runs: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    def shown(self) -> dict[str, Any]:
        """The costs as every face gives them as data (``swarm status --pass --json``, the
        MCP ``swarm_status``): its fields, what its total never covers (``not_counted``) and
        what these sums leave out (``caveats``)."""
        return {**self.to_dict(), "not_counted": self.NOT_COUNTED, "caveats": self.caveats()}

    def caveats(self) -> list[str]:
        """What the sums leave out, one sentence each, as every face says it ([]: nothing)."""
        out: list[str] = []
        if not self.searched_all:
            out.append(
                f"not every record of the pass was read (at most {self.scan_limit:,} "
                "findings, tasks and syntheses each): the pass cost more than these sums"
            )
        if self.corrupt:
            out.append(
                f"left out: {counted(self.corrupt, 'record')} of the pass stored unreadable "
                "(swarm doctor names each)"
            )
        if self.retired is not None:
            out.append(
                f"the pass was retired on {iso(self.retired.at) or 'an unknown date'}: its "
                f"{counted(self.retired.tasks, 'settled task')} and "
                f"{counted(self.retired.findings, 'finding')} were removed, and the record of "
                "what their runs cost with them"
            )
        return out


# === agent, message and event records ===


@dataclass(frozen=True)
class RetiredPass(Record):
    """What retiring a pass's settled work removed (``retire_pass``), or, with ``dry_run``,
    would remove; or, read back (``retired_passes``), what every retirement of the pass
    removed in all, ``at`` the last one (ms).

    ``tasks``: its completed, cancelled and dead tasks, with their data and index entries;
    ``findings``: every finding of those tasks, superseded ones too; ``kept``: its tasks
    left because they were open (pending, delayed, claimed), posted while it ran; ``cited``:
    its settled tasks kept because a synthesis of another pass cites a finding of theirs
    (they stay with those findings, so that the synthesis cites stored findings);
    ``corrupt``: its tasks and findings stored unreadable (``swarm doctor`` names them),
    left in place."""

    pass_name: str
    tasks: int
    findings: int
    kept: int = 0
    dry_run: bool = False
    at: int | None = None
    cited: int = 0
    corrupt: int = 0

    @classmethod
    def stored(cls, pass_name: str, raw: str | bytes) -> RetiredPass:
        """The record ``retired_passes`` keeps of pass ``pass_name`` (its JSON, ``raw``)."""
        record = loads(raw)
        at = record.get("at")
        return cls(
            pass_name, int(record.get("tasks", 0)), int(record.get("findings", 0)),
            at=int(at) if at is not None else None,
        )  # fmt: skip

    def task_gone(self, task_id: str) -> str:
        """What a report on task ``task_id`` of the pass, retired with it, is told."""
        return (
            f"task {task_id} was retired with its pass {dumps(self.pass_name)} on "
            f"{iso(self.at) or 'an unknown date'} (swarm retire): there is nothing left to "
            "report on; move on to the next task"
        )


class RetiredAsk(NamedTuple):
    """A question no longer stored that a task's worker asked (``Swarm.retired_asked``): when
    it was retired (ms; None: unknown), and how it had ended (its status: ``completed``, that
    is answered, ``cancelled`` or ``dead``, both with no answer; None: unknown)."""

    at: int | None
    outcome: TaskStatus | None = None


@dataclass(frozen=True)
class RetiredQuestions(Record):
    """What retiring the settled questions of a queue of questions removed
    (``retire_questions``), or, with ``dry_run``, would remove; or, read back
    (``retired_questions``), what every retirement of the queue removed in all, ``at`` the
    last one (ms).

    ``queue``: the queue (``ask.OWNER``, or the peer-assist queue); ``questions``: its
    completed, cancelled and dead questions settled ``older_than_s`` ago or earlier, with
    their data and index entries; ``findings``: every finding of them (the answer,
    superseded ones too); ``open``: the queue's open questions (pending, delayed, claimed),
    left, and ``recent``: its settled ones left (settled within ``older_than_s``), both
    read from its counters after the run, less ``other``: tasks of the queue posted with a
    pass or shard (open or settled), left to ``retire_pass``; ``cited``: its settled
    questions kept because a synthesis cites their answer; ``corrupt``: the queue's records
    stored unreadable (``swarm doctor`` names them, and those of other queues), left in
    place."""

    # How long ago a question must have settled to go, unless the caller says otherwise: an
    # asker still waiting (and every sharer) reads the answer within milliseconds of the
    # task.completed event, so a minute never removes an answer before it is read, where 0
    # could (the asker then told the question was deleted while it was asked). 0 stays
    # allowed, explicitly. (An asker that comes back later for a kept question is the
    # caller's to wait for: the docs say to give more.)
    DEFAULT_OLDER_THAN_S: ClassVar[float] = 60.0

    queue: str
    questions: int
    findings: int
    open: int = 0
    recent: int = 0
    dry_run: bool = False
    at: int | None = None
    older_than_s: float = 0.0
    cited: int = 0
    other: int = 0
    corrupt: int = 0

    @classmethod
    def stored(cls, queue: str, raw: str | bytes) -> RetiredQuestions:
        """The record ``retired_questions`` keeps of ``queue`` (its JSON, ``raw``)."""
        record = loads(raw)
        at = record.get("at")
        return cls(
            queue, int(record.get("questions", 0)), int(record.get("findings", 0)),
            at=int(at) if at is not None else None,
        )  # fmt: skip


@dataclass(frozen=True)
class Agent(Record):
    """A registered agent. ``last_seen`` is its last heartbeat (ms); ``alive`` is computed
    by the listing that returned it (last heartbeat within ``stale_after_s``), and so is
    ``current_task``: the task its last heartbeat named, else the newest it holds a lease on.

    Workers that only claim and report are registered implicitly by the work queue with a
    minimal record (``implicit`` True, role ``worker``); every other field is then None.
    ``left_at``: when its session said it ended (``mark_stale``, a named MCP server closing),
    until it registers again; a sign of life since (``last_seen`` after it) makes it alive.
    """

    id: str
    role: str = "worker"
    model: str | None = None
    specialization: str | None = None
    capacity_tokens: int | None = None
    parent: str | None = None
    metadata: dict[str, Any] | None = None
    registered_at: int | None = None
    last_seen: int | None = None
    implicit: bool = False
    current_task: str | None = None
    alive: bool | None = None
    left_at: int | None = None


@dataclass(frozen=True)
class Message(Record):
    """A message in an agent's inbox; ``to`` is ``"*"`` for a broadcast. ``seq`` is its place
    in the swarm's one message order (a stream id): pass the last one shown to ``mark_read``.
    ``receivers``: on what ``broadcast`` returns, how many agents receive it (those registered
    when it was sent, its sender aside: an agent registering later does not); None for a
    direct message, or a message read from an inbox (not known there)."""

    id: str
    sender: str | None
    to: str
    kind: str
    body: str
    data: dict[str, Any] | None = None
    created_at: int = 0
    seq: str = ""
    # (not compared: the message a broadcast returns equals the one an inbox shows, which
    # cannot know it)
    receivers: int | None = dataclasses.field(default=None, compare=False)

    @property
    def unreached(self) -> str | None:
        """The warning every face gives the sender of a broadcast that reached nobody (no
        other agent was registered when it was sent), in one wording; None otherwise (a direct
        message, a broadcast with receivers, or one whose count is not known)."""
        if self.to != "*" or self.receivers != 0:
            return None
        return (
            f"no other agent is registered, so broadcast {self.id} reached nobody (an agent "
            "that registers later does not receive it): send it again once agents have joined"
        )


class Inbox(list[Message]):
    """What ``inbox`` returns: the messages read, oldest first (a plain list to iterate,
    index or compare), and ``more``: whether more unread messages were waiting after them
    (the read stopped at its ``limit``), so that a reader knows to read on. ``read_id``: the
    acknowledged read that took them (None for a peek, or when it took none), which
    ``give_back_inbox`` withdraws when its caller could not hand them on. ``trimmed``: None,
    or the text saying that broadcasts after this agent's broadcast cursor were trimmed (a
    swarm keeps its newest ``BROADCAST_MAXLEN``) before it was shown them: they are lost to
    it (a ``UserWarning`` says so too)."""

    more: bool
    read_id: str | None
    trimmed: str | None

    def __init__(
        self,
        messages: Iterable[Message] = (),
        *,
        more: bool = False,
        read_id: str | None = None,
        trimmed: str | None = None,
    ) -> None:
        super().__init__(messages)
        self.more = more
        self.read_id = read_id
        self.trimmed = trimmed

    def to_dict(self) -> dict[str, Any]:
        """As a record's (``Record.to_dict``, a ``Page``'s): ``{"items": [each message's
        to_dict()], "more", "read_id", "trimmed"}``. (As a list, ``dumps`` of it is the
        messages alone: JSON's encoder takes a list as it is.)"""
        return {
            "items": [message.to_dict() for message in self],
            "more": self.more,
            "read_id": self.read_id,
            "trimmed": self.trimmed,
        }

    def to_json(self) -> str:
        return dumps(self.to_dict())


@dataclass(frozen=True)
class MessageStatus(Record):
    """Whether a message was read (shown to its reader). ``read_by`` and ``unread_by`` name
    its readers: the recipient of a direct message; for a broadcast, every agent registered
    when it was sent, its sender aside (those registered now: a reader that left is in
    neither list). ``read`` is true only when every reader is known to have read it (or it
    had none)."""

    id: str
    to: str
    seq: str
    read: bool
    read_by: tuple[str, ...] = ()
    unread_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Webhook(Record):
    """Where to push a task's updates (an A2A push notification config): POST to ``url``,
    with ``token`` as the client's own check and ``auth_scheme`` / ``auth_credentials`` as
    its Authorization header."""

    id: str
    task_id: str
    url: str
    # Secrets (the receiver's): kept out of repr, which logs show; to_dict keeps them. The
    # url is shown masked there (``shown_webhook_url``).
    token: str | None = dataclasses.field(default=None, repr=False)
    auth_scheme: str | None = None
    auth_credentials: str | None = dataclasses.field(default=None, repr=False)
    created_at: int = 0

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.repr}
        shown["url"] = shown_webhook_url(self.url)
        return f"Webhook({', '.join(f'{name}={value!r}' for name, value in shown.items())})"


# The query parameters of an http URL that hold a secret beyond those a Redis URL's masking
# knows (``_config.mask_url``: pass, secret, token, cred, auth): an API key, a signature.
_HTTP_SECRET_NAME = re.compile(r"key|sig", re.IGNORECASE)


def shown_webhook_url(url: str) -> str:
    """A webhook's ``url`` as a repr or a message shows it: its user and password, and the
    value of every query parameter that holds a secret (``?token=``, ``?api_key=``,
    ``?sig=``), as ``***``. The stored url is the whole one."""
    return mask_query(mask_url(url), lambda name: bool(_HTTP_SECRET_NAME.search(name)))


@dataclass(frozen=True)
class Event(Record):
    """One entry of the swarm's event stream. ``id`` is the stream id (pass it back as
    ``since``), ``at`` the time in ms, ``fields`` what the event names (task, agent, ...)."""

    id: str
    type: EventType
    at: int
    fields: dict[str, str]


@dataclass(frozen=True)
class EventsTrimmed(Record):
    """Events after ``since`` (an event id, or a time in ms) that the capped event stream no
    longer holds: it keeps the newest ``kept``, so a reader starting from ``since`` begins
    at ``oldest``, the oldest event kept. ``certain`` is False where the server cannot
    count what was added (Redis 6.2): they may have been trimmed."""

    since: str | int
    oldest: str
    kept: int
    certain: bool = True

    def note(self) -> str:
        """The line a reader is told, with what to do about it."""
        since = f"from {iso(self.since)}" if isinstance(self.since, int) else f"after {self.since}"
        were = "were" if self.certain else "may have been"
        return (
            f"events {since} up to {self.oldest} {were} trimmed from the stream (it "
            f"keeps the newest {self.kept:,}): what they recorded is still in the tasks, "
            "findings and syntheses themselves (swarm task list, swarm findings, swarm synth "
            "list)"
        )


# === the swarm at a glance: what every face's status shows ===


@dataclass(frozen=True)
class PassProgress(Record):
    """One pass: its task counts by status, and how many of them are settled."""

    name: str
    counts: dict[str, int]
    total: int
    settled: int

    @property
    def fraction(self) -> float:
        """The share of the pass's tasks settled, 0 to 1 (0 for a pass of no task)."""
        return self.settled / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """``Record.to_dict``, with ``fraction`` (rounded to 4 places) beside the counts."""
        return {**super().to_dict(), "fraction": round(self.fraction, 4)}


@dataclass(frozen=True)
class AgentCounts(Record):
    """How many agents are registered, alive and stale; ``by_role`` counts the live ones."""

    total: int
    alive: int
    stale: int
    by_role: dict[str, int]


@dataclass(frozen=True)
class SwarmStatus(Record):
    """The swarm at a glance, read in one round trip whatever the number of tasks: what
    ``swarm status``, the MCP ``swarm_status`` tool, the dashboard and the seed's
    ``get_swarm_status`` show.

    ``last_event_id`` is the newest event already reflected here (read first): follow the
    event stream from it to stay current. ``queues`` maps each queue to its task counts by
    status, ``totals`` adds them up across queues; ``roster`` lists the agents, live ones
    first, then by role and id; ``contexts`` holds the current version of each owner's.
    """

    swarm: str
    last_event_id: str
    queues: dict[str, dict[str, int]]
    totals: dict[str, int]
    passes: tuple[PassProgress, ...]
    agents: AgentCounts
    roster: tuple[Agent, ...]
    contexts: tuple[ContextInfo, ...]


@dataclass(frozen=True)
class Recent(Record):
    """The newest findings, syntheses and dead-lettered tasks (newest first; the tasks
    without their data): what the live views show below the status. ``corrupt`` names the
    records among them stored unreadable (left out). (The task a worker holds is in the
    status's roster, ``SwarmStatus.roster``: the core decides it there, once.)"""

    findings: tuple[Finding, ...]
    syntheses: tuple[Synthesis, ...]
    dead: tuple[Task, ...]
    corrupt: tuple[str, ...] = ()
