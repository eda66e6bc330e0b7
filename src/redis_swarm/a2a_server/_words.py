"""The core's hints in an A2A client's words.

The core ends its messages with what to do next in the words of the CLI
(``redis_swarm._hints``): "check the id with swarm task list". A remote A2A client has no
such command; it has the A2A methods (``GetTask``, ``ListTasks``, ``SendMessage``...), and
what only the swarm's operator can do is said to be theirs. ``A2A_WORDS`` says each hint this
way, keyed by the core's names, as the MCP server's ``TOOL_WORDS`` does for its tools, so a
hint reworded in the core is reworded here too (tests/test_a2a_edges.py holds the two to each
other: every hint has its words here, and none reaches a client as the CLI says it). Where a
hint says ID, its words here say it too: ``hints.reworded`` puts there the id the core named.
"""

from __future__ import annotations

import re

from .. import _hints as hints
from .._translate import said_retrying

__all__ = [
    "A2A_PHRASES",
    "A2A_WORDS",
    "OPERATOR_CONTEXT",
    "for_operator",
    "in_a2a_words",
    "needs_role",
]


def needs_role(swarm: str) -> str:
    """What an A2A server's Redis user must be (docs/security.md), told to its operator
    wherever Redis refuses that user something."""
    return (
        "swarm a2a posts and cancels tasks and keeps A2A clients' webhooks, which needs a "
        f"shard or coordinator user of swarm {swarm} (swarm acl --role shard --swarm {swarm} "
        "--user a2a --apply)"
    )


# What an A2A client is told about material that belongs in a swarm context: contexts are
# published by the swarm's own agents and operator, not through A2A.
OPERATOR_CONTEXT = "(ask the swarm's operator to publish it)"

A2A_WORDS: dict[str, str] = {
    hints.CHECK_TASK_ID: "check the id SendMessage returned, or find the task with ListTasks",
    hints.PUBLISH_CONTEXT: OPERATOR_CONTEXT,
    hints.LIST_FINDINGS: "in the artifacts of completed tasks (GetTask, ListTasks)",
    hints.READ_FINDING: "its text is in the artifacts of its completed task (GetTask)",
    # (Messages are the swarm's agents', not an A2A client's.)
    hints.CHECK_MESSAGE_ID: "check the id with the swarm's operator",
    # (Said of a synthesis, which no A2A method stores: a shard's.)
    hints.CITES_NONE: "a shard stores one that rests on none, of a pass that found nothing",
    # A pass is an A2A context: its tasks' contextId.
    hints.LIST_PASSES: "ListTasks shows each task's contextId",
    # Agents and contexts are not A2A objects: only the swarm's operator sees them.
    hints.CHECK_AGENT_ID: "check the id with the swarm's operator",
    hints.LIST_CONTEXTS: "(the swarm's operator can list them)",
    hints.ASK_TARGETS: "(the swarm's operator can list them)",
    hints.CONTEXT_VERSIONS: "known to the swarm's operator",
    hints.CURRENT_VERSION: "(the swarm's operator can read the current one)",
    hints.SERVE_QUESTIONS: "(the swarm's operator starts its answerers)",
    # (Said by ask, which no A2A method runs; its questions' queues are seldom this server's.)
    hints.SHOW_TASK: "(the swarm's operator can show task ID)",
    hints.CANCEL_TASK: "(the swarm's operator can cancel task ID)",
    hints.REQUEUE_TASK: "(the swarm's operator can requeue task ID)",
    hints.REGISTER_AGENT: "(the swarm's operator can register agent ID)",
    # (Said of a worker's lease token, which no A2A method takes: leases are the workers'.)
    hints.KEPT_TOKEN: "(the claim that leased the task returned it)",
}


# Whole sentences of the core that speak of its own objects, each as an A2A client knows
# them (each group of a pattern shown quoted, cut to 40 characters, where its phrase has a
# {}). A listing's cursor (lua/index_page.lua) is, to A2A, ListTasks' pageToken; a pass
# name (a refused one: too long, blank), the contextId it was given as.
A2A_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(?:the )?pass name\b"), "contextId"),
    # (a cursor no index holds: lua/index_page.lua adds why an older form of its own may be
    # one, which no A2A client gave: this server's tokens never had that form)
    (
        re.compile(
            r"cursor (.*) does not belong to this listing: pass back the cursor of the "
            r"previous page with the same filters\. If it is, its record is no longer stored "
            r".*start the listing again from its start",
            re.S,
        ),
        "pageToken {0} is not one this server gave: start from the first page (leave "
        "pageToken out), then pass each page's nextPageToken",
    ),
    (
        re.compile(
            r"cursor (.*) does not belong to this listing: pass back the cursor of the "
            r"previous page with the same filters",
            re.S,
        ),
        "pageToken {0} is not one this listing gave: pass the nextPageToken of the previous "
        "page, with the same contextId and status, or leave pageToken out for the first page",
    ),
    # (a description too long: a message's text parts are its description)
    (
        re.compile(r"put the material in data or in a context"),
        "put the material in a data part of the message (its data parts become the task's "
        "data), and keep its text to what to do",
    ),
)

# What the core advises a CLI user whose Redis user may not post to a pass: the A2A server
# posts every message to one (its context), so its operator is told the role it needs
# instead (``needs_role``), not a command-line option.
_CLI_PASS_ADVICE = re.compile(
    r"; post it without --pass \(pass_name\), or as a shard or coordinator user \([^)]*\)"
)


# What the core tells a command that met a stopped embedded Redis (``_translate``): to start
# it, then to run the command again. A running server resumes by itself once it is up.
_RESUMES = " (this server resumes by itself once it is up)"


def for_operator(text: str) -> str:
    """``text`` (a core error's message) for the log of a running A2A server's operator:
    without the advice the core gives a CLI user that this server cannot follow
    (``needs_role`` then says what to do), and without "then run this command again" (it
    resumes by itself)."""
    return said_retrying(_CLI_PASS_ADVICE.sub("", text), _RESUMES)


def in_a2a_words(text: str) -> str:
    """``text`` (a core error's message) with each of the core's hints, and its sentences
    about its own objects, in A2A words."""
    text = hints.reworded(text, A2A_WORDS)
    for pattern, a2a_phrase in A2A_PHRASES:
        found = pattern.search(text)
        if found is not None:
            said = a2a_phrase.format(*(repr(group[:40]) for group in found.groups()))
            text = text[: found.start()] + said + text[found.end() :]
    return text
