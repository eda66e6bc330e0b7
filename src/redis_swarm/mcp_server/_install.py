"""``swarm mcp install``: the exact configuration each MCP client needs to start this server,
or to reach one already serving HTTP.

Every client gets the same launch: the absolute path of the ``swarm`` executable of this
install, ``mcp --role ROLE``, and ``SWARM_URL`` / ``SWARM_NAME`` / ``SWARM_HOME`` in the
environment, each even when it is the default, so the client's agents reach this swarm whatever
their working directory, PATH, or the swarm their own environment names. For a server on
``--transport http`` (``RemoteSpec``), each client gets the URL and the bearer token in the
form it knows: Codex the name of the environment variable holding it
(``bearer_token_env_var``), the others an ``Authorization`` header that refers to that
variable.

A URL that holds a password is not written: each client is told to take ``SWARM_URL`` from
its own environment when it starts the server (``env_reference``), in the form it knows:
Claude Code and Gemini CLI expand ``${SWARM_URL}`` in the server's env (every scope), Codex
forwards the variables named by ``env_vars``. A configuration that must hold the password
(``--url-in-config``) is written with mode 0600 (``merge_json`` /
``_codex_toml.merge_toml`` ``private``).

An install over an entry of the same name replaces it, and says so, naming what it was
(``Merged.previous``, ``claude_entry``, ``describe_entry``; ``replaced_record`` for
``--json``): a second install with other options is a change the user should see, not a
silent one. So is an entry of the same name at the client's other scope (``elsewhere``,
``elsewhere_words``): the client starts one of the two (``PRECEDENCE``), and an edit of the
other changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from .._client_files import (
    APP_NAMES,
    PROJECT_DIR,
    Merged,
    as_entry,
    claude_state_path,
    codex_project_dirs,
    read_settings,
    refuse_commented,
    replacement_words,
    strip_comments,
    tighten_config,
    user_dir,
    write_config,
)
from .._config import DEFAULT_HOME, handed_url, mask_url
from .._env import ENV_HOME, ENV_NAME, ENV_URL, URL_FROM_ENV_OPTION
from .._errors import ConfigError
from .._executable import swarm_command
from .._mcp_names import EVERY_TOOL_ROLE
from .._printable import printable
from ._codex_toml import toml_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "APPROVED",
    "CLIENTS",
    "DECLINED",
    "GEMINI_TRUSTED_FOLDERS",
    "HTTP_PATH",
    "PENDING",
    "PRECEDENCE",
    "Client",
    "Elsewhere",
    "LaunchSpec",
    "Merged",
    "RemoteSpec",
    "claude_approval",
    "claude_command",
    "claude_entry",
    "claude_state_problem",
    "codex_toml",
    "codex_trusts",
    "describe_entry",
    "elsewhere",
    "elsewhere_words",
    "env_reference",
    "gemini_settings",
    "gemini_trusts",
    "gemini_untrusted_words",
    "launch_spec",
    "mcp_json",
    "merge_json",
    "remote_spec",
    "replaced_record",
    "replaced_words",
    "shell_line",
    "swarm_command",
    "target_path",
]

Client = Literal["claude", "codex", "gemini", "json"]
CLIENTS: tuple[Client, ...] = ("claude", "codex", "gemini", "json")


# Seconds an agent client should allow one tool call: wait_for_pass may wait up to 300 s.
TOOL_TIMEOUT_S = 360


@dataclass(frozen=True)
class LaunchSpec:
    """How a client starts the server: a name, a command line and its environment."""

    name: str
    command: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        return [self.command, *self.args]


@dataclass(frozen=True)
class RemoteSpec:
    """How a client reaches a server already serving HTTP: a name, its URL, and the
    environment variable holding its bearer token (None: it needs none)."""

    name: str
    url: str
    token_env: str | None = "SWARM_MCP_TOKEN"
    # `claude mcp add` given the token itself (the shell expands the header) instead of the
    # ``${VAR}`` reference Claude Code expands as it connects (``--token-in-config``)
    token_in_config: bool = False

    @property
    def header(self) -> str | None:
        """The Authorization header, referring to the token's variable."""
        return None if self.token_env is None else f"Bearer ${{{self.token_env}}}"


Spec = LaunchSpec | RemoteSpec


def env_reference(name: str) -> str:
    """How a client configuration refers to variable ``name`` of the client's environment
    (``${NAME}``; Codex's table lists it in ``env_vars`` instead)."""
    return f"${{{name}}}"


def _check_server_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ConfigError(f"MCP server name {name!r} may hold only letters, digits, '_' and '-'")


# The path ``swarm mcp --transport http`` serves MCP at (the SDK's streamable HTTP path):
# the address it prints ends with it.
HTTP_PATH = "/mcp"


