"""The clients of a Sentinel URL: the master behind the sentinels (``SentinelMaster``,
whose close closes the sentinels' connections too), the sentinels' lookup of it
(``Sentinel``: which sentinels failed and why, ``_NoMasterFound``; none answered,
``_NoSentinelAnswered``; a service name no sentinel that answers monitors, a ConfigError at
once: ``_no_such_service``), and the master's connections, which ask the sentinels where the
master is at every reconnect and reconnect when a master refuses a write for want of
replicas (``SentinelConnection``); each with its asyncio twin.
"""

from __future__ import annotations

import time
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.connection
import redis.asyncio.sentinel
import redis.sentinel
from redis.connection import SSLConnection
from redis.sentinel import MasterNotFoundError, SentinelManagedConnection

from ._config import Settings
from ._connections import (
    AnswerMeansAlive,
    AsyncAnswerMeansAlive,
    AsyncHandshakeApart,
    HandshakeWithinConnectTimeout,
)
from ._errors import ConfigError
from ._translate import NO_GOOD_REPLICAS, NoneAnswered, why_no_answer

__all__ = [
    "AsyncSentinel",
    "AsyncSentinelConnection",
    "AsyncSentinelMaster",
    "AsyncSentinelSSLConnection",
    "Sentinel",
    "SentinelConnection",
    "SentinelMaster",
    "SentinelSSLConnection",
    "address_of",
    "note_unanswered",
    "unanswered_lately",
]


class _NoMasterFound(MasterNotFoundError):
    """redis-py's "no master found", from ``Sentinel``: ``failed_sentinels`` says which
    sentinels failed and why (host:port, the error's text), for ``translate``, whatever
    redis-py's version writes in its own text; ``down_masters``, which of those that
    answered know the service but see its master down (``master_seen_down``)."""

    failed_sentinels: tuple[tuple[str, str], ...] = ()
    down_masters: tuple[tuple[str, str, str], ...] = ()


class _NoSentinelAnswered(NoneAnswered, _NoMasterFound):
    """``_NoMasterFound`` when every sentinel failed."""


class _AsyncNoMasterFound(redis.asyncio.sentinel.MasterNotFoundError):
    """The asyncio twin of ``_NoMasterFound`` (asyncio's Sentinel has a class of its own)."""

    failed_sentinels: tuple[tuple[str, str], ...] = ()
    down_masters: tuple[tuple[str, str, str], ...] = ()


class _AsyncNoSentinelAnswered(NoneAnswered, _AsyncNoMasterFound):
    """The asyncio twin of ``_NoSentinelAnswered``."""


class SentinelMaster(redis.Redis):
    """The master behind a Sentinel; closing it also closes the connections to the sentinels."""

    def close(self) -> None:
        super().close()
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", ()):
            sentinel.close()


