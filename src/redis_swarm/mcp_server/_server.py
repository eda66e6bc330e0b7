"""Assembling the MCP server: the tools of a role, the init prompts, the session lifecycle, and
the two transports (stdio; streamable HTTP on request).

Nothing is written to stdout but the protocol: logs go to stderr, and on stdio the SDK points
file descriptor 1 at stderr while it serves, so that a stray print or child process cannot
corrupt the stream.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import MethodType
from typing import Any, Literal

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Prompt
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, TextContent, ToolAnnotations

from .._client import Swarm
from .._errors import ConfigError, ValidationError
from .._mcp_names import EVERY_TOOL_ROLE
from .._net import Listening
from .._validate import check_agent, check_queues
from . import DEFAULT_MAX_SESSIONS
from ._arguments import StrictTool
from ._budget import DEFAULT_BUDGET_TOKENS, Budget
from ._channel import Channel, ChannelOnConnect
from ._channel import instructions as channel_instructions
from ._files import FileAccess
from ._http import serve_http
from ._identity import refuse_held_name
from ._restart import StartEmbedded
from ._roles import AGENT_ROLES, PROMPT_ROLES, not_here, roles_offering
from ._session import RegisterOnConnect, SessionRegistry
from ._stdin import RefuseMarked, StdinScreen
from ._tools import SwarmTools, tool_names, tools_for

__all__ = ["INSTRUCTIONS", "Transport", "build_server", "refuse_held_name", "serve"]

Transport = Literal["stdio", "http"]

log = logging.getLogger("redis_swarm.mcp")

# The session registry of each server built here, for a clean exit on a signal.
_SESSIONS: weakref.WeakKeyDictionary[MCPServer[Any], SessionRegistry] = weakref.WeakKeyDictionary()

_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)

_COMMON = (
    "Results are compact JSON (and text, for contexts). A result never exceeds {budget} "
    "tokens: when there is more, it says exactly which call returns the next page. Errors "
    "say what to do next."
)
# How each role works, in the words of its workflow; the role's other tools (from their markers)
# are listed after it, so that the instructions name every tool the role is given.
_WORKFLOWS: dict[str, str] = {
    "worker": (
        "redis-swarm, worker. You are an ephemeral worker: Redis remembers, you do not. Loop: "
        "claim_task(queue) -> read what the task needs from its shard's context "
        "(search_context, read_context_lines, get_context; the task's parent owns it) -> "
        "report_finding(task_id, summary, details, sources, confidence) once, or fail_task. "
        "Renew long work with renew_task. Stop when claim_task says no task is ready."
    ),
    "shard": (
        "redis-swarm, memory shard. You hold a big context and run passes over it: "
        "publish_context(text or path) -> post_tasks([...], pass_name) -> "
        "wait_for_pass(pass_name) -> list_findings(pass_name) -> synthesize(pass_name, text, "
        "sources=finding ids) -> next pass. read_inbox for requests from the coordinator."
    ),
    "coordinator": (
        "redis-swarm, coordinator. Watch the swarm (swarm_status, list_agents, "
        "list_findings), post work (post_task, post_tasks), wait for passes (wait_for_pass), "
        "ask shards for syntheses (request_synthesis) and message agents (send_message)."
    ),
}
_WORKFLOWS[EVERY_TOOL_ROLE] = " ".join(
    ["redis-swarm: a shared memory and work bus for agents."]
    + [_WORKFLOWS[role] for role in ("shard", "worker", "coordinator")]
)


def _instructions(role: str) -> str:
    workflow = _WORKFLOWS[role]
    others = [name for name in tool_names(role) if not re.search(rf"\b{name}\b", workflow)]
    return f"{workflow} Your other tools: {', '.join(others)}." if others else workflow


INSTRUCTIONS: dict[str, str] = {role: _instructions(role) for role in AGENT_ROLES}


def build_server(
    swarm: Swarm,
    *,
    role: str = EVERY_TOOL_ROLE,
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    name: str | None = None,
    model: str | None = None,
    transport: Transport = "stdio",
    heartbeat_s: float = 15.0,
    root: Path | None = None,
    allow_paths: bool | None = None,
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING",
    channel: Sequence[str] | None = None,
    keep_tokens: bool = False,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
) -> MCPServer[SessionRegistry]:
    """An MCP server over ``swarm`` offering the tools and prompts of ``role``.

    Each client session registers as an agent of that role (``name`` fixes its id, for a
    shard whose context owner must stay the same across restarts). ``publish_context(path=)``
    reads regular files under ``root`` (default: the working directory); ``allow_paths``
    turns that on or off (default: on for stdio, off for HTTP, whose agents are elsewhere).
    ``channel`` (stdio only; the queues to watch, maybe none) makes it a Claude Code channel:
    what concerns each session's agent is pushed into the session (``_channel``).
    ``keep_tokens`` (stdio only) also keeps each lease token a session takes in the token
    store under the swarm's home, where the hooks of the same agent find it (``swarm mcp``
    sets it; a server built here for tests or embedding writes no file unless asked).
    ``max_sessions``: how many client sessions it serves at once (each one an agent); one
    past it makes room, as it registers, by closing the session unused the longest (for 5
    minutes at least, holding no lease, request or stream), and is refused when none can go
    (``_session`` says which agents then leave and which stay stale).
    """
    if name is not None:  # (refused here, not by each tool call, which would blame the model)
        check_agent("name", name)
    if channel is not None and transport != "stdio":
        raise ConfigError(
            "channels are for stdio: Claude Code starts a channel server itself; drop "
            "--channel or --transport http"
        )
    budget = Budget(budget_tokens)
    if keep_tokens and transport != "stdio":
        raise ConfigError("keep_tokens is for stdio: over HTTP the agents are on other machines")
    sessions = SessionRegistry(
        swarm,
        role=role,
        name=name,
        model=model,
        transport=transport,
        keep_tokens=keep_tokens,
        max_sessions=max_sessions,
    )
    if allow_paths is None:
        allow_paths = transport == "stdio"
    files = (
        FileAccess(root or Path.cwd())
        if allow_paths
        else FileAccess(None, off_reason=f" over {transport.upper()}")
    )
    tools = SwarmTools(swarm, sessions, budget, files)
    pushes = None if channel is None else Channel(swarm.settings, channel, role)
    prompt_roles = PROMPT_ROLES if role == EVERY_TOOL_ROLE else (role,)
    middleware: list[Any] = [
        RefuseMarked(),
        OnlyOwnPrompts(role, prompt_roles),
        OnlyOwnTools(role),
        RegisterOnConnect(sessions),
    ]
    if pushes is not None:  # outside RegisterOnConnect: it starts once the agent is registered
        middleware.insert(3, ChannelOnConnect(pushes, sessions))
    if swarm.settings.kind == "embedded":  # (started at launch: started again if it stopped)
        middleware.insert(1, StartEmbedded(swarm.settings))
    told = INSTRUCTIONS[role] + " " + _COMMON.format(budget=budget.tokens)
    if channel is not None:
        told += " " + channel_instructions(channel, role)

    server: MCPServer[SessionRegistry] = MCPServer(
        "redis-swarm",
        title="redis-swarm",
        description="A shared memory and work bus for fleets of AI agents, built on Redis.",
        instructions=told,
        version=_version(),
        lifespan=_lifespan(sessions, heartbeat_s, pushes),
        log_level=log_level,
        middleware=middleware,
        tools=[
            StrictTool.of(
                MethodType(spec.fn, tools),
                name=spec.name,
                role=role,
                annotations=_READ_ONLY if spec.read_only else None,
            )
            for spec in tools_for(role)
        ],
    )
    for prompt_role in prompt_roles:
        server.add_prompt(_prompt(swarm, prompt_role))
    _SESSIONS[server] = sessions
    return server


def _lifespan(
    sessions: SessionRegistry, heartbeat_s: float, channel: Channel | None = None
) -> Callable[[MCPServer[SessionRegistry]], AbstractAsyncContextManager[SessionRegistry]]:
    """The server's lifespan: heartbeats for its sessions' agents, the renewal of the
    questions they hold (and the channel's watchers) while it runs, and every agent
    deregistered when it stops."""

    @asynccontextmanager
    async def lifespan(_server: MCPServer[SessionRegistry]) -> AsyncIterator[SessionRegistry]:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(sessions.heartbeat_forever, heartbeat_s)
                sessions.attach(tg)  # (a shard's questions, their leases kept renewed)
                if channel is not None:
                    channel.attach(tg)
                try:
                    yield sessions
                finally:
                    tg.cancel_scope.cancel()
        finally:
            # Agents of sessions that never closed (2026-era clients, a killed transport).
            with anyio.move_on_after(10, shield=True):
                await sessions.close_all()
                if channel is not None:
                    await channel.aclose()

    return lifespan


def _prompt(swarm: Swarm, role: str) -> Prompt:
    from .._prompts import CLIENTS, render_prompt

    def render(ctx: Context, queue: str | None = None, client: str | None = None) -> str:
        if client is None:  # the client that asks: its name came with its initialize request
            params = ctx.request_context.session.client_params
            name = params.client_info.name.lower() if params is not None else ""
            client = next((c for c in CLIENTS if c != "generic" and c in name), "generic")
        try:
            if queue is not None:  # (a prompt for a queue that cannot exist helps nobody)
                check_queues(queue, what="queue")
            return render_prompt(
                role, settings=swarm.settings, queue=queue, via="mcp", client=client
            )
        except (ValueError, ValidationError) as exc:  # said to the client, not only to stderr
            raise MCPError(code=INVALID_PARAMS, message=str(exc)) from exc

    render.__doc__ = (
        f"The init prompt of a {role}: how to work in this swarm through these MCP tools. "
        f"Arguments: queue (optional), client ({', '.join(CLIENTS)}; default: yours)."
    )
    return Prompt.from_function(render, name=prompt_name(role), title=f"redis-swarm {role}")


def prompt_name(role: str) -> str:
    """The name of the init prompt of ``role``."""
    return f"{role}_init"


class OnlyOwnPrompts:
    """Server middleware: ``prompts/get`` of a prompt this server does not offer (another
    role's, a misspelt name) is invalid params naming the prompts it has; the SDK's own answer
    is error code 0, "Unknown prompt"."""

    def __init__(self, role: str, prompt_roles: Sequence[str]) -> None:
        self.role = role
        self.names = [prompt_name(r) for r in prompt_roles]

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        name = (ctx.params or {}).get("name") if ctx.method == "prompts/get" else None
        if name is not None and name not in self.names:
            owners = [r for r in PROMPT_ROLES if prompt_name(r) == name]
            raise MCPError(
                code=INVALID_PARAMS,
                message=not_here("prompt", str(name), self.role, self.names, owners),
            )
        return await call_next(ctx)


class OnlyOwnTools:
    """Server middleware: ``tools/call`` of a tool this server does not offer (another role's,
    a misspelt name) is a failed call, as the SDK's "Unknown tool" is, that says which role's
    server has it and what this one offers (``not_here``, as for prompts)."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.names = tool_names(role)

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        # The SDK answers first (its checks, its envelope for the protocol version), then its
        # failed call of a tool this server lacks says more than "Unknown tool".
        result = await call_next(ctx)
        name = (ctx.params or {}).get("name") if ctx.method == "tools/call" else None
        if not isinstance(name, str) or name in self.names:
            return result
        said = [TextContent(type="text", text=not_here(
            "tool", name, self.role, self.names, roles_offering(name)
        ))]  # fmt: skip
        if isinstance(result, CallToolResult) and result.is_error:
            return result.model_copy(update={"content": said})
        if isinstance(result, dict) and result.get("isError"):
            # (as the SDK writes a block: its wire names, no nulls, which a strict client,
            # the TypeScript SDK's, refuses where an object is expected)
            wire = [b.model_dump(mode="json", by_alias=True, exclude_none=True) for b in said]
            return {**result, "content": wire}
        return result


def _version() -> str:
    from .. import __version__

    return __version__


def serve(
    server: MCPServer[Any],
    transport: Transport = "stdio",
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    listening: Listening | None = None,
) -> None:
    """Run the server until its client leaves (stdio) or it is stopped (SIGINT, SIGTERM).

    Over HTTP, ``token`` (when given) is the bearer token every request must carry;
    ``listening``: the sockets ``_net.listen(host, port)`` opened for a caller that announced
    the URL first (else they are opened here).
    """
    if transport == "stdio":
        anyio.run(_serve_stdio, server)
    elif transport == "http":
        serve_http(
            server,
            host=host,
            port=port,
            token=token,
            sessions=_SESSIONS.get(server),
            listening=listening,
        )
    else:
        raise ValueError(f"transport must be stdio or http, not {transport!r}")


def _stop_signals() -> tuple[signal.Signals, ...]:
    """What stops the stdio server: SIGTERM, SIGINT and SIGHUP, but a SIGHUP ignored at
    start (``nohup``) stays ignored, as in every command (a name Windows lacks left out)."""
    out = [signal.SIGTERM, signal.SIGINT]
    hangup: signal.Signals | None = getattr(signal, "SIGHUP", None)
    if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN:
        out.append(hangup)
    return tuple(out)


async def _serve_stdio(server: MCPServer[Any]) -> None:
    """Serve stdio until stdin closes; on SIGTERM, SIGINT or SIGHUP (its terminal closed)
    deregister, then exit at once. (SIGHUP, which the CLI makes stop a command as Ctrl-C
    does, raised KeyboardInterrupt in the loop, whose shutdown then waited for stdin.)"""
    sessions = _SESSIONS.get(server)
    async with anyio.create_task_group() as tg:

        async def on_signal() -> None:
            with anyio.open_signal_receiver(*_stop_signals()) as signals:
                async for signum in signals:
                    log.info("signal %s: leaving", signum)
                    if sessions is not None:
                        with anyio.move_on_after(5, shield=True):
                            await sessions.close_all()
                    # The SDK reads stdin on a thread blocked in read(), which no cancellation
                    # reaches: the only way out before the client closes the pipe is to exit.
                    os._exit(0)

        tg.start_soon(on_signal)
        # Lines the SDK would drop unanswered get an error reply; the end of input ends the
        # claims that wait, so that the server need not wait them out before it exits.
        StdinScreen(None if sessions is None else sessions.leaving.set).start()
        await server.run_stdio_async()
        tg.cancel_scope.cancel()
