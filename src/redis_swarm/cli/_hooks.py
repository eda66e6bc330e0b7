"""``swarm hook EVENT``: the command a Claude Code, Codex or Gemini CLI hook runs (docs/live.md).

It reads the client's hook JSON on stdin and answers in that client's format: JSON on stdout
and exit 0. It never exits 2 (which the clients read as "block"): a swarm it cannot reach, an
input it cannot read or a usage error (the root group turns click's 2 into 1 for ``hook``:
``_app.NO_USAGE_EXIT``) gives exit 1, which every client reports and goes on from.

A hook installed for a URL holding a password is written without the URL and with
``--url-from-env`` (the option ``swarm mcp install`` gives a server for the same reason):
with SWARM_URL unset in the session's environment it exits 1 saying so, rather than reach
the embedded swarm (or another one) in its place.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._budget import MIN_BUDGET_TOKENS, Budget
from .._client_files import USER_DIR_ENV
from .._config import Settings
from .._env import URL_FROM_ENV_OPTION, agent_from_env, require_url_in_env
from .._errors import SwarmError
from .._executable import swarm_command
from .._hooks import CLIENTS, HookOptions, agent_for, canonical_event, handle, render
from .._hooks.events import DEFAULT_HOOK_BUDGET_TOKENS, MAX_HOOK_BUDGET_TOKENS
from .._hooks.formats import EVENTS, client_event
from .._hooks.reach import hook_swarm
from .._mcp_names import AGENT_ROLES, agent_role
from .._validate import MAX_ROLE, check_name, check_queues
from ._app import App, main, pass_app

if TYPE_CHECKING:  # (`swarm hook` runs at every event: it imports only what it needs)
    from .._hooks import install as install_ops

# The most of a hook input read (held in memory, with a few copies as it is decoded and
# parsed: about five times this at most). A client's input is small but for a subagent's
# last message (SubagentStop), which a model's output limit holds to well under 1 MB (128k
# tokens of about 4 characters); a message of any size up to this is settled, cut to what a
# finding holds and kept whole beside it (``_hooks.events._LastMessage``). A bigger
# SubagentStop input is not read but kept whole, a chunk at a time, and the line says where
# (``_too_big``): it is never dropped without a word.
MAX_INPUT_BYTES = 16 * 1024 * 1024

BUDGET_HELP = (
    f"Most estimated tokens in the context an event adds ({MIN_BUDGET_TOKENS} to "
    f"{MAX_HOOK_BUDGET_TOKENS}, default {DEFAULT_HOOK_BUDGET_TOKENS}; the clients cut a hook's "
    "output at 10,000 characters)."
)


def _budget_of(tokens: int | None) -> Budget:
    """The hook's budget; out of range is a ValueError (``swarm hook`` turns it into exit 1,
    never click's usage exit 2, which a client would read as "block")."""
    if tokens is None:
        return Budget(DEFAULT_HOOK_BUDGET_TOKENS)
    if not MIN_BUDGET_TOKENS <= tokens <= MAX_HOOK_BUDGET_TOKENS:
        raise ValueError(
            f"--budget {tokens} is out of range: use {MIN_BUDGET_TOKENS} to "
            f"{MAX_HOOK_BUDGET_TOKENS} tokens"
        )
    return Budget(tokens)


# What the clients send: one JSON object, in UTF-8.
_SENT_AS = "the client sends each event as a JSON object in UTF-8 on stdin"


