"""``swarm mcp``: serve the swarm as MCP tools; ``swarm mcp install``: configure a client."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from .._budget import DEFAULT_BUDGET_TOKENS, MIN_BUDGET_TOKENS
from .._client_files import read_settings
from .._codec import dumps
from .._config import handed_url
from .._env import ENV_AGENT, ENV_URL, URL_FROM_ENV_OPTION, agent_from_env, require_url_in_env
from .._errors import ConfigError, SwarmError
from .._mcp_names import AGENT_ROLES, EVERY_TOOL_ROLE
from .._net import http_url, loopback_only
from .._validate import check_agent, check_queues
from ..mcp_server import DEFAULT_MAX_SESSIONS
from ..mcp_server._codex_toml import merge_toml, toml_table
from ..mcp_server._install import (
    CLIENTS,
    HTTP_PATH,
    Client,
    Elsewhere,
    LaunchSpec,
    RemoteSpec,
    claude_command,
    claude_entry,
    claude_state_problem,
    codex_toml,
    elsewhere,
    elsewhere_words,
    env_reference,
    gemini_settings,
    gemini_untrusted_words,
    launch_spec,
    mcp_json,
    merge_json,
    remote_spec,
    replaced_record,
    replaced_words,
    shell_line,
    target_path,
)
from ._app import App, json_option, main, pass_app, usage_failure
from ._common import listen_options

# The variable the serving face reads its token from, and that clients configured with
# `swarm mcp install --http` read it from by default.
_TOKEN_ENV = "SWARM_MCP_TOKEN"

_role_option = click.option(
    "--role",
    type=click.Choice(AGENT_ROLES),
    default=EVERY_TOOL_ROLE,
    show_default=True,
    help="Offer only this role's tools and prompts; sessions register with this role.",
)
_budget_option = click.option(
    "--budget",
    type=click.IntRange(min=MIN_BUDGET_TOKENS),
    default=None,
    help=f"Most estimated tokens in one tool result (default {DEFAULT_BUDGET_TOKENS}; "
    "Claude Code warns above 10,000).",
)


@main.group("mcp", invoke_without_command=True, short_help="Serve the swarm as MCP tools.")
@_role_option
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="stdio",
    show_default=True,
    help="stdio for a client that starts the server; http (streamable HTTP) to share one.",
)
@listen_options(
    port=8765,
    token_env=_TOKEN_ENV,
    token_help="The bearer token every request must carry; required off loopback, generated "
    "and printed once if not given",
    only="HTTP: ",
)
@_budget_option
@click.option(
    "--name",
    "agent_name",
    default=None,
    help="Fixed agent id of the session (a shard whose context must keep its owner; the "
    "same id as the session's hooks). It stays registered when the client closes, its inbox "
    "kept for the next start (default on stdio: SWARM_AGENT; else an id made per session, "
    "which leaves).",
)
@click.option("--model", default=None, help="The model behind the client, kept with findings.")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The directory publish_context(path=...) may read files under (default: the "
    "current directory).",
)
@click.option(
    "--allow-paths/--no-paths",
    default=None,
    help="Let publish_context read files (default: yes on stdio, no on http).",
)
@click.option(
    "--channel",
    is_flag=True,
    help="Be a Claude Code channel: push messages, broadcasts, synthesis requests (and, with "
    "--watch-queue, claimable tasks) into the session (stdio; docs/live.md).",
)
@click.option(
    "--watch-queue",
    "watch_queues",
    multiple=True,
    metavar="QUEUE",
    help="With --channel: also push the claimable tasks of this queue (repeatable).",
)
@click.option(
    "--max-sessions",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_SESSIONS,
    show_default=True,
    help="HTTP: most client sessions served at once (each one an agent); one more closes the "
    "session unused the longest among those idle for minutes that hold no lease, and is "
    "refused only when there is none.",
)
@click.option(
    URL_FROM_ENV_OPTION,
    "url_from_env",
    is_flag=True,
    help="Refuse to start unless SWARM_URL is set (how `swarm mcp install` launches a server "
    "whose URL holds a password: the client passes it on from its own environment).",
)
@click.pass_context
def mcp_command(
    ctx: click.Context,
    role: str,
    transport: str,
    host: str,
    port: int,
    budget: int | None,
    agent_name: str | None,
    model: str | None,
    root: Path | None,
    allow_paths: bool | None,
    token: str | None,
    channel: bool,
    watch_queues: tuple[str, ...],
    max_sessions: int,
    url_from_env: bool,
) -> None:
    """Serve the swarm as Model Context Protocol tools (stdio unless --transport http).

    Set it up in a client with `swarm mcp install --client claude|codex|gemini|json`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..mcp_server._server import (  # the SDK: imported only to serve
        build_server,
        refuse_held_name,
        serve,
    )

    app = ctx.ensure_object(App)
    if url_from_env:
        require_url_in_env("the MCP server", "swarm mcp install")
    _check_watched(watch_queues, channel)
    _check_partners(ctx, {"max_sessions": ("--transport http", transport == "http")})
    if channel and transport != "stdio":
        raise click.UsageError("--channel is for stdio: Claude Code starts a channel server")
    # (a bad --token is a bad option, exit 2, as a bad --host is: so `swarm a2a` and `swarm
    # dashboard` have it too)
    try:
        token = _http_token(transport, host, token)
    except ConfigError as exc:
        usage_failure(exc)
    if agent_name is not None:
        _check_agent_name("--name", agent_name)
    elif transport == "stdio":  # (over HTTP it would name every client)
        agent_name = agent_from_env()  # the id the session's hooks use too
        if agent_name is not None:
            _check_agent_name(ENV_AGENT, agent_name)
    # Reach Redis before serving: a client that starts this server (claude mcp list, an
    # agent's start) then shows it failed, with this error, instead of connected tools that
    # all fail.
    app.swarm.ping()
    if agent_name is not None:  # (a live agent of another role served under it: not taken)
        refuse_held_name(app.swarm, agent_name, role)
    server = build_server(
        app.swarm,
        role=role,
        budget_tokens=budget or DEFAULT_BUDGET_TOKENS,
        name=agent_name,
        model=model,
        transport="http" if transport == "http" else "stdio",
        root=root,
        allow_paths=allow_paths,
        log_level="DEBUG" if app.debug else "INFO",
        channel=watch_queues if channel else None,
        keep_tokens=transport == "stdio",  # for the hooks of the same agent, on this machine
        max_sessions=max_sessions,
    )
    if transport != "http":
        serve(server, "stdio")
        return
    from .._net import announced_host, every_interface, listen  # (the web faces': not stdio's)

    # Listening before the URL is announced: --port 0 names the port picked, and the port
    # stays this server's.
    with listen(host, port) as listening:
        guard = "" if token is None else " (send 'Authorization: Bearer TOKEN')"
        url = http_url(announced_host(host)[0], listening.port, HTTP_PATH)
        where = every_interface(host).removesuffix("; ")
        click.echo(f"serving MCP on {url}{guard}" + (f" ({where})" if where else ""), err=True)
        serve(server, "http", host=host, port=listening.port, token=token, listening=listening)


