"""The two thin I/O shells: ``Swarm`` (sync) and ``AsyncSwarm`` (asyncio).

They hold a connection and drive operations (``_ops``); they contain no logic of their own,
except the few blocking calls (waiting for work, for a pass, for events), which exist once
per shell because waiting is the one thing sync and async code cannot share.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterable, Iterator
from types import MappingProxyType, MethodType
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    NamedTuple,
    ParamSpec,
    TypeVar,
    cast,
    overload,
)

import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from ._cache import ContextCache
from ._config import Settings
from ._connect import AsyncClient, SyncClient, async_client, sync_client
from ._direct import direct_sender
from ._durability import Plan, confirm, is_write, wrap
from ._env import settings_from_env
from ._errors import SwarmError, ValidationError, closed
from ._keys import Keys
from ._models import Event, EventType, type_filter
from ._ops._work import new_id
from ._overloads import AsyncAnswer, AsyncClaim, AsyncReport, SyncAnswer, SyncClaim, SyncReport
from ._protocol import (
    Batch,
    Call,
    Cmd,
    Compute,
    Fetch,
    Limits,
    Notice,
    OpContext,
    Operation,
    Request,
    adrive,
    async_op,
    check_limits,
    drive,
    is_wake_wait,
    items_of,
    sync_op,
    tell,
    with_reply,
)
from ._retries import AsyncRetry, Retry, stoppable
from ._translate import translate
from ._transport import Load, Scripting, Step, exchange, load_everything

if TYPE_CHECKING:  # (at run time: each module of operations a _Later; the other, for a cluster)
    from ._ops import a2a_store, claiming, doctor, retire, server, tasks, views
    from ._ops import agents as agent_ops
    from ._ops import ask as ask_ops
    from ._ops import bulk as bulk_ops
    from ._ops import contexts as context_ops
    from ._ops import costs as cost_ops
    from ._ops import counters as counter_ops
    from ._ops import events as event_ops
    from ._ops import findings as finding_ops
    from ._ops import messages as message_ops
    from ._ops import retire_questions as question_retiring
    from ._ops import unrecorded as unrecorded_ops
    from ._ops import webhooks as webhook_ops
    from ._strict_cluster import AsyncStrictClusterSender, StrictClusterSender

__all__ = ["AsyncSwarm", "Swarm"]

T = TypeVar("T")
P = ParamSpec("P")

NORMAL_DURABILITY = (
    "normal: a write is acknowledged once Redis applied it (durability=strict waits for "
    "the disk or a replica)"
)


def _ignore(error: Exception) -> None:
    """The failure callback of a shell-level retry: redis-py already dropped the connection."""


async def _aignore(error: Exception) -> None:
    """The asyncio twin of ``_ignore``."""


def raise_if_cancelled() -> None:
    """Raise CancelledError when the current task has been asked to stop. A follower checks
    at each step, and so does a view's ``EventFeed.next``: on Python 3.11
    ``asyncio.wait_for``, which redis-py puts around every command, can return its result and
    lose a cancellation that came as the command ended, and a follower or a view would then
    go on for good (``swarm watch`` not exiting on Ctrl-C, a server's lifespan waiting on its
    follower). The request stays counted
    (``Task.cancelling``, Python 3.11; on 3.10 there is no count to read) when its
    CancelledError is lost."""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    if cancelling is not None and cancelling():
        raise asyncio.CancelledError


# How many turns of the event loop a reply already received takes to be read (its bytes from
# the socket to the parser, then to the pipeline): what a cancelled wait gets to finish.
DRAIN_TURNS = 4
# The longest a cancelled call waits for the reply of a request it already sent (a claim's:
# it holds the leases to give back), socket_timeout if less: a few round trips to a far
# server, not the retries of a server that is gone or paused (those are a lost reply).
DRAIN_S = 1.5


async def _shielded(work: Coroutine[Any, Any, T], *, blocking: bool, drain_s: float) -> T:
    """``await work``, whose reply is read even when the caller is cancelled meanwhile (a
    ``Call.shielded``: a claim's reply holds the leases it took); the CancelledError then
    carries the reply (``reply_at_interrupt``), for the operation to give back what it took.
    Once cancelled, only the attempt under way may end: no retry, no reconnection
    (``stoppable``), for ``drain_s`` at most (such a request is answered at once); one that
    waits first (``blocking``: behind a wake wait) only as far as what already came
    (``DRAIN_TURNS`` turns of the event loop). Then it is dropped with its connection, and
    what it took, if it ran, is held until its lease ends (a lost reply)."""
    inner, stop = stoppable(work)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError as exc:
        stop()
        if blocking:
            for _ in range(DRAIN_TURNS):
                if inner.done():
                    break
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0)
        else:  # (a cancellation during the drain, aclose()'s say, does not prolong it)
            deadline = time.monotonic() + drain_s
            while not inner.done() and (left := deadline - time.monotonic()) > 0:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait((inner,), timeout=left)
        inner.cancel()
        while not inner.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait((inner,))
        if not inner.cancelled() and inner.exception() is None:
            with_reply(exc, inner.result())
        raise


def _server_changed(exc: redis.ResponseError) -> bool:
    """True when an error says the server is not the one the strict plan was probed on: it
    is a replica now (READONLY), or it refuses the plan's own wait ("WAITAOF cannot be used
    when ... appendonly is disabled"). Any other error reply (a script's, a missing library,
    a cluster redirection) says nothing about the plan."""
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return True
    return str(exc).startswith(("WAIT ", "WAITAOF "))


# What an operation may be told about a request that failed (translated into a SwarmError).
_OP_ERRORS = (SwarmError, redis.RedisError, OSError, UnicodeEncodeError)
# What a send plan is told of a step that failed (a load refused): see ``_transport``.
_PLAN_ERRORS = (redis.ResponseError,)
C = TypeVar("C")


def _connected(make: Callable[[Settings], C], settings: Settings) -> C:
    """A shell's client, a failure to make it translated."""
    try:
        return make(settings)
    except SwarmError:
        raise
    except redis.RedisError as exc:
        raise translate(exc, settings.url) from None


