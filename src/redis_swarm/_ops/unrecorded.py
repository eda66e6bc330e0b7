"""Agent runs paid for that no other record of the swarm holds (a pipeline's: a worker's run
whose lease was lost, a planner stopped by a lost lease, a synthesizer run whose failure or
synthesis the core refused), kept in the swarm so that every reader, in any process, a later
run too, counts what they cost.

One hash per owner (``Keys.unrecorded_runs``: a pipeline's run), a record per run under the
key its caller names the run by once (a digest: never a lease's secret), written with HSETNX:
a path that meets the same run again, or a write sent again after its reply was lost, adds
nothing. A record holds what a reader needs and no more: the pass the run was for, what it
cost (None: its CLI said nothing), whose run it was, and the record of the pass it was run
for (``anchor``), by which a reader tells the swarm it was paid in from one emptied since,
and, where its writer says them, whether its runs failed and how many (``failed``, ``runs``:
the cost a pipeline's retirement keeps of a record of its bookkeeping; else one failed run).
Nothing else writes or expires them; ``drop_unrecorded_runs`` deletes an owner's (a
pipeline's retirement), and deleting a swarm's keys deletes them with the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._codec import UNREADABLE, dumps
from .._errors import ValidationError
from .._models import UnrecordedRun
from .._protocol import Batch, Cmd, OpContext, Operation
from .._usage import Usage
from .._validate import check_list
from ._work import check_label, text, usage_body

__all__ = [
    "MAX_ANCHOR",
    "MAX_OWNERS",
    "MAX_RUNS",
    "MAX_RUN_KEY",
    "MAX_WHAT",
    "drop_unrecorded_runs",
    "record_unrecorded_run",
    "unrecorded_runs",
]

MAX_RUN_KEY = 64  # the characters of the key a run is named by (a digest)
MAX_WHAT = 1024  # the characters of whose run it was (the report's rows)
MAX_ANCHOR = 300  # the characters of the record it was run for (``id@created_at``)
MAX_OWNERS = 1000  # the owners one ``drop_unrecorded_runs`` deletes the records of
MAX_RUNS = 1_000_000  # the agent runs one record is of (a task's failed runs, summed)


def record_unrecorded_run(
    ctx: OpContext,
    owner: str,
    key: str,
    pass_name: str,
    what: str,
    *,
    usage: Usage | None = None,
    anchor: str | None = None,
    failed: bool | None = None,
    runs: int | None = None,
) -> Operation[bool]:
    """Keep, among ``owner``'s, the run named ``key`` (see ``UnrecordedRun``): True when it
    was written now, False when a run under ``key`` was kept already (it is left as it was).
    ``failed`` and ``runs`` say whether its runs failed and how many, stored when given (a
    kept cost of a pipeline's retired bookkeeping gives them: it stands for a record of
    several runs, or of one not failed); None: one failed run, as a run no other record
    holds is read. One round trip; safe to send again."""
    check_label("the owner of unrecorded runs", owner)
    check_label("the key of an unrecorded run", key, max_chars=MAX_RUN_KEY)
    record: dict[str, Any] = {
        "pass": check_label("the pass of an unrecorded run", pass_name),
        "what": check_label("whose run it was", what, max_chars=MAX_WHAT),
    }
    if usage is not None:
        record["usage"] = usage_body(usage)
    if anchor is not None:
        record["anchor"] = check_label(
            "the anchor of an unrecorded run", anchor, max_chars=MAX_ANCHOR
        )
    if failed is not None:
        if not isinstance(failed, bool):
            raise ValidationError(f"failed is {failed!r}: give true or false (or nothing)")
        record["failed"] = failed
    if runs is not None:
        if type(runs) is not int or not 1 <= runs <= MAX_RUNS:
            raise ValidationError(
                f"runs is {runs!r}: give a whole number from 1 to {MAX_RUNS:,} (how many "
                "agent runs the record is of), or nothing (one)"
            )
        record["runs"] = runs
    written = yield Cmd("HSETNX", ctx.keys.unrecorded_runs(owner), key, dumps(record))
    return bool(written)


def unrecorded_runs(ctx: OpContext, owner: str) -> Operation[list[UnrecordedRun]]:
    """Every run ``owner`` kept (``record_unrecorded_run``), by key; one stored unreadable
    (written around the operations) is left out. One round trip."""
    check_label("the owner of unrecorded runs", owner)
    raw = yield Cmd("HGETALL", ctx.keys.unrecorded_runs(owner))
    runs = []
    for key, value in sorted((text(k), v) for k, v in dict(raw or {}).items()):
        run = _run_from(key, value)
        if run is not None:
            runs.append(run)
    return runs


def drop_unrecorded_runs(
    ctx: OpContext, owners: Iterable[str], *, dry_run: bool = False
) -> Operation[int]:
    """Delete the runs every one of ``owners`` kept (or, ``dry_run``, only count them): how
    many there were. One round trip, two without ``dry_run``."""
    named = check_list("owners", owners, of=f"at most {MAX_OWNERS:,} names")
    if len(named) > MAX_OWNERS:
        raise ValidationError(f"owners must be a list of at most {MAX_OWNERS:,} names")
    keys = [ctx.keys.unrecorded_runs(check_label("an owner", owner)) for owner in named]
    if not keys:
        return 0
    counts = yield Batch(tuple(Cmd("HLEN", key) for key in keys))
    if not dry_run:
        yield Cmd("DEL", *keys)
    return sum(int(n) for n in counts)


def _run_from(key: str, raw: Any) -> UnrecordedRun | None:
    """The run stored under ``key`` (``UnrecordedRun.stored``), or None when it cannot be
    read."""
    try:
        return UnrecordedRun.stored(key, raw)
    except UNREADABLE:
        return None