def _check_agent_name(source: str, name: str) -> None:
    """Refuse before serving an agent id the core would refuse at every tool call (which
    reads as the model's mistake): a usage error naming where it came from."""
    try:
        check_agent(source, name)
    except SwarmError as exc:
        usage_failure(exc)


def _check_partners(ctx: click.Context, partners: dict[str, tuple[str, bool]]) -> None:
    """Refuse an option given on the command line without the one it works with (it would do
    nothing): ``partners`` maps a parameter's name to (what it needs, whether that is
    there)."""
    for name, (needs, present) in partners.items():
        if not present and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            option = next(p for p in ctx.command.params if p.name == name)
            raise click.UsageError(f"{option.opts[0]} is for {needs}: add {needs}, or leave it out")


def _check_watched(watch_queues: tuple[str, ...], channel: bool) -> None:
    """--watch-queue: for --channel, queue names the core takes, as many as one check
    reads (the channel checks its queues for tasks falling due)."""
    if watch_queues and not channel:
        raise click.UsageError("--watch-queue is for --channel")
    if watch_queues:
        check_queues(watch_queues, what="--watch-queue")


def _http_token(transport: str, host: str, token: str | None) -> str | None:
    """The bearer token the HTTP server requires: the one given, or off loopback a new one
    (printed once, to stderr); None serves loopback without one."""
    if token is not None and not token.strip():
        raise ConfigError(
            "--token (or SWARM_MCP_TOKEN) is empty: pass a secret, or leave it out to have "
            "one generated"
        )
    if transport != "http":
        source = click.get_current_context().get_parameter_source("token")
        if token is not None and source == click.core.ParameterSource.COMMANDLINE:
            raise ConfigError("--token is for --transport http: stdio needs none")
        return None
    from .._net import shown_host
    from .._web import new_token, require_strong_token  # (the web faces' rules; not --help)

    # (an empty --host is refused as it is parsed: listen_options)
    require_strong_token(host, token, env=_TOKEN_ENV)
    if token is None and not loopback_only(host):
        token = new_token()
        click.echo(
            f"--host {shown_host(host)} is reachable from other machines: clients must send "
            f"'Authorization: Bearer {token}' (set {_TOKEN_ENV}={token} for "
            f"`{_install_remote_usage()}`, or pass --token to choose it)",
            err=True,
        )
    return token


