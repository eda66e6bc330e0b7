"""The MCP tools: thin adapters over the core that parse, call, and render within the budget.

One module per role group (every role, worker, contexts, planners), over the shared plumbing
of ``_base``. Each tool's docstring is its description: it is what teaches an agent the
workflow, so it says when to call the tool and what to call next. Each result is one compact
JSON object; tools that return text (a context page, search hits) put the text in a second
block, verbatim.
"""

from __future__ import annotations

from ._base import MAX_CLAIM_WAIT_S, MAX_PASS_WAIT_S
from ._contexts import ContextTools
from ._everyone import EveryoneTools
from ._planner import PlannerTools, TaskInput
from ._worker import WorkerTools

__all__ = ["MAX_CLAIM_WAIT_S", "MAX_PASS_WAIT_S", "SwarmTools", "TaskInput"]


class SwarmTools(EveryoneTools, WorkerTools, ContextTools, PlannerTools):
    """The tools of one server process, sharing its Swarm, sessions, budget and spill pages."""
