"""The lease tokens a machine's sessions hold, kept on that machine.

A lease token is a secret only its claimer gets (the swarm stores a hash), yet a session's
hooks run as separate processes: to renew a held lease before compaction, or report the task
a subagent left behind, they need the token its claim returned. ``swarm task claim`` and the
hook's own claims write it here: one JSON file per swarm and worker under the swarm home
(``leases/SWARM/WORKER.json``, task id -> token; the file 0600, its folders 0700). Written
whole through a rename; two claims by one worker at the same instant may keep only one token
(the other lease then expires and its task is retried).

A token is forgotten once its task is no longer held: a report, fail, release or cancel
through the CLI forgets it (``forget_task``), and the tokens of tasks that went another way
(an expired lease, a report by another process) are dropped when the file is read next by a
claim (``prune``) or a hook (``forget``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from .._config import Settings

__all__ = ["forget", "forget_task", "known", "prune", "remember"]

_PRIVATE = 0o700  # the folders: their names are the swarms and workers of this machine
_SECRET = 0o600  # a file: the tokens


def _folder(settings: Settings) -> Path:
    return settings.home / "leases" / settings.swarm


def _path(settings: Settings, worker: str) -> Path:
    return _folder(settings) / f"{worker}.json"


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}


def known(settings: Settings, worker: str) -> dict[str, str]:
    """Task id -> token of the leases ``worker`` claimed on this machine."""
    return _read(_path(settings, worker))


def _private_folder(settings: Settings) -> Path:
    """The swarm's folder of tokens, made (or narrowed) to its owner alone, with ``leases``;
    the home is made so when missing (as the embedded server makes it), else left as it is."""
    settings.home.mkdir(parents=True, exist_ok=True, mode=_PRIVATE)
    folder = _folder(settings)
    for path in (folder.parent, folder):
        try:
            path.mkdir(mode=_PRIVATE)
        except FileExistsError:
            if path.stat().st_mode & 0o077:
                path.chmod(_PRIVATE)
    return folder


def _write_file(path: Path, tokens: dict[str, str]) -> None:
    if not tokens:
        with contextlib.suppress(OSError):
            path.unlink()
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _SECRET)
    os.fchmod(fd, _SECRET)  # a file left by a crash keeps its mode through O_TRUNC
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(tokens, f)
    tmp.replace(path)


def _write(settings: Settings, worker: str, tokens: dict[str, str]) -> None:
    if tokens:
        _private_folder(settings)
    _write_file(_path(settings, worker), tokens)


def remember(settings: Settings, worker: str, task_id: str, token: str) -> None:
    """Keep the token of a lease ``worker`` just claimed."""
    _write(settings, worker, {**known(settings, worker), task_id: token})


def forget(settings: Settings, worker: str, keep: set[str]) -> None:
    """Drop the tokens of the tasks ``worker`` no longer holds (all but ``keep``)."""
    tokens = known(settings, worker)
    if set(tokens) - keep:
        _write(settings, worker, {k: v for k, v in tokens.items() if k in keep})


def prune(settings: Settings, worker: str, held: Callable[[str, str], bool]) -> None:
    """Drop the tokens of ``worker`` whose lease ``held(task_id, token)`` says is gone."""
    tokens = known(settings, worker)
    kept = {task_id: token for task_id, token in tokens.items() if held(task_id, token)}
    if len(kept) < len(tokens):
        _write(settings, worker, kept)


def forget_task(settings: Settings, task_id: str, token: str | None = None) -> None:
    """Drop ``task_id``'s token, whichever worker of this machine claimed it: the task was
    reported, failed, released or cancelled. With ``token``, only that one: its lease is
    gone, but another claim of the task (a newer token) may hold it now."""
    try:
        files = sorted(_folder(settings).glob("*.json"))
    except OSError:
        return
    for path in files:
        tokens = _read(path)
        if task_id in tokens and token in (None, tokens[task_id]):
            del tokens[task_id]
            _write_file(path, tokens)