def _settings(url: Settings | str | None, swarm: str | None) -> Settings:
    if isinstance(url, Settings):
        return url if swarm is None else url.with_swarm(swarm)
    # An empty name is refused (not silently the default swarm): only None means default.
    return Settings.from_url(url or "embedded", swarm="default" if swarm is None else swarm)


# What an operation's generator returns, as its annotation reads (postponed: a string).
_OPERATION = "Operation["


def _shown(fn: Callable[..., Any], returns: Callable[[Any], Any]) -> inspect.Signature:
    """The signature a shell's method shows (``help``, ``inspect.signature``): the
    operation's own, without its ``ctx``, returning ``returns`` of what the operation's
    generator returns (its ``Operation[X]``: ``X``)."""
    sig = inspect.signature(fn)
    made: Any = sig.return_annotation
    if isinstance(made, str):
        result: Any = made[len(_OPERATION) : -1] if made.startswith(_OPERATION) else made
    else:  # an evaluated annotation: Generator[request, reply, X]
        args = getattr(made, "__args__", ())
        result = args[-1] if args else made
    self = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return sig.replace(
        parameters=[self, *list(sig.parameters.values())[1:]], return_annotation=returns(result)
    )


def _as_it_is(result: Any) -> Any:
    return result


def _coroutine_of(result: Any) -> Any:
    return (
        f"Coroutine[Any, Any, {result}]" if isinstance(result, str) else Coroutine[Any, Any, result]
    )


class _Shown(inspect.Signature):
    """A shell method's ``__signature__``, worked out at its first reading (``help``,
    ``inspect``), not as the shells are defined: every command that reaches Redis, a hook
    run at each turn of a session among them, would pay for every operation's (~7 ms)."""

    __slots__ = ("_fn", "_made", "_returns")

    def __init__(self, fn: Callable[..., Any], returns: Callable[[Any], Any]) -> None:
        # (Signature's own __init__ is not run: every reading goes through _signature.)
        self._fn, self._returns = fn, returns
        self._made: inspect.Signature | None = None

    def _signature(self) -> inspect.Signature:
        if self._made is None:
            self._made = _shown(self._fn, self._returns)
        return self._made

    @property
    def parameters(self) -> MappingProxyType[str, inspect.Parameter]:
        return self._signature().parameters

    @property
    def return_annotation(self) -> Any:
        return self._signature().return_annotation

    def replace(self, **changes: Any) -> inspect.Signature:  # type: ignore[override]
        return self._signature().replace(**changes)

    def __reduce__(self) -> Any:
        return self._signature().__reduce__()


class _Named(NamedTuple):
    """An operation named in ``_Shell``'s table at run time (see ``_Later``)."""

    module: str
    name: str

    def load(self) -> Callable[..., Any]:
        function: Callable[..., Any] = getattr(importlib.import_module(self.module), self.name)
        return function


class _Later:
    """At run time, a module of operations as ``_Shell``'s table names it: ``tasks.post_task``
    is ``_Named``, imported at the operation's first use (``_Op``). Each module's import is
    milliseconds, and a process uses a few of them: a hook, run at every turn of a live
    session, its handful of reads, not claims, contexts, views or A2A stores. The type
    checker sees the modules themselves (imported above under TYPE_CHECKING, by the names
    given here: tests/test_hook_imports.py holds the two alike)."""

    __slots__ = ("_module",)

    def __init__(self, module: str) -> None:
        self._module = f"{__package__}._ops.{module}"

    def __getattr__(self, name: str) -> _Named:
        if name.startswith("_"):  # (copy, pickle, inspect looking for hooks: none here)
            raise AttributeError(name)
        return _Named(self._module, name)


if not TYPE_CHECKING:  # the modules imported above for the type checker, by the same names
    a2a_store, claiming, doctor, retire, server, tasks, views = map(
        _Later, ("a2a_store", "claiming", "doctor", "retire", "server", "tasks", "views")
    )
    agent_ops = _Later("agents")
    ask_ops = _Later("ask")
    bulk_ops = _Later("bulk")
    context_ops = _Later("contexts")
    cost_ops = _Later("costs")
    counter_ops = _Later("counters")
    event_ops = _Later("events")
    finding_ops = _Later("findings")
    message_ops = _Later("messages")
    question_retiring = _Later("retire_questions")
    unrecorded_ops = _Later("unrecorded")
    webhook_ops = _Later("webhooks")