def _payload(raw: bytes) -> dict[str, Any]:
    """The hook input read from ``raw``; a ValueError saying in one line what is wrong with
    it (``swarm hook`` turns it into exit 1), never a codec error or a traceback."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"the hook input is not UTF-8 text (byte {raw[exc.start]:#04x} at offset "
            f"{exc.start}): {_SENT_AS}"
        ) from None
    try:
        payload = json.loads(text)
        # A string holding half of a UTF-16 pair (\ud800) decodes, yet is no text: found
        # here, where it is said, not where it is written or hashed.
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except json.JSONDecodeError as exc:
        raise ValueError(f"the hook input is not JSON ({exc}): {_SENT_AS}") from None
    except RecursionError:
        raise ValueError(
            f"the hook input is nested too deeply to read (arrays or objects within each "
            f"other, thousands deep): {_SENT_AS}"
        ) from None
    except UnicodeEncodeError as exc:
        half = exc.object[exc.start : exc.end].encode("unicode_escape").decode()
        raise ValueError(
            f"the hook input holds {half}, half of a UTF-16 surrogate pair, which is no "
            f"character: {_SENT_AS}"
        ) from None
    if not isinstance(payload, dict):
        raise ValueError(f"the hook input is not a JSON object: {_SENT_AS}")
    return payload


def _too_big(head: bytes, event: str, settings: Settings) -> str:
    """Why an input over ``MAX_INPUT_BYTES`` (``head``: its first bytes read) is not read.
    A SubagentStop's holds a subagent's last message, its work: the input is kept whole
    first (``tokens.keep_input``: the rest of stdin copied a chunk at a time, never held),
    and the line says where, and what is left to do by hand."""
    limit = f"the hook input is over {MAX_INPUT_BYTES // 2**20} MiB, more than it reads"
    if event != "SubagentStop":
        return (
            f"{limit}: no client sends an event this big, so nothing was done; check what "
            "runs `swarm hook` with this input"
        )
    from .. import _lease_tokens as tokens

    try:
        kept = tokens.keep_input(settings, event, head, sys.stdin.buffer)
    except OSError as exc:
        where = f"it could not be kept either ({exc})"
    else:
        if kept is None:
            return f"{limit}, and it is no JSON object: nothing was kept or done"
        path, cut = kept
        most = f"its first {tokens.MAX_KEPT_INPUT // 2**20} MiB" if cut else "whole"
        where = f"it is kept {most} in {path}"
    return (
        f"{limit}: {where}. Its subagent's tasks stay claimed until their leases end, then "
        "are retried: to keep its work (the input's last_assistant_message), report each by "
        "hand: `swarm task report ID --worker WORKER --summary ...`, WORKER being the "
        "subagent's id as `swarm agents` lists it (AGENT.sub-...)"
    )


# The roles the session's MCP server takes (`swarm mcp --role`): the hooks and the server are
# one session, under one id. `hooks install` writes only those; `swarm hook` runs the entries
# already written, so it takes any role the core registers (an older install's `--role
# reviewer` keeps working), saying on stderr that the server takes none such.
_ROLE_HELP = "The session's swarm role, as its `swarm mcp --role` ('all' registers as 'agent')"
_role_choice = click.option(
    "--role",
    type=click.Choice(AGENT_ROLES),
    default="worker",
    show_default=True,
    help=f"{_ROLE_HELP}.",
)
_any_role = click.option(
    "--role",
    default="worker",
    show_default=True,
    help=f"{_ROLE_HELP}; another role name is taken, with a warning on stderr.",
)


def _checked_role(role: str) -> str:
    """``role`` if the core would register an agent under it (``agent_role`` of it: `all`
    registers as `agent`), else a ValidationError naming --role (exit 1), refused before the
    hook says anything of the role (``_warn_of_role``) or reads its input."""
    check_name("--role", agent_role(role), max_len=MAX_ROLE)
    return role


def _warn_of_role(event: str, role: str) -> None:
    """A valid role name `swarm mcp --role` does not take: the hook goes on with it, saying
    so (once everything else it was given has been checked: a refusal is the only line)."""
    if role not in AGENT_ROLES:
        click.echo(
            f"swarm hook {event}: --role {role!r} is not one of `swarm mcp --role`'s "
            f"({', '.join(AGENT_ROLES)}): the session registers as {role!r}, and its MCP "
            "server, if it has one, cannot take that role",
            err=True,
        )


def _events_help() -> str:
    """The events `swarm hook` answers, from the one table of them (``formats``), with the
    names a client gives them otherwise (Gemini CLI's)."""
    names = ", ".join(EVENTS)
    for client in CLIENTS:
        its = [n for n in (client_event(e, client) for e in EVENTS) if n is not None]
        if any(n not in EVENTS for n in its):
            names += f"; {client}: {', '.join(its)}"
    return names


HOOK_HELP = (
    f"Read the hook input of EVENT ({_events_help()}) on stdin and answer it. The agent is "
    "SWARM_AGENT, else derived from the input's session_id. Every error, a usage error too, "
    'exits 1 (never 2, which the clients read as "block").'
)


def _max_tasks_needs_loop(loop: bool) -> None:
    """--max-tasks without --loop would count nothing: refused (a ValueError, which `swarm
    hook` turns into exit 1; click's UsageError, exit 2, for `swarm hooks install`)."""
    source = click.get_current_context().get_parameter_source("max_tasks")
    if not loop and source == click.core.ParameterSource.COMMANDLINE:
        raise ValueError("--max-tasks is for --loop: add --loop, or leave --max-tasks out")


@main.command(short_help="Answer a Claude Code / Codex / Gemini CLI hook event.", help=HOOK_HELP)
@click.argument("event")
@click.option("--client", default="claude", show_default=True, help="claude, codex or gemini.")
@_any_role
@click.option("--queue", "queues", multiple=True, help="A queue the session works (repeatable).")
@click.option("--loop", is_flag=True, help="Stop hands the session its next task.")
@click.option(
    "--max-tasks", type=int, default=0, help="With --loop: at most N tasks a session (0: any)."
)
@click.option("--budget", type=int, default=None, help=BUDGET_HELP)
@click.option(
    URL_FROM_ENV_OPTION,
    "url_from_env",
    is_flag=True,
    help="Exit 1 unless SWARM_URL is set (how `swarm hooks install` writes a hook whose URL "
    "holds a password: the session's environment gives it).",
)
@pass_app
def hook(
    app: App, event: str, client: str, role: str, queues: tuple[str, ...], loop: bool,
    max_tasks: int, budget: int | None, url_from_env: bool,
) -> None:  # fmt: skip
    """Answer one hook event (its help: ``HOOK_HELP``, the events named from ``formats``)."""
    given: Settings | None = None  # (the URL's, once read: errors name it, not the hook's)
    try:
        if url_from_env:  # (first: nothing below may reach another swarm)
            require_url_in_env("the hook", "swarm hooks install")
        if client not in CLIENTS:
            raise ValueError(f"unknown client {client!r}: use one of {', '.join(CLIENTS)}")
        name = canonical_event(event, client)
        if max_tasks < 0:  # (checked here, not by click: a usage error exits 2, see below)
            raise ValueError(f"--max-tasks {max_tasks}: give 0 (no limit) or more")
        _max_tasks_needs_loop(loop)
        if queues:
            queues = check_queues(queues, what="--queue")
        role = _checked_role(role)
        tokens = _budget_of(budget)
        raw = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        if len(raw) > MAX_INPUT_BYTES:
            raise ValueError(_too_big(raw, name, app.settings))
        if not raw.strip():
            raise ValueError(
                "the hook got no input: the agent's CLI (Claude Code, Codex, Gemini CLI) runs it "
                "with the event as a JSON object on stdin; to try it by hand, pipe one in"
            )
        payload = _payload(raw)
        options = HookOptions(
            client=client, role=agent_role(role), queues=queues, loop=loop, max_tasks=max_tasks,
            agent=agent_from_env(), budget=tokens,
            command=shlex.join([*swarm_command(), *app.reach()]),
        )  # fmt: skip
        given = app.settings
        agent_for(payload, options)  # (an input with no agent id is refused first, too)
        _warn_of_role(event, role)  # (all it was given is checked: the warning is true)
        with hook_swarm(given, name) as swarm:  # (fails fast: _hooks.reach)
            answer = handle(swarm, name, payload, options)
    except (ValueError, SwarmError) as exc:
        # exit 1: the clients show it and carry on (exit 2 would block the session)
        click.echo(f"swarm hook {event}: {exc}", err=True)
        sys.exit(1)
    click.echo(render(answer, name, client))


@main.group(short_help="Install `swarm hook` into Claude Code, Codex or Gemini CLI.")
def hooks() -> None:
    """Install `swarm hook` into Claude Code, Codex or Gemini CLI (docs/live.md)."""


@hooks.command()
@click.option("--client", type=click.Choice(CLIENTS), required=True)
@_role_choice
@click.option("--queue", "queues", multiple=True, help="A queue the sessions work (repeatable).")
@click.option("--loop", is_flag=True, help="Stop hands the session its next task.")
@click.option(
    "--max-tasks",
    type=click.IntRange(0),
    default=0,
    help="With --loop: at most N tasks a session (0: any).",
)
@click.option(
    "--scope",
    type=click.Choice(["project", "user", "local"]),
    default="project",
    show_default=True,
    help="The project's settings file, or the user's (in ~/, or where "
    f"{', '.join(USER_DIR_ENV.values())} moves it, as the client finds it), or (claude "
    "alone) the project's .claude/settings.local.json.",
)
@click.option("--write", is_flag=True, help="Merge the entries into the settings file.")
@click.option("--remove", is_flag=True, help="Take out what an install added.")
@click.option(
    "--budget", type=click.IntRange(MIN_BUDGET_TOKENS, MAX_HOOK_BUDGET_TOKENS), help=BUDGET_HELP
)
@pass_app
def install(
    app: App, client: str, role: str, queues: tuple[str, ...], loop: bool, max_tasks: int,
    scope: str, write: bool, remove: bool, budget: int | None,
) -> None:  # fmt: skip
    """Print (or --write, or --remove) the hook entries that make CLIENT run `swarm hook` at
    each event: .claude/settings.json, .codex/hooks.json or .gemini/settings.json (with
    --scope user, the ones in your home, or where the client's variable moves them). Other
    hooks in the file are kept; installing twice changes nothing, installing with other
    options says what it replaced, and hooks of ours the client also runs from the other
    scope are warned of (each event would be answered twice). A Gemini CLI settings file
    with comments is never rewritten: printed for it are only the entries to add by hand."""
    if write and remove:
        raise click.UsageError("--write and --remove: choose one")
    from .._hooks import install as install_ops

    if scope == "local" and client != "claude":  # (refused before any other work)
        raise click.UsageError(install_ops.LOCAL_SCOPE_CLAUDES)
    try:
        _max_tasks_needs_loop(loop)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if queues:  # refused here, not by every event of every session
        queues = check_queues(queues, what="--queue")
    base = swarm_command()
    command = [*base, *app.reach()]
    options = ["--role", role, *[a for q in queues for a in ("--queue", q)]]
    if app.settings.holds_secret:
        options.append(URL_FROM_ENV_OPTION)
        click.echo(
            "the URL holds a password, which the entries leave out (settings files are often "
            "shared): each hook reads SWARM_URL from the session's environment and, with it "
            f"unset, exits 1 saying so ({URL_FROM_ENV_OPTION}): set SWARM_URL in the shell "
            "that starts the client",
            err=True,
        )
    if loop:
        options += ["--loop", *(["--max-tasks", str(max_tasks)] if max_tasks else [])]
    if budget is not None:
        options += ["--budget", str(budget)]
    ours = install_ops.entries(client, command, options)
    path = install_ops.settings_path(client, scope)
    prefix = shlex.join(base)
    if write or remove:
        done = install_ops.apply(path, ours, remove=remove)
        _warn_of_elsewhere(client, scope, prefix, removed=remove)
        if not done.changed:
            click.echo(f"{path}: nothing to change", err=True)
        elif remove:
            click.echo(f"removed from {path}", err=True)
        elif done.previous is not None:
            said = install_ops.replaced_words(done.previous, ours)
            click.echo(f"replaced the `swarm hook` entries in {path}: {said}", err=True)
        else:
            click.echo(f"written to {path}", err=True)
        return
    shown = install_ops.printed(path, ours)
    _warn_of_elsewhere(client, scope, prefix, removed=False)
    click.echo(f"# {client}: {install_ops.printed_words(path, shown)}", err=True)
    click.echo(json.dumps(shown.settings, indent=2))


def _warn_of_elsewhere(client: str, scope: str, prefix: str, *, removed: bool) -> None:
    """Warn of our hooks in another file the client reads (it runs every set it finds: each
    event answered twice), with the command that takes them out."""
    from .._hooks import install as install_ops

    for found in install_ops.elsewhere(client, scope):
        removal = _removal_command(client, found, prefix)
        words = install_ops.elsewhere_words(found, removal, removed=removed)
        click.echo(f"warning: {install_ops.held_words(found)}", err=True)
        click.echo(f"warning: {words}", err=True)


def _removal_command(client: str, found: install_ops.Elsewhere, prefix: str) -> str:
    """How ``found`` is taken out: the `swarm hooks install` that does it, spelled from the
    command's own options and run by ``prefix``, this install's executable (the one the
    user just ran; any `swarm` recognises the entries: ``install_ops.is_swarm_hook``), run
    in the folder of a project's file that is not this one's; for a file no install edits
    (Codex's config.toml), by hand."""
    if found.by_hand:
        return "by hand (its `[[hooks.EVENT]]` tables that run `swarm ... hook`)"
    words = shlex.join([hooks.name or "hooks", install.name or "install", _option("client"),
                        client, _option("scope"), found.scope, _option("remove")])  # fmt: skip
    words = f"{prefix} {words}"
    folder = found.path.parent.parent
    if found.scope != "user" and folder.resolve() != Path.cwd().resolve():
        return f"cd {shlex.quote(str(folder))} && {words}"
    return words


def _option(name: str) -> str:
    """The option of `swarm hooks install` whose parameter is ``name``."""
    return next(p for p in install.params if p.name == name).opts[0]
