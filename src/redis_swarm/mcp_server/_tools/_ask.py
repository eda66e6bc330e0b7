"""The ask tool: a worker or a shard asks a shard (or a queue of helpers) and waits."""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import replace
from functools import cached_property
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from ..._client import Swarm
from ..._codec import iso
from ..._errors import (
    ConnectionFailed,
    InvalidState,
    NotFound,
    SwarmError,
    ValidationError,
)
from ..._keys import ask_queue, asked_owner
from ..._models import Task
from ..._runner.lease_renewal import LeaseRenewal
from ..._validate import check_name
from .._agent_session import ANSWER, AgentSession, Lease
from .._budget import Budget
from .._files import FileAccess
from .._render import plain
from .._roles import EVERYONE, SHARD, tool
from .._session import SessionRegistry
from ._base import MAX_CLAIM_WAIT_S, MAX_PASS_WAIT_S, ToolsBase

__all__ = ["AskTools"]

log = logging.getLogger(__name__)


class _Gone(Exception):
    """The MCP call that asked ended (cancelled, its session gone) before the question was
    known: raised by ``on_posted`` in the abandoned wait, which then withdraws a question of
    its own (the core's ask gives it up as at an interrupt)."""


class _Asked:
    """The question an MCP ask waits for (told by the core's ``on_posted``, on the wait's
    thread), and whether it is this ask's own to withdraw: one it posted, never one its
    dedupe key met (withdrawing that would cut its poster's wait short)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._question: str | None = None
        self._ours = False
        self._gone = False

    def posted(self, question_id: str, posted: bool) -> None:
        with self._lock:
            if self._gone:  # (a question posted after the call ended: the core withdraws it)
                raise _Gone(f"the ask of question {question_id} ended before it was posted")
            self._question, self._ours = question_id, posted

    def stopped(self) -> bool:
        """The core's ``stop``: the call ended, so the wait left behind ends too (within a
        second), a question its dedupe key met left to its poster."""
        return self._gone

    def gone(self) -> str | None:
        """The call ended: the question to withdraw now, if this ask posted one."""
        with self._lock:
            self._gone = True
            return self._question if self._ours else None


def _after(lost: str | None, error: ToolError) -> ToolError:
    """A tool error of answer_question, after the renewal of its question's lease was
    refused (``lost``: why, said first)."""
    return error if lost is None else ToolError(f"{lost}. {error}")


class AskTools(ToolsBase):
    """Ask and answer."""

    def __init__(
        self, swarm: Swarm, sessions: SessionRegistry, budget: Budget, files: FileAccess
    ) -> None:
        super().__init__(swarm, sessions, budget, files)
        # A question a session holds again as it opens (a named stdio server restarted) is
        # kept renewed as one next_question hands out, from at once: its lease was last
        # renewed before the restart.
        sessions.held_again = functools.partial(self._keep_renewed, at_once=True)

    @tool(roles=EVERYONE)
    async def ask(
        self,
        target: Annotated[
            str,
            Field(
                description="A shard: the owner of the context (swarm_status lists them); "
                "or a queue of helpers such as 'assist'."
            ),
        ],
        question: Annotated[str, Field(description="One precise question, self-contained.")],
        ctx: Context,
        timeout_s: Annotated[
            float,
            Field(gt=0, le=MAX_PASS_WAIT_S, description="Seconds to wait for the answer."),
        ] = 60.0,
        task_id: Annotated[
            str | None,
            Field(
                description="The task you claimed and work on (default: the one you hold, if one)."
            ),
        ] = None,
        data: Annotated[
            dict[str, Any] | None,
            Field(
                description="The material the answerer needs, as a JSON object (an excerpt, "
                "ids, a long text): keep the question short and put the rest here."
            ),
        ] = None,
        dedupe_key: Annotated[
            str | None,
            Field(
                description="Asking with the same key again waits for (or returns) the answer "
                "of the question asked before with it, instead of asking anew."
            ),
        ] = None,
    ) -> CallToolResult:
        """Ask a shard that holds a big context a question about it, and wait for its answer.

        Use it for a fact you cannot find in the slice you read (search_context found
        nothing, or the answer needs the whole context): the shard's agent has read it all.
        Blocked on something a peer may know? ask the queue 'assist'. The answer links to
        your task, whose lease is renewed while you wait. On timeout the question is
        cancelled: go on without it, or ask again with a longer timeout_s. So is it when
        this call is cancelled or the session ends first (unless another asker posted it)."""
        session = await self._acting(ctx)
        held = task_id
        if held is None and len(session.leases) == 1:
            held = next(iter(session.leases))
        asker: str | Task = session.agent_id
        if held is not None:
            lease = session.leases.get(held)  # its token lets the ask renew the lease
            if lease is None:  # (the asker is this session's agent, never another's)
                raise self._error(
                    ValidationError(
                        f"this session holds no lease on task {held}: task_id names a task "
                        "you claimed (claim_task) and still hold; leave task_id out to ask "
                        "as yourself"
                    )
                )
            task = await self._run(self.swarm.get_task, held)
            # The asker is this session's agent (the core records the task's worker as it).
            asker = replace(task, token=lease.token, worker=session.agent_id)
        answer = await self._asking(
            target, question, data=data, timeout_s=timeout_s, asker=asker, dedupe_key=dedupe_key
        )
        payload = plain(answer)  # (its time as every tool shows times: ISO-8601 UTC)
        payload.pop("summary", None)
        return self._result(payload)

    async def _asking(self, target: str, question: str, **kwargs: Any) -> Any:
        """The core's ask, waited for on a worker thread. A call cancelled (or a session
        ended) before the answer stops waiting at once and withdraws the question it posted
        (``swarm task cancel``'s operation), so that no answerer takes it for an asker gone;
        one its dedupe key met stays, its poster's to withdraw. The wait left behind ends
        within a second (the core's ``stop``), so that calls cancelled again and again hold
        no threads."""
        asked = _Asked()
        try:
            # (left behind at a cancel as a read is: what it posted is withdrawn below)
            return await self._read(
                self.swarm.ask,
                target,
                question,
                on_posted=asked.posted,
                stop=asked.stopped,
                **kwargs,
            )
        except anyio.get_cancelled_exc_class():
            withdraw = asked.gone()
            if withdraw is not None:
                with anyio.CancelScope(shield=True):
                    await self._withdraw(withdraw)
            raise

    async def _withdraw(self, question_id: str) -> None:
        try:
            await self.sessions.call(self.swarm.cancel, question_id)
        except (InvalidState, NotFound):  # answered, or withdrawn by the wait, meanwhile
            pass
        except SwarmError as exc:
            log.warning("could not withdraw question %s, its asker gone: %s", question_id, exc)

    @tool(roles=SHARD)
    async def next_question(
        self,
        ctx: Context,
        owner: Annotated[
            str | None, Field(description="Whose questions: default your own context's.")
        ] = None,
        wait_s: Annotated[
            float,
            Field(ge=0, le=MAX_CLAIM_WAIT_S, description="Wait this long for a question."),
        ] = 0.0,
    ) -> CallToolResult:
        """Shard: take the next question workers asked about your context (with ask), to
        answer it from what you hold. Answer it with answer_question, then take the next;
        none: the result says so (call again with wait_s to wait). Its lease is kept
        renewed while this session holds it: take the time a good answer needs (its
        asker's timeout still bounds its wait)."""
        session = await self._acting(ctx)
        # (the owner checked as one: the queue's name would blame an argument not given)
        queue = ask_queue(check_name("context owner", session.context_owner(owner)))
        # (a wait in slices, as claim_task's: a cancelled call ends it, takes nothing; a
        # question stored damaged is dead-lettered, and said, as claim_task says a task)
        task, said = await self._claim(session, queue, lease_s=None, wait_s=wait_s)
        if task is None:
            return self._result(
                {"question": None, "queue": queue, "next": "no question is waiting: go on with "
                 f"your work, or call next_question again with wait_s up to {MAX_CLAIM_WAIT_S:g}",
                 **said}
            )  # fmt: skip
        session.hold(task)
        self._keep_renewed(session, task)
        data = task.data if isinstance(task.data, dict) else {}
        payload = {
            "question_id": task.id,
            "question": task.description,
            "asker": data.get("asker"),
            "asker_task": data.get("asker_task"),
            "data": plain(data.get("data")),
            "lease_deadline": iso(task.lease_deadline),
            "next": f"answer_question(question_id={task.id!r}, text=...) from your context, "
            "with the line numbers you rely on; say plainly if it does not say",
            **said,
        }
        return self._result(payload)

    @tool(roles=SHARD)
    async def answer_question(
        self,
        question_id: Annotated[str, Field(description="The id next_question returned.")],
        text: Annotated[
            str, Field(description="The answer: its first line a one-sentence summary.")
        ],
        ctx: Context,
        sources: Annotated[
            list[str] | None, Field(description="Where it comes from: 'context:L120-L135'.")
        ] = None,
    ) -> CallToolResult:
        """Shard: answer, once, a question you took with next_question; the asker gets it
        at once, with the version of the context you read. Then take the next one."""
        session = await self._acting(ctx)
        token = self._token(session, question_id, None, ANSWER)
        lease = session.leases.get(question_id)
        # (read before the answer: a renewal refused because of this answer says nothing)
        lost = self._lost_leases.get(token)
        # The version of the asked owner's context this session read (the question's queue
        # is ask.OWNER), as report_finding records the version of its task's shard.
        owner = asked_owner(lease.queue) if lease else None
        version = session.read_versions.get(owner) if owner else None
        try:
            found = await self.sessions.call(
                self.swarm.answer, question_id, token, text, worker=session.agent_id,
                model=session.model, context_version=version, sources=sources or (),
            )  # fmt: skip
        except SwarmError as exc:  # (held still unless settled first: report_finding's rule)
            raise _after(lost, self._refused(session, question_id, exc, ANSWER)) from exc
        session.report_done(question_id, found.id, ANSWER)
        payload: dict[str, Any] = {"finding_id": found.id, "question_id": question_id,
                                   "answered": True}  # fmt: skip
        # (taken all the same: the first answer of an open question wins). Another lease
        # holding it is the core's word (the answer's own reply), whether a renewal saw it;
        # a renewal refused said first how the lease was lost.
        said = found.overtaken_said(what="question", deed="answer", why=lost)
        if said is not None:
            payload["lease_lost"] = said
        payload["next"] = "take the next question with next_question"
        return self._result(payload)

    # --- a held question's lease, kept renewed

    @cached_property
    def _lost_leases(self) -> dict[str, str]:
        """Lease token -> why its renewal stopped, the lease lost (said by the next
        answer_question of its question), while its session still holds it."""
        return {}

    def _keep_renewed(self, session: AgentSession, task: Task, *, at_once: bool = False) -> None:
        """Keep the lease of the question ``task`` that ``session`` holds (claimed by its
        next_question, or held again as it opened: a named stdio server restarted, its
        token kept on this machine) renewed in the server's background while the session
        holds it: as ``swarm serve`` keeps the lease of a question its agent answers
        (``LeaseRenewal``: the core's renew, three times per lease, as long as the claim
        asked for, ``Task.claimed_lease_s``: shorter than the task's ``lease_s`` for a
        question claimed elsewhere with a lease of its own, then held again here; a renewal
        failed in an outage tried again within a second). A task of another queue than a
        shard's questions (``ask.OWNER``) is left alone. It stops when
        the session lets the question go (answered, released at its close) or closes; the
        lease then runs out, or was released, and the question goes back to its queue as
        before. A renewal refused (the asker withdrew the question at its timeout, or the
        lease ended and another answerer took it) stops it too, and the next
        answer_question of the question says why. The asker's own timeout bounds the
        question: its withdrawal ends the renewals. ``at_once``: the first renewal is due
        at once (a lease held again, last renewed before its server restarted)."""
        if asked_owner(task.queue) is None:
            return
        lease = session.leases[task.id]
        self.sessions.in_background(self._renewing, session, lease, task, at_once)

    async def _renewing(
        self, session: AgentSession, lease: Lease, task: Task, at_once: bool
    ) -> None:
        def held() -> bool:
            return not session.closed and session.leases.get(task.id) is lease

        def outage(exc: ConnectionFailed) -> None:
            log.warning("the lease of question %s held by %s not renewed (%s): tried again "
                        "within a second", task.id, session.agent_id, exc)  # fmt: skip

        renewal = LeaseRenewal(
            self.swarm, task, None, [], token=lambda: lease.token, on_outage=outage,
            on_back=lambda: log.info("the lease of question %s renewed again", task.id),
            adopt=lambda _now: False, on_kept=lambda _why: None, at_once=at_once,
        )  # fmt: skip
        why: str | None = None
        while why is None:
            if not held():
                return
            try:  # (a renewal not due yet returns at once, calling nothing)
                why = await self.sessions.call(renewal)
            except Exception as exc:  # (never the server's end: its lifespan runs this)
                why = f"{type(exc).__name__}: {exc}"
            if why is None:
                await anyio.sleep(renewal.tick_s)
        if not held():  # (answered meanwhile: the answer refused the renewal)
            return
        said = (
            f"the lease of question {task.id} was lost while this session held it, its "
            f"renewal refused: {why}"
        )
        log.warning("%s (agent %s)", said, session.agent_id)
        self._lost_leases[lease.token] = said
        try:
            while held():  # (said by its next answer_question, until the session lets it go)
                await anyio.sleep(renewal.tick_s)
        finally:
            self._lost_leases.pop(lease.token, None)
