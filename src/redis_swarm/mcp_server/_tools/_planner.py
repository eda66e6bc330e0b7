"""The planners' tools (shards and coordinators): post tasks, wait for passes, read findings,
synthesise, see the agents."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import ConfigDict, Field

from ..._codec import dumps
from ..._errors import SwarmError, Timeout, ValidationError
from ..._models import SWARM_ROLES
from ..._validate import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TASK_LEASE_S,
    MAX_ATTEMPTS,
    MAX_DELAY_S,
)
from .._arguments import NoFlagForANumber
from .._budget import encode_cursor, same_filters
from .._render import cursor_offset, fit, plain
from .._roles import COORDINATOR, PLANNERS, SHARD, tool
from ._base import MAX_PASS_WAIT_S, LeaseSeconds, PageCursor, ToolsBase

__all__ = ["PlannerTools", "TaskInput"]


# A task's parameters, described (and bounded) once: post_task's, and each of post_tasks'.
QueueName = Annotated[str, Field(description="Queue name: letters, digits, '.', '_' or '-'.")]
TaskDescription = Annotated[str, Field(description="What the worker must do, in plain words.")]
TaskData = Annotated[Any, Field(description="Any JSON value the worker needs (ids, ranges, ...).")]
PassName = Annotated[
    str | None, Field(description="The pass it belongs to, e.g. 'Pass 1: Signal Capture'.")
]
Priority = Annotated[int, Field(description="Higher is claimed first.")]
MaxAttempts = Annotated[
    int, Field(ge=1, le=MAX_ATTEMPTS, description="Attempts before it is dead-lettered.")
]
TaskLease = Annotated[LeaseSeconds, Field(description="Seconds a worker holds it per claim.")]
DedupeKey = Annotated[str | None, Field(description="Posting the same key twice makes one task.")]
DelaySeconds = Annotated[
    float | None,
    Field(
        ge=0,
        le=MAX_DELAY_S,
        allow_inf_nan=False,
        description="Claimable only after this many seconds (counted on the swarm's clock).",
    ),
]


class TaskInput(NoFlagForANumber):
    """One task of post_tasks."""

    # A misspelt field is refused, not dropped: the task would be posted without it; and a
    # flag is no number, as for the tools' own arguments (``StrictTool``).
    model_config = ConfigDict(extra="forbid")

    queue: QueueName
    description: TaskDescription
    data: TaskData = None
    pass_name: PassName = None
    priority: Priority = 0
    max_attempts: MaxAttempts = DEFAULT_MAX_ATTEMPTS
    lease_s: TaskLease = DEFAULT_TASK_LEASE_S
    dedupe_key: DedupeKey = None
    delay_s: DelaySeconds = None


def _wait_for(pass_name: str) -> str:
    """What a planner is told to do once it has posted tasks of a pass."""
    return f"wait for the pass with wait_for_pass(pass_name={dumps(pass_name)})"


class PlannerTools(ToolsBase):
    """Shards' and coordinators' tools."""

    @tool(roles=PLANNERS)
    async def post_task(
        self,
        queue: QueueName,
        description: TaskDescription,
        ctx: Context,
        data: TaskData = None,
        pass_name: PassName = None,
        priority: Priority = 0,
        max_attempts: MaxAttempts = DEFAULT_MAX_ATTEMPTS,
        lease_s: TaskLease = DEFAULT_TASK_LEASE_S,
        dedupe_key: DedupeKey = None,
        delay_s: DelaySeconds = None,
    ) -> CallToolResult:
        """Post one task to a queue for a worker to claim. You are recorded as its parent, so
        its worker reads your context. Many tasks? post_tasks does them in one call. Then
        wait_for_pass(pass_name=...) and read the results with list_findings."""
        session = await self._acting(ctx)
        task = await self._run(
            self.swarm.post_task,
            queue,
            description,
            data,
            pass_name=pass_name,
            priority=priority,
            max_attempts=max_attempts,
            lease_s=lease_s,
            dedupe_key=dedupe_key,
            delay_s=delay_s,
            parent=session.agent_id,
        )
        brief = {"id": task.id, "queue": task.queue, "status": task.status}
        payload: dict[str, Any] = {
            "task": plain({**brief, "pass_name": task.pass_name, "not_before": task.not_before})
        }
        if task.pass_name:
            payload["next"] = _wait_for(task.pass_name)
        return self._result(payload)

    @tool(roles=PLANNERS)
    async def post_tasks(
        self,
        tasks: Annotated[list[TaskInput], Field(min_length=1, description="The tasks.")],
        ctx: Context,
    ) -> CallToolResult:
        """Post many tasks in one round trip (all or nothing is validated first). You are
        their parent. Then wait_for_pass(pass_name=...) and read list_findings."""
        session = await self._acting(ctx)
        specs = [{**t.model_dump(), "parent": session.agent_id} for t in tasks]
        posted = await self._run(self.swarm.post_tasks, specs)
        queues: dict[str, int] = {}
        for task in posted:
            queues[task.queue] = queues.get(task.queue, 0) + 1
        passes = sorted({t.pass_name for t in posted if t.pass_name})
        ids = [t.id for t in posted]
        payload: dict[str, Any] = {"posted": len(posted), "queues": queues, "ids": ids}
        if passes:
            payload["next"] = _wait_for(passes[0])
        return self._result(payload)

    @tool(roles=PLANNERS, read_only=True)
    async def wait_for_pass(
        self,
        ctx: Context,
        pass_name: Annotated[str | None, Field(description="The pass to wait for.")] = None,
        queue: Annotated[str | None, Field(description="Or a queue to wait for.")] = None,
        timeout_s: Annotated[
            float, Field(ge=0, le=MAX_PASS_WAIT_S, description="Give up after this long.")
        ] = 60.0,
    ) -> CallToolResult:
        """Wait until every task of a pass (or queue) is settled: completed, dead or
        cancelled. Bounded: on timeout it returns the counts so far (settled=false); call it
        again to keep waiting. Then read the results with list_findings. A pass no task was
        ever posted to (a misspelt name) is an error naming the passes there are."""
        await self._session(ctx)
        if pass_name is None and queue is None:
            raise ValidationError("name what to wait for: pass_name=... or queue=...")
        try:
            counts = await self.sessions.wait(pass_name=pass_name, queue=queue, timeout_s=timeout_s)
        except Timeout:
            if pass_name is not None:
                counts = await self._run(self.swarm.pass_stats, pass_name)
            else:
                counts = (await self._run(self.swarm.queue_stats)).get(queue or "", {})
            return self._result(
                {
                    "settled": False,
                    "counts": {k: v for k, v in counts.items() if v},
                    "next": "not settled yet: call wait_for_pass again, or read what is there "
                    "with list_findings",
                }
            )
        except SwarmError as exc:
            # (A pass no task was ever posted to, or retired, is refused by the core: its
            # NotFound names the passes, its hint in tool words.)
            raise self._error(exc) from exc
        if not any(counts.values()):  # (a misspelt queue reads as an empty one)
            return self._result(
                {
                    "settled": True,
                    "counts": {},
                    "next": f"no task has ever been posted to queue {dumps(queue)}: nothing "
                    "to wait for; check its name (swarm_status lists the queues)",
                }
            )
        what = f"pass_name={dumps(pass_name)}" if pass_name else f"queue={dumps(queue)}"
        return self._result(
            {
                "settled": True,
                "counts": {k: v for k, v in counts.items() if v},
                "next": f"read the findings with list_findings({what})",
            }
        )

    @tool(roles=PLANNERS, read_only=True)
    async def list_findings(
        self,
        ctx: Context,
        pass_name: Annotated[str | None, Field(description="Only this pass.")] = None,
        queue: Annotated[str | None, Field(description="Only this queue.")] = None,
        shard: Annotated[str | None, Field(description="Only tasks of this shard.")] = None,
        cursor: PageCursor = None,
        limit: Annotated[int, Field(ge=1, le=200, description="At most this many per page.")] = 50,
    ) -> CallToolResult:
        """List workers' findings, oldest first, as many as fit one result, with a cursor
        for the next page. Each has its task, worker and the context version it read: cite
        their ids in synthesize."""
        await self._session(ctx)
        core_cursor: str | None = None
        skip = 0
        if cursor:
            state = self._decode("findings", cursor)
            same_filters(
                "list_findings",
                state,
                {"p": ("pass_name", pass_name), "q": ("queue", queue), "h": ("shard", shard)},
            )
            core_cursor, skip = state.get("c"), cursor_offset(state, "s")
            pass_name, queue, shard = state.get("p"), state.get("q"), state.get("h")
        page = await self._run(
            self.swarm.findings,
            shard=shard,
            queue=queue,
            pass_name=pass_name,
            cursor=core_cursor,
            limit=limit,
            # (a misspelt pass is refused naming the passes, as wait_for_pass and
            # swarm_status refuse it: not listed as one whose findings are yet to come)
            refuse_unknown_pass=True,
        )
        items = [plain(f) for f in list(page)[skip:]]
        shown = fit(items, self.budget.body_chars)
        payload: dict[str, Any] = {"findings": shown, "count": len(shown)}
        filters = {"p": pass_name, "q": queue, "h": shard}
        resume: dict[str, Any] | None = None
        if len(shown) < len(items):
            resume = {"c": core_cursor, "s": skip + len(shown), **filters}
        elif page.cursor:
            resume = {"c": page.cursor, "s": 0, **filters}
        if resume is not None:
            next_cursor = encode_cursor("findings", resume)
            payload["next_cursor"] = next_cursor
            payload["next"] = f"more findings: call list_findings(cursor={dumps(next_cursor)})"
        return self._result(payload)

    @tool(roles=SHARD)
    async def synthesize(
        self,
        pass_name: Annotated[str, Field(description="The pass you synthesise.")],
        text: Annotated[str, Field(description="Your synthesis.")],
        sources: Annotated[list[str], Field(description="The finding ids it rests on.")],
        ctx: Context,
        shard: Annotated[str | None, Field(description="Default: your agent id.")] = None,
        across_passes: Annotated[
            bool,
            Field(description="It spans passes (a final report): it may cite any pass's findings."),
        ] = False,
        cites_none: Annotated[
            bool,
            Field(description="The pass found nothing: stored citing no finding (sources [])."),
        ] = False,
    ) -> CallToolResult:
        """Shard, last step of a pass: record your synthesis of its findings, citing the
        finding ids it rests on (they must exist, and be of that pass or of no pass, unless
        across_passes).
        Then start the next pass."""
        session = await self._acting(ctx)
        # (an empty sources without cites_none: the core's refusal, in this server's words)
        result = await self._run(
            self.swarm.synthesize,
            shard or session.agent_id,
            pass_name,
            text,
            sources,
            across_passes=across_passes,
            cites_none=cites_none,
        )
        return self._result(
            {"synthesis_id": result.id, "pass_name": pass_name, "sources": len(result.sources)}
        )

    @tool(roles=COORDINATOR)
    async def request_synthesis(
        self,
        shard: Annotated[str, Field(description="The shard's agent id (list_agents).")],
        pass_name: Annotated[str, Field(description="The pass to synthesise.")],
        instructions: Annotated[str, Field(description="What the synthesis should cover.")],
        ctx: Context,
    ) -> CallToolResult:
        """Coordinator: ask a shard to synthesise a pass (it arrives in the shard's inbox)."""
        session = await self._acting(ctx)
        message = await self._run(
            self.swarm.request_synthesis, shard, pass_name, instructions, sender=session.agent_id
        )
        return self._result({"message_id": message.id, "to": shard, "sent": True})

    @tool(roles=PLANNERS, read_only=True)
    async def list_agents(
        self,
        ctx: Context,
        role: Annotated[str | None, Field(description="Only this role.")] = None,
        alive: Annotated[bool | None, Field(description="Only live (true), stale (false).")] = None,
        cursor: PageCursor = None,
    ) -> CallToolResult:
        """List the agents of the swarm: id, role, model, what they work on, alive or stale."""
        await self._session(ctx)
        offset = 0
        if cursor:
            state = self._decode("agents", cursor)
            same_filters("list_agents", state, {"r": ("role", role), "a": ("alive", alive)})
            offset = cursor_offset(state, "o")
            role, alive = state.get("r"), state.get("a")
        agents = await self._run(self.swarm.agents, alive=alive, role=role)
        if role is not None and not agents and role not in SWARM_ROLES:
            await self._no_such_role(role)
        items = [plain(a) for a in agents][offset:]
        shown = fit(items, self.budget.body_chars)
        payload: dict[str, Any] = {"agents": shown, "count": len(shown), "total": len(agents)}
        if len(shown) < len(items):
            next_cursor = encode_cursor("agents", {"o": offset + len(shown), "r": role, "a": alive})
            payload["next_cursor"] = next_cursor
            payload["next"] = f"more agents: call list_agents(cursor={dumps(next_cursor)})"
        return self._result(payload)

    async def _no_such_role(self, role: str) -> None:
        """Refuse a role no agent has that is none of the swarm's (a typo listed nobody, as
        if the swarm had no such agents); one an agent has is any name it registered with."""
        held = sorted({agent.role for agent in await self._read(self.swarm.agents)})
        if role in held:
            return
        has = f" (its agents have: {', '.join(held)})" if held else ""
        raise ValidationError(
            f"no agent has role {dumps(role)}, which is none of the swarm's roles: "
            f"{', '.join(SWARM_ROLES)}{has}; pass one of them, or leave role out to list "
            "every agent"
        )
