"""Rendering for the MCP tools: records as compact JSON, errors that say what to do next,
search hits as grep prints them, and lists cut to what fits one result."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ContentBlock, TextContent

from .. import _hints as hints
from .._codec import dumps, iso
from .._context_records import ContextInfo, GrepLine
from .._env import DOCTOR_TELLS_MORE
from .._errors import (
    AlreadyCompleted,
    ConnectionFailed,
    LeaseLost,
    NotFound,
    PermissionDenied,
    SwarmError,
    ValidationError,
    login_refused,
)
from .._mcp_names import EVERY_TOOL_ROLE
from .._prompts import context_bytes_note
from ._budget import client_len, clip
from ._roles import declared_tool_names, roles_offering

__all__ = [
    "TOOL_WORDS",
    "blocks",
    "cursor_offset",
    "described",
    "failed_call",
    "fit",
    "not_text",
    "plain",
    "render_group",
    "tool_error",
    "tool_words",
]

_TIME_FIELDS = frozenset(
    {
        "created_at",
        "claimed_at",
        "completed_at",
        "status_at",
        "lease_deadline",
        "not_before",
        "registered_at",
        "last_seen",
        "at",
    }
)


def plain(value: Any) -> Any:
    """Records as dicts without empty fields, timestamps as ISO-8601: fewer tokens, clearer."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None or item == [] or item == {}:
                continue
            if key in _TIME_FIELDS and isinstance(item, int):
                out[key] = iso(item)
            else:
                out[key] = plain(item)
        return out
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


# What a tool error adds to a login refused (``login_refused``): this server's SWARM_URL no
# longer logs in, whatever the call; a right its user lacks is said by ``_HINTS``.
_LOGIN_REFUSED = (
    "this server's Redis password or user was refused: it was rotated or revoked; restart "
    "this MCP server with the new SWARM_URL"
)

# How the hint of a ConnectionFailed names the doctor. The core's message may name it too
# (``DOCTOR_TELLS_MORE``, which this server words its own way: it is cut out of the message)
# or say it another way (an embedded server that does not answer: "'swarm doctor' checks
# it"): the hint is then left out, never saying the doctor twice (``_said_once``).
_DOCTOR = "run `swarm doctor`"

_HINTS: tuple[tuple[type[SwarmError], str], ...] = (
    (AlreadyCompleted, "do not report again; claim the next task with claim_task"),
    (LeaseLost, "stop working on this task; claim another with claim_task"),
    (NotFound, "check the id or name: swarm_status lists queues and contexts"),
    (ValidationError, "fix that argument and call again"),
    (PermissionDenied, "this MCP server's Redis user may not do this: ask the swarm's operator"),
    # (Also a full server, or a read-only replica: the message says which.)
    (ConnectionFailed, f"the swarm's Redis cannot take this now: check SWARM_URL, {_DOCTOR}"),
)


# The core's hints name commands (redis_swarm._hints), which an MCP agent cannot run: each,
# as this server's tools say it. Keyed by the core's names, so a hint reworded there is
# reworded here too; where a hint says ID, so do its words here (``hints.reworded`` puts the
# id the core named there).
TOOL_WORDS: dict[str, str] = {
    hints.LIST_CONTEXTS: "(swarm_status lists them)",
    hints.ASK_TARGETS: "(swarm_status lists them)",
    hints.CHECK_AGENT_ID: "check the id with list_agents",
    hints.LIST_FINDINGS: "with list_findings",
    hints.READ_FINDING: "list_findings shows its text",
    # (every role has both tools)
    hints.CHECK_MESSAGE_ID: "check the id (send_message returned it; read_inbox lists the "
    "messages sent to you)",
    # (synthesize's argument, as an agent passes it: JSON's true)
    hints.CITES_NONE: "cites_none=true stores one resting on none: a pass that found nothing",
    hints.LIST_PASSES: "swarm_status lists them",
    hints.CHECK_TASK_ID: "check the id claim_task or post_task returned",
    hints.PUBLISH_CONTEXT: "(publish_context)",
    hints.CONTEXT_VERSIONS: "returned by get_context",
    hints.CURRENT_VERSION: "leave version out to read the current one",
    hints.SERVE_QUESTIONS: "(a shard answers them with next_question; the swarm's operator "
    "can start answerers)",
    # No tool shows, requeues or cancels a task: the operator can.
    hints.SHOW_TASK: "(the swarm's operator can show task ID)",
    hints.CANCEL_TASK: "(the swarm's operator can cancel task ID)",
    hints.REQUEUE_TASK: "(the swarm's operator can requeue task ID)",
    # No tool registers an agent: an MCP session registers its own as it connects.
    hints.KEPT_TOKEN: "(claim_task returned it beside the task: pass it as token= only if this "
    "MCP server restarted since the claim; the attempt number alone is not a token)",
    hints.REGISTER_AGENT: "(agent ID registers as its MCP session connects, or the swarm's "
    "operator can register it)",
}


