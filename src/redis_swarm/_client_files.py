"""Where Claude Code, Codex and Gemini CLI keep their configuration, found as each client
finds it, and what an install says when it replaces what it wrote there before: one place
for ``swarm mcp install`` (``mcp_server._install``) and ``swarm hooks install``
(``_hooks.install``), so that both write where the client reads, and read their JSON settings
files alike (``read_settings``: Gemini CLI's may hold comments, and are never rewritten then,
``refuse_commented``). ``swarm mcp install``'s two merges, of the JSON files
(``mcp_server._install``) and of Codex's TOML (``mcp_server._codex_toml``), share the rest:
``as_entry`` (what of ours a file held), ``write_config`` and ``tighten_config`` (a file that
holds a password made 0600).

Each client's user folder can be moved by a variable of its environment (``USER_DIR_ENV``;
checked with Claude Code 2.1.197, Codex 0.171 and Gemini CLI 0.61, run with a private HOME):

- Claude Code: ``CLAUDE_CONFIG_DIR`` is the folder itself, in place of ``~/.claude``
  (``$CLAUDE_CONFIG_DIR/settings.json``), and holds ``.claude.json`` in place of
  ``~/.claude.json``.
- Codex: ``CODEX_HOME`` is the folder itself, in place of ``~/.codex`` (``config.toml``,
  ``hooks.json``).
- Gemini CLI: ``GEMINI_CLI_HOME`` is a home, in place of ``~``: the folder is its
  ``.gemini`` (``$GEMINI_CLI_HOME/.gemini/settings.json``).

Set but empty, a variable is taken as unset.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ConfigError

__all__ = [
    "APP_NAMES",
    "PROJECT_DIR",
    "USER_DIR_ENV",
    "Merged",
    "allows_comments",
    "as_entry",
    "claude_state_path",
    "codex_project_dirs",
    "read_settings",
    "refuse_commented",
    "replacement_words",
    "strip_comments",
    "tighten_config",
    "user_dir",
    "write_config",
]

APP_NAMES = {"claude": "Claude Code", "codex": "Codex", "gemini": "Gemini CLI"}
# The variable that moves each client's user folder (see above for what each names).
USER_DIR_ENV = {"claude": "CLAUDE_CONFIG_DIR", "codex": "CODEX_HOME", "gemini": "GEMINI_CLI_HOME"}
# Each client's folder in a project, and (under the home) its user folder by default.
PROJECT_DIR = {"claude": ".claude", "codex": ".codex", "gemini": ".gemini"}


def _from_env(app: str) -> Path | None:
    value = os.environ.get(USER_DIR_ENV[app])
    return Path(value) if value else None


def user_dir(app: str, *, home: Path | None = None) -> Path:
    """The folder of ``app``'s user configuration, as the client finds it: its variable's
    (``USER_DIR_ENV``), else the one in ``home`` (None: the user's)."""
    moved = _from_env(app)
    if app == "gemini":  # (its variable names a home, not the folder)
        return (moved or home or Path.home()) / PROJECT_DIR[app]
    return moved or (home or Path.home()) / PROJECT_DIR[app]


def claude_state_path(home: Path | None = None) -> Path:
    """Where Claude Code keeps its user and local scopes' MCP servers: ``~/.claude.json``, or
    in ``CLAUDE_CONFIG_DIR``."""
    return (_from_env("claude") or home or Path.home()) / ".claude.json"


def codex_project_dirs(cwd: Path) -> list[Path]:
    """The ``.codex`` folders Codex reads (``config.toml``, ``hooks.json``) in ``cwd``: in it
    and the folders above it, up to the project's root (the folder holding .git; only ``cwd``
    outside a checkout). Codex 0.171's ``hooks/list`` lists the hooks of each."""
    real = cwd.resolve()
    root = next((d for d in (real, *real.parents) if (d / ".git").exists()), real)
    folders = [real, *real.parents]
    return [d / PROJECT_DIR["codex"] for d in folders[: folders.index(root) + 1]]


@dataclass(frozen=True)
class Merged:
    """What merging our entries into a client's file did: whether the file changed (or its
    mode), and what of ours the file held before (None: nothing; an empty dict: an entry
    that could not be read)."""

    changed: bool
    previous: dict[str, Any] | None = None


def replacement_words(
    previous: Mapping[str, Any] | None,
    entry: Mapping[str, Any],
    *,
    describe: Callable[[Mapping[str, Any] | None], str],
    other: str,
    plural: bool = False,
) -> str:
    """What an install says of what it replaced, ``previous``, with ``entry``: ``describe``
    puts each in a few words; ``other``: the settings those words leave out, said when only
    they differ; ``plural``: the words are of several entries (they were ...)."""
    had, was_ = ("they had", "they were") if plural else ("it had", "it was")
    if previous == entry:
        return f"{had} the same settings"
    was = describe(previous)
    if not previous or was != describe(entry):
        return f"{was_} {was}"
    return f"{was_} {was} too, with other settings ({other})"


def allows_comments(path: Path) -> bool:
    """Whether ``path`` is Gemini CLI's settings file (``.gemini/settings.json``, the
    project's or the user's), which Gemini reads with ``//`` and ``/* */`` comments."""
    return path.name == "settings.json" and path.parent.name == PROJECT_DIR["gemini"]


def strip_comments(text: str) -> str:
    """``text`` without its ``//`` and ``/* */`` comments outside strings (each replaced by
    spaces, its newlines kept, so an error's line and column still point into the file), as
    Gemini CLI strips them before parsing its settings."""
    out: list[str] = []
    at, size = 0, len(text)
    while at < size:
        char = text[at]
        if char == '"':
            end = at + 1
            while end < size and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[at : end + 1])
            at = end + 1
        elif text.startswith("//", at):
            end = text.find("\n", at)
            end = size if end < 0 else end
            out.append(" " * (end - at))
            at = end
        elif text.startswith("/*", at):
            end = text.find("*/", at + 2)
            end = size if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[at:end]))
            at = end
        else:
            out.append(char)
            at += 1
    return "".join(out)