# An operation as a method of both shells: on a ``Swarm`` it returns the result, on an
# ``AsyncSwarm`` a coroutine; so the operations are listed once, in ``_Shell``. Each shell's
# method shows the operation's docstring and parameters (``help``), worked out once
# (``_Shown``): a call only binds it. The methods are made at the first reading of the
# operation (its module imported then: ``_Later``); ``__doc__`` and ``__wrapped__`` are the
# operation's (not a docstring of this class: they are properties).
class _Op(Generic[P, T]):
    def __init__(self, fn: Callable[Concatenate[OpContext, P], Operation[T]]) -> None:
        self._fn: Callable[..., Any] | _Named = fn  # (_Named at run time: see _Later)
        self._name = ""
        self._methods: tuple[Any, Any] | None = None  # (sync, async), made at first use

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    def _made(self) -> tuple[Any, Any]:
        """The operation's two methods, made at the first call (two threads making them at
        once make the same twice: either is kept)."""
        methods = self._methods
        if methods is None:
            fn = self._function()
            sync: Any = sync_op(fn)  # (functools.wraps: the operation's doc, __wrapped__)
            sync.__signature__ = _Shown(fn, _as_it_is)
            asynchronous: Any = async_op(fn)
            asynchronous.__signature__ = _Shown(fn, _coroutine_of)
            for method, shell in ((sync, "Swarm"), (asynchronous, "AsyncSwarm")):
                method.__name__ = self._name
                method.__qualname__ = f"{shell}.{self._name}"
                method.__module__ = __name__
            methods = self._methods = (sync, asynchronous)
        return methods

    def _function(self) -> Callable[..., Any]:
        fn = self._fn
        if isinstance(fn, _Named):
            fn = self._fn = fn.load()
        return fn

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        return self._function()

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self._function().__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Callable[..., Any]: ...
    @overload
    def __get__(self, obj: Swarm, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: AsyncSwarm, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, obj: _Shell | None, owner: type[Any]) -> Any:
        sync, asynchronous = self._methods or self._made()
        if obj is None:  # Swarm.claim: the function, as a plain method's (help, inspect)
            return asynchronous if issubclass(owner, AsyncSwarm) else sync
        return MethodType(asynchronous if isinstance(obj, AsyncSwarm) else sync, obj)


S = TypeVar("S")
A = TypeVar("A")


# An operation whose result type depends on an argument: ``S`` and ``A`` are the Protocols of
# its sync and async methods (``_overloads``); it runs as an ``_Op``, whose ``__doc__`` and
# ``__wrapped__`` are its own.
class _Overloaded(Generic[S, A]):
    def __init__(self, fn: Callable[Concatenate[OpContext, ...], Operation[Any]]) -> None:
        self._op: _Op[..., Any] = _Op(fn)

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._op.__set_name__(owner, name)

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        return self._op.__wrapped__

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self._op.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Callable[..., Any]: ...
    @overload
    def __get__(self, obj: Swarm, owner: type[Any]) -> S: ...
    @overload
    def __get__(self, obj: AsyncSwarm, owner: type[Any]) -> A: ...
    def __get__(self, obj: _Shell | None, owner: type[Any]) -> Any:
        return self._op.__get__(cast(Any, obj), owner)


_S = TypeVar("_S", bound="_Shell")


