"""How a request reaches the server, written once for both shells and the strict cluster
sender: script calls on the wire (FCALL of the library, or EVALSHA), and the I/O-free plan
of a batch (send it, load what the server lacked, send again).

A shell only knows how to do the two steps the plan yields: ``Send`` (commands down one
connection, every reply or error in order) and ``Load`` (commands that load the library or
scripts, on every master). ``exchange`` decides the rest, as the operations do for the data:

- a call met by ``Function not found`` or ``RS_STALE_LIBRARY`` (the library is missing or of
  another version; see ``_scripts``) loads the library with FUNCTION LOAD REPLACE; one met
  by NOSCRIPT loads its script; either did not run, so it is sent again;
- a call met by ``unknown command 'FCALL'`` (Redis 6.2, a managed service without Functions)
  switches the handle to EVALSHA for good, and is sent again that way;
- a user that may not load the library gets PermissionDenied: for a missing one, saying to
  run ``swarm up`` as an admin; for one of another version (the version the server named),
  saying that another redis-swarm loaded it and every machine must run the same version
  (``swarm up`` would knock that other one out in turn); a server that refuses the load as a
  write (out of memory, or cannot persist) gets the ConnectionFailed of that refusal, as any
  other write it refuses.

On one server the whole batch is sent again (a durability wait closing it must follow the
writes it confirms; every request is idempotent), but for a blocking pop that has answered
(a claim's wait: sent again, it would take a second token or wait again); on a cluster only
the calls that did not run (redis-py routes each by its keys, and a strict handle's waits go through
``_strict_cluster``, which uses ``Scripting`` for its own redirections).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import redis

from . import _scripts
from ._errors import ConnectionFailed, LibraryReplaced, PermissionDenied, SwarmError
from ._protocol import Call, Cmd, is_wake_wait, raise_first, warn_outside
from ._scripts import (
    LIBRARY,
    LOAD_AS_ADMIN,
    NO_FUNCTIONS,
    STALE_LIBRARY,
    evalsha,
    fcall,
    held_version,
    library,
)
from ._translate import refused_write, translate

__all__ = [
    "Load",
    "Scripting",
    "Send",
    "Step",
    "cannot_load",
    "exchange",
    "load",
    "load_everything",
]

# Rounds of a batch: the first send, then a reload after a fallback to EVALSHA, then a load
# after NOSCRIPT. Another process replacing the library without end would go on for ever.
MAX_ROUNDS = 3

_NO_FUNCTION = "Function not found"


@dataclass(frozen=True)
class Send:
    """Send these commands down one connection; every reply (an error as a value) returns."""

    commands: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class Load:
    """Run these commands (FUNCTION LOAD or SCRIPT LOAD) on every master; the library is
    ``library`` True. ``held``: the library version the server said it holds, which this
    load replaces (None: missing, or not said)."""

    commands: tuple[tuple[Any, ...], ...]
    library: bool
    held: str | None = None


Step = Send | Load


class Scripting:
    """How one handle calls scripts: FCALL of the library, until a server says it has no
    Functions; then EVALSHA for the rest of the handle's life."""

    def __init__(self) -> None:
        self.functions = True

    def wire(self, item: Cmd | Call) -> tuple[Any, ...]:
        """The raw command of a request item."""
        if isinstance(item, Cmd):
            return item.args
        call = fcall if self.functions else evalsha
        return call(item.script, item.keys, item.args)

    def retry(self, item: Cmd | Call, reply: Any) -> Load | Literal["done", "again"]:
        """What a reply says about its item: "done" when it is final; a Load when the server
        lacked the library (or the script) and the item is sent again once it is loaded;
        "again" when it is sent again as it is (the handle has just switched to EVALSHA)."""
        if not isinstance(item, Call) or not isinstance(reply, redis.ResponseError):
            return "done"
        if isinstance(reply, redis.exceptions.NoScriptError):
            if not item.load:
                return "done"
            return Load((("SCRIPT LOAD", _scripts.script_source(item.script)),), library=False)
        text = str(reply)
        if text.startswith((_NO_FUNCTION, STALE_LIBRARY)):
            return self.load(held=held_version(text)) if item.load else "done"
        if NO_FUNCTIONS.search(text):
            self.functions = False
            return "again"
        return "done"

    def load(self, held: str | None = None) -> Load:
        """The load of the library (or, without Functions, of every script), over the
        version ``held`` when the server named the one it holds."""
        if self.functions:
            return Load((("FUNCTION LOAD", "REPLACE", library().source),), True, held)
        names = _scripts.script_names()
        return Load(tuple(("SCRIPT LOAD", _scripts.script_source(n)) for n in names), False)