def remote_spec(
    url: str, *, token_env: str | None, server_name: str = "swarm", token_in_config: bool = False
) -> RemoteSpec:
    """The configuration for a ``swarm mcp --transport http`` server at ``url``: an http(s)
    URL whose path ends with ``HTTP_PATH`` (the server answers nothing else: a client given
    ``http://host:8765`` gets 404 at every start, which it reports as a server that failed;
    a reverse proxy's ``https://proxy/team/mcp`` is taken). Its scheme is taken in any case
    and written lower-case (``HTTP://`` is ``http://``); a port outside 1-65535, a
    ``#fragment`` (never sent to a server) and a path ending ``/mcp/`` are refused: the
    server answers ``/mcp/`` with a redirect to ``/mcp`` (307, a round trip per request,
    which names the server's own host and scheme behind a proxy), so the URL to pass is
    named rather than one written in its place."""
    _check_server_name(server_name)
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url, re.IGNORECASE):
        raise ConfigError(
            f"{mask_url(url)!r} is not an http(s) URL: pass the address `swarm mcp --transport "
            f"http` printed, e.g. http://host:8765{HTTP_PATH}"
        )
    scheme, rest = url.split(":", 1)
    url = scheme.lower() + ":" + rest
    _check_no_secret_in(url)
    parts = urlsplit(url)
    _check_port(url, parts.netloc)
    if "#" in url:
        raise ConfigError(
            f"{mask_url(url)!r} has a fragment (#{parts.fragment}), which a client never sends "
            f"to the server: pass the URL without it ({urlunsplit(parts._replace(fragment=''))})"
        )
    if not parts.path.rstrip("/").endswith(HTTP_PATH):
        right = urlunsplit(parts._replace(path=parts.path.rstrip("/") + HTTP_PATH))
        raise ConfigError(
            f"{mask_url(url)!r} does not end with {HTTP_PATH}, where `swarm mcp --transport "
            f"http` serves MCP (it answers 404 elsewhere): pass {right}, the address it printed"
        )
    if not parts.path.endswith(HTTP_PATH):
        right = urlunsplit(parts._replace(path=parts.path.rstrip("/")))
        raise ConfigError(
            f"{mask_url(url)!r} ends with {HTTP_PATH}/, which `swarm mcp --transport http` "
            f"answers with a redirect to {HTTP_PATH} (one more round trip per request, to its "
            f"own host and scheme, which a client behind a proxy cannot follow): pass {right}, "
            "the address it printed"
        )
    if token_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token_env):
        raise ConfigError(f"--token-env {token_env!r} is not an environment variable name")
    return RemoteSpec(server_name, url, token_env, token_in_config and token_env is not None)


def _check_port(url: str, netloc: str) -> None:
    """Refuse a URL whose port is no TCP port (1-65535): ``http://h:99999/mcp`` was written
    to the client's configuration, which then failed to connect at every start."""
    after_host = netloc.rpartition("@")[2].rpartition("]")[2]  # (an IPv6 address's brackets)
    port = after_host.rpartition(":")[2]
    if ":" not in after_host or not port:  # (none, or empty: the scheme's own)
        return
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(
            f"{mask_url(url)!r} names port {port[:20]!r}, which is no TCP port: pass the port "
            "`swarm mcp --transport http` printed (1 to 65535), or none for the scheme's own"
        )


def _check_no_secret_in(url: str) -> None:
    """Refuse an HTTP server's URL that carries a secret: a user and password, or a
    ``token`` query parameter. The server reads neither (its token is the
    ``Authorization: Bearer`` header only: a ``?token=`` gets 401), and the client's
    configuration, often committed, would hold it in clear (and access logs print a query)."""
    parts = urlsplit(url)
    fields = [f for f in parts.query.split("&") if f]
    kept = [f for f in fields if unquote(f.partition("=")[0]).lower() != "token"]
    has_user = "@" in parts.netloc
    if not has_user and kept == fields:
        return
    host = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, host, parts.path, "&".join(kept), parts.fragment))
    found = [*(["a user and password"] if has_user else []),
             *(["a ?token= parameter"] if kept != fields else [])]  # fmt: skip
    what = " and ".join(found)
    raise ConfigError(
        f"the --http URL carries {what}, which the MCP server never reads (it takes its token "
        "as an 'Authorization: Bearer TOKEN' header only) and which the client's configuration "
        f"would keep in clear: pass the URL bare ({bare}) and the token in the "
        "environment variable the configuration names (SWARM_MCP_TOKEN, or --token-env VAR; "
        "--no-token for a server without one)"
    )


