"""The lease tokens a machine's sessions hold, kept on that machine.

A lease token is a secret only its claimer gets (the swarm stores a hash), yet a session's
hooks run as separate processes: to renew a held lease before compaction, or report the task
a subagent left behind, they need the token its claim returned. ``swarm task claim``, the
hook's own claims and the stdio MCP server's sessions write it here (one store, shared by
those faces, so it lives beside the core rather than in one of them): one JSON file per
swarm and worker under the swarm home (``leases/SWARM/WORKER.json``, task id -> token; the
file 0600, its folders 0700).

Every change reads, edits and writes a file back, and processes of a machine change the same
files at once (two claims by one worker; a report's ``forget_task`` while another claim
keeps its token): each change holds an exclusive lock on the swarm's ``.lock`` file beside
them (``flock``, released when the process dies) from its read to its write, so that none
writes over a token another just kept. A file is written whole to a temporary file and put
in place by a rename: a reader that takes no lock (``known``) sees the old file or the new,
never half of one. Where ``flock`` does not exist (Windows) the rename alone stands, and two
changes at the same instant may keep only one of their tokens (the other lease then expires
and its task is retried).

A token is kept while its task is open, a report with it still taken: a report, fail or
release through the CLI forgets the token it used (``forget_task`` with it: another
worker's token of the same task, a lease that ran out and moved to it, stays its own to
report with), a cancel every token of its task. A token whose lease ran out and moved on
stays while its task is open, as the core still takes a report with it (the refusal of the
lease says "a finding you already have can still be reported"): one rule, ``outlived``,
says when it goes (its task settled or deleted), applied by the next claim through the CLI
and by every hook that reads the worker's tasks (``prune``, which asks Redis).

A loop-mode ``Stop`` whose claim got no reply (a server busy past the hook's 1 s socket
timeout runs the claim when it is free) has no token to keep, only the lease secrets the
claim sent (``ConnectionFailed.lease_secrets``): they are kept in the worker's file too
(``keep_unanswered``, under ``_UNANSWERED``: no task id, whose characters are letters,
digits, '.', '_' and '-', looks like it), the newest ``UNANSWERED_KEPT``, each with the time
it was kept. A later hook proves a lease of the worker whose token is not known its own by
renewing it with the token ``ATTEMPTS.SECRET`` of one of them, and keeps that token
(``adopt``); a secret older than the longest lease can prove none (``unanswered``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ._config import Settings
from ._errors import ConnectionFailed, SwarmError, ValidationError
from ._files import write_whole
from ._models import TaskStatus
from ._validate import MAX_LEASE_S, MAX_PAGE, check_id

__all__ = [
    "UNANSWERED_KEPT",
    "adopt",
    "check_writable",
    "folder",
    "forget",
    "forget_task",
    "is_task_id",
    "keep_input",
    "keep_message",
    "keep_unanswered",
    "known",
    "outlived",
    "prune",
    "remember",
    "set_aside_spooled",
    "set_aside_unreadable",
    "spool_subagent",
    "spooled",
    "unanswered",
]

_PRIVATE = 0o700  # the folders: their names are the swarms and workers of this machine
_SECRET = 0o600  # a file: the tokens
_LOCK = ".lock"  # beside the tokens: held by each change, from its read to its write
# The entry of a worker's file holding the secrets of its claims that got no reply, as
# [[kept at, epoch s], secret] (a key no task id can be: see the module's docstring).
_UNANSWERED = "#unanswered"
# The most kept per worker: a hook claims one task at a time, and each claim that got no reply
# adds one (older ones are dropped first).
UNANSWERED_KEPT = 8

# What a worker's file holds: task id -> token, and the unanswered secrets (kept at, secret).
_Secrets = list[tuple[float, str]]

if sys.platform == "win32":  # no flock: the rename alone keeps each file whole

    def _hold(fd: int) -> None:
        return None

else:
    import fcntl

    def _hold(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released as the fd closes, or the process dies


def _folder(settings: Settings) -> Path:
    return settings.home / "leases" / settings.swarm


def folder(settings: Settings) -> Path:
    """Where the tokens of ``settings``' swarm are kept on this machine."""
    return _folder(settings)


def _path(settings: Settings, worker: str) -> Path:
    return _folder(settings) / f"{worker}.json"


