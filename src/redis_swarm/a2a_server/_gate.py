"""How many calls to Redis the A2A server makes at once: fewer than its handle's connections.

A handle holds at most ``Settings.max_connections`` connections (100 by default) and refuses
a call when all are in use, at once, without asking Redis. 300 clients calling ``GetTask``
at the same moment were 200 refusals, each answered "cannot reach its swarm's Redis" (false:
Redis was fine) and logged as one line: 400 lines for one burst.

``Gate`` is a semaphore sized below the pool (``RESERVED`` connections stay free for the
calls that hold theirs for long: the task feed's reader, the push dispatcher's follower).
``GatedSwarm`` passes every call a request makes on the swarm through it: a call waits for
a free turn, at most ``BUSY_WAIT_S``; one that gets none is answered ``Busy``, an internal
error that says the server is busy and when to try again (``RETRY_AFTER_KEY``: on HTTP+JSON
a 503 with ``Retry-After``, ``app.RetryLater``), never that Redis is out of reach. The
server's log says so once per burst (when the first call is refused), and once when the
burst is over, with how many calls were refused.

A call that waits for an event (``follow_events``, an async iterator) passes ungated: it is
the feed's one reader, or the dispatcher's follower. The push dispatcher's own calls wait
for their turn without a bound (``patient``): nobody waits on them, and what they would
drop is an update to a webhook.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from a2a.utils.errors import InternalError

from .._client import AsyncSwarm
from .._turns import NoTurn, Turns
from ._logs import LOGGED_FOR_OPERATOR

__all__ = [
    "BUSY_RETRY_S",
    "BUSY_WAIT_S",
    "RESERVED",
    "RETRY_AFTER_KEY",
    "Busy",
    "Gate",
    "GatedSwarm",
    "gated",
]

log = logging.getLogger(__name__)

# Connections of the handle left out of the gate: the feed's reader and the dispatcher's
# follower each hold one for as long as they follow, and room for a spare.
RESERVED = 4
# How long a request's call waits for a turn before the request is answered busy (seconds).
BUSY_WAIT_S = 3.0
# What a client answered busy is told to wait before it tries again (seconds).
BUSY_RETRY_S = 1
# The member of an internal error's data that says how many seconds to wait before trying
# again (strings: a google.rpc.ErrorInfo's metadata); HTTP+JSON answers it 503 with that
# Retry-After (app.RetryLater).
RETRY_AFTER_KEY = "retryAfterSeconds"

T = TypeVar("T")


class Busy(InternalError):
    """A request refused because the server makes as many calls to Redis as it may: it
    says so, and when to try again."""

    def __init__(self) -> None:
        super().__init__(
            "this A2A server is busy: it is serving as many requests at once as its "
            f"connections to its swarm's Redis allow; try again in {BUSY_RETRY_S} s or more "
            f"(Redis itself is fine) {LOGGED_FOR_OPERATOR}",
            data={RETRY_AFTER_KEY: str(BUSY_RETRY_S)},
        )


class Gate:
    """At most ``size`` calls at once; a call waits at most ``wait_s`` for its turn
    (``Turns``), and the log says a burst of refusals once, and its end (see the module)."""

    def __init__(self, size: int, wait_s: float = BUSY_WAIT_S) -> None:
        self.turns = Turns(size, wait_s)
        self._refused = 0  # in the current burst (0: none, or it was said to be over)

    @classmethod
    def for_swarm(cls, swarm: AsyncSwarm, wait_s: float = BUSY_WAIT_S) -> Gate:
        """The gate of a server on ``swarm``: its pool less ``RESERVED``."""
        return cls(swarm.settings.max_connections - RESERVED, wait_s)

    async def run(self, call: Awaitable[T], *, patient: bool = False) -> T:
        """``call``, once a turn is free; ``Busy`` when none was within ``wait_s``
        (``patient``: as long as it takes)."""
        try:
            await self.turns.take(patient=patient)
        except BaseException as exc:  # (no turn, or the caller cancelled while it waited)
            if inspect.iscoroutine(call):
                call.close()  # (never run: no "never awaited" warning)
            if not isinstance(exc, NoTurn):
                raise
            self._refuse()
            raise Busy() from None
        try:
            return await call
        finally:
            self.turns.give_back()
            if self._refused and not self.turns.waiting:
                log.warning(
                    "no longer busy: %d requests were answered busy in that burst",
                    self._refused,
                )
                self._refused = 0

    def _refuse(self) -> None:
        self._refused += 1
        if self._refused == 1:  # (once per burst: see the module)
            log.warning(
                "busy: more requests at once than this server's %d connections to Redis "
                "serve (Settings.max_connections less %d it keeps for following events); "
                "those that waited %g s for one are answered busy, to try again in %d s. "
                "Raise it with ?max_connections=N in SWARM_URL, or share the clients among "
                "more servers",
                self.turns.size, RESERVED, self.turns.wait_s, BUSY_RETRY_S,
            )  # fmt: skip


class GatedSwarm:
    """``swarm`` whose calls each wait for a turn of ``gate`` (see the module): its other
    attributes, and its calls that return async iterators, are the swarm's own."""

    def __init__(self, swarm: AsyncSwarm, gate: Gate, *, patient: bool = False) -> None:
        self._swarm = swarm
        self._gate = gate
        self._patient = patient

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._swarm, name)
        if name.startswith("_") or not callable(found):
            return found
        return self._through_gate(found)

    def _through_gate(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            made = method(*args, **kwargs)
            if not inspect.iscoroutine(made):  # (a check, an async iterator: as it is)
                return made
            return self._gate.run(made, patient=self._patient)

        return call


def gated(swarm: AsyncSwarm, gate: Gate, *, patient: bool = False) -> AsyncSwarm:
    """``swarm`` through ``gate`` (a ``GatedSwarm``, typed as the swarm it stands for);
    ``patient``: its calls wait for a turn as long as it takes (the push dispatcher's)."""
    return cast(AsyncSwarm, GatedSwarm(swarm, gate, patient=patient))
