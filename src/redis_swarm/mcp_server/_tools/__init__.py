"""The MCP tools: thin adapters over the core that parse, call, and render within the budget.

One module per role group (every role, worker, contexts, planners), over the shared plumbing
of ``_base``. Each tool is described by its method alone: its ``@tool(roles=...,
read_only=...)`` marker, its docstring (what teaches an agent the workflow, so it says when to
call the tool and what to call next) and its annotated parameters. ``TOOLS`` and the tables
below are derived from the markers. Each result is one compact JSON object; tools that return
text (a context page, search hits) put the text in a second block, verbatim.
"""

from __future__ import annotations

from ..._mcp_names import READING_TOOLS, SETTLING_ROLES, SETTLING_TOOLS
from .._roles import AGENT_ROLES, EVERYONE, ToolSpec, tool_specs
from ._ask import AskTools
from ._base import MAX_CLAIM_WAIT_S, MAX_PASS_WAIT_S
from ._contexts import ContextTools
from ._everyone import EveryoneTools
from ._planner import PlannerTools, TaskInput
from ._worker import WorkerTools

__all__ = [
    "MAX_CLAIM_WAIT_S",
    "MAX_PASS_WAIT_S",
    "READ_ONLY_TOOLS",
    "TOOLS",
    "TOOL_ROLES",
    "SwarmTools",
    "TaskInput",
    "offers",
    "tool_names",
    "tools_for",
]


class SwarmTools(EveryoneTools, WorkerTools, ContextTools, AskTools, PlannerTools):
    """The tools of one server process, sharing its Swarm, sessions, budget and spill pages."""


# Every tool, in the order clients list them (the workflow's order).
TOOLS: tuple[ToolSpec, ...] = tuple(tool_specs(SwarmTools))
# Tool name -> the roles given it (``--role all`` gets every tool).
TOOL_ROLES: dict[str, frozenset[str]] = {spec.name: spec.roles for spec in TOOLS}
READ_ONLY_TOOLS = frozenset(spec.name for spec in TOOLS if spec.read_only)
_BY_NAME = {spec.name: spec for spec in TOOLS}


def _check_named_elsewhere() -> None:
    """The tools another face names (the hooks: ``_mcp_names``) are these, given to the roles
    it says: a tool renamed or moved to other roles fails here, at import, not in a hint
    naming a tool that is gone."""
    named = [(name, SETTLING_ROLES) for name in SETTLING_TOOLS]
    named += [(name, EVERYONE) for name in READING_TOOLS]
    for name, said in named:
        roles = TOOL_ROLES.get(name)
        if roles != said:
            raise TypeError(
                f"_mcp_names says the tool {name!r} is given to {sorted(said)}, "
                f"but the tools give it to {sorted(roles) if roles else 'nobody'}: "
                "make them agree"
            )


_check_named_elsewhere()


def tools_for(role: str) -> list[ToolSpec]:
    """The tools a server started for ``role`` offers."""
    if role not in AGENT_ROLES:
        raise ValueError(f"role must be one of {', '.join(AGENT_ROLES)}, not {role!r}")
    return [spec for spec in TOOLS if spec.offered_to(role)]


def tool_names(role: str) -> list[str]:
    """The names of the tools a server started for ``role`` offers."""
    return [spec.name for spec in tools_for(role)]


def offers(role: str, name: str) -> bool:
    """Whether a server started for ``role`` offers the tool ``name`` (a tool's method, as
    ``SwarmTools.claim_task.__name__``, so that a renamed tool is a loud error here)."""
    return _BY_NAME[name].offered_to(role)
