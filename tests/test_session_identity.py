"""A session's agent on the swarm, across restarts and across its two faces (docs/live.md).

- An MCP (or channel) server whose agent id was given (``--name``, or SWARM_AGENT on stdio)
  does not deregister when its client closes: its agent goes stale, its inbox kept, and the
  next start under that id reads what was sent meanwhile. One whose id was made up leaves.
- ``message_status`` of a message whose recipient left (its inbox dropped with it) says
  whether it was read is not known, not "unread, not yet read by" the agent that is gone.
- The stdio server keeps the lease tokens it takes in the machine's token store, where the
  hooks of the same agent (SWARM_AGENT) find them: PreCompact renews an MCP-claimed lease and
  Stop names its token; report_finding forgets it again.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp_types import Implementation, TextContent

from redis_swarm import NotFound, Settings, Swarm
from redis_swarm import _lease_tokens as tokens
from redis_swarm._hooks import HookOptions, handle
from redis_swarm.mcp_server import build_server

from ._cli import Cli
from .mcp_server._helpers import SRC, connect


@asynccontextmanager
async def _stdio(redis_url: str, home: Path, agent: str | None) -> AsyncIterator[Client]:
    """``swarm mcp --role worker --channel`` over stdio, as Claude Code starts it: the agent's
    id from SWARM_AGENT (None: none given), the swarm's home ``home``."""
    env = {"PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test", "SWARM_HOME": str(home)}
    if agent is not None:
        env["SWARM_AGENT"] = agent
    argv = ["-m", "redis_swarm", "mcp", "--role", "worker", "--channel"]
    params = StdioServerParameters(command=sys.executable, args=argv, env=env)
    info = Implementation(name="claude-code", version="2.1.80")
    async with Client(params, client_info=info, read_timeout_seconds=60) as client:
        yield client


async def _call(client: Client, tool: str, **args: object) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    block = result.content[0]
    assert isinstance(block, TextContent) and not result.is_error, result
    head = json.loads(block.text)
    assert isinstance(head, dict)
    return head


def test_a_named_session_keeps_its_unread_messages_across_restarts(
    redis_url: str, tmp_path: Path
) -> None:
    core = Swarm(redis_url, swarm="test")

    async def body() -> None:
        async with _stdio(redis_url, tmp_path, "n1") as first:  # SWARM_AGENT names it
            await _call(first, "swarm_status")
            sent = core.send("n1", "important", sender="lead")
        # Closed without read_inbox: still registered (stale once its heartbeats stop), its
        # inbox and the message in it kept.
        assert core.get_agent("n1").metadata["via"] == "mcp"  # type: ignore[index]
        status = core.message_status(sent.id)
        assert not status.read and status.unread_by == ("n1",)
        assert core.get_message("n1", sent.id).body == "important"
        async with _stdio(redis_url, tmp_path, "n1") as again:
            inbox = await _call(again, "read_inbox")
        assert [m["body"] for m in inbox["messages"]] == ["important"]
        assert core.message_status(sent.id).read_by == ("n1",)

    try:
        anyio.run(body)
    finally:
        core.close()


def test_a_session_with_a_made_up_id_leaves_and_status_says_its_message_went_with_it(
    redis_url: str, cli: Cli
) -> None:
    core = Swarm(redis_url, swarm="test")

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as tools:
            await tools("swarm_status")
            (agent,) = core.agents()
            sent = core.send(agent.id, "for nobody now", sender="lead")
        try:
            core.get_agent(agent.id)
            raise AssertionError("the made-up agent stayed registered")
        except NotFound:
            pass
        status = core.message_status(sent.id)
        # (not known to be read: its reader went, and what it read with it)
        assert not status.read and status.read_by == () and status.unread_by == ()
        out = cli("msg", "status", sent.id).stdout
        assert "not yet read" not in out and "dropped with it" in out and agent.id in out

    try:
        anyio.run(body)
    finally:
        core.close()