def _load(path: Path) -> tuple[dict[str, str], _Secrets]:
    """The tokens and the unanswered secrets in ``path`` (none when it is missing or not
    ours: a file is written whole, so only another program leaves one unreadable)."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, []
    if not isinstance(data, dict):
        return {}, []
    tokens = {str(k): v for k, v in data.items() if isinstance(v, str) and k != _UNANSWERED}
    kept = data.get(_UNANSWERED)
    secrets = [
        (float(entry[0]), entry[1])
        for entry in (kept if isinstance(kept, list) else [])
        if isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], int | float)
        and isinstance(entry[1], str)
    ]
    return tokens, secrets


def _unreadable(path: Path) -> bool:
    """Whether ``path`` exists and holds no JSON object (what ``_load`` takes for none)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        # (missing: no tokens; not ours to read, a name too long, a folder: none is a file
        # another program wrote, so none is said to be broken, nor set aside)
        return False
    except ValueError:  # (not JSON, or not UTF-8)
        return True
    return not isinstance(data, dict)


def set_aside_unreadable(settings: Settings, worker: str) -> Path | None:
    """Rename ``worker``'s file aside when it holds no JSON object (another program wrote
    it: every read here takes it for no tokens, and the next token kept would write over
    it): where it went, for its owner to look in; None when it is readable or missing. The
    file is looked at without the lock (the common case: nothing to move, nothing locked),
    then again under it. An OSError: it could not be moved."""
    path = _path(settings, worker)
    if not _unreadable(path):
        return None
    with _locked(settings, make=False) as folder_exists:
        if not folder_exists or not _unreadable(path):
            return None
        aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(path, aside)  # (a name no read here looks at: not *.json)
        return aside


def _read(path: Path) -> dict[str, str]:
    return _load(path)[0]


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


@contextlib.contextmanager
def _locked(settings: Settings, *, make: bool) -> Iterator[bool]:
    """Hold the swarm's lock of tokens while the block reads and writes them. ``make``:
    make the folder when missing (a token is about to be kept); else a missing folder holds
    no token, and the block is told so (False) without a lock."""
    folder = _private_folder(settings) if make else _folder(settings)
    try:
        fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT, _SECRET)
    except FileNotFoundError:
        yield False
        return
    try:
        _hold(fd)
        yield True
    finally:
        os.close(fd)


def _write_file(path: Path, tokens: dict[str, str], secrets: _Secrets) -> None:
    """Put ``tokens`` and the unanswered ``secrets`` in ``path`` whole (under the lock): a
    temporary file of its own, renamed over it; nothing left: no file."""
    if not tokens and not secrets:
        with contextlib.suppress(OSError):
            path.unlink()
        return
    data: dict[str, Any] = dict(tokens)
    if secrets:
        data[_UNANSWERED] = [[when, secret] for when, secret in secrets]
    write_whole(path, json.dumps(data).encode())  # (0600)


def _change_file(
    settings: Settings,
    worker: str,
    edit: Callable[[dict[str, str], _Secrets], tuple[dict[str, str], _Secrets] | None],
) -> None:
    """Read ``worker``'s file, ``edit`` its tokens and secrets (None: nothing to change),
    write it back: all under the lock, so that no other process changes it in between."""
    with _locked(settings, make=True):
        path = _path(settings, worker)
        edited = edit(*_load(path))
        if edited is not None:
            _write_file(path, *edited)


def _change(
    settings: Settings, worker: str, edit: Callable[[dict[str, str]], dict[str, str] | None]
) -> None:
    """``_change_file`` of ``worker``'s tokens alone (its unanswered secrets kept)."""

    def on_tokens(
        tokens: dict[str, str], secrets: _Secrets
    ) -> tuple[dict[str, str], _Secrets] | None:
        edited = edit(tokens)
        return None if edited is None else (edited, secrets)

    _change_file(settings, worker, on_tokens)


def check_writable(settings: Settings) -> None:
    """Make the folder of tokens and take its lock, as keeping a token will: an OSError says
    it cannot be kept (a home that cannot be written), before a claim takes a lease whose
    token would be lost."""
    with _locked(settings, make=True) as ready:
        if not ready:  # (a folder just made, gone again)
            raise FileNotFoundError(f"{_folder(settings)} is gone")


def remember(settings: Settings, worker: str, task_id: str, token: str) -> None:
    """Keep the token of a lease ``worker`` just claimed."""
    _change(settings, worker, lambda tokens: {**tokens, task_id: token})


