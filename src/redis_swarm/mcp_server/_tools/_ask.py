"""The ask tool: a worker or a shard asks a shard (or a queue of helpers) and waits."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from ..._models import Task
from .._roles import EVERYONE, tool
from ._base import MAX_PASS_WAIT_S, ToolsBase

__all__ = ["AskTools"]


class AskTools(ToolsBase):
    """Ask and answer."""

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
            Field(description="The task you work on (default: the one you hold, if one)."),
        ] = None,
    ) -> CallToolResult:
        """Ask a shard that holds a big context a question about it, and wait for its answer.

        Use it for a fact you cannot find in the slice you read (search_context found
        nothing, or the answer needs the whole context): the shard's agent has read it all.
        Blocked on something a peer may know? ask the queue 'assist'. The answer links to
        your task, whose lease is renewed while you wait. On timeout the question is
        cancelled: go on without it, or ask again with a longer timeout_s."""
        session = await self._session(ctx)
        held = task_id
        if held is None and len(session.leases) == 1:
            held = next(iter(session.leases))
        asker: str | Task = session.agent_id
        if held is not None:
            task = await self._run(self.swarm.get_task, held)
            lease = session.leases.get(held)  # its token lets the ask renew the lease
            asker = replace(task, token=lease.token) if lease is not None else task
        answer = await self._run(self.swarm.ask, target, question, timeout_s=timeout_s, asker=asker)
        payload = answer.to_dict()
        payload.pop("summary", None)
        return self._result(payload)
