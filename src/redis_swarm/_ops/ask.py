"""Ask and answer: request/response over the work queue.

A question is a task: ``ask`` posts it to its target's queue (a context owner or a registered
agent: the owner's ask queue, ``ask.OWNER``; else any queue posted to before) and blocks on
the event stream (no polling) until the task is completed; the finding that completed it is
the ``Answer``. So a question inherits leases, retries, fencing and the event log: an
answerer that dies mid-answer loses its lease and the question goes to the next one.

An asker that stops waiting (timeout, interrupt) withdraws the question only when it posted it
and did not ask to keep it: askers whose dedupe key met it share it and leave it be, and one
still waiting when the poster withdraws it asks it anew (docs/ask.md, "Repeated questions").

``answer`` is how an answerer reports: a finding with ``kind = "answer"`` that names the
asker's task (when the asker was working on one), so lineage can follow it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from .._errors import (
    Conflict,
    InvalidState,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    SwarmError,
    Timeout,
    ValidationError,
)
from .._hints import (
    ASK_TARGETS,
    CANCEL_TASK,
    READ_FINDING,
    REQUEUE_TASK,
    SERVE_QUESTIONS,
    SHOW_TASK,
    said_of,
)
from .._keys import ASSIST_QUEUE, ask_queue, askable
from .._models import ANSWER_KIND, QUESTION_KIND, Answer, Finding, Task, TaskStatus, answer_fields
from .._printable import asked_otherwise
from .._protocol import INTERRUPTS, Batch, Cmd, OpContext, Operation
from .._usage import Usage
from .._validate import MAX_ASK_TIMEOUT_S, check_id, check_name, check_unicode
from . import findings as finding_ops
from . import tasks as task_ops
from ._bus import now_from
from ._work import (
    await_events,
    block_chunk_s,
    check_label,
    check_number,
    decoded,
    encode_json,
    finding_from,
    new_id,
    task_from,
)
from ._work import text as as_text

__all__ = ["answer", "answers_for", "ask"]

MAX_QUESTION_CHARS = 32 * 1024  # the rest goes in data or a context
# How often an ask given ``stop`` asks it: the longest a caller gone keeps a thread waiting.
STOP_POLL_S = 1.0
# The lease a question asks for: an answerer that vanishes gives it back this soon (an
# answerer renews while it works; ``swarm serve`` and ``swarm run`` do).
MIN_LEASE_S, MAX_LEASE_S = 5.0, 300.0
_SETTLING = frozenset({"task.completed", "task.cancelled", "task.dead"})


def _resolve_target(ctx: OpContext, target: str) -> Operation[str]:
    """The queue a question to ``target`` goes to: the ask queue of a context owner or a
    registered agent, else ``target`` itself when it is a queue posted to before."""
    name = check_name("target", target)
    k = ctx.keys
    owner, agent, queue = yield Batch(
        (
            Cmd("HEXISTS", k.contexts, name),
            Cmd("HEXISTS", k.agents, name),
            Cmd("HMGET", k.counts, f"{name}|pending", f"{name}|delayed"),
        )
    )
    if int(owner) or int(agent):
        return ask_queue(askable(name))
    if any(v is not None for v in queue) or name == ASSIST_QUEUE:
        return name
    raise NotFound(
        f"unknown target {name!r}: it is no context owner, registered agent or queue of swarm "
        f"{ctx.settings.swarm!r}. Ask a shard by the owner of its context {ASK_TARGETS}, "
        f"the peer-assist queue {ASSIST_QUEUE!r}, or a queue posted to before"
    )


def _question_data(
    data: object, asker: str | Task | None, target: str, keep: bool
) -> dict[str, Any]:
    """The question task's data: who asks, for which task, whether it is to be kept (so that
    an asker sharing it knows), and the asker's own data."""
    body: dict[str, Any] = {"kind": QUESTION_KIND, "target": target}
    if keep:
        body["keep"] = True
    if isinstance(asker, Task):
        body["asker_task"] = asker.id
        if asker.worker:
            body["asker"] = asker.worker
    elif asker is not None:
        body["asker"] = check_name("asker", asker)
    if data is not None:
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"data must be a mapping (a JSON object), not {type(data).__name__}"
            )
        body["data"] = dict(data)
    return body


def _is_question(task: Task) -> bool:
    """A task posted by ``ask`` (a dedupe key may also name a task posted otherwise)."""
    return isinstance(task.data, Mapping) and task.data.get("kind") == QUESTION_KIND