def keep_unanswered(settings: Settings, worker: str, secrets: Sequence[str]) -> None:
    """Keep the lease ``secrets`` a claim by ``worker`` sent and got no reply to (Redis may
    run it all the same): the newest ``UNANSWERED_KEPT``."""
    if not secrets:
        return
    now = time.time()  # (wall time: another process of the machine reads it)

    def add(tokens: dict[str, str], kept: _Secrets) -> tuple[dict[str, str], _Secrets]:
        return tokens, [*kept, *((now, s) for s in secrets)][-UNANSWERED_KEPT:]

    _change_file(settings, worker, add)


def unanswered(settings: Settings, worker: str) -> list[str]:
    """The secrets kept of ``worker``'s claims that got no reply, newest first. Those older
    than the longest lease a claim may take are dropped from the file: the lease such a
    claim took ran out by now, and a new lease of its task has a secret of its own."""
    secrets = _load(_path(settings, worker))[1]
    oldest = time.time() - MAX_LEASE_S
    if any(when < oldest for when, _ in secrets):

        def drop(tokens: dict[str, str], kept: _Secrets) -> tuple[dict[str, str], _Secrets]:
            return tokens, [(when, s) for when, s in kept if when >= oldest]

        _change_file(settings, worker, drop)
    return [s for when, s in reversed(secrets) if when >= oldest]


def adopt(settings: Settings, worker: str, task_id: str, token: str, secret: str) -> None:
    """Keep ``token``, the lease of ``task_id`` a kept unanswered ``secret`` proved
    ``worker``'s (a renew with it succeeded); the secret, used, is dropped."""

    def keep(tokens: dict[str, str], kept: _Secrets) -> tuple[dict[str, str], _Secrets]:
        return {**tokens, task_id: token}, [(when, s) for when, s in kept if s != secret]

    _change_file(settings, worker, keep)


def forget(settings: Settings, worker: str, judged: Mapping[str, str], keep: set[str]) -> None:
    """Drop the tokens of ``judged`` (read BEFORE Redis was asked which tasks ``worker``
    holds) whose task is not in ``keep``, whatever their tasks' state: a worker that is
    over (a stopped subagent, removed: no claim or hook reads its file again). A token kept
    after that read (another session of the worker claiming at that instant) stays:
    dropping all but ``keep`` lost it, and its task stayed leased with no token."""
    gone = {(t, tok) for t, tok in judged.items() if t not in keep}
    if not gone:
        return  # (the common case: nothing to drop, no lock taken)

    def drop(tokens: dict[str, str]) -> dict[str, str] | None:
        kept = {t: tok for t, tok in tokens.items() if (t, tok) not in gone}
        return kept if len(kept) < len(tokens) else None

    _change(settings, worker, drop)


def outlived(status: TaskStatus | None) -> bool:
    """Whether a kept token whose task is in ``status`` (None: no such task now) is
    forgotten: the one rule of every face that drops the tokens of tasks settled another
    way (``prune``: a claim through the CLI, the hooks). A token whose lease ran out, or
    went to another worker, is kept while its task is open (pending, delayed, claimed by
    anyone): the core still takes a report with it (it completes the task), as the
    lease's refusal invites, so the worker's later report, in another process or turn,
    finds it. It goes once the task is settled (completed, dead,
    cancelled: ``TaskStatus.settled``) or deleted: no work of it is left to report."""
    return status is None or status.settled


def prune(
    settings: Settings,
    worker: str,
    task_statuses: Callable[[list[str]], Mapping[str, TaskStatus | None]],
    *,
    judged: Mapping[str, str] | None = None,
    held: Collection[str] = (),
) -> None:
    """Drop the tokens of ``worker`` that ``outlived`` their task, read with
    ``task_statuses`` (the core's: one round trip for up to ``MAX_PAGE`` tasks, None for
    one gone). ``judged``: the tokens read BEFORE Redis was asked which tasks the worker
    holds (default: read now), the tasks of ``held`` (held now, or not known) not asked
    about. A task that cannot be read now (left out: stored unreadable; or any error)
    keeps its token, and once the server cannot be reached the asking stops (each read
    would wait out its timeout): a later claim or hook looks again. The asking runs before
    the lock is taken, and only the tokens it judged are dropped: a token kept meanwhile by
    another claim (of the same task even) stays."""
    if judged is None:
        judged = known(settings, worker)
    # (an id that is no task id, in a file written by hand or by another program, keeps its
    # token: asked with the others, it would have the whole batch refused, every time)
    asked = [task_id for task_id in judged if task_id not in held and is_task_id(task_id)]
    gone: set[tuple[str, str]] = set()
    for start in range(0, len(asked), MAX_PAGE):
        try:
            statuses = task_statuses(asked[start : start + MAX_PAGE])
        except ConnectionFailed:
            break
        except SwarmError:
            continue
        gone |= {
            (task_id, judged[task_id])
            for task_id, status in statuses.items()
            if task_id in judged and outlived(status)
        }
    if not gone:
        return  # (the common case: nothing to drop, no lock taken)

    def drop(tokens: dict[str, str]) -> dict[str, str] | None:
        kept = {t: tok for t, tok in tokens.items() if (t, tok) not in gone}
        return kept if len(kept) < len(tokens) else None

    _change(settings, worker, drop)