def _install_remote_usage() -> str:
    """How `swarm mcp install` is pointed at a running server, spelled from the install
    command's own option so that the advice cannot name an option it does not have."""
    option = next(p for p in install.params if p.name == "http_url")
    return f"swarm {mcp_command.name} {install.name} {option.opts[0]} {option.metavar}"


@mcp_command.command()
@click.option("--client", "client", type=click.Choice(CLIENTS), required=True)
@click.option("--write", is_flag=True, help="Apply it (run `claude mcp add`, or edit the file).")
@click.option(
    "--remove", is_flag=True, help="Take the server back out (`claude mcp remove`, or the file)."
)
@_role_option
@_budget_option
@click.option("--server-name", default="swarm", show_default=True, help="Name in the client.")
@click.option("--name", "agent_name", default=None, help="Fixed agent id (see `swarm mcp`).")
@click.option(
    "--scope",
    type=click.Choice(["local", "user", "project"]),
    default=None,
    help="claude: local, user (default) or project; gemini: project (default) or user.",
)
@click.option(
    "--http",
    "http_url",
    default=None,
    metavar="URL",
    help="Reach a server already on --transport http at URL (e.g. http://host:8765/mcp) "
    "instead of starting one.",
)
@click.option(
    "--token-env",
    default=_TOKEN_ENV,
    show_default=True,
    help="With --http: the environment variable that holds the server's bearer token.",
)
@click.option("--no-token", is_flag=True, help="With --http: the server needs no token.")
@click.option(
    "--channel", is_flag=True, help="Launch it as a Claude Code channel (see `swarm mcp`)."
)
@click.option("--watch-queue", "watch_queues", multiple=True, metavar="QUEUE",
              help="With --channel: push this queue's claimable tasks too.")  # fmt: skip