def _check_question(question: object) -> str:
    if not isinstance(question, str) or not question.strip():
        raise ValidationError("the question must be a non-empty string: say what you need")
    if len(question) > MAX_QUESTION_CHARS:
        raise PayloadTooLarge(
            f"the question is {len(question):,} characters; the limit is "
            f"{MAX_QUESTION_CHARS:,}: ask briefly and pass the material in data (or publish "
            "it as a context and name it)"
        )
    check_unicode("the question", question)
    return question


def _answer_of(finding: Finding, task: Task) -> Answer:
    data = task.data if isinstance(task.data, Mapping) else {}
    asker_task = data.get("asker_task")
    return Answer(
        text=finding.details or finding.summary,
        finding_id=finding.id,
        question_id=task.id,
        queue=task.queue,
        answerer=finding.worker,
        model=finding.model,
        cost_usd=finding.usage.cost_usd if finding.usage is not None else None,
        summary=finding.summary,
        sources=finding.sources,
        asker_task=asker_task if isinstance(asker_task, str) else None,
        created_at=finding.created_at,
        usage=finding.usage,
        question=task.description,
        context_version=finding.context_version,
    )


def _state(ctx: OpContext, qid: str) -> Operation[tuple[str, Task]]:
    """The last event id (read first: a change after it is seen by XREAD) and the task."""
    k = ctx.keys
    last, raw, data = yield Batch(
        (
            Cmd("XREVRANGE", k.events, "+", "-", "COUNT", 1),
            Cmd("HGET", k.tasks, qid),
            Cmd("HGET", k.task_data, qid),
        )
    )
    if raw is None:
        raise NotFound(f"question {qid} was deleted while it was asked: ask again")
    return (as_text(last[0][0]) if last else "0-0"), decoded("task", qid, task_from, raw, data)


def _finding(ctx: OpContext, fid: str) -> Operation[Finding]:
    raw = yield Cmd("HGET", ctx.keys.findings, fid)
    if raw is None:
        raise NotFound(f"the answer {fid} was deleted before it could be read: ask again")
    return decoded("finding", fid, finding_from, raw)


def _settled(ctx: OpContext, task: Task, target: str, posted: bool) -> Operation[Answer | None]:
    """The answer of a settled question; None while it is open; an error when it died or
    was cancelled unanswered (``posted``: by this asker, which knows it did not cancel it)."""
    if task.status is TaskStatus.COMPLETED and task.finding_id:
        found = yield from _finding(ctx, task.finding_id)
        return _answer_of(found, task)
    if task.status is TaskStatus.DEAD:
        again = (  # (without a key, asking again posts another question)
            "the same dedupe key puts it back in its queue" if task.dedupe_key else "anew"
        )
        raise InvalidState(
            f"{_died(task, target)}: check its answerers {said_of(SHOW_TASK, task.id)}, then ask "
            f"again ({again})"
        )
    if task.status is TaskStatus.CANCELLED:
        # No record says who cancels a task (its event says when): say who could have.
        by = (
            "not by this asker, which posted it: someone cancelled it"
            if posted
            else "by the asker that posted it, which stopped waiting, or by someone else"
        )
        again = (  # (without a key, asking again posts another question)
            "the same dedupe key posts it anew" if task.dedupe_key else "a new question"
        )
        raise InvalidState(
            f"question {task.id} to {target!r} was cancelled before it was answered ({by}; "
            f"its task.cancelled event says when, nothing records by whom): ask again ({again})"
        )
    return None


# How far a re-ask looks for the late answer of its cancelled question: the findings of its
# queue reported since the question was posted, in pages of 100.
_LATE_PAGES = 10


def _late_answer(ctx: OpContext, task: Task) -> Operation[Answer | None]:
    """The first answer reported after ``task`` (a question) was cancelled (kept superseded),
    or None."""
    cursor: str | None = None
    for _ in range(_LATE_PAGES):
        page = yield from finding_ops.findings(
            ctx, queue=task.queue, since=task.created_at, cursor=cursor
        )
        for found in page.items:
            if found.task_id == task.id:
                return _answer_of(found, task)
        cursor = page.cursor
        if cursor is None:
            break
    return None


def _lease_for(timeout: float) -> float:
    return round(min(MAX_LEASE_S, max(MIN_LEASE_S, timeout / 3)), 3)