def is_task_id(value: str) -> bool:
    """Whether a kept id is a task id: a file written by hand or by another program may hold
    one that is not, which, asked of Redis with the others, has the whole batch refused."""
    try:
        check_id("task", value)
    except ValidationError:
        return False
    return True


def forget_task(settings: Settings, task_id: str, token: str | None = None) -> None:
    """Drop ``task_id``'s token, whichever worker of this machine claimed it. With
    ``token``, only that one (a token is one lease's secret: the entry of the worker that
    claimed it): the lease it proved was reported, failed or released, or refused for good,
    and another worker's claim of the task (a lease that ran out and moved to it) keeps its
    own, to report with. Without, every token of the task: it was cancelled (settled: none
    of them is worth keeping, ``outlived``).

    The files are read first, without the lock: a task none of them holds (the common case,
    and every case on a home this process may not write, where no claim could keep a token)
    takes no lock and writes nothing. Never an error: the task is settled already, and a
    token that could not be dropped (the home not writable now) only waits for a later
    claim or hook that finds its lease gone; one line on stderr says so."""

    def holds(tokens: dict[str, str]) -> bool:
        return task_id in tokens and token in (None, tokens[task_id])

    try:
        files = [p for p in sorted(_folder(settings).glob("*.json")) if holds(_read(p))]
        if not files:
            return  # (nothing to forget: no lock, no write)
        with _locked(settings, make=False) as folder_exists:
            if not folder_exists:
                return
            for path in files:  # read again under the lock: another change may have come
                tokens, secrets = _load(path)
                if holds(tokens):
                    del tokens[task_id]
                    _write_file(path, tokens, secrets)
    except OSError as exc:
        print(
            f"warning: the token of {task_id} kept in {_folder(settings)} could not be "
            f"forgotten ({exc}); a later claim drops it, once the home can be written",
            file=sys.stderr,
        )


# --- What a subagent left that its SubagentStop could not report --------------------------
#
# A SubagentStop that cannot reach Redis (down, or paused past the hook's 1 s wait) keeps the
# subagent's last message here, ``spool/SWARM/PARENT/WORKER.json`` under the home (0600, its
# folders 0700), beside its tokens in ``leases``: the parent session's next hook reports it
# (``spooled``), and deletes the file once its tasks are settled; one that settled no task is
# set aside (``set_aside_spooled``), kept for the user. One file per subagent (it stops once).
# Beside them, kept for the user alone (no hook reads them): a last message no finding holds
# whole (``keep_message``, ``WORKER.message.txt``), and, in the swarm's spool folder, a
# SubagentStop input too big for the hook to read (``keep_input``).


def _spool_folder(settings: Settings, parent: str) -> Path:
    return settings.home / "spool" / settings.swarm / parent


def _made_spool_folder(settings: Settings, parent: str | None) -> Path:
    """The spool folder of ``parent``'s subagents (None: the swarm's), made (0700) when
    missing."""
    swarm = settings.home / "spool" / settings.swarm
    folder = swarm if parent is None else _spool_folder(settings, parent)
    settings.home.mkdir(parents=True, exist_ok=True, mode=_PRIVATE)
    for made in (swarm.parent, swarm, folder):  # spool, its swarm, the parent
        made.mkdir(mode=_PRIVATE, exist_ok=True)
    return folder


