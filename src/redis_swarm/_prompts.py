"""Init prompts for agents: copy-paste-ready instructions for one install.

``render_prompt`` writes the prompt of a role (``worker``, ``shard``, ``coordinator``) for an
agent that talks to the swarm through the CLI, the MCP server or the Python API, tailored to
its client (Claude Code, Codex, Gemini CLI, or any other). ``render_task_prompt`` writes the
prompt that ``swarm run`` gives an agent process for one claimed task, and
``repeats_finding_example`` tells a finding that is that prompt's own example (an agent that
printed its prompt back).

The prose lives in template files shipped with the package, ``prompts/*.md``: one file per
role (its title, introduction, and a section per interface), ``common.md`` (what every prompt
states about the install), ``clients.md`` (what differs between agent clients) and
``task.md``. A file is a run of sections, each opened by a ``<!-- section: NAME -->`` line;
placeholders are ``string.Template``'s ``$name``, filled here. Every template placeholder:

- every section: ``$sw`` (the ``swarm`` command with the options reaching this install),
  ``$queue`` / ``$queue_repr`` (the work queue, and as a Python literal), ``$client``;
- the role bodies: ``$header`` (title, introduction, where the swarm is), ``$cli_rules``,
  ``$connect`` (MCP or Python set-up), ``$finding`` (the finding format with an example),
  ``$spawn`` / ``$agent_command`` (how a shard gets workers, per client);
- ``task.md``: see ``render_task_prompt``.

A placeholder alone on its line whose value is empty takes its line with it. Every command a
CLI prompt tells an agent to run sits in a ```bash block, with the values the agent must fill
in written as ``<UPPER_CASE>`` placeholders; the test suite extracts those blocks, fills the
placeholders and runs them against a real server, so a prompt never tells an agent to run a
command that does not work.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import string
from collections.abc import Collection, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from ._config import Settings, handed_url
from ._context_records import ContextInfo
from ._executable import Password, reach_options
from ._executable import swarm_command as install_command
from ._finding_text import SUMMARY_LIMIT, normalize_finding
from ._keys import ASSIST_QUEUE
from ._mcp_names import GET_CONTEXT, READ_CONTEXT_LINES, SEARCH_CONTEXT
from ._models import SWARM_ROLES, SwarmRole, Task
from ._printable import short_version

if TYPE_CHECKING:
    from ._client import Swarm

__all__ = [
    "CLIENTS",
    "DEFAULT_QUEUE",
    "EXAMPLE_REPEATED",
    "FINDING_EXAMPLE",
    "ROLES",
    "VIAS",
    "answered_targets",
    "finding_rules",
    "no_context_note",
    "render_prompt",
    "render_question_prompt",
    "render_task_prompt",
    "repeats_finding_example",
    "swarm_command",
    "task_context_note",
]

Role = SwarmRole
Via = Literal["cli", "mcp", "python"]
Client = Literal["claude", "codex", "gemini", "generic"]

ROLES: tuple[str, ...] = SWARM_ROLES
VIAS: tuple[str, ...] = ("cli", "mcp", "python")
CLIENTS: tuple[str, ...] = ("claude", "codex", "gemini", "generic")
DEFAULT_QUEUE = "work"

FINDING_EXAMPLE: dict[str, Any] = {
    "summary": "One paragraph: what you found, in plain words.",
    "details": "The facts behind the summary, quoted or paraphrased, with numbers.",
    "sources": ["context lines 120-134", "context lines 2210-2214"],
    "confidence": 0.8,
}
# Why an answer that is its prompt's own example is refused (an agent that printed its
# prompt back: ``cat``, ``echo {prompt}``): the task prompt's finding, the pipeline's plan;
# and what to do (an answer printed after the echo is read only from between its tags).
EXAMPLE_REPEATED = (
    "the answer repeats the prompt's example (the agent printed its prompt back): have it "
    "print only its answer, or put a task's finding between the <finding-...> tags its "
    "prompt gives (read before any JSON in the output)"
)


def repeats_finding_example(finding: Mapping[str, Any]) -> str | None:
    """``EXAMPLE_REPEATED`` when ``finding``, as parsed from an agent's output
    (``parse_finding``), holds every field of the task prompt's example (``FINDING_EXAMPLE``)
    with the example's value; None otherwise. The example is fenced JSON in the prompt, so
    an agent that prints its prompt back would otherwise be stored as having found it."""
    example = normalize_finding(FINDING_EXAMPLE)
    same = all(finding.get(key) == value for key, value in example.items())
    return EXAMPLE_REPEATED if same else None


def __getattr__(name: str) -> Any:
    # MCP_TOOLS: the tools the MCP server exposes (``swarm mcp``), read from their @tool
    # markers on first use (it imports the MCP SDK); prompts for --via mcp name only these.
    if name == "MCP_TOOLS":
        from .mcp_server import TOOL_ROLES

        return tuple(TOOL_ROLES)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def swarm_command(settings: Settings, *, show_password: bool = False) -> str:
    """This install's ``swarm`` with the options that reach its swarm, for a copy-paste command.

    The executable is the one ``swarm mcp install`` and ``swarm hooks install`` write (its
    absolute path: an agent's shell may not have this install's bin/ on PATH). Options are
    spelled out (rather than exported variables) because many agent shells do not keep
    variables from one command to the next; they are those of the hooks (``reach_options``),
    the defaults given too (the agent's shell may name another swarm or home), but a URL that
    holds a password, left to SWARM_URL of the agent's environment unless ``show_password``
    (the prompt says it must be set: a password in a command would be in the agent's
    transcript and the process list), and a network server's ``--home`` (a prompt may be
    pasted on another machine).
    """
    password: Password = "show" if show_password else "leave-out"
    return shlex.join(
        [*install_command(), *reach_options(settings, password=password, same_machine=False)]
    )


# --- the templates

_SECTION = re.compile(r"^<!-- section: ([\w.-]+) -->\n", re.M)


@functools.cache
def _sections(file: str) -> dict[str, str]:
    """The sections of ``prompts/FILE.md`` by name (read once)."""
    text = (resources.files(__package__) / "prompts" / f"{file}.md").read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    return {name: body.strip("\n") for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def _fill(file: str, section: str, /, **values: object) -> str:
    """A section with its placeholders filled in. A placeholder alone on its line whose value
    is empty takes its line with it (and a blank line it would leave doubled)."""
    lines: list[str] = []
    pending_blank = False
    for line in _sections(file)[section].split("\n"):
        name = line[1:].strip("{}") if line.startswith("$") else None
        if name is not None and values.get(name) == "":
            pending_blank = bool(lines) and lines[-1] == ""
            continue
        if pending_blank and line == "":
            pending_blank = False
            continue
        pending_blank = False
        lines.append(line)
    return string.Template("\n".join(lines).strip("\n")).substitute(values)


def finding_rules(summary_limit: int = SUMMARY_LIMIT) -> str:
    """The finding format, as a prompt states it."""
    return _fill("common", "finding-rules", summary_limit=summary_limit)


def no_context_note(owner: str) -> str:
    """What a worker whose task's shard ``owner`` published no context is told (the task
    prompt's words, which the MCP worker tools repeat)."""
    return _fill("task", "no-context", owner=owner)


