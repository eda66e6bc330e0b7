"""Retiring the settled questions of a queue of questions (``swarm retire --questions``): a
question (``ask``) is a task of no pass, so ``retire_pass`` never frees it; this removes the
completed, cancelled and dead questions of one ask queue (``ask.OWNER``, or the peer-assist
queue) that settled long enough ago, with their data, own keys and every finding they got
(the answer, superseded ones too), their entries in every index, and brings the queue's
counters down by exactly what went. A record of each queue's retirements stays in
``Keys.retired_questions``; the asked index of the asker's task keeps each retired question,
scored minus when it was retired, so that lineage says it was retired, and when.

The work is done by ``lua/questions_retire.lua`` in steps of ``RETIRE_CHUNK`` entries, each
atomic and leaving every invariant of the swarm true. A cancelled question (an asker that
stops waiting withdraws its question) is in no index of its queue, so a run walks the task
index of the whole swarm by creation time, up to the cutoff (a task created after it cannot
have settled before it), from where the last complete run of the queue left its oldest
question (``walked``): a run costs one round trip per ``RETIRE_CHUNK`` tasks of any queue
created since then (a first run: since the swarm began), plus one per ``RETIRE_CHUNK`` of
the queue's findings (read twice) and one per thousand syntheses (a finding a synthesis
cites is kept, with its question). Nothing is added to posting, claiming or reporting.

A question is a settled task of no pass and no shard: ``retire_queues`` frees those of any
queues the same way (the ask-specific keys, an asker's ``asked`` index, simply absent),
which is how a pipeline's bookkeeping (its planning, synthesizer and lease queues) is freed,
held off while the pipeline's lease is held (``unless_open``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .._codec import UNREADABLE, dumps, loads
from .._errors import Conflict, NotFound, ValidationError
from .._hints import CANCEL_TASK
from .._keys import Keys, ask_queue, askable, is_ask_queue
from .._models import OPEN_STATUSES, RetiredAsk, RetiredQuestions, TaskStatus, listed_names
from .._protocol import Batch, Call, Cmd, OpContext, Operation
from .._validate import MAX_DURATION_S, check_id, check_list, check_name
from ._bus import now_from
from ._work import STATUSES, check_number, text
from .ask import MAX_ANSWERS_LISTED
from .retire import RETIRE_CHUNK, _citation_reads, _citations_again, _syntheses_cite
from .tasks import queue_names

__all__ = [
    "RETIRED_OUTCOMES",
    "RETIRE_CHUNK",
    "retire_questions",
    "retire_queues",
    "retired_asked",
    "retired_questions",
]

MAX_OLDER_THAN_S = MAX_DURATION_S  # (the longest duration any call takes)


def question_queue(target: str) -> str:
    """The queue of the questions asked of ``target``: itself when it is a queue of
    questions (``ask.OWNER``, the peer-assist queue), else the ask queue of the owner or
    agent it names."""
    name = check_name("target", target)
    return name if is_ask_queue(name) else ask_queue(askable(name))


def _unknown(target: str, queue: str, fields: Iterable[Any]) -> str:
    # (only what was asked is offered: the peer-assist queue among them once asked)
    asked = [q for q in queue_names(fields) if is_ask_queue(q)]
    of = "" if target == queue else f" (queue {dumps(queue)})"
    return (
        f"no question was ever asked of {dumps(target)}{of}: nothing to retire. Name an owner "
        f"or agent asked (its queue {ask_queue('OWNER')}) or a queue of questions there "
        f"is: {listed_names(asked)}"
    )


def _walk_keys(k: Keys, queue: str) -> tuple[str, ...]:
    """The keys of every step but the chunk's own (see lua/questions_retire.lua)."""
    return (
        k.tasks, k.task_data, k.task_index, k.dedupe, k.counts, k.events, k.findings,
        k.finding_index, k.findings_by("queue", queue), k.dead(queue), k.retired_questions,
        k.synthesis_index,
    )  # fmt: skip


# What a step counts, in its reply's order: questions findings open recent cited, other (a
# task of the queue with a pass or shard) settled and open, corrupt.
_COUNTS = 8


