"""Findings (a worker's structured result for a task) and syntheses (a shard's summary of a
pass, citing findings).

A report stores the finding and completes its task in one script. The first report of an
open task wins, whatever the age of its token (the work is real); a report after completion
(or cancellation) is stored too, marked superseded, and raises AlreadyCompleted: no worker's
output is ever dropped. Finding ids are made here, so a retried report never duplicates.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from .._codec import dumps
from .._errors import (
    REAPPLY_OLDER_USER,
    AlreadyCompleted,
    Conflict,
    ConnectionFailed,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from .._hints import CITES_NONE, LIST_FINDINGS
from .._keys import Keys
from .._models import Finding, Page, RetiredPass, Synthesis, Task
from .._protocol import INTERRUPTS, Batch, Call, Cmd, OpContext, Operation, reply_at_interrupt
from .._usage import LABEL_CHARS, Usage
from .._validate import MAX_WAIT_S, check_id, check_name
from . import claiming as task_ops
from ._work import (
    check_label,
    check_number,
    check_pass_written,
    check_token,
    decoded,
    encode_json,
    finding_from,
    finding_record,
    new_id,
    page,
    refuse_new_option_like,
    report_secret,
    route,
    synthesis_from,
    text,
    usage_body,
)

__all__ = [
    "findings",
    "get_finding",
    "get_synthesis",
    "report",
    "syntheses",
    "synthesize",
]

T = TypeVar("T")

MAX_SUMMARY_CHARS = 2_000
MAX_SOURCES = 10_000
_CORE = ("summary", "details", "sources", "confidence")


def _plainly_small(finding: Mapping[str, Any], max_bytes: int) -> bool:
    """Whether the finding is ASCII text values only, too short to pass ``max_bytes`` however
    its characters are escaped (at most 6 bytes each, plus quotes and separators): then it is
    JSON within the limit, and the trial encoding that would say so is skipped (most findings:
    a summary, a few lines of details)."""
    size = 2
    for key, value in finding.items():
        if type(value) is not str or not value.isascii() or not key.isascii():
            return False
        size += 6 * (len(key) + len(value)) + 6
    return size <= max_bytes


def checked_sources(sources: object) -> list[str]:
    """A finding's ``sources`` as stored: a list of non-blank strings (None: none). A string
    is refused, not read as its characters."""
    if sources is None:
        return []
    if isinstance(sources, str) or not isinstance(sources, Sequence):
        raise ValidationError(
            '"sources" must be a list of strings (urls, paths, line refs), got '
            f"{type(sources).__name__}: put a single source in a list"
        )
    for source in sources:
        if not isinstance(source, str):
            raise ValidationError(f"every source must be a string, got {type(source).__name__}")
        if not source.strip():
            raise ValidationError("a source is blank: give each a url, path or line ref")
    return list(sources)


def _finding_body(ctx: OpContext, finding: object) -> dict[str, Any]:
    """Validate a finding; return its summary, details, sources, confidence and extra."""
    if not isinstance(finding, Mapping):
        raise ValidationError(
            f"a finding must be a JSON object (a dict), got {type(finding).__name__}"
        )
    for key in finding:
        if not isinstance(key, str):
            raise ValidationError(f"finding keys must be strings, got {key!r}")
    if "usage" in finding:  # kept in extra, it would read as recorded and count nowhere
        raise ValidationError(
            'the finding holds "usage": what the run cost is no part of the finding (in it, '
            "no total would count it); give it as the report's own usage (usage= in Python, "
            "--usage on the command line, the usage argument of report_finding)"
        )
    if not _plainly_small(finding, ctx.limits.max_finding_bytes):
        encode_json(dict(finding), "the finding", ctx.limits.max_finding_bytes)
    summary = finding.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise ValidationError(
            'a finding needs a "summary": a non-empty string saying what was found'
        )
    if len(summary) > MAX_SUMMARY_CHARS:
        raise ValidationError(
            f"the summary is {len(summary):,} characters; the limit is {MAX_SUMMARY_CHARS:,}: "
            'shorten it and put the rest in "details"'
        )
    body: dict[str, Any] = {"summary": summary}
    details = finding.get("details")
    if details is not None:
        if not isinstance(details, str):
            raise ValidationError(
                f'"details" must be a string, got {type(details).__name__}: put structured '
                "data under other keys (they are kept in extra)"
            )
        body["details"] = details
    body["sources"] = checked_sources(finding.get("sources"))
    confidence = finding.get("confidence")
    if confidence is not None:
        body["confidence"] = check_number("confidence", confidence, 0, 1)
    body["extra"] = {k: v for k, v in finding.items() if k not in _CORE}
    return body


@functools.lru_cache(maxsize=1024)
def _report_keys(k: Keys, queue: str, pass_name: str | None, parent: str | None) -> tuple[str, ...]:
    """The keys of a report on a task of ``queue`` (of a pass, posted by a shard), made once
    per handle (``OpContext.keys`` is made once) and route."""
    keys = [k.tasks, k.counts, k.pass_counts, k.events]
    keys += [k.pending(queue), k.delayed(queue), k.leases(queue), k.dead(queue)]
    keys += [k.findings, k.finding_index, k.findings_by("queue", queue)]
    if pass_name is not None:
        keys.append(k.findings_by("pass", pass_name))
    if parent is not None:
        keys.append(k.findings_by("shard", parent))
    return tuple(keys)


def report(
    ctx: OpContext,
    task_id: str,
    token: str | None,
    finding: Mapping[str, Any],
    *,
    worker: str | None = None,
    model: str | None = None,
    context_version: str | None = None,
    finding_id: str | None = None,
    usage: Usage | None = None,
    claim_next: str | Sequence[str] | None = None,
    next_lease_s: float | None = None,
    wait_s: float = 0.0,
) -> Operation[Finding | tuple[Finding, Task | None]]:
    """Store ``finding`` and complete the task, atomically. Raises AlreadyCompleted (with the
    finding's id) when the task was already completed or cancelled: the finding is then kept,
    marked superseded. Pass the same ``finding_id`` to retry a report without duplicating.
    A report under a lease that ran out, the task leased again since, still completes it
    (the first report of an open task wins): the finding returned names the worker of that
    later lease in ``overtaken_by`` (its own report will be superseded), and its attempt in
    ``overtaken_attempt``, from the script's reply, at no cost (a retry that finds the
    finding stored does not say it).

    ``token`` None reports from outside any lease (a shard recording what a worker it ran
    itself found): refused with LeaseLost while a live lease holds the task. It has its own
    function, which Redis refuses to a worker's ACL user (PermissionDenied): only a shard,
    coordinator or admin user may report so (docs/security.md).

    ``claim_next`` (a queue or a list of queues): in the same script and round trip, lease the
    next task of those queues to the reporting worker as ``claim`` would (for
    ``next_lease_s``), and return ``(finding, next task or None)``. Nothing is claimed when
    the report is refused or superseded. A retry of the report with the same
    ``finding_id`` from the same process gets back the lease its first try took.

    ``wait_s`` (with ``claim_next``): when no task is claimable, wait up to ``wait_s`` for
    one, as ``claim(..., wait_s=)`` does. When this handle's last claim of those queues had
    to wait for its task (an idle swarm: every task wakes a worker), the wait and the claim
    go in the same round trip as the report (a worker's loop then costs one round trip per
    task, as a BRPOP worker's does); a refused or superseded report ends that wait at once,
    claims nothing and raises as without it. A retry with the same ``finding_id`` (the
    client's own, after a connection lost while waiting, included) gets back the lease its
    first try took, as with ``claim_next`` alone.

    A report with ``claim_next`` interrupted (its asyncio task cancelled) once sent reads
    its reply all the same and releases the next task it leased before the interrupt goes
    on, as ``claim`` does (the finding stays stored: the report ran)."""
    wait = check_number("wait_s", wait_s, 0, MAX_WAIT_S)
    if wait and claim_next is None:
        raise ValidationError("wait_s is how long to wait for the next task: pass claim_next")
    deadline = time.monotonic() + wait
    r = yield from route(ctx, task_id)
    tok = "" if token is None else check_token(token)
    claiming: tuple[tuple[str, ...], tuple[Any, ...]] = ((), ())
    if claim_next is not None and worker is None and token is None:
        raise ValidationError(
            "claim_next leases the next task to the reporting worker: pass worker= "
            "(a report without a token names no worker)"
        )
    body = {"id": "", "task_id": task_id, **_finding_body(ctx, finding)}
    fid = new_id("f-") if finding_id is None else check_id("finding", finding_id, new=True)
    body["id"] = fid
    next_secret = report_secret(fid) if claim_next is not None else ""
    if worker is not None:
        check_name("worker", worker)
        if claim_next is not None:  # (the script registers the worker it leases the next to)
            yield from refuse_new_option_like(ctx, "worker", worker)
    behind = None
    # (not behind a report without a token: a worker's is refused by the ACL before its
    # script runs, which would end the wait, and the refusal would come when the wait ends)
    if claim_next is not None and wait and worker is not None and tok:
        behind = task_ops.claim_behind_report(
            ctx, claim_next, worker, next_lease_s, deadline, task_id, fid
        )
    if behind is not None:  # the wait's own list ends it when the report does not complete
        claiming = ((behind.own_wake,), ("0", "1"))
    elif claim_next is not None:
        claiming = task_ops.claim_part(ctx, claim_next, next_lease_s, next_secret, worker)
    if model is not None:
        body["model"] = check_label("model", model, max_chars=LABEL_CHARS)
    if context_version is not None:
        body["context_version"] = check_label(
            "context_version", context_version, max_chars=LABEL_CHARS
        )
    if usage is not None:
        body["usage"] = usage_body(usage)
    q = r.queue
    keys = (*_report_keys(ctx.keys, q, r.pass_name, r.parent), *claiming[0])
    encoded = dumps(body)
    args = (
        ctx.now_arg(), ctx.limits.events_maxlen, task_id, q, tok, fid, encoded,
        worker or "", "1" if r.pass_name is not None else "0", "1" if r.parent is not None else "0",
        *claiming[1],
    )  # fmt: skip
    # (a report without a token has its own function, which a worker's ACL user may not call:
    # it completes any task no live lease holds; docs/security.md). With claim_next its reply
    # holds the next task's lease, read by an interrupted caller's shell all the same
    # (shielded), and given back below.
    script = "task_report" if tok else "task_report_unleased"
    call = Call(script, keys, args, shielded=claim_next is not None)
    try:
        if behind is None:
            outcome, raw, named, overtaken_by, *next_pair = yield call
        else:
            replies = yield Batch((call, *behind.requests))
            (outcome, raw, named, overtaken_by), next_pair = replies[0], []
    except ConnectionFailed as exc:
        # Redis may have run it, the next task's claim too (its secret, report_secret's,
        # both paths'): the caller's proof of a lease it took, as a claim's (claiming.claim).
        if next_secret:
            exc.lease_secrets = (next_secret,)
        raise
    except PermissionDenied as exc:
        if tok or FUNCTION_REFUSED not in str(exc):
            raise
        raise PermissionDenied(
            f"a report without a token (task {task_id}) is a shard's, a coordinator's or an "
            "admin's, never a worker user's (it completes any task no live lease holds): "
            f"report with the token your claim returned; {REAPPLY_OLDER_USER}. {exc}"
        ) from None
    except NotFound:
        # gone: retired with its pass (swarm retire) when the pass has a record of it (read
        # only here, not on every report)
        if r.pass_name is not None:
            record = yield Cmd("HGET", ctx.keys.retired_passes, r.pass_name)
            if record is not None:
                raise NotFound(RetiredPass.stored(r.pass_name, record).task_gone(task_id)) from None
        raise
    except INTERRUPTS as exc:
        # The finding stays (reported); the next task the reply leased goes back.
        cut = reply_at_interrupt(exc)
        if behind is None:
            next_reply, secret = None if cut is None else cut[4:], next_secret
        else:  # (the batch's replies: the report's, ..., the wait's, the claim's, ...)
            next_reply, secret = None if cut is None else cut[1 + behind.claim_at], behind.secret
        yield from task_ops.give_back(
            ctx, exc, *task_ops.leased_at_interrupt(ctx, next_reply, [secret])
        )
        if behind is not None:
            yield from task_ops.leave_waiters(
                exc, task_ops.around_wait(ctx.keys, behind.worker, behind.names)
            )
        raise
    if text(outcome) == "existing":
        stored = finding_from(raw)
    else:  # stored now: what was sent, closed as the script closed it
        meta = {"queue": q, "pass_name": r.pass_name, "shard": r.parent, "created_at": int(raw)}
        meta["worker"] = text(named) if named else None
        meta["superseded"] = text(outcome) == "superseded"
        meta["attempt"] = int(tok.partition(".")[0]) if tok else None
        if overtaken_by:  # (the later lease's worker and attempt: lua/_report.lua)
            holder, later = overtaken_by
            meta["overtaken_by"] = text(holder)
            meta["overtaken_attempt"] = None if later is None else int(later)
        stored = _sent(body, encoded, meta)
    if stored.task_id != task_id:
        raise Conflict(
            f"finding id {fid} is already used by a report on task {stored.task_id}: "
            "use a fresh finding id"
        )
    if text(outcome) == "existing":
        _refuse_another(stored, finding_from(encoded, {"task_id": task_id}))
    if stored.superseded:
        # (kept under another id than fid when a first try of this report stopped half-way
        # and the task was settled before its retry: lua/_report.lua, half_stored_copy)
        raise AlreadyCompleted(
            f"task {task_id} was already settled (completed or cancelled) when this report "
            f"arrived; the finding was kept as {stored.id}, marked superseded. Move on to the "
            "next task",
            finding_id=stored.id,
        )
    if claim_next is None:
        return stored
    # The claim goes on at once: it stopped at its cap of dropped ids (task_ops.capped), or
    # the task it leased was stored damaged (dead-lettered: task_ops.claimed); either way
    # the queues are not known empty.
    again = False
    if behind is not None:
        # Capped, the same claim is sent again alone at once (as claim does): its token, the
        # wait's, stays counted (ARGV[10] '2': woken), and a retried report finds its lease.
        claimed = replies[1 + behind.claim_at]  # (the report's reply first)
        while task_ops.capped(claimed):
            try:
                claimed = yield behind.requests[behind.claim_at]
            except ConnectionFailed as exc:
                exc.lease_secrets = (behind.secret,)  # (as the report's own, above)
                raise
            except INTERRUPTS as exc:
                taken = task_ops.leased_at_interrupt(ctx, reply_at_interrupt(exc), [behind.secret])
                yield from task_ops.give_back(ctx, exc, *taken)
                raise
        read = behind.replies_read(replies[1:], claimed)
        nxt = yield from task_ops.taken_behind(ctx, behind, read)
        again = nxt is None and bool(claimed[0])
    else:
        task_ops.note_idle(ctx, stored.worker, claim_next, next_pair)
        leased_next = []
        if next_pair[0]:
            leased_next = yield from task_ops.claimed(ctx, next_pair, [next_secret])
            again = not leased_next
        nxt = leased_next[0] if leased_next else None
        again = again or (task_ops.capped(next_pair) if next_pair else False)
        if nxt is not None and stored.worker is not None:
            ctx.dry.pop(stored.worker, None)  # tasks were waiting: its next report claims so too
    left = deadline - time.monotonic()
    if nxt is None and (again or (wait and left > 0)) and stored.worker is not None:
        got = yield from task_ops.claim(
            ctx, claim_next, worker=stored.worker, lease_s=next_lease_s, wait_s=max(0.0, left)
        )
        nxt = got if isinstance(got, Task) else None
    return stored, nxt


# How Redis's NOPERM names a function call it refused (a key it refused is not named so).
FUNCTION_REFUSED = "run the 'fcall' command"


# What a report sent again under its finding id (after a lost reply) sends alike: what the
# finding says. Not its worker (a report without a token may name none) nor what the script
# adds (times, the attempt, superseded).
_SAME_FINDING = (
    "summary", "details", "sources", "confidence", "extra", "model", "context_version", "usage",
)  # fmt: skip


def _refuse_another(stored: Finding, sent: Finding) -> None:
    """Raise Conflict when the finding stored under ``sent``'s id on its task says
    otherwise: a report of other content under a used id (it returned the stored finding,
    this one dropped). Checked only when the script found the id stored: no cost else."""
    differ = [name for name in _SAME_FINDING if getattr(stored, name) != getattr(sent, name)]
    if differ:
        raise Conflict(
            f"finding id {sent.id} holds another finding of task {stored.task_id} (its "
            f"{', '.join(differ)} differ from this report's), so this one was not stored: a "
            "finding id names one finding, and reports again only the same one (a retry "
            "returns the stored one). Report it under a new id (Swarm.new_finding_id()) or none"
        )


def _sent(body: dict[str, Any], encoded: str, meta: dict[str, Any]) -> Finding:
    """The finding a report just stored: ``body`` as sent (``encoded``), with the fields the
    script added (``meta``). Built from ``body`` itself when it holds nothing that its JSON
    would read back differently (most: a summary, details, text sources); else decoded from
    what was sent, as a read of the stored record would."""
    confidence = body.get("confidence")
    if body["extra"] or "usage" in body or type(confidence) not in (int, float, type(None)):
        return finding_from(encoded, meta)
    return finding_record({**body, **meta})


def _stored(
    key: str, kind: str, record_id: str, decode: Callable[[Any], T], missing: str
) -> Operation[T]:
    """One record of the hash ``key`` by id: NotFound saying ``missing`` when it is not
    there, CorruptRecord when it cannot be read."""
    raw = yield Cmd("HGET", key, record_id)
    if raw is None:
        raise NotFound(missing)
    return decoded(kind, record_id, decode, raw)


def get_finding(ctx: OpContext, finding_id: str) -> Operation[Finding]:
    """The finding stored under ``finding_id`` (superseded or not); NotFound when there is
    none (``findings`` lists them)."""
    fid = check_id("finding", finding_id)
    missing = f"finding {fid} does not exist: list findings {LIST_FINDINGS}"
    return (yield from _stored(ctx.keys.findings, "finding", fid, finding_from, missing))


# What ``findings`` says there is not to do with a pass it refuses (``refuse_unknown_pass``).
_NO_FINDINGS = "no finding to list"


def findings(
    ctx: OpContext,
    *,
    shard: str | None = None,
    queue: str | None = None,
    pass_name: str | None = None,
    since: int | None = None,
    cursor: str | None = None,
    limit: int = 100,
    refuse_unknown_pass: bool = False,
) -> Operation[Page[Finding]]:
    """Findings in report order (superseded ones included, flagged), filtered, a page per
    round trip; pass ``page.cursor`` back for the next page (None: no more). ``since`` is an
    epoch-ms lower bound, used with the first page.

    ``refuse_unknown_pass``: a ``pass_name`` no task was ever posted to (misspelt), or one
    retired, raises NotFound naming the passes there are, as ``wait`` does, rather than
    listing nothing as a pass whose findings are yet to come; looked for only when the first
    page comes back empty (one more round trip on that path alone)."""
    k = ctx.keys
    wanted: list[tuple[str, str, str]] = []  # (dimension, record field, value)
    if shard is not None:
        wanted.append(("shard", "shard", check_name("shard", shard)))
    if pass_name is not None:
        wanted.append(("pass", "pass_name", check_label("pass name", pass_name)))
    if queue is not None:
        wanted.append(("queue", "queue", check_name("queue", queue)))
    if wanted:
        dimension, _, value = wanted[0]
        index = k.findings_by(dimension, value)
    else:
        index = k.finding_index
    filters = [item for _, field, value in wanted[1:] for item in (field, value)]
    found = yield from page(
        ctx, (index, k.findings), cursor, limit, since, False, filters,
        lambda raw, _: finding_from(raw),
    )  # fmt: skip
    if refuse_unknown_pass and pass_name is not None and cursor is None and not found.items:
        # (claiming's helper, private: a public generator of _ops is an operation with an
        # ACL row, and this is a part of wait's and of this one)
        unknown = yield from task_ops._unknown_pass(ctx, pass_name, _NO_FINDINGS)
        if unknown is not None:
            raise NotFound(unknown)
    return found


def synthesize(
    ctx: OpContext,
    shard: str,
    pass_name: str,
    text: str,
    sources: Sequence[str],
    *,
    synthesis_id: str | None = None,
    model: str | None = None,
    usage: Usage | None = None,
    cites_none: bool = False,
    across_passes: bool = False,
) -> Operation[Synthesis]:
    """Store a synthesis of pass ``pass_name`` citing ``sources`` (finding ids), each of
    which must exist and be a finding of that pass or of no pass (of a task posted outside
    any): checked atomically with the write, so a synthesis never cites a missing finding
    (NotFound, naming them) nor another pass's (ValidationError, naming each one's pass),
    unless ``across_passes`` says it spans passes (a final report of several; the seed's
    synthesis, whose pass names are free labels: its own flow synthesises "Pass 1" from the
    findings of "Pass 1: Signal Capture"). An empty ``sources`` is refused (almost always a
    look-up of the pass's findings that found none: a mistyped pass or shard) unless
    ``cites_none`` says it is meant (a pass that found nothing; the seed's synthesis resting
    on references outside the swarm).
    ``model`` and ``usage``: the model of the agent that wrote it and what it cost, when one
    did. A ``synthesis_id`` already stored returns the stored synthesis (nothing is
    rewritten)."""
    check_name("shard", shard)
    check_label("pass name", pass_name)  # (and check_pass_written, after every other check)
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("a synthesis needs a non-empty text")
    if isinstance(sources, str) or not isinstance(sources, Sequence):
        raise ValidationError("sources must be a list of finding ids")
    cited = list(dict.fromkeys(check_id("finding", s) for s in sources))
    if len(cited) > MAX_SOURCES:
        raise ValidationError(f"a synthesis may cite at most {MAX_SOURCES:,} findings")
    sid = new_id("s-") if synthesis_id is None else check_id("synthesis", synthesis_id, new=True)
    body: dict[str, Any] = {
        "id": sid, "shard": shard, "pass_name": pass_name, "text": text, "sources": cited
    }  # fmt: skip
    if model is not None:
        body["model"] = check_label("model", model, max_chars=LABEL_CHARS)
    if usage is not None:
        body["usage"] = usage_body(usage)
    for flag, value in (("cites_none", cites_none), ("across_passes", across_passes)):
        if not isinstance(value, bool):
            raise ValidationError(f"{flag} must be True or False, got {type(value).__name__}")
    if not cited and not cites_none:
        raise ValidationError(
            f"the synthesis of pass {pass_name[:80]!r} cites no finding, so nothing was stored: "
            "a synthesis cites the findings it rests on; pass the ids it rests on as its "
            f"sources (list the pass's findings {LIST_FINDINGS}; {CITES_NONE})"
        )
    if cited and cites_none:
        raise ValidationError(
            f"cites_none=True stores a synthesis citing no finding, and sources names "
            f"{len(cited)}: leave cites_none out to cite them"
        )
    payload = encode_json(body, "the synthesis", ctx.limits.max_finding_bytes + 64 * len(cited))
    yield from check_pass_written(ctx, pass_name)
    k = ctx.keys
    keys = (
        k.findings, k.syntheses, k.synthesis_index, k.events, k.findings_by("pass", pass_name)
    )  # fmt: skip
    try:
        raw = yield Call(
            "synthesis_create",
            keys,
            (
                ctx.now_arg(),
                ctx.limits.events_maxlen,
                sid,
                payload,
                shard,
                pass_name,
                "1" if across_passes else "0",
                *cited,
            ),
        )
    except NotFound as exc:
        exc.missing = _not_stored(str(exc), cited)
        raise
    return synthesis_from(raw)


# How the synthesis_create script begins its refusal of cited findings it did not find:
# "no finding ID, ID: ..." (ids are names, so neither ", " nor ": " is in one).
_NO_FINDING = "no finding "


def _not_stored(message: str, cited: list[str]) -> tuple[str, ...]:
    """The ids of ``cited`` that synthesis_create's refusal ``message`` names, in the order
    cited: read here, where the script is called, so that no caller reads its words."""
    if not message.startswith(_NO_FINDING):
        return ()
    named = set(message.removeprefix(_NO_FINDING).partition(": ")[0].split(", "))
    return tuple(fid for fid in cited if fid in named)


def get_synthesis(ctx: OpContext, synthesis_id: str) -> Operation[Synthesis]:
    """The synthesis stored under ``synthesis_id``; NotFound when there is none
    (``syntheses`` lists them)."""
    sid = check_id("synthesis", synthesis_id)
    missing = f"synthesis {sid} does not exist: list them with swarm synth list"
    return (yield from _stored(ctx.keys.syntheses, "synthesis", sid, synthesis_from, missing))


def syntheses(
    ctx: OpContext,
    *,
    shard: str | None = None,
    pass_name: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> Operation[Page[Synthesis]]:
    """Syntheses in creation order, filtered, with a cursor like ``findings``."""
    filters: list[str] = []
    if shard is not None:
        filters += ["shard", check_name("shard", shard)]
    if pass_name is not None:
        filters += ["pass_name", check_label("pass name", pass_name)]
    k = ctx.keys
    return (
        yield from page(
            ctx, (k.synthesis_index, k.syntheses), cursor, limit, None, False, filters,
            lambda raw, _: synthesis_from(raw),
        )
    )  # fmt: skip