def task_context_note(
    owner: str, context: ContextInfo | None, sw: str = "swarm", *, mcp: bool = False
) -> str:
    """What an agent at work on a task of the shard ``owner`` is told of the shard's context
    (the task prompt's section, which the hooks repeat for a task they hand a session):
    ``context`` its ContextInfo (None: ``owner`` published none), searched and read by line
    ranges when it is text, else written to a file; ``sw`` the ``swarm`` command its commands
    run (``swarm run``'s agent finds this install's first on its PATH: plain ``swarm``).
    ``mcp``: a session whose own MCP server runs, told to read a text context with that
    server's tools (bytes still go to a file by the command)."""
    if context is None:
        return no_context_note(owner)
    facts = {
        "sw": sw,
        "owner": shlex.quote(owner),
        "size": f"{context.size_bytes:,}",
        "source": context.source,
        "version": context.version,
    }
    if not context.is_text:
        return _fill("task", "context-bytes", **facts, media_type=context.media_type)
    tokens = f"{context.tokens_est:,}"
    if not mcp:
        return _fill("task", "context", **facts, tokens=tokens)
    return _fill(
        "task", "context-mcp", **facts, tokens=tokens, owner_arg=json.dumps(owner),
        version_arg=json.dumps(context.version), search=SEARCH_CONTEXT, read=READ_CONTEXT_LINES,
        get=GET_CONTEXT,
    )  # fmt: skip


def context_bytes_note(info: ContextInfo) -> str:
    """What an agent is told of a context that is not text (``ContextInfo.is_text``): its
    media type, its size and how to write its bytes to a file (the question prompt's
    section ``context-bytes``, which the MCP tools repeat)."""
    return _fill(
        "question",
        "context-bytes",
        owner=info.owner,
        version=info.version,
        size=f"{info.size_bytes:,}",
        media_type=info.media_type,
        source=info.source,
    )


def _json_block(value: Any) -> str:
    return "```json\n" + json.dumps(value, indent=2, ensure_ascii=False) + "\n```"


