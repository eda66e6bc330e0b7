"""The plumbing every tool group shares: sessions, core calls off the event loop, results
within the budget, cursors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from ..._client import Swarm
from ..._codec import dumps, dumps_shown, shown_json
from ..._errors import AlreadyCompleted, LeaseLost, NotFound, SwarmError, TaskDeadLettered
from ..._models import Task
from ..._validate import MAX_LEASE_S, MIN_LEASE_S
from .._agent_session import REPORT, AgentSession, Settling
from .._budget import Budget, Spill, decode_cursor, encode_cursor
from .._files import FileAccess
from .._render import blocks, tool_error
from .._session import SessionRegistry

__all__ = [
    "MAX_CLAIM_WAIT_S",
    "MAX_PASS_WAIT_S",
    "ClaimedTaskId",
    "ContextOwner",
    "ContextVersion",
    "LeaseSeconds",
    "LeaseToken",
    "PageCursor",
    "ToolsBase",
    "dead_lettered",
    "failed_after",
]

T = TypeVar("T")

# Bounds on what one call may ask for: waits stay under the tool timeouts of agent clients.
MAX_CLAIM_WAIT_S = 60.0
MAX_PASS_WAIT_S = 300.0

# Parameters several tools take, described once (an alias is the parameter's schema).
ClaimedTaskId = Annotated[str, Field(description="The id claim_task returned.")]
LeaseToken = Annotated[
    str | None,
    Field(
        description="Only if this server restarted since the claim: the token claim_task returned."
    ),
]
# A lease's length: the core's range (a fraction of a second too), as the Python API, --jsonl
# and the CLI's --lease take it.
LeaseSeconds = Annotated[float, Field(ge=MIN_LEASE_S, le=MAX_LEASE_S, allow_inf_nan=False)]
ContextOwner = Annotated[
    str | None, Field(description="Whose context; default: your task's shard, else your own.")
]
ContextVersion = Annotated[str | None, Field(description="A past version (default: current).")]
PageCursor = Annotated[str | None, Field(description="The previous page's next_cursor.")]


def dead_lettered(dead: list[TaskDeadLettered]) -> dict[str, Any]:
    """What a claim that met tasks stored damaged, and dead-lettered them instead of handing
    them out, adds to its result (none: nothing): each in the core's words, its repair named
    (``TaskDeadLettered``), so that a claim that found nothing else is not read as an empty
    queue. (claim_task, report_finding's claim_next, next_question.)"""
    return {"dead_lettered": [str(d) for d in dead]} if dead else {}


def failed_after(error: ToolError, dead: list[TaskDeadLettered]) -> ToolError:
    """The tool error of a claim that failed (its connection lost mid-wait, say) after it
    dead-lettered ``dead``: those said too, as ``dead_lettered`` says them in a result."""
    if not dead:
        return error
    said = json.dumps(dead_lettered(dead))
    return ToolError(f"{error} (before it failed, the claim dead-lettered tasks: {said})")


class ToolsBase:
    """What every tool group shares: the server's Swarm, sessions, budget and spill pages."""

    def __init__(
        self, swarm: Swarm, sessions: SessionRegistry, budget: Budget, files: FileAccess
    ) -> None:
        self.swarm = swarm
        self.sessions = sessions
        self.budget = budget
        self.files = files
        self.spill = Spill()

    # --- plumbing

    def _error(self, exc: SwarmError) -> ToolError:
        """``exc`` as a tool error in the words of this server's role (``tool_error``)."""
        return tool_error(exc, self.sessions.role)

    async def _claim(
        self, session: AgentSession, queue: str | list[str], *, lease_s: float | None, wait_s: float
    ) -> tuple[Task | None, dict[str, Any]]:
        """The session's claim (``sessions.claim``: claim_task, next_question), and what it
        adds to the tool's result of the tasks it met stored damaged and dead-lettered
        (``dead_lettered``); failed, a tool error that says those too (``failed_after``)."""
        with TaskDeadLettered.collected() as dead:
            try:
                task = await self.sessions.claim(
                    queue, worker=session.agent_id, lease_s=lease_s, wait_s=wait_s
                )
            except SwarmError as exc:
                raise failed_after(self._error(exc), dead) from exc
        return task, dead_lettered(dead)

    async def _session(self, ctx: Context) -> AgentSession:
        """The session of a read-only tool's call (it acts as no agent: ``_acting``)."""
        try:
            return await self.sessions.for_request(ctx.request_context)
        except SwarmError as exc:
            raise self._error(exc) from exc

    async def _acting(self, ctx: Context) -> AgentSession:
        """The session of a tool that changes something, which it does as the session's agent
        (every tool not marked read_only): the agent made present first, registered again at
        once if a sweep removed it (``SessionRegistry.present``), then the call acts."""
        session = await self._session(ctx)
        try:
            await self.sessions.present(session)
        except SwarmError as exc:
            raise self._error(exc) from exc
        return session

    async def _run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        try:
            return await self.sessions.call(fn, *args, **kwargs)
        except SwarmError as exc:
            raise self._error(exc) from exc

    async def _read(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """A read-only core call: the same as ``_run``, but a cancelled request stops
        waiting for it (a long search, a big context)."""
        try:
            return await self.sessions.read(fn, *args, **kwargs)
        except SwarmError as exc:
            raise self._error(exc) from exc

    def _result(self, payload: dict[str, Any], text: str | None = None) -> CallToolResult:
        """One JSON block (and the text, verbatim); split into pages if over the budget. The
        JSON is ``shown_json``'s: no control character a terminal acts on, none that
        reorders a line."""
        head = dumps_shown(payload)
        if self.budget.fits(head, text or ""):
            return blocks(head) if text is None else blocks(head, text)
        document = shown_json(json.dumps(payload, indent=1, ensure_ascii=False))
        if text is not None:
            document += "\n" + text
        page, header = self.spill.paginate(document, self.budget)
        return blocks(dumps(header), page)

    def _token(
        self, session: AgentSession, task_id: str, given: str | None, how: Settling = REPORT
    ) -> str:
        try:
            return session.token(task_id, given, how)
        except SwarmError as exc:
            raise self._error(exc) from exc

    def _refused(
        self, session: AgentSession, task_id: str, exc: SwarmError, how: Settling
    ) -> ToolError:
        """A report or answer (``how``) the core refused, as the tool's error. The session
        lets its lease go when the task was settled first (AlreadyCompleted: the finding
        kept superseded, ``_late``), is gone (NotFound: retired or deleted) or its lease is
        (LeaseLost: its token kept on the machine, as a closing session keeps it); any other
        refusal (an argument to fix, a finding too large, an outage) leaves the lease held,
        and a question's kept renewed, so that the call made again, fixed, settles the
        task."""
        if isinstance(exc, AlreadyCompleted):
            return self._error(self._late(session, task_id, exc, how))
        if isinstance(exc, NotFound | LeaseLost):
            session.let_go(task_id, forget=isinstance(exc, NotFound))
        return self._error(exc)

    @staticmethod
    def _late(
        session: AgentSession, task_id: str, exc: AlreadyCompleted, how: Settling
    ) -> AlreadyCompleted:
        """A report or answer the core kept superseded (its task was settled first): the
        session remembers it, so that trying again stores nothing more, and the agent is told
        in its tools' words."""
        session.let_go(task_id)
        if exc.finding_id is None:  # (the core always names it)
            return exc
        session.report_done(task_id, exc.finding_id, how, superseded=True)
        return how.late(task_id, exc.finding_id)

    @staticmethod
    def _context_cursor(owner: str, version: str, offset: int, line: int | None = None) -> str:
        """get_context's cursor at byte ``offset`` of a version: a line's start, or inside
        ``line`` (a line longer than a page), which get_context checks it is."""
        state: dict[str, Any] = {"o": owner, "v": version, "c": offset}
        if line is not None:
            state["l"] = line
        return encode_cursor("context", state)

    def _decode(self, kind: str, cursor: str) -> dict[str, Any]:
        try:
            return decode_cursor(kind, cursor)
        except SwarmError as exc:
            raise self._error(exc) from exc
