"""What to do next, said once: the hints the core's messages end with.

The core says each hint in the words of the CLI, a command anyone who has redis-swarm can run
(from a shell, beside the Python API); its Lua scripts carry the same words, which
tests/test_cli_hints.py holds to these. A face that cannot run commands says each hint its own
way, keyed by these names (the MCP server's ``TOOL_WORDS``), so that rewording a hint here
reaches every face, and a face can never translate a phrase the core no longer says.

A hint about one task, one agent or one context says ID or OWNER where its id or owner goes;
where the error knows it, the core says the hint naming it (``said_of``), a command to copy as
is ("(swarm task show t-01...)"). A face's words for such a hint say ID or OWNER where the same
value goes, and ``reworded`` puts there the one the core named. A hint not about one (a
listing: many tasks, any owner) keeps ID or OWNER, as others keep Q.

A hint that no face needs to reword is said plainly where it is raised ("search for plain
text instead of a regex"): every face has that choice, so no command is named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial

# The hints (each face has words for every one of them); ``said_of``, ``said_of_any`` and
# ``reworded``, below, say them.
__all__ = [
    "ASK_TARGETS",
    "CANCEL_TASK",
    "CHECK_AGENT_ID",
    "CHECK_MESSAGE_ID",
    "CHECK_TASK_ID",
    "CITES_NONE",
    "CONTEXT_VERSIONS",
    "CURRENT_VERSION",
    "KEPT_TOKEN",
    "LIST_CONTEXTS",
    "LIST_FINDINGS",
    "LIST_PASSES",
    "PUBLISH_CONTEXT",
    "READ_FINDING",
    "REGISTER_AGENT",
    "REQUEUE_TASK",
    "SERVE_QUESTIONS",
    "SHOW_TASK",
]

CHECK_TASK_ID = "check the id with swarm task list"
CHECK_AGENT_ID = "check the id with swarm agents"
# A message id that names no message kept (``_ops.messages``: its status, a read of it).
CHECK_MESSAGE_ID = "check the id (swarm msg send prints it)"
LIST_CONTEXTS = "(swarm context list lists them)"
ASK_TARGETS = "(swarm context list; swarm serve OWNER answers)"
CONTEXT_VERSIONS = "shown by swarm context versions OWNER"
# Said of a version not kept when the owner has a current one: in words a Python caller
# (no ``version=``) and a CLI user (no ``--version``) both follow, naming neither's option.
CURRENT_VERSION = "read without a version to get the current one"
LIST_FINDINGS = "with swarm findings"
# How the text of a finding named by its id elsewhere is read (an asker's question left open:
# the finding that answers it is named by its task's record once answered, ``SHOW_TASK``).
READ_FINDING = "swarm findings FINDING_ID prints its text"
# How a synthesis resting on no finding is stored (``_ops.findings.synthesize``'s refusal of
# one citing none). Said in the Python API's words, the one exception: no command meets that
# refusal (swarm synth create asks for --finding, --all-findings or --cites-none first, in
# its own words), so only a Python caller reads it as the core says it.
CITES_NONE = (
    "Swarm.synthesize stores one that rests on none, of a pass that found nothing, with "
    "cites_none=True"
)
# Said inside the parentheses naming the passes there are: "(the passes: "a", "b"; ...)".
# (Every one: plain ``swarm status`` shows only the last few settled passes.)
LIST_PASSES = "swarm status --all lists them"
PUBLISH_CONTEXT = "(swarm context publish)"
SERVE_QUESTIONS = "(swarm serve OWNER answers a shard's questions, swarm run --queue Q a queue's)"
# A task the sentence names (a question an asker waited for): its record, or its cancel.
SHOW_TASK = "(swarm task show ID)"
CANCEL_TASK = "(swarm task cancel ID)"
# A dead task the sentence names (lua/task_update.lua): its requeue.
REQUEUE_TASK = "(swarm task requeue ID)"
# Where a lease's token is (``_ops._work.check_token``: a token that is none).
KEPT_TOKEN = (
    "(swarm task claim prints it; the attempt number alone is not a token; it also keeps the "
    "token in SWARM_HOME's leases folder, one JSON file per worker)"
)
# An agent that is not registered (lua/_prelude.lua's register_agent_command): its register.
REGISTER_AGENT = "(swarm agents register ID --role ROLE)"

# Where a hint says the id or the name it is about, to be said with it (a hint says one at
# most); such a value (``_validate.check_name``) in the hint as said.
_PLACE = re.compile(r"\b(?:ID|OWNER)\b")
_A_VALUE = r"([A-Za-z0-9._-]+)"


def said_of(hint: str, value: str) -> str:
    """``hint`` naming ``value`` (an id, an owner) where it says ID or OWNER: a command that a
    user copies as is."""
    return _PLACE.sub(lambda _: value, hint)


def said_of_any(hint: str) -> re.Pattern[str]:
    """``hint`` as said, naming any value (or still ID or OWNER) where it says ID or OWNER:
    the value, its group."""
    return re.compile(_A_VALUE.join(re.escape(part) for part in _PLACE.split(hint)))


def _said_of_found(words: str, found: re.Match[str]) -> str:
    return said_of(words, found[1])


def reworded(text: str, words: Mapping[str, str]) -> str:
    """``text`` (a core message) with each hint in it said in a face's ``words`` (keyed by the
    hints): a hint said naming an id or owner, in words that name the same one where they say
    ID or OWNER."""
    for hint, face_words in words.items():
        if _PLACE.search(hint):
            text = said_of_any(hint).sub(partial(_said_of_found, face_words), text)
        else:
            text = text.replace(hint, face_words)
    return text
