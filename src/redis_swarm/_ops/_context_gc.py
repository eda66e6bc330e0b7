"""The gc of context chunks: release the holds that no kept version needs any more.

A chunk lists its holders (publish tokens) and goes with its last one. A token that is not a
kept version's is journaled in the swarm's slot (``lua/_holds.lua``): a publish in flight,
from before its first chunk write until its flip, and a hold to release (a pruned version's,
a publish whose version was kept already, a publish gc gave up on). So gc never scans the
chunks, which a Redis Cluster spreads over its nodes: it takes holds from the journal,
releases them from their chunks, then tells the journal it did (only then are they
forgotten, so a gc that dies half-way leaves them for the next one).

A publish in flight is given up on only when it is older than the grace period, in the same
script step that a flip checks it is still in flight: a flip after that fails (``expired``)
and the publisher gets a Conflict, never a version with released chunks. Every flip hands
out a bounded number of due holds to its publisher, so a long-lived swarm stays flat with
nobody running ``gc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._context_records import GcReport
from .._errors import ValidationError
from .._keys import Keys
from .._protocol import Batch, Call, Cmd, OpContext, Operation
from ._context_store import text_of

__all__ = ["GC_BUDGET", "GC_GRACE_S", "Holds", "gc", "release", "release_and_forget", "took"]

# A publish in flight longer than this is given up on by gc (its flip then fails).
GC_GRACE_S = 600.0
# Digests handed out per step: what a flip gives its publisher to release, and a gc step.
GC_BUDGET = 256
# A taker has this long to release what it was handed before another one takes it again.
TAKER_MS = 60_000
# A dry run looks at this many digests at most.
PEEK_BUDGET = 100_000

Holds = dict[str, list[str]]  # holder token -> the digests of the chunks it holds


def holds_keys(keys: Keys) -> tuple[str, str, str]:
    return keys.chunk_holds, keys.holds_publishing, keys.holds_releasing


def took(reply: Sequence[Any]) -> Holds:
    """The holds in a reply's tail: per hold, token, n, n digests."""
    holds: Holds = {}
    rest = list(reply)
    while rest:
        token, n = text_of(rest[0]), int(rest[1])
        holds.setdefault(token, []).extend(text_of(d) for d in rest[2 : 2 + n])
        rest = rest[2 + n :]
    return holds


def release(keys: Keys, holds: Holds) -> Operation[tuple[int, int]]:
    """Remove each holder token from its chunks (idempotent: safe to retry); returns the
    chunks deleted (their last holder went) and their stored bytes."""
    calls = _releases(keys, holds)
    if not calls:
        return 0, 0
    return _freed((yield Batch(calls)))


def release_and_forget(ctx: OpContext, holds: Holds) -> Operation[None]:
    """Release holds handed out by the journal, then tell it so. On one server both go in
    one round trip (a pipeline runs in order: the journal forgets only after the releases);
    a cluster's pipeline runs on several nodes in no set order, so the journal goes after."""
    calls = _releases(ctx.keys, holds)
    done = _step(ctx, "take", 0, 0, list(holds))
    if ctx.settings.kind == "cluster":
        if calls:
            yield Batch(calls)
        yield done
    else:
        yield Batch((*calls, done))


def _releases(keys: Keys, holds: Holds) -> tuple[Call, ...]:
    return tuple(
        Call("chunk_release", (keys.chunk(d),), (token,))
        for token, digests in holds.items()
        for d in dict.fromkeys(digests)
    )


def _freed(replies: Sequence[Any]) -> tuple[int, int]:
    freed = [int(n) for n in replies]
    return sum(1 for n in freed if n > 0), sum(freed)


def _step(ctx: OpContext, mode: str, grace_ms: int, budget: int, done: Sequence[str]) -> Call:
    return Call(
        "context_gc",
        holds_keys(ctx.keys),
        (mode, ctx.now_arg(), grace_ms, budget, TAKER_MS, *done),
    )


def gc(
    ctx: OpContext, *, grace_s: float | None = None, dry_run: bool = False
) -> Operation[GcReport]:
    """Release every hold the journal lists as due, giving up on the publishes in flight
    for longer than ``grace_s`` (default ``GC_GRACE_S``, 10 minutes); with ``dry_run``,
    only say what that would free."""
    if grace_s is None:
        grace_s = GC_GRACE_S
    if (
        not isinstance(grace_s, int | float)
        or isinstance(grace_s, bool)
        or not 0 <= grace_s < float("inf")
    ):
        raise ValidationError(f"grace_s must be a number of seconds >= 0, not {grace_s!r}")
    grace_ms = int(grace_s * 1000)
    if dry_run:
        return (yield from _peek(ctx, grace_ms))
    reaped = released = deleted = freed = 0
    done: list[str] = []
    while True:
        reply = yield _step(ctx, "take", grace_ms, GC_BUDGET, done)
        reaped += int(reply[0])
        holds = took(reply[1:])
        if not holds:
            return GcReport(
                dry_run=False,
                publishes_given_up=reaped,
                holds_released=released,
                chunks_deleted=deleted,
                bytes_freed=freed,
            )
        n_deleted, n_bytes = yield from release(ctx.keys, holds)
        released += len(holds)
        deleted += n_deleted
        freed += n_bytes
        done = list(holds)


def _peek(ctx: OpContext, grace_ms: int) -> Operation[GcReport]:
    reply = yield _step(ctx, "peek", grace_ms, PEEK_BUDGET, ())
    holds = took(reply[1:])
    dead = set(holds)
    digests = list(dict.fromkeys(d for ds in holds.values() for d in ds))
    if not digests:
        return GcReport(True, int(reply[0]), 0, 0, 0)
    replies = yield Batch(
        tuple(
            cmd
            for d in digests
            for cmd in (Cmd("HKEYS", ctx.keys.chunk(d)), Cmd("HSTRLEN", ctx.keys.chunk(d), "data"))
        )
    )
    deleted = freed = 0
    for fields, size in zip(replies[::2], replies[1::2], strict=True):
        holders = {text_of(f)[2:] for f in fields if text_of(f).startswith("h:")}
        if fields and not holders - dead:
            deleted += 1
            freed += int(size)
    return GcReport(True, int(reply[0]), len(holds), deleted, freed)