def ask(
    ctx: OpContext,
    target: str,
    question: str,
    *,
    data: Mapping[str, Any] | None = None,
    timeout_s: float = 60.0,
    asker: str | Task | None = None,
    keep: bool = False,
    dedupe_key: str | None = None,
    on_unclaimed: Callable[[str], None] | None = None,
    unclaimed_after_s: float = 2.0,
    on_posted: Callable[[str, bool], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> Operation[Answer]:
    """Ask ``target`` (a context owner or agent: its ask queue; else a queue) a question and
    block until the first answer, which is returned.

    The question is a task; its answer the finding that completes it. ``asker`` is who asks
    (a name), or the ``Task`` the asker is working on: the answer is then linked to it, and
    its lease is renewed while the asker waits. With a ``dedupe_key`` used before in that
    queue, the question asked before is shared: waited for, its answer returned at once when
    it has one; when it was cancelled, the answer that arrived late, else a fresh question
    that takes over the key; when it died, itself, put back in its queue (``_revive``).
    Raises Timeout after ``timeout_s`` (saying whether an answerer
    claimed it); a question this asker posted is then withdrawn (cancelled) unless ``keep``,
    and an answer that arrives later is kept as a superseded finding; a shared one is left to
    the asker that posted it, and when that one withdraws it while this asker still waits,
    this asker asks it anew. An interrupt while it waits (Ctrl-C, a cancelled asyncio task, a
    SystemExit raised by a signal handler) gives the question up the same way, then goes on,
    with a note (PEP 678) saying what became of the question.

    ``on_unclaimed(queue)`` is called once, ``unclaimed_after_s`` into the wait, when no
    answerer has claimed the question by then (and the timeout has not come first): so that
    a face can say why it still waits long before the timeout does. It runs where the wait
    runs (on the event loop for ``AsyncSwarm``), so it must return at once; what it raises
    ends the wait as an interrupt does.

    ``on_posted(question_id, posted)`` is called once the question waited for is known:
    posted by this asker (``posted`` true: its id chosen before the post, so it names a
    question a killed asker leaves queued, its own to withdraw), or met by the dedupe key
    (false: shared, the asker that posted it withdraws it); again when the wait moves to
    another (a question asked anew, or a dead one put back). It runs as ``on_unclaimed``
    does, and what it raises ends the wait the same way.

    ``stop()``, asked before each slice of the wait (at most ``STOP_POLL_S`` apart, where the
    wait runs, so it must return at once): True ends the wait as its timeout would, the
    caller gone (an MCP call cancelled) where no exception reaches the waiting thread: the
    question given up as above (withdrawn when this asker posted it, a shared one left to
    its poster), an answer that came meanwhile returned, else Timeout."""
    body_question = _check_question(question)
    timeout = check_number("timeout_s", timeout_s, 0, MAX_ASK_TIMEOUT_S)
    if dedupe_key is not None:
        check_label("dedupe key", dedupe_key)
    unclaimed = _Unclaimed(
        on_unclaimed, check_number("unclaimed_after_s", unclaimed_after_s, 0, MAX_ASK_TIMEOUT_S)
    )
    deadline = time.monotonic() + timeout
    lease_s = _lease_for(timeout)
    renewal = _Renewal(asker)
    chunk = block_chunk_s(ctx)
    q = _Question(keep)

    def ours(fields: Mapping[str, str]) -> bool:
        return fields.get("task") == q.id and fields.get("type") in _SETTLING

    announced: set[str] = set()  # the questions on_posted was told of

    def listed(found: Task | Answer) -> Operation[Task | Answer]:
        if isinstance(found, Task) and isinstance(asker, Task):
            # the asker's task lists its questions (lineage)
            yield Cmd("ZADD", ctx.keys.asked(asker.id), found.created_at, found.id)
        if isinstance(found, Task) and on_posted is not None and found.id not in announced:
            announced.add(found.id)
            try:
                on_posted(found.id, q.posted)
            except Exception as exc:
                note = yield from _withdraw(ctx, q, target, dedupe_key, "on_posted failed")
                _add_note(exc, note)
                raise
        return found

    try:
        queue = yield from _resolve_target(ctx, target)
        qdata = _question_data(data, asker, target, keep)
        asking = _Asking(queue, body_question, qdata, lease_s, dedupe_key)
        found = yield from _post_question(ctx, q, asking)
        found = yield from listed(found)
        while not isinstance(found, Answer):
            last, task = yield from _state(ctx, found.id)
            remaining = deadline - time.monotonic()
            if (
                task.status is TaskStatus.CANCELLED
                and not q.posted
                and remaining > 0
                and dedupe_key is not None
                and _is_question(task)
            ):
                # The asker that posted it withdrew it (it stopped waiting) while this one
                # still waits: this one asks it anew (or finds it asked anew by another
                # sharer), so that a sharer's wait is never cut short.
                found = yield from _take_over(ctx, q, asking, task)
                found = yield from listed(found)
                continue
            answered = yield from _settled(ctx, task, target, q.posted)
            if answered is not None:
                return answered
            stopped = remaining > 0 and stop is not None and stop()
            if remaining <= 0 or stopped:
                waited = round(timeout - remaining, 1) if stopped else timeout
                late = yield from _give_up(ctx, q, task, asking, target, waited, stopped=stopped)
                return late
            if unclaimed.due(task):
                try:
                    unclaimed.call(task.queue)
                except Exception as exc:
                    note = yield from _withdraw(ctx, q, target, dedupe_key, "on_unclaimed failed")
                    _add_note(exc, note)
                    raise
            wait_s = min(remaining, chunk, renewal.every_s, unclaimed.wait_s())
            try:
                yield from renewal.renew(ctx)
                yield from _await_answer(ctx, last, wait_s, ours, stop)
            except SwarmError as exc:
                # The wait itself failed (Redis gone, or refusing this user): nobody waits
                # for the question now, so it is given up as at an interrupt, and the error
                # says what became of it (faces show an error's message, not its notes).
                note = yield from _withdraw(ctx, q, target, dedupe_key, "stopped waiting", exc)
                if exc.args and isinstance(exc.args[0], str):
                    exc.args = (f"{exc.args[0]}; {note}", *exc.args[1:])
                raise
        return found
    except INTERRUPTS as exc:
        # The asker gave up (Ctrl-C, a cancelled task): as at a timeout, nobody should answer
        # (and pay for) the question now, unless it was to be kept or another asker waits.
        note = yield from _withdraw(ctx, q, target, dedupe_key, "interrupted")
        _add_note(exc, note)
        raise


def _await_answer(
    ctx: OpContext,
    last: str,
    wait_s: float,
    ours: Callable[[Mapping[str, str]], bool],
    stop: Callable[[], bool] | None,
) -> Operation[None]:
    """Block until an event settling the question (``ours``) or ``wait_s``; with ``stop``, in
    blocks of ``STOP_POLL_S`` with ``stop()`` asked between them (true: back at once, for
    the caller's check to end the wait), the question read again no more often than
    without it."""
    if stop is None:
        yield from await_events(ctx, last, wait_s, ours)
        return
    end = time.monotonic() + wait_s
    came = False

    def seen(fields: Mapping[str, str]) -> bool:
        nonlocal came
        came = came or ours(fields)
        return came

    while not came and not stop():
        left = end - time.monotonic()
        if left <= 0:
            return
        last = yield from await_events(ctx, last, min(left, STOP_POLL_S), seen)


class _Question:
    """What an asker knows of the question it waits for: enough to say, when it stops
    waiting, whether the question is its own to withdraw."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep  # this asker asked to keep it
        self.id: str | None = None  # None: not posted yet
        self.posted = False  # this asker posted it (its post did not meet its dedupe key)
        self.sure = False  # the post's reply came back (before it, it may not be stored)
        self.kept = keep  # to be kept, by this asker or by the asker that posted it

    def posting(self, tid: str) -> None:
        self.id, self.posted, self.sure, self.kept = tid, True, False, self.keep

    def sharing(self, task: Task) -> None:
        self.id, self.posted, self.sure, self.kept = task.id, False, True, _kept(task)

    def reviving(self, task: Task) -> None:
        """``task``, a dead question this asker put back in its queue: its own to withdraw
        (the asker that posted it gave up when it died), unless it is to be kept."""
        self.id, self.posted, self.sure, self.kept = task.id, True, True, self.keep or _kept(task)


def _kept(task: Task) -> bool:
    """Whether the asker that posted ``task`` (a question) asked to keep it."""
    return isinstance(task.data, Mapping) and task.data.get("keep") is True


class _Asking(NamedTuple):
    """What every post of one question carries: the asker's first, and a successor's."""

    queue: str
    question: str
    data: dict[str, Any]
    lease_s: float
    dedupe_key: str | None

    def post(
        self, ctx: OpContext, q: _Question, dedupe_key: str | None, *, successor: bool = False
    ) -> Operation[tuple[str, Task]]:
        """Post it under ``dedupe_key`` and an id chosen here (returned beside the task the
        post returns: another id when the post met the key). A ``successor`` (``_take_over``)
        records in its data the asker's key it takes over (``TAKES_OVER``), so that
        ``retire_questions`` removes that key's entry with it."""
        data = self.data
        if successor and self.dedupe_key is not None:
            data = {**data, TAKES_OVER: self.dedupe_key}
        tid = new_id("t-")
        q.posting(tid)
        try:
            task = yield from task_ops.post_task(
                ctx, self.queue, self.question, data, lease_s=self.lease_s,
                dedupe_key=dedupe_key, task_id=tid,
            )  # fmt: skip
        except ValidationError:
            # The post's words are a task's ("task data is ..."): refused for the question's
            # data, the asker is told in its own (checked again only on this refusal).
            encode_json(data, "question data", ctx.limits.max_task_data_bytes)
            raise
        q.sure = True
        return tid, task


def _post_question(ctx: OpContext, q: _Question, asking: _Asking) -> Operation[Task | Answer]:
    """Post the question under an id chosen here, so that a post that met its dedupe key
    (the question asked before is returned instead, and nothing is posted) is told apart:
    that question is shared, not this asker's. A shared question that was cancelled is
    taken over (``_take_over``)."""
    tid, task = yield from asking.post(ctx, q, asking.dedupe_key)
    if task.id == tid:
        return task
    found = yield from _take_over(ctx, q, asking, task)
    return found


# The field of a successor's data naming the dedupe key it took over (its own key is
# ``_successor_key``'s): lua/questions_retire.lua reads it by this name.
TAKES_OVER = "takes_over"


def _successor_key(qid: str) -> str:
    """The dedupe key of the question asked anew after ``qid`` was cancelled: one per
    cancelled question, so that sharers taking it over at once post one question."""
    return f"asked anew after {qid}"


def _take_over(
    ctx: OpContext, q: _Question, asking: _Asking, task: Task
) -> Operation[Task | Answer]:
    """The question to wait for, from ``task``, a shared question: itself while it is not
    cancelled; when it is, its late answer, else its successor (posted under its
    ``_successor_key``: of several sharers posting it at once, one posts it and the others'
    posts meet it), followed the same way. A question posted here takes over
    ``dedupe_key`` too, so that a later asker meets it at once; a pointer left behind (two
    writes crossing) costs that asker a step along the successors, never a second
    question: each cancelled question has one successor, so at most one of them is open."""
    while True:
        q.sharing(task)
        if task.status is TaskStatus.DEAD and _is_question(task):
            revived = yield from _revive(ctx, q, task, asking)
            return revived
        if task.status is not TaskStatus.CANCELLED:
            return task
        late = yield from _late_answer(ctx, task)
        if late is not None:
            return late
        tid, after = yield from asking.post(ctx, q, _successor_key(task.id), successor=True)
        if after.id == tid:
            if asking.dedupe_key is not None:
                yield Cmd("HSET", ctx.keys.dedupe, f"{asking.queue}|{asking.dedupe_key}", tid)
            return after
        task = after


def _revive(ctx: OpContext, q: _Question, task: Task, asking: _Asking) -> Operation[Task]:
    """A dead question its dedupe key met, given another chance: put back in its queue as
    ``requeue_dead`` does (with fresh budgets of failures; the script checks it is dead, so
    of several askers reviving it at once one does, and the others share it), so that every
    later ask with the key does not fail at once with an error that asking again cannot mend.
    Its reviver holds it as its poster (``_Question.reviving``). A user that may not requeue
    (a worker's ACL: it may ask, not requeue) is told the command that revives it."""
    try:
        revived = yield from task_ops.requeue_dead(ctx, task.id)
    except InvalidState:  # revived meanwhile (by another asker, or swarm task requeue)
        _, now = yield from _state(ctx, task.id)
        q.sharing(now)
        return now
    except PermissionDenied:
        target = task.data.get("target") if isinstance(task.data, Mapping) else None
        raise InvalidState(
            f"{_died(task, str(target or asking.queue))}, and this user may not put it back "
            f"in its queue (a worker may ask, not requeue): revive it "
            f"{said_of(REQUEUE_TASK, task.id)} (a coordinator's or shard's right), then ask "
            "again with the same dedupe key to wait for its answer"
        ) from None
    q.reviving(revived)
    return revived


def _died(task: Task, target: str) -> str:
    """What is said of a question that died: why, with its last error."""
    why = task.dead_reason or "dead"
    if task.last_error and task.last_error not in why:  # (a failure's reason holds it)
        why += f"; last error: {task.last_error}"
    return f"question {task.id} to {target!r} died unanswered ({why})"


def _collect(qid: str, dedupe_key: str | None) -> str:
    """How to collect the answer of question ``qid``, left open."""
    again = "" if dedupe_key is None else ", or ask again with the same dedupe key"
    # (a task's record names its finding, not the finding's text: no command reads a
    # finding by its task, so the two that do, the second with the id the first shows)
    return (
        f"its answer will be the finding that completes it, named once it is answered "
        f"{said_of(SHOW_TASK, qid)}: {READ_FINDING}{again}"
    )


def _let_go(
    ctx: OpContext, q: _Question, dedupe_key: str | None
) -> Operation[tuple[str, Task | None]]:
    """Stop waiting for the question: withdraw (cancel) it when this asker posted it and did
    not ask to keep it, so that no answerer takes it (and spends on it) for nobody; leave it
    when it is to be kept, or when another asker posted it (that one withdraws it when it
    stops waiting, and an asker still sharing it then asks it anew: ``ask``). Returns what
    became of it, in words, and the question as it settled meanwhile, when the withdrawal
    found it answered or dead."""
    qid = q.id
    if qid is None:
        return "it was not posted: nothing was asked", None
    if not q.posted:
        by = (
            "which asked to keep it"
            if q.kept
            else "which withdraws it when it stops waiting, unless it asked to keep it"
        )
        return (
            f"it stays open as {qid}, shared with the asker that posted it, {by}; "
            f"{_collect(qid, dedupe_key)}"
        ), None
    if q.kept:  # (of a question this asker posted: its own keep, or a revived one's)
        posted = "" if q.sure else " (if its post went through)"
        return f"it stays queued as {qid}{posted}; {_collect(qid, dedupe_key)}", None
    try:
        yield from task_ops.cancel(ctx, qid)
    except NotFound:
        if q.sure:
            raise
        # Its post was sent, its reply lost, and the cancel found no such task: most likely
        # never stored; said with its id all the same, should the post land late.
        return (
            f"its post got no reply and no question {qid} is stored: most likely nothing was "
            f"asked; should it show up {said_of(SHOW_TASK, qid)}, cancel it "
            f"{said_of(CANCEL_TASK, qid)}"
        ), None
    except InvalidState:  # answered (or died) meanwhile
        _, task = yield from _state(ctx, qid)
        if task.status is TaskStatus.COMPLETED and task.finding_id:
            return f"{qid} was answered meanwhile: its answer is {task.finding_id}", task
        return f"{qid} was {task.status.value} meanwhile {said_of(SHOW_TASK, qid)}", task
    return f"it was cancelled ({qid}); an answer that still arrives is kept, superseded", None


def _withdraw(
    ctx: OpContext,
    q: _Question,
    target: str,
    dedupe_key: str | None,
    why: str,
    cause: SwarmError | None = None,
) -> Operation[str]:
    """Give the question up as an asker that stops waiting (``why``: interrupted, or its wait
    failed with ``cause``) does (``_let_go``); what stops that (Redis gone) is said, not
    raised, so that the error goes on as it is. Returns the note it carries."""
    try:
        fate, settled = yield from _let_go(ctx, q, dedupe_key)
    except SwarmError as exc:
        said = "" if cause is not None and str(exc) == str(cause) else f": {exc}"
        # (With no id, nothing was posted: the note says so, not this.)
        cancel = CANCEL_TASK if q.id is None else said_of(CANCEL_TASK, q.id)
        fate = f"it could not be cancelled ({q.id}{said}): cancel it {cancel}"
    else:
        if q.posted and not q.kept and settled is None:
            fate += "; ask again when you can wait for the answer"
    if q.id is None:
        return f"{why} before the question to {target!r} was posted: nothing was asked"
    return f"{why} while asking {target!r}: {fate}"


def _add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)`` (PEP 678: Python 3.11 shows it under the traceback; a face
    reads ``__notes__``), on Python 3.10 too."""
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        notes.append(note)
    else:
        setattr(exc, "__notes__", [note])  # noqa: B010 (no such attribute on 3.10's type)


class _Unclaimed:
    """The one note an asker may ask for (``on_unclaimed``): its question not claimed by
    ``after_s`` into the wait. The wait wakes at that moment to read the question once more
    (the only round trip the note costs); a question seen claimed before it never gets one,
    and an asker that asked for no note waits as before."""

    # An XREAD BLOCK counts whole milliseconds: a wait cut to end at the moment may end just
    # short of it, and is then taken as having reached it (rather than waiting again).
    _EARLY_S = 0.005

    def __init__(self, on_unclaimed: Callable[[str], None] | None, after_s: float) -> None:
        self._on_unclaimed = on_unclaimed
        self._at = None if on_unclaimed is None else time.monotonic() + after_s

    def due(self, task: Task) -> bool:
        """Whether to call the note now, ``task`` being the question as just read; the note
        is settled (called, or known never to be) at most once."""
        if self._at is None:
            return False
        if task.attempts > 0:  # an answerer claimed it (and may be slow): no note, ever
            self._at = None
            return False
        if time.monotonic() < self._at - self._EARLY_S:
            return False
        self._at = None
        return task.status is TaskStatus.PENDING

    def call(self, queue: str) -> None:
        assert self._on_unclaimed is not None  # (due() is true only when one was given)
        self._on_unclaimed(queue)

    def wait_s(self) -> float:
        """How long the next wait may block: until the moment of the note, while it is to come."""
        return float("inf") if self._at is None else max(0.0, self._at - time.monotonic())


class _Renewal:
    """Renews the lease of the task the asker works on, while it waits for an answer; a
    renewal refused (the task cancelled, completed, or taken over after its lease expired)
    ends the renewals, not the wait: the asker's work is not void for that (a report with a
    lost lease is still accepted while the task is open), and the answer it waits for is
    still linked to its task. It learns of the loss where it acts on its task next."""

    def __init__(self, asker: str | Task | None) -> None:
        # Only a task carrying its lease's token (claim's) can be renewed.
        held = isinstance(asker, Task) and asker.status is TaskStatus.CLAIMED
        self.task = asker if isinstance(asker, Task) and held and asker.token else None
        lease_s = MAX_LEASE_S
        if self.task is not None:
            lease_s = float(self.task.claimed_lease_s)  # (its renewals extend it so)
        self.every_s = max(0.05, lease_s / 3)
        # The first wait renews at once: the asker may ask late in its lease, with less of
        # it left than every_s (its claim, or its last renewal, is not known here).
        self.next_at = time.monotonic()

    def renew(self, ctx: OpContext) -> Operation[None]:
        if self.task is None or time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + self.every_s
        try:
            yield from task_ops.renew(ctx, self.task.id, self.task.token)
        except (Conflict, NotFound):
            self.task = None


def _give_up(
    ctx: OpContext,
    q: _Question,
    task: Task,
    asking: _Asking,
    target: str,
    timeout: float,
    *,
    stopped: bool = False,
) -> Operation[Answer]:
    """Let the question go (``_let_go``) and raise Timeout; an answer that won the race
    with its withdrawal is returned instead. ``stopped``: the caller's ``stop()`` ended the
    wait after ``timeout`` seconds, not its timeout."""
    queue, dedupe_key = asking.queue, asking.dedupe_key
    claimed = task.status is TaskStatus.CLAIMED  # held now, not merely once
    expired = False
    if claimed and task.lease_deadline is not None:
        # A lease past its deadline (by the server's clock, which set it) is held by nobody:
        # its answerer stopped or died (a killed swarm serve), and a longer wait would not help.
        now = now_from(ctx, (yield Cmd("TIME")))
        expired = task.lease_deadline <= now
        claimed = not expired
    who = _who(task, queue, expired=expired)
    other = _other_text(task, asking)
    # (A key that met other text is no way to collect an answer to this text: not offered.)
    then, settled = yield from _let_go(ctx, q, None if other else dedupe_key)
    if settled is not None:
        answered = yield from _settled(ctx, settled, target, q.posted)
        if answered is not None:
            return answered
    # A question left open (kept, or another asker's) is collected, not asked again: that
    # would post a second one (and pay for it twice).
    left_open = q.id is not None and (q.kept or not q.posted)
    # A longer wait helps an answerer that was at work on it, not a queue nobody serves.
    again = (
        ""
        if left_open or stopped
        else ". Ask again with a longer timeout"
        if claimed
        else ". Start an answerer (above), then ask again"
    )
    ended = " (the caller stopped waiting)" if stopped else ""
    raise Timeout(
        f"no answer from {target!r} after {timeout:g} s{ended}: {who}; {then}{again}{other}",
        task_id=task.id,
        claimed=claimed,
    )


def _who(task: Task, queue: str, *, expired: bool = False) -> str:
    """What a timeout says of the question's answerers: the one holding it, or that it was
    claimed and given back unanswered (a ``swarm serve`` that stopped), or whose lease ran
    out (``expired``: one that was killed), or never claimed."""
    serving = f"is anyone serving queue {queue!r}? {SERVE_QUESTIONS}"
    if task.status is TaskStatus.CLAIMED and expired:
        return (
            f"answerer {task.worker or '?'} claimed it (attempt {task.attempts}) and its lease "
            f"ran out unanswered (the answerer stopped or died, as a killed swarm serve does): "
            f"{serving}"
        )
    if task.status is TaskStatus.CLAIMED:
        return (
            f"answerer {task.worker or '?'} claimed it (attempt {task.attempts}) but did not answer"
        )
    if task.attempts > 0:
        times = "once" if task.attempts == 1 else f"{task.attempts:,} times"
        return (
            f"it was claimed {times} and given back unanswered (its answerer released it, as "
            f"a stopping swarm serve does, or its lease ran out), so it waited in its queue "
            f"again: {serving}"
        )
    return f"no answerer claimed it: {serving}"


def _other_text(task: Task, asking: _Asking) -> str:
    """What a timeout adds when the question waited for is not the one asked: one the
    dedupe key met, asked with other text (whose answer answers that text, not this one)."""
    if asking.dedupe_key is None or task.description.strip() == asking.question.strip():
        return ""
    return (
        f". The dedupe key met {asked_otherwise(task.id, task.description)}: its answer "
        "answers that text, not yours; ask with another key for an answer to yours"
    )


def answer(
    ctx: OpContext,
    question: str | Task,
    token: str | None,
    text: str,
    *,
    worker: str | None = None,
    model: str | None = None,
    context_version: str | None = None,
    sources: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
    finding_id: str | None = None,
    usage: Usage | None = None,
    claim_next: str | Sequence[str] | None = None,
    next_lease_s: float | None = None,
    wait_s: float = 0.0,
) -> Operation[Finding | tuple[Finding, Task | None]]:
    """Report the answer to a question (a task claimed with ``token``): a finding with
    ``kind = "answer"``, its first line (up to 2,000 characters) the summary and the whole
    text the details, linked to the asker's task when the question names one; ``usage`` is
    what the answering agent's run cost, ``context_version`` the version of the context the
    answer was made from (as ``report``'s: lineage shows it, and the ``Answer`` carries it,
    so that an asker can tell an answer made from an older version).

    ``question`` is the question's id, or the ``Task`` its claim returned: its data is then
    not read again, and the answer is one script call. ``claim_next``, ``next_lease_s`` and
    ``wait_s`` are ``report``'s: in the same script, lease the next task of those queues (the
    next question; waiting up to ``wait_s`` for one when none is there) and return
    ``(finding, next task or None)``.

    An answer under a lease that ran out, the question leased again since, is still the
    question's answer (the first answer of an open question wins): the finding returned
    names the answerer of that later lease in ``overtaken_by`` (its answer will be
    superseded), told by the report's own reply, no round trip more."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("an answer must be a non-empty text: say what you found")
    if extra is not None and not isinstance(extra, Mapping):
        raise ValidationError(
            f"extra must be a dict of further fields to keep with the answer, or None; got "
            f"{type(extra).__name__}"
        )
    checked = finding_ops.checked_sources(sources)
    if not isinstance(question, Task):
        question = yield from task_ops.get_task(ctx, question)
    first = text.strip().splitlines()[0]
    most = finding_ops.MAX_SUMMARY_CHARS
    summary = first if len(first) <= most else first[: most - 1] + "…"
    finding: dict[str, Any] = {**(extra or {}), "summary": summary, "kind": ANSWER_KIND}
    finding.update(answer_fields(question))
    if summary != text.strip():
        finding["details"] = text
    finding["sources"] = checked
    stored = yield from finding_ops.report(
        ctx, question.id, token, finding, worker=worker, model=model,
        context_version=context_version, finding_id=finding_id, usage=usage,
        claim_next=claim_next, next_lease_s=next_lease_s, wait_s=wait_s,
    )  # fmt: skip
    return stored


