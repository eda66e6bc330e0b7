"""What to do next, said once: the hints the core's messages end with.

The core says each hint in the words of the CLI, a command anyone who has redis-swarm can run
(from a shell, beside the Python API); its Lua scripts carry the same words, which
tests/test_cli_hints.py holds to these. A face that cannot run commands says each hint its own
way, keyed by these names (the MCP server's ``TOOL_WORDS``), so that rewording a hint here
reaches every face, and a face can never translate a phrase the core no longer says.

A hint that needs an id says ID, as others say OWNER or Q: the sentence it ends names the
id (so that a face can say the hint whole, as its own words, without the id inside).

A hint that no face needs to reword is said plainly where it is raised ("search for plain
text instead of a regex"): every face has that choice, so no command is named.
"""

from __future__ import annotations

__all__ = [
    "ASK_TARGETS",
    "CANCEL_TASK",
    "CHECK_AGENT_ID",
    "CHECK_TASK_ID",
    "CONTEXT_VERSIONS",
    "CURRENT_VERSION",
    "LIST_CONTEXTS",
    "LIST_FINDINGS",
    "LIST_PASSES",
    "PUBLISH_CONTEXT",
    "SERVE_QUESTIONS",
    "SHOW_TASK",
]

CHECK_TASK_ID = "check the id with swarm task list"
CHECK_AGENT_ID = "check the id with swarm agents"
LIST_CONTEXTS = "(swarm context list lists them)"
ASK_TARGETS = "(swarm context list; swarm serve OWNER answers)"
CONTEXT_VERSIONS = "shown by swarm context versions OWNER"
# Said of a version not kept when the owner has a current one.
CURRENT_VERSION = "drop --version to read the current one"
LIST_FINDINGS = "with swarm findings"
# Said inside the parentheses naming the passes there are: "(the passes: "a", "b"; ...)".
# (Every one: plain ``swarm status`` shows only the last few settled passes.)
LIST_PASSES = "swarm status --all lists them"
PUBLISH_CONTEXT = "(swarm context publish)"
SERVE_QUESTIONS = "(swarm serve OWNER answers a shard's questions, swarm run --queue Q a queue's)"
# A task the sentence names (a question an asker waited for): its record, or its cancel.
SHOW_TASK = "(swarm task show ID)"
CANCEL_TASK = "(swarm task cancel ID)"