class _Shell:
    """What both shells share: settings, the operation context, how scripts are called, and
    the operations (one table, ``_Op``)."""

    def __init__(
        self,
        url: Settings | str | None = None,
        *,
        swarm: str | None = None,
        limits: Limits | None = None,
        clock: Callable[[], int] | None = None,
        cache: ContextCache | None = None,
    ) -> None:
        # Checked now, not at the first call that goes by them (a raw TypeError there).
        limits = Limits() if limits is None else check_limits(limits)
        if clock is not None and not callable(clock):
            raise ValidationError(
                f"clock must be a function returning the time in milliseconds since the "
                f"epoch (None: the server's clock), not {type(clock).__name__}"
            )
        if cache is not None and not isinstance(cache, ContextCache):
            raise ValidationError(
                f"cache must be a ContextCache (redis_swarm.ContextCache()), not "
                f"{type(cache).__name__}"
            )
        self.settings = _settings(url, swarm)
        self._ctx = OpContext(
            self.settings,
            limits,
            clock=clock,
            cache=cache if cache is not None else ContextCache(),
        )
        # durability="strict": how writes are made durable, probed at the first write.
        self._strict = self.settings.durability == "strict"
        self._plan: Plan | None = None
        # FCALL of the library, or EVALSHA once a server showed it has no Functions.
        self._scripting = Scripting()
        self._cluster = False  # set by each shell once it has its client
        # Set by close(): every call after it is refused (``closed``). Else redis-py would
        # open a new connection at the next call, and nothing would ever close it.
        self._closed = False

    @classmethod
    def from_env(
        cls: type[_S],
        *given: object,
        swarm: str | None = None,
        limits: Limits | None = None,
        clock: Callable[[], int] | None = None,
        cache: ContextCache | None = None,
    ) -> _S:
        """A handle on the swarm this process's environment names: ``SWARM_URL`` (default
        the embedded server), ``SWARM_NAME`` (default ``default``; ``swarm`` given wins),
        ``SWARM_HOME``. What an agent started by ``swarm run`` or a hook calls to reach the
        swarm it was started for; ``Swarm()`` reads no environment. ``limits``, ``clock``
        and ``cache`` are the constructor's (a ``client`` is not taken: it would name its
        own server, not the environment's). Keywords only: ``given`` (a URL passed as if
        to the constructor) is refused with the way to pass it."""
        if given:  # (else Python's TypeError names _Shell.from_env and says no more)
            name = cls.__name__
            raise TypeError(
                f"{name}.from_env() takes no positional argument ({len(given)} given): it "
                f"reads the URL from SWARM_URL. Pass a URL as {name}(url), or set SWARM_URL; "
                "give the swarm's name as swarm=..."
            )
        return cls(settings_from_env(swarm=swarm), limits=limits, clock=clock, cache=cache)

    @property
    def name(self) -> str:
        """The swarm's name."""
        return self.settings.swarm

    @property
    def limits(self) -> Limits:
        """The size limits this handle enforces (what a face checks before reading input)."""
        return self._ctx.limits

    @property
    def keys(self) -> Keys:
        """The names of this swarm's Redis keys, for tools that work below the operations
        (``swarm bench``'s raw baseline and clean-up); the operations need no help."""
        return self._ctx.keys

    @staticmethod
    def new_finding_id() -> str:
        """A fresh finding id (no I/O): pass it to every try of one ``report`` through an
        outage (``report(..., finding_id=fid)``) and the finding is stored once."""
        return new_id("f-")

    @staticmethod
    def new_task_id() -> str:
        """A fresh task id (no I/O): post under it (``post_task(..., task_id=tid)``) to tell
        the task posted from one its dedupe key found, and to retry a post through an outage
        without posting twice."""
        return new_id("t-")

    @staticmethod
    def check_webhook(url: str, **given: str | None) -> None:
        """Refuse (ValidationError) a webhook that ``set_webhook`` would refuse for what it
        is, storing nothing (no I/O): check one given with a task before posting the task.
        ``given``: ``set_webhook``'s webhook_id, token, auth_scheme, auth_credentials."""
        from ._ops.webhooks import check_webhook  # (as the operations: imported when used)

        check_webhook(url, **given)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.settings.url!r}, swarm={self.name!r})"

    @contextlib.contextmanager
    def _probing_again(self) -> Iterator[None]:
        """Around a strict write: an error saying the server changed (a failover?) makes the
        next write probe it again."""
        try:
            yield
        except redis.ResponseError as exc:
            if _server_changed(exc):
                self._plan = None
            raise

    def _check_open(self) -> None:
        """Refuse a call once the handle is closed (see ``close``)."""
        if self._closed:
            raise closed(type(self).__name__)

    def _translate(self, exc: BaseException, op: object = None) -> BaseException:
        """``exc`` translated; ``op``: the operation that ran (its name says a refused key)."""
        name = getattr(op, "__name__", None)
        return translate(exc, self.settings.url, swarm=self.name, operation=name)

    def _exchange(
        self, request: Batch | Call, sent: list[Any] | None = None
    ) -> Generator[Step, Any, list[Any]]:
        """The plan of a request with script calls (see ``_transport``); ``sent``: the
        replies of its first send, already made."""
        return exchange(
            items_of(request),
            self._scripting,
            self.settings.url,
            resend_all=not self._cluster,
            sent=sent,
        )

    # The operations, one table for both shells (see ``_Op``).
    # --- server
    ping = _Op(server.ping)
    server_info = _Op(server.server_info)

    # --- tasks, findings, syntheses (work queue)
    post_task = _Op(tasks.post_task)
    post_tasks = _Op(tasks.post_tasks)
    claim: _Overloaded[SyncClaim, AsyncClaim] = _Overloaded(claiming.claim)
    renew = _Op(tasks.renew)
    fail = _Op(tasks.fail)
    add_failed_usage = _Op(tasks.add_failed_usage)
    release = _Op(tasks.release)
    cancel = _Op(tasks.cancel)
    requeue_dead = _Op(tasks.requeue_dead)
    cancel_tasks = _Op(bulk_ops.cancel_tasks)
    requeue_tasks = _Op(bulk_ops.requeue_tasks)
    reap = _Op(claiming.reap)
    reap_due = _Op(claiming.reap_due)
    get_task = _Op(tasks.get_task)
    task_statuses = _Op(tasks.task_statuses)
    list_tasks = _Op(tasks.list_tasks)
    configure_queue = _Op(tasks.configure_queue)
    queue_stats = _Op(tasks.queue_stats)
    pass_stats = _Op(tasks.pass_stats)
    shard_stats = _Op(tasks.shard_stats)
    wait = _Op(claiming.wait)
    retire_pass = _Op(retire.retire_pass)
    retired_passes = _Op(retire.retired_passes)
    retire_questions = _Op(question_retiring.retire_questions)
    retire_queues = _Op(question_retiring.retire_queues)
    retired_questions = _Op(question_retiring.retired_questions)
    retired_asked = _Op(question_retiring.retired_asked)
    report: _Overloaded[SyncReport, AsyncReport] = _Overloaded(finding_ops.report)
    get_finding = _Op(finding_ops.get_finding)
    findings = _Op(finding_ops.findings)
    synthesize = _Op(finding_ops.synthesize)
    get_synthesis = _Op(finding_ops.get_synthesis)
    syntheses = _Op(finding_ops.syntheses)
    ask = _Op(ask_ops.ask)
    answer: _Overloaded[SyncAnswer, AsyncAnswer] = _Overloaded(ask_ops.answer)
    answers_for = _Op(ask_ops.answers_for)

    # --- contexts
    publish_context = _Op(context_ops.publish_context)
    get_context = _Op(context_ops.get_context)
    get_context_bytes = _Op(context_ops.get_context_bytes)
    context_info = _Op(context_ops.context_info)
    context_versions = _Op(context_ops.context_versions)
    contexts = _Op(context_ops.contexts)
    read_context = _Op(context_ops.read_context)
    search_context = _Op(context_ops.search_context)
    gc = _Op(context_ops.gc)

    # --- agents, messages, events
    register = _Op(agent_ops.register)
    join = _Op(agent_ops.join)
    heartbeat = _Op(agent_ops.heartbeat)
    deregister = _Op(agent_ops.deregister)
    deregister_if_read = _Op(agent_ops.deregister_if_read)
    agents = _Op(agent_ops.agents)
    get_agent = _Op(agent_ops.get_agent)
    leases_of = _Op(agent_ops.leases_of)
    sweep = _Op(agent_ops.sweep)
    mark_stale = _Op(agent_ops.mark_stale)
    tally = _Op(agent_ops.tally)
    send = _Op(message_ops.send)
    broadcast = _Op(message_ops.broadcast)
    inbox = _Op(message_ops.inbox)
    mark_read = _Op(message_ops.mark_read)
    give_back_inbox = _Op(message_ops.give_back_inbox)
    message_status = _Op(message_ops.message_status)
    get_message = _Op(message_ops.get_message)
    request_synthesis = _Op(message_ops.request_synthesis)
    events = _Op(event_ops.events)
    events_trimmed = _Op(event_ops.events_trimmed)
    last_event_id = _Op(event_ops.last_event_id)
    set_webhook = _Op(webhook_ops.set_webhook)
    webhooks = _Op(webhook_ops.webhooks)
    delete_webhook = _Op(webhook_ops.delete_webhook)
    claim_webhook_event = _Op(webhook_ops.claim_webhook_event)

    # --- the task and event stores of a2a-sdk servers (redis_swarm.a2a)
    a2a_save = _Op(a2a_store.a2a_save)
    a2a_get = _Op(a2a_store.a2a_get)
    a2a_list = _Op(a2a_store.a2a_list)
    a2a_delete = _Op(a2a_store.a2a_delete)
    a2a_publish = _Op(a2a_store.a2a_publish)
    a2a_events = _Op(a2a_store.a2a_events)
    a2a_destroy = _Op(a2a_store.a2a_destroy)

    # --- what the faces show
    status = _Op(views.status)
    recent = _Op(views.recent)
    corrupt_records = _Op(doctor.corrupt_records)
    record_damage = _Op(doctor.record_damage)
    finding_lost = _Op(doctor.finding_lost)
    repair_indexes = _Op(doctor.repair_indexes)
    check_counters = _Op(counter_ops.check_counters)
    recount_counters = _Op(counter_ops.recount_counters)
    task_costs = _Op(views.task_costs)
    pass_costs = _Op(cost_ops.pass_costs)
    priced_findings = _Op(cost_ops.priced_findings)
    record_unrecorded_run = _Op(unrecorded_ops.record_unrecorded_run)
    unrecorded_runs = _Op(unrecorded_ops.unrecorded_runs)
    drop_unrecorded_runs = _Op(unrecorded_ops.drop_unrecorded_runs)


