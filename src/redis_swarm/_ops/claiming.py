"""Taking tasks from the queues: claim (its wait on the queues' wake lists, and the claim a
report makes: ``claim_part``, ``claim_behind_report``, ``taken_behind``, ``note_idle``, used
by ``findings.report``), reap and reap_due (expired leases reclaimed, due delayed tasks made
pending), and wait: block until a pass, a queue or the swarm is settled, reaping as it waits.

Posting, the other changes of a task and the counts are in ``tasks``: this module builds on
it, never the other way round.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from .._errors import (
    ConnectionFailed,
    NotFound,
    SwarmError,
    TaskDeadLettered,
    Timeout,
    ValidationError,
)
from .._keys import Keys
from .._models import DEFAULT_MAX_ABANDONS, RetiredPass, Task, unknown_pass
from .._protocol import (
    INTERRUPTS,
    WAITER_PUSH,
    WAKE_WAIT,
    Batch,
    Call,
    Cmd,
    Notice,
    OpContext,
    Operation,
    remember,
    reply_at_interrupt,
    together,
)
from .._validate import (
    MAX_CLAIM_BATCH,
    MAX_PASS_WAIT_S,
    MAX_QUEUES,
    MAX_WAIT_S,
    check_name,
    check_queues,
)
from . import views as view_ops  # (the module: views imports findings, which imports this)
from ._work import (
    STATUSES,
    DamagedLease,
    await_events,
    block_chunk_s,
    check_number,
    forget_presence,
    leased,
    leased_damaged,
    new_secret,
    presence_due,
    refuse_new_option_like,
    report_secret,
    text,
)
from .tasks import (
    RECORD_LIMITS,
    asked_lease_ms,
    give_up_damaged,
    pass_fields,
    queue_counts,
    queue_names,
    release,
    status_counts,
)

__all__ = [
    "AroundWait",
    "ClaimBehind",
    "around_wait",
    "capped",
    "claim",
    "claim_behind_report",
    "claim_part",
    "claimed",
    "give_back",
    "leased_at_interrupt",
    "leave_waiters",
    "note_idle",
    "reap",
    "reap_due",
    "taken_behind",
    "wait",
]

EXPIRE_PER_QUEUE = 100  # expired leases reclaimed per queue by one claim (reap: 10x)
PROMOTE_PER_QUEUE = 1_000  # delayed tasks made pending per queue by one claim
# task_claim's limits (its ARGV[6..9]): the two above, the max_abandons of a task stored
# without one, and the ranges of a task's numbers it checks in a record (tasks.RECORD_LIMITS)
_LIMITS = (EXPIRE_PER_QUEUE, PROMOTE_PER_QUEUE, DEFAULT_MAX_ABANDONS, RECORD_LIMITS)
_SETTLING = frozenset({"task.completed", "task.dead", "task.cancelled"})


# --- claiming


def _queue_names(queues: str | Sequence[str]) -> tuple[str, ...]:
    if type(queues) is str:
        return _one_queue(queues)
    return check_queues(queues)


@functools.lru_cache(maxsize=1024)
def _one_queue(queue: str) -> tuple[str, ...]:
    """A claim of one queue (most): its name checked once per process."""
    return check_queues(queue)


@functools.lru_cache(maxsize=1024)
def _queue_group(k: Keys, queue: str) -> tuple[str, ...]:
    """One queue's group, made once per handle (``OpContext.keys`` is made once): every
    claim and every report that claims next sends it."""
    return (k.pending(queue), k.delayed(queue), k.leases(queue), k.dead(queue), k.wake(queue))


@functools.lru_cache(maxsize=1024)
def _claim_keys(k: Keys, queues: tuple[str, ...]) -> tuple[str, ...]:
    """task_claim's keys for these queues (and the queues' wake lists): made once per handle
    and queues, as every waiting claim sends them."""
    keys = (k.tasks, k.task_data, k.counts, k.pass_counts, k.events, k.agents, k.presence)
    return keys + _queue_groups(k, queues)


@functools.lru_cache(maxsize=1024)
def _wake_keys(k: Keys, queues: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k.wake(q) for q in queues)


class AroundWait(NamedTuple):
    """What a waiting claim of one queue sends around its BLPOP, in the same pipeline: its
    worker's name pushed on the queue's waiters list right before (a post gives each new
    task's token to the worker that began waiting last: ``Keys.waiters``), the lists the
    BLPOP watches (the worker's list of that queue first, ``Keys.waiter_wake``, where that
    post pushes, then the queue's wake list), and the keys the claim behind the wait takes
    besides its own (that list and the waiters list: the script takes the worker off the
    list atomically with its claim, and gives on the tokens posts gave it since its wait
    ended; lua/task_claim)."""

    before: tuple[Cmd, ...]
    watched: tuple[str, ...]
    claim_keys: tuple[str, ...]
    leave: tuple[Cmd, ...]  # an interrupted wait's way off the list (``leave_waiters``)


@functools.lru_cache(maxsize=1024)
def around_wait(k: Keys, worker: str, queues: tuple[str, ...]) -> AroundWait:
    """The ``AroundWait`` of ``worker``'s wait on ``queues`` (made once per handle)."""
    wakes = _wake_keys(k, queues)
    if len(queues) != 1:
        # (a wait on several queues stays on their wake lists: on the waiters list of each,
        # it could be given two tasks' tokens at once and leave one asleep in its list)
        return AroundWait((), wakes, (), ())
    waiters, own = k.waiters(queues[0]), k.waiter_wake(worker, queues[0])
    return AroundWait(
        (Cmd(WAITER_PUSH, waiters, worker),),
        (own, *wakes),
        (own, waiters),
        (Cmd("LREM", waiters, 0, worker),),
    )


def leave_waiters(interrupt: BaseException, around: AroundWait) -> Operation[None]:
    """Take a worker whose wait was interrupted off the waiters list (the claim behind the
    wait, which does it, may not have run): otherwise the next post gives one task's token to
    nobody (that task then waits for another claim). A failure to is noted on the
    interrupt, which goes on either way."""
    for request in around.leave:
        try:
            yield request
        except SwarmError as failed:
            from .ask import _add_note  # (ask imports this module)

            _add_note(interrupt, f"could not leave the queue's waiters list ({failed})")


@functools.lru_cache(maxsize=1024)
def _claim_part_keys(k: Keys, queues: tuple[str, ...]) -> tuple[str, ...]:
    """The keys ``claim_part`` adds to another script's (made once per handle and queues)."""
    keys = (k.agents, k.presence, k.task_data)
    return keys + _queue_groups(k, queues)


def _queue_groups(k: Keys, queues: tuple[str, ...]) -> tuple[str, ...]:
    """The five keys per queue a claim takes tasks from (the scripts' queue groups)."""
    return tuple(key for q in queues for key in _queue_group(k, q))


def claim_part(
    ctx: OpContext,
    queues: str | Sequence[str],
    lease_s: float | None,
    secret: str,
    worker: str | None,
) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The keys and arguments another script takes to claim one task as ``claim`` does
    (report's ``claim_next``): the same checks, the same limits. ``worker`` None: the
    script knows it (the token's), and registers it every time."""
    names = _queue_names(queues)
    keys = _claim_part_keys(ctx.keys, names)
    register = "1" if worker is None or presence_due(ctx, worker) else "0"
    lease_ms = asked_lease_ms(lease_s)
    # (the record limits last: lua/task_report's ARGV[18])
    return keys, (len(names), lease_ms, *_LIMITS[:3], secret, register, RECORD_LIMITS)


IDLE_FRESH_S = 1.0  # how long a "nothing to claim" spares the next waiting claim's script


def note_idle(
    ctx: OpContext, worker: str | None, queues: str | Sequence[str], tail: Sequence[Any]
) -> None:
    """Remember what ``worker``'s report's claim_next found when it leased nothing: ``tail``
    is the end of its reply (false, next due ms, now), or (false, false) when it did not
    try."""
    if worker is not None and len(tail) == 3 and not tail[0]:
        idle = (_queue_names(queues), time.monotonic(), int(tail[1]), int(tail[2]))
        remember(ctx.idle, worker, idle)
        forget_presence(ctx, worker)  # (the script registers a worker only when it leases)


def _idle_hint(ctx: OpContext, worker: str, names: tuple[str, ...]) -> tuple[int, int] | None:
    """(next due ms, now ms) when a claim or a report of ``worker`` through this handle just
    found ``names`` empty: the waiting claim that follows need not run its script alone to
    find it again. Used once."""
    idle = ctx.idle.pop(worker, None)
    if idle is None or idle[0] != names:
        return None
    elapsed = time.monotonic() - idle[1]
    if elapsed > IDLE_FRESH_S:
        return None
    return idle[2], idle[3] + int(elapsed * 1000)  # the server's now moved on since


def claim(
    ctx: OpContext,
    queues: str | Sequence[str],
    *,
    worker: str,
    lease_s: float | None = None,
    wait_s: float = 0.0,
    n: int | None = None,
) -> Operation[Task | list[Task] | None]:
    """Lease the highest-priority, oldest eligible task of ``queues`` to ``worker``; None when
    there is none, after waiting up to ``wait_s``.

    ``n``: lease up to ``n`` tasks at once (the best, then the next best, ...; each its own
    lease and token) in one script and one round trip, for a pool with ``n`` free slots; the
    result is then a list, best first, empty when there is none after the wait (which ends
    as soon as one task is eligible). A task it leased whose data or record cannot be read
    (written around redis-swarm) is not returned: it is dead-lettered at once, under that
    lease, its error naming the repair, and a ``TaskDeadLettered`` warning says so, its id
    and why (``claimed``); the others are, as usual.

    A waiting claim blocks (no polling) with BLPOP on the wake lists of its queues: every
    script that makes a task claimable pushes one token there, so one new task wakes one
    waiter, not all of them. The token is only a hint: the claim script stays the truth, and
    the wait is cut short when a delayed task or a lease expiry falls due. The wait and the
    claim that follows it go in one pipeline (one round trip): Redis runs the script queued
    behind the BLPOP as soon as the BLPOP returns, token or timeout. A waiting claim right
    after a claim or a report (``claim_next``) through this handle found these queues empty
    starts with that pipeline (that script's answer stands for its own: it cleared their
    tokens, and every task made claimable since pushed one, so the wait ends at once); a
    woken claim then costs one round trip, as a worker's BRPOP does.

    A claim whose reply is lost raises ``ConnectionFailed`` carrying the ``lease_secrets``
    it sent: Redis may have run it, and a task it leased is held with the token
    ``ATTEMPT.SECRET`` of one of them.

    A claim interrupted (its asyncio task cancelled) once its script was sent reads its
    reply all the same (``Call.shielded``) and releases what it leased before the interrupt
    goes on, so that no task stays leased to nobody: behind a wait, only a reply that
    already came (a task that woke it in the instant it was cancelled may stay leased until
    its lease ends, as at a lost reply)."""
    names = _queue_names(queues)
    check_name("worker", worker)
    count = 1 if n is None else int(check_number("n", n, 1, MAX_CLAIM_BATCH, integer=True))
    lease_ms = asked_lease_ms(lease_s)
    wait = check_number("wait_s", wait_s, 0, MAX_WAIT_S)
    # (the script registers the worker it leases to: a new one is refused as register does)
    yield from refuse_new_option_like(ctx, "worker", worker)
    keys = _claim_keys(ctx.keys, names)
    around = around_wait(ctx.keys, worker, names)
    wakes = around.watched
    deadline = time.monotonic() + wait
    hint = _idle_hint(ctx, worker, names) if wait > 0 else None
    # The BLPOP the script follows, in the same round trip (None: the script alone).
    waiting = None if hint is None else _wait_cmd(ctx, wakes, deadline, *hint)
    popped = False  # the wait sent alone before this claim took a token

    while True:
        # Each task keeps its secret's hash: the tokens are only in this reply.
        lease_secrets = [new_secret() for _ in range(count)]
        args = (ctx.now_arg(), ctx.limits.events_maxlen, "claim", worker, lease_ms)
        # woken: '1' behind a wait, the script being sent before the BLPOP's answer is
        # known. Right when it popped a token; after a timeout, the script pops one token
        # fewer than the tasks it takes (when it takes any and leaves some): one spare
        # token, a wake-up for another waiter that finds the queue as it is. '0' after a
        # popped token would take another task's token: a waiter asleep with a task pending.
        woken = waiting is not None or popped
        flags = ("1" if presence_due(ctx, worker) else "0", "1" if woken else "0")
        # Its reply holds the leases: an interrupted caller's shell reads it all the same,
        # to the end when the script is sent alone (answered at once), only as far as what
        # already came behind a wait (the interrupt cuts the wait: Redis never runs a
        # script queued behind a wait that had not ended).
        call_keys = keys if waiting is None else keys + around.claim_keys
        call_args = (*args, *_LIMITS, *flags, *lease_secrets)
        call = Call("task_claim", call_keys, call_args, shielded=True)
        pushed: Sequence[Any] = ()
        try:
            if waiting is None:
                woke, reply = None, (yield call)
            else:
                replies = yield Batch((*around.before, waiting, call))
                # (an error of the push, as one of the wait, is returned, not raised, the
                # claim's reply standing (raise_first): judged below once the claim is)
                pushed, (woke, reply) = replies[: len(around.before)], replies[len(around.before) :]
        except ConnectionFailed as exc:
            # Redis may have run it (a paused server runs what it received when it wakes
            # up): the secrets sent are the caller's proof of a lease it took.
            exc.lease_secrets = tuple(lease_secrets)
            raise
        except INTERRUPTS as exc:
            cut = reply_at_interrupt(exc)
            if waiting is not None and cut is not None:
                # (the batch's replies: the push's, the wait's, the script's, ...)
                cut = cut[len(around.before) + 1]
            yield from give_back(ctx, exc, *leased_at_interrupt(ctx, cut, lease_secrets))
            if waiting is not None:
                yield from leave_waiters(exc, around)
            raise
        if reply[0]:
            # The claim ran: its leases stand whatever the wait before it met.
            # Woken for it: the queues are likely dry, and the next report that waits for
            # the next task sends its wait behind it (see claim_behind_report).
            if woken:
                remember(ctx.dry, worker, names)
            else:
                ctx.dry.pop(worker, None)
            tasks = yield from claimed(ctx, reply, lease_secrets)
            if tasks:
                return tasks if n is not None else tasks[0]
            # Every task it leased was stored damaged, and is dead-lettered now: the
            # queues may hold others, so claim again at once (each round dead-letters
            # what it met: bounded), waiting as before once they are found empty.
            waiting, popped = None, False
            continue
        forget_presence(ctx, worker)  # (the script registers a worker only when it leases)
        if capped(reply):
            # It leased nothing only because it dropped as many ids without a task as one
            # script may (lua/_tasks.lua: DROP_CAP): the queues are not known empty, so claim
            # again at once, waiting or not. Each round takes those ids out of the queue, so
            # the rounds are bounded even past the deadline (a wait_s=0 claim included): as
            # many as the pending sets hold thousands of such ids. The token a wait before
            # popped is carried (woken): the next round must not take another task's.
            waiting, popped = None, woken
            continue
        if any(isinstance(r, Exception) for r in pushed):
            # The push met an error and the claim leased nothing: the push sent again alone,
            # which the shell retries as any request (a slot moving), or raises what it keeps
            # meeting (a user the ACL refuses it); the next wait pushes again all the same,
            # and the claim behind it takes the worker off the list whatever it holds.
            yield Batch(around.before)
        due, now = int(reply[1]), int(reply[2])
        if deadline - time.monotonic() <= 0:
            # The next waiting claim of these queues through this handle starts waiting.
            remember(ctx.idle, worker, (names, time.monotonic(), due, now))
            return [] if n is not None else None
        waiting, popped = _wait_cmd(ctx, wakes, deadline, due, now), False
        if isinstance(woke, Exception):
            # The wait met an error (its slot moving, say; see raise_first) and the claim
            # behind it found nothing: wait again alone, which the shell retries as any
            # request, or raises what the wait keeps meeting; the claim follows it.
            popped, waiting = (yield waiting) is not None, None


def claimed(ctx: OpContext, pairs: Sequence[Any], secrets: Sequence[str]) -> Operation[list[Task]]:
    """The tasks a claim's reply leased (a claim's, or a report's ``claim_next``), each
    with its token, best first. One whose record or data cannot be read here (written
    around redis-swarm: ``DamagedLease``) is not handed out: it is dead-lettered at once,
    under the lease just taken (one more round trip, on that path only), with a
    ``last_error`` naming the damage and the repair, its record kept as it is, and said to
    the caller: a ``Notice`` of one ``TaskDeadLettered`` each, which the shell says (a
    warnings filter that makes it an error: the good tasks are given back, and it raised).
    Leased again, it would only come back lease after lease until ``max_abandons`` buried
    it, its token known to nobody. Should that fail, CorruptRecord names every lease the
    claim took with its token, so that none is held by nobody."""
    tasks, damaged = leased(ctx, pairs, secrets)
    if damaged:
        given_up = []
        try:
            # (one at a time: an error reply of a batch ends it unread, and give_up_damaged
            # takes one of its refusals as its goal met; damaged leases are rare)
            for lease in damaged:
                reason = yield from give_up_damaged(ctx, lease)
                given_up.append(TaskDeadLettered(str(lease.task_id), reason))
        except SwarmError as failed:
            raise leased_damaged(damaged, tasks, failed) from failed
        except INTERRUPTS as exc:  # (the good tasks go back, as at an interrupted claim)
            yield from give_back(ctx, exc, tasks, damaged)
            raise
        try:
            raised = yield Notice(tuple(given_up))
        except INTERRUPTS as exc:  # (while the shell said it: Ctrl-C, a showwarning's)
            yield from give_back(ctx, exc, tasks)
            raise
        if raised is not None:
            # A warnings filter made it an error: the good tasks go back, held by nobody else.
            yield from give_back(ctx, raised, tasks)
            raise raised
    return tasks


Leased = tuple[list[Task], list[DamagedLease]]


def leased_at_interrupt(ctx: OpContext, reply: Any, secrets: Sequence[str]) -> Leased:
    """The tasks a claim's reply leased (a claim's, or a report's ``claim_next``), and its
    leases of tasks stored damaged, as the shell read it when its caller was interrupted
    (``reply_at_interrupt``): none when no reply came, it was an error, or it leased
    nothing."""
    if reply is None or isinstance(reply, Exception) or not reply or not reply[0]:
        return [], []
    return leased(ctx, reply, list(secrets))


def give_back(
    ctx: OpContext,
    interrupt: BaseException,
    tasks: list[Task],
    damaged: Sequence[DamagedLease] = (),
) -> Operation[None]:
    """Release ``tasks``, leased by a claim whose caller was interrupted meanwhile (nobody
    would hold them until their leases end: an abandon each), and dead-letter the tasks
    stored damaged it leased (``damaged``, as ``claimed`` does), in one round trip; a
    failure to is noted on the interrupt, which goes on either way. (A report's
    ``claim_next`` gives back so too.)"""
    if not tasks and not damaged:
        return
    try:
        yield from together(
            *(release(ctx, t.id, t.token) for t in tasks),
            *(give_up_damaged(ctx, d) for d in damaged),
        )
    except SwarmError as failed:
        from .ask import _add_note  # (ask imports this module)

        ids = ", ".join([t.id for t in tasks] + [d.lease for d in damaged])
        _add_note(
            interrupt,
            f"the claim leased {ids} and could not release it ({failed}): "
            "it comes back when its lease ends",
        )


class ClaimBehind(NamedTuple):
    """The wait and the claim a report sends behind itself, in the same round trip
    (``report``'s ``wait_s``), and what reading their replies needs."""

    names: tuple[str, ...]
    worker: str
    own_wake: str  # the worker's own wake list, which the report's script also gets
    secret: str
    requests: tuple[Cmd | Call, ...]
    claim_at: int = 1  # the claim's place in ``requests`` (the wait's is one before)

    def replies_read(self, replies: Sequence[Any], claimed: Any) -> tuple[Any, ...]:
        """``taken_behind``'s replies from those of ``requests`` (the claim's: ``claimed``,
        which a capped claim sent again replaced): the wait's, the claim's, the LLENs."""
        return (replies[self.claim_at - 1], claimed, *replies[len(replies) - len(self.names) :])


def claim_behind_report(
    ctx: OpContext,
    queues: str | Sequence[str],
    worker: str,
    lease_s: float | None,
    deadline: float,
    task_id: str,
    finding_id: str,
) -> ClaimBehind | None:
    """A waiting claim of ``queues`` to pipeline behind the report of ``task_id`` with
    ``finding_id``, when this handle's last claim of them found them dry (else None: the
    report claims next in its own script, which costs less where tasks are waiting).

    Sent behind the report: the BLPOP (the worker's own wake list first, where a report that
    does not complete its task pushes a token, then the queues'), the claim (which takes a
    task only when that report completed its task), and each queue's LLEN (tokens left:
    tasks left, so that the next report claims next in its own script instead). The wait is
    capped by the block chunk: a report knows no due hint of the queues (a token wakes it
    for a delayed task posted meanwhile, as any waiter)."""
    names = _queue_names(queues)
    if ctx.dry.get(worker) != names:
        return None
    block = min(max(0.0, deadline - time.monotonic()), block_chunk_s(ctx))
    wakes = _wake_keys(ctx.keys, names)
    own_wake = ctx.keys.worker_wake(worker)
    around = around_wait(ctx.keys, worker, names)
    wait = Cmd(WAKE_WAIT, own_wake, *around.watched, max(0.001, round(block, 3)))
    secret = report_secret(finding_id)  # a retry of the report gets the same lease back
    args = (ctx.now_arg(), ctx.limits.events_maxlen, "claim", worker, asked_lease_ms(lease_s))
    after = ("1" if presence_due(ctx, worker) else "0", "2", task_id, finding_id)
    # (shielded: its reply holds the lease, which an interrupted report gives back)
    keys = _claim_keys(ctx.keys, names) + around.claim_keys
    call = Call("task_claim", keys, (*args, *_LIMITS, *after, secret), shielded=True)
    lengths = tuple(Cmd("LLEN", w) for w in wakes)
    requests: tuple[Cmd | Call, ...] = (*around.before, wait, call, *lengths)
    return ClaimBehind(names, worker, own_wake, secret, requests, len(around.before) + 1)


def taken_behind(
    ctx: OpContext, behind: ClaimBehind, replies: Sequence[Any]
) -> Operation[Task | None]:
    """The task the claim behind a report leased, or None (the wait ended with none, the
    report did not complete its task, or the task was stored damaged: dead-lettered by
    ``claimed``), from the replies of ``behind.requests``; remembers what the next wait
    needs. (A claim that stopped at its cap of dropped ids is sent again by the report
    first: ``capped``.)"""
    reply, lengths = replies[1], replies[2:]
    if not reply[0]:
        idle = (behind.names, time.monotonic(), int(reply[1]), int(reply[2]))
        remember(ctx.idle, behind.worker, idle)
        forget_presence(ctx, behind.worker)  # (the script registers a worker only when it leases)
        return None
    if any(int(n) for n in lengths):
        ctx.dry.pop(behind.worker, None)
    else:
        remember(ctx.dry, behind.worker, behind.names)
    tasks = yield from claimed(ctx, reply, [behind.secret])
    return tasks[0] if tasks else None


def capped(reply: Sequence[Any]) -> bool:
    """Whether a claim's reply says it leased nothing only because it dropped as many ids
    without a task as one script may (lua/_tasks.lua: DROP_CAP; the reply's fourth item):
    the queues are not known empty, and the claim goes on at once."""
    return not reply[0] and len(reply) > 3


def _wait_cmd(ctx: OpContext, wakes: tuple[str, ...], deadline: float, due: int, now: int) -> Cmd:
    """The BLPOP of a waiting claim: until its deadline, a chunk at most, cut short when
    something falls due (``due`` ms, -1 for nothing, against the server's ``now``)."""
    block = min(max(0.0, deadline - time.monotonic()), block_chunk_s(ctx))
    if due >= 0:
        block = min(block, max(0, due - now) / 1000)
    # BLPOP's timeout 0 means forever: wait at least a millisecond.
    return Cmd(WAKE_WAIT, *wakes, max(0.001, round(block, 3)))


def _reap_all(
    ctx: OpContext, names: tuple[str, ...] | None = None
) -> Operation[tuple[int, float | None]]:
    """Reclaim expired leases and promote due delayed tasks in the queues ``names`` (every
    queue when None). Returns the number of leases reclaimed and the seconds until the next
    thing falls due (or None)."""
    if names is None:
        names = tuple(queue_names((yield Cmd("HKEYS", ctx.keys.counts))))
    if not names:
        return 0, None
    calls = []
    for i in range(0, len(names), MAX_QUEUES):
        keys = _claim_keys(ctx.keys, names[i : i + MAX_QUEUES])
        args = (ctx.now_arg(), ctx.limits.events_maxlen, "reap", "", 0)
        calls.append(Call("task_claim", keys, (*args, 10 * EXPIRE_PER_QUEUE, *_LIMITS[1:])))
    replies = [(yield calls[0])] if len(calls) == 1 else (yield Batch(tuple(calls)))
    reclaimed = sum(int(r[0]) for r in replies)
    dues = [int(r[1]) - int(r[2]) for r in replies if int(r[1]) >= 0]
    return reclaimed, (max(0, min(dues)) / 1000 if dues else None)


def reap(ctx: OpContext) -> Operation[int]:
    """Reclaim every expired lease now (claims do it for their queues anyway); returns how
    many. Also makes delayed tasks whose time has come pending."""
    reclaimed, _ = yield from _reap_all(ctx)
    return reclaimed


def reap_due(ctx: OpContext, queues: str | Sequence[str]) -> Operation[float | None]:
    """Make what has fallen due in ``queues`` claimable now: leases that ended unreported
    reclaimed (``task.expired``), delayed tasks whose time has come made pending
    (``task.due``). Returns the seconds until the next thing of theirs falls due, None when
    nothing will. Claims do the same for their queues; a watcher that tells agents of
    claimable tasks (``swarm mcp --channel``) calls this when that time comes, since nobody
    may be claiming then."""
    _, due_s = yield from _reap_all(ctx, _queue_names(queues))
    return due_s


# --- waiting for a pass


def _open(stats: Mapping[str, int]) -> int:
    return stats["pending"] + stats["delayed"] + stats["claimed"]


def _unknown_pass(
    ctx: OpContext, pass_name: str, doing: str | None = None
) -> Operation[str | None]:
    """Why pass ``pass_name``, whose counters all read zero, is not settled but unknown (no
    task was ever posted to it, or it was retired), naming the passes there are; None when
    it has been posted to since the counters were read (then it is waited for). ``doing``:
    what there is not to do with it, as ``unknown_pass`` takes it (None: wait's words)."""
    raw, record = yield Batch(
        (Cmd("HGETALL", ctx.keys.pass_counts), Cmd("HGET", ctx.keys.retired_passes, pass_name))
    )
    passes = view_ops.pass_counts(raw)
    if any(passes.get(pass_name, {}).values()):
        return None
    retired = RetiredPass.stored(pass_name, record) if record is not None else None
    if doing is None:
        return unknown_pass(pass_name, list(passes), retired=retired)
    return unknown_pass(pass_name, list(passes), retired=retired, doing=doing)


def wait(
    ctx: OpContext,
    pass_name: str | None = None,
    queue: str | None = None,
    timeout_s: float = 60.0,
) -> Operation[dict[str, int]]:
    """Block until every task of the pass (or of the queue; or of the swarm, given neither)
    is settled: completed, dead or cancelled. Returns the counts; raises Timeout. Expired
    leases are reaped while waiting, so a dead worker cannot make it wait forever.

    A pass no task was ever posted to (a misspelt name, or one lost with the server's data)
    reads as all zeros, which would be settled at once with nothing to read: it raises
    NotFound naming the passes there are (or saying the pass was retired), one more round
    trip on that path only. A queue with no task, or the swarm, is settled at once."""
    if pass_name is not None and queue is not None:
        raise ValidationError("wait for a pass or a queue, not both")
    timeout = check_number("timeout_s", timeout_s, 0, MAX_PASS_WAIT_S)
    k = ctx.keys
    if pass_name is not None:
        stats_cmd = Cmd("HMGET", k.pass_counts, *pass_fields(pass_name))
        scope = f"pass {pass_name!r}"
    elif queue is not None:
        stats_cmd = Cmd("HMGET", k.counts, *[f"{check_name('queue', queue)}|{s}" for s in STATUSES])
        scope = f"queue {queue!r}"
    else:
        stats_cmd = Cmd("HGETALL", k.counts)
        scope = "the swarm"

    def settling(fields: Mapping[str, str]) -> bool:
        if fields.get("type") not in _SETTLING:
            return False
        if pass_name is not None:
            return fields.get("pass") == pass_name
        return queue is None or fields.get("queue") == queue

    deadline = time.monotonic() + timeout
    chunk = block_chunk_s(ctx)
    reap_at = 0.0
    while True:
        if time.monotonic() >= reap_at:
            _, due_s = yield from _reap_all(ctx)
            reap_at = time.monotonic() + (chunk if due_s is None else min(chunk, due_s))
        # The last event id is read before the counts: a change after it is seen by XREAD.
        last, reply = yield Batch((Cmd("XREVRANGE", k.events, "+", "-", "COUNT", 1), stats_cmd))
        if isinstance(reply, dict):
            totals = dict.fromkeys(STATUSES, 0)
            for stats in queue_counts(reply).values():
                for status, n in stats.items():
                    totals[status] += n
            stats = totals
        else:
            stats = status_counts(reply)
        if _open(stats) == 0:
            if pass_name is not None and not any(stats.values()):
                unknown = yield from _unknown_pass(ctx, pass_name)
                if unknown is not None:
                    raise NotFound(unknown)
                continue  # (posted to meanwhile: its tasks are waited for)
            return stats
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout(
                f"{scope} is not settled after {timeout:g} s: {stats['pending']} pending, "
                f"{stats['delayed']} delayed, {stats['claimed']} claimed; wait longer, or "
                "check its workers (swarm task list)"
            )
        last_id = text(last[0][0]) if last else "0-0"
        block = min(remaining, max(0.0, reap_at - time.monotonic()))
        yield from await_events(ctx, last_id, block, settling)