class _Walk:
    """Where a run stands, and what it counted: started over when a synthesis is stored
    while it runs."""

    def __init__(self, start: str, cutoff: int, first: Any, cited: set[str]) -> None:
        self.phase, self.offset = "findings", 0
        self.cursor = (start, "")
        self.walked = cutoff
        self.chunk: list[Any] = [text(fid) for fid in first]
        self.cited = cited
        self.protected: set[str] = set()
        self.counts = [0] * _COUNTS

    def args(self, k: Keys) -> tuple[list[str], list[str]]:
        """The chunk's own keys, and its entries (as the script takes them)."""
        if self.phase != "tasks":
            flags = ["1" if fid in self.cited else "0" for fid in self.chunk]
            entries = [item for pair in zip(self.chunk, flags, strict=True) for item in pair]
            return [], entries
        keys: list[str] = []
        entries = []
        for tid, asker in self.chunk:
            keys += [k.asked(tid), k.webhooks(tid), k.asked(asker or tid)]
            entries += [tid, "1" if asker else "0", "1" if tid in self.protected else "0"]
        return keys, entries

    def took(self, reply: Any) -> None:
        """What a step did, and the next chunk."""
        self.phase, self.offset = text(reply[1]), int(reply[2])
        self.cursor = (text(reply[3]), text(reply[4]))
        for i in range(_COUNTS):
            self.counts[i] += int(reply[5 + i])
        self.walked = int(float(text(reply[5 + _COUNTS])))
        n = int(reply[6 + _COUNTS])
        at = 7 + _COUNTS  # the chunk's first entry
        if self.phase == "tasks":
            flat = [text(x) for x in reply[at : at + 2 * n]]
            self.chunk = list(zip(flat[::2], flat[1::2], strict=True))
            rest = reply[at + 2 * n :]
        else:
            self.chunk = [text(fid) for fid in reply[at : at + n]]
            rest = reply[at + n :]
        self.protected.update(text(tid) for tid in rest)


def retire_questions(
    ctx: OpContext,
    target: str,
    *,
    older_than_s: float = RetiredQuestions.DEFAULT_OLDER_THAN_S,
    dry_run: bool = False,
) -> Operation[RetiredQuestions]:
    """Remove the settled questions asked of ``target`` (an owner or agent asked: its queue
    ``ask.OWNER``; or the peer-assist queue) that settled ``older_than_s`` ago or earlier:
    (default: a minute, so that no answer goes before its asker read it; 0 is allowed):
    each completed, cancelled and dead question with its data, own keys and entries in the
    task, dead-letter and dedupe indexes, every finding of it (the answer, superseded ones
    too) with its entries in the finding indexes, and the queue's counters brought down by
    exactly that. Open questions (pending, delayed, claimed) stay, and so do a question
    whose answer a synthesis cites (``cited``), tasks of the queue posted with a pass or a
    shard (``other``: ``retire_pass``'s), the queue's records stored unreadable (``corrupt``).
    A queue no question was ever posted to is NotFound (unless it has a record of an earlier
    retirement). Runs in atomic steps (``RETIRE_CHUNK``), the swarm consistent between
    them: a run stopped mid-way leaves what it did done, and the next goes on. ``dry_run``
    counts what would go and changes nothing. ``at`` (ms): when its last step removed what
    it did (the record's ``at``); when it removed nothing (a dry run too), when it was
    called (the server's time)."""
    older = check_number("older_than_s", older_than_s, 0, MAX_OLDER_THAN_S)
    queue = question_queue(target)

    def unknown(fields: Iterable[Any]) -> str:
        return _unknown(check_name("target", target), queue, fields)

    return (yield from _retire_queue(ctx, queue, older, dry_run=dry_run, unknown=unknown))


# The most queues one ``retire_queues`` takes (a pipeline's: two per run and its lease).
MAX_QUEUES = 1000