@click.option(
    "--url-in-config",
    is_flag=True,
    help="Write a URL that holds a password into the client's configuration (a user's file, "
    "made 0600) instead of having the client pass on SWARM_URL from its environment.",
)
@click.option(
    "--show-secrets",
    is_flag=True,
    help="With --url-in-config: print the password (masked as *** unless given).",
)
@click.option(
    "--token-in-config",
    is_flag=True,
    help="With --http and --client claude: write the token itself (from the --token-env "
    "variable) into Claude Code's user or local scope, instead of the ${VAR} reference Claude "
    "Code expands from its environment as it connects.",
)
@json_option
@pass_app
def install(
    app: App,
    client: Client,
    write: bool,
    remove: bool,
    role: str,
    budget: int | None,
    server_name: str,
    agent_name: str | None,
    scope: str | None,
    http_url: str | None,
    token_env: str,
    no_token: bool,
    channel: bool,
    watch_queues: tuple[str, ...],
    url_in_config: bool,
    show_secrets: bool,
    token_in_config: bool,
) -> None:
    """Print (or --write) the configuration that makes CLIENT start this server (or, with
    --http, reach one serving HTTP).

    claude: the `claude mcp add` command; codex: the ~/.codex/config.toml table; gemini:
    .gemini/settings.json; json: .mcp.json (Claude Code's project file, and most clients').
    A URL that holds a password is not written: the client passes SWARM_URL on from its own
    environment (see --url-in-config).
    """
    spec: LaunchSpec | RemoteSpec
    _check_scope(client, scope)
    if write and remove:
        raise click.UsageError("--write and --remove: choose one")
    if remove:
        _remove(client, server_name, scope)
        return
    if agent_name is not None:
        _check_agent_name("--name", agent_name)
    remote = http_url is not None
    _check_partners(
        click.get_current_context(),
        {
            "no_token": ("--http", remote),
            "token_env": ("--http", remote),
            "token_in_config": ("--http", remote),
        },
    )
    if no_token and click.get_current_context().get_parameter_source("token_env") == (
        click.core.ParameterSource.COMMANDLINE
    ):
        raise click.UsageError("--no-token and --token-env: choose one")
    if remote:
        _check_started_only(click.get_current_context())
    _check_watched(watch_queues, channel)
    if channel and http_url is not None:
        raise click.UsageError("--channel is for a server the client starts (stdio), not --http")
    if channel and client not in ("claude", "json"):  # (json: .mcp.json, Claude Code's file)
        raise click.UsageError(
            f"--channel: channels are a Claude Code feature, {client} has none: use --client "
            "claude (or json, for .mcp.json), or leave --channel out (docs/live.md)"
        )
    if show_secrets and not url_in_config:
        raise click.UsageError(
            "--show-secrets is for --url-in-config: without it the configuration holds no password"
        )
    if http_url is not None:
        if url_in_config:
            raise click.UsageError("--url-in-config is for a server the client starts, not --http")
        if token_in_config:
            _check_token_in_config(client, scope, no_token)
        try:  # (a bad URL is a bad option: exit 2, before anything is written)
            spec = remote_spec(
                http_url, token_env=None if no_token else token_env, server_name=server_name,
                token_in_config=token_in_config,
            )  # fmt: skip
        except ConfigError as exc:
            usage_failure(exc)
    else:
        spec = launch_spec(
            url=_url_for(client, scope, app, url_in_config),
            swarm=app.swarm_name,
            role=role,
            home=app.home,
            agent_name=agent_name,
            budget=budget,
            server_name=server_name,
            channel=watch_queues if channel else None,
        )
    secret = isinstance(spec, LaunchSpec) and url_in_config and app.settings.holds_secret
    # (read before the write: `claude mcp add` may tidy its file)
    others = elsewhere(client, spec.name, scope)
    done = _write_config(client, spec, scope, secret) if write else None
    for found in others:  # (before the line saying what was done, which ends the output)
        removal = _removal_command(found, spec.name)
        click.echo(f"warning: {elsewhere_words(spec.name, found, removal=removal)}", err=True)
    untrusted = gemini_untrusted_words(spec.name) if write and client == "gemini" else None
    if untrusted is not None:  # (written all the same: trusting the folder starts it)
        click.echo(f"warning: {untrusted}", err=True)
    if channel:  # (Claude Code starts it as a plain MCP server otherwise: nothing is pushed)
        click.echo(
            "a channel loads only when Claude Code starts with it: run `claude "
            f"--dangerously-load-development-channels server:{spec.name}` (a channel Anthropic "
            "has not allowlisted loads no other way; docs/live.md)",
            err=True,
        )
    shown = spec
    if secret and not show_secrets and (app.json or done is None):
        assert isinstance(spec, LaunchSpec)
        masked = handed_url(app.settings.render_url(mask=True))
        shown = replace(spec, env={**spec.env, ENV_URL: masked})
        click.echo(
            "the password is masked as ***: add --show-secrets to print it, or --write to apply it",
            err=True,
        )
    config, text, target = _client_config(client, shown, scope, as_json=app.json)
    if client == "claude":
        _say_token(spec, written=done is not None)
    if app.json:
        app.emit(
            {
                "client": client,
                "written": write,
                "target": str(target) if target else None,
                "config": config,
                "replaced": done.replaced if done is not None else None,
                "elsewhere": [{"scope": f.scope, "where": f.where, "used": f.used} for f in others],
            }
        )
        return
    if done is not None:  # what was written where, alone: the file is there to read
        click.echo(done.line, err=True)
        return
    where = (
        "nothing was installed: run it in a shell, or add --write to install it"
        if target is None
        else f"goes in {target} (--write merges it)"
    )
    click.echo(f"# {client}: {where}", err=True)
    click.echo(text.rstrip("\n"))


# What only a server the client starts takes: with --http (a server already running, started
# with its own) each would do nothing.
_STARTED_ONLY = ("role", "budget", "agent_name")


def _check_started_only(ctx: click.Context) -> None:
    """With --http: refuse the options of a launch, which the running server never sees."""
    for name in _STARTED_ONLY:
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            option = next(p for p in ctx.command.params if p.name == name)
            raise click.UsageError(
                f"{option.opts[0]} is for a server the client starts, not --http: the server "
                "at that URL was started with its own (`swarm mcp --transport http "
                f"{option.opts[0]} ...`): leave it out"
            )