def launch_spec(
    *,
    url: str,
    swarm: str,
    role: str = EVERY_TOOL_ROLE,
    home: Path | None = None,
    agent_name: str | None = None,
    budget: int | None = None,
    server_name: str = "swarm",
    command: list[str] | None = None,
    channel: tuple[str, ...] | None = None,
) -> LaunchSpec:
    """The launch of ``swarm mcp`` for one client configuration; ``channel`` (the queues to
    watch, maybe none) launches it as a Claude Code channel. Its environment names the URL,
    the swarm and the home (None: the default one), the default ones too: the client's own
    environment, which the server's adds to, may name others (SWARM_NAME, SWARM_HOME).
    ``url`` may be ``env_reference(ENV_URL)``: the server then takes it from the client's
    environment, and refuses to start without it."""
    _check_server_name(server_name)
    base = command or swarm_command()
    args = [*base[1:], "mcp", "--role", role]
    if agent_name:
        args += ["--name", agent_name]
    if budget is not None:
        args += ["--budget", str(budget)]
    if channel is not None:
        args += ["--channel", *[a for q in channel for a in ("--watch-queue", q)]]
    if url == env_reference(ENV_URL):
        args.append(URL_FROM_ENV_OPTION)
    where = (home or DEFAULT_HOME).expanduser().absolute()
    env = {ENV_URL: handed_url(url), ENV_NAME: swarm, ENV_HOME: str(where)}
    return LaunchSpec(server_name, base[0], args, env)


def claude_command(spec: Spec, *, scope: str = "user") -> list[str]:
    """``claude mcp add``: name first, then options, then ``--`` and the server's command
    (or, for an HTTP server, its URL and the header; ``$VAR`` in it is the shell's to expand)."""
    argv = ["claude", "mcp", "add", spec.name, "--scope", scope]
    if isinstance(spec, RemoteSpec):
        argv += ["--transport", "http", spec.url]
        if spec.header is not None:
            argv += ["--header", f"Authorization: {spec.header}"]
        return argv
    argv += ["--transport", "stdio"]
    for key, value in spec.env.items():
        argv += ["-e", f"{key}={value}"]
    return [*argv, "--", *spec.argv]


def _toml_str(value: str) -> str:
    # A JSON string (ASCII, with \\uXXXX escapes) is a valid TOML basic string.
    return json.dumps(value)


def codex_toml(spec: Spec) -> str:
    """The ``[mcp_servers.NAME]`` table of ``~/.codex/config.toml``. Codex does not expand
    ``${VAR}``: a variable the spec refers to is forwarded from Codex's environment
    (``env_vars``) instead of set."""
    timeouts = ["startup_timeout_sec = 30", f"tool_timeout_sec = {TOOL_TIMEOUT_S}", ""]
    if isinstance(spec, RemoteSpec):
        lines = [f"[mcp_servers.{spec.name}]", f"url = {_toml_str(spec.url)}"]
        if spec.token_env is not None:
            lines.append(f"bearer_token_env_var = {_toml_str(spec.token_env)}")
        return "\n".join([*lines, *timeouts])
    forwarded = [key for key, value in spec.env.items() if value == env_reference(key)]
    env = ", ".join(
        f"{key} = {_toml_str(value)}" for key, value in spec.env.items() if key not in forwarded
    )
    lines = [
        f"[mcp_servers.{spec.name}]",
        f"command = {_toml_str(spec.command)}",
        f"args = [{', '.join(_toml_str(a) for a in spec.args)}]",
        f"env = {{ {env} }}",
    ]
    if forwarded:
        lines.append(f"env_vars = [{', '.join(_toml_str(key) for key in forwarded)}]")
    return "\n".join([*lines, *timeouts])


def _headers(spec: RemoteSpec) -> dict[str, Any]:
    return {} if spec.header is None else {"headers": {"Authorization": spec.header}}


def gemini_settings(spec: Spec) -> dict[str, Any]:
    """The ``mcpServers`` entry of ``.gemini/settings.json`` (timeout in milliseconds; Gemini
    CLI expands ``${VAR}`` in it)."""
    entry: dict[str, Any]
    if isinstance(spec, RemoteSpec):
        entry = {"httpUrl": spec.url, **_headers(spec)}
    else:
        entry = {"command": spec.command, "args": spec.args, "env": spec.env}
    return {"mcpServers": {spec.name: {**entry, "timeout": TOOL_TIMEOUT_S * 1000}}}


def mcp_json(spec: Spec) -> dict[str, Any]:
    """``.mcp.json``: the project file of Claude Code, and the shape most clients accept."""
    entry: dict[str, Any]
    if isinstance(spec, RemoteSpec):
        entry = {"type": "http", "url": spec.url, **_headers(spec)}
    else:
        entry = {"type": "stdio", "command": spec.command, "args": spec.args, "env": spec.env}
    return {"mcpServers": {spec.name: entry}}


def target_path(client: Client, *, scope: str = "project", home: Path | None = None) -> Path:
    """The file ``--write`` changes for ``client`` (claude is configured by its own CLI): in
    the user folder the client finds (``user_dir``: CODEX_HOME, GEMINI_CLI_HOME) or the
    project's."""
    if client == "codex":
        return user_dir("codex", home=home) / "config.toml"
    if client == "gemini":
        folder = (
            user_dir("gemini", home=home) if scope == "user" else Path.cwd() / PROJECT_DIR["gemini"]
        )
        return folder / "settings.json"
    if client == "json":
        return Path.cwd() / ".mcp.json"
    raise ConfigError("claude is configured with `claude mcp add`, not by a file")