# Who gives an agent the id of another agent, to a role without list_agents.
_AGENT_ID_GIVER = "the agent that gave it to you, or the swarm's operator"

# Words that send the agent to tools some roles are not given: those tools, then what a server
# of a role lacking one of them says instead, the first whose tools it offers (``_in_words``:
# one rule for errors and descriptions).
_Without = tuple[tuple[str, ...], tuple[tuple[tuple[str, ...], str], ...]]

# The words of ``TOOL_WORDS`` that name tools some roles lack (``tool_words``). Every hint
# whose words name a tool is here (a test holds it).
_WITHOUT: dict[str, _Without] = {
    hints.CHECK_AGENT_ID: (("list_agents",), (((), f"check the id with {_AGENT_ID_GIVER}"),)),
    # (A worker's ask tells it to read an answer that is a finding.)
    hints.LIST_FINDINGS: (("list_findings",), (((), "through the swarm's operator"),)),
    hints.READ_FINDING: (("list_findings",), (((), "the swarm's operator can read its text"),)),
    # (A coordinator's post_task tells it to put big material in a context.)
    hints.PUBLISH_CONTEXT: (
        ("publish_context",),
        (((), "(a shard or the swarm's operator publishes it)"),),
    ),
    hints.CHECK_TASK_ID: (
        ("claim_task", "post_task"),
        (
            (("claim_task",), "check the id claim_task returned"),
            (("post_task",), "check the id post_task returned"),
            ((), "check the id with the swarm's operator"),
        ),
    ),
    hints.KEPT_TOKEN: (
        ("claim_task",),
        (
            (
                (),
                "(the call that gave you the task returned it; the attempt number alone is not "
                "a token)",
            ),
        ),
    ),
    hints.SERVE_QUESTIONS: (
        ("next_question",),
        (((), "(a shard answers them; the swarm's operator can start answerers)"),),
    ),
}

# Words of the tools' descriptions (a tool's docstring, as ``description_of`` joins its
# lines; an argument's description) that name tools some roles lack, keyed by those words
# as written (``described``). Every description naming a tool a role lacks has its words
# here (a test lists every role's tools and holds it).
_DESCRIBED_WITHOUT: dict[str, _Without] = {
    # An argument saying which tool gives its value.
    "(list_agents)": (("list_agents",), (((), f"(from {_AGENT_ID_GIVER})"),)),
    # next_page: the tools that take their own cursor back (a worker's: the context tools).
    "(get_context, list_findings, ...)": (
        ("list_findings",),
        (((), "(get_context, search_context)"),),
    ),
    # list_findings: who cites them (a coordinator asks a shard for its synthesis).
    "cite their ids in synthesize.": (
        ("synthesize",),
        (
            (
                ("request_synthesis",),
                "a shard cites their ids in its synthesis (ask one with request_synthesis).",
            ),
            ((), "a shard cites their ids in its synthesis."),
        ),
    ),
}


def _offers(role: str, name: str) -> bool:
    return role == EVERY_TOOL_ROLE or role in roles_offering(name)


def _in_words(role: str, words: str, without: _Without) -> str:
    """``words`` as a server started for ``role`` says them: as written when it offers every
    tool they need (``without``'s first), else the first of ``without``'s fallbacks whose
    tools it offers."""
    needs, fallbacks = without
    if all(_offers(role, name) for name in needs):
        return words
    return next(w for tools, w in fallbacks if all(_offers(role, name) for name in tools))


def tool_words(role: str) -> dict[str, str]:
    """``TOOL_WORDS`` as a server started for ``role`` says them: no tool it lacks named."""
    return {
        hint: _in_words(role, words, _WITHOUT.get(hint, ((), ())))
        for hint, words in TOOL_WORDS.items()
    }


def _fallback_said(said: str) -> bool:
    """Whether ``said`` holds words a role's server says for a tool it lacks (which name no
    tool, and say what to do all the same)."""
    return any(words in said for _, fallbacks in _WITHOUT.values() for _, words in fallbacks)


def described(text: str, role: str) -> str:
    """A tool's or an argument's description as a server started for ``role`` says it: no
    tool it lacks named (``_DESCRIBED_WITHOUT``)."""
    for words, without in _DESCRIBED_WITHOUT.items():
        if words in text:
            text = text.replace(words, _in_words(role, words, without))
    return text