class AsyncSentinelMaster(redis.asyncio.Redis):
    """The asyncio twin of ``SentinelMaster``."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", ()):
            await sentinel.aclose()


# What asking a sentinel for its masters may meet: it is down or not there (a ConnectionError),
# it never answers (a TimeoutError), or it is no sentinel (an error reply, which redis-py
# before 8.2 let end the whole lookup, not saying which server it came from).
_SENTINEL_FAILURES = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError)

# The sentinels of this process's clients that did not answer lately (host:port -> when, by
# the monotonic clock, and what they met): a lookup asks them last, and the doctor's view of
# the deployment names them without waiting for them again. Each client starts with the
# URL's order, so one hung sentinel first in it cost every new client of a process (the
# doctor makes several) a whole socket timeout before the next sentinel was asked.
UNANSWERED_FOR_S = 30.0
_unanswered: dict[str, tuple[float, str]] = {}


def note_unanswered(sentinel: Any, error: BaseException) -> None:
    """Remember that ``sentinel`` (a client of one) did not answer (down, or no reply within
    its timeout); an error reply is an answer, not remembered, and so is a refused password
    (redis-py's AuthenticationError is a ConnectionError)."""
    if isinstance(error, (redis.ConnectionError, redis.TimeoutError)) and not isinstance(
        error, redis.AuthenticationError
    ):
        _unanswered[address_of(sentinel)] = (time.monotonic(), str(error))


def unanswered_lately(sentinel: Any, within_s: float = UNANSWERED_FOR_S) -> str | None:
    """What ``sentinel`` met when it last did not answer, if that was within ``within_s``,
    with how long ago; None when it answered since or was not asked."""
    seen = _unanswered.get(address_of(sentinel))
    if seen is None or time.monotonic() - seen[0] > within_s:
        return None
    return f"{seen[1]}, {time.monotonic() - seen[0]:.0f} s ago"


def _asking_order(sentinels: list[Any]) -> list[tuple[int, Any]]:
    """The sentinels (with their index) in the order to ask them: as they stand, but those
    that did not answer lately last (a stable sort)."""
    return sorted(enumerate(sentinels), key=lambda pair: unanswered_lately(pair[1]) is not None)


def _answered(sentinel: Any) -> None:
    _unanswered.pop(address_of(sentinel), None)


def _master_given(
    sentinel_of: Any, number: int, masters: Any, service_name: str
) -> tuple[str, int] | None:
    """The address of the master ``service_name`` from the masters that sentinel ``number``
    of ``sentinel_of`` (a Sentinel) monitors, when it is up (that sentinel is then asked
    first next time, as redis-py does); None when it gave none."""
    state = masters.get(service_name)
    if not state or not sentinel_of.check_master_state(state, service_name):
        return None
    sentinels = sentinel_of.sentinels
    sentinels[0], sentinels[number] = sentinels[number], sentinels[0]
    return state["ip"], state["port"]


def _no_master_found(
    settings: Settings | None,
    service_name: str,
    answered: list[tuple[Any, Any]],
    failed: list[tuple[Any, Exception]],
    found: type[_NoMasterFound | _AsyncNoMasterFound],
    none_answered: type[_NoSentinelAnswered | _AsyncNoSentinelAnswered],
) -> ConfigError | MasterNotFoundError | redis.asyncio.sentinel.MasterNotFoundError:
    """The error of a lookup of ``service_name`` that gave no master: ``answered``, the
    sentinels that answered (their clients) and the masters each monitors; ``failed``, those
    that failed and what each met. A name none that answered monitors is a ConfigError
    (``_no_such_service``); else as ``none_answered`` when every one failed (none answered:
    ``NoneAnswered``), or as ``found``."""
    unknown = _no_such_service(settings, service_name, answered, failed)
    if unknown is not None:
        return unknown
    failures = tuple(
        (address_of(client), str(error) or type(error).__name__) for client, error in failed
    )
    said = ", ".join(f"{node} - {error}" for node, error in failures)
    text = f"No master found for {service_name!r}{f' : {said}' if said else ''}"
    error = (none_answered if failed and not answered else found)(text)
    error.failed_sentinels = failures
    error.down_masters = tuple(
        (address_of(client), *seen)
        for client, masters in answered
        if (seen := master_seen_down(masters.get(service_name))) is not None
    )
    if isinstance(error, NoneAnswered):
        error.timed_out = any(isinstance(why, redis.TimeoutError) for _, why in failed)
    return error


def _no_such_service(
    settings: Settings | None,
    service_name: str,
    answered: list[tuple[Any, Any]],
    failed: list[tuple[Any, Exception]],
) -> ConfigError | None:
    """The error of a service name that no sentinel monitors: ``answered``, each sentinel that
    answered (its client) and the masters it monitors (SENTINEL MASTERS), names none such.
    None when one of them knows it (a failover keeps the name, its master down: ridden out,
    as are the sentinels that did not answer, ``failed``), or none answered."""
    if not answered or any(service_name in masters for _, masters in answered):
        return None
    where = settings.url if settings is not None else "the URL"
    names = sorted({str(name) for _, masters in answered for name in masters})
    hosts = ", ".join(address_of(client) for client, _ in answered)
    verb = "monitors" if len(answered) == 1 else "monitor"
    silent = ", ".join(
        f"{address_of(client)} ({why_no_answer(str(error) or type(error).__name__)})"
        for client, error in failed
    )
    monitor = f"SENTINEL MONITOR {service_name} HOST PORT QUORUM on each sentinel"
    if names:
        example = ""
        if settings is not None:
            example = f", as in {settings.replace(service_name=names[0]).url}"
        listed = f"{verb} {', '.join(map(repr, names))} (SENTINEL MASTERS)"
        todo = (
            f"put the name of the master in the URL{example}, or have the sentinels "
            f"monitor {service_name!r} ({monitor})"
        )
    else:
        listed = f"{verb} no master at all (SENTINEL MASTERS is empty)"
        todo = (
            "check that the URL names the sentinels of that master, or have them monitor it "
            f"({monitor})"
        )
    return ConfigError(
        f"no Sentinel of {where} monitors a master named {service_name!r}: {hosts} {listed}"
        f"{f'; no answer from {silent}' if silent else ''}: {todo}"
    )


def master_seen_down(state: Any) -> tuple[str, str] | None:
    """The address of a master a sentinel monitors (``state``: its SENTINEL MASTERS entry, as
    redis-py parses it) and, in words, why that sentinel gives no address for it; None for
    no entry. (A failover in progress or stuck: the operator is told what the sentinels
    see, not to check a service name they know.)"""
    if not state:
        return None
    flags = state.get("flags", "")
    flags = set(flags.split(",") if isinstance(flags, str) else flags)
    if "o_down" in flags:
        why = "down for a quorum of sentinels (o_down), no replica promoted yet"
    elif "s_down" in flags:
        why = "down for this sentinel (s_down), not yet for a quorum of them"
    else:
        why = f"not an available master (flags {','.join(sorted(flags)) or 'none'})"
    return f"{state.get('ip')}:{state.get('port')}", why


def address_of(client: Any) -> str:
    """host:port of a client of one server (a sentinel's: as its pool was given them)."""
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host')}:{kwargs.get('port')}"


class Sentinel(redis.sentinel.Sentinel):
    """redis-py's Sentinel, whose lookup of a master says which sentinels failed and why
    (``_NoMasterFound``), and when none answered (``_NoSentinelAnswered``), in the same
    words on every redis-py version; an error reply (a server that is no sentinel) is one
    sentinel's failure, not the whole lookup's. A service name that no sentinel that answers
    monitors fails at once (``_no_such_service``: no retry makes a sentinel monitor it), not
    after the failover window. ``settings``: those of the URL, for that error's words.
    (redis-py's force_master_ip, which no client here is given, is not read.)"""

    def __init__(self, *args: Any, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings

    def discover_master(self, service_name: str) -> Any:
        answered: list[tuple[Any, Any]] = []
        failed: list[tuple[Any, Exception]] = []
        for number, sentinel in _asking_order(self.sentinels):
            try:
                masters = sentinel.sentinel_masters()
            except _SENTINEL_FAILURES as error:
                note_unanswered(sentinel, error)
                failed.append((sentinel, error))
                continue
            _answered(sentinel)
            address = _master_given(self, number, masters, service_name)
            if address is not None:
                return address
            answered.append((sentinel, masters))
        raise _no_master_found(
            self.settings, service_name, answered, failed, _NoMasterFound, _NoSentinelAnswered
        )


class AsyncSentinel(redis.asyncio.sentinel.Sentinel):
    """The asyncio twin of ``Sentinel``."""

    def __init__(self, *args: Any, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings

    async def discover_master(self, service_name: str) -> Any:
        answered: list[tuple[Any, Any]] = []
        failed: list[tuple[Any, Exception]] = []
        for number, sentinel in _asking_order(self.sentinels):
            try:
                masters = await sentinel.sentinel_masters()
            except _SENTINEL_FAILURES as error:
                note_unanswered(sentinel, error)
                failed.append((sentinel, error))
                continue
            _answered(sentinel)
            address = _master_given(self, number, masters, service_name)
            if address is not None:
                return address
            answered.append((sentinel, masters))
        raise _no_master_found(
            self.settings,
            service_name,
            answered,
            failed,
            _AsyncNoMasterFound,
            _AsyncNoSentinelAnswered,
        )


def _demoted(error: redis.ResponseError) -> bool:
    """True when a master's error reply may mean that it is no longer the master: it refused a
    write for want of good replicas (NOREPLICAS, under min-replicas-to-write). In a switchover
    the promoted replica leaves the old master at once, so from then on the old master
    refuses writes this way, while it still says it is a master (ROLE, INFO) until Sentinel
    turns it into a replica, seconds later: only the sentinels know the new master. The
    code is looked for anywhere in the text, as ``refused_write`` does: on Redis 6.2 the
    swarm's scripts run by EVALSHA, and the refusal comes inside the script's error
    ("Error running script (call to f_...): ... -NOREPLICAS ...")."""
    return NO_GOOD_REPLICAS in str(error)


def _ask_sentinels_again(error: redis.ResponseError, connection: Any) -> redis.ConnectionError:
    """The error a connection raises, once closed, for a refusal ``_demoted`` reads as a
    failover: a ConnectionError, so the request is retried (nothing was applied) on a new
    connection, which asks the sentinels where the master is. Its text keeps the server's,
    so that the refusal is said as such once the retries are over (``translate``), and it
    carries the connection, as redis-py's cluster errors do, so that the words name the
    master that refused (its host and port)."""
    again = redis.ConnectionError(str(error))
    again.connection = connection  # type: ignore[attr-defined]
    return again


class SentinelConnection(AnswerMeansAlive, SentinelManagedConnection):
    """A connection to the master behind Sentinel that asks the sentinels where the master is
    each time it reconnects. redis-py 8 reconnects a dropped connection from inside
    ``send_packed_command`` to the address it last had, skipping the sentinel lookup of
    ``connect()``: after a failover a retried command would knock at the old master for ever
    (refused while it is down, READONLY once it is back as a replica). A write the master
    refuses for want of replicas (``_demoted``) closes the connection too, as redis-py does
    for READONLY: otherwise the open connections of a switchover's old master would keep
    knocking there, refused (or, without min-replicas-to-write, taken and later dropped)."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self.connect()  # type: ignore[no-untyped-call]
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except redis.ResponseError as error:
            if not (self.connection_pool.is_master and _demoted(error)):
                raise
            self.disconnect()  # type: ignore[no-untyped-call]
            raise _ask_sentinels_again(error, self) from error


class SentinelSSLConnection(SentinelConnection, HandshakeWithinConnectTimeout, SSLConnection):
    """``SentinelConnection`` over TLS."""


class AsyncSentinelConnection(
    AsyncAnswerMeansAlive, redis.asyncio.sentinel.SentinelManagedConnection
):
    """The asyncio twin of ``SentinelConnection``."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect()  # type: ignore[no-untyped-call]
        await super().send_packed_command(command, check_health)

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except redis.ResponseError as error:
            if not (self.connection_pool.is_master and _demoted(error)):
                raise
            await self.disconnect()
            raise _ask_sentinels_again(error, self) from error


class AsyncSentinelSSLConnection(
    AsyncSentinelConnection, AsyncHandshakeApart, redis.asyncio.connection.SSLConnection
):
    """``AsyncSentinelConnection`` over TLS."""