def merge_json(
    path: Path, config: dict[str, Any], *, remove: bool = False, private: bool = False
) -> Merged:
    """Add (or replace) our ``mcpServers`` entry in a JSON settings file, keeping the rest;
    with ``remove``, take it out (a file left empty is deleted). ``private``: the entry holds a
    password, the file is made 0600."""
    data, commented = read_settings(path)
    before = json.dumps(data)
    servers = data.setdefault("mcpServers", {})
    if not isinstance(servers, dict):
        raise ConfigError(f"mcpServers in {path} is not an object: fix it first")
    previous = next((as_entry(servers.get(name)) for name in config["mcpServers"]), None)
    if remove:
        if previous is None:  # (not ours to tidy: an empty mcpServers stays as it is)
            return Merged(False)
        for name in config["mcpServers"]:
            servers.pop(name, None)
        if not servers:
            del data["mcpServers"]
    else:
        servers.update(config["mcpServers"])
    if json.dumps(data) == before:
        return Merged(private and tighten_config(path), previous)
    if commented:
        refuse_commented(
            path,
            "take the entry out by hand"
            if remove
            else "run this again without --write to print the entry, and add it by hand",
        )
    if not data:
        path.unlink()
        return Merged(True, previous)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_config(path, json.dumps(data, indent=2) + "\n", private=private)
    return Merged(True, previous)


def claude_entry(
    name: str,
    scope: str,
    *,
    home: Path | None = None,
    cwd: Path | None = None,
    strict: bool = False,
) -> dict[str, Any] | None:
    """The entry Claude Code holds for server ``name`` in ``scope``, read from its files
    (``claude mcp get`` would start the server to check it): the project's ``.mcp.json``, or
    ``~/.claude.json``, whose local scope is keyed by the project's directory (its git root,
    as Claude Code 2.1 keys it). None when none is found, or the file cannot be read
    (``strict``: a file there that cannot be read is a ``ConfigError`` saying why)."""
    where = cwd or Path.cwd()
    path = where / ".mcp.json" if scope == "project" else claude_state_path(home)
    try:
        data = read_settings(path)[0]
    except ConfigError:
        if strict:
            raise
        return None
    tables: list[object] = [data]
    if scope == "local":
        projects = data.get("projects")
        keys = _claude_project_keys(where)
        tables = [projects.get(k) for k in keys] if isinstance(projects, Mapping) else []
    for table in tables:
        servers = table.get("mcpServers") if isinstance(table, Mapping) else None
        found = as_entry(servers.get(name)) if isinstance(servers, Mapping) else None
        if found is not None:
            return found
    return None


def _claude_project_keys(where: Path) -> list[str]:
    """The keys ``~/.claude.json`` may hold the project of ``where`` under: its checkout's
    root (as Claude Code 2.1 keys it), the folder resolved, as given."""
    real = where.resolve()
    root = next((d for d in (real, *real.parents) if (d / ".git").exists()), real)
    return list(dict.fromkeys(str(d) for d in (root, real, where)))


# Whether Claude Code starts a project's .mcp.json server: it was approved, it asks when it
# starts in the project (pending), or it was declined (started by none of its answers).
APPROVED, PENDING, DECLINED = "approved", "pending", "declined"
_ENABLED, _DISABLED = "enabledMcpjsonServers", "disabledMcpjsonServers"
_ENABLE_ALL = "enableAllProjectMcpServers"


def _settings_or_empty(path: Path) -> Mapping[str, Any]:
    try:
        return read_settings(path)[0]
    except ConfigError:
        return {}  # (Claude Code does without a file it cannot read)


def _names(settings: Mapping[str, Any], key: str) -> list[object]:
    names = settings.get(key)
    return names if isinstance(names, list) else []


def claude_approval(name: str, *, home: Path | None = None, cwd: Path | None = None) -> str:
    """Whether Claude Code starts the project's .mcp.json server ``name`` (``APPROVED``,
    ``PENDING``, ``DECLINED``), read as Claude Code 2.1.197 reads it from its settings: a
    ``disabledMcpjsonServers`` naming it in any of them declines it; else one
    ``enabledMcpjsonServers`` naming it, or ``enableAllProjectMcpServers``, approves it: the
    user's (~/.claude/settings.json) always, the project's (.claude/settings.json,
    .claude/settings.local.json, where it writes the answers, and the project's entry in
    ~/.claude.json, the older place it moves them from) once the project is trusted
    (``hasTrustDialogAccepted`` there)."""
    where = cwd or Path.cwd()
    user = _settings_or_empty(user_dir("claude", home=home) / "settings.json")
    ours = [
        _settings_or_empty(where / ".claude" / f) for f in ("settings.json", "settings.local.json")
    ]
    projects = _settings_or_empty(claude_state_path(home)).get("projects")
    entries = [projects.get(k) for k in _claude_project_keys(where)] if isinstance(
        projects, Mapping) else []  # fmt: skip
    older = next((e for e in entries if isinstance(e, Mapping)), {})
    every = [user, *ours, older]
    if any(name in _names(settings, _DISABLED) for settings in every):
        return DECLINED
    counted = every if older.get("hasTrustDialogAccepted") is True else [user]
    for settings in counted:
        if settings.get(_ENABLE_ALL) is True or name in _names(settings, _ENABLED):
            return APPROVED
    return PENDING


