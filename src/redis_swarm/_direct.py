"""A sync handle's commands, one or several in one round trip, sent without redis-py's
per-command machinery (``Direct``) down a connection it keeps, for a client of one server;
redis-py's ``execute_command`` and pipelines for any other (``direct_sender``, the ``Sender``
a shell sends with). A forked child keeps none of its parent's connections (the fork hook).
"""

from __future__ import annotations

import functools
import inspect
import os
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import redis
import redis.sentinel
import redis.utils
from redis.cluster import RedisCluster

from ._connect import SyncClient
from ._errors import closed

__all__ = ["JOIN_BELOW", "Direct", "Sender", "direct_sender"]

T = TypeVar("T")

_observability: Callable[[], Any] | None
try:  # redis-py >= 7 may export metrics (OpenTelemetry) of every command it runs
    from redis.observability.providers import get_observability_instance as _observability
except ImportError:  # pragma: no cover - older redis-py: nothing to export
    _observability = None

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - without hiredis, redis-py packs in Python
    _hiredis_pack = None


def _packs_with_hiredis(pool: Any) -> bool:
    """Whether the pool's connections pack commands with hiredis: redis-py's rule (hiredis
    importable, no packer given to the connections), read from public attributes once per
    handle rather than from a connection's private packer at every command."""
    return (
        _hiredis_pack is not None
        and bool(redis.utils.HIREDIS_AVAILABLE)
        and pool.connection_kwargs.get("command_packer") is None
    )


# redis-py < 5.3 wants the command's name (unused) to hand out a connection.
_POOL_WANTS_NAME = (
    inspect.signature(redis.ConnectionPool.get_connection).parameters["command_name"].default
    is inspect.Parameter.empty
)
_DIRECT_POOLS = (redis.ConnectionPool, redis.sentinel.SentinelConnectionPool)