def spool_subagent(settings: Settings, parent: str, worker: str, text: str) -> Path:
    """Keep the last message ``text`` of ``parent``'s subagent ``worker`` for a later hook;
    where it went. An OSError: it could not be kept."""
    path = _made_spool_folder(settings, parent) / f"{worker}.json"
    data = {"worker": worker, "last_assistant_message": text, "kept_at": time.time()}
    write_whole(path, json.dumps(data).encode())  # (0600)
    return path


def spooled(settings: Settings, parent: str) -> list[tuple[Path, str, str]]:
    """The subagents' last messages kept for ``parent`` (``spool_subagent``), oldest first:
    (file, worker, text). A file that is not one of those (another program wrote it) is
    left out, and left alone."""
    found: list[tuple[float, Path, str, str]] = []
    try:
        paths = list(_spool_folder(settings, parent).glob("*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        worker, text = data.get("worker"), data.get("last_assistant_message")
        at = data.get("kept_at")
        if isinstance(worker, str) and isinstance(text, str):
            found.append((at if isinstance(at, int | float) else 0.0, path, worker, text))
    return [(path, worker, text) for _, path, worker, text in sorted(found, key=lambda f: f[0])]


# The suffix of a kept message that settled no task: a name ``spooled`` does not read.
_UNSETTLED = ".unsettled"


def set_aside_spooled(path: Path) -> Path:
    """Rename the kept message ``path`` (one of ``spooled``'s) where no hook reads it again:
    it settled no task (none of its subagent's is open with a token kept here), and would
    say so at every hook; kept for the user to read. Where it went; an OSError: it could not
    be moved."""
    aside = path.with_name(path.name + _UNSETTLED)
    os.replace(path, aside)
    return aside


# The suffix of a subagent's last message kept whole for the user (a finding holds only its
# start): a name ``spooled`` does not read.
_MESSAGE = ".message.txt"


def keep_message(settings: Settings, parent: str, worker: str, text: str) -> Path:
    """Keep the whole last message ``text`` of ``parent``'s subagent ``worker`` for the user
    to read (its finding holds only the start of it), beside what the spool holds; where it
    went. An OSError: it could not be kept."""
    _prune_kept(settings)
    path = _made_spool_folder(settings, parent) / f"{worker}{_MESSAGE}"
    write_whole(path, text.encode("utf-8", "replace"))  # (0600)
    return path


def keep_input(
    settings: Settings, event: str, head: bytes, rest: BinaryIO
) -> tuple[Path, bool] | None:
    """Keep a hook input too big to read (``head``, its first bytes read, then what is left
    of ``rest``, copied a chunk at a time: never held whole in memory) in the swarm's spool
    folder, as ``EVENT-input-TIME-PID.json`` (0600: no hook reads it again); where it went,
    and whether it was cut at ``MAX_KEPT_INPUT`` (an endless stdin must not fill the disk).
    None when it is no JSON object (no client sends one: nothing to keep). An OSError: it
    could not be kept (nothing is left of it)."""
    if head.lstrip()[:1] != b"{":
        return None
    _prune_kept(settings)
    folder = _made_spool_folder(settings, None)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = folder / f"{event}-input-{stamp}-{os.getpid()}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _SECRET)
    kept, cut = 0, False
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(head)
            kept = len(head)
            while chunk := rest.read(_CHUNK):
                if kept + len(chunk) > MAX_KEPT_INPUT:
                    out.write(chunk[: MAX_KEPT_INPUT - kept])
                    cut = True
                    break
                out.write(chunk)
                kept += len(chunk)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return path, cut


_CHUNK = 1024 * 1024  # what ``keep_input`` copies at a time
# The most of one hook input kept (``keep_input``): a model's message is well under 1 MB.
MAX_KEPT_INPUT = 256 * 1024 * 1024
# How long a kept message or input stays (``_prune_kept``): a user reads it within days.
KEPT_DAYS = 30


def _prune_kept(settings: Settings) -> None:
    """Delete the messages and inputs kept in the swarm's spool (``keep_message``,
    ``keep_input``: its folder and its agents') more than ``KEPT_DAYS`` old, as the next is
    kept: the spool does not grow without bound. (Spooled messages, ``*.json`` and
    ``*.json.unsettled``, are not theirs to delete.)"""
    swarm = settings.home / "spool" / settings.swarm
    before = time.time() - KEPT_DAYS * 86400
    for pattern in (f"*/*{_MESSAGE}", "*-input-*.json"):
        for path in swarm.glob(pattern):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < before:
                    path.unlink()