def claude_state_problem(home: Path | None = None) -> str | None:
    """Why Claude Code's ``~/.claude.json`` (``claude_state_path``) is no JSON object it
    can read, or None (it is one, or there is none). ``claude mcp`` resets such a file to
    its defaults (every other server and setting in it gone, the file kept aside under
    another name): an install refuses to run it then."""
    path = claude_state_path(home)
    try:
        read_settings(path)
    except ConfigError as exc:
        why = str(exc).removesuffix(": fix or move it first")
        return (
            f"{why}: `claude mcp` would reset it to its defaults (every other MCP server and "
            "setting in it gone, a copy kept aside): fix or move it first"
        )
    return None


def describe_entry(entry: Mapping[str, Any] | None) -> str:
    """A server entry of a client's configuration in a few words, to say what an install
    replaced: the ``swarm mcp`` options it launched and its swarm, or the HTTP server it
    reached. Never its Redis URL, which may hold a password."""
    if not entry:
        return "settings that could not be read"
    url = entry.get("url") or entry.get("httpUrl")
    if isinstance(url, str):
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        return printable(f"the HTTP server at {parts.scheme}://{host}{port}{parts.path}")
    command, args = entry.get("command"), entry.get("args")
    # (an argument that is a URL, ours or another server's, is shown without its user and
    # password, as an error shows a URL)
    argv = [_masked(a) for a in args if isinstance(a, str)] if isinstance(args, list) else []
    if "mcp" in argv:  # ours: its options (the executable's path says nothing new)
        words = shlex.join(["swarm", *argv[argv.index("mcp") :]])
    else:
        words = shlex.join([str(command or "?"), *argv])
    env = entry.get("env")
    swarm = env.get(ENV_NAME) if isinstance(env, Mapping) else None
    return printable(f"{words}, swarm {swarm}" if isinstance(swarm, str) else words)


def _masked(arg: str) -> str:
    """``arg``, a URL's user and password masked (``redis://***@host...``) when it is one."""
    return mask_url(arg) if "://" in arg else arg


def replaced_words(previous: Mapping[str, Any] | None, entry: Mapping[str, Any]) -> str:
    """What an install says of the entry ``previous`` it replaced with ``entry``."""
    return replacement_words(
        previous, entry, describe=describe_entry, other="environment, executable or timeouts"
    )


def replaced_record(
    where: str, previous: Mapping[str, Any] | None, entry: Mapping[str, Any]
) -> dict[str, Any]:
    """What ``--json`` says of the entry ``previous`` an install in ``where`` replaced with
    ``entry``: the facts ``replaced_words`` puts in words (never a Redis URL either)."""
    return {"where": where, "was": describe_entry(previous), "same_settings": previous == entry}


def shell_line(argv: list[str], *, expand: bool = False) -> str:
    """The command as one shell line. The value of ``claude mcp add --header`` is stored as
    given: the token header's ``${VAR}`` is quoted so that Claude Code gets the reference
    (and expands it from its environment as it connects), or with ``expand`` left for the
    shell to expand (the token itself stored)."""
    return " ".join(
        f'"{arg}"' if expand and _TOKEN_HEADER.fullmatch(arg) else shlex.quote(arg) for arg in argv
    )


_TOKEN_HEADER = re.compile(r"Authorization: Bearer \$\{[A-Za-z_][A-Za-z0-9_]*\}")


# The scopes of each client, the one it starts a server from first when a name is in several:
# Claude Code's local scope, then the project's .mcp.json (once approved there), then its user
# scope; Gemini CLI's project settings over the user's; Codex's project .codex/config.toml (in
# a project it trusts) over its own file. (Checked with Claude Code 2.1.197's `claude mcp get`,
# Gemini CLI 0.61's `gemini mcp list` and Codex 0.171's `codex doctor`.)
PRECEDENCE: dict[str, tuple[str, ...]] = {
    "claude": ("local", "project", "user"),
    "gemini": ("project", "user"),
    "codex": ("project", "user"),
}
_ORDER = {
    "claude": "it takes the local scope first, then the project's .mcp.json (once approved "
    "there), then the user scope",
    "gemini": "it takes the project's .gemini/settings.json over the user's",
    "codex": "it takes a project's .codex/config.toml, in a project it trusts, over its own "
    "config.toml",
}


@dataclass(frozen=True)
class Elsewhere:
    """An entry of the server's name at another scope of the client an install configures:
    the client (``claude``, ``gemini``, ``codex``), that scope, the file holding it, and
    whether the client starts that one rather than the one installed (in this project)."""

    app: str
    scope: str
    where: str
    used: bool
    # Codex only: the project is not one it trusts, so it reads no project file of it
    untrusted: bool = False
    # Claude Code only, its project scope against its user scope: whether the project's
    # .mcp.json entry is approved there (``claude_approval``; "": not asked), which decides
    # which of the two is started (``used`` says it)
    approval: str = ""
    # why the file could not be read (whether it holds the name is unknown); None: it could
    unreadable: str | None = None


