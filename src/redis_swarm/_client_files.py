"""Where Claude Code, Codex and Gemini CLI keep their configuration, found as each client
finds it, and what an install says when it replaces what it wrote there before: one place
for ``swarm mcp install`` (``mcp_server._install``) and ``swarm hooks install``
(``_hooks.install``), so that both write where the client reads.

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

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "APP_NAMES",
    "PROJECT_DIR",
    "USER_DIR_ENV",
    "Merged",
    "claude_state_path",
    "codex_project_dirs",
    "replacement_words",
    "user_dir",
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
