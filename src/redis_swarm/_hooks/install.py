"""``swarm hooks install``: the hook entries each client loads, merged into its settings file.

All three clients read the same nesting: ``{"hooks": {EVENT: [{"matcher": ..., "hooks":
[{"type": "command", "command": ..., "timeout": ...}]}]}}`` in ``.claude/settings.json``,
``.codex/hooks.json`` and ``.gemini/settings.json`` (project scope; for the user, in the
folder the client finds: ``~/.claude``, ``~/.codex``, ``~/.gemini``, or where
CLAUDE_CONFIG_DIR, CODEX_HOME or GEMINI_CLI_HOME moves it, as ``swarm mcp install`` finds it:
``_client_files.user_dir``). Claude Code and Codex take the timeout in seconds, Gemini CLI in
milliseconds. Our entries are the groups whose every command runs this install's ``swarm ...
hook``: installing again replaces them (a second install changes nothing; one with other
options says what they were, ``Merged.previous``, ``replaced_words``), ``remove`` takes them
and the containers left empty out, and everything else in the file is kept as it was.

Unlike an MCP server (the client starts one of two of the same name), the client runs every
hook it finds, at each scope: ours at the other scope too (``elsewhere``) means each event
answered twice (messages shown twice, a second task claimed at each loop Stop), which the
install says.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._client_files import (
    APP_NAMES,
    PROJECT_DIR,
    Merged,
    codex_project_dirs,
    read_settings,
    refuse_commented,
    replacement_words,
    user_dir,
)
from .._config import mask_url
from .._errors import ConfigError
from .._printable import printable
from .formats import client_event

__all__ = [
    "HOOK_TIMEOUT_S",
    "Elsewhere",
    "Merged",
    "Printed",
    "apply",
    "describe_hooks",
    "elsewhere",
    "elsewhere_words",
    "entries",
    "merge",
    "printed",
    "printed_words",
    "replaced_words",
    "settings_path",
    "unmerge",
]

HOOK_TIMEOUT_S = 30
_EVENTS = ("SessionStart", "UserPromptSubmit", "Stop", "SubagentStart", "SubagentStop",
           "PreCompact", "SessionEnd")  # fmt: skip
# A session's end is given little time by the clients (Codex clamps its hooks' timeout to
# 3 s, warning of a longer one; Claude Code waits 1.5 s for them all): asked for no more.
_SESSION_END_TIMEOUT_S = 3


_FILE = {"claude": "settings.json", "codex": "hooks.json", "gemini": "settings.json"}


def settings_path(
    client: str, scope: str, *, cwd: Path | None = None, home: Path | None = None
) -> Path:
    """The file the hooks of ``client`` go in: the project's, or the one in the user folder
    the client finds (``user_dir``)."""
    if scope == "user":
        return user_dir(client, home=home) / _FILE[client]
    return (cwd or Path.cwd()) / PROJECT_DIR[client] / _FILE[client]


def _is_ours(group: Any, prefix: str) -> bool:
    hooks = group.get("hooks") if isinstance(group, dict) else None
    return (
        isinstance(hooks, list)
        and bool(hooks)
        and all(
            isinstance(h, dict)
            and str(h.get("command", "")).startswith(prefix + " ")
            and " hook " in str(h.get("command", ""))
            for h in hooks
        )
    )


def entries(client: str, command: list[str], options: list[str]) -> dict[str, list[Any]]:
    """Event name -> our one group, for every event ``client`` has."""
    out: dict[str, list[Any]] = {}
    for event in _EVENTS:
        name = client_event(event, client)
        if name is None:
            continue
        line = shlex.join([*command, "hook", name, "--client", client, *options])
        hook: dict[str, Any] = {"type": "command", "command": line}
        timeout_s = _SESSION_END_TIMEOUT_S if event == "SessionEnd" else HOOK_TIMEOUT_S
        if client == "gemini":
            hook |= {"name": f"swarm-{name}", "timeout": timeout_s * 1000}
        else:
            hook["timeout"] = timeout_s
        out[name] = [{"matcher": "", "hooks": [hook]}] if client != "codex" else [{"hooks": [hook]}]
    return out


def _read(path: Path) -> tuple[dict[str, Any], bool]:
    """The settings file (empty when missing), and whether it holds comments (Gemini CLI's
    may: ``read_settings``). One the clients would not read as hooks is refused: its
    ``hooks`` no object, or an event's entry no list of groups (a rewrite would turn it into
    one, hiding the mistake)."""
    data, commented = read_settings(path)
    hooks = data.get("hooks", {})
    if not isinstance(hooks, dict):
        raise ConfigError(f"'hooks' in {path} is not an object: fix it first")
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            raise ConfigError(
                f'\'hooks.{event}\' in {path} is not a list (of {{"matcher", "hooks"}} '
                "groups), which the client would not read: fix or move it first"
            )
    return data, commented


def _load(path: Path) -> dict[str, Any]:
    return _read(path)[0]


def _strip(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``data`` without our groups, and without the containers that leaves empty."""
    hooks = dict(data.get("hooks", {}))
    for event, groups in list(hooks.items()):
        if not isinstance(groups, list):
            continue
        kept = [g for g in groups if not _is_ours(g, prefix)]
        if kept:
            hooks[event] = kept
        else:
            del hooks[event]
    out = dict(data)
    if hooks:
        out["hooks"] = hooks
    else:
        out.pop("hooks", None)
    return out


