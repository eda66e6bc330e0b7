"""``swarm hooks install``: the hook entries each client loads, merged into its settings file.

All three clients read the same nesting: ``{"hooks": {EVENT: [{"matcher": ..., "hooks":
[{"type": "command", "command": ..., "timeout": ...}]}]}}`` in ``.claude/settings.json``,
``.codex/hooks.json`` and ``.gemini/settings.json`` (project scope; ``~/...`` for the user).
Claude Code and Codex take the timeout in seconds, Gemini CLI in milliseconds. Our entries
are the groups whose every command runs this install's ``swarm ... hook``: installing again
replaces them (a second install changes nothing), ``remove`` takes them and the containers
left empty out, and everything else in the file is kept as it was.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .formats import client_event

__all__ = ["HOOK_TIMEOUT_S", "apply", "entries", "load", "merge", "settings_path", "unmerge"]

HOOK_TIMEOUT_S = 30
_EVENTS = ("SessionStart", "UserPromptSubmit", "Stop", "SubagentStart", "SubagentStop",
           "PreCompact", "SessionEnd")  # fmt: skip
# A session's end is given little time by the clients (Codex clamps its hooks' timeout to
# 3 s, warning of a longer one; Claude Code waits 1.5 s for them all): asked for no more.
_SESSION_END_TIMEOUT_S = 3


def settings_path(
    client: str, scope: str, *, cwd: Path | None = None, home: Path | None = None
) -> Path:
    """The file the hooks of ``client`` go in."""
    base = (home or Path.home()) if scope == "user" else (cwd or Path.cwd())
    name = {"claude": ".claude/settings.json", "codex": ".codex/hooks.json",
            "gemini": ".gemini/settings.json"}[client]  # fmt: skip
    return base / name


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


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}): fix or move it first") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a JSON object: fix or move it first")
    hooks = data.get("hooks", {})
    if not isinstance(hooks, dict):
        raise ConfigError(f"'hooks' in {path} is not an object: fix it first")
    return data


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
        existing = hooks.get(event, [])
        hooks[event] = [*(existing if isinstance(existing, list) else [existing]), *groups]
    out["hooks"] = hooks
    return out


def unmerge(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``data`` without what ``merge`` added."""
    return _strip(data, prefix)


def apply(path: Path, ours: dict[str, list[Any]], prefix: str, *, remove: bool) -> bool:
    """Merge our groups into (or take them out of) the file; whether it changed. A file left
    empty by a removal is deleted."""
    data = _load(path)
    new = unmerge(data, prefix) if remove else merge(data, ours, prefix)
    if new == data:
        return False
    if not new and remove:
        path.unlink()
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(new, indent=2) + "\n", encoding="utf-8")
    return True


def load(path: Path) -> dict[str, Any]:
    """The settings file as it is (empty when missing)."""
    return _load(path)