class Swarm(_Shell):
    """A synchronous handle on one swarm. Thread-safe; share one per process."""

    def __init__(
        self,
        url: Settings | str | None = None,
        *,
        swarm: str | None = None,
        limits: Limits | None = None,
        clock: Callable[[], int] | None = None,
        cache: ContextCache | None = None,
        client: SyncClient | None = None,
    ) -> None:
        _check_client(client, (redis.Redis, RedisCluster), "redis.Redis or RedisCluster")
        super().__init__(url, swarm=swarm, limits=limits, clock=clock, cache=cache)
        self._redis: SyncClient = client if client is not None else self._connect()
        # Commands go this way, one (most operations send one script call) or several in one
        # round trip; a pipeline of the shell's own (a Fetch) first hands back the
        # connection the sender keeps (``_give_back``).
        sender = direct_sender(self._redis)
        self._execute, self._execute_many = sender.one, sender.many
        self._give_back, self._close_sender = sender.give_back, sender.close
        self._cluster = isinstance(self._redis, RedisCluster)
        # redis-py's cluster client retries a failed node at once, with no pause: requests
        # are retried here too, with backoff, so that a failover (seconds) is ridden out.
        self._cluster_retry: Retry | None = None
        self._plan_lock = threading.Lock()
        self._strict_cluster: StrictClusterSender | None = None
        if isinstance(self._redis, RedisCluster):  # (the cluster's modules: only for one)
            from ._cluster import cluster_retry, fcall_routed
            from ._strict_cluster import StrictClusterSender

            fcall_routed(self._redis)
            self._cluster_retry = cluster_retry(self.settings)
            if self._strict:
                self._strict_cluster = StrictClusterSender(
                    self._redis, self.settings, self._scripting
                )

    def _connect(self) -> SyncClient:
        return _connected(sync_client, self.settings)

    @property
    def redis(self) -> SyncClient:
        """The underlying redis-py client (for tests and advanced use); refused once the
        handle is closed (redis-py would reconnect it silently)."""
        self._check_open()
        return self._redis

    def close(self) -> None:
        """Close the connection; closing again does nothing. Any call after it raises
        ``Conflict``: make a new handle. A call running in another thread raises it too,
        rather than reconnect (``Direct.close``)."""
        if self._closed:
            return
        self._closed = True
        if self._strict_cluster is not None:
            self._strict_cluster.close()
        self._close_sender()
        self._redis.close()

    def __enter__(self) -> Swarm:
        if self._closed:  # a with block of a closed handle would only meet refusals
            raise closed(type(self).__name__)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _strict_plan(self) -> Plan:
        """How strict writes are made durable here, probed at the first need."""
        from ._ops.server import durability_plan  # (here: as the operations, ``_Later``)

        self._check_open()
        with self._plan_lock:
            if self._plan is None:
                self._plan = (
                    self._run(durability_plan(self._ctx))
                    if self._strict_cluster is None
                    else self._strict_cluster.plan()
                )
            return self._plan

    def durability(self) -> str:
        """How this handle's writes are made durable, in words (``swarm doctor`` prints it);
        under ``durability="strict"`` the server is probed now, and ConfigError says what
        to change when it cannot honour strict."""
        self._check_open()
        if not self._strict:
            return NORMAL_DURABILITY
        return f"strict: {self._strict_plan().how}"

    def _send(self, request: Request) -> Any:
        if self._strict and is_write(request):
            plan = self._plan or self._strict_plan()
            if plan.command is not None:
                with self._probing_again():
                    if self._strict_cluster is not None:
                        return self._strict_cluster.send(request, plan)
                    replies = self._send_now(wrap(request, plan))
                return confirm(request, replies, plan, self.settings.url)
        return self._send_now(request)

    def _send_now(self, request: Request) -> Any:
        if isinstance(request, Cmd):
            return self._execute(*request.args)
        if isinstance(request, Batch):
            return drive(self._exchange(request), self._step, _PLAN_ERRORS)
        # One call (most operations): sent straight away; only an error reply needs the plan.
        try:
            return self._execute(*self._scripting.wire(request))
        except redis.ResponseError as exc:
            return drive(self._exchange(request, [exc]), self._step, _PLAN_ERRORS)[0]

    def _step(self, step: Step) -> Any:
        """Do one step of a request's plan: load on every master, or send commands (one
        alone, several in a pipeline) and return every reply, errors included."""
        if isinstance(step, Load):
            for command in step.commands:
                self._execute(*command)
            return None
        if len(step.commands) == 1:
            try:
                return [self._execute(*step.commands[0])]
            except redis.ResponseError as exc:
                return [exc]
        return self._execute_many(step.commands)

    def load_functions(self) -> bool:
        """Load (or replace) the swarm's Redis Functions library on the server (every master
        of a cluster): what ``swarm up`` does, as an admin user, so that workers, which may
        not load it, find it. True when it is loaded; False when the server has no Functions
        (before Redis 7.0): the scripts are then loaded for EVALSHA instead. Nothing is
        loaded where every master holds this version already (``LibraryState.current``:
        FUNCTION LIST is a read; 'swarm acl --apply' must not wait on a refused write to
        rotate a password)."""
        from ._ops.library import library_state  # (here: as the operations, ``_Later``)

        self._check_open()
        state = self._run(library_state(self._ctx))
        if state.current:
            return True
        try:
            steps = load_everything(self._scripting, self.settings.url, state.other_versions)
            return bool(drive(steps, self._step, _PLAN_ERRORS))
        except (redis.RedisError, OSError) as exc:
            raise translate(exc, self.settings.url) from None

    def _run(self, op: Operation[T]) -> T:
        """Drive an operation: send each request, feed back the reply or the error."""
        if self._closed:  # (inline: every call passes here)
            raise closed(type(self).__name__)
        return drive(op, self._attempt, _OP_ERRORS, lambda exc: self._translate(exc, op))

    def _attempt(self, request: Request | Fetch | Compute | Notice) -> Any:
        if self._closed:  # (an operation of another thread mid-way: see close)
            raise closed(type(self).__name__)
        if isinstance(request, Compute):
            return request.run()
        if isinstance(request, Fetch):
            return self._fetch(request)
        if isinstance(request, Notice):
            return tell(request)
        if self._cluster_retry is None:
            return self._send(request)
        return self._cluster_retry.call_with_retry(functools.partial(self._send, request), _ignore)

    def _fetch(self, fetch: Fetch) -> Any:
        """A Fetch on one server: its reader takes each reply as redis-py reads it (a
        callback of this pipeline alone), so that checking a chunk overlaps the transfer of
        the next. A retried pipeline hands index 0 again: the reader starts over."""
        if self._cluster:
            return self._attempt(fetch.after(self._attempt(Batch(fetch.items))))
        reader = fetch.reader()
        failed: list[Exception] = []
        self._give_back()

        def take(reply: Any, *, index: int) -> None:
            try:
                reader.take(index, reply)
            except Exception as exc:  # raised once every reply is read: the socket stays in step
                failed.append(exc)

        pipe = self._redis.pipeline(transaction=False)
        pipe.response_callbacks = {str(c.args[0]): take for c in fetch.items}
        for index, command in enumerate(fetch.items):
            pipe.execute_command(*command.args, index=index)
        pipe.execute()
        if failed:
            raise failed[0]
        return reader.result()

    def follow_events(
        self,
        since: str | int | None = None,
        types: Iterable[EventType | str] | EventType | str | None = None,
        block_s: float = 5.0,
        timeout_s: float | None = None,
    ) -> Iterator[Event]:
        """Yield events as they are appended (after ``since``; by default only new ones):
        each wait blocks the server-side read for up to ``block_s``. It goes on forever, or
        until ``timeout_s`` has passed, however quiet the stream; break out to stop sooner."""
        from ._ops import events as following  # (the module: event_ops is a _Later)

        flt = type_filter(types)
        deadline = following.follow_deadline(block_s, timeout_s)
        cursor = self._run(following.follow_start(self._ctx, since))
        while (block := following.next_block(block_s, deadline)) is not None:
            batch, cursor = self._run(following.follow_step(self._ctx, cursor, flt, block))
            yield from batch


