"""``swarm hooks install``: the hook entries each client loads, merged into its settings file.

All three clients read the same nesting: ``{"hooks": {EVENT: [{"matcher": ..., "hooks":
[{"type": "command", "command": ..., "timeout": ...}]}]}}`` in ``.claude/settings.json``,
``.codex/hooks.json`` and ``.gemini/settings.json`` (project scope; for the user, in the
folder the client finds: ``~/.claude``, ``~/.codex``, ``~/.gemini``, or where
CLAUDE_CONFIG_DIR, CODEX_HOME or GEMINI_CLI_HOME moves it, as ``swarm mcp install`` finds it:
``_client_files.user_dir``). Claude Code and Codex take the timeout in seconds, Gemini CLI in
milliseconds. Our entries are the hooks whose command runs ``swarm ... hook EVENT`` (one rule,
``is_swarm_hook``, whatever executable: this install's, another venv's, ``python -m
redis_swarm``), wherever they are, in a group of their own or in one of the user's:
installing again replaces them all (a second install changes nothing; one with other
options says what they were, ``Merged.previous``, ``replaced_words``), ``remove`` takes them
out (a user's group keeps the user's hooks; the containers left empty go), and everything
else in the file is kept as it was.

Unlike an MCP server (the client starts one of two of the same name), the client runs every
hook it finds, in every file it reads (``read_by``: each scope's, Claude Code's
``settings.local.json``, Codex's ``config.toml`` ``[hooks]`` tables): ours in another of
them too (``elsewhere``) means each event answered twice (messages shown twice, a second
task claimed at each loop Stop), which the install says, naming the file and the entries.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
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
from .formats import EVENTS, client_event

__all__ = [
    "HOOK_TIMEOUT_S",
    "LOCAL_SCOPE_CLAUDES",
    "Elsewhere",
    "Merged",
    "Printed",
    "apply",
    "describe_hooks",
    "elsewhere",
    "elsewhere_words",
    "entries",
    "held_words",
    "is_swarm_hook",
    "merge",
    "printed",
    "printed_words",
    "read_by",
    "replaced_words",
    "settings_path",
    "unmerge",
]

HOOK_TIMEOUT_S = 30
# A session's end is given little time by the clients (Codex clamps its hooks' timeout to
# 3 s, warning of a longer one; Claude Code waits 1.5 s for them all): asked for no more.
_SESSION_END_TIMEOUT_S = 3


_FILE = {"claude": "settings.json", "codex": "hooks.json", "gemini": "settings.json"}
_LOCAL_FILE = "settings.local.json"  # (Claude Code's own, kept out of version control)
# The refusal of ``--scope local`` for another client (by ``settings_path``, and the CLI first).
LOCAL_SCOPE_CLAUDES = (
    f"--scope local is Claude Code's alone ({PROJECT_DIR['claude']}/{_LOCAL_FILE}): "
    "use project or user"
)


def settings_path(
    client: str, scope: str, *, cwd: Path | None = None, home: Path | None = None
) -> Path:
    """The file the hooks of ``client`` go in: the project's, the one in the user folder
    the client finds (``user_dir``), or (``local``, Claude Code's alone) the project's
    ``.claude/settings.local.json``, which Claude Code reads beside the project's."""
    if scope == "user":
        return user_dir(client, home=home) / _FILE[client]
    if scope == "local":
        if client != "claude":
            raise ConfigError(LOCAL_SCOPE_CLAUDES)
        return (cwd or Path.cwd()) / PROJECT_DIR[client] / _LOCAL_FILE
    return (cwd or Path.cwd()) / PROJECT_DIR[client] / _FILE[client]


# Every name a client gives an event (any case, as ``swarm hook`` takes it): a command that
# runs ``... hook NAME`` with one of these is a hook of ours.
_EVENT_NAMES = frozenset(
    name.lower() for event in EVENTS for c in _FILE if (name := client_event(event, c))
)
# The module a ``python -m`` runs the CLI as.
_MODULES = ("redis_swarm", "redis_swarm.cli")


def is_swarm_hook(hook: Any) -> bool:
    """The one rule that tells a hook entry (``{"type": "command", "command": ...}``) of ours,
    whatever the executable that runs it and however it is launched: its command runs
    ``swarm`` (this install's, another venv's, one on PATH: ``swarm`` or ``swarm.exe`` by
    name, nothing else) or ``python -m redis_swarm``, before ``hook EVENT`` (``... swarm
    [options] hook EVENT ...``), after any launcher or assignment (``env A=1 swarm ...``,
    ``uvx --from redis-swarm swarm ...``). Install, remove and the warnings of a second set
    all use it: an entry of another venv's ``swarm`` that an install kept beside its own
    made the client answer each event twice, and another tool's (``claude-swarm hook
    stop``) taken for ours was deleted."""
    command = hook.get("command") if isinstance(hook, dict) else None
    if not isinstance(command, str):
        return False
    try:
        argv = shlex.split(command)
    except ValueError:  # (unbalanced quotes: no command of ours)
        return False
    for at, word in enumerate(argv[1:-1], start=1):
        if word == "hook" and argv[at + 1].lower() in _EVENT_NAMES:
            return _runs_swarm(argv[:at])
    return False


# The names of swarm's executable (a console script; ``.exe`` on Windows).
_EXECUTABLES = ("swarm", "swarm.exe")


def _runs_swarm(argv: list[str]) -> bool:
    """Whether ``argv`` (what comes before ``hook``) starts redis-swarm's CLI: a word that
    is an executable named ``swarm`` exactly (any folder), or ``-m redis_swarm``, anywhere in
    it (a launcher and its options, or variables set, may come first)."""
    if any(re.split(r"[\\/]", word)[-1].lower() in _EXECUTABLES for word in argv):
        return True
    return any(argv[i] == "-m" and argv[i + 1] in _MODULES for i in range(len(argv) - 1))


def _split(group: Any) -> tuple[Any, list[Any]]:
    """``group`` without our hooks (None: nothing of it left), and our hooks in it."""
    hooks = group.get("hooks") if isinstance(group, dict) else None
    if not isinstance(hooks, list):
        return group, []
    mine = [h for h in hooks if is_swarm_hook(h)]
    if not mine:
        return group, []
    kept = [h for h in hooks if not is_swarm_hook(h)]
    return ({**group, "hooks": kept} if kept else None), mine


def entries(client: str, command: list[str], options: list[str]) -> dict[str, list[Any]]:
    """Event name -> our one group, for every event ``client`` has."""
    out: dict[str, list[Any]] = {}
    for event in EVENTS:
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


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without our hooks (``is_swarm_hook``), wherever they are: a group of the
    user's that holds one of ours keeps the user's hooks; a group left with none goes, and
    so do the containers that leaves empty."""
    hooks = dict(data.get("hooks", {}))
    for event, groups in list(hooks.items()):
        if not isinstance(groups, list):
            continue
        kept = [g for g in (_split(g)[0] for g in groups) if g is not None]
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


def merge(data: dict[str, Any], ours: dict[str, list[Any]]) -> dict[str, Any]:
    """``data`` with our groups (in place of every hook of ours it held: ``_strip``)."""
    out = _strip(data)
    hooks = dict(out.get("hooks", {}))
    for event, groups in ours.items():
        existing = hooks.get(event, [])  # (a list: ``_read`` refuses another)
        hooks[event] = [*(existing if isinstance(existing, list) else [existing]), *groups]
    out["hooks"] = hooks
    return out


def unmerge(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without any hook of ours (``_strip``)."""
    return _strip(data)


def _ours(data: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Event name -> our hooks in ``data``, each event's as one group (the events with none
    left out)."""
    hooks = data.get("hooks", {})
    found: dict[str, list[Any]] = {}
    for event, groups in hooks.items() if isinstance(hooks, dict) else ():
        mine = [h for g in groups for h in _split(g)[1]] if isinstance(groups, list) else []
        if mine:
            found[event] = [{"hooks": mine}]
    return found


def apply(path: Path, ours: dict[str, list[Any]], *, remove: bool) -> Merged:
    """Merge our groups into (or take them out of) the file: whether it changed, and our
    groups it held before (None: none). A file left empty by a removal is deleted."""
    data, commented = _read(path)
    previous = _ours(data) or None
    new = unmerge(data) if remove else merge(data, ours)
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


def printed(path: Path, ours: dict[str, list[Any]]) -> Printed:
    """What an install without --write prints for the file at ``path`` (``Printed``)."""
    data, commented = _read(path)
    merged = merge(data, ours)
    previous = _ours(data) or None
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


def _hooks_only(groups: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Event -> one group of its hooks (matchers left out): what an install compares of our
    entries before and after (``_ours`` gives them so)."""
    if groups is None:
        return None
    return {e: [{"hooks": [h for g in gs for h in g.get("hooks", [])]}]
            for e, gs in groups.items()}  # fmt: skip


def replaced_words(previous: Mapping[str, Any] | None, ours: Mapping[str, Any]) -> str:
    """What an install says of our groups ``previous`` it replaced with ``ours``."""
    return replacement_words(
        _hooks_only(previous), _hooks_only(ours) or {}, describe=describe_hooks,
        other="URL, home, executable, events or timeouts", plural=True,
    )  # fmt: skip


@dataclass(frozen=True)
class Elsewhere:
    """A file the client reads hooks from, other than the one installed, that holds hooks of
    ours: its scope (``project``: a project's, maybe a folder above this one, Codex reading
    every one up to the project's root; ``local``: Claude Code's
    ``.claude/settings.local.json``), its path and our hooks in it (event -> groups). The
    client runs those too."""

    app: str
    scope: str
    path: Path
    held: dict[str, list[Any]]

    @property
    def by_hand(self) -> bool:
        """Whether no ``swarm hooks install`` edits that file (Codex's ``config.toml``,
        whose ``[hooks]`` tables it reads too): taken out by hand."""
        return self.path.suffix == ".toml"


def read_by(
    client: str, *, cwd: Path | None = None, home: Path | None = None
) -> list[tuple[str, Path]]:
    """Every file ``client`` reads hooks from, in ``cwd``, with its scope: the user's and the
    project's settings; Claude Code's ``.claude/settings.local.json`` too (it runs the hooks
    of every one of them); for Codex, ``hooks.json`` and the ``[hooks]`` tables of
    ``config.toml`` beside each of its config layers (the user's, and the project's in this
    folder and each above it, up to the checkout's root)."""
    where = cwd or Path.cwd()
    user = user_dir(client, home=home)
    if client == "codex":
        layers = [("user", user), *(("project", d) for d in codex_project_dirs(where))]
        return [(s, d / name) for s, d in layers for name in (_FILE[client], "config.toml")]
    project = settings_path(client, "project", cwd=where)
    files = [("user", user / _FILE[client]), ("project", project)]
    if client == "claude":
        files.append(("local", settings_path(client, "local", cwd=where)))
    return files


def _held_in(path: Path) -> dict[str, list[Any]]:
    """Our hooks in ``path`` (a JSON settings file, or Codex's ``config.toml``)."""
    if path.suffix == ".toml":
        if sys.version_info >= (3, 11):  # (imported only when a Codex install looks)
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            return _ours(tomllib.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return {}
    return _ours(_load(path))


def elsewhere(
    client: str, scope: str, *, cwd: Path | None = None, home: Path | None = None
) -> list[Elsewhere]:
    """The other files ``client`` reads hooks from in ``cwd`` (``read_by``) that hold hooks
    of ours, whatever executable runs them (``is_swarm_hook``); a file it cannot read is
    left to the client to report."""
    mine = settings_path(client, scope, cwd=cwd, home=home).resolve()
    found: list[Elsewhere] = []
    for other, path in read_by(client, cwd=cwd, home=home):
        if path.resolve() == mine:  # (run in the home folder: one file for both scopes)
            continue
        try:
            held = _held_in(path)
        except (ConfigError, OSError, ValueError):
            continue
        if held:
            found.append(Elsewhere(APP_NAMES[client], other, path, held))
    return found


def held_words(found: Elsewhere) -> str:
    """The hooks of ours ``found`` holds, named: its events and what they run (never a URL's
    password: ``describe_hooks``)."""
    return (
        f"{found.path} holds `swarm hook` entries for {', '.join(found.held)}: "
        f"{describe_hooks(found.held)}"
    )


def elsewhere_words(found: Elsewhere, removal: str, *, removed: bool = False) -> str:
    """What an install (``removed``: a removal) says of ``found``: the client runs those
    hooks too; ``removal``: the command that takes them out (``found.by_hand``: how to take
    them out by hand)."""
    there = f"{found.path} ({found.app}'s {found.scope} scope)"
    if removed:
        how = f"take them out {removal}" if found.by_hand else f"`{removal}` takes them out too"
        return (
            f"`swarm hook` entries are still in {there}, and {found.app} runs them at every "
            f"event: {how}"
        )
    how = f"that one {removal}" if found.by_hand else f"that one with `{removal}`"
    return (
        f"`swarm hook` entries are also in {there}: {found.app} runs both sets at every event "
        f"(each message shown twice; with --loop, a second task claimed at each Stop): take "
        f"one set out: {how}, or this one with --remove"
    )
