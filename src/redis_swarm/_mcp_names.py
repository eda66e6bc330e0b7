"""The MCP server's names that another face says: the tools a worker's session settles the
task it holds with, the roles given them, the tools every session reads a context with, the
roles a server is started for (which the hooks take too), and the role a ``--role all``
server's sessions register as. Pure data (no MCP SDK), so that the hooks name those tools
without importing the MCP server (half a second at every hook that hands a session a task).

Said once, here: the MCP server's tool table refuses to load unless each tool named here is
one of its tools, given to exactly the roles said here (``mcp_server._tools``), and its
sessions register as ``agent_role`` says.
"""

from __future__ import annotations

from ._models import SWARM_ROLES

__all__ = [
    "AGENT_ROLES",
    "EVERY_TOOL_AGENT_ROLE",
    "EVERY_TOOL_ROLE",
    "FAIL_TASK",
    "GET_CONTEXT",
    "READING_TOOLS",
    "READ_CONTEXT_LINES",
    "RENEW_TASK",
    "REPORT_FINDING",
    "SEARCH_CONTEXT",
    "SERVER_HOST",
    "SERVER_KEYS",
    "SERVER_PID",
    "SETTLING_ROLES",
    "SETTLING_TOOLS",
    "agent_role",
    "settles_tasks",
]

RENEW_TASK = "renew_task"
REPORT_FINDING = "report_finding"
FAIL_TASK = "fail_task"
# The tools that renew, report and fail a claimed task, and the roles given them.
SETTLING_TOOLS = (RENEW_TASK, REPORT_FINDING, FAIL_TASK)
SETTLING_ROLES = frozenset({"worker"})
# The tools that read a shared context, given to every role: a session whose own MCP server
# runs is told of its task's shard context with them (the hooks), as ``swarm run``'s agent
# is with the CLI's commands.
GET_CONTEXT = "get_context"
READ_CONTEXT_LINES = "read_context_lines"
SEARCH_CONTEXT = "search_context"
READING_TOOLS = (GET_CONTEXT, READ_CONTEXT_LINES, SEARCH_CONTEXT)
# A server started for every tool (``--role all``), and the role its sessions register as
# (an agent's role is one of the swarm's, or this).
EVERY_TOOL_ROLE = "all"
EVERY_TOOL_AGENT_ROLE = "agent"
# The roles a server can be started for (``swarm mcp --role``), and so the ones a session's
# hooks take (``swarm hook --role``, ``swarm hooks install --role``): the same session.
AGENT_ROLES = (*SWARM_ROLES, EVERY_TOOL_ROLE)
# The metadata keys that name the MCP server running an agent (``server_identity``: its host
# and pid): the hooks check that this process runs, and a session's end marks the agent stale
# only while its record still says them.
SERVER_HOST = "host"
SERVER_PID = "pid"
SERVER_KEYS = (SERVER_HOST, SERVER_PID)


def agent_role(server_role: str) -> str:
    """The role the sessions of a server started for ``server_role`` register as."""
    return EVERY_TOOL_AGENT_ROLE if server_role == EVERY_TOOL_ROLE else server_role


def settles_tasks(registered_role: str) -> bool:
    """Whether the MCP session of an agent registered as ``registered_role`` has the tools
    that renew, report and fail a task (``SETTLING_TOOLS``)."""
    return registered_role == EVERY_TOOL_AGENT_ROLE or registered_role in SETTLING_ROLES
