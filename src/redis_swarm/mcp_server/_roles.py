"""Which role gets which tools: the one table ``--role`` filters by (pure data, no SDK import)."""

from __future__ import annotations

__all__ = ["AGENT_ROLES", "PROMPT_ROLES", "TOOL_ROLES", "tool_names"]

# The roles a server can be started for; "all" registers its sessions as role "agent".
AGENT_ROLES = ("worker", "shard", "coordinator", "all")
# The roles that have an init prompt.
PROMPT_ROLES = ("worker", "shard", "coordinator")

_ALL = frozenset(PROMPT_ROLES)
_PLANNERS = frozenset({"shard", "coordinator"})

# Tool name -> the roles given it (``--role all`` gets every tool). The order is the order
# in which clients list them: the workflow's order.
TOOL_ROLES: dict[str, frozenset[str]] = {
    "swarm_status": _ALL,
    "claim_task": frozenset({"worker"}),
    "renew_task": frozenset({"worker"}),
    "report_finding": frozenset({"worker"}),
    "fail_task": frozenset({"worker"}),
    "get_context": _ALL,
    "read_context_lines": _ALL,
    "search_context": _ALL,
    "publish_context": frozenset({"shard"}),
    "post_task": _PLANNERS,
    "post_tasks": _PLANNERS,
    "wait_for_pass": _PLANNERS,
    "list_findings": _PLANNERS,
    "synthesize": frozenset({"shard"}),
    "request_synthesis": frozenset({"coordinator"}),
    "list_agents": _PLANNERS,
    "send_message": _ALL,
    "read_inbox": _ALL,
    "next_page": _ALL,
}


def tool_names(role: str) -> list[str]:
    """The tools a server started for ``role`` offers."""
    if role not in AGENT_ROLES:
        raise ValueError(f"role must be one of {', '.join(AGENT_ROLES)}, not {role!r}")
    return [name for name, roles in TOOL_ROLES.items() if role == "all" or role in roles]