def cannot_load(exc: Exception, where: str, held: str | None = None) -> SwarmError:
    """The error of a handle that met a missing or stale library and could not load it: the
    server refuses writes (a read-only replica, out of memory, or cannot persist: no user may
    load it, so the server's own error, and what to do), or this user may not load it.
    ``held``: the version the server holds, when it said so: another redis-swarm loaded it,
    which loading this one would knock out in turn, so the way out is one version
    everywhere, not 'swarm up'."""
    mine = library().version
    if held is None:
        what = f"is missing or of another version (this redis-swarm expects version {mine})"
    else:
        what = (
            f"is version {held}, loaded by a redis-swarm of another version (another "
            f"machine's, or another install's; this redis-swarm expects version {mine})"
        )
    missing = f"the {LIBRARY} function library on {where} {what}"
    if isinstance(exc, redis.exceptions.ReadOnlyError) or str(exc).startswith("READONLY"):
        # A replica: nobody loads it there (it comes from the master), and no write is taken:
        # what any write it refused says (the URL to point at the master).
        return translate(exc, where)
    refused = refused_write(exc, where)
    if refused is not None:
        return ConnectionFailed(
            f"{missing} and could not be loaded, as the server refuses writes: {refused}. "
            "Once it takes writes again, the next call loads the library by itself"
        )
    if held is None:
        hint = f"{missing} and this user cannot load it ({exc}): {LOAD_AS_ADMIN}"
    else:
        hint = (
            f"{missing} and this user cannot replace it ({exc}): every machine of a swarm "
            "must run the same redis-swarm version. Install here the version the other "
            "machines run; or upgrade them all (workers stopped), then run 'swarm up' once "
            "with an admin user (see docs/deployment.md, 'Upgrading a fleet'). Loading "
            "this version now would stop the other machines' commands instead"
        )
    text = str(exc)
    if isinstance(exc, redis.exceptions.NoPermissionError) or text.startswith("NOPERM"):
        return PermissionDenied(hint)
    return SwarmError(hint)


S = TypeVar("S")


def load(step: S, what: Load, where: str) -> Generator[S, Any, None]:
    """Yield the step that does ``what``; a refused library load becomes the error saying
    who may load it, and one that replaced another version's library is said
    (``LibraryReplaced``)."""
    try:
        yield step
    except redis.ResponseError as exc:
        if what.library:
            raise cannot_load(exc, where, what.held) from None
        raise
    if what.library and what.held is not None:
        warn_outside(replaced(where, what.held))


def replaced(where: str, held: str) -> LibraryReplaced:
    """The warning of a load that replaced version ``held`` (versions joined by 'and' when a
    cluster's masters held several) with this one."""
    mine = library().version
    return LibraryReplaced(
        f"the {LIBRARY} function library on {where} was version {held}, loaded by another "
        f"redis-swarm, and this one replaced it with version {mine}: every machine still on "
        f"version {held} fails from now on until it runs {mine}, and one loading its version "
        "back would knock this one out in turn. Run the same version everywhere "
        "(docs/deployment.md, 'Upgrading a fleet')",
        where,
        held,
        mine,
    )


def exchange(
    items: tuple[Cmd | Call, ...],
    scripting: Scripting,
    where: str,
    *,
    resend_all: bool,
    sent: list[Any] | None = None,
) -> Generator[Step, Any, list[Any]]:
    """The steps of one batch; returns every reply in order, or raises the first error.
    ``sent``: the replies of the first send, when the shell already made it (a lone call is
    sent straight away, and only an error reply, which may ask for a load or a switch to
    EVALSHA, goes through the plan)."""
    replies: list[Any] = [None] * len(items)
    pending = list(range(len(items)))
    for round_ in range(MAX_ROUNDS):
        if round_ == 0 and sent is not None:
            raw = sent
        else:
            raw = yield Send(tuple(scripting.wire(items[i]) for i in pending))
        loads: dict[tuple[Any, ...], Load] = {}
        again: list[int] = []
        for i, reply in zip(pending, raw, strict=True):
            replies[i] = reply
            verdict = scripting.retry(items[i], reply)
            if verdict == "done":
                continue
            again.append(i)
            if isinstance(verdict, Load):
                loads[verdict.commands] = verdict
        if not again or round_ == MAX_ROUNDS - 1:
            break
        for step in loads.values():
            yield from load(step, step, where)
        pending = (
            [i for i in range(len(items)) if not _waited(items[i], replies[i])]
            if resend_all
            else again
        )
    if any(
        str(reply).startswith(STALE_LIBRARY)
        for item, reply in zip(items, replies, strict=True)
        if isinstance(reply, Exception) and not (isinstance(item, Call) and not item.load)
    ):
        raise SwarmError(
            f"the {LIBRARY} function library on {where} was replaced again while this call "
            f"reloaded it: another redis-swarm, of another version (this one expects "
            f"{library().version}), loads it too: run the same version everywhere"
        )
    return raise_first(replies, items)


def _waited(item: Cmd | Call, reply: Any) -> bool:
    """Whether ``item`` is a blocking pop that has answered (a wake token taken, or its time
    waited): a batch sent again after a load leaves it out, else it would take a second
    token (a waiter asleep with a task pending) or wait its time again before the claim
    behind it runs. Its first answer stands; none of its callers reads it."""
    return is_wake_wait(item) and not isinstance(reply, Exception)


def load_everything(
    scripting: Scripting, where: str, held: str | None = None
) -> Generator[Step, Any, bool]:
    """Load the library on every master (``Swarm.load_functions``); without Functions, every
    script for EVALSHA instead. True when the library is loaded. ``held``: the other version
    the server holds, which the load replaces (said, ``LibraryReplaced``)."""
    if scripting.functions:
        try:
            yield Load(scripting.load().commands, library=True)
        except redis.ResponseError as exc:
            refused = exc
        else:
            if held is not None:
                warn_outside(replaced(where, held))
            return True
        if not NO_FUNCTIONS.search(str(refused)):
            # A user who may not load it (a worker): fine if this version is in place.
            (reply,) = yield Send((fcall("ping", (), (0,)),))
            if isinstance(reply, Exception):
                raise cannot_load(refused, where, held_version(str(reply)))
            return True
        scripting.functions = False
    yield scripting.load()
    return False