def _scope_of(client: Client, scope: str | None) -> tuple[str, str]:
    """The client and scope an install writes: ``json`` is Claude Code's project file, codex
    writes its user file."""
    if client == "json":
        return "claude", "project"
    if client == "codex":
        return "codex", "user"
    return client, scope or ("user" if client == "claude" else "project")


def elsewhere(
    client: Client,
    name: str,
    scope: str | None,
    *,
    home: Path | None = None,
    cwd: Path | None = None,
) -> list[Elsewhere]:
    """The entries named ``name`` at the other scopes of the client an install of ``client``
    at ``scope`` configures, read from the files the client reads, in its order
    (``PRECEDENCE``)."""
    app, mine = _scope_of(client, scope)
    where = cwd or Path.cwd()
    order = PRECEDENCE[app]
    found: list[Elsewhere] = []
    unreadable: set[str] = set()
    for other in order:
        if other == mine:
            continue
        first = order.index(other) < order.index(mine)
        try:
            place = _holding(app, other, name, home=home, cwd=where)
        except ConfigError as exc:
            why = str(exc)
            if why not in unreadable:  # (Claude Code's local and user scopes: one file)
                unreadable.add(why)
                path = _scope_file(app, other, home=home, cwd=where)
                found.append(Elsewhere(app, other, str(path), False, unreadable=why))
            continue
        if place is None:
            continue
        if app == "codex" and not codex_trusts(where, home=home):
            found.append(Elsewhere(app, other, place, False, untrusted=True))
        else:
            approval = ""
            if app == "claude" and {mine, other} == {"project", "user"}:
                approval = claude_approval(name, home=home, cwd=where)
            # (the project's entry, approved, over the user scope's; else the user scope's)
            used = first if not approval else (approval == APPROVED) == (other == "project")
            found.append(Elsewhere(app, other, place, used, approval=approval))
    return found


def codex_trusts(cwd: Path, *, home: Path | None = None) -> bool:
    """Whether Codex trusts the project of ``cwd``: its ``config.toml`` (``target_path``)
    marks the folder, or the checkout's root it is in, ``trust_level = "trusted"`` under
    ``[projects."PATH"]`` (as Codex writes it when told to trust a folder). Only then does
    it read the project's ``.codex/config.toml``."""
    try:
        projects = tomllib.loads(_text(target_path("codex", home=home))).get("projects")
    except tomllib.TOMLDecodeError:
        return False
    if not isinstance(projects, Mapping):
        return False
    real = cwd.resolve()
    root = next((d for d in (real, *real.parents) if (d / ".git").exists()), real)
    for folder in dict.fromkeys((cwd, real, root)):
        entry = projects.get(str(folder))
        if isinstance(entry, Mapping) and entry.get("trust_level") == "trusted":
            return True
    return False


# Gemini CLI's file of the folders it trusts (in its user folder, or where its variable
# says), and the levels a folder's line in it holds. In a folder it does not trust (none of
# the file's lines covers it: Gemini CLI 0.61's trust.ts) it starts no MCP server, of either
# scope: `gemini mcp list` shows them Disabled.
GEMINI_TRUSTED_FOLDERS = "trustedFolders.json"
_GEMINI_TRUSTED_FOLDERS_ENV = "GEMINI_CLI_TRUSTED_FOLDERS_PATH"
_GEMINI_TRUST_ENV = "GEMINI_CLI_TRUST_WORKSPACE"  # "true" / "false": trust decided by it
_TRUST_FOLDER, _TRUST_PARENT = "TRUST_FOLDER", "TRUST_PARENT"
# Every level a line may hold: with any other value Gemini CLI refuses the file
_TRUST_LEVELS = (_TRUST_FOLDER, _TRUST_PARENT, "DO_NOT_TRUST")
# On macOS and Windows Gemini CLI compares folders in lower case (its normalizePath)
_CASELESS_FOLDERS = sys.platform in ("darwin", "win32")


def _gemini_trusted_folders(home: Path | None) -> Path:
    moved = os.environ.get(_GEMINI_TRUSTED_FOLDERS_ENV)
    return Path(moved) if moved else user_dir("gemini", home=home) / GEMINI_TRUSTED_FOLDERS


def _gemini_folder_trust_on(home: Path | None) -> bool:
    """Whether Gemini CLI checks folders' trust at all (on unless the user's settings turn
    ``security.folderTrust.enabled`` off)."""
    try:
        settings = read_settings(user_dir("gemini", home=home) / "settings.json")[0]
    except ConfigError:
        return True
    security = settings.get("security")
    trust = security.get("folderTrust") if isinstance(security, Mapping) else None
    return not (isinstance(trust, Mapping) and trust.get("enabled") is False)