def retire_queues(
    ctx: OpContext,
    queues: Sequence[str],
    *,
    older_than_s: float = RetiredQuestions.DEFAULT_OLDER_THAN_S,
    dry_run: bool = False,
    unless_open: str | None = None,
    settled_before: int | None = None,
) -> Operation[list[RetiredQuestions]]:
    """Remove the settled tasks of no pass and no shard of each of ``queues``, as
    ``retire_questions`` removes the questions of a queue of questions (one
    ``RetiredQuestions`` per queue, in the order first named: a queue named twice is
    retired once; its ``questions`` the tasks removed): what frees a pipeline's bookkeeping
    (its planning, synthesizer and lease queues). A queue nothing was posted to counts
    nothing (no error: all zero). ``unless_open``: a queue whose open task (pending,
    delayed, claimed: a pipeline's lease, held by a run that still reads what this removes)
    refuses the run, Conflict: checked before anything and at every step, so that one
    starting meanwhile stops it there (what went before stays gone, consistent).
    ``settled_before`` (epoch ms, the server's clock): only tasks settled before it go too,
    later ones are kept (``recent``): how a pipeline keeps its newest lease task, the one
    its next run numbers its own from."""
    older = check_number("older_than_s", older_than_s, 0, MAX_OLDER_THAN_S)
    queues = check_list("queues", queues, of=f"1 to {MAX_QUEUES} queue names")
    if not 0 < len(queues) <= MAX_QUEUES:
        raise ValidationError(f"queues must be a list of 1 to {MAX_QUEUES} queue names")
    names = list(dict.fromkeys(check_name("queue", q) for q in queues))
    holding = "" if unless_open is None else check_name("unless_open", unless_open)
    before = None
    if settled_before is not None:
        before = int(check_number("settled_before", settled_before, 1, 2**53, integer=True))
    done = []
    for queue in names:
        done.append(
            (yield from _retire_queue(
                ctx, queue, older, dry_run=dry_run, holding=holding, settled_before=before
            ))
        )  # fmt: skip
    return done


def _held_off(holding: str) -> Conflict:
    return Conflict(
        f"queue {holding!r} has an open task (a run holding it): nothing is retired while it "
        f"does. Run this again once that task is settled (or cancel it {CANCEL_TASK})"
    )


def _retire_queue(
    ctx: OpContext,
    queue: str,
    older: float,
    *,
    dry_run: bool,
    holding: str = "",
    unknown: Callable[[Iterable[Any]], str] | None = None,
    settled_before: int | None = None,
) -> Operation[RetiredQuestions]:
    """One queue's retirement (``retire_questions``, ``retire_queues``): ``unknown`` makes a
    queue nothing was posted to (and never retired) NotFound, saying that; ``holding``: the
    queue whose open task refuses it; ``settled_before``: the latest settling time but one
    that goes (see ``retire_queues``)."""
    k = ctx.keys
    findings_of = k.findings_by("queue", queue)
    held = (Cmd("HMGET", k.counts, *(f"{holding}|{s}" for s in OPEN_STATUSES)),) if holding else ()
    posted, fields, record, seen, scanned, first, server_time, *open_held = yield Batch(
        (
            Cmd("HMGET", k.counts, f"{queue}|pending", f"{queue}|delayed"),
            Cmd("HKEYS", k.counts), Cmd("HGET", k.retired_questions, queue),
            *_citation_reads(k, findings_of, RETIRE_CHUNK),
            Cmd("TIME"),  # (the cutoff, and the ``at`` of a run that removes nothing)
            *held,
        )
    )  # fmt: skip
    called_at = now_from(ctx, server_time)
    if unknown is not None and all(v is None for v in posted) and record is None:
        raise NotFound(unknown(fields))
    if any(int(v or 0) > 0 for reply in open_held for v in reply):
        raise _held_off(holding)
    cutoff = called_at - round(older * 1000)
    if settled_before is not None:  # (the script retires what settled at the cutoff or before)
        cutoff = min(cutoff, settled_before - 1)
    start = "-inf"  # where the task index is walked from: where the last run left
    if record is not None:
        with contextlib.suppress(*UNREADABLE, TypeError, ValueError):
            start = str(int(loads(record)["walked"]))
    cited = yield from _syntheses_cite(ctx, scanned)
    keys = _walk_keys(k, queue)
    walk = _Walk(start, cutoff, first, cited)
    while walk.phase != "done":
        own, entries = walk.args(k)
        reply = yield Call(
            "questions_retire",
            (*keys, *own),
            (ctx.now_arg(), ctx.limits.events_maxlen, queue, "0" if dry_run else "1",
             walk.phase, walk.offset, RETIRE_CHUNK, seen, cutoff, *walk.cursor, walk.walked,
             holding, len(walk.chunk), *entries),
        )  # fmt: skip
        if text(reply[0]) == "busy":
            raise _held_off(holding)
        if text(reply[0]) == "stale":  # a synthesis stored since they were read: again
            seen, cited, first = yield from _citations_again(ctx, findings_of, RETIRE_CHUNK)
            removed = walk.counts[:2]
            walk = _Walk(start, cutoff, first, cited)
            if not dry_run:  # (what went is gone: counted, not to be counted again)
                walk.counts[:2] = removed
            continue
        walk.took(reply)
    questions, findings, _open, _recent, cited_n, other, other_open, corrupt = walk.counts
    # What is left, from the counters (exact, where the walk sees only the questions
    # created before the cutoff): the open ones, and the settled ones not retired; the
    # tasks of a pass or shard the walk saw (counted there too) taken from each by status
    left = yield Cmd("HMGET", k.counts, *(f"{queue}|{status}" for status in STATUSES))
    by_status = dict(zip(STATUSES, (int(v or 0) for v in left), strict=True))
    open_ = max(0, sum(by_status[s] for s in OPEN_STATUSES) - other_open)
    settled = sum(n for s, n in by_status.items() if s not in OPEN_STATUSES)
    recent = max(0, settled - (questions if dry_run else 0) - cited_n - other)
    at = called_at
    if not dry_run and (questions or findings):  # when its last step removed what it did
        stored = yield Cmd("HGET", k.retired_questions, queue)
        with contextlib.suppress(*UNREADABLE):
            at = RetiredQuestions.stored(queue, stored).at or called_at
    return RetiredQuestions(
        queue, questions, findings, open=open_, recent=recent, dry_run=dry_run, at=at,
        older_than_s=older, cited=cited_n, other=other + other_open, corrupt=corrupt,
    )  # fmt: skip


