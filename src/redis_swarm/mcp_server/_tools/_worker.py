"""The worker's tools: claim a task, renew it, report its finding or fail it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from ..._codec import dumps, iso
from ..._context_records import ContextInfo
from ..._errors import SwarmError, TaskDeadLettered, ValidationError
from ..._hints import LIST_PASSES
from ..._models import Finding, Task, TaskStatus, unknown_queues
from ..._prompts import no_context_note
from ..._usage import Usage
from ..._validate import MAX_RETRY_AFTER_S
from .._agent_session import REPORT, AgentSession
from .._render import TOOL_WORDS, not_text, plain, tool_error
from .._roles import WORKER, tool
from ._base import (
    MAX_CLAIM_WAIT_S,
    ClaimedTaskId,
    LeaseSeconds,
    LeaseToken,
    ToolsBase,
    dead_lettered,
    failed_after,
)

__all__ = ["WorkerTools"]


def _no_task_in(queue: str | list[str], known: Iterable[str] | None) -> dict[str, Any]:
    """What a worker is told when its queues hold no task ready, given ``known``, the queues
    there are (None: not known): a queue no task was ever posted to (misspelt) is named, as
    the core says it (``unknown_queues``, its hint in this server's words), with the queues
    there are; not a reason to stop."""
    queues = [queue] if isinstance(queue, str) else list(queue)
    unknown = (
        None if known is None else unknown_queues(queues, known, lists=TOOL_WORDS[LIST_PASSES])
    )
    wait = f"call claim_task again with wait_s up to {MAX_CLAIM_WAIT_S:g} to wait"
    if unknown is not None:
        said = f"{unknown}; if the name is right, {wait} for its first task"
    else:
        said = f"no task is ready in these queues: stop if your work is done, or {wait}"
    return {"task": None, "queues": queues, "next": said}


RunUsage = Annotated[
    dict[str, Any] | None,
    Field(
        description="What your run cost, if you know it: any of cost_usd (USD), tokens_in "
        "(every input token), cached_in (of them, read from a prompt cache), tokens_out, "
        "session_id, models (model -> {cost_usd, tokens_in, tokens_out}), source."
    ),
]


def _no_context(owner: str) -> str:
    """What a worker whose task's shard published no context is told: the words of the
    prompt ``swarm run`` gives its agent then (prompts/task.md, section no-context)."""
    return " ".join(no_context_note(owner).split())


def _run_usage(usage: dict[str, Any] | None) -> Usage | None:
    """The ``usage`` argument as the core takes it; a tool error saying what is wrong."""
    if usage is None:
        return None
    try:
        return Usage.parse(usage)
    except SwarmError as exc:
        raise tool_error(exc) from exc


class WorkerTools(ToolsBase):
    """A worker's tools."""

    @tool(roles=WORKER)
    async def claim_task(
        self,
        queue: Annotated[
            str | list[str],
            Field(description="A queue name, or a list of them (swarm_status lists queues)."),
        ],
        ctx: Context,
        lease_s: Annotated[
            LeaseSeconds | None,
            Field(description="Seconds you hold the task; default: the task's own."),
        ] = None,
        wait_s: Annotated[
            float,
            Field(ge=0, le=MAX_CLAIM_WAIT_S, description="Wait this long for a task to appear."),
        ] = 0.0,
    ) -> CallToolResult:
        """Worker, step 1: take the next task of a queue (highest priority, oldest first).

        You hold it under a lease kept by this session: you name only the task id from now
        on. Step 2: read what the task needs from its shard's context (the task's `parent`)
        with search_context, read_context_lines or get_context. Step 3: call report_finding
        once with your result, or fail_task if you cannot do it. Work longer than the lease?
        call renew_task. No task: the result says so; stop, or claim again with wait_s."""
        session = await self._acting(ctx)
        task, said = await self._claim(session, queue, lease_s=lease_s, wait_s=wait_s)
        if task is None:
            return self._result({**await self._none_ready(queue), **said})
        try:
            return self._result({**await self._claimed(session, task), **said})
        except anyio.get_cancelled_exc_class():
            # Cancelled before the client saw the task: it must not stay held unseen.
            session.let_go(task.id)
            with anyio.CancelScope(shield=True):
                await self.sessions.give_back(task)
            raise

    async def _none_ready(self, queue: str | list[str]) -> dict[str, Any]:
        # Every queue ever posted to: a misspelt one is told apart from an empty one. Best
        # effort: after a report that was stored (claim_next found nothing), a failed read
        # here must not turn the report's result into an error (its finding id would be lost).
        try:
            known: Iterable[str] | None = await self.sessions.read(self.swarm.queue_stats)
        except SwarmError:
            known = None
        return _no_task_in(queue, known)

    async def _claimed(self, session: AgentSession, task: Task) -> dict[str, Any]:
        """What a worker is told of a task it now holds (claim_task, or report_finding's
        claim_next): the task, its token, its shard's context, and what to do next."""
        session.hold(task)
        # The token once, beside the task (docs/mcp.md's shape), not again inside it.
        # Its lease_s the lease its claim took (the task's own is only what a claim without
        # one takes: claim_task(lease_s=30) of a task of 900 holds it 30 s), said once: not
        # again as lease_ms.
        brief = {k: v for k, v in plain(task).items() if k not in ("token", "lease_ms")}
        brief["lease_s"] = task.claimed_lease_s
        payload: dict[str, Any] = {"task": brief, "token": task.token}
        info: ContextInfo | None = None
        if task.parent:
            try:
                info = await self.sessions.call(self.swarm.context_info, task.parent)
            except SwarmError:  # no context (yet): the task itself is what matters here
                payload["context"] = None
            else:
                payload["context"] = {
                    "owner": info.owner,
                    "version": info.version,
                    "tokens_est": info.tokens_est,
                }
        report = f"report_finding(task_id={dumps(task.id)}, summary=...) once"
        if info is not None and not info.is_text:  # (no tool reads it: the prompts' words)
            bytes_note = not_text(info)
            payload["context"] = {k: v for k, v in bytes_note.items() if k != "next"}
            payload["next"] = f"do the task; {bytes_note['next']} Then {report}."
        elif info is not None:
            owner = f"owner={dumps(task.parent)}"
            payload["next"] = (
                f"do the task; read its shard's context with search_context({owner}, "
                f"pattern=...), read_context_lines({owner}, start=..., end=...) or "
                f"get_context({owner}); then {report}"
            )
        elif task.parent:  # no context to read: say so, as the prompt of `swarm run` does
            payload["next"] = f"{_no_context(task.parent)} Then {report}."
        else:
            payload["next"] = f"do the task from its description and data; then {report}"
        return payload

    @tool(roles=WORKER)
    async def renew_task(
        self,
        task_id: ClaimedTaskId,
        ctx: Context,
        lease_s: Annotated[
            LeaseSeconds | None, Field(description="New lease length, in seconds.")
        ] = None,
        token: LeaseToken = None,
    ) -> CallToolResult:
        """Extend your lease on a task you are still working on, before it runs out (the
        claim told you its lease_deadline); otherwise the task goes back to its queue."""
        session = await self._acting(ctx)
        lease_token = self._token(session, task_id, token)
        task = await self._run(self.swarm.renew, task_id, lease_token, lease_s)
        return self._result(
            {"task_id": task.id, "lease_deadline": iso(task.lease_deadline), "renewed": True}
        )

    @tool(roles=WORKER)
    async def report_finding(
        self,
        task_id: ClaimedTaskId,
        summary: Annotated[str, Field(description="The finding in one or a few sentences.")],
        ctx: Context,
        details: Annotated[str | None, Field(description="Longer explanation, evidence.")] = None,
        sources: Annotated[
            list[str] | None,
            Field(description="Where it comes from, e.g. 'context:L120-L135', file paths, urls."),
        ] = None,
        confidence: Annotated[
            float | None, Field(ge=0, le=1, description="How sure you are, 0..1.")
        ] = None,
        extra: Annotated[
            dict[str, Any] | None, Field(description="Any other JSON fields the task asks for.")
        ] = None,
        token: LeaseToken = None,
        claim_next: Annotated[
            str | list[str] | None,
            Field(
                description="Also take the next task of this queue (or these queues) in the "
                "same call: the result holds it as claim_task's would (next_task)."
            ),
        ] = None,
        wait_s: Annotated[
            float,
            Field(
                ge=0,
                le=MAX_CLAIM_WAIT_S,
                description="With claim_next: wait this long for the next task to appear.",
            ),
        ] = 0.0,
        usage: RunUsage = None,
    ) -> CallToolResult:
        """Worker, step 3: report the result of your task, once. This completes the task;
        the finding records which context version you read. Then claim the next task (or
        pass claim_next to get it in this call)."""
        if extra is not None and "usage" in extra:  # in extra it would count nowhere
            raise self._error(
                ValidationError(
                    'extra holds "usage": what the run cost is no part of the finding; pass '
                    "it as report_finding's usage argument"
                )
            )
        # (in extra they were dropped, or checked under their own name, without a word)
        own = sorted(set(extra or ()) & {"summary", "details", "sources", "confidence"})
        if own:
            raise self._error(
                ValidationError(
                    f"extra holds {', '.join(own)}: pass {'them' if len(own) > 1 else 'it'} "
                    "as report_finding's own argument; extra is for the task's other fields"
                )
            )
        spent = _run_usage(usage)
        session = await self._acting(ctx)
        lease_token = self._token(session, task_id, token)
        lease = session.leases.get(task_id)
        finding: dict[str, Any] = dict(extra or {})
        finding["summary"] = summary
        for key, value in (("details", details), ("sources", sources), ("confidence", confidence)):
            if value is not None:
                finding[key] = value
        version = session.read_versions.get(lease.parent) if lease and lease.parent else None
        # (wait_s without claim_next: the core's ValidationError says what to pass)
        leasing: dict[str, Any] = {"wait_s": wait_s}
        if claim_next is not None:
            leasing["claim_next"] = claim_next

        def report() -> tuple[Finding, Task | None]:
            reported = self.swarm.report(
                task_id, lease_token, finding, worker=session.agent_id, model=session.model,
                context_version=version, usage=spent, **leasing,
            )  # fmt: skip
            return reported if claim_next is not None else (reported, None)

        with TaskDeadLettered.collected() as dead:
            try:
                result, following = await self.sessions.call(report)
            except SwarmError as exc:
                raise failed_after(self._refused(session, task_id, exc, REPORT), dead) from exc
        session.report_done(task_id, result.id, REPORT)
        done: dict[str, Any] = {"finding_id": result.id, "task_id": task_id, "completed": True}
        overtaken = result.overtaken_said()  # (taken all the same: the first report wins)
        if overtaken is not None:  # (as answer_question says it)
            done["lease_lost"] = overtaken
        if claim_next is not None:
            said = dead_lettered(dead)
            if following is None:
                none = await self._none_ready(claim_next)
                del none["task"]
                return self._result({**done, "next_task": None, **none, **said})
            nxt = await self._claimed(session, following)
            return self._result({**done, "next_task": nxt, **said})
        queue = dumps(lease.queue) if lease else "..."
        return self._result(
            {
                **done,
                "next": f"claim the next task with claim_task(queue={queue}), "
                "or stop if it says no task is ready",
            }
        )

    @tool(roles=WORKER)
    async def fail_task(
        self,
        task_id: ClaimedTaskId,
        error: Annotated[str, Field(description="Why you could not do it.")],
        ctx: Context,
        retry: Annotated[
            bool, Field(description="False if no other attempt can succeed (dead-letter it).")
        ] = True,
        token: LeaseToken = None,
        usage: RunUsage = None,
        retry_after_s: Annotated[
            float | None,
            Field(
                ge=0,
                le=MAX_RETRY_AFTER_S,
                description="Seconds before it may run again, if you know (a rate limit's "
                "Retry-After); default: the queue's backoff.",
            ),
        ] = None,
    ) -> CallToolResult:
        """Give a task back when you cannot do it: it is retried by another worker (until it
        has failed max_attempts times), or dead-lettered with retry=false. Then claim the next
        task."""
        spent = _run_usage(usage)
        session = await self._acting(ctx)
        lease_token = self._token(session, task_id, token)
        task = await self._run(
            self.swarm.fail, task_id, lease_token, error, retry=retry, usage=spent,
            retry_after_s=retry_after_s,
        )  # fmt: skip
        session.let_go(task_id)
        failed: dict[str, Any] = {
            "task_id": task.id,
            "status": task.status,
            "attempts": task.attempts,
            "failures": task.failures,
            "max_attempts": task.max_attempts,
            "abandons": task.abandons,
            "max_abandons": task.max_abandons,
        }
        if task.status is TaskStatus.DELAYED:  # when its retry may run
            failed["not_before"] = iso(task.not_before)
        return self._result(failed)
