"""The I/O-free protocol between operations and the two client shells.

An operation is a generator: it yields requests (a command, a script call, or a batch of
them sent in one round trip; a ``Fetch``, a batch of reads whose replies a reader checks as
they arrive) and, for a big context, its CPU work (``Compute``, which the async shell runs
off its event loop), receives each reply or result, and returns its decoded result. It
never touches a socket, so it is written once and driven by both the sync ``Swarm`` and the
async ``AsyncSwarm`` (``sync_op`` / ``async_op`` turn one into a method of each).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import os
import sys
import threading
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from ._config import Settings
from ._errors import (
    WRONG_TYPE_ERROR,
    ConfigError,
    ConnectionFailed,
    PermissionDenied,
    SwarmError,
    TaskDeadLettered,
)
from ._keys import Keys
from ._validate import MAX_CONTEXT_BYTES, MAX_TASK_DATA_BYTES

if TYPE_CHECKING:
    from ._cache import ContextCache

__all__ = [
    "INTERRUPTS",
    "WAITER_PUSH",
    "WAKE_WAIT",
    "WORKERS_REMEMBERED",
    "Batch",
    "Call",
    "Cmd",
    "Compute",
    "Fetch",
    "Limits",
    "Notice",
    "OpContext",
    "Operation",
    "Reader",
    "Request",
    "adrive",
    "async_op",
    "drive",
    "is_wake_wait",
    "items_of",
    "raise_first",
    "remember",
    "reply_at_interrupt",
    "sync_op",
    "tell",
    "together",
    "warn_outside",
    "with_reply",
]

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class Cmd:
    """One Redis command."""

    args: tuple[Any, ...]

    def __init__(self, *args: Any) -> None:
        object.__setattr__(self, "args", args)


@dataclass(frozen=True, slots=True)
class Call:
    """One call of a script from ``lua/`` (by name), every key passed in ``keys``. ``load``
    False: a missing or stale library (or script) is never loaded for it, its error reply
    raised as it is (``swarm doctor`` reads the server; loading there would replace another
    redis-swarm's library)."""

    script: str
    keys: tuple[str, ...]
    args: tuple[Any, ...] = ()
    load: bool = True
    # True: its reply holds what the operation took (a claim's leases, a report's next
    # task), and the asyncio shell reads it even when its caller is cancelled meanwhile,
    # handing it over on the interrupt (``reply_at_interrupt``) so that the operation gives
    # back what it took: when it is sent alone (it is answered at once), for a short while
    # and from the attempt under way alone (no retry, no reconnection: _client.DRAIN_S);
    # only what already came when it waits behind a wake wait (``is_wake_wait``), which the
    # interrupt cuts.
    shielded: bool = False


@dataclass(frozen=True, slots=True)
class Batch:
    """Several requests pipelined in one round trip (not a transaction); replies in order."""

    items: tuple[Cmd | Call, ...]


Request = Cmd | Call | Batch

# Work below this size is done in place by both shells: a thread hop would cost more.
OFFLOAD_MIN_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Compute:
    """CPU work an operation hands its shell rather than doing it between two requests
    (hashing, compressing, decoding, caching a big context): the sync shell runs it in place,
    the async shell in a worker thread when it is big (``size`` bytes of work; None: unknown,
    such as a file to read), so that its event loop never stalls on it. Its result is sent
    back to the operation like a reply, its exception thrown back like an error reply."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    size: int | None = None

    def run(self) -> Any:
        return self.fn(*self.args)

    @property
    def offload(self) -> bool:
        return self.size is None or self.size >= OFFLOAD_MIN_BYTES


class Reader(Protocol):
    """What takes the replies of a ``Fetch``, one by one and in order, and makes its result.
    ``take`` never raises (a shell may be mid-way through reading a connection): it keeps
    what is wrong for ``result``, which raises it. Index 0 again means the fetch was sent
    again (a retry after a dropped connection): start over."""

    def take(self, index: int, reply: Any) -> None: ...

    def result(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class Fetch:
    """Read commands pipelined in one round trip whose replies a ``Reader`` (made by
    ``reader``) takes as they arrive, so that checking one overlaps the transfer of the
    next: the sync shell on one server hands each over as it is read. The async shell (whose
    event loop must not hash megabytes) and a cluster send a plain Batch and hand the replies
    over after, as a ``Compute`` of ``size`` bytes (None: as many as the replies hold, for
    reads whose size is not known before). The reader's ``result()`` comes back."""

    items: tuple[Cmd, ...]
    reader: Callable[[], Reader]
    size: int | None

    def after(self, replies: list[Any]) -> Compute:
        """The reading of replies already received, as the work of a step."""
        size = self.size
        if size is None:
            size = sum(len(r) for r in replies if isinstance(r, bytes))
        return Compute(_read_all, (self.reader(), replies), size)


def _read_all(reader: Reader, replies: list[Any]) -> Any:
    for index, reply in enumerate(replies):
        reader.take(index, reply)
    return reader.result()


def items_of(request: Request | Fetch) -> tuple[Cmd | Call, ...]:
    """The commands and script calls of a request (a single one, or a batch's)."""
    return request.items if isinstance(request, Batch | Fetch) else (request,)


# The command of a wait for a wake token (lua/_tasks.lua pushes them), and that of the push of
# a waiting worker's name on its queue's waiters list, sent right before the wait
# (``claiming.around_wait``).
WAKE_WAIT = "BLPOP"
WAITER_PUSH = "LPUSH"


def is_wake_wait(item: Cmd | Call) -> bool:
    """Whether ``item`` is a wait for a wake token: a hint, sent before the claim script
    that stays the truth, in the same round trip."""
    return isinstance(item, Cmd) and str(item.args[0]).upper() == WAKE_WAIT


def _judged_by_claim(items: tuple[Cmd | Call, ...], i: int) -> bool:
    """Whether ``items[i]`` is a wake wait, or the push of a waiter's name right before one:
    hints both, whose errors the claim behind them judges (``raise_first``)."""
    if i >= len(items):
        return False
    item, after = items[i], items[i + 1 : i + 2]
    if isinstance(item, Cmd) and str(item.args[0]).upper() == WAITER_PUSH:
        return bool(after) and is_wake_wait(after[0])
    return is_wake_wait(item)


def raise_first(replies: list[Any], items: tuple[Cmd | Call, ...] = ()) -> list[Any]:
    """Like a pipeline's execute(): raise the first error reply, else return them all.

    The error of a wake wait among ``items``, or of the push of a waiter's name right before
    it, is returned as its reply instead: the claim behind them may have run (a slot moving
    under them, say, fails them and not the claim: redis-py, following an ASK or a TRYAGAIN
    for each failed command of a pipeline alone, in turn, may give the push up and see the
    claim through), and raising would throw its lease away, the request being sent again
    whole by a retry whose claim finds nothing. The operation that sent them judges their
    errors (see ``claiming.claim``)."""
    for i, reply in enumerate(replies):
        if isinstance(reply, Exception) and not _judged_by_claim(items, i):
            raise reply
    return replies


@dataclass(frozen=True, slots=True)
class Notice:
    """What an operation tells its caller besides its result, as warnings: a claim, the tasks
    it met stored damaged and dead-lettered (one ``TaskDeadLettered`` each); an inbox read,
    the broadcasts trimmed before its reader read them (``BroadcastsTrimmed``). The
    operation only yields it: its shell says it (``tell``), a ``TaskDeadLettered`` to the
    list of a face that collects them (``TaskDeadLettered.collected``), else each as a
    warning at the caller's line. Its reply: None once said, or the warning a warnings
    filter made an error, which the operation raises once it has undone what its caller
    would not see (a claim gives back its good leases, an inbox read what it took)."""

    said: tuple[UserWarning, ...]


Operation = Generator[Request | Fetch | Compute | Notice, Any, T]


def together(*ops: Operation[Any]) -> Operation[list[Any]]:
    """Run operations side by side: each step sends the next request of every one still
    running in one batch (one round trip), and hands each its own replies; returns their
    results in order. An error reply ends them all (it is raised to the caller, not thrown
    into the one that asked), so combine reads whose only errors are the connection's."""
    results: list[Any] = [None] * len(ops)
    asking: dict[int, Request | Fetch] = {}

    def step(i: int, reply: Any = None, first: bool = False) -> None:
        try:
            asked = next(ops[i]) if first else ops[i].send(reply)
            while isinstance(asked, Compute):  # small reads: their work is done in place
                asked = ops[i].send(asked.run())
            if isinstance(asked, Notice):  # (a claim's: its shell says it, never together)
                raise TypeError("together() runs no operation that yields a Notice")
            asking[i] = asked
        except StopIteration as stop:
            results[i] = stop.value

    for i in range(len(ops)):
        step(i, first=True)
    while asking:
        order = sorted(asking)
        requests = [asking.pop(i) for i in order]
        replies = iter((yield Batch(tuple(item for r in requests for item in items_of(r)))))
        for i, request in zip(order, requests, strict=True):
            mine = [next(replies) for _ in items_of(request)]
            if isinstance(request, Fetch):
                step(i, request.after(mine).run())
            else:
                step(i, mine if isinstance(request, Batch) else mine[0])
    return results


# What ``past_wrong_type`` gives for a command on a key of another type than the command's
# (written around redis-swarm): the caller names the key, and reads on.
WRONG_TYPE = object()


def past_wrong_type(cmds: tuple[Cmd, ...], *, gone: str | None = None) -> Operation[list[Any]]:
    """The replies of ``cmds`` in one batch; when one errs on a key of another type
    (WRONGTYPE, which ends the batch), or with ``gone`` (a key deleted since it was seen),
    each is sent alone, that one's reply ``WRONG_TYPE`` (or None). Only a damaged (or
    changing) swarm pays for more than the one round trip."""

    def tolerated(exc: SwarmError) -> bool:
        said = str(exc)
        return not isinstance(exc, ConnectionFailed | PermissionDenied) and (
            WRONG_TYPE_ERROR in said or (gone is not None and gone in said)
        )

    try:
        return list((yield Batch(cmds)))
    except SwarmError as exc:
        if not tolerated(exc):
            raise
    replies: list[Any] = []
    for cmd in cmds:
        try:
            replies.append((yield cmd))
        except SwarmError as exc:
            if not tolerated(exc):
                raise
            replies.append(WRONG_TYPE if WRONG_TYPE_ERROR in str(exc) else None)
    return replies


@dataclass(frozen=True)
class Limits:
    """Size limits enforced at the edge, before anything is stored."""

    max_finding_bytes: int = 256 * 1024
    max_task_data_bytes: int = MAX_TASK_DATA_BYTES
    max_context_bytes: int = MAX_CONTEXT_BYTES
    max_message_bytes: int = 64 * 1024
    context_chunk_bytes: int = 1024 * 1024
    # The current version of a context up to this size is also kept whole beside its chunks
    # (docs/contexts.md: the memory it costs), which lets a reader that lacks it fetch the
    # pointer and its bytes in one round trip; 0: never (nor does a reader look for it).
    context_copy_bytes: int = 8 * 1024 * 1024
    context_versions_kept: int = 3
    events_maxlen: int = 100_000

    def __post_init__(self) -> None:
        # Refused as it is made (ConfigError), not at the first handle or publish that uses
        # it: a limit of -1 or NaN refused every finding, no version kept or chunks of no
        # bytes broke every publish.
        for item in dataclasses.fields(self):
            value, least = getattr(self, item.name), _LEAST.get(item.name, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(
                    f"Limits.{item.name} must be an integer of at least {least}, not {value!r}"
                    + (" (0 keeps no copy)" if least == 0 else "")
                )


# The least value of a field of Limits: 1 but for the copy's bound (0: no copy kept).
_LEAST = {"context_copy_bytes": 0}


def check_limits(limits: object) -> Limits:
    """``limits``, refused (ConfigError) unless it is a ``Limits``, whose every size and count
    is an integer of at least 1 (``context_copy_bytes`` at least 0): checked as it is made.
    A handle checks the one it is given; a publish and a reader go by them."""
    if not isinstance(limits, Limits):
        raise ConfigError(
            f"limits must be a Limits (redis_swarm.Limits(max_finding_bytes=...)), not "
            f"{type(limits).__name__}"
        )
    return limits


# What a handle remembers per worker is bounded: one naming more workers forgets them all
# (each then costs its next operation what a first one costs).
WORKERS_REMEMBERED = 10_000

V = TypeVar("V")


def remember(table: dict[str, V], worker: str, value: V) -> None:
    """``table[worker] = value``, in a table of an OpContext, within WORKERS_REMEMBERED."""
    if len(table) >= WORKERS_REMEMBERED and worker not in table:
        table.clear()
    table[worker] = value


@dataclass
class OpContext:
    """What an operation may know about its swarm, besides the replies it asks for."""

    settings: Settings
    limits: Limits = field(default_factory=Limits)
    # Milliseconds since the epoch; None means "the server's clock" (TIME inside scripts),
    # which keeps leases right when agents on several machines disagree about the time.
    clock: Callable[[], int] | None = None
    cache: ContextCache | None = None
    # worker -> when (time.monotonic()) this handle's claims last registered it and marked it
    # present (see _ops._work.presence_due)
    presence_sent: dict[str, float] = field(default_factory=dict)
    # Per worker (a handle many agents share, as the MCP server's, keeps each agent's own),
    # at most WORKERS_REMEMBERED of them:
    # the queues its claim or its report's claim_next just found empty: worker -> (queues,
    # time.monotonic(), next due ms or -1, server now ms); its next waiting claim of those
    # queues blocks at once (see _ops.claiming.claim).
    idle: dict[str, tuple[tuple[str, ...], float, int, int]] = field(default_factory=dict)
    # The queues its last claim of them had to wait for (a task came while it blocked), and
    # left no other task's token: nothing pending, so its next report that waits for the
    # next task of those queues sends its wait and claim behind it, in one round trip (see
    # _ops.findings.report).
    dry: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The key builder of ``settings.swarm``, made once: every operation asks for it.
    _keys: Keys | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def keys(self) -> Keys:
        keys = self._keys
        if keys is None or keys.swarm != self.settings.swarm:
            keys = self._keys = Keys(self.settings.swarm)
        return keys

    def now_arg(self) -> int:
        """The ``now`` argument for scripts: 0 lets the script read the server's TIME."""
        return self.clock() if self.clock is not None else 0


# Where a warning of ``tell`` is not said: redis-swarm's own lines, and those of what runs a
# caller's call without being its caller (an event loop running ``asyncio.gather(swarm.claim
# (...))``, a thread pool running ``submit(swarm.claim, ...)``): the first line past them is.
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_NOT_THE_CALLER = (
    _PACKAGE,
    os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep,
    os.path.dirname(os.path.abspath(concurrent.futures.__file__)) + os.sep,
    os.path.abspath(threading.__file__),
)


def tell(notice: Notice) -> UserWarning | None:
    """Say a ``Notice`` (the shells' part, both of them): a ``TaskDeadLettered`` to the list
    of a face collecting them in this context (``TaskDeadLettered.collected``), else each as
    a warning at the first line outside redis-swarm (and outside an event loop or thread
    pool running the call), worked out only then: an operation that has nothing to say pays
    nothing. Returns the warning a warnings filter made an error, for the operation to raise
    (see ``Notice``), else None."""
    collecting = TaskDeadLettered.collector()
    for warning in notice.said:
        if collecting is not None and isinstance(warning, TaskDeadLettered):
            collecting.append(warning)
            continue
        try:
            warn_outside(warning)
        except UserWarning as raised:
            if raised is not warning:  # (a showwarning's own error: not the filter's)
                raise
            return raised
    return None


def warn_outside(warning: Warning) -> None:
    """Warn ``warning`` at the first line outside redis-swarm (and outside an event loop or
    thread pool running the call): the caller's line, not ours."""
    if sys.version_info >= (3, 12):
        warnings.warn(warning, skip_file_prefixes=_NOT_THE_CALLER)
    else:
        warnings.warn(warning, stacklevel=_outside())


def _outside() -> int:
    """The stacklevel, for ``warn_outside``'s ``warnings.warn``, of the first frame past
    ``_NOT_THE_CALLER`` (``skip_file_prefixes`` before Python 3.12)."""
    frame, level = sys._getframe(2), 2  # (warn_outside's caller: stacklevel 2 of its warn)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_NOT_THE_CALLER):
        frame, level = frame.f_back, level + 1
    return level


class _SyncRunner(Protocol):
    _ctx: OpContext

    def _run(self, op: Operation[T]) -> T: ...


class _AsyncRunner(Protocol):
    _ctx: OpContext

    async def _run(self, op: Operation[T]) -> T: ...


def sync_op(
    fn: Callable[Concatenate[OpContext, P], Operation[T]],
) -> Callable[Concatenate[_SyncRunner, P], T]:
    """Make an operation a method of the sync shell."""

    @functools.wraps(fn)
    def method(self: _SyncRunner, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(fn(self._ctx, *args, **kwargs))

    return method


def async_op(
    fn: Callable[Concatenate[OpContext, P], Operation[T]],
) -> Callable[Concatenate[_AsyncRunner, P], Coroutine[Any, Any, T]]:
    """Make an operation a coroutine method of the async shell."""

    @functools.wraps(fn)
    async def method(self: _AsyncRunner, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(fn(self._ctx, *args, **kwargs))

    return method


S = TypeVar("S")


# What stops a caller while an operation waits (Ctrl-C; an asyncio task's cancel; sys.exit
# from a signal handler, as a SIGTERM handler that exits the Python way raises): thrown into
# the operation, so that it can take back what it started (``ask`` withdraws its question),
# and out again once it has. An operation that does not catch it ends there, as before.
INTERRUPTS: tuple[type[BaseException], ...] = (
    KeyboardInterrupt,
    SystemExit,
    asyncio.CancelledError,
)


def drive(
    steps: Generator[S, Any, T],
    do: Callable[[S], Any],
    errors: tuple[type[BaseException], ...],
    convert: Callable[[BaseException], BaseException] = lambda exc: exc,
) -> T:
    """Run an I/O-free generator (an operation, a send plan): ``do`` each step it yields and
    send back the result, or throw back the error (one of ``errors``, after ``convert``);
    return what it returns; an interrupt (``INTERRUPTS``) is thrown into it too. The one
    driver of the sync side: ``adrive`` is the asyncio one."""
    try:
        step = next(steps)
        while True:
            try:
                result = do(step)
            except errors as exc:
                step = steps.throw(convert(exc))
            except INTERRUPTS as exc:
                step = steps.throw(exc)
            else:
                step = steps.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def adrive(
    steps: Generator[S, Any, T],
    do: Callable[[S], Awaitable[Any]],
    errors: tuple[type[BaseException], ...],
    convert: Callable[[BaseException], BaseException] = lambda exc: exc,
) -> T:
    """The asyncio twin of ``drive``. A cancellation that came while a step ran is thrown
    into the generator after that step even when the step returned (see ``_cancels``)."""
    count = _cancels()
    seen = count() if count is not None else 0
    try:
        step = next(steps)
        while True:
            try:
                result = await do(step)
                if count is not None and count() > seen:
                    raise _lost_cancel(result)
            except errors as exc:
                step = steps.throw(convert(exc))
            except INTERRUPTS as exc:
                if count is not None:  # delivered: what the generator does next may wait
                    seen = count()
                step = steps.throw(exc)
            else:
                step = steps.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


# The attribute of an interrupt that carries the reply of the request it cut (see
# ``Call.shielded``).
_REPLY = "redis_swarm_reply"


def reply_at_interrupt(exc: BaseException) -> Any:
    """The reply of the request an interrupt cut, when the shell read it all the same (a
    ``Call`` with ``shielded``; a cancellation Python lost, see ``_cancels``), else None."""
    return getattr(exc, _REPLY, None)


def with_reply(exc: BaseException, reply: Any) -> BaseException:
    """``exc`` carrying ``reply`` (``reply_at_interrupt``)."""
    setattr(exc, _REPLY, reply)
    return exc


def _lost_cancel(reply: Any) -> BaseException:
    return with_reply(asyncio.CancelledError(), reply)


def _cancels() -> Callable[[], int] | None:
    """How many cancellations of the current task are pending (``Task.cancelling``), or None
    (Python 3.10 has no count; no task). On Python 3.11 ``asyncio.wait_for``, which redis-py
    puts around every send and read, returns the result of a command that ended as the
    cancellation came and drops the CancelledError: the count still says it came. A driver
    compares it with its value at the start (or at the last interrupt it delivered), so that
    a task that caught a CancelledError without ``uncancel()`` can go on calling."""
    task = asyncio.current_task()
    return getattr(task, "cancelling", None)
