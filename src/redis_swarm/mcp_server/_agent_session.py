"""One connected agent's session: its id and role, the leases it holds, the context versions
it read and the tasks it settled (``AgentSession``), and how a settled task is refused when
settled again (``Settling``: a worker's ``REPORT``, a shard's ``ANSWER``). The registry of a
server's sessions, which opens, heartbeats and closes them, is ``_session``.

The lease token of each claimed task stays with the session, so a worker names only the task
id and cannot lose its token (on stdio it is also kept in the machine's token store, where the
hooks of the same agent find it: ``_lease_tokens``); so do the findings of the last tasks it
reported (a worker's task, a shard's question), so that a second report or answer of one is
told what happened to the first.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from .. import _lease_tokens as tokens
from .._codec import dumps
from .._config import Settings
from .._errors import AlreadyCompleted, LeaseLost, ValidationError
from .._models import Task

__all__ = [
    "ANSWER",
    "REMEMBERED_REPORTS",
    "REPORT",
    "AgentSession",
    "Lease",
    "Settling",
]

log = logging.getLogger("redis_swarm.mcp")

# How many reported tasks (and answered questions) a session remembers, oldest forgotten first:
# an agent reports again the task it just did, not one of a thousand ago, and a session that
# lives for days stays small.
REMEMBERED_REPORTS = 1000


@dataclass(frozen=True)
class Settling:
    """How a session settles a task it holds with a finding (a worker reports its task, a
    shard answers its question), in the words an agent is told when it tries again."""

    noun: str  # what is settled: "task"
    done: str  # what it became: "completed"
    act: str  # the finding that settles it: "report"
    acted: str  # "reported": this session reported it
    then: str  # what to do instead of settling it again
    unheld: str  # what to do when this session holds no lease on it
    argument: str  # the tools' argument that names it: "task_id"

    def again(self, task_id: str, finding_id: str, *, superseded: bool = False) -> AlreadyCompleted:
        """This session settled ``task_id`` (as ``finding_id``) already: nothing is stored.
        ``superseded``: its finding came after the task was settled (``late``), and was kept
        superseded: the session did not complete it, and is told so again."""
        if superseded:
            return AlreadyCompleted(
                f"{self.noun} {task_id} was settled before your {self.act} arrived "
                f"({self._settled_by}): your {self.act} was kept as superseded ({finding_id}), "
                f"not as the {self.noun}'s result; {self.then}",
                finding_id=finding_id,
            )
        return AlreadyCompleted(
            f"{self.noun} {task_id} was already {self.done}: this session {self.acted} it "
            f"({finding_id}); {self.then}",
            finding_id=finding_id,
        )

    def late(self, task_id: str, finding_id: str) -> AlreadyCompleted:
        """``task_id`` was settled before this session's finding arrived, which the core kept
        as superseded (``finding_id``)."""
        return AlreadyCompleted(
            f"{self.noun} {task_id} was already settled ({self._settled_by}); your {self.act} "
            f"was kept as superseded ({finding_id}), nothing is lost: {self.then}",
            finding_id=finding_id,
        )

    @property
    def _settled_by(self) -> str:
        """What settles a task before a session's finding (the core does not say which)."""
        return f"another {self.act} came first, or it was cancelled"


REPORT = Settling(
    "task", "completed", "report", "reported",
    "do not report, renew or fail it again, claim the next task with claim_task",
    "claim a task with claim_task and use the task id it returns; if this MCP server "
    "restarted since your claim, pass the token that claim_task returned",
    "task_id",
)  # fmt: skip
ANSWER = Settling(
    "question", "answered", "answer", "answered",
    "do not answer it again, take the next question with next_question",
    "take a question with next_question and answer the question_id it returns (a "
    "question taken before this MCP server restarted, and not held again by it, goes back "
    "to its queue once its lease ends, for the next answerer)",
    "question_id",
)  # fmt: skip


@dataclass
class Lease:
    """A task this session holds and has not settled yet."""

    token: str
    queue: str
    parent: str | None
    # Found as the session opened, its token kept on this machine (``_session._held_again``:
    # a server killed and started again, a ``swarm task claim --worker`` or the hooks of the
    # same agent), not claimed in this process: its close leaves it leased, its token kept,
    # as it was found (a health check of the server, ``claude mcp list``, takes nothing away).
    found: bool = False


