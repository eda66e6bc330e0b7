"""What each hook event does with the swarm.

- SessionStart: register the session's agent (built on its record as stored, the core's
  ``join``: an MCP server of the session registering the id at the same instant keeps its
  pid and host, which tell the hooks it runs), naming the session in its metadata
  (``HOOKS_SESSION``: the newest hooks session of the id, whose end alone marks it);
  context: who it is, its role and queues, the leases it holds (a resumed or compacted
  session picks its task back up), unread messages, what is claimable (a queue no task was
  ever posted to is said so).
- UserPromptSubmit: the messages that arrived since the agent last looked.
- Stop: refuse to stop while the session holds a lease it has not reported; a loop-mode
  worker is handed its next task (claimed here, in the hook, once the machine's store of
  lease tokens is known to be writable: a claim whose token cannot be kept is released
  back to its queue, and the hook fails saying so; a claim that got no reply keeps the lease
  secrets it sent, and a later hook proves the lease it took, ``held_tasks``, and counts it
  toward --max-tasks); unread direct messages are handed over.
  ``--max-tasks`` counts the claims of one session (its ``session_id``): a new session, or
  a SessionStart ``startup`` / ``clear`` of the same one, starts at 0; ``resume`` and
  ``compact`` carry on with the count. ``stop_hook_active`` (the session already continues
  because of a refused stop) never makes it nag about a lease again, so a session is never
  trapped (a refusal for messages hands them over: the next stop refuses only for newer
  ones).
- SubagentStart: tells the subagent its own worker id.
- SubagentStop: a subagent's unreported task is reported with the finding parsed from its
  last message (like ``swarm run`` parses an agent's output), or failed with no finding; a
  message no finding holds whole (a long text, a finding the core refuses: too big to
  store) is kept whole on this machine and named by the finding, one refused giving way to
  one cut to fit (``_LastMessage``, ``_report_or_fail``): no subagent's work is lost; a task
  settled elsewhere meanwhile (its lease gone to another worker) is said, the others settled
  all the same (one Redis cannot be reached for is left to its lease); its
  record (a claim registered it) then goes when nothing of it would be lost
  (``_leave_if_done``): no client resumes a subagent, so nothing would read it again.
- PreCompact: renew every held lease, so compaction never costs a task.
- SessionEnd: the session's agent is marked stale at once (the core's ``mark_stale``), not
  alive until its last sign of life is ``stale_after_s`` old; nothing else changes (its
  leases run out as they would, its inbox waits). Only while its record names no server
  that may run and no other hooks session (``_ended_session``): an MCP server of the session
  marks the agent itself as it closes; another session under the same SWARM_AGENT that
  started since runs on (its own end marks it); and a server or session that registered the
  id since the hook read the record keeps it alive. The record stays, even an id the session
  made (no SWARM_AGENT): a resume of the session (Claude Code's ``resume`` keeps its
  session id) takes that id again, and its inbox and broadcast cursor must wait for it;
  ``swarm agents sweep`` removes it once it is silent and holds no lease.

A file of the session's lease tokens that holds no JSON object is set aside and said once
(``_unreadable_tokens``).

Messages: a hook looks at the unread ones (a peek), picks those its answer has room for,
then takes exactly that many with the core's acknowledged read (``inbox(ack=True)``), which
hands each message to one reader: two sessions sharing an agent id never both show one.
A message too long to show whole (its body or data over ``BODY_CHARS``, or the first one
cut to the room left) is shown cut with the command that shows it whole, ``swarm msg show
ID --agent A`` (``get_message``: its inbox keeps the newest messages read), and is read like
the others: it is not repeated at every turn. The messages that do not fit stay unread for
a later turn. The trade: messages are taken before the answer is printed, so a hook killed
in that instant (between the take and its output, no I/O in between but the printing) has
taken messages the session never sees; ``swarm msg status`` reports them read and ``swarm
msg show`` still shows them. The alternative (peek, print, then mark read) lets two sessions
of one agent both act on one message, a likelier fault than that instant. A task cut to fit
names ``swarm task show ID``. A task handed to the session says when its lease ends and the
command that renews it (only PreCompact renews by itself); a task of a shard (its
``parent``) says, after its report and fail commands, what ``swarm run``'s prompt says of
the shard's context (``_shard_context``: the shard, and how to search and read it). Every
value a hook writes into a command is shell-quoted. A session whose own stdio MCP server
runs under the same agent id (``--name`` / SWARM_AGENT: the record says ``via: mcp``, the
server has not said it closed, and its process runs here) is told to renew, report and fail
with that server's tools instead (``mcp_tools``, named from ``_mcp_names``: a hook imports no
MCP code).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from .. import MAX_PAGE
from .. import _lease_tokens as tokens
from .._budget import CHARS_PER_TOKEN, Budget, client_len
from .._codec import counted, first_few, iso
from .._env import ENV_AGENT
from .._errors import (
    ConfigError,
    Conflict,
    ConnectionFailed,
    NotFound,
    SwarmError,
    TaskDeadLettered,
    ValidationError,
)
from .._hints import LIST_PASSES, SHOW_TASK
from .._mcp_names import (
    FAIL_TASK,
    RENEW_TASK,
    REPORT_FINDING,
    SERVER_HOST,
    SERVER_KEYS,
    SERVER_PID,
    settles_tasks,
)
from .._models import Agent, Finding, Message, Task, TaskStatus, lease_token, unknown_queues
from .._printable import indented, shown_name
from .._validate import check_agent
from .formats import MAX_CHARS, Answer, clip
from .reach import not_answered

if TYPE_CHECKING:  # (the caller brings the shell, and redis-py with it)
    from pathlib import Path

    from .._client import Swarm
    from .._config import Settings
    from .._context_records import ContextInfo

__all__ = [
    "DEFAULT_HOOK_BUDGET_TOKENS",
    "MAX_HOOK_BUDGET_TOKENS",
    "HookOptions",
    "agent_for",
    "handle",
    "held_tasks",
    "subagent_for",
]

# A hook's context is held to a token budget like an MCP tool result (the core's ``Budget``),
# and the clients cap each output string at 10,000 characters: the budget may not exceed that.
DEFAULT_HOOK_BUDGET_TOKENS = 2_000
MAX_HOOK_BUDGET_TOKENS = MAX_CHARS // CHARS_PER_TOKEN
_DEFAULT_BUDGET = Budget(DEFAULT_HOOK_BUDGET_TOKENS)
# The part of an answer messages may fill, and the most of one message body shown.
MESSAGES_BUDGET = 5_000
BODY_CHARS = 1_500
# Messages are shown only when at least this much of the budget is left for them.
MIN_MESSAGES_ROOM = 300
MESSAGES_LOOKED_AT = 50  # unread messages a hook looks at for those it has room for
TASK_DATA_CHARS = 2_000
TASK_DESCRIPTION_CHARS = 3_000
# Held tasks an answer shows whole; the others it names (with their tokens), the first
# HELD_NAMED of them.
HELD_SHOWN = 3
HELD_NAMED = 20
# Loop mode: the metadata key of an agent's per-session claim counts, and the sessions whose
# counts it keeps (the newest; an agent shared by more sessions at once than this may hand
# one of them more than --max-tasks). Counted with the core's atomic ``tally``: two sessions
# of one id counting at the same instant both count.
LOOP_CLAIMS = "loop_claims"
LOOP_SESSIONS_KEPT = 8
NO_SESSION = "no-session"  # the count key of an input without a session_id
# SessionStart sources that begin a session's count of loop claims afresh (``resume`` and
# ``compact`` carry on with the session's count).
NEW_SESSION_SOURCES = ("startup", "clear")
# The metadata key naming the hooks session that registered the agent last (its session key):
# sessions sharing one SWARM_AGENT each register it at their start, and only the newest one's
# end marks it stale (an older one's would end the agent of a session that runs on).
HOOKS_SESSION = "hooks_session"


@dataclass(frozen=True)
class HookOptions:
    """What ``swarm hook`` was installed with."""

    client: str = "claude"
    role: str = "worker"
    queues: tuple[str, ...] = ()
    loop: bool = False
    max_tasks: int = 0  # loop mode: tasks one session takes at most (0: no limit)
    agent: str | None = None  # SWARM_AGENT
    budget: Budget = _DEFAULT_BUDGET  # what one answer's context may hold
    # How the agent runs swarm commands that reach this swarm (the hook's own command line:
    # the session's environment may name another swarm, or none).
    command: str = "swarm"

    @property
    def limit(self) -> int:
        """The most characters one context or reason may hold."""
        return min(self.budget.chars, MAX_CHARS)


def _digest(text: str, size: int) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def agent_for(payload: Mapping[str, Any], options: HookOptions) -> str:
    """The session's agent id: SWARM_AGENT, else one derived from the hook's ``session_id``
    (the same for every event of the session, and after resume or compaction). A
    SWARM_AGENT that is no name an agent may register under (too long, a character a file
    or key cannot hold, only dots) is refused here, once, before any file is named from it
    (its lease tokens, its subagents' spool)."""
    if options.agent:
        return check_agent(ENV_AGENT, options.agent, new=True)
    session = payload.get("session_id")
    if session is not None and not isinstance(session, str):
        shown = json.dumps(session, ensure_ascii=False)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ValueError(
            f"the hook input's session_id is {shown}, not a string, so the session has no "
            "agent id: the client sends it as a string (or set SWARM_AGENT)"
        )
    if not session:
        raise ValueError(
            "the hook input has no session_id, so the session has no agent id: set SWARM_AGENT"
        )
    return f"{options.client}-{_digest(session, 6)}"


def subagent_for(agent: str, agent_id: str) -> str:
    """The worker id of a session's subagent (its ``agent_id``)."""
    return f"{agent[:40]}.sub-{_digest(agent_id, 5)}"


def held_tasks(swarm: Swarm, worker: str, session: str | None = None) -> list[Task]:
    """The tasks ``worker`` holds a lease on, each with its token when this machine knows it
    (``tokens``: claimed here by ``swarm task claim``, a hook or the stdio MCP server), and
    forgets the tokens whose task is settled or gone (``tokens.prune``, the rule a claim
    through the CLI applies too: a lease that ran out and moved on keeps its token while
    its task is open, so that the session's late report of it, in a later turn, finds it,
    as the lease's refusal invites). The core's ``leases_of`` reads the tasks of the tokens
    by id (however many leases the swarm holds: a listing of the claimed tasks read all of
    them, and stopped at 2,000), ``MAX_PAGE`` ids a call (the most it takes: a file of more
    tokens, read in one call, failed every hook and was never trimmed), and finds a lease
    claimed where no token was kept among the swarm's newest. Only a token whose task was
    read (``task_statuses``: one round trip for the tasks not held) and found settled or gone is
    forgotten (never one whose task was not looked at, or is stored unreadable). A held
    task whose token is not known may be the lease of a loop-mode claim that got no reply:
    ``_adopted`` proves it so, and counts it in ``session``'s loop claims (its session key;
    None: not counted) as its Stop would have, had the claim's reply come: --max-tasks
    holds with it."""
    # Read before the held tasks: a token another session keeps after this is not judged
    # (its claim may not show in the answer), so it is not dropped.
    judged = tokens.known(swarm.settings, worker)
    ids = [task_id for task_id in judged if tokens.is_task_id(task_id)]
    found: dict[str, Task] = {}
    corrupt: list[str] = []
    for start in range(0, max(len(ids), 1), MAX_PAGE):
        # (the newest leases once, with the first chunk: they are the same for every chunk)
        newest = {} if start == 0 else {"newest_leases": 0}
        page = swarm.leases_of(worker, ids[start : start + MAX_PAGE], **newest)
        for task in page.items:
            found.setdefault(task.id, task)
        corrupt += page.corrupt
    held = list(found.values())
    tokens.prune(
        swarm.settings, worker, swarm.task_statuses, judged=judged, held={*found, *corrupt}
    )
    known = tokens.known(swarm.settings, worker)  # (with those kept meanwhile)
    if any(t.id not in known for t in held):
        known |= _adopted(swarm, worker, [t for t in held if t.id not in known], session)
    return [replace(t, token=known.get(t.id)) for t in held]


def _adopted(
    swarm: Swarm, worker: str, unknown: Sequence[Task], session: str | None
) -> dict[str, str]:
    """Task id -> token of the ``unknown`` held tasks (their tokens not kept here) that a
    secret kept of a claim that got no reply (``tokens.unanswered``) proves ``worker``'s: a
    renew with the token ``ATTEMPTS.SECRET`` succeeds (and so extends the lease, as the
    session would); a lease no secret renews (``LeaseLost``) is another claim's. An adopted
    token is kept, its secret dropped, and the claim counted in ``session``'s loop claims
    (once: the secret that proves it again is gone); one that cannot be kept (the home not
    writable now) still serves this answer, and is counted by the hook that keeps it."""
    secrets = tokens.unanswered(swarm.settings, worker)
    adopted: dict[str, str] = {}
    for task in unknown:
        for secret in secrets:
            token = lease_token(task.attempts, secret)
            try:
                swarm.renew(task.id, token)
            except (Conflict, NotFound):  # (LeaseLost: not this secret's; or settled since)
                continue
            adopted[task.id] = token
            secrets.remove(secret)
            try:
                tokens.adopt(swarm.settings, worker, task.id, token, secret)
            except OSError:
                break
            if session is not None:
                # (an agent swept meanwhile has no count to keep: its next SessionStart
                # registers it afresh)
                with contextlib.suppress(NotFound):
                    swarm.tally(worker, LOOP_CLAIMS, session, keep=LOOP_SESSIONS_KEPT)
            break
    return adopted


def _task_hint(swarm_cmd: str, task_id: str) -> str:
    return f"the whole task: {swarm_cmd} task show {task_id}"


@dataclass(frozen=True)
class McpTools:
    """The tools of the session's own MCP server that renew, report and fail a task."""

    renew: str
    report: str
    fail: str


# Named from the MCP server's names (``_mcp_names``, which its tool table is checked against):
# no MCP code imported here.
_SETTLING = McpTools(RENEW_TASK, REPORT_FINDING, FAIL_TASK)


def _mcp_server_runs(agent: Agent) -> bool:
    """Whether the agent was registered by a stdio MCP server (``swarm mcp`` under the same
    id: ``--name`` or SWARM_AGENT) that runs now, on this machine: a process of the session
    whose hooks ask. A server that ended leaves its metadata behind, and a later session under
    that id may have the hooks alone: one that closed said so (``left_at``, until a server
    registers the id again), one that was killed did not, and its pid no longer runs (or runs
    another program: a pid reused that soon is taken for the server)."""
    metadata = agent.metadata or {}
    if metadata.get("via") != "mcp" or metadata.get("transport") != "stdio":
        return False
    if agent.left_at is not None:
        return False
    pid = metadata.get(SERVER_PID)
    if metadata.get(SERVER_HOST) != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    return _pid_runs(pid)


def _pid_runs(pid: int) -> bool:
    """Whether process ``pid`` of this machine runs (another user's counts)."""
    if sys.platform == "win32":  # (os.kill there ends the process: taken as running)
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _ended_session(agent: Agent, session: str) -> dict[str, Any] | None:
    """What ``mark_stale`` is given (``session``) when the hooks session ``session`` (its
    session key) of ``agent`` ends: the server keys of its record and the hooks session it
    names, as they are, so that it is marked only while they stay so (an MCP server, or
    another session's SessionStart, registering the id meanwhile writes its own). None when
    the record names another hooks session (one that started since, under the same
    SWARM_AGENT: its own end marks the agent), or a server that may still run (one of this
    machine whose process runs, or another machine's): that server, not the hooks, says
    when its session ends. A record naming no hooks session (registered before the hooks
    named one, or by its MCP server alone) is marked by the end of any."""
    metadata = agent.metadata or {}
    named = {key: metadata.get(key) for key in (*SERVER_KEYS, HOOKS_SESSION)}
    if named[HOOKS_SESSION] not in (None, session):
        return None
    pid = named[SERVER_PID]
    if not isinstance(pid, int) or pid <= 0:
        return named  # no server named (the hooks' own, or one that closed: it drops its pid)
    if named[SERVER_HOST] != socket.gethostname() or _pid_runs(pid):
        return None
    return named  # a server killed here, unannounced: its keys go as the agent is marked


def mcp_tools(agent: Agent | None) -> McpTools | None:
    """The MCP tools the session settles its tasks with, when its own MCP server runs and its
    role has them; None: the CLI's commands (a hooks-only session)."""
    if agent is None or not _mcp_server_runs(agent) or not settles_tasks(agent.role):
        return None
    return _SETTLING


def _shard_context(
    swarm: Swarm,
    task: Task,
    swarm_cmd: str,
    looked: dict[str, ContextInfo | None],
    tools: McpTools | None = None,
) -> str:
    """What the session is told of the context of ``task``'s shard (``task.parent``), as
    ``swarm run``'s prompt tells its agent (``task_context_note``: the shard, and the commands
    that search and read its context, or that it published none; with ``tools``, a session
    whose own MCP server runs, that server's tools that do it); "" for a task of no
    shard. ``looked``: the shards' ContextInfo (None: no context) read so far for this answer
    (one read a shard). A context that cannot be looked up now (a right refused, Redis gone
    meanwhile) does not cost the session its task: the shard is named, with the command that
    says what its context holds."""
    owner = task.parent
    if not owner:
        return ""
    from .._prompts import task_context_note  # (here: only a task of a shard needs it)

    if owner not in looked:
        try:
            looked[owner] = swarm.context_info(owner)
        except NotFound:
            looked[owner] = None
        except SwarmError as exc:
            said = not_answered(exc, swarm.settings) if isinstance(exc, ConnectionFailed) else ""
            return (
                f"The memory shard {owner} holds the context this task is about; it could not "
                f"be looked up now ({said or exc}): {swarm_cmd} context info "
                f"{shlex.quote(owner)} says what it holds."
            )
    return task_context_note(owner, looked[owner], swarm_cmd, mcp=tools is not None)


def _task_text(
    task: Task, worker: str, swarm_cmd: str, tools: McpTools | None = None, about: str = ""
) -> str:
    """The task handed to the session: how to renew, report and fail it with the session's
    MCP tools (``tools``), else with the CLI's commands; then ``about``, what it is told of
    the shard's context (``_shard_context``), last: a cut to the budget takes it first."""
    q = shlex.quote
    where = f"queue {task.queue}" + (f", pass {task.pass_name}" if task.pass_name else "")
    whole = _task_hint(swarm_cmd, q(task.id))
    data = ""
    if task.data is not None:
        text = json.dumps(task.data, ensure_ascii=False)
        data = "\nData: " + clip(text, TASK_DATA_CHARS, whole)
    token = q(task.token) if task.token else "TOKEN"
    if task.token:
        # (in backticks: a token holds '.', so one a full stop touched was pasted with it)
        known = f"lease token `{token}`"
    elif tools is not None:
        known = "your MCP session holds its lease token"
    else:
        known = "use the lease token your claim printed"
    head = (
        f"Task {task.id} ({where}) is yours: {known}.\n"
        f"{clip(task.description, TASK_DESCRIPTION_CHARS, whole)}{data}\n"
    )
    if tools is not None:
        # (the token too when known: a task the hook claimed is not the MCP session's own)
        args = f"task_id={json.dumps(task.id)}" + (
            f", token={json.dumps(task.token)}" if task.token else ""
        )
        settle = (
            f"{_lease_line(task, f'{tools.renew}({args})')}\n"
            f"When done, report it with your swarm MCP tool {tools.report}({args}, "
            f'summary="what you found"). If you cannot do it: {tools.fail}({args}, '
            'error="why").'
        )
    else:
        settle = (
            f"{_lease_line(task, f'{swarm_cmd} task renew {q(task.id)} --token {token}')}\n"
            f"When done, report it: {swarm_cmd} task report {q(task.id)} --token {token} "
            f"--worker {q(worker)} --summary 'what you found' (or --finding JSON). If you "
            f"cannot do it: {swarm_cmd} task fail {q(task.id)} --token {token} --error 'why'."
        )
    return head + settle + (f"\n\n{about}" if about else "")


def _lease_line(task: Task, renew: str) -> str:
    """When the lease ends and how to keep it (``renew``: the command or tool call): a turn
    longer than the lease loses the task (only PreCompact renews by itself)."""
    until = iso(task.lease_deadline) or f"{task.lease_s:g} s after the claim"
    # (no full stop after ``renew``: it ends with the token, which holds '.' itself, and a
    # pasted command took the stop for part of it)
    return (
        f"Your lease ends at {until} (it lasts {task.lease_s:g} s): if the work may take "
        f"longer, renew it (from now) before then: {renew}"
    )


def _held_text(
    swarm: Swarm,
    head: str,
    held: Sequence[Task],
    agent: str,
    options: HookOptions,
    tools: McpTools | None,
) -> str:
    """``head``, then the first ``HELD_SHOWN`` held tasks whole (each with its shard's
    context: ``_shard_context``); the others (a worker may hold many) are named right after
    ``head``, each with its lease token when known here, and the command that shows each
    whole: a cut to the room left keeps that line."""
    shown, rest = held[:HELD_SHOWN], held[HELD_SHOWN:]
    if rest:
        show = SHOW_TASK.strip("()").replace("swarm", options.command, 1)  # swarm task show ID
        names = [f"{t.id} (lease token {shlex.quote(t.token) if t.token else 'not known here'})"
                 for t in rest]  # fmt: skip
        head += (
            f" Shown here: {len(shown)} of the {len(held)}; and {len(rest)} more, each shown "
            f"whole by {show}: "
            f"{first_few(names, HELD_NAMED)}."
        )
    looked: dict[str, ContextInfo | None] = {}
    return f"{head}\n\n" + "\n\n".join(
        _task_text(
            t,
            agent,
            options.command,
            tools,
            _shard_context(swarm, t, options.command, looked, tools),
        )
        for t in shown
    )


def _message_hint(m: Message, agent: str, options: HookOptions) -> str:
    q = shlex.quote
    shown = q(shown_name(m.id))  # (a forged id, not a name, on one line: no command shows it)
    return f"the whole message: {options.command} msg show {shown} --agent {q(agent)}"


def _message_line(m: Message, hint: str) -> str:
    """The line showing ``m``, its body and data each cut to ``BODY_CHARS``; its id, sender
    and kind as valid names, else quoted on one line (``shown_name``: an inbox entry's fields
    are anyone's who may write the inbox, and a line break in one forged the swarm's lines)."""
    where = "broadcast" if m.to == "*" else "to you"
    body = indented(clip(m.body, BODY_CHARS, hint))
    if m.data:
        data = clip(json.dumps(m.data, ensure_ascii=False), BODY_CHARS, hint)
        body += "\n  data: " + indented(data)
    sender = shown_name(m.sender) if m.sender else "someone"
    return f"- {shown_name(m.id)} from {sender} ({where}, {shown_name(m.kind)}): {body}"


def _fit(messages: Sequence[Message], agent: str, options: HookOptions, room: int) -> list[str]:
    """The lines of the first ``messages`` that fit ``room``, in order: each whole (but for
    a body over ``BODY_CHARS``) while it fits; the first one, when it does not, cut to the
    room (with at least ``MIN_MESSAGES_ROOM`` of it); later ones wait for a later turn."""
    lines: list[str] = []
    for m in messages:
        hint = _message_hint(m, agent, options)
        line = _message_line(m, hint)
        if client_len(line) > room:
            if lines or room < MIN_MESSAGES_ROOM:
                break
            line = clip(line, room, hint)
        lines.append(line)
        room -= client_len(line) + 1
    return lines


def _show_messages(
    swarm: Swarm,
    agent: str,
    options: HookOptions,
    *,
    direct_only: bool = False,
    budget: int = MESSAGES_BUDGET,
    unread: Sequence[Message] | None = None,
) -> str:
    """The unread messages that fit ``budget``, taken (read) as they are shown (see the
    module's docstring). With ``direct_only``, nothing is shown (or taken) unless a direct
    message is unread. ``unread``: the caller's peek at them, when it made one."""
    if unread is None:
        unread = swarm.inbox(agent, ack=False, limit=MESSAGES_LOOKED_AT)
    if direct_only and not any(m.to != "*" for m in unread):
        return ""
    q = shlex.quote
    more = f" (more: {options.command} msg inbox {q(agent)})"
    room = budget - client_len(f"Messages for {agent}{more}:") - 1
    count = len(_fit(unread, agent, options, room))
    if not count:
        return ""
    taken = swarm.inbox(agent, limit=count)
    lines = _fit(taken, agent, options, room)
    left = taken[len(lines) :]  # (only when another session took some first)
    if left:
        lines.append(
            f"- also yours, each shown whole by {options.command} msg show ID --agent "
            f"{q(agent)}: {', '.join(m.id for m in left)}"
        )
    if not lines:
        return ""
    return f"Messages for {agent}{more if taken.more else ''}:\n" + "\n".join(lines)


def _session_key(payload: Mapping[str, Any]) -> str:
    """The session's key in the agent's loop counts (its ``session_id``'s digest)."""
    session = payload.get("session_id")
    return _digest(session, 6) if isinstance(session, str) and session else NO_SESSION


def _loop_counts(metadata: Mapping[str, Any]) -> dict[str, int]:
    """Session key -> the tasks that session's Stop claimed in loop mode. (An older install
    kept one count for the agent, every session together: dropped.)"""
    counts = metadata.get(LOOP_CLAIMS)
    if not isinstance(counts, dict):
        return {}
    return {str(k): v for k, v in counts.items() if isinstance(v, int) and v >= 0}


def _hooks_profile(options: HookOptions, session: str) -> Callable[[Agent | None], dict[str, Any]]:
    """How the hooks of ``session`` (its session key) register the session's agent, built on
    its record as stored (the core's ``join`` calls it again if the record changed meanwhile:
    an MCP server of the session starting under the same id is never written over). An agent
    registered already keeps its model and the rest of its metadata (the loop counts too:
    ``tally`` changes them), the hooks' keys set beside them (``HOOKS_SESSION`` names this
    session), and its role when the session's MCP server registered it (under one id: the
    server's role is the session's); else the hooks' ``--role``."""

    def profile(existing: Agent | None) -> dict[str, Any]:
        metadata: dict[str, Any] = dict(existing.metadata or {}) if existing is not None else {}
        metadata |= {"hook": options.client, "queues": list(options.queues)}
        metadata[HOOKS_SESSION] = session
        if existing is None:
            return {"role": options.role, "metadata": metadata}
        by_server = metadata.get("via") == "mcp"
        if existing.left_at is not None and by_server:
            # Its MCP server closed (``left_at``), which registering forgets: its pid goes
            # too, so that no later hook takes a process that reused it for the server.
            metadata.pop(SERVER_PID, None)
        return {
            "role": existing.role if by_server else options.role,
            "model": existing.model,
            "specialization": existing.specialization,
            "capacity_tokens": existing.capacity_tokens,
            "parent": existing.parent,
            "metadata": metadata,
        }

    return profile


def _ensure_registered(
    swarm: Swarm,
    agent: str,
    options: HookOptions,
    payload: Mapping[str, Any],
    seen: list[Agent | None] | None = None,
) -> Agent:
    """Register ``agent`` for the session of ``payload`` with the hooks' keys
    (``_hooks_profile``); its record now. ``seen``: given the record it was built on (None:
    none), as the registration read it."""
    profile = _hooks_profile(options, _session_key(payload))
    if seen is None:
        return swarm.join(agent, profile)

    def watched(existing: Agent | None) -> dict[str, Any]:
        seen[:] = [existing]  # (the last read: ``join`` reads again when it changed)
        return profile(existing)

    return swarm.join(agent, watched)


def _shared_with(prior: Agent | None, payload: Mapping[str, Any]) -> str:
    """The warning for a session whose agent id another session that has not ended holds
    (two sessions under one SWARM_AGENT: each may be handed the other's task, read the other's
    messages): ``prior``, the record before this SessionStart, names another hooks session
    and no end of it (``left_at``: its SessionEnd marks it). "" when none; and at a ``clear``
    (the session it replaces may end just after)."""
    if prior is None or prior.left_at is not None or payload.get("source") == "clear":
        return ""
    named = (prior.metadata or {}).get(HOOKS_SESSION)
    if not isinstance(named, str) or named == _session_key(payload):
        return ""
    return (
        f"warning: agent {prior.id} is also another session's (hooks session {named}), which "
        "has not ended: sessions under one SWARM_AGENT share its inbox and its leases (one may "
        "be handed the other's task, or read its messages): give each session its own "
        "SWARM_AGENT, or end the other one (if it was killed without ending, ignore this)"
    )


def _registered(
    swarm: Swarm, agent: str, options: HookOptions, payload: Mapping[str, Any]
) -> Agent:
    """The agent's record, registered first when it was not (hooks installed mid-session)."""
    try:
        return swarm.get_agent(agent)
    except NotFound:
        return _ensure_registered(swarm, agent, options, payload)


def _claimable(swarm: Swarm, agent: str, options: HookOptions) -> str:
    """The tasks waiting in the session's queues, and the command that claims one; a queue no
    task was ever posted to is said so (the core's rule: a misspelt name finds nothing).
    Counted as the MCP channel counts the tasks waiting as its session starts: what has
    fallen due by now (a delayed task, a failed one past its backoff, a lease ended
    unreported) made claimable first (the core's ``reap_due``, what a claim does too), then
    the queues' pending counters."""
    if not options.queues:
        return ""
    with contextlib.suppress(ValidationError):  # (a name no queue has: nothing falls due)
        swarm.reap_due(options.queues)  # (what is due now is counted as pending)
    stats = swarm.queue_stats()  # (every queue ever posted to)
    counts = [f"{q}: {stats[q].get('pending', 0)} pending" for q in options.queues if q in stats]
    claim = f"{options.command} task claim {shlex.join(options.queues)} --worker " + shlex.quote(
        agent
    )
    line = f"Claimable: {'; '.join(counts) or 'nothing yet'} ({claim})."
    # (the hint that lists the queues, run as this session runs swarm commands)
    lists = LIST_PASSES.replace("swarm", options.command, 1)
    never = unknown_queues(options.queues, stats, lists)
    return line if never is None else f"{line} {never[0].upper()}{never[1:]}."


def session_start(
    swarm: Swarm, agent: str, options: HookOptions, payload: Mapping[str, Any]
) -> Answer:
    """Who the agent is, the tasks it holds, its unread messages and the claimable work, held
    to the options' token budget: the identity and the claimable line first, then the held
    tasks (cut to what is left), then as many messages as still fit (marked read)."""
    # --max-tasks is per session: a resumed or compacted one keeps its count, a new one
    # (another session_id, or this one started afresh: startup, clear) starts at 0
    seen: list[Agent | None] = []
    registered = _ensure_registered(swarm, agent, options, payload, seen)
    shared = _shared_with(seen[0] if seen else None, payload)
    if options.loop and payload.get("source") in NEW_SESSION_SOURCES:
        swarm.tally(agent, LOOP_CLAIMS, _session_key(payload), reset=True, keep=LOOP_SESSIONS_KEPT)
    queues = ", ".join(options.queues) or "none given"
    head = (
        f"You are agent {agent} in the swarm {swarm.settings.swarm} (role {options.role}; "
        f"queues: {queues}). Run swarm commands as `{options.command} ...`, with this id as "
        "--worker / --from (or SWARM_AGENT)."
    )
    claimable = _claimable(swarm, agent, options)
    # (6: the blank lines between parts)
    room = options.limit - client_len(head) - client_len(claimable) - 6
    parts = [head]
    held = held_tasks(swarm, agent, _session_key(payload))
    if held:
        tools = mcp_tools(registered)
        head = "You hold these tasks; carry on with them."
        tasks = _held_text(swarm, head, held, agent, options, tools)
        parts.append(clip(tasks, max(0, room), _task_hint(options.command, "ID")))
        room -= client_len(parts[-1]) + 2
    if room >= MIN_MESSAGES_ROOM:
        messages = _show_messages(swarm, agent, options, budget=min(MESSAGES_BUDGET, room))
        if messages:
            parts.append(messages)
    if claimable:
        parts.append(claimable)
    return Answer(context=clip("\n\n".join(parts), options.limit), message=shared)


def prompt_submit(
    swarm: Swarm, agent: str, options: HookOptions, payload: Mapping[str, Any]
) -> Answer:
    _registered(swarm, agent, options, payload)
    return Answer(context=_show_messages(swarm, agent, options, budget=options.limit - 100))


def stop(swarm: Swarm, agent: str, options: HookOptions, payload: Mapping[str, Any]) -> Answer:
    active = payload.get("stop_hook_active") is True
    existing = _registered(swarm, agent, options, payload)
    held = held_tasks(swarm, agent, _session_key(payload))
    if held and not active:
        head = (
            "You still hold a task you have not reported. Report it (or fail it) before you stop."
        )
        return _with_messages(
            swarm,
            agent,
            options,
            _held_text(swarm, head, held, agent, options, mcp_tools(existing)),
        )
    # The messages a refusal shows are read: the next stop refuses only for newer ones. A
    # broadcast alone does not refuse a stop (the session's next prompt, or its next start,
    # shows it); a refusal for other reasons shows the broadcasts too.
    messages = _show_messages(swarm, agent, options, direct_only=True, budget=options.limit - 100)
    if messages:
        return Answer(block=messages)
    if options.loop and options.queues and not held:
        answer = _next_task(swarm, agent, options, existing, _session_key(payload))
        # (a loop session has no prompt that would show a broadcast: its task brings them)
        return _with_messages(swarm, agent, options, answer.block) if answer.block else answer
    return Answer()


def _with_messages(swarm: Swarm, agent: str, options: HookOptions, block: str) -> Answer:
    """A refused stop (``block``: the tasks the session carries on with) with the unread
    messages, broadcasts too, that fit the room left (read as they are shown, as by
    UserPromptSubmit: a loop session has no prompt that would show them). ``block`` is cut
    to leave the messages room only when some are unread (a peek): with none, a task that
    fits the budget keeps its report and fail instructions whole."""
    hint = _task_hint(options.command, "ID")
    unread = swarm.inbox(agent, ack=False, limit=MESSAGES_LOOKED_AT)
    if not unread:
        return Answer(block=clip(block, options.limit, hint))
    block = clip(block, options.limit - MIN_MESSAGES_ROOM - 2, hint)
    room = options.limit - client_len(block) - 2
    messages = _show_messages(
        swarm, agent, options, budget=min(MESSAGES_BUDGET, room), unread=unread
    )
    return Answer(block=f"{block}\n\n{messages}" if messages else block)


def _next_task(
    swarm: Swarm, agent: str, options: HookOptions, existing: Agent | None, session: str
) -> Answer:
    """Loop mode: claim the session's next task (within --max-tasks, counted per session),
    its token kept on this machine before the session is handed it."""
    counts = _loop_counts(existing.metadata or {} if existing is not None else {})
    done = counts.get(session, 0)
    if options.max_tasks and done >= options.max_tasks:
        return Answer(
            message=f"{agent} took its {counted(done, 'task')} in this session (--max-tasks); "
            "stopping."
        )
    try:
        tokens.check_writable(swarm.settings)
    except OSError as exc:
        raise ConfigError(
            f"no task claimed: the lease tokens cannot be kept in {tokens.folder(swarm.settings)} "
            f"({exc}); give the hook a home it can write (--home or SWARM_HOME)"
        ) from None
    dead: list[TaskDeadLettered] = []
    try:
        with TaskDeadLettered.collected() as dead:
            task = swarm.claim(list(options.queues), worker=agent)
    except ConnectionFailed as exc:
        # Its reply lost (a server busy past the hook's socket timeout runs the claim when it
        # is free): its secrets are kept, so that the next hook finds the task it leased and
        # proves it this agent's (``held_tasks``), not left to wait out its lease. A claim
        # that surely never reached the server (``sent`` False) leased nothing: none kept.
        if exc.sent:
            with contextlib.suppress(OSError):
                tokens.keep_unanswered(swarm.settings, agent, exc.lease_secrets)
        then = (
            ", so the claim may still run: the next hook of this session picks up the task it "
            "leases (its lease secret is kept here)"
        )
        # (said here, what it dead-lettered too: ``handle`` says it as it is)
        failed = not_answered(exc, swarm.settings, then) or exc
        raise _phrased(_noted(failed, _said(dead))) from None
    except SwarmError as exc:  # (what it dead-lettered before it failed is said too)
        _noted(exc, _said(dead))
        raise
    # The tasks it met stored damaged and dead-lettered (``TaskDeadLettered``, the core's
    # words): the session is told, with the task it carries on with, or as it stops (or
    # in the error of a claim that failed after it).
    said = _said(dead)
    if task is None or not task.token:
        return Answer(message=said)
    try:
        tokens.remember(swarm.settings, agent, task.id, task.token)
    except OSError as exc:
        # not left leased to a session that is never told of it
        given_back = "released it back to its queue"
        try:
            swarm.release(task.id, task.token)
        except SwarmError as error:
            given_back = f"could not release it ({error}): it is retried when its lease ends"
        raise _noted(
            ConfigError(
                f"claimed {task.id} but could not keep its lease token in "
                f"{tokens.folder(swarm.settings)} ({exc}): {given_back}"
            ),
            said,
        ) from None
    swarm.tally(agent, LOOP_CLAIMS, session, keep=LOOP_SESSIONS_KEPT)
    tools = mcp_tools(existing)
    about = _shard_context(swarm, task, options.command, {}, tools)
    shown = "Next task for you.\n\n" + _task_text(task, agent, options.command, tools, about)
    return Answer(block=f"{said}\n\n{shown}" if said else shown)


def subagent_start(agent: str, payload: Mapping[str, Any], options: HookOptions) -> Answer:
    agent_id = payload.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id:
        return Answer()
    worker = subagent_for(agent, agent_id)
    return Answer(
        context=f"Your worker id in the swarm is {worker}: claim, report and fail tasks with "
        f"`{options.command} task ... --worker {shlex.quote(worker)}`. If you stop without "
        "reporting a task you claimed, your last message is reported as its finding."
    )


def subagent_stop(swarm: Swarm, agent: str, payload: Mapping[str, Any]) -> Answer:
    """Settle the tasks the stopped subagent left (``_settle_subagent``). Redis not reached
    for one of them (down, or paused past the hook's wait): its last message is kept on
    this machine (``tokens.spool_subagent``) and reported by the session's next hook
    (``_spooled``), so no subagent's work is lost to a blip."""
    agent_id = payload.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id:
        return Answer()
    worker = subagent_for(agent, agent_id)
    last = payload.get("last_assistant_message")
    text = last if isinstance(last, str) else ""
    try:
        said, unsettled, _ = _settle_subagent(swarm, agent, worker, text)
    except ConnectionFailed as exc:
        said, unsettled = f"subagent {worker}: {not_answered(exc, swarm.settings) or exc}", exc
    if unsettled is None:
        return Answer(message=said)
    try:
        kept = tokens.spool_subagent(swarm.settings, agent, worker, text)
    except OSError as error:
        raise _noted(unsettled, f"its last message could not be kept either ({error})") from None
    return Answer(
        message=f"{said}\nIts last message is kept in {kept}: this session's next hook "
        "reports it (settles its tasks) once Redis answers."
    )


def _settle_subagent(
    swarm: Swarm, parent: str, worker: str, text: str
) -> tuple[str, ConnectionFailed | None, bool]:
    """Report (or fail) the tasks subagent ``worker`` left, with the finding parsed from its
    last message ``text``: those it holds a lease on, and those whose lease ran out while
    their task is open (``_ended_leases``: a report with the kept token is taken then, and
    the finding is all that is left of the subagent's work). Returns what was done, the
    error of Redis not reached for a task (None: nothing left for want of Redis), and
    whether any task was settled. A message no finding holds whole is kept whole for the
    user (``_LastMessage``: ``parent``'s spool folder). Its record goes when nothing of it
    would be lost (``_leave_if_done``)."""
    note = _unreadable_tokens(swarm, worker)
    done: list[str] = []
    left = False  # a task left held (its token not known here)
    settled = False
    unreached: ConnectionFailed | None = None
    held = held_tasks(swarm, worker)
    ended = _ended_leases(swarm, worker, {task.id for task in held})
    from .._finding_text import parse_finding  # (here: no other event parses a finding)

    aside: list[str] = []  # the fields of the record the swarm sets that the finding gave
    found = any(t.token for t in held) or bool(ended)
    parsed = parse_finding(text, set_aside=aside) if found else None
    message = _LastMessage(swarm.settings, parent, worker, text)
    if parsed is not None and parsed[1] == "text" and message.cut:
        parsed = (message.noted(parsed[0]), parsed[1])
    work = [(task.id, task.token, False) for task in held]
    work += [(task_id, token, True) for task_id, token in ended]
    for task_id, token, late in work:
        if token is None:
            left = True
            done.append(f"{task_id} left to its lease (its token is not known on this machine)")
            continue
        if late and parsed is None:
            # (back in its queue, maybe leased to another worker: a fail with the ended
            # lease's token would take it from them, and there is no finding to report)
            done.append(f"{task_id} left to its queue (its lease ended; no finding to report)")
            continue
        try:
            if parsed is None:
                swarm.fail(task_id, token, "the subagent stopped without a finding")
                done.append(f"{task_id} failed (no finding)")
            else:
                said = _report_or_fail(swarm, task_id, token, parsed, message, aside)
                done.append(f"{said} (after its lease ended)" if late else said)
            settled = True
        except ConnectionFailed as exc:
            # (kept for a later hook by the caller: the agent stays, holding it meanwhile)
            left = True
            unreached = unreached or exc
            why = not_answered(exc, swarm.settings) or exc
            done.append(f"{task_id} not settled yet: {why}")
        except (Conflict, NotFound) as exc:
            # Settled elsewhere, or its lease ended and went to another worker (Conflict:
            # AlreadyCompleted, LeaseLost, InvalidState), or removed: no longer this
            # subagent's; the others it held are settled all the same. (Anything else, a
            # right refused, is the hook's error, as before.)
            done.append(f"{task_id} not settled here: {exc}")
    if not left:
        _leave_if_done(swarm, worker)
    said = f"subagent {worker}: " + "; ".join(done) if done else ""
    # For the user alone (``systemMessage``): no model acts on these tasks again. The
    # subagent is over, and its parent holds none of them (they are the subagent's worker
    # id's); Claude Code takes no context from a SubagentStop hook (Codex's schema allows
    # none), and a block would only make the stopped subagent carry on.
    return _joined(note, said), unreached, settled


def _ended_leases(swarm: Swarm, worker: str, held: set[str]) -> list[tuple[str, str]]:
    """(task id, token) of the tokens kept for ``worker`` whose lease is not held now (it
    ran out, and its task went back to its queue, or to another worker) while the task is
    open: the core takes the first report of an open task with any token it issued
    (``tokens.outlived``). A task not read (stored unreadable, gone) is left out."""
    kept = {
        task_id: token
        for task_id, token in tokens.known(swarm.settings, worker).items()
        if task_id not in held and tokens.is_task_id(task_id)
    }
    ids = list(kept)
    statuses: dict[str, TaskStatus | None] = {}
    for start in range(0, len(ids), MAX_PAGE):
        statuses |= swarm.task_statuses(ids[start : start + MAX_PAGE])
    return [
        (task_id, kept[task_id])
        for task_id in ids
        if statuses.get(task_id) is not None and not tokens.outlived(statuses[task_id])
    ]


def _spooled(swarm: Swarm, agent: str) -> str:
    """Settle what ``agent``'s subagents left that their SubagentStop could not report
    (``tokens.spooled``), oldest first, each file deleted once its tasks are settled (a task
    Redis is still not reached for keeps it, and the rest waits for the next hook); what was
    done, for the user. A message that settled no task (none of the subagent's is open
    with a token kept here, or each was refused) is set aside, kept for the user to read,
    and the line says which task and why."""
    said: list[str] = []
    for path, worker, text in tokens.spooled(swarm.settings, agent):
        try:
            done, unreached, settled = _settle_subagent(swarm, agent, worker, text)
        except ConnectionFailed:
            break  # (the hook's own work says that Redis is not reached)
        except SwarmError as exc:  # (a right refused, say: the file stays, and says so)
            said.append(f"subagent {worker}: its last message, kept in {path}, not settled: {exc}")
            continue
        if unreached is not None:
            break
        if not settled:
            said.append(_unsettled_spool(path, worker, done))
            continue
        with contextlib.suppress(OSError):
            path.unlink()
        said.append(f"{done} (its last message was kept: Redis did not answer as it stopped)")
    return "\n".join(said)


def _unsettled_spool(path: Path, worker: str, done: str) -> str:
    """What became of a subagent's kept message that settled no task (``done``: why, task
    by task; empty when no task of it was found): set aside, where no hook reads it again
    (it would say the same at every hook), for the user to report by hand."""
    try:
        kept = tokens.set_aside_spooled(path)
    except OSError as error:
        kept, why = path, f" (it could not be set aside: {error}; the next hook tries again)"
    else:
        why = ""
    reason = done or (
        f"subagent {worker}: no task of it is open with a token kept on this machine "
        "(settled another way, or claimed elsewhere)"
    )
    return (
        f"{reason}. Its last message settled no task; it is kept in {kept}{why}: read it "
        "for what the subagent found."
    )


class _LastMessage:
    """A stopped subagent's last message, kept whole on this machine when a finding holds
    only its start (``tokens.keep_message``, beside the spool: once, however many of the
    subagent's tasks it settles), so that none of its work is lost to a cut: its text past
    the finding's ``details`` limit (``DETAILS_LIMIT``), or a finding the core refuses."""

    def __init__(self, settings: Settings, parent: str, worker: str, text: str) -> None:
        from .._finding_text import DETAILS_LIMIT  # (here: no other event parses a finding)

        self.settings, self.parent, self.worker, self.text = settings, parent, worker, text
        self.cut = len(text.strip()) > DETAILS_LIMIT
        self.limit = DETAILS_LIMIT
        self._kept: Path | OSError | None = None

    def kept(self) -> Path | OSError:
        """Where the whole message is kept (kept now, the first time), or why it is not."""
        if self._kept is None:
            try:
                self._kept = tokens.keep_message(self.settings, self.parent, self.worker, self.text)
            except OSError as exc:
                self._kept = exc
        return self._kept

    def where(self) -> str:
        """What became of the whole message, for the line that says what was done."""
        kept = self.kept()
        size = f"{len(self.text):,} characters"
        if isinstance(kept, OSError):
            return f"its whole last message ({size}) could not be kept on this machine ({kept})"
        return f"its whole last message ({size}) is kept in {kept}"

    def noted(self, finding: dict[str, Any]) -> dict[str, Any]:
        """``finding`` naming where the whole message is kept (``last_message_kept_in``, with
        its host: the finding is read from other machines), when it is."""
        kept = self.kept()
        if isinstance(kept, OSError):
            return finding
        return {
            **finding,
            "last_message_kept_in": f"{socket.gethostname()}:{kept}",
            "last_message_chars": len(self.text),
        }

    def cut_finding(self, summary: str, why: str) -> dict[str, Any]:
        """The finding a refused one gives way to: its ``summary``, the start of the message
        as ``details`` (at most ``DETAILS_LIMIT`` bytes of UTF-8: a finding that fits any
        limit the core is likely given), why the whole was refused, and where it is kept."""
        head = self.text.encode("utf-8", "replace")[: self.limit].decode("utf-8", "ignore")
        if len(head) < len(self.text):
            head += f"\n\n[cut here: {self.where()}]"
        return self.noted({"summary": summary, "details": head, "finding_refused": why})


def _report_or_fail(
    swarm: Swarm,
    task_id: str,
    token: str,
    parsed: tuple[dict[str, Any], str],
    message: _LastMessage,
    aside: list[str],
) -> str:
    """Report a stopped subagent's task with the finding ``parsed`` from its last message,
    saying what became of it. A finding the core refuses (too big to store: a JSON object
    in the message over the finding limit; or any other refusal) gives way to one cut to
    fit (``_LastMessage.cut_finding``: its summary and the start of the message), the whole
    message kept on this machine, which the finding and the line name: no one is left to
    report it again, and ``swarm run``'s way (fail the task, to be retried) would throw
    the subagent's work away. Only a cut finding refused too fails the task, saying why
    and where the message is."""
    from .._finding_text import finding_refused, found_as, set_aside_note

    worker = message.worker
    noted = f"; {set_aside_note(aside)}" if aside else ""
    if parsed[1] == "text" and message.cut:
        noted += f"; {message.where()}"
    try:
        found = swarm.report(task_id, token, parsed[0], worker=worker)
    except ValidationError as exc:
        why = finding_refused(exc)
        try:
            found = swarm.report(
                task_id, token, message.cut_finding(parsed[0]["summary"], why), worker=worker
            )
        except ValidationError as again:
            swarm.fail(task_id, token, f"{why}; cut to fit, {finding_refused(again)}")
            return f"{task_id} failed ({why}; cut to fit, refused too); {message.where()}"
        return (
            f"{task_id} reported with its finding cut to fit ({why}): its summary and the "
            f"start of the message; {message.where()}{_overtaken(found)}"
        )
    return f"{task_id} reported: {found_as(parsed[1])}{noted}{_overtaken(found)}"


def _overtaken(found: Finding) -> str:
    """What a hook's line of a report adds when its lease had run out and another worker
    leased the task since (the core's words: its report is the task's all the same)."""
    said = found.overtaken_said()
    return "" if said is None else f"; {said}"


def pre_compact(swarm: Swarm, agent: str, payload: Mapping[str, Any]) -> Answer:
    renewed, unknown = [], []
    for task in held_tasks(swarm, agent, _session_key(payload)):
        if task.token is None:
            unknown.append(task.id)
            continue
        try:
            swarm.renew(task.id, task.token)
            renewed.append(task.id)
        except SwarmError:
            continue
    notes = [f"renewed the leases of {', '.join(renewed)}"] if renewed else []
    if unknown:
        notes.append(f"cannot renew {', '.join(unknown)}: their tokens are not known here")
    return Answer(message="; ".join(notes))


def session_end(swarm: Swarm, agent: str, payload: Mapping[str, Any]) -> Answer:
    """The session is over: its agent reads stale at once (``_ended_session`` says when it
    is left alone). A SessionStart or any sign of life makes it alive again. The record
    stays, an id the session made too: a resumed session (the same session id) takes it
    again and must find every message sent meanwhile (direct ones need a registered
    recipient, broadcasts its cursor); ``swarm agents sweep`` removes it once silent."""
    try:
        record = swarm.get_agent(agent)
    except NotFound:  # never registered here, or removed since: nothing says it is alive
        return Answer()
    session = _ended_session(record, _session_key(payload))
    if session is None:
        return Answer()
    # Swept since it was read (nothing says it is alive), or changing under many writers at
    # once: left to go stale as its signs of life stop, not an error shown at the session's end.
    with contextlib.suppress(NotFound, Conflict):
        swarm.mark_stale(agent, session=session)
    return Answer()


def _leave_if_done(swarm: Swarm, agent: str) -> bool:
    """Deregister ``agent``, a subagent's id (``AGENT.sub-HASH``: no client resumes a
    subagent, so no later hook takes it), once it stopped, when nothing of it would be lost:
    it holds no lease (of the tokens kept here, read by id, and among the swarm's newest
    leases: ``leases_of``), no message waits unread for it (a direct one, looked for by the
    core's ``deregister_if_read`` as it removes the agent, so that none sent meanwhile is
    lost; a broadcast too when its record has a broadcast cursor, as a registered one has: a
    worker its claims registered has none, and every broadcast since it appeared would read
    unread), it counts no loop claim, and no MCP server registered it
    (one given that id on purpose, ``swarm mcp --name``). Else it stays, stale, for ``swarm
    agents sweep`` (which removes a silent agent once it holds no lease). Never a session's
    id: a resume takes that again (``session_end``). Returns whether it was removed."""
    try:
        record = swarm.get_agent(agent)
    except NotFound:  # (never registered: a subagent that claimed nothing)
        return False
    metadata = record.metadata or {}
    if metadata.get("via") == "mcp" or any(_loop_counts(metadata).values()):
        return False
    judged = tokens.known(swarm.settings, agent)
    if len(judged) > MAX_PAGE:  # (more than one read: many leases, left to the sweep)
        return False
    page = swarm.leases_of(agent, list(judged))
    if page.items or page.corrupt:
        return False
    if not record.implicit:  # (a broadcast: not dropped by a deregistration, so a look will do)
        unread = swarm.inbox(agent, ack=False, limit=MESSAGES_LOOKED_AT)
        if unread.more or len(unread):
            return False
    # A direct message is looked for by the removal itself, in its script: one sent after a
    # look from here would be dropped with the inbox.
    try:
        if not swarm.deregister_if_read(agent):
            return False
    except NotFound:  # (swept meanwhile)
        pass
    with contextlib.suppress(OSError):  # (tokens of leases gone: a later read drops them)
        tokens.forget(swarm.settings, agent, judged, set())
    return True


# The events whose answers read the session's lease tokens (``held_tasks``): an unreadable
# file of them is found (and set aside) by the first of them, SubagentStop for its subagent's.
_READS_TOKENS = ("SessionStart", "Stop", "PreCompact")
# The events that first settle what the session's subagents left for want of Redis
# (``_spooled``): all that reach Redis but SessionEnd, which has 1.5 s in all.
_SETTLES_SPOOLED = ("SessionStart", "UserPromptSubmit", "Stop", "SubagentStop", "PreCompact")


def _unreadable_tokens(swarm: Swarm, worker: str) -> str:
    """The line that says ``worker``'s file of lease tokens here could not be read (another
    program wrote it: every read takes it for no tokens) and what to do; set aside first
    (``tokens.set_aside_unreadable``), so that it is said once and the next token kept does
    not write over it. "" when it reads (or is missing)."""
    try:
        aside = tokens.set_aside_unreadable(swarm.settings, worker)
    except OSError as exc:
        return (
            f"The lease tokens of {worker} in {tokens.folder(swarm.settings)} cannot be read "
            f"(the file holds no JSON object) nor set aside ({exc}): its tasks show no token "
            "here; move that file out of the folder"
        )
    if aside is None:
        return ""
    return (
        f"The lease tokens of {worker} on this machine could not be read (the file holds no "
        f"JSON object): it was moved to {aside}. Its tasks show no token here: take their "
        "tokens from that file if you can, else their leases run out and they are retried; "
        "then delete it."
    )


def handle(swarm: Swarm, event: str, payload: Mapping[str, Any], options: HookOptions) -> Answer:
    """The answer to canonical ``event`` (see ``formats.canonical_event``). A request the
    server took and did not answer in time fails it saying so (``reach.not_answered``), not
    that the server cannot be reached. An unreadable file of the session's lease tokens is
    said in the answer's message, or in the error's last line (``_unreadable_tokens``)."""
    agent = agent_for(payload, options)
    note = _unreadable_tokens(swarm, agent) if event in _READS_TOKENS else ""
    try:
        if event in _SETTLES_SPOOLED:
            note = _joined(note, _spooled(swarm, agent))
        answer = _answer(swarm, event, agent, payload, options)
    except ConnectionFailed as exc:
        said = exc if getattr(exc, _PHRASED, False) else not_answered(exc, swarm.settings)
        raise _noted(said or exc, note) from None
    except (SwarmError, ValueError) as exc:
        _noted(exc, note)
        raise
    return replace(answer, message=_joined(note, answer.message)) if note else answer


E = TypeVar("E", bound=Exception)

# Marks an error a step of a hook already said as a request the server took unanswered
# (``not_answered``, with what that means for the step): ``handle`` says it as it is.
_PHRASED = "redis_swarm_hook_phrased"


def _phrased(exc: ConnectionFailed) -> ConnectionFailed:
    setattr(exc, _PHRASED, True)
    return exc


def _said(dead: Sequence[TaskDeadLettered]) -> str:
    """What a claim dead-lettered (``TaskDeadLettered``, the core's words), a line each."""
    return "\n".join(str(d) for d in dead)


def _noted(exc: E, note: str) -> E:
    """``exc`` saying ``note`` on a line of its own after its message (when there is one)."""
    if note:
        exc.args = (f"{exc}\n{note}",)
    return exc


def _joined(*lines: str) -> str:
    return "\n".join(line for line in lines if line)


def _answer(
    swarm: Swarm, event: str, agent: str, payload: Mapping[str, Any], options: HookOptions
) -> Answer:
    if event == "SessionStart":
        return session_start(swarm, agent, options, payload)
    if event == "UserPromptSubmit":
        return prompt_submit(swarm, agent, options, payload)
    if event == "Stop":
        return stop(swarm, agent, options, payload)
    if event == "SubagentStart":
        return subagent_start(agent, payload, options)
    if event == "SubagentStop":
        return subagent_stop(swarm, agent, payload)
    if event == "PreCompact":
        return pre_compact(swarm, agent, payload)
    if event == "SessionEnd":
        return session_end(swarm, agent, payload)
    raise ValueError(f"unknown hook event {event!r}")
