"""The tools of every role: the swarm at a glance, messages, and the pages of long results."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from ..._codec import dumps
from ..._errors import SwarmError
from ..._models import PassCosts
from ..._printable import (
    OWNERS_SHOWN,
    SETTLED_SHOWN,
    bounded_owners,
    bounded_passes,
    bounded_queues,
    not_shown,
)
from .._render import blocks, plain
from .._roles import EVERYONE, tool
from ._base import ToolsBase

__all__ = ["EveryoneTools"]


class EveryoneTools(ToolsBase):
    """Every role's tools."""

    @tool(roles=EVERYONE, read_only=True)
    async def swarm_status(
        self,
        ctx: Context,
        pass_name: Annotated[
            str | None,
            Field(
                description="A pass: also say what every agent run behind it cost "
                f"({PassCosts.COVERS}; not counted: {PassCosts.NOT_COUNTED})."
            ),
        ] = None,
        all: Annotated[  # (named as /api/status?all=1 and swarm status --all)
            bool,
            Field(
                description="List every settled queue and pass and every context owner too "
                f"(by default: every one with open work and the last {SETTLED_SHOWN} settled "
                f"ones, the {OWNERS_SHOWN} owners that published last). Long: it may come in "
                "pages (next_page)."
            ),
        ] = False,
    ) -> CallToolResult:
        """See the swarm at a glance: agents, published contexts, what this session holds,
        queues (tasks per status) and passes. Call it first to learn queue names and context
        owners. It lists every queue and pass with open work (tasks pending, delayed or
        claimed) and the last few settled ones, and the context owners that published last:
        "not_shown" counts the settled ones and the owners it leaves out, all=true lists them
        too. With pass_name, also what that pass cost so far
        ("pass_costs": totals, per model, how many runs reported no cost, "not_counted": what
        it never covers, "caveats": what these sums leave out)."""
        session = await self._session(ctx)
        settled = None if all else SETTLED_SHOWN
        owners = None if all else OWNERS_SHOWN

        def _costs(name: str) -> dict[str, Any]:
            return self.swarm.pass_costs(name).shown()

        def gather() -> dict[str, Any]:
            status = self.swarm.status()
            agents = status.agents
            costs = {} if pass_name is None else {"pass_costs": _costs(pass_name)}
            # A year of daily runs is a thousand settled queues and passes: listed whole they
            # were pages of them, the agents and contexts on the last (``bounded``, the rule
            # of `swarm status` and /api/status).
            queues, hidden_queues = bounded_queues(status.queues, settled)
            passes, hidden_passes = bounded_passes(status.passes, settled)
            # One row an owner: 2,000 owners were 2,000 rows before the queues.
            contexts, hidden_owners = bounded_owners(status.contexts, owners)
            hidden = {"queues": hidden_queues, "passes": hidden_passes, "contexts": hidden_owners}
            # The short lists first: a result in pages (all=true) has them on its first.
            return {
                "swarm": status.swarm,
                "you": {"agent": session.agent_id, "role": session.role},
                "holding": sorted(session.leases),
                "agents": {"alive": agents.alive, "by_role": agents.by_role, "total": agents.total},
                "contexts": [
                    {
                        "owner": c.owner,
                        "version": c.version,
                        "tokens_est": c.tokens_est,
                        "source": c.source,
                    }
                    for c in contexts
                ],
                **costs,
                "totals": {s: n for s, n in status.totals.items() if n},
                "settled_shown": settled,
                "not_shown": hidden,
                **_more(hidden),
                "queues": {q: {s: n for s, n in c.items() if n} for q, c in queues},
                "passes": [
                    {"name": p.name, "settled": p.settled, "total": p.total} for p in passes
                ],
            }

        return self._result(await self._run(gather))

    @tool(roles=EVERYONE)
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
        reads it with read_inbox. A broadcast says how many agents receive it ("receivers":
        those registered now, you aside); with none, a "warning" says it reached nobody."""
        session = await self._acting(ctx)
        if to == "*":
            message = await self._run(
                self.swarm.broadcast, body, sender=session.agent_id, kind=kind, data=data
            )
        else:
            message = await self._run(
                self.swarm.send, to, body, sender=session.agent_id, kind=kind, data=data
            )
        said: dict[str, Any] = {"message_id": message.id, "to": message.to, "sent": True}
        if message.receivers is not None:
            said["receivers"] = message.receivers
        if message.unreached:  # (nobody ever reads it: said in the core's words)
            said["warning"] = message.unreached
        return self._result(said)

    @tool(roles=EVERYONE)
    async def read_inbox(
        self,
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many.")] = 20,
        message_id: Annotated[
            str | None,
            Field(
                description="Show this message again, whole, read or not (marks nothing "
                "read): one whose next_page cursor was lost."
            ),
        ] = None,
    ) -> CallToolResult:
        """Read the messages sent to you that you have not been shown, broadcasts included,
        oldest first; each is shown once (message_id: show one again). Check it between
        tasks: a coordinator may ask you for something."""
        session = await self._acting(ctx)
        agent = session.agent_id
        async with self.sessions.reading_inbox(agent):  # (see there)
            try:
                return await self._read_inbox(agent, limit, message_id)
            except SwarmError as exc:
                raise self._error(exc) from exc

    async def _read_inbox(self, agent: str, limit: int, message_id: str | None) -> CallToolResult:
        """``read_inbox``; a core error raised as it is (``read_inbox`` says it)."""
        if message_id is not None:
            again = await self.sessions.call(self.swarm.get_message, agent, message_id)
            return self._result({"messages": [plain(again)], "count": 1, "shown_again": True})
        waiting = await self.sessions.call(self.swarm.inbox, agent, ack=False, limit=limit)
        # As many as fit one result (a message too big alone is split into pages)...
        items = [plain(m) for m in waiting]
        shown = len(items)
        while shown > 1 and not self.budget.fits(dumps({"messages": items[:shown]}), " " * 200):
            shown -= 1
        if not shown:
            return self._result({"messages": [], "count": 0})
        # ...taken with the core's acknowledged read, atomic: another session of this agent
        # never gets them too. It takes the oldest unread: those, unless that other session
        # took some meanwhile (then the next ones). A message left out comes in the next call,
        # even from a new session. (A cancelled call gives them back: the next read returns
        # them.)
        messages = await self.sessions.take_inbox(agent, shown)
        payload: dict[str, Any] = {"messages": [plain(m) for m in messages], "count": len(messages)}
        if len(messages) == 1 and not self.budget.fits(dumps(payload), ""):
            # Split into pages, it is read now: the pages live in this server process only,
            # and a restart loses their cursor. Said first, on page 1: how to see it again.
            payload = {
                "again": f"this message comes in pages (next_page); if their cursor is lost, "
                f"read_inbox(message_id={dumps(messages[0].id)}) shows it again",
                **payload,
            }
        if messages.more:
            payload["next"] = "there are more: call read_inbox again"
        return self._result(payload)

    @tool(roles=EVERYONE, read_only=True)
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
            raise self._error(exc) from exc
        return blocks(dumps(header), page)


def _more(hidden: dict[str, int]) -> dict[str, str]:
    """swarm_status's "more": what its lists leave out and how to see it (none: nothing)."""
    line = not_shown(
        hidden["queues"],
        hidden["passes"],
        "swarm_status",
        lists="swarm_status with all=true",
        owners=hidden["contexts"],
    )
    return {} if line is None else {"more": line}