def merge(data: dict[str, Any], ours: dict[str, list[Any]], prefix: str) -> dict[str, Any]:
    """``data`` with our groups (replacing the ones an earlier install put there)."""
    out = _strip(data, prefix)
    hooks = dict(out.get("hooks", {}))
    for event, groups in ours.items():
        existing = hooks.get(event, [])  # (a list: ``_read`` refuses another)
        hooks[event] = [*(existing if isinstance(existing, list) else [existing]), *groups]
    out["hooks"] = hooks
    return out


def unmerge(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``data`` without what ``merge`` added."""
    return _strip(data, prefix)


def _ours(data: Mapping[str, Any], prefix: str) -> dict[str, list[Any]]:
    """Event name -> our groups in ``data`` (the events with none left out)."""
    hooks = data.get("hooks", {})
    found: dict[str, list[Any]] = {}
    for event, groups in hooks.items() if isinstance(hooks, dict) else ():
        mine = [g for g in groups if _is_ours(g, prefix)] if isinstance(groups, list) else []
        if mine:
            found[event] = mine
    return found


def apply(path: Path, ours: dict[str, list[Any]], prefix: str, *, remove: bool) -> Merged:
    """Merge our groups into (or take them out of) the file: whether it changed, and our
    groups it held before (None: none). A file left empty by a removal is deleted."""
    data, commented = _read(path)
    previous = _ours(data, prefix) or None
    new = unmerge(data, prefix) if remove else merge(data, ours, prefix)
    if new == data:
        return Merged(False, previous)
    if commented:
        refuse_commented(
            path,
            "take the `swarm hook` entries out by hand"
            if remove
            else "run this again without --write to print the entries to add, and add them "
            "to the file by hand",
        )
    if not new and remove:
        path.unlink()
        return Merged(True, previous)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(new, indent=2) + "\n", encoding="utf-8")
    return Merged(True, previous)


@dataclass(frozen=True)
class Printed:
    """What an install without --write prints (``printed``): ``settings``, the file with our
    groups merged in; for a file that holds comments (``commented``: Gemini CLI's), which a
    merged copy would lose, only ``{"hooks": ...}``, our groups, to add by hand. ``previous``:
    our groups the file holds already (None: none); ``unchanged``: they are these."""

    settings: dict[str, Any]
    commented: bool = False
    previous: dict[str, list[Any]] | None = None
    unchanged: bool = False


def printed(path: Path, ours: dict[str, list[Any]], prefix: str) -> Printed:
    """What an install without --write prints for the file at ``path`` (``Printed``)."""
    data, commented = _read(path)
    merged = merge(data, ours, prefix)
    previous = _ours(data, prefix) or None
    shown = {"hooks": ours} if commented else merged
    return Printed(shown, commented, previous, unchanged=merged == data)


def printed_words(path: Path, shown: Printed) -> str:
    """What an install without --write says of what it prints, ``shown``, for the file at
    ``path``: where it goes; for a file with comments, that only our entries are printed, and
    how to add them by hand."""
    if not shown.commented:
        return f"goes in {path} (--write merges it)"
    said = (
        f"{path} holds comments, which a merged copy would lose (and --write refuses to "
        "rewrite it): "
    )
    if shown.unchanged:
        return said + "it holds these `swarm hook` entries already: nothing to add"
    said += (
        "printed are only the entries to add by hand: each event's group at the end of that "
        'event\'s list under "hooks" (an event missing there: the list as printed)'
    )
    if shown.previous is not None:
        said += ", in place of the `swarm hook` entries the file holds"
    return said


def describe_hooks(groups: Mapping[str, Any] | None) -> str:
    """Our groups in a few words, to say what an install replaced: the ``swarm hook`` options
    they run with, and their swarm. Never their Redis URL, which may hold a password (an
    install with another URL only says they had other settings)."""
    commands = [h.get("command") for gs in (groups or {}).values() for g in gs
                for h in g.get("hooks", [])]  # fmt: skip
    try:
        argv = shlex.split(str(commands[0]))
        at = argv.index("hook")
    except (IndexError, ValueError):
        return "hooks that could not be read"
    reach, options = argv[:at], argv[at + 2 :]  # (the event, which differs, left out)
    # (an option that is a URL is shown without its user and password, as an error shows one)
    masked = [mask_url(a) if "://" in a else a for a in options]
    words = shlex.join(["swarm", "hook", "EVENT", *masked])
    swarm = reach[reach.index("--swarm") + 1] if "--swarm" in reach[:-1] else None
    return printable(f"{words}, swarm {swarm}" if swarm is not None else words)


def replaced_words(previous: Mapping[str, Any] | None, ours: Mapping[str, Any]) -> str:
    """What an install says of our groups ``previous`` it replaced with ``ours``."""
    return replacement_words(
        previous, ours, describe=describe_hooks, other="URL, home, executable, events or "
        "timeouts", plural=True,
    )  # fmt: skip


@dataclass(frozen=True)
class Elsewhere:
    """A settings file of the client, other than the one installed, that holds our groups:
    its scope (``project``: a project's, maybe a folder above this one, Codex reading every
    one up to the project's root) and its path. The client runs those too."""

    app: str
    scope: str
    path: Path


def elsewhere(
    client: str, scope: str, prefix: str, *, cwd: Path | None = None, home: Path | None = None
) -> list[Elsewhere]:
    """The other files ``client`` reads hooks from in ``cwd`` that hold our groups (a file it
    cannot read is left to the client to report)."""
    where = cwd or Path.cwd()
    mine = settings_path(client, scope, cwd=where, home=home).resolve()
    if client == "codex":
        projects = [d / _FILE[client] for d in codex_project_dirs(where)]
    else:
        projects = [settings_path(client, "project", cwd=where)]
    files = [("user", settings_path(client, "user", home=home))]
    files += [("project", p) for p in projects]
    found: list[Elsewhere] = []
    for other, path in files:
        if path.resolve() == mine:  # (run in the home folder: one file for both scopes)
            continue
        try:
            held = _ours(_load(path), prefix)
        except (ConfigError, OSError):
            continue
        if held:
            found.append(Elsewhere(APP_NAMES[client], other, path))
    return found


def elsewhere_words(found: Elsewhere, removal: str, *, removed: bool = False) -> str:
    """What an install (``removed``: a removal) says of ``found``: the client runs those
    hooks too; ``removal``: the command that takes them out."""
    there = f"{found.path} ({found.app}'s {found.scope} scope)"
    if removed:
        return (
            f"`swarm hook` entries are still in {there}, and {found.app} runs them at every "
            f"event: `{removal}` takes them out too"
        )
    return (
        f"`swarm hook` entries are also in {there}: {found.app} runs both sets at every event "
        "(each message shown twice; with --loop, a second task claimed at each Stop): take "
        f"one set out: that one with `{removal}`, or this one with --remove"
    )