# The scopes each client has (codex and json: one file each, no choice).
_SCOPES: dict[str, tuple[str, ...]] = {"claude": ("local", "user", "project"),
                                       "gemini": ("project", "user")}  # fmt: skip


def _check_scope(client: Client, scope: str | None) -> None:
    if scope is None or scope in _SCOPES.get(client, ()):
        return
    if client in _SCOPES:
        raise click.UsageError(
            f"--scope {scope}: {client} has {' or '.join(_SCOPES[client])}: use one of them"
        )
    # codex and json: one file, whatever the scope (codex's is the user's, for every project)
    raise click.UsageError(
        f"--scope {scope}: {client} has one file, {target_path(client)}: leave --scope out"
    )


def _remove(client: Client, name: str, scope: str | None) -> None:
    """Take out what an install of server ``name`` added: `claude mcp remove`, or its entry
    in the client's file (nothing else in it)."""
    if client == "claude":
        where = f"Claude Code's {scope or 'user'} scope"
        _check_claude_state()
        changed = _claude_remove(name, scope or "user")
        if changed and scope == "project":
            _drop_emptied(Path.cwd() / ".mcp.json")
    else:
        target = target_path(client, scope=scope or "project")
        where = str(target)
        if client == "codex":
            changed = merge_toml(target, f"mcp_servers.{name}", "").changed
        else:
            changed = merge_json(target, {"mcpServers": {name: {}}}, remove=True).changed
    still = elsewhere(client, name, scope)
    if still:  # (the one the client starts now, first in its order)
        click.echo(f"warning: {elsewhere_words(name, still[0], removed=True)}", err=True)
    click.echo(f"removed {name} from {where}" if changed else f"{where}: nothing to change",
               err=True)  # fmt: skip


def _removal_command(found: Elsewhere, name: str) -> str | None:
    """The `swarm mcp install` that takes ``found`` out, spelled from the command's own options
    (None: a project's .codex/config.toml, which it never writes)."""
    if found.app == "codex":
        return None
    words = ["swarm", f"{mcp_command.name}", f"{install.name}", _option("client"), found.app,
             _option("scope"), found.scope, _option("remove")]  # fmt: skip
    server_name = next(p for p in install.params if p.name == "server_name")
    if name != server_name.default:
        words += [server_name.opts[0], name]
    return shell_line(words)


def _option(name: str) -> str:
    """The option of `swarm mcp install` whose parameter is ``name``."""
    return next(p for p in install.params if p.name == name).opts[0]


def _shared(client: Client, scope: str | None) -> bool:
    """Whether the configuration goes in a project's file, which is often committed."""
    if client == "claude":
        return scope == "project"
    return client == "json" or (client == "gemini" and (scope or "project") == "project")


# How each client is told to pass SWARM_URL on from its own environment (checked with
# Claude Code 2.1, Codex 0.171 and Gemini CLI 0.61: each scope of each).
_FORWARDED = {
    "claude": "-e 'SWARM_URL=${SWARM_URL}', which Claude Code expands",
    "codex": 'env_vars = ["SWARM_URL"], which Codex forwards',
    "gemini": '"SWARM_URL": "${SWARM_URL}", which Gemini CLI expands',
    "json": '"SWARM_URL": "${SWARM_URL}", which Claude Code expands',
}


def _url_for(client: Client, scope: str | None, app: App, url_in_config: bool) -> str:
    """SWARM_URL as the configuration holds it: the URL, but where it holds a password a
    reference to the client's environment, unless ``url_in_config`` (refused for a project's
    file, which is often committed). A user name that may be a password is one
    (``Settings.holds_secret``: redis://SECRET@HOST)."""
    if not app.settings.holds_secret:
        return app.url
    if url_in_config:
        if _shared(client, scope):
            raise click.UsageError(
                "--url-in-config: a project's file is often committed, and would hold the "
                "password: leave --url-in-config out (the client then takes SWARM_URL from "
                "its environment), or use a user's scope"
            )
        return app.url
    click.echo(
        f"the URL holds a password, which stays out of the configuration: it says "
        f"{_FORWARDED[client]} from its environment when it starts the server: set "
        f"{ENV_URL} there (or pass --url-in-config to write the password in a user's file)",
        err=True,
    )
    return env_reference(ENV_URL)


