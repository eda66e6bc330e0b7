"""The MCP tools: thin adapters over the core that parse, call, and render within the budget.

Each tool's docstring is its description: it is what teaches an agent the workflow, so it
says when to call the tool and what to call next. Each result is one compact JSON object;
tools that return text (a context page, search hits) put the text in a second block, verbatim.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from .._client import Swarm
from .._errors import (
    AlreadyCompleted,
    SwarmError,
    Timeout,
)
from .._models import dumps, iso
from .._ops._textview import MAX_AROUND, MAX_HITS
from .._validate import check_name
from ._budget import Budget, Spill, clip, decode_cursor, encode_cursor
from ._render import blocks, cursor_offset, fit, plain, render_hit, tool_error
from ._session import AgentSession, Lease, SessionRegistry

__all__ = ["SwarmTools", "TaskInput"]

T = TypeVar("T")

# Bounds on what one call may ask for: waits stay under the tool timeouts of agent clients.
MAX_CLAIM_WAIT_S = 60.0
MAX_PASS_WAIT_S = 300.0
_NO_END = 2**31 - 1  # read_context_lines without ``end``: up to the end, as much as fits


class TaskInput(BaseModel):
    """One task of post_tasks."""

    queue: str = Field(description="Queue name: letters, digits, '.', '_' or '-'.")
    description: str = Field(description="What the worker must do, in plain words.")
    data: Any = Field(None, description="Any JSON value the worker needs (ids, ranges, ...).")
    pass_name: str | None = Field(None, description="The pass this task belongs to.")
    priority: int = Field(0, description="Higher is claimed first.")
    max_attempts: int = Field(3, description="Attempts before the task is dead-lettered.")
    lease_s: int = Field(900, description="Seconds a worker holds the task per claim.")
    dedupe_key: str | None = Field(None, description="Posting the same key twice makes one task.")


class SwarmTools:
    """The tools of one server process, sharing its Swarm, sessions, budget and spill pages."""

    def __init__(self, swarm: Swarm, sessions: SessionRegistry, budget: Budget) -> None:
        self.swarm = swarm
        self.sessions = sessions
        self.budget = budget
        self.spill = Spill()

    # --- plumbing

    async def _session(self, ctx: Context) -> AgentSession:
        try:
            return await self.sessions.for_request(ctx.request_context)
        except SwarmError as exc:
            raise tool_error(exc) from exc

    async def _run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        try:
            return await self.sessions.call(fn, *args, **kwargs)
        except SwarmError as exc:
            raise tool_error(exc) from exc

    def _result(self, payload: dict[str, Any], text: str | None = None) -> CallToolResult:
        """One JSON block (and the text, verbatim); split into pages if over the budget."""
        head = dumps(payload)
        if self.budget.fits(head, text or ""):
            return blocks(head) if text is None else blocks(head, text)
        document = json.dumps(payload, indent=1, ensure_ascii=False)
        if text is not None:
            document += "\n" + text
        page, header = self.spill.paginate(document, self.budget)
        return blocks(dumps(header), page)

    # --- everyone

    async def swarm_status(self, ctx: Context) -> CallToolResult:
        """See the swarm at a glance: queues (tasks per status), agents, published contexts,
        and what this session holds. Call it first to learn queue names and context owners."""
        session = await self._session(ctx)

        def gather() -> dict[str, Any]:
            queues = self.swarm.queue_stats()
            agents = self.swarm.agents()
            contexts = self.swarm.contexts()
            roles: dict[str, int] = {}
            for agent in agents:
                if agent.alive:
                    roles[agent.role] = roles.get(agent.role, 0) + 1
            return {
                "swarm": self.swarm.name,
                "you": {"agent": session.agent_id, "role": session.role},
                "holding": sorted(session.leases),
                "queues": {q: {s: n for s, n in c.items() if n} for q, c in queues.items()},
                "agents": {"alive": sum(roles.values()), "by_role": roles, "total": len(agents)},
                "contexts": [
                    {
                        "owner": c.owner,
                        "version": c.version,
                        "tokens_est": c.tokens_est,
                        "source": c.source,
                    }
                    for c in contexts
                ],
            }

        return self._result(await self._run(gather))

    async def next_page(
        self,
        cursor: Annotated[str, Field(description="The next_cursor of the previous page.")],
        ctx: Context,
    ) -> CallToolResult:
        """Get the next page of a result that was too long for one tool result. Only for
        cursors that say next_page; other tools (get_context, list_findings, ...) take
        their own cursor back."""
        try:
            page, header = self.spill.page(cursor)
        except SwarmError as exc:
            raise tool_error(exc) from exc
        return blocks(dumps(header), page)

    async def send_message(
        self,
        to: Annotated[str, Field(description="Agent id (list_agents), or '*' for every agent.")],
        body: Annotated[str, Field(description="The message text.")],
        ctx: Context,
        kind: Annotated[str, Field(description="A label the receiver can act on.")] = "text",
        data: Annotated[
            dict[str, Any] | None, Field(description="Optional JSON object sent along.")
        ] = None,
    ) -> CallToolResult:
        """Send a message to one agent's inbox, or to every agent with to='*'. The receiver
        reads it with read_inbox."""
        session = await self._session(ctx)
        if to == "*":
            message = await self._run(self.swarm.broadcast, body, sender=session.agent_id)
        else:
            message = await self._run(
                self.swarm.send, to, body, sender=session.agent_id, kind=kind, data=data
            )
        return self._result({"message_id": message.id, "to": message.to, "sent": True})

    async def read_inbox(
        self,
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many.")] = 20,
    ) -> CallToolResult:
        """Read (and remove) the messages sent to you, broadcasts included, oldest first.
        Check it between tasks: a coordinator may ask you for something."""
        session = await self._session(ctx)
        messages = await self._run(self.swarm.inbox, session.agent_id, ack=True, limit=limit)
        payload: dict[str, Any] = {"messages": plain(list(messages)), "count": len(messages)}
        if len(messages) == limit:
            payload["next"] = "there may be more: call read_inbox again"
        return self._result(payload)

    # --- worker

    async def claim_task(
        self,
        queue: Annotated[
            str | list[str],
            Field(description="A queue name, or a list of them (swarm_status lists queues)."),
        ],
        ctx: Context,
        lease_s: Annotated[
            int | None,
            Field(ge=1, description="Seconds you hold the task; default: the task's own."),
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
        session = await self._session(ctx)
        task = await self._run(
            self.swarm.claim, queue, worker=session.agent_id, lease_s=lease_s, wait_s=wait_s
        )
        queues = [queue] if isinstance(queue, str) else list(queue)
        if task is None:
            return self._result(
                {
                    "task": None,
                    "queues": queues,
                    "next": "no task is ready in these queues: stop if your work is done, or "
                    f"call claim_task again with wait_s up to {MAX_CLAIM_WAIT_S:g} to wait",
                }
            )
        session.leases[task.id] = Lease(task.token, task.queue, task.parent)
        payload: dict[str, Any] = {"task": plain(task), "token": task.token}
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
        owner = f"owner={dumps(task.parent)}, " if task.parent else ""
        payload["next"] = (
            f"do the task; read its shard's context with search_context({owner}pattern=...), "
            f"read_context_lines({owner}start=..., end=...) or get_context({owner.rstrip(', ')}); "
            f"then report_finding(task_id={dumps(task.id)}, summary=...) once"
        )
        return self._result(payload)

    async def renew_task(
        self,
        task_id: Annotated[str, Field(description="The id claim_task returned.")],
        ctx: Context,
        lease_s: Annotated[int | None, Field(ge=1, description="New lease length.")] = None,
        token: Annotated[
            int | None, Field(description="Only if this server restarted since the claim.")
        ] = None,
    ) -> CallToolResult:
        """Extend your lease on a task you are still working on, before it runs out (the
        claim told you its lease_deadline); otherwise the task goes back to its queue."""
        session = await self._session(ctx)
        lease_token = self._token(session, task_id, token)
        task = await self._run(self.swarm.renew, task_id, lease_token, lease_s)
        return self._result(
            {"task_id": task.id, "lease_deadline": iso(task.lease_deadline), "renewed": True}
        )

    async def report_finding(
        self,
        task_id: Annotated[str, Field(description="The id claim_task returned.")],
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
        token: Annotated[
            int | None, Field(description="Only if this server restarted since the claim.")
        ] = None,
    ) -> CallToolResult:
        """Worker, step 3: report the result of your task, once. This completes the task;
        the finding records which context version you read. Then claim the next task."""
        session = await self._session(ctx)
        lease_token = self._token(session, task_id, token)
        lease = session.leases.get(task_id)
        finding: dict[str, Any] = dict(extra or {})
        finding["summary"] = summary
        for key, value in (("details", details), ("sources", sources), ("confidence", confidence)):
            if value is not None:
                finding[key] = value
        version = session.read_versions.get(lease.parent) if lease and lease.parent else None
        try:
            result = await self.sessions.call(
                self.swarm.report,
                task_id,
                lease_token,
                finding,
                worker=session.agent_id,
                model=session.model,
                context_version=version,
            )
        except AlreadyCompleted as exc:
            session.leases.pop(task_id, None)
            raise ToolError(
                f"task {task_id} was already completed by another report; your finding was kept "
                f"as superseded ({exc.finding_id}), nothing is lost: do not report it again, "
                "claim the next task with claim_task"
            ) from exc
        except SwarmError as exc:
            raise tool_error(exc) from exc
        session.leases.pop(task_id, None)
        queue = dumps(lease.queue) if lease else "..."
        return self._result(
            {
                "finding_id": result.id,
                "task_id": task_id,
                "completed": True,
                "next": f"claim the next task with claim_task(queue={queue}), "
                "or stop if it says no task is ready",
            }
        )

    async def fail_task(
        self,
        task_id: Annotated[str, Field(description="The id claim_task returned.")],
        error: Annotated[str, Field(description="Why you could not do it.")],
        ctx: Context,
        retry: Annotated[
            bool, Field(description="False if no other attempt can succeed (dead-letter it).")
        ] = True,
        token: Annotated[
            int | None, Field(description="Only if this server restarted since the claim.")
        ] = None,
    ) -> CallToolResult:
        """Give a task back when you cannot do it: it is retried by another worker (up to its
        max_attempts), or dead-lettered with retry=false. Then claim the next task."""
        session = await self._session(ctx)
        lease_token = self._token(session, task_id, token)
        task = await self._run(self.swarm.fail, task_id, lease_token, error, retry=retry)
        session.leases.pop(task_id, None)
        return self._result(
            {
                "task_id": task.id,
                "status": task.status,
                "attempts": task.attempts,
                "max_attempts": task.max_attempts,
            }
        )

    @staticmethod
    def _token(session: AgentSession, task_id: str, given: int | None) -> int:
        try:
            return session.token(task_id, given)
        except SwarmError as exc:
            raise tool_error(exc) from exc

    # --- contexts

    async def get_context(
        self,
        ctx: Context,
        owner: Annotated[
            str | None,
            Field(description="Whose context; default: your task's shard, else your own."),
        ] = None,
        cursor: Annotated[
            str | None, Field(description="next_cursor of the previous page; omit for page 1.")
        ] = None,
        version: Annotated[
            str | None, Field(description="A past version (default: current).")
        ] = None,
    ) -> CallToolResult:
        """Read a shared context page by page, in order (each page fits one tool result).
        A context can be far larger than your window: prefer search_context and
        read_context_lines for the parts you need; page through it only to read it all."""
        session = await self._session(ctx)
        offset = 0
        if cursor:
            state = self._decode("context", cursor)
            owner, version, at = state.get("o"), state.get("v"), state.get("c")
            if not (isinstance(owner, str) and isinstance(version, str) and isinstance(at, int)):
                raise ToolError("the context cursor is damaged: omit it to start at page 1")
            offset = at
        owner = session.context_owner(owner)
        size = self.budget.body_chars
        part = await self._run(
            self.swarm.read_context,
            owner,
            offset=offset,
            length=size,
            max_bytes=size,
            version=version,
        )
        session.read_versions[owner] = part.version
        page, consumed = part.text, part.length
        at_end = part.offset + part.length >= part.size_bytes
        newline = -1 if at_end else page.rfind("\n", len(page) // 2)
        if newline >= 0:  # end the page on a whole line
            page = page[: newline + 1]
            consumed = len(page.encode())
        last_line = part.start_line + page.count("\n") - (1 if page.endswith("\n") else 0)
        header: dict[str, Any] = {
            "owner": owner,
            "version": part.version,
            "lines": [part.start_line, max(part.start_line, last_line)],
            "total_lines": part.total_lines,
            "bytes": [part.offset, part.offset + consumed],
            "total_bytes": part.size_bytes,
        }
        if at_end and newline < 0:
            header["next"] = "this is the last page"
        else:
            next_cursor = self._context_cursor(owner, part.version, part.offset + consumed)
            left = -(-(part.size_bytes - part.offset - consumed) // size)
            header["next_cursor"] = next_cursor
            header["next"] = (
                f"about {left} more page(s): call get_context(cursor={dumps(next_cursor)})"
            )
        return self._result(header, page)

    @staticmethod
    def _context_cursor(owner: str, version: str, offset: int) -> str:
        return encode_cursor("context", {"o": owner, "v": version, "c": offset})

    async def read_context_lines(
        self,
        start: Annotated[int, Field(ge=1, description="First line, 1-based.")],
        ctx: Context,
        end: Annotated[
            int | None, Field(ge=1, description="Last line, inclusive; default: as many as fit.")
        ] = None,
        owner: Annotated[
            str | None,
            Field(description="Whose context; default: your task's shard, else your own."),
        ] = None,
        version: Annotated[
            str | None, Field(description="A past version (default: current).")
        ] = None,
    ) -> CallToolResult:
        """Read lines start..end of a shared context (e.g. around a search_context hit, or
        the range your task names). Returns as many lines as fit one result and says where
        to continue."""
        session = await self._session(ctx)
        owner = session.context_owner(owner)
        if end is not None and end < start:
            raise ToolError(f"end ({end}) is before start ({start}): pass start <= end")
        part = await self._run(
            self.swarm.read_context,
            owner,
            lines=(start, end if end is not None else _NO_END),
            max_bytes=self.budget.body_chars,
            version=version,
        )
        session.read_versions[owner] = part.version
        header: dict[str, Any] = {
            "owner": owner,
            "version": part.version,
            "lines": [part.start_line, part.end_line],
            "total_lines": part.total_lines,
        }
        wanted = min(end or part.total_lines, part.total_lines)
        if part.end_line == start and part.truncated and not part.text.endswith("\n"):
            # One line longer than a whole result: its rest is on the next get_context page.
            rest = self._context_cursor(owner, part.version, part.offset + part.length)
            header["next"] = (
                f"line {start} is longer than one result: read on with "
                f"get_context(cursor={dumps(rest)}), or from line {start + 1} with "
                f"read_context_lines(owner={dumps(owner)}, start={start + 1})"
            )
        elif part.end_line < wanted:
            more = f", end={end}" if end is not None else ""
            header["next"] = (
                f"lines {part.end_line + 1}..{wanted} did not fit: call read_context_lines("
                f"owner={dumps(owner)}, start={part.end_line + 1}{more})"
            )
        elif part.end_line >= part.total_lines:
            header["next"] = "this is the end of the context"
        return self._result(header, part.text)

    async def search_context(
        self,
        pattern: Annotated[str, Field(description="Text to find (or a regex with regex=true).")],
        ctx: Context,
        owner: Annotated[
            str | None,
            Field(description="Whose context; default: your task's shard, else your own."),
        ] = None,
        regex: Annotated[bool, Field(description="Treat pattern as a Python regex.")] = False,
        around: Annotated[
            int, Field(ge=0, le=MAX_AROUND, description="Lines shown around each hit.")
        ] = 2,
        max_hits: Annotated[int, Field(ge=1, le=200, description="Hits per page.")] = 30,
        cursor: Annotated[
            str | None, Field(description="next_cursor of the previous page of hits.")
        ] = None,
        version: Annotated[
            str | None, Field(description="A past version (default: current).")
        ] = None,
    ) -> CallToolResult:
        """Find lines of a shared context (grep-like, with line numbers and lines around
        each hit). The cheap way to work from a context larger than your window: search,
        then read_context_lines around the hits you need."""
        session = await self._session(ctx)
        skip = 0
        if cursor:
            state = self._decode("search", cursor)
            skip = cursor_offset(state, "s")
            owner, version = state.get("o", owner), state.get("v", version)
            pattern, regex = state.get("p", pattern), bool(state.get("r", regex))
        owner = session.context_owner(owner)
        if skip >= MAX_HITS:
            raise ToolError(f"only the first {MAX_HITS} hits can be listed: narrow the pattern")
        if version is None:
            info = await self._run(self.swarm.context_info, owner)
            version = info.version
        hits = await self._run(
            self.swarm.search_context,
            owner,
            pattern,
            regex=regex,
            max_hits=min(skip + max_hits + 1, MAX_HITS),
            around=around,
            version=version,
        )
        session.read_versions[owner] = version
        blocks: list[str] = []
        used = 0
        for hit in hits[skip : skip + max_hits]:
            block = clip(render_hit(hit), self.budget.body_chars, "narrow `around`")
            if blocks and used + len(block) + 3 > self.budget.body_chars:
                break
            blocks.append(block)
            used += len(block) + 3
        end = skip + len(blocks)
        header: dict[str, Any] = {
            "owner": owner,
            "version": version,
            "pattern": pattern,
            "hits": [skip + 1, end] if blocks else [],
        }
        if len(hits) > end:
            next_cursor = encode_cursor(
                "search", {"o": owner, "v": version, "p": pattern, "r": regex, "s": end}
            )
            header["next_cursor"] = next_cursor
            header["next"] = (
                f"more hits: call search_context(pattern={dumps(pattern)}, "
                f"cursor={dumps(next_cursor)}), or narrow the pattern"
            )
        elif end == MAX_HITS:
            header["next"] = f"only the first {MAX_HITS} hits can be listed: narrow the pattern"
        elif not blocks:
            header["next"] = "no match: try another pattern, or regex=true"
        return self._result(header, "\n--\n".join(blocks))

    async def publish_context(
        self,
        ctx: Context,
        text: Annotated[str | None, Field(description="The context itself.")] = None,
        path: Annotated[
            str | None, Field(description="Or a file to publish (on this MCP server's machine).")
        ] = None,
        owner: Annotated[
            str | None, Field(description="Whose context it is; default: your agent id.")
        ] = None,
        source: Annotated[str | None, Field(description="Where it comes from (a label).")] = None,
        media_type: Annotated[str, Field(description="Its media type.")] = "text/markdown",
    ) -> CallToolResult:
        """Shard, step 1: publish the context your workers will read (give text, or a path
        to a file: the better way for big contexts). Publishing again makes a new version;
        readers see the old or the new one, never a mix. Step 2: post_task / post_tasks."""
        session = await self._session(ctx)
        if (text is None) == (path is None):
            raise ToolError("pass exactly one of text or path (a file on this server's machine)")
        content: str | os.PathLike[str]
        if path is not None:
            file = Path(path).expanduser()
            if not file.is_file():
                raise ToolError(
                    f"no file at {file} (relative paths start at {Path.cwd()}): "
                    "pass an absolute path, or the text itself"
                )
            content = file
        else:
            assert text is not None
            content = text
        owner = check_name("context owner", owner) if owner else session.agent_id
        info = await self._run(
            self.swarm.publish_context,
            owner,
            content,
            source=source or (str(path) if path else f"mcp:{session.agent_id}"),
            media_type=media_type,
        )
        payload = plain(info)
        if owner == session.agent_id:
            payload["next"] = (
                "post the tasks that read it with post_task or post_tasks: they name you as "
                "their parent, so their workers find this context"
            )
        else:
            payload["next"] = f"post tasks that tell their workers to read owner={dumps(owner)}"
        return self._result(payload)

    # --- shard and coordinator

    async def post_task(
        self,
        queue: Annotated[str, Field(description="Queue name: letters, digits, '.', '_', '-'.")],
        description: Annotated[str, Field(description="What the worker must do.")],
        ctx: Context,
        data: Annotated[Any, Field(description="Any JSON value the worker needs.")] = None,
        pass_name: Annotated[
            str | None, Field(description="The pass it belongs to, e.g. 'Pass 1: Signal Capture'.")
        ] = None,
        priority: Annotated[int, Field(description="Higher is claimed first.")] = 0,
        max_attempts: Annotated[int, Field(ge=1, description="Attempts before dead-letter.")] = 3,
        lease_s: Annotated[int, Field(ge=1, description="Seconds a worker holds it.")] = 900,
        dedupe_key: Annotated[
            str | None, Field(description="Posting the same key twice makes one task.")
        ] = None,
    ) -> CallToolResult:
        """Post one task to a queue for a worker to claim. You are recorded as its parent, so
        its worker reads your context. Many tasks? post_tasks does them in one call. Then
        wait_for_pass(pass_name=...) and read the results with list_findings."""
        session = await self._session(ctx)
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
            parent=session.agent_id,
        )
        brief = {"id": task.id, "queue": task.queue, "status": task.status}
        return self._result({"task": plain({**brief, "pass_name": task.pass_name})})

    async def post_tasks(
        self,
        tasks: Annotated[list[TaskInput], Field(min_length=1, description="The tasks.")],
        ctx: Context,
    ) -> CallToolResult:
        """Post many tasks in one round trip (all or nothing is validated first). You are
        their parent. Then wait_for_pass(pass_name=...) and read list_findings."""
        session = await self._session(ctx)
        specs = [{**t.model_dump(), "parent": session.agent_id} for t in tasks]
        posted = await self._run(self.swarm.post_tasks, specs)
        queues: dict[str, int] = {}
        for task in posted:
            queues[task.queue] = queues.get(task.queue, 0) + 1
        passes = sorted({t.pass_name for t in posted if t.pass_name})
        ids = [t.id for t in posted]
        payload: dict[str, Any] = {"posted": len(posted), "queues": queues, "ids": ids}
        if passes:
            payload["next"] = f"wait for them with wait_for_pass(pass_name={dumps(passes[0])})"
        return self._result(payload)

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
        again to keep waiting. Then read the results with list_findings."""
        await self._session(ctx)
        if pass_name is None and queue is None:
            raise ToolError("name what to wait for: pass_name=... or queue=...")
        try:
            counts = await self.sessions.call(
                self.swarm.wait, pass_name=pass_name, queue=queue, timeout_s=timeout_s
            )
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
            raise tool_error(exc) from exc
        what = f"pass_name={dumps(pass_name)}" if pass_name else f"queue={dumps(queue)}"
        return self._result(
            {
                "settled": True,
                "counts": {k: v for k, v in counts.items() if v},
                "next": f"read the findings with list_findings({what})",
            }
        )

    async def list_findings(
        self,
        ctx: Context,
        pass_name: Annotated[str | None, Field(description="Only this pass.")] = None,
        queue: Annotated[str | None, Field(description="Only this queue.")] = None,
        shard: Annotated[str | None, Field(description="Only tasks of this shard.")] = None,
        cursor: Annotated[str | None, Field(description="The previous page's next_cursor.")] = None,
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
            core_cursor, skip = state.get("c"), cursor_offset(state, "s")
            pass_name, queue, shard = state.get("p"), state.get("q"), state.get("h")
        page = await self._run(
            self.swarm.findings,
            shard=shard,
            queue=queue,
            pass_name=pass_name,
            cursor=core_cursor,
            limit=limit,
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

    async def synthesize(
        self,
        pass_name: Annotated[str, Field(description="The pass you synthesise.")],
        text: Annotated[str, Field(description="Your synthesis.")],
        sources: Annotated[list[str], Field(description="The finding ids it rests on.")],
        ctx: Context,
        shard: Annotated[str | None, Field(description="Default: your agent id.")] = None,
    ) -> CallToolResult:
        """Shard, last step of a pass: record your synthesis of its findings, citing the
        finding ids it rests on (they must exist). Then start the next pass."""
        session = await self._session(ctx)
        result = await self._run(
            self.swarm.synthesize, shard or session.agent_id, pass_name, text, sources
        )
        return self._result(
            {"synthesis_id": result.id, "pass_name": pass_name, "sources": len(result.sources)}
        )

    async def request_synthesis(
        self,
        shard: Annotated[str, Field(description="The shard's agent id (list_agents).")],
        pass_name: Annotated[str, Field(description="The pass to synthesise.")],
        instructions: Annotated[str, Field(description="What the synthesis should cover.")],
        ctx: Context,
    ) -> CallToolResult:
        """Coordinator: ask a shard to synthesise a pass (it arrives in the shard's inbox)."""
        session = await self._session(ctx)
        message = await self._run(
            self.swarm.request_synthesis, shard, pass_name, instructions, sender=session.agent_id
        )
        return self._result({"message_id": message.id, "to": shard, "sent": True})

    async def list_agents(
        self,
        ctx: Context,
        role: Annotated[str | None, Field(description="Only this role.")] = None,
        alive: Annotated[bool | None, Field(description="Only live (true), stale (false).")] = None,
        cursor: Annotated[str | None, Field(description="The previous page's next_cursor.")] = None,
    ) -> CallToolResult:
        """List the agents of the swarm: id, role, model, what they work on, alive or stale."""
        await self._session(ctx)
        offset = 0
        if cursor:
            state = self._decode("agents", cursor)
            offset = cursor_offset(state, "o")
            role, alive = state.get("r"), state.get("a")
        agents = await self._run(self.swarm.agents, alive=alive, role=role)
        items = [plain(a) for a in agents][offset:]
        shown = fit(items, self.budget.body_chars)
        payload: dict[str, Any] = {"agents": shown, "count": len(shown), "total": len(agents)}
        if len(shown) < len(items):
            next_cursor = encode_cursor("agents", {"o": offset + len(shown), "r": role, "a": alive})
            payload["next_cursor"] = next_cursor
            payload["next"] = f"more agents: call list_agents(cursor={dumps(next_cursor)})"
        return self._result(payload)

    def _decode(self, kind: str, cursor: str) -> dict[str, Any]:
        try:
            return decode_cursor(kind, cursor)
        except SwarmError as exc:
            raise tool_error(exc) from exc