def tool_error(exc: SwarmError, role: str = EVERY_TOOL_ROLE) -> ToolError:
    """A core error as a tool error that says what to do next, in tool terms (its hints
    translated by ``TOOL_WORDS`` as ``role``'s server says them, or one added when it names
    no tool)."""
    said = hints.reworded(str(exc) or type(exc).__name__, tool_words(role))
    if isinstance(exc, ConnectionFailed):
        said = _said_once(said)
    message = f"{type(exc).__name__}: {said}"
    if login_refused(exc):  # (not a right its user lacks: no call passes until a restart)
        return ToolError(f"{message} ({_LOGIN_REFUSED})")
    # Whole words: "task" holds the tool name "ask", and named no tool. (A role's words for a
    # tool it lacks name none, and say what to do all the same.)
    if any(re.search(rf"\b{name}\b", message) for name in declared_tool_names()) or (
        _fallback_said(said)
    ):
        return ToolError(message)
    for kind, hint in _HINTS:
        if isinstance(exc, kind):
            if kind is ConnectionFailed and "swarm doctor" in said:
                return ToolError(message)  # (the core named the doctor its own way)
            if "claim_task" in hint and not _offers(role, "claim_task"):
                hint = hint.partition(";")[0]  # (the rest sends it to a tool it lacks)
            return ToolError(f"{message} ({hint})")
    return ToolError(message)


def _said_once(said: str) -> str:
    """A ConnectionFailed's words without the core's pointer to the doctor
    (``DOCTOR_TELLS_MORE``), which this server's hint says (``_DOCTOR``)."""
    for pointer in (f" ({DOCTOR_TELLS_MORE})", f" {DOCTOR_TELLS_MORE}"):
        said = said.replace(pointer, "")
    return said


def failed_call(tool: str, said: object) -> str:
    """The text of a tool call that failed, in the SDK's words for one (its prefix), so that
    an error said outside the SDK's own handling reads like the others."""
    return f"Error executing tool {tool}: {said}"


def cursor_offset(state: dict[str, Any], key: str) -> int:
    value = state.get(key, 0)
    if not isinstance(value, int) or value < 0:
        raise ValidationError(
            "this cursor is damaged: pass the next_cursor of the previous page unchanged, or "
            "omit it to start at the first page"
        )
    return value


def blocks(*texts: str) -> CallToolResult:
    content: list[ContentBlock] = [TextContent(type="text", text=t) for t in texts]
    return CallToolResult(content=content)


def not_text(info: ContextInfo) -> dict[str, Any]:
    """What a tool says of a context that is not text (``ContextInfo.is_text``), which no
    tool reads or searches: its media type, its size, and how to write its bytes to a file,
    in the words of the prompts (prompts/question.md, section context-bytes) on one line,
    its command in backticks."""
    said = context_bytes_note(info)
    words, fenced = [], False
    for line in said.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        elif line and not line.startswith("#"):
            words.append(f"`{line}`" if fenced else line)
    return {
        "owner": info.owner,
        "version": info.version,
        "media_type": info.media_type,
        "size_bytes": info.size_bytes,
        "next": " ".join(words),
    }


def render_group(group: Sequence[GrepLine]) -> str:
    """Search output as grep prints it with -n and context: ``N:`` a hit, ``N-`` around it
    (``grep_groups`` shows each line once). The core has cut long lines to a snippet."""
    return "\n".join(f"{line.number}{':' if line.hit else '-'}{line.text}" for line in group)


def fit(items: list[dict[str, Any]], max_chars: int) -> list[dict[str, Any]]:
    """As many records as fit in ``max_chars`` (as clients count them: ``client_len``); a
    first record too big alone is clipped."""
    shown: list[dict[str, Any]] = []
    used = 400  # the rest of the payload: counts, cursor, next
    for item in items:
        size = client_len(dumps(item)) + 1
        if used + size > max_chars:
            if shown:
                break
            item = _clip_record(item, max_chars - used)
            size = client_len(dumps(item)) + 1
        shown.append(item)
        used += size
    return shown


def _clip_record(item: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """Shorten the long text fields of one record until it fits ``max_chars``."""
    if client_len(dumps(item)) <= max_chars:
        return item
    out = dict(item)
    for key in sorted(out, key=lambda k: -client_len(dumps(out[k]))):
        over = client_len(dumps(out)) - max_chars
        if over <= 0:
            break
        value = out[key]
        text = value if isinstance(value, str) else dumps(value)
        if isinstance(value, str | dict | list):
            most = max(80, client_len(text) - over - 80)
            out[key] = clip(text, most, "too long for one result")
    return out