def _gemini_rules(path: Path) -> dict[str, str]:
    """The lines of Gemini CLI's trusted folders file ``path`` ({}: there is none). A file
    Gemini CLI refuses (then it does not start at all: "Please fix the configuration file")
    is a ``ConfigError`` saying why."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"it cannot be read ({exc})") from None
    try:
        rules = json.loads(strip_comments(text))
    except ValueError as exc:
        raise ConfigError(f"it is not valid JSON ({exc})") from None
    if not isinstance(rules, dict):
        raise ConfigError("it holds no JSON object")
    for rule, level in rules.items():
        if level not in _TRUST_LEVELS:
            raise ConfigError(
                f"{json.dumps(rule)}: {json.dumps(level)} is no trust level (it takes "
                f"{', '.join(_TRUST_LEVELS)})"
            )
    return rules


def _gemini_folder(location: str) -> str:
    """The folder ``location`` as Gemini CLI compares it (trust.ts's getRealPath and
    normalizePath): absolute, its links resolved when it exists; kept as written when it does
    not, or cannot be resolved (a loop of links, a NUL byte); lower case on macOS and
    Windows."""
    absolute = os.path.abspath(location)
    try:
        real = os.path.realpath(absolute, strict=True) if os.path.exists(absolute) else absolute
    except (OSError, RuntimeError, ValueError):
        real = absolute
    return real.lower() if _CASELESS_FOLDERS else real


def _holds(folder: str, inner: str) -> bool:
    return inner == folder or inner.startswith(folder.rstrip(os.sep) + os.sep)


def gemini_trusts(cwd: Path, *, home: Path | None = None) -> bool:
    """Whether Gemini CLI trusts the folder ``cwd``, as it decides it: the longest line of its
    trusted folders file whose folder holds ``cwd`` (a TRUST_PARENT line's: the folder
    above the one it names) says; no line: not trusted. A file it refuses: ``ConfigError``
    (``_gemini_rules``)."""
    told = os.environ.get(_GEMINI_TRUST_ENV)
    if told in ("true", "false"):
        return told == "true"
    if not _gemini_folder_trust_on(home):
        return True
    # (each line's folder as Gemini CLI keys it: two spellings of one folder, the last wins)
    lines = {_gemini_folder(rule): level for rule, level in _gemini_rules(
        _gemini_trusted_folders(home)).items()}  # fmt: skip
    here = _gemini_folder(str(cwd))
    longest, found = -1, None
    for rule, level in lines.items():
        folder = os.path.dirname(rule) if level == _TRUST_PARENT else rule
        if len(rule) > longest and _holds(_gemini_folder(folder), here):
            longest, found = len(rule), level
    return found in (_TRUST_FOLDER, _TRUST_PARENT)


def gemini_untrusted_words(
    name: str, *, home: Path | None = None, cwd: Path | None = None
) -> str | None:
    """What an install for Gemini CLI says when it does not trust the folder (None: it does):
    its entry is there, but not started; or when it refuses its trusted folders file: it does
    not start at all."""
    where = (cwd or Path.cwd()).resolve()
    rules = _gemini_trusted_folders(home)
    try:
        if gemini_trusts(where, home=home):
            return None
    except ConfigError as exc:
        return (
            f"Gemini CLI cannot use its trusted folders file, {rules}: {exc}; it does not start "
            f'at all while the file is so ("Please fix the configuration file"): make it one '
            f'JSON object of folders and trust levels, such as {{"{where}": '
            f'"{_TRUST_FOLDER}"}}, or move it away and trust the folder when Gemini CLI asks '
            "as it starts here"
        )
    return (
        f"Gemini CLI does not trust this folder, {where}: it starts no MCP server in it, "
        f"{name} included (`gemini mcp list` shows it Disabled); trust the folder when Gemini "
        f'CLI asks as it starts here, or add "{where}": "{_TRUST_FOLDER}" (or a folder above '
        f"it) to the JSON object in {rules}"
    )


def _holding(app: str, scope: str, name: str, *, home: Path | None, cwd: Path) -> str | None:
    """The file of ``app``'s ``scope`` that holds an entry ``name`` (None: none does)."""
    if app == "claude":
        if claude_entry(name, scope, home=home, cwd=cwd, strict=True) is None:
            return None
        if scope == "project":
            return str(cwd / ".mcp.json")
        config = claude_state_path(home)
        return f"{config}, this project's entry" if scope == "local" else str(config)
    if app == "gemini":
        user = user_dir("gemini", home=home) / "settings.json"
        project = cwd / PROJECT_DIR["gemini"] / "settings.json"
        if user.resolve() == project.resolve():
            return None  # (run in the home folder: one file for both)
        path = project if scope == "project" else user
        return str(path) if _json_server(path, name) else None
    own = target_path("codex", home=home)
    for path in (d / "config.toml" for d in codex_project_dirs(cwd)):
        if path.resolve() != own.resolve() and toml_table(_text(path), f"mcp_servers.{name}"):
            return str(path)
    return None