def test_the_hooks_renew_and_name_an_mcp_claimed_lease(redis_url: str, tmp_path: Path) -> None:
    core = Swarm(redis_url, swarm="test")
    hooks = Swarm(Settings.from_url(redis_url, swarm="test", home=tmp_path))
    options = HookOptions(agent="me", queues=("work",))
    task = core.post_task("work", "a task", lease_s=30)

    async def body() -> None:
        async with _stdio(redis_url, tmp_path, "me") as session:
            claimed = await _call(session, "claim_task", queue="work")
            token = claimed["token"]
            assert tokens.known(hooks.settings, "me") == {task.id: token}
            before = core.get_task(task.id).lease_deadline
            await anyio.sleep(0.05)
            compacted = handle(hooks, "PreCompact", {}, options)
            assert compacted.message == f"renewed the leases of {task.id}"
            assert core.get_task(task.id).lease_deadline > before  # type: ignore[operator]
            stopped = handle(hooks, "Stop", {"stop_hook_active": False}, options)
            # (named in the session's own MCP tool: tests/test_live_session_fixes.py)
            assert stopped.block is not None and f"token={json.dumps(token)}" in stopped.block
            await _call(session, "report_finding", task_id=task.id, summary="done")
            assert tokens.known(hooks.settings, "me") == {}

    try:
        anyio.run(body)
    finally:
        hooks.close()
        core.close()


def test_one_agent_s_two_faces_keep_each_other_s_record(redis_url: str, tmp_path: Path) -> None:
    """A review: registering replaces a profile, so the MCP server starting under the hooks'
    id wiped their per-session --max-tasks counts (a resumed session took more), and each
    SessionStart turned the server's role and metadata into the hooks'. Each face now keeps
    what the other wrote. A named session that closes clears the task its agent said it
    held (it gave it back); an unnamed one keeps no token on disk (no hook is its)."""
    core = Swarm(redis_url, swarm="test")
    hooks = Swarm(Settings.from_url(redis_url, swarm="test", home=tmp_path))
    options = HookOptions(agent="me", queues=("work",), loop=True, max_tasks=1)
    for n in range(3):
        core.post_task("work", f"task {n}")
    start = {"session_id": "s1", "source": "startup"}
    handle(hooks, "SessionStart", start, options)
    first = handle(hooks, "Stop", {"session_id": "s1", "stop_hook_active": False}, options)
    assert first.block is not None and "Next task for you" in first.block
    (held,) = core.list_tasks(status="claimed").items
    core.report(held.id, tokens.known(hooks.settings, "me")[held.id], {"summary": "done"})

    async def body() -> None:
        async with _stdio(redis_url, tmp_path, "me") as session:
            await _call(session, "swarm_status")
            handle(hooks, "SessionStart", {"session_id": "s1", "source": "resume"}, options)
            agent = core.get_agent("me")
            assert agent.metadata is not None and agent.metadata.get("via") == "mcp"
            assert agent.metadata.get("hook") == "claude"
            again = handle(hooks, "Stop", {"session_id": "s1", "stop_hook_active": False}, options)
            assert again.message is not None and "took its 1 task" in again.message, again
            claimed = await _call(session, "claim_task", queue="work")
        assert core.get_agent("me").current_task is None, claimed  # given back as it closed
        async with _stdio(redis_url, tmp_path / "other", None) as session:
            await _call(session, "claim_task", queue="work")
            assert not (tmp_path / "other" / "leases").exists()

    try:
        anyio.run(body)
    finally:
        hooks.close()
        core.close()


def test_a_session_closing_on_a_lost_lease_keeps_its_token_for_a_late_report(
    redis_url: str, tmp_path: Path
) -> None:
    """The stdio server's close releases the leases its session holds; one whose lease ran
    out and moved on is refused, and its token stays kept (the task is open: a late report
    with it is still taken, as the hooks' and the CLI's rule says), where the close forgot
    it."""
    core = Swarm(redis_url, swarm="test")
    hooks = Swarm(Settings.from_url(redis_url, swarm="test", home=tmp_path))
    task = core.post_task("lost", "a task")

    async def body() -> None:
        async with _stdio(redis_url, tmp_path, "me") as session:
            claimed = await _call(session, "claim_task", queue="lost", lease_s=1)
            await anyio.sleep(1.2)
            other = core.claim("lost", worker="other", lease_s=60)
            assert other is not None and other.id == task.id
        kept = tokens.known(hooks.settings, "me")
        assert kept == {task.id: claimed["token"]}
        # The late report it serves: taken (it completes the task, another's lease or not).
        core.report(task.id, kept[task.id], {"summary": "found it anyway"})
        assert core.get_task(task.id).status.value == "completed"

    try:
        anyio.run(body)
    finally:
        hooks.close()
        core.close()