def _client_config(
    client: Client, spec: LaunchSpec | RemoteSpec, scope: str | None, *, as_json: bool
) -> tuple[object, str, Path | None]:
    """What makes CLIENT use ``spec``: the config (claude: the command's argv), its text, and
    the file it goes in (None: a command to run)."""
    if client == "claude":
        argv = claude_command(spec, scope=scope or "user")
        expand = isinstance(spec, RemoteSpec) and spec.token_in_config
        return argv, shell_line(argv, expand=expand), None
    if client == "codex":
        target = target_path("codex")
        toml = codex_toml(spec)
        return toml, toml, target
    data = gemini_settings(spec) if client == "gemini" else mcp_json(spec)
    target = target_path(client, scope=scope or "project")
    return data, dumps(data) if as_json else _pretty(data), target


@dataclass(frozen=True)
class _Written:
    """What ``--write`` did: its line, and (``--json``'s ``replaced``) the entry of that name it
    replaced (None: there was none, or the file did not change)."""

    line: str
    replaced: dict[str, Any] | None = None


def _write_config(
    client: Client, spec: LaunchSpec | RemoteSpec, scope: str | None, secret: bool
) -> _Written:
    """Install what ``_client_config`` makes of ``spec``: run ``claude mcp add``, or merge the
    file (``secret``: it holds a password, made 0600, with a warning). What was written
    where: an entry of that name replaced is named (what it was), so that a second install
    with other options does not pass unseen."""
    config, text, target = _client_config(client, spec, scope, as_json=False)
    if client == "claude":
        assert isinstance(config, list)
        previous = claude_entry(spec.name, scope or "user")  # (before the add replaces it)
        replaced = _claude_add(_with_token(config, spec), spec.name, scope or "user")
        where = f"Claude Code's {scope or 'user'} scope"
        if secret:
            click.echo(_in_clear(where, "the swarm's password"), err=True)
        if isinstance(spec, RemoteSpec) and spec.token_in_config:
            click.echo(_in_clear(where, f"the bearer token ({spec.token_env})"), err=True)
        if replaced:
            entry = mcp_json(spec)["mcpServers"][spec.name]
            said = replaced_words(previous, entry)
            return _Written(
                f"replaced {spec.name} in {where} (claude mcp remove, then add): {said}",
                replaced_record(where, previous, entry),
            )
        return _Written(f"added {spec.name} to {where} (claude mcp add)")
    assert target is not None
    mode = target.stat().st_mode & 0o777 if target.exists() else None
    if client == "codex":
        merged = merge_toml(target, f"mcp_servers.{spec.name}", text, private=secret)
        entry = toml_table(text, f"mcp_servers.{spec.name}")
    else:
        assert isinstance(config, dict)
        merged = merge_json(target, config, private=secret)
        entry = config["mcpServers"][spec.name]
    if secret:
        how = "a new file" if mode is None else f"tightened from {mode:04o}"
        if mode == 0o600:
            how = "as it was"
        click.echo(
            f"warning: {target} holds the swarm's password in clear: it is mode 0600 "
            f"({how}), readable by you only; keep it out of backups and repositories",
            err=True,
        )
    if not merged.changed:
        return _Written(f"{target}: nothing to change")
    if merged.previous is not None:
        return _Written(
            f"replaced {spec.name} in {target}: {replaced_words(merged.previous, entry)}",
            replaced_record(str(target), merged.previous, entry),
        )
    return _Written(f"written to {target}")


def _pretty(data: object) -> str:
    import json

    return json.dumps(data, indent=2)


def _in_clear(where: str, secret: str) -> str:
    """The warning of a secret ``--write`` gave ``claude mcp add`` (--url-in-config,
    --token-in-config): the two places it is exposed."""
    return (
        f"warning: {where} (~/.claude.json) now holds {secret} in clear; it was also on the "
        "command line of `claude mcp add`, which other users of this machine can see (ps) "
        "while it runs"
    )


def _check_token_in_config(client: Client, scope: str | None, no_token: bool) -> None:
    """--token-in-config: for Claude Code (the others' configurations name the variable, and
    their clients read it), a user's scope (a project's file is often committed), a token."""
    if no_token:
        raise click.UsageError("--no-token and --token-in-config: choose one")
    if client != "claude":
        raise click.UsageError(
            f"--token-in-config is for --client claude: {client}'s configuration names the "
            "token's variable, which the client reads from its environment: leave it out"
        )
    if _shared(client, scope):
        raise click.UsageError(
            "--token-in-config: a project's file is often committed, and would hold the "
            "token: leave --token-in-config out (Claude Code then expands the variable from "
            "its environment), or use a user's scope"
        )


