"""``swarm mcp``: the swarm as Model Context Protocol tools for Claude Code, Codex, Gemini CLI
and any MCP client, built on the official ``mcp`` SDK (2.x, ``MCPServer``).

The package is named ``mcp_server`` so that it never shadows the SDK's ``mcp``. Its names are
imported on first use: the SDK takes most of a second to import, and the rest of the CLI
should not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._budget import CHARS_PER_TOKEN, DEFAULT_BUDGET_TOKENS, Budget, estimate_tokens
from ._roles import AGENT_ROLES, PROMPT_ROLES

# How many sessions one server serves at once (``swarm mcp --max-sessions``): each registers an
# agent that heartbeats while it lives, so a client opening sessions in a loop would otherwise
# fill the swarm's registry. Generous, because Claude Code never ends a session (no DELETE):
# every `claude -p` and `claude mcp list` keeps one for the 30 idle minutes, so a team, or a
# `swarm run --exec 'claude -p ...'` pool, runs through 64 within the half hour. Past the bound
# a registering session makes room by closing the one unused the longest, for 5 minutes at
# least (``_session``); 1024 agents heartbeating every 15 s are still light work for Redis.
DEFAULT_MAX_SESSIONS = 1024

if TYPE_CHECKING:
    from ._agent_session import AgentSession
    from ._server import INSTRUCTIONS, Transport, build_server, serve
    from ._session import SessionRegistry
    from ._tools import TOOL_ROLES, tool_names

__all__ = [
    "AGENT_ROLES",
    "CHARS_PER_TOKEN",
    "DEFAULT_BUDGET_TOKENS",
    "DEFAULT_MAX_SESSIONS",
    "INSTRUCTIONS",
    "PROMPT_ROLES",
    "TOOL_ROLES",
    "AgentSession",
    "Budget",
    "SessionRegistry",
    "Transport",
    "build_server",
    "estimate_tokens",
    "serve",
    "tool_names",
]

_LAZY = {
    "INSTRUCTIONS": "._server",
    "Transport": "._server",
    "build_server": "._server",
    "serve": "._server",
    "AgentSession": "._agent_session",
    "SessionRegistry": "._session",
    "TOOL_ROLES": "._tools",
    "tool_names": "._tools",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