def render_prompt(
    role: str,
    *,
    settings: Settings,
    queue: str | None = None,
    via: str = "cli",
    client: str = "generic",
    show_password: bool = False,
) -> str:
    """The init prompt of ``role`` for an agent using ``via`` from ``client``.

    ``settings`` says where the swarm is (a URL's password is masked, and its commands read
    the URL from SWARM_URL, unless ``show_password``); ``queue`` is the work queue the
    prompt uses (default ``work``).
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if via not in VIAS:
        raise ValueError(f"unknown interface {via!r}: use one of {', '.join(VIAS)}")
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}: use one of {', '.join(CLIENTS)}")
    from . import __version__

    queue = queue or DEFAULT_QUEUE
    url = handed_url(settings.render_url(mask=not show_password))
    from_env = settings.holds_secret and not show_password
    sw = swarm_command(settings, show_password=show_password)
    common: dict[str, object] = {
        "sw": sw,
        "queue": queue,
        "queue_repr": repr(queue),
        "client": client,
    }
    spawned = _fill("clients", f"spawned.{client}")
    header = _fill(
        "common",
        "header",
        title=_fill(role, "title"),
        intro=_fill(role, "intro", spawned=spawned + " " if spawned else "", **common),
        swarm=settings.swarm,
        url=url,
        version=__version__,
        password_note=(_fill("common", "password-note") if from_env else ""),
    )
    pieces: dict[str, object] = {
        "header": header,
        "cli_rules": _fill("common", "cli-rules"),
        "finding": _fill(
            "common",
            "finding",
            finding_rules=finding_rules(),
            finding_example=_json_block(FINDING_EXAMPLE),
        ),
        "spawn": _fill("clients", f"{'spawn-mcp' if via == 'mcp' else 'spawn'}.{client}", **common),
        "agent_command": _fill("clients", f"agent-command.{client}"),
    }
    if via == "mcp":
        pieces["connect"] = _mcp_setup(
            role, sw, client, "<SHARD_NAME>" if role == "shard" else None
        )
    elif via == "python":
        swarm_repr = repr(settings.swarm)
        connect = (
            f"Swarm.from_env(swarm={swarm_repr})  # the URL: SWARM_URL"
            if from_env
            else f"Swarm({url!r}, swarm={swarm_repr})"
        )
        pieces["connect"] = _fill("common", "connect-python", connect=connect)
    return _fill(role, via, **common, **pieces) + "\n"


def _mcp_setup(role: str, sw: str, client: str, name: str | None) -> str:
    from .mcp_server._install import CLIENTS as INSTALLABLE

    # A client `swarm mcp install` knows gets its own set-up; any other, the .mcp.json entry.
    target = client if client in INSTALLABLE else "json"
    named = f" --name {name}" if name else ""
    install = f"{sw} mcp install --client {target} --role {role}{named}"
    if target == "json":
        how = _fill("common", "mcp-config", install=install)
    else:
        how = _fill(
            "common", "mcp-install", install=install, file=_fill("clients", f"mcp-file.{client}")
        )
    return _fill("common", "connect-mcp", how=how, role=role)


def render_task_prompt(
    task: Task,
    *,
    settings: Settings,
    context: ContextInfo | None = None,
    summary_limit: int = SUMMARY_LIMIT,
    finding_tags: tuple[str, str] | None = None,
    answered: Collection[str] = (),
) -> str:
    """The prompt ``swarm run`` gives the agent process it starts for one claimed ``task``.

    ``context`` is the ContextInfo of the shard's context (``task.parent``), when there is one;
    one that is not text (``ContextInfo.is_text``) is to be written to a file, not searched
    (``task_context_note``: the hooks tell a session so of a task they hand it).
    The process's environment pins the swarm (SWARM_URL, SWARM_NAME and SWARM_HOME: the
    runner's ``task_env``) and its PATH finds this install's ``swarm`` first, so commands are
    plain ``swarm``.
    ``finding_tags`` are the lines the agent is asked to put its finding between (made for
    this run, see ``_finding_text``); without them it is asked for a fenced JSON block.
    ``answered`` are the targets of ``swarm ask`` something answers (``answered_targets``):
    the task's shard (``task.parent``), the peer-assist queue (``ASSIST_QUEUE``); the prompt
    offers ``swarm ask`` only of these, since a question nobody serves holds the agent (a
    paid run) for the whole of its timeout, to no answer.
    """
    owner = task.parent
    about = task_context_note(owner, context) if owner else ""
    if finding_tags is None:
        how_to_answer = _fill("task", "answer-fenced")
    else:
        how_to_answer = _fill("task", "answer-marked", start=finding_tags[0], end=finding_tags[1])
    has_data = task.data not in (None, {}, [], "")
    offers = {ASSIST_QUEUE: _fill("task", "ask-assist", assist=ASSIST_QUEUE)}
    if owner:
        offers = {owner: _fill("task", "ask-owner", owner=owner), **offers}
    asking = "\n\n".join(text for target, text in offers.items() if target in answered)
    return (
        _fill(
            "task",
            "prompt",
            swarm=settings.swarm,
            task_id=task.id,
            queue=task.queue,
            attempts=task.attempts,
            failures=task.failures,
            max_attempts=task.max_attempts,
            pass_line=_fill("task", "pass", pass_name=task.pass_name) if task.pass_name else "",
            description=task.description.strip(),
            data=_fill("task", "data", data_json=_json_block(task.data)) if has_data else "",
            context=about,
            asking=asking,
            finding_rules=finding_rules(summary_limit),
            how_to_answer=how_to_answer,
            finding_example=_json_block(FINDING_EXAMPLE),
        )
        + "\n"
    )


def answered_targets(swarm: Swarm, task: Task, queues: Collection[str]) -> frozenset[str]:
    """The targets of ``swarm ask`` something answers for an agent at work on ``task`` in a
    pool claiming ``queues`` (what ``render_task_prompt`` takes as ``answered``): the task's
    shard when something answers its ask queue (``_answers``), and the peer-assist queue
    when the pool claims it itself (no record says which other pools claim a queue: a slot
    registers no queues). Redis out of reach offers neither shard nor failure: the prompt
    is made all the same (the agent could not ask then either)."""
    out = {ASSIST_QUEUE} & set(queues)
    if task.parent and _answers(swarm, task.parent):
        out.add(task.parent)
    return frozenset(out)


def _answers(swarm: Swarm, owner: str) -> bool:
    """Whether something may answer ``swarm ask OWNER``: ``owner`` a live agent (a shard's
    session answers with ``next_question``; one round trip), else a live slot of a ``swarm
    serve OWNER`` (role ``answerer``, the owner its parent: ``agents``, a few more). A
    context owner that is no agent (a pipeline's) has neither."""
    from ._errors import NotFound, SwarmError
    from ._runner.serve import ANSWERER  # (the caller is the pool: already imported)

    try:
        if swarm.get_agent(owner).alive:
            return True
    except NotFound:
        pass
    except SwarmError:
        return False
    try:
        return bool(swarm.agents(alive=True, role=ANSWERER, parent=owner))
    except SwarmError:
        return False


def render_question_prompt(
    question: Task,
    *,
    settings: Settings,
    owner: str,
    context: ContextInfo | None = None,
    text: str | None = None,
    asker_task: Task | None = None,
    in_session: bool = False,
) -> str:
    """The prompt ``swarm serve`` gives the agent for one ``question`` asked of ``owner``:
    the question, who asks (and for which task), and the context: ``text`` (the context
    itself, when it fits the agent), how to read it (a context that is not text,
    ``ContextInfo.is_text``: how to write it to a file), or, ``in_session``, a reminder that the
    conversation has read it already."""
    qdata = question.data if isinstance(question.data, dict) else {}
    asker = qdata.get("asker")
    if asker_task is not None:
        who = _fill(
            "question", "asker-task", asker=asker or asker_task.worker or "a worker",
            task_id=asker_task.id, task_description=asker_task.description.strip(),
        )  # fmt: skip
    else:
        who = _fill("question", "asker", asker=asker) if asker else ""
    if context is None:
        about = _fill("question", "no-context", owner=owner)
    else:
        facts = {
            "owner": owner,
            "version": context.version,
            "tokens": f"{context.tokens_est:,}",
            "size": f"{context.size_bytes:,}",
            "source": context.source,
        }
        text_only = context.is_text
        if in_session:
            named = {"owner": owner, "version": context.version}
            reread = (
                _fill("question", "reread-text", **named)
                if text_only
                else _fill("question", "reread-bytes", **named, media_type=context.media_type)
            )
            about = _fill("question", "context-session", **named, reread=reread)
        elif text is not None:
            mark = short_version(context.version)
            about = _fill(
                "question", "context-inline", **facts, text=text.rstrip("\n"),
                begin=f"=== BEGIN CONTEXT {mark} ===", end=f"=== END CONTEXT {mark} ===",
            )  # fmt: skip
        elif text_only:
            about = _fill("question", "context-read", **facts)
        else:
            about = context_bytes_note(context)
    data = qdata.get("data")
    return (
        _fill(
            "question",
            "prompt",
            owner=owner,
            swarm=settings.swarm,
            question_id=question.id,
            attempts=question.attempts,
            failures=question.failures,
            max_attempts=question.max_attempts,
            asker=who,
            question=question.description.strip(),
            data=_fill("question", "data", data_json=_json_block(data)) if data else "",
            context=about,
        )
        + "\n"
    )