def _say_token(spec: LaunchSpec | RemoteSpec, *, written: bool) -> None:
    """Claude Code, an HTTP server with a token: say that the configuration refers to the
    token's variable, which Claude Code expands from its own environment as it connects
    (so set it there); or, --token-in-config, warn of a printed line run with it unset."""
    if not isinstance(spec, RemoteSpec) or spec.token_env is None:
        return
    if spec.token_in_config:
        unset = None if written else _token_unset(spec)
        if unset is not None:  # (the printed line expands it as the shell runs it: set it first)
            click.echo(f"warning: {unset}", err=True)
        return
    click.echo(
        f"the token stays out of the configuration: its header says "
        f"{env_reference(spec.token_env)}, which Claude Code expands from its environment "
        f"as it connects: set {spec.token_env} there (or pass --token-in-config to write the "
        "token in a user's scope)",
        err=True,
    )
    if not os.environ.get(spec.token_env, "").strip():
        click.echo(
            f"warning: {spec.token_env} is not set here: Claude Code started from this "
            "environment would not send the token (the server answers 401)",
            err=True,
        )


def _with_token(argv: list[str], spec: LaunchSpec | RemoteSpec) -> list[str]:
    """``claude mcp add`` as the shell would run the printed line: with --token-in-config,
    the token expanded (else the reference, which Claude Code expands as it connects)."""
    if not isinstance(spec, RemoteSpec) or spec.token_env is None or not spec.token_in_config:
        return argv
    unset = _token_unset(spec)
    if unset is not None:
        raise ConfigError(unset)
    token = os.environ[spec.token_env]
    header = f"Authorization: {spec.header}"
    return [f"Authorization: Bearer {token}" if arg == header else arg for arg in argv]


def _token_unset(spec: LaunchSpec | RemoteSpec) -> str | None:
    """What is wrong when the token ``claude mcp add``'s header expands is not set (None: it
    is, or there is none): refused by --write, warned of by the printed line."""
    if not isinstance(spec, RemoteSpec) or spec.token_env is None:
        return None
    if os.environ.get(spec.token_env, "").strip():
        return None
    return (
        f"{spec.token_env} is not set: set it to the token `swarm mcp --transport http` "
        "printed (or its --token), or pass --no-token for a server without one"
    )


def _claude() -> str:
    claude = shutil.which("claude")
    if claude is None:
        raise SwarmError(
            "`claude` is not on PATH: install Claude Code, run the printed command where it "
            "is, or use --client json --write to write .mcp.json"
        )
    return claude


def _check_claude_state() -> None:
    """Refuse to run `claude mcp` over a ~/.claude.json it cannot read: it would reset the
    file (every other server and setting in it gone) rather than fail."""
    problem = claude_state_problem()
    if problem is not None:
        raise ConfigError(problem)


def _pass_on(result: subprocess.CompletedProcess[str]) -> None:
    """What `claude` said on stderr (a warning, a file it changed), passed on as said."""
    for line in result.stderr.splitlines():
        if line.strip():
            click.echo(f"claude: {line.rstrip()}", err=True)


def _drop_emptied(path: Path) -> None:
    """Delete ``path`` (a project's .mcp.json) when `claude mcp remove` left it holding an
    empty ``mcpServers`` and nothing else, as a removal by the file does."""
    try:
        held = read_settings(path)[0]
    except ConfigError:
        return
    if held == {"mcpServers": {}}:
        path.unlink()


def _claude_remove(name: str, scope: str, claude: str | None = None) -> bool:
    """`claude mcp remove` (``claude``: the executable, when the caller has found it): whether
    it had the server (it fails when it has none, which is not said)."""
    argv = [claude or _claude(), "mcp", "remove", name, "--scope", scope]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        _pass_on(result)
    return result.returncode == 0


def _claude_add(argv: list[str], name: str, scope: str) -> bool:
    """`claude mcp add`: whether it replaced a server of that name."""
    claude = _claude()
    _check_claude_state()
    # `claude mcp add` refuses a name it already has: ours, replaced
    replaced = _claude_remove(name, scope, claude)
    result = subprocess.run([claude, *argv[1:]], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SwarmError(f"`claude mcp add` failed: {(result.stderr or result.stdout).strip()}")
    _pass_on(result)
    return replaced