def _scope_file(app: str, scope: str, *, home: Path | None, cwd: Path) -> Path:
    """The JSON file of Claude Code's or Gemini CLI's ``scope``."""
    if app == "claude":
        return cwd / ".mcp.json" if scope == "project" else claude_state_path(home)
    if scope == "project":
        return cwd / PROJECT_DIR["gemini"] / "settings.json"
    return user_dir("gemini", home=home) / "settings.json"


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _json_server(path: Path, name: str) -> bool:
    """Whether the JSON settings file ``path`` holds an ``mcpServers`` entry ``name`` (one
    that cannot be read: ``ConfigError``)."""
    servers = read_settings(path)[0].get("mcpServers")
    return isinstance(servers, Mapping) and name in servers


def elsewhere_words(
    name: str, found: Elsewhere, *, removal: str | None = None, removed: bool = False
) -> str:
    """What an install (``removed``: a removal) says of ``found``, an entry of the same name
    at the client's other scope: which of the two the client starts, and why; ``removal``:
    the command that takes that entry out (None: it is edited by hand)."""
    app = APP_NAMES[found.app]
    there = f"{found.where} ({app}'s {found.scope} scope)"
    order = _ORDER[found.app]
    if found.unreadable is not None:
        return (
            f"whether {name} is also at {app}'s {found.scope} scope, and which one {app} "
            f"starts in this project, is unknown: {found.unreadable}"
        )
    if found.untrusted:
        config = target_path("codex")
        later = "it would start that one, not this" if not removed else "it would start that one"
        now = "starts the one installed here" if not removed else "has none here now"
        return (
            f"{name} is {'still' if removed else 'also'} in {there}, but {app} reads a "
            f"project's .codex/config.toml only in a project it trusts, and this one is not "
            f'(no trust_level = "trusted" under its [projects."PATH"] in {config}): {app} '
            f"{now}; once you trust the project, {later} ({order})"
        )
    fix = (
        f"take that one out (`{removal}`), or install at the {found.scope} scope"
        if removal
        else "take that one out of its file"
    )
    if found.approval and not (removed and found.scope == "user"):
        return _approval_words(name, found, there, fix, removed=removed)
    if removed:
        return f"{name} is still in {there}, and {app} starts that one in this project ({order})"
    if not found.used:
        return (
            f"{name} is also in {there}, but {app} starts the one installed here in this "
            f"project, not that one ({order}): an edit of that one changes nothing here"
        )
    return (
        f"{name} is also in {there}, and {app} starts that one in this project, not the one "
        f"installed here ({order}): {fix}"
    )


# Where Claude Code keeps a "no" to a project's .mcp.json server, and how it asks again
_DECLINED_IN = f"a {_DISABLED} line of Claude Code's settings"
_ASK_AGAIN = (
    "take that line out (.claude/settings.local.json, most likely), or run `claude mcp "
    "reset-project-choices` here to be asked again"
)


def _approval_words(name: str, found: Elsewhere, there: str, fix: str, *, removed: bool) -> str:
    """``elsewhere_words`` of Claude Code's project scope against its user scope: which of
    the two it starts follows the project's .mcp.json entry's approval (``found.approval``),
    ``found`` being that entry (at the project scope) or the user scope's."""
    order = _ORDER["claude"]
    state = found.approval
    if removed:  # (found: the project's entry, the user scope's one removed)
        return {
            APPROVED: f"{name} is still in {there}, and Claude Code starts that one in this "
            f"project, as it is approved there ({order})",
            PENDING: f"{name} is still in {there}, which Claude Code starts in this project "
            f"once it is approved there (it asks as it starts here) ({order})",
            DECLINED: f"{name} is still in {there}, but it is declined there ({_DECLINED_IN}): "
            f"Claude Code starts no {name} in this project ({order})",
        }[state]
    if found.scope == "project":  # (the one installed here: the user scope's)
        return {
            APPROVED: f"{name} is also in {there}, and Claude Code starts that one in this "
            f"project (it is approved there), not the one installed here ({order}): {fix}",
            PENDING: f"{name} is also in {there}, which is not approved there yet: Claude Code "
            "starts the one installed here in this project until that one is approved (it "
            f"asks as it starts here), then that one ({order}): to keep the one installed "
            f"here, decline that one when asked, or {fix}",
            DECLINED: f"{name} is also in {there}, but it is declined there ({_DECLINED_IN}): "
            "Claude Code starts the one installed here in this project, not that one "
            f"({order}): an edit of that one changes nothing here",
        }[state]
    return {  # (the one installed here: the project's .mcp.json entry)
        APPROVED: f"{name} is also in {there}, but Claude Code starts the one installed here "
        f"in this project (it is approved here), not that one ({order}): an edit of that one "
        "changes nothing here",
        PENDING: f"{name} is also in {there}, and Claude Code starts that one in this project "
        "until the one installed here is approved (it asks as it starts here), then the one "
        f"installed here ({order}): approve it when asked",
        DECLINED: f"{name} is also in {there}, and Claude Code starts that one in this project, "
        f"not the one installed here, which is declined here ({_DECLINED_IN}) ({order}): to "
        f"start the one installed here, {_ASK_AGAIN}",
    }[state]
