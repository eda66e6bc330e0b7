"""Every error redis-swarm raises, under one root.

::

    SwarmError                      anything that went wrong in redis-swarm
    ├── ConfigError                 a bad URL, option or setting
    ├── ConnectionFailed            the Redis server could not be reached or answered wrongly
    │   └── EmbeddedServerError     the embedded redis-server could not be found or started
    ├── PermissionDenied            the Redis user lacks the right (ACL NOPERM / NOAUTH)
    ├── ValidationError             a name, size or payload refused at the edge
    │   └── PayloadTooLarge         an input above its size limit
    ├── NotFound                    an unknown task, finding, synthesis, context or agent
    ├── PartlyApplied               apply_role stopped after some servers got the user
    ├── CorruptRecord               a record stored unreadable (written around the operations)
    │   └── TaskDataDamaged         a task whose data is: its record on the error (``task``)
    ├── Conflict                    the request contradicts the current state
    │   ├── AlreadyCompleted        a report on a completed task (its finding is kept, superseded)
    │   ├── LeaseLost               the caller no longer holds the task's lease
    │   └── InvalidState            the task is not in a state that allows this
    └── Timeout                     a bounded wait ended before its condition held

``TaskDeadLettered`` is a warning (a UserWarning), not an error: a claim that dead-lettered a
task stored damaged instead of handing it out says so with it; so is ``BroadcastsTrimmed``: an
inbox read whose reader missed broadcasts trimmed before it read them. ``LibraryReplaced`` too: an
admin handle loaded its function library over another redis-swarm version's. And
``TlsNotVerified``: a handle whose URL turns off the check of the server's certificate or
host name (``ssl_cert_reqs=none`` or ``optional``) says so as it connects.

Each message says what happened and what to do next, for a person or an agent. Errors of
redis-py are translated at the boundary (``translate``); nothing outside this package sees them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._acl_apply import AppliedRole
    from ._models import Task

__all__ = [
    "AlreadyCompleted",
    "BroadcastsTrimmed",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "CorruptRecord",
    "EmbeddedServerError",
    "InvalidState",
    "LeaseLost",
    "LibraryReplaced",
    "NotFound",
    "PartlyApplied",
    "PayloadTooLarge",
    "PermissionDenied",
    "SwarmError",
    "TaskDataDamaged",
    "TaskDeadLettered",
    "Timeout",
    "TlsNotVerified",
    "ValidationError",
]


class SwarmError(Exception):
    """The root of every redis-swarm error."""


class ConfigError(SwarmError):
    """A bad URL, option or setting."""


class ConnectionFailed(SwarmError):
    """The Redis server could not be reached, or did not speak Redis.

    A ``claim`` whose reply was lost may have leased tasks all the same (a paused server
    runs the requests it received when it wakes up; the lease secrets are made by the
    client): ``lease_secrets`` holds the secrets it sent, one per task it asked for, so that
    its caller can prove a lease its own: a task that claim leased is held with the token
    ``f"{task.attempts}.{secret}"`` of one of them (docs/tasks.md). Empty for any other
    call.

    ``sent`` says whether the request may have reached the server, and so may have run:
    True when a connection was made and then the reply did not come (a read timeout, the
    connection dropped), at any attempt of the client's retries (a timeout of the
    connection's own setup, its HELLO or AUTH, reads the same: True there too), and for a
    write applied whose durability was not confirmed (``durability='strict'``); False when
    it surely did not run: no connection could be made (refused, a connect timeout, DNS,
    TLS, a certificate refused), the handle's pool had no connection left, or the server
    answered a refusal (loading, out of memory, read-only, NOREPLICAS). Where the core
    cannot tell, it says True, the side that loses nothing: a lease secret kept for a claim
    that never ran proves nothing. False for an error that is about no request.

    ``retryable`` says whether trying again may help: False when no retry can, only a change
    of configuration: a TLS connection refused over a certificate (the server's does not
    verify; the server refuses the client's, or requires one), a certificate or key file of
    the URL that does not load, a port that answers the TLS handshake with no TLS or with no
    TLS version in common (its message says what to fix). The client's own retries give
    these up at once (one judgement for both: ``_translate.no_retry_fixes``), and a loop
    that rides out outages (``swarm watch``) ends on them. True for everything else: an
    outage may pass (a server down, paused, loading, full, read-only, restarting: its unix
    socket gone meanwhile; one that cannot write to its disk: a MISCONF reply, whatever
    errno it names, as a server's reply is never read for what no retry fixes but the
    credentials refused; a connection closed in the TLS handshake without a word, as a
    server at its maxclients or restarting closes it; a TLS handshake never answered, as by
    a plain port but also by a paused server), and a handle's pool may get a connection
    back (the one failure the client's retries give up at once that stays retryable)."""

    def __init__(
        self,
        message: str,
        *,
        lease_secrets: tuple[str, ...] = (),
        sent: bool = False,
        retryable: bool = True,
    ) -> None:
        super().__init__(message)
        self.lease_secrets = lease_secrets
        self.sent = sent
        self.retryable = retryable


class EmbeddedServerError(ConnectionFailed):
    """The embedded redis-server could not be found, started or stopped."""


class PermissionDenied(SwarmError):
    """The Redis user is not allowed to do this (ACL); or its login was refused (its message
    begins with ``AUTHENTICATION_FAILED``: ``login_refused``)."""


# How the refusal of a login begins (WRONGPASS, NOAUTH, Redis 6's "invalid username-password
# pair": the user or its password refused, as after a rotation or a revoke), as ``_translate``
# and ``_acl_apply`` say it: a ``PermissionDenied`` that is no command refused (NOPERM), which
# a face says apart (``login_refused``).
AUTHENTICATION_FAILED = "authentication failed"


# What a refusal of a shard's or coordinator's work (a command or function its user's rules
# lack) adds, said once (the doctor's repair, the recount, a report without a token): the
# rules of a user made by an older redis-swarm lack what a newer one gives it.
REAPPLY_OLDER_USER = (
    "a shard or coordinator user made by an older redis-swarm gets this right when "
    "`swarm acl --apply` is run for it again"
)


def login_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is a login refused (``AUTHENTICATION_FAILED``), not a command the
    user's rights refuse."""
    return isinstance(exc, PermissionDenied) and str(exc).startswith(AUTHENTICATION_FAILED)


class ValidationError(SwarmError):
    """An input was refused before anything was stored."""


class PayloadTooLarge(ValidationError):
    """An input is larger than its configured limit."""


class NotFound(SwarmError):
    """The named task, finding, synthesis, context or agent does not exist. A synthesis
    refused for citing findings that are not stored names them in ``missing`` (in the
    order cited); other refusals leave it empty."""

    def __init__(self, message: str, *, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.missing = missing


class PartlyApplied(SwarmError):
    """``apply_role`` (``swarm acl --apply``) stopped after some servers got the user: ``made``
    is what it made (``made.user.password``, the password now set there: the only copy of a
    generated one; ``made.persisted``, those servers; ``made.url_user``, whether the user is
    the one the URL connects as, whose password there changed), ``__cause__`` the error that
    stopped it. Give the password out, and apply again once that is fixed (with the same
    password to keep it)."""

    def __init__(self, message: str, *, made: AppliedRole) -> None:
        super().__init__(message)
        self.made = made


# What Redis answers a command on a key of another type than the command's (a key written
# around redis-swarm: a SET over a hash): said as the CorruptRecord it is (_translate), and
# what the doctor reads past (the key named).
WRONG_TYPE_ERROR = "WRONGTYPE"


class CorruptRecord(SwarmError):
    """A record in Redis cannot be read (not JSON, or a value out of range): something wrote
    it around the operations. Listings leave such records out and name them; ``swarm
    doctor`` counts them."""

    def __init__(self, message: str, *, record_id: str | None = None) -> None:
        super().__init__(message)
        self.record_id = record_id


class TaskDataDamaged(CorruptRecord):
    """A task whose record reads but whose data is stored corrupt (written around
    redis-swarm): ``get_task`` does not hand such data out, as good or as none, and raises
    this. ``task``: its record, read without its data (``task.data`` is None: not its data),
    for what a caller needs to see (its status, ``dead_reason``, ``last_error``, attempts);
    ``repair``: the command that rewrites its data."""

    def __init__(self, message: str, *, task: Task, repair: str) -> None:
        super().__init__(message, record_id=task.id)
        self.task = task
        self.repair = repair


# The TaskDeadLettered a face collects instead of their warnings (``TaskDeadLettered.collected``):
# per thread and asyncio task, as warnings.catch_warnings is not.
_COLLECTING: ContextVar[list[TaskDeadLettered] | None] = ContextVar(
    "redis_swarm_dead_lettered", default=None
)


class TaskDeadLettered(UserWarning):
    """A claim (``claim``, a report's ``claim_next``) leased a task whose data or record
    cannot be read here (written around redis-swarm) and dead-lettered it at once instead of
    handing it out: the claim returns what it returns otherwise (the good tasks; None or []
    when it met no other), and this warning says which task was dead-lettered and why
    (``task_id``, ``reason``, which names the repair). One warning per such task.

    ``warnings.simplefilter("error", TaskDeadLettered)`` makes it an exception: the claim
    then gives back the good tasks it leased (no lease is left held by nobody) and raises
    it (a report's ``claim_next``: after the report was stored). A face that says it itself
    (``swarm task claim``, the MCP ``claim_task``) collects them instead (``collected``)."""

    def __init__(self, task_id: str, reason: str) -> None:
        super().__init__(task_id, reason)
        self.task_id = task_id
        self.reason = reason

    def __str__(self) -> str:
        return self.said(self.task_id, self.reason)

    @staticmethod
    def said(task_id: str, reason: str) -> str:
        """The words that say it (the scripts' own dead-lettering of a damaged record
        answers in them too: lua/task_update.lua)."""
        return f"task {task_id} was dead-lettered: {reason}"

    @staticmethod
    @contextlib.contextmanager
    def collected() -> Iterator[list[TaskDeadLettered]]:
        """Within it, the claims made in this context (this thread or asyncio task, and the
        worker threads it runs calls on with its context: anyio's) add what they
        dead-lettered to the list it gives, instead of warning: for a face that says it in
        its own words. Unlike ``warnings.catch_warnings``, safe across threads and tasks."""
        said: list[TaskDeadLettered] = []
        token = _COLLECTING.set(said)
        try:
            yield said
        finally:
            _COLLECTING.reset(token)

    @staticmethod
    def collector() -> list[TaskDeadLettered] | None:
        """The list a ``collected`` block of this context gathers them in, or None."""
        return _COLLECTING.get()

    def line(self) -> str:
        """The line a command says it in on stderr (``swarm task claim``, ``swarm run``,
        ``swarm pipeline``): a warning in its words (``said``)."""
        return f"warning: {self}"

    @staticmethod
    @contextlib.contextmanager
    def told_to(tell: Callable[[TaskDeadLettered], object]) -> Iterator[list[TaskDeadLettered]]:
        """``collected``, each then given to ``tell`` however the block ends (a claim that
        dead-lettered tasks and then failed, its connection lost, says them too); those the
        block took off the list (said already) are not. For a face that says more than the
        ``line`` (``said_to``): a JSON object, the warning handed on."""
        with TaskDeadLettered.collected() as said:
            try:
                yield said
            finally:
                for dead in said:
                    tell(dead)

    @staticmethod
    def said_to(
        say: Callable[[str], object],
    ) -> contextlib.AbstractContextManager[list[TaskDeadLettered]]:
        """``told_to``, each given to ``say`` as its ``line``."""
        return TaskDeadLettered.told_to(lambda dead: say(dead.line()))


class Conflict(SwarmError):
    """The request contradicts the current state of the swarm."""


class AlreadyCompleted(Conflict):
    """The task was already completed; the late finding was kept as superseded."""

    def __init__(self, message: str, *, finding_id: str | None = None) -> None:
        super().__init__(message)
        self.finding_id = finding_id


class LeaseLost(Conflict):
    """The caller's lease on the task expired or was taken over."""


class InvalidState(Conflict):
    """The task is not in a state that allows this operation."""


class Timeout(SwarmError, TimeoutError):
    """A bounded wait ended before its condition held. An ask that timed out names its
    question (``task_id``) and says whether an answerer held it (``claimed``) when the wait
    ended: one claimed and given back unanswered is not. A builtin ``TimeoutError`` too (and
    so an ``OSError``), so that ``except TimeoutError`` around a swarm wait catches it; the
    library's own ``except OSError`` and ``TimeoutError`` handlers wrap no wait or ask."""

    def __init__(
        self, message: str, *, task_id: str | None = None, claimed: bool | None = None
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.claimed = claimed


def closed(what: str) -> Conflict:
    """What a call on a closed handle raises, a shell's or a seed class's (``what``: its
    class name): closing is for good, never followed by a silent reconnection."""
    return Conflict(
        f"this {what} is closed: make a new one (a handle is closed for good when its "
        "with block ends or close() is called)"
    )


def tls_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (any client's error: a webhook's httpx one, a Redis connection's) is a
    TLS connection that no retry makes, told by the ssl module's exception types in its
    causes, not by any text: the peer's certificate did not verify (an
    ``ssl.SSLCertVerificationError``: an unknown CA, another host's name, expired), or the
    handshake failed on the protocol (a plain ``ssl.SSLError``: an alert refusing it, a port
    that answers it with no TLS, no TLS version or cipher in common). Not a connection that
    ended (``SSLEOFError``, ``SSLZeroReturnError``, ``SSLSyscallError``: a server restarting
    or at its limit ends one so too), nor anything that is not TLS: both may pass."""
    import ssl  # (here: the CLI's --help reads this module and makes no connection)

    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        if isinstance(current, ssl.SSLCertVerificationError) or type(current) is ssl.SSLError:
            return True
        seen.append(current)
        current = current.__cause__ or current.__context__
    return False


def needs_a_fix(exc: SwarmError) -> bool:
    """Whether trying again soon cannot help after ``exc``, only a fix where the caller runs
    (the one judgement of it for the loops that follow a swarm: the MCP channel, the A2A
    push dispatcher): a connection no retry makes (``ConnectionFailed.retryable`` False: a
    certificate refused, a certificate or key file of the URL that does not load, a port
    answering TLS with no TLS), a user refused (``PermissionDenied``: a wrong password, a
    right the user lacks), a URL naming what the server does not have (``ConfigError``).
    Each one's message says what to fix; such a loop says it once and looks again seldom."""
    if isinstance(exc, ConnectionFailed):
        return not exc.retryable
    return isinstance(exc, PermissionDenied | ConfigError)


class BroadcastsTrimmed(UserWarning):
    """An inbox read (``inbox``, a peek as well) found that broadcasts after its reader's
    cursor were trimmed from the swarm's broadcast stream before the reader was shown them
    (it fell more than ``BROADCAST_MAXLEN`` behind): it never gets them. The read returns
    what it returns otherwise, its ``Inbox.trimmed`` in the same words as this warning
    (``str``). A notice of the operation, said as ``TaskDeadLettered`` is (``_protocol.tell``):
    at the caller's line; made an error by a warnings filter, the read gives back what it
    took (the next read returns it) and raises it."""


class LibraryReplaced(UserWarning):
    """An admin handle (``swarm up``, or any call that met the library of another version)
    loaded this redis-swarm's function library over the one of another version the server
    held: every machine still on that version fails from now on, until it runs this one
    (docs/deployment.md, 'Upgrading a fleet'). Said once per replacement, so that an upgrade
    (or a machine left behind loading its version back) is never silent. ``where``: the
    server; ``held``: the version replaced; ``loaded``: this one's."""

    def __init__(self, message: str, where: str, held: str, loaded: str) -> None:
        super().__init__(message)
        self.where = where
        self.held = held
        self.loaded = loaded


class TlsNotVerified(UserWarning):
    """A handle connects over TLS without verifying the server: its URL's ``ssl_cert_reqs``
    is ``none`` (neither the certificate nor the host name is checked) or ``optional`` (the
    host name is not). Whoever can stand in the middle (any server with a certificate from a
    CA this machine trusts, for ``optional``) can pretend to be the server, and is sent the
    URL's user and password. Said once per process and option (Python's warnings), as a
    ``warning:`` line by the CLI; ``option``: the URL's, ``ssl_cert_reqs=...``."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option
