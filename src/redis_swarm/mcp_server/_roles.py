"""Which role gets which tools: the ``@tool`` marker every tool method carries, and the table
derived from it (pure data, no SDK import).

A tool is described in one place, its method: ``@tool(roles=..., read_only=...)`` above it,
its docstring and its annotated parameters. The role table (``--role`` filters by it), the
read-only annotations, the prompts' tool list and the tools named by the server's instructions
are all read from the markers (``tool_specs``); a public coroutine of a tool class without the
marker is refused, so a new tool cannot be half-declared.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .._mcp_names import AGENT_ROLES, EVERY_TOOL_ROLE
from .._models import SWARM_ROLES

__all__ = [
    "AGENT_ROLES",
    "COORDINATOR",
    "EVERYONE",
    "PLANNERS",
    "PROMPT_ROLES",
    "SHARD",
    "WORKER",
    "ToolSpec",
    "declared_tool_names",
    "not_here",
    "roles_offering",
    "tool",
    "tool_specs",
]

# (The roles a server can be started for, AGENT_ROLES, are said in ``_mcp_names``: the hooks
# take the same ones; "all" registers its sessions as role "agent", ``_mcp_names.agent_role``.)
# The roles that have an init prompt (and that a tool can be given to).
PROMPT_ROLES = SWARM_ROLES

EVERYONE = frozenset(PROMPT_ROLES)
WORKER = frozenset({"worker"})
SHARD = frozenset({"shard"})
COORDINATOR = frozenset({"coordinator"})
PLANNERS = SHARD | COORDINATOR

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__swarm_tool__"
# Every name ever marked, with the roles given it: what tool_error recognises as a tool, and
# what a role's words (``_render``) and its refusals of other roles' tools (``not_here``) read.
_DECLARED: dict[str, frozenset[str]] = {}


@dataclass(frozen=True)
class ToolSpec:
    """One tool as its marker declares it: ``fn`` is the (unbound) method."""

    name: str
    roles: frozenset[str]
    read_only: bool
    fn: Callable[..., Any]

    def offered_to(self, role: str) -> bool:
        """Whether a server started for ``role`` offers it (``all`` offers every tool)."""
        return role == EVERY_TOOL_ROLE or role in self.roles


def tool(*, roles: Iterable[str], read_only: bool = False) -> Callable[[F], F]:
    """Mark a method as an MCP tool given to ``roles``; ``read_only`` if it changes nothing."""
    given = frozenset(roles)
    if not given or not given <= EVERYONE:
        raise ValueError(f"roles must be some of {', '.join(PROMPT_ROLES)}, not {sorted(given)}")

    def mark(fn: F) -> F:
        setattr(fn, _MARK, ToolSpec(fn.__name__, given, read_only, fn))
        _DECLARED[fn.__name__] = given
        return fn

    return mark


def declared_tool_names() -> frozenset[str]:
    """The names of every tool marked so far (all of them once the tools are imported)."""
    return frozenset(_DECLARED)


def roles_offering(name: str) -> tuple[str, ...]:
    """The roles given the tool ``name`` (none: no tool has that name), in ``PROMPT_ROLES``'
    order; a server started for ``all`` offers it too."""
    given = _DECLARED.get(name, frozenset())
    return tuple(role for role in PROMPT_ROLES if role in given)


# At most this many names are listed by a refusal of a name a server does not offer (more: it
# says how many there are, and where they are listed).
_MAX_LISTED = 15


def not_here(kind: str, name: str, role: str, offered: Sequence[str], owners: Sequence[str]) -> str:
    """A request for a ``kind`` (a tool, a prompt) this server (``--role role``, offering
    ``offered``) lacks: what it offers, and, when ``name`` is another role's (``owners``),
    which server has it. One rule for tools and prompts."""
    said = f"no {kind} {name!r} here: this server (--role {role}) offers " + (
        ", ".join(offered)
        if len(offered) <= _MAX_LISTED
        else f"{len(offered)} {kind}s ({kind}s/list names them)"
    )
    if owners:
        whose = " or ".join(f"a {owner}'s" for owner in owners)
        started = " or ".join(f"--role {owner}" for owner in owners)
        said += f"; {name} is {whose}: a server started with {started} (or all) has it"
    return said


def tool_specs(cls: type) -> list[ToolSpec]:
    """The tools of ``cls``, in the order clients list them: its groups in base order, each
    group's tools in the order they are written (the workflow's order)."""
    specs: dict[str, ToolSpec] = {}
    for klass in cls.__mro__:
        for name, attr in vars(klass).items():
            spec = getattr(attr, _MARK, None)
            if isinstance(spec, ToolSpec):
                specs.setdefault(name, spec)
            elif not name.startswith("_") and inspect.iscoroutinefunction(attr):
                raise TypeError(
                    f"{klass.__name__}.{name} is a public coroutine without @tool(roles=...): "
                    "mark it as a tool, or name it with a leading underscore"
                )
    return list(specs.values())