def retired_questions(ctx: OpContext) -> Operation[dict[str, RetiredQuestions]]:
    """The queues of questions ``retire_questions`` removed questions of, by name: what it
    removed of each in all, and when it last did (``at``, ms)."""
    raw = yield Cmd("HGETALL", ctx.keys.retired_questions)
    return {
        field: RetiredQuestions.stored(field, value)
        for field, value in sorted((text(f), text(v)) for f, v in dict(raw or {}).items())
    }


# How a retired question ended, as the mark its retirement leaves after minus when it went
# in its asker's ``asked`` index says it (``lua/questions_retire.lua``'s OUTCOME_MARK): the
# fraction, in quarters, to the status it had. None of them (a whole number): retired before
# the mark was kept, how it ended unknown.
RETIRED_OUTCOMES = {1: TaskStatus.COMPLETED, 2: TaskStatus.CANCELLED, 3: TaskStatus.DEAD}


def _retired_mark(score: Any) -> RetiredAsk:
    """What the mark of a retired question in an ``asked`` index (its score) says."""
    gone = -float(score)
    at = int(gone)
    return RetiredAsk(at, RETIRED_OUTCOMES.get(round((gone - at) * 4)))


def retired_asked(ctx: OpContext, task_id: str) -> Operation[dict[str, RetiredAsk]]:
    """The questions asked while working on ``task_id`` that are no longer stored: question
    id -> when ``retire_questions`` removed it (ms) and how it had ended (``RetiredAsk``),
    oldest retirement first (lineage names them), then those whose time is unknown (None,
    and how it ended too): a question the asker shared by its dedupe key (its poster's entry
    alone is marked when it goes), or removed otherwise. At most ``MAX_ANSWERS_LISTED`` in
    all, the unknown ones among the ``MAX_ANSWERS_LISTED`` questions ``answers_for`` reads.
    One round trip, two when questions are still listed."""
    tid = check_id("task", task_id)
    k = ctx.keys
    marked, listed = yield Batch(
        (
            Cmd("ZRANGEBYSCORE", k.asked(tid), "-inf", "(0", "WITHSCORES",
                "LIMIT", 0, MAX_ANSWERS_LISTED),
            Cmd("ZRANGEBYSCORE", k.asked(tid), 0, "+inf", "LIMIT", 0, MAX_ANSWERS_LISTED),
        )
    )  # fmt: skip
    pairs = (
        marked
        if marked and isinstance(marked[0], (list, tuple))
        else zip(marked[::2], marked[1::2], strict=True)
    )
    timed = sorted(((text(qid), _retired_mark(score)) for qid, score in pairs),
                   key=lambda p: p[1].at or 0)  # fmt: skip
    retired: dict[str, RetiredAsk] = dict(timed)
    room = MAX_ANSWERS_LISTED - len(retired)
    qids = [text(qid) for qid in listed or ()]
    if qids and room > 0:
        held = yield Batch(tuple(Cmd("HEXISTS", k.tasks, qid) for qid in qids))
        gone = [qid for qid, there in zip(qids, held, strict=True) if not int(there)]
        retired.update(dict.fromkeys(gone[:room], RetiredAsk(None)))
    return retired