class Direct:
    """What ``Redis.execute_command`` does for one command, minus what costs most of its
    CPU (three quarters of the instructions of a PING with redis-py 8): the pool's
    bookkeeping and socket poll at every checkout, the metrics hooks, the closures, the
    packer's pass over every argument (see ``_packed``).

    A connection taken from the pool is kept for the next command (one per thread sending
    at once: a free list, whose pop and append are atomic) until a pipeline needs one
    (``give_back``). What stays as redis-py does it: the client's retry (its backoff; a
    failed attempt drops the connection, the next reconnects), the health check of a
    connection idle for ``health_check_interval`` (in ``send_packed_command``), the drop of
    a connection whose send or read was interrupted (so a kept one never holds a stray
    reply), the command's response callback, and (redis-py >= 8) the reconnect a server's
    maintenance notice asks for. A connection idle longer than ``POLL_AFTER_S`` is polled
    first, as the pool polls at every checkout: one the server closed meanwhile is replaced
    before the command is sent, not after a failed attempt. A forked child keeps none of its
    parent's connections. With redis-py's metrics on, commands take ``execute_command``.
    Once closed (``close``), a command of another thread whose connection the close cut is
    not sent again: it raises ``Conflict``, as any call after the close does."""

    POLL_AFTER_S = 1.0

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._pool = client.connection_pool
        self._free: list[tuple[Any, float]] = []  # (connection, when it was last used)
        self._hiredis = _packs_with_hiredis(self._pool)
        self._closed = False
        _DIRECTS.add(self)
        # A handle dropped without close (a client shared by many handles, one made per
        # use) gives its connection back to the pool, not keep it out of it for good.
        weakref.finalize(self, _hand_back, self._pool, self._free).atexit = False

    def forget(self) -> None:
        """Drop the kept connections without closing them (a forked child's: its parent's)."""
        self._free.clear()

    def give_back(self) -> None:
        """Hand the kept connections back to the pool: before a pipeline, which then takes
        one of them instead of opening another, and at close (the client's close then
        closes them)."""
        _hand_back(self._pool, self._free)

    def close(self) -> None:
        """Refuse every attempt from now on (the client's retry would reconnect a command
        whose connection the client's close cut), and hand the kept connections back."""
        self._closed = True
        self.give_back()

    def _checkout(self) -> Any:
        try:
            conn, used = self._free.pop()
        except IndexError:
            pool = self._pool
            return pool.get_connection("_") if _POOL_WANTS_NAME else pool.get_connection()
        if time.monotonic() - used > self.POLL_AFTER_S:
            try:
                if conn.can_read():  # a reply nobody asked for, or closed by the server
                    conn.disconnect()
            except (redis.ConnectionError, OSError):
                conn.disconnect()  # the command's own attempts reconnect it
        return conn

    def _on_kept(self, exchange: Callable[[Any, tuple[Any, ...], bool], T], request: Any) -> T:
        """``exchange(connection, request, hiredis)`` on a kept connection, with the
        client's retry (a failed attempt drops the connection; the next reconnects)."""
        conn = self._checkout()
        try:
            done: T = conn.retry.call_with_retry(
                lambda: exchange(conn, request, self._hiredis) if not self._closed else _refuse(),
                lambda error, *_: conn.disconnect(),
            )
            return done
        finally:
            if self._closed:
                self._pool.release(conn)  # (the pool's close disconnected it)
            else:
                if getattr(conn, "should_reconnect", _never)():
                    conn.disconnect()
                    conn.connect()
                self._free.append((conn, time.monotonic()))

    def execute(self, *args: Any) -> Any:
        if _observability is not None and _observability().is_enabled():
            return self._client.execute_command(*args)  # type: ignore[no-untyped-call]
        response = self._on_kept(_exchange, args)
        callback = self._client.response_callbacks.get(args[0])  # type: ignore[no-untyped-call]
        return response if callback is None else callback(response)

    def execute_many(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Several commands in one round trip down the kept connection, as a non-transaction
        pipeline does (every reply in order, an error reply as a ``ResponseError`` value; a
        failed attempt drops the connection and the retry sends them all again), without
        its per-call objects, pool checkout and pass over every argument: two thirds of the
        client CPU of a two-command pipeline (a woken claim, a report waiting behind
        itself)."""
        if _observability is not None and _observability().is_enabled():
            self.give_back()
            return _pipelined(self._client, commands)
        replies = self._on_kept(_exchange_many, commands)
        callbacks = self._client.response_callbacks
        for i, (args, reply) in enumerate(zip(commands, replies, strict=True)):
            callback = callbacks.get(args[0])  # type: ignore[no-untyped-call]
            if callback is not None and not isinstance(reply, redis.ResponseError):
                replies[i] = callback(reply)
        return replies


def _pipelined(client: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """The commands in one non-transaction pipeline of ``client``: every reply in order, an
    error reply as its exception."""
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    replies: list[Any] = pipe.execute(raise_on_error=False)
    return replies


# Commands packed smaller than this together are sent as one buffer: redis-py writes each
# chunk of a list with its own sendall (a system call, and a partial batch the server may
# wake up for), as redis-py's own pipelines join their small commands.
JOIN_BELOW = 64 * 1024


def _exchange_many(conn: Any, commands: Sequence[tuple[Any, ...]], hiredis: bool) -> list[Any]:
    chunks = [chunk for args in commands for chunk in _packed(conn, args, hiredis)]
    if sum(len(chunk) for chunk in chunks) < JOIN_BELOW:
        chunks = [b"".join(chunks)]
    conn.send_packed_command(chunks)
    replies: list[Any] = []
    for _ in commands:  # every reply read, errors too, so the connection stays in step
        try:
            replies.append(conn.read_response())
        except redis.ResponseError as exc:
            replies.append(exc)
    return replies


def _hand_back(pool: Any, free: list[tuple[Any, float]]) -> None:
    """Release the connections of ``free`` to ``pool``, one by one: a command of another
    thread may meanwhile put its connection in the same list."""
    while True:
        try:
            conn, _ = free.pop()
        except IndexError:
            return
        pool.release(conn)


def _exchange(conn: Any, args: tuple[Any, ...], hiredis: bool) -> Any:
    conn.send_packed_command(_packed(conn, args, hiredis))
    return conn.read_response()


def _packed(conn: Any, args: tuple[Any, ...], hiredis: bool) -> Any:
    """``conn.pack_command(*args)``; where that is hiredis's (``hiredis``), hiredis called straight,
    without the wrapper's Python pass over every argument (a third of a task post's client
    instructions, with its 31 arguments). That pass splits a first argument holding spaces
    (such a command takes the wrapper) and turns a bytearray (hiredis refuses it: the
    wrapper then takes it) or a memoryview (hiredis packs its bytes) into bytes."""
    if (
        hiredis
        and _hiredis_pack is not None
        and isinstance(args[0], str)
        and args[0].isidentifier()
    ):
        try:
            return (_hiredis_pack(args),)
        except TypeError:
            pass
    return conn.pack_command(*args)


def _never() -> bool:
    return False


def _refuse() -> Any:
    raise closed("Swarm")  # (Direct sends for the sync Swarm alone)


def _forget_all() -> None:
    for direct in list(_DIRECTS):
        direct.forget()


_DIRECTS: weakref.WeakSet[Direct] = weakref.WeakSet()
os.register_at_fork(after_in_child=_forget_all)


class Sender(NamedTuple):
    """How a sync shell sends with its client: one command, several in one round trip
    (every reply in order, an error reply as its exception), and how it hands back to the
    pool the connections it keeps (before a pipeline of its own, and at close)."""

    one: Callable[..., Any]
    many: Callable[[Sequence[tuple[Any, ...]]], list[Any]]
    give_back: Callable[[], None]
    close: Callable[[], None]  # at the shell's close: give back, and send nothing more


def direct_sender(client: SyncClient) -> Sender:
    """``Direct`` for a client of one server as ``sync_client`` builds them (a plain or
    Sentinel pool, no client-side cache, not a single-connection client, redis-py's own
    ``execute_command``); redis-py's ``execute_command`` and pipelines for any other (a
    cluster, a client given with other choices); a sync cluster client's own exceptions (a
    refresh that reached no node) raised as ``cluster_error``."""
    if isinstance(client, RedisCluster):
        from ._cluster import layout_errors_converted  # (here: a cluster's only)

        return Sender(
            layout_errors_converted(client.execute_command),
            layout_errors_converted(functools.partial(_pipelined, client)),
            _nothing,
            _nothing,
        )
    pool = getattr(client, "connection_pool", None)
    if (
        isinstance(client, redis.Redis)
        and type(client).execute_command is redis.Redis.execute_command
        and getattr(client, "connection", None) is None
        and type(pool) in _DIRECT_POOLS
        and getattr(pool, "cache", None) is None
    ):
        direct = Direct(client)
        return Sender(direct.execute, direct.execute_many, direct.give_back, direct.close)
    return Sender(client.execute_command, functools.partial(_pipelined, client), _nothing, _nothing)


def _nothing() -> None:
    return None