MAX_ANSWERS_LISTED = 100


def answers_for(ctx: OpContext, task_id: str) -> Operation[list[Answer]]:
    """The answers to the questions asked while working on ``task_id`` (``ask`` with the
    task as asker), oldest first, at most 100: what its lineage shows. Three round trips
    (the questions, their records, their answers), however many there are."""
    tid = check_id("task", task_id)
    k = ctx.keys
    # (by score from 0: a question retire_questions removed stays at minus its retirement
    # time, which lineage reads apart, and must not crowd out the questions still held)
    members = yield Cmd("ZRANGEBYSCORE", k.asked(tid), 0, "+inf", "LIMIT", 0, MAX_ANSWERS_LISTED)
    qids = [as_text(m) for m in members]
    if not qids:
        return []
    reads = [Cmd("HGET", key, qid) for qid in qids for key in (k.tasks, k.task_data)]
    replies = yield Batch(tuple(reads))
    answered: list[Task] = []
    for qid, raw, data in zip(qids, replies[::2], replies[1::2], strict=True):
        if raw is None:
            continue
        question = decoded("task", qid, task_from, raw, data)
        if question.status is TaskStatus.COMPLETED and question.finding_id:
            answered.append(question)
    if not answered:
        return []
    found = yield Batch(tuple(Cmd("HGET", k.findings, q.finding_id) for q in answered))
    return [
        _answer_of(decoded("finding", str(q.finding_id), finding_from, raw), q)
        for q, raw in zip(answered, found, strict=True)
        if raw is not None
    ]
