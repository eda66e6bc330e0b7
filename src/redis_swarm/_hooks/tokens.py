"""The lease tokens a machine's sessions hold, kept on that machine.

A lease token is a secret only its claimer gets (the swarm stores a hash), yet a session's
hooks run as separate processes: to renew a held lease before compaction, or report the task
a subagent left behind, they need the token its claim returned. ``swarm task claim`` and the
hook's own claims write it here: one JSON file per swarm and worker under the swarm home
(``leases/SWARM/WORKER.json``, mode 0600), task id -> token. Written whole through a rename;
two claims by one worker at the same instant may keep only one token (the other lease then
expires and its task is retried).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from .._config import Settings

__all__ = ["forget", "known", "remember"]


def _path(settings: Settings, worker: str) -> Path:
    return settings.home / "leases" / settings.swarm / f"{worker}.json"


def known(settings: Settings, worker: str) -> dict[str, str]:
    """Task id -> token of the leases ``worker`` claimed on this machine."""
    try:
        data = json.loads(_path(settings, worker).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}


def _write(settings: Settings, worker: str, tokens: dict[str, str]) -> None:
    path = _path(settings, worker)
    if not tokens:
        with contextlib.suppress(OSError):
            path.unlink()
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(tokens, f)
    tmp.replace(path)


def remember(settings: Settings, worker: str, task_id: str, token: str) -> None:
    """Keep the token of a lease ``worker`` just claimed."""
    _write(settings, worker, {**known(settings, worker), task_id: token})


def forget(settings: Settings, worker: str, keep: set[str]) -> None:
    """Drop the tokens of the tasks ``worker`` no longer holds (all but ``keep``)."""
    tokens = known(settings, worker)
    if set(tokens) - keep:
        _write(settings, worker, {k: v for k, v in tokens.items() if k in keep})