def _check_client(client: object, kinds: tuple[type[Any], ...], named: str) -> None:
    """A handle's ``client``: None (the handle makes its own) or one of redis-py's
    ``kinds``; else a ValidationError now, not a raw error at the first call."""
    if client is not None and not isinstance(client, kinds):
        raise ValidationError(
            f"client must be a {named} client (None: the handle connects to its URL), not "
            f"{type(client).__name__}"
        )


class AsyncSwarm(_Shell):
    """The asyncio handle on one swarm: the same operations as ``Swarm``, awaited."""

    def __init__(
        self,
        url: Settings | str | None = None,
        *,
        swarm: str | None = None,
        limits: Limits | None = None,
        clock: Callable[[], int] | None = None,
        cache: ContextCache | None = None,
        client: AsyncClient | None = None,
    ) -> None:
        _check_client(
            client,
            (redis.asyncio.Redis, AsyncRedisCluster),
            "redis.asyncio.Redis or redis.asyncio.RedisCluster",
        )
        super().__init__(url, swarm=swarm, limits=limits, clock=clock, cache=cache)
        self._redis: AsyncClient = client if client is not None else self._connect()
        self._cluster = isinstance(self._redis, AsyncRedisCluster)
        self._cluster_retry: AsyncRetry | None = None
        self._strict_cluster: AsyncStrictClusterSender | None = None
        if isinstance(self._redis, AsyncRedisCluster):  # (as in Swarm.__init__)
            from ._cluster import async_cluster_retry, fcall_routed
            from ._strict_cluster import AsyncStrictClusterSender

            fcall_routed(self._redis)
            self._cluster_retry = async_cluster_retry(self.settings)
            if self._strict:
                self._strict_cluster = AsyncStrictClusterSender(
                    self._redis, self.settings, self._scripting
                )
        # The tasks running a call (how many deep: a strict write probes in a nested one),
        # which aclose() stops, and those it stopped: their call raises Conflict.
        self._calls: dict[asyncio.Task[Any] | None, int] = {}
        self._stopped: set[asyncio.Task[Any]] = set()
        self._calls_ended: asyncio.Event | None = None  # set by the last call to end
        # Set once the calls aclose() stopped have ended (their clean-up, such as a claim
        # giving back its lease, may still send): no request goes out after it.
        self._shut = False

    def _connect(self) -> AsyncClient:
        return _connected(async_client, self.settings)

    @property
    def redis(self) -> AsyncClient:
        """The asyncio twin of ``Swarm.redis``."""
        self._check_open()
        return self._redis

    async def aclose(self) -> None:
        """The asyncio twin of ``Swarm.close``. Calls still running in other tasks are
        stopped and raise ``Conflict`` (once they gave back what they took: an ask withdraws
        its question, a claim releases its lease): else redis-py's retry would reconnect
        them, to a connection that nothing closes."""
        if self._closed:
            return
        self._closed = True
        try:
            me = asyncio.current_task()
            running = [task for task in self._calls if task is not None and task is not me]
            for task in running:
                self._stopped.add(task)
                task.cancel()
            while any(task in self._calls for task in running):
                self._calls_ended = ended = asyncio.Event()
                await ended.wait()
        finally:
            self._shut = True
            if self._strict_cluster is not None:
                await self._strict_cluster.aclose()
            await self._redis.aclose()

    async def _call(self, work: Coroutine[Any, Any, T]) -> T:
        """``await work``, a call ``aclose`` stops (see there)."""
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)
        before = cancelling() if cancelling is not None else 0
        calls = self._calls
        calls[task] = calls.get(task, 0) + 1
        try:
            return await work
        except asyncio.CancelledError:
            if task is not None and task in self._stopped:
                self._stopped.discard(task)
                uncancel = getattr(task, "uncancel", None)
                # (asked to stop by its own side too: it stops as it was asked)
                if uncancel is None or uncancel() <= before:
                    raise closed(type(self).__name__) from None
            raise
        finally:
            left = calls[task] - 1
            if left:
                calls[task] = left
            else:
                del calls[task]
                if self._calls_ended is not None:
                    self._calls_ended.set()

    async def __aenter__(self) -> AsyncSwarm:
        if self._closed:
            raise closed(type(self).__name__)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _strict_plan(self) -> Plan:
        """The asyncio twin of ``Swarm._strict_plan``."""
        from ._ops.server import durability_plan  # (here: as the operations, ``_Later``)

        self._check_open()
        if self._plan is None:
            self._plan = (
                await self._run(durability_plan(self._ctx))
                if self._strict_cluster is None
                else await self._strict_cluster.plan()
            )
        return self._plan

    async def durability(self) -> str:
        """The asyncio twin of ``Swarm.durability``."""
        self._check_open()
        if not self._strict:
            return NORMAL_DURABILITY
        return f"strict: {(await self._strict_plan()).how}"

    async def _send(self, request: Request) -> Any:
        if self._strict and is_write(request):
            plan = self._plan or await self._strict_plan()
            if plan.command is not None:
                with self._probing_again():
                    if self._strict_cluster is not None:
                        return await self._strict_cluster.send(request, plan)
                    replies = await self._send_now(wrap(request, plan))
                return confirm(request, replies, plan, self.settings.url)
        return await self._send_now(request)

    async def _send_now(self, request: Request) -> Any:
        if isinstance(request, Cmd):
            return await self._redis.execute_command(*request.args)
        if isinstance(request, Batch):
            return await adrive(self._exchange(request), self._step, _PLAN_ERRORS)
        try:  # one call: see Swarm._send_now
            return await self._redis.execute_command(*self._scripting.wire(request))
        except redis.ResponseError as exc:
            return (await adrive(self._exchange(request, [exc]), self._step, _PLAN_ERRORS))[0]

    async def _step(self, step: Step) -> Any:
        """The asyncio twin of ``Swarm._step``."""
        if isinstance(step, Load):
            for command in step.commands:
                await self._redis.execute_command(*command)
            return None
        if len(step.commands) == 1:
            try:
                return [await self._redis.execute_command(*step.commands[0])]
            except redis.ResponseError as exc:
                return [exc]
        pipe = self._redis.pipeline(transaction=False)
        for command in step.commands:
            pipe.execute_command(*command)
        return await pipe.execute(raise_on_error=False)

    async def load_functions(self) -> bool:
        """The asyncio twin of ``Swarm.load_functions``."""
        from ._ops.library import library_state  # (here: as the operations, ``_Later``)

        self._check_open()
        state = await self._run(library_state(self._ctx))
        if state.current:
            return True
        try:
            steps = load_everything(self._scripting, self.settings.url, state.other_versions)
            return bool(await self._call(adrive(steps, self._loading, _PLAN_ERRORS)))
        except (redis.RedisError, OSError) as exc:
            raise translate(exc, self.settings.url) from None

    async def _loading(self, step: Step) -> Any:
        """A step of ``load_functions``, refused once the handle is shut."""
        if self._shut:
            raise closed(type(self).__name__)
        return await self._step(step)

    async def _run(self, op: Operation[T]) -> T:
        if self._closed:  # (inline: see Swarm._run)
            raise closed(type(self).__name__)
        return await self._call(
            adrive(op, self._attempt, _OP_ERRORS, lambda exc: self._translate(exc, op))
        )

    async def _attempt(self, request: Request | Fetch | Compute | Notice) -> Any:
        if self._shut:  # (a call aclose() stopped, giving back what it took: too late)
            raise closed(type(self).__name__)
        if isinstance(request, Compute):
            # Off the event loop: hashing or compressing a big context takes milliseconds.
            return await asyncio.to_thread(request.run) if request.offload else request.run()
        if isinstance(request, Fetch):
            # The replies first, then their checks off the loop (see Fetch).
            return await self._attempt(request.after(await self._attempt(Batch(request.items))))
        if isinstance(request, Notice):
            return tell(request)
        drain_s = min(self.settings.socket_timeout, DRAIN_S)
        if isinstance(request, Call):
            if request.shielded:
                return await _shielded(self._retried(request), blocking=False, drain_s=drain_s)
        elif isinstance(request, Batch) and any(
            isinstance(item, Call) and item.shielded for item in request.items
        ):
            blocking = any(is_wake_wait(item) for item in request.items)
            return await _shielded(self._retried(request), blocking=blocking, drain_s=drain_s)
        return await self._retried(request)

    async def _retried(self, request: Request) -> Any:
        if self._cluster_retry is None:
            return await self._send(request)
        retried = functools.partial(self._send, request)
        return await self._cluster_retry.call_with_retry(retried, _aignore)

    async def follow_events(
        self,
        since: str | int | None = None,
        types: Iterable[EventType | str] | EventType | str | None = None,
        block_s: float = 5.0,
        timeout_s: float | None = None,
    ) -> AsyncIterator[Event]:
        """The async twin of ``Swarm.follow_events``: ``async for event in ...``."""
        from ._ops import events as following  # (as in Swarm.follow_events)

        flt = type_filter(types)
        deadline = following.follow_deadline(block_s, timeout_s)
        cursor = await self._run(following.follow_start(self._ctx, since))
        while (block := following.next_block(block_s, deadline)) is not None:
            batch, cursor = await self._run(following.follow_step(self._ctx, cursor, flt, block))
            for event in batch:
                raise_if_cancelled()
                yield event
            raise_if_cancelled()