def read_settings(path: Path) -> tuple[dict[str, Any], bool]:
    """A client's JSON settings file as an object ({} when missing or empty), and whether it
    holds comments (only Gemini CLI's may: ``allows_comments``). A file that is no JSON
    object is refused (``ConfigError``): what it holds must not be lost by a rewrite."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, False
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}): fix or move it first") from None
    plain = strip_comments(text) if allows_comments(path) else text
    try:
        loaded = json.loads(plain) if plain.strip() else {}
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}): fix or move it first") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} does not hold a JSON object: fix or move it first")
    return loaded, plain != text


def refuse_commented(path: Path, by_hand: str) -> None:
    """Refuse to rewrite a settings file that holds comments (Gemini CLI's): the rewrite
    would lose them. ``by_hand``: how the user makes the change instead."""
    raise ConfigError(
        f"{path} holds comments, which Gemini CLI reads but a rewrite of the file would lose: "
        f"nothing was changed: {by_hand}; or take the comments out, then run this again"
    )


def as_entry(found: object) -> dict[str, Any] | None:
    """A server entry as read from a client's file (JSON or TOML): None when there is none,
    {} when what is there is no object (table)."""
    if found is None:
        return None
    return dict(found) if isinstance(found, Mapping) else {}


def tighten_config(path: Path) -> bool:
    """An unchanged file that holds a password, made 0600 if it was not: whether it was."""
    if not path.exists() or path.stat().st_mode & 0o077 == 0:
        return False
    path.chmod(0o600)
    return True


def write_config(path: Path, text: str, *, private: bool) -> None:
    """Write ``text`` to ``path``; ``private`` (it holds a password): readable by its owner
    only, the mode set before the text is in it (a new file is created 0600, an existing one
    tightened)."""
    if private:
        if path.exists():
            path.chmod(0o600)
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    path.write_text(text)