@dataclass
class AgentSession:
    """One connected agent: its id, and what it holds and has read."""

    agent_id: str
    role: str
    client: str
    model: str | None = None
    leases: dict[str, Lease] = field(default_factory=dict)
    # owner -> the context version this agent last read: the lineage a finding records.
    read_versions: dict[str, str] = field(default_factory=dict)
    # task id -> how this session settled it, the finding it stored and whether that was
    # kept superseded (the task settled first: cancelled, or another's finding), oldest
    # first: a task reported (or a question answered) twice is refused here, before a
    # duplicate finding is stored, saying which.
    reported: OrderedDict[str, tuple[Settling, str, bool]] = field(default_factory=OrderedDict)
    closed: bool = False
    # Its agent kept at close, marked stale, as a named one's: closed for idleness
    # (``stale``), or a direct message sent to it waited unread (``close``'s ``if_read``).
    kept: bool = False
    # Its id was given (--name, SWARM_AGENT): someone comes back as it, so it stays
    # registered when the session closes, its inbox kept for its next start.
    named: bool = False
    # Why its agent's id is another server's live agent's now (its rejoin after a sweep was
    # refused: ``name_held``): it beats no more, not to keep that agent alive under another
    # role's session, and its tool calls are told this.
    displaced: str | None = None
    # Where its lease tokens are also kept for the hooks of the same agent (the machine's
    # token store, ``_lease_tokens``); None: here only (HTTP: the agents are elsewhere).
    token_store: Settings | None = None
    # Held while a heartbeat of its agent is on its way: its close waits one out, so that
    # none lands after the agent is marked stale (it would read alive again).
    beating: anyio.Lock = field(default_factory=anyio.Lock, repr=False, compare=False)
    # When a request last asked for it or ended (the registry's ``clock``): a 2026-era session,
    # which no connection ends, is closed once unused for the registry's ``idle_s``; when
    # the server is full, the one unused the longest makes room.
    used: float = field(default_factory=time.monotonic)
    # What its requests are counted under (``SessionRegistry._key``): its client's name on
    # the 2026 era, its connection on the handshake era.
    key: object = None
    # Its HTTP session's id (handshake era over HTTP): ended with it when it makes room.
    http_id: str | None = None
    # When the event stream (GET) its client kept open last closed: a client that listens is
    # gone, or dropped it (a restart that opens a new session without its session id). Its
    # fixed id may then be taken over at once (``_take_name``) rather than after minutes
    # unused, unless a request came since (the client is still at work: ``gone_since_stream``).
    stream_closed_at: float | None = None

    def gone_since_stream(self) -> bool:
        """Whether its client closed its event stream and sent nothing since."""
        return self.stream_closed_at is not None and self.stream_closed_at >= self.used

    def hold(self, task: Task) -> None:
        """The session claimed ``task``: it keeps the lease (and stores its token)."""
        assert task.token is not None  # a claimed task carries its lease's token
        self.leases[task.id] = Lease(task.token, task.queue, task.parent)
        if self.token_store is not None:
            store, token = self.token_store, task.token
            _keep_tokens(lambda: tokens.remember(store, self.agent_id, task.id, token))

    def let_go(self, task_id: str, *, forget: bool = True) -> None:
        """The session's lease on ``task_id`` is over (settled, released, lost). ``forget``
        false: its token stays kept on the machine, a lease lost while its task is open
        (the hooks' late report takes it; they drop it once the task is settled:
        ``_lease_tokens.outlived``)."""
        lease = self.leases.pop(task_id, None)
        if forget and lease is not None and self.token_store is not None:
            store = self.token_store
            _keep_tokens(lambda: tokens.forget_task(store, task_id, lease.token))

    def report_done(
        self, task_id: str, finding_id: str, how: Settling, *, superseded: bool = False
    ) -> None:
        """The session settled ``task_id`` (``how``) as ``finding_id``, or tried to: the task
        was settled first and ``finding_id`` kept ``superseded``. Its lease is over."""
        self.let_go(task_id)
        self.reported[task_id] = (how, finding_id, superseded)
        self.reported.move_to_end(task_id)
        while len(self.reported) > REMEMBERED_REPORTS:
            self.reported.popitem(last=False)

    def token(self, task_id: str, given: str | None = None, how: Settling = REPORT) -> str:
        """The lease token for ``task_id``: the session's own, else the one the agent passed.

        A task this session has settled is refused even with a token: its lease is over, and
        settling it again would only store a superseded duplicate."""
        if not task_id.strip():
            given = dumps(task_id)
            raise ValidationError(
                f"{how.argument}: must be the id of a {how.noun} (got {given}): {how.unheld}"
            )
        settled = self.reported.get(task_id)
        if settled is not None:
            how, finding_id, superseded = settled
            raise how.again(task_id, finding_id, superseded=superseded)
        lease = self.leases.get(task_id)
        if lease is not None:
            return lease.token
        if given is not None:
            return given
        raise LeaseLost(f"this session holds no lease on {how.noun} {task_id}: {how.unheld}")

    def context_owner(self, owner: str | None) -> str:
        """The context an agent means when it names none: its task's shard, else its own."""
        if owner:
            return owner
        parents = {lease.parent for lease in self.leases.values() if lease.parent}
        return parents.pop() if len(parents) == 1 else self.agent_id


def _keep_tokens(change: Callable[[], None]) -> None:
    """A change to the token store: never a tool's error (the session keeps its own copy of
    every token; only the hooks' renewal and report of its leases miss one not stored)."""
    try:
        change()
    except OSError as exc:
        log.warning("lease tokens not kept for the hooks: %s", exc)
