"""The event log: one capped stream per swarm recording every state change.

Scripts append to it with ``emit`` (see ``lua/_prelude.lua``); this module reads it. An
event's id is its stream id (``<ms>-<seq>``): pass the last one back as ``since`` to read on.
``follow_events`` (in the shells: the one blocking loop written twice) is made of
``follow_start`` and ``follow_step``, each an ordinary operation.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

from .._codec import MAX_ISO_MS, iso, now_ms
from .._errors import PermissionDenied, SwarmError, ValidationError
from .._models import Event, EventsTrimmed, EventType, TypeFilter, type_filter, type_wanted
from .._protocol import Cmd, OpContext, Operation
from .._replies import reply_fields, reply_map
from .._validate import MAX_EVENTS, check_flag
from ._bus import text
from ._work import check_number

__all__ = ["events", "events_trimmed", "follow_start", "follow_step"]

PAGE = 1000
FOLLOW_COUNT = 500
_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
_LAST_SEQ = 2**64 - 1
# How far ahead of this machine's clock a since may be before it counts as the future (the
# server's clock, which stamps the event ids, may lead this one).
CLOCK_SLACK_MS = 60_000

Since = str | int | None


def _event(entry_id: Any, fields: Any) -> Event | None:
    data = reply_fields(fields)
    kind = data.pop("type", "")
    try:
        etype = EventType(kind)
    except ValueError:
        return None  # written by a newer version of redis-swarm: not ours to interpret
    eid = text(entry_id)
    return Event(id=eid, type=etype, at=int(eid.split("-")[0]), fields=data)


def _decode(entries: Any, flt: TypeFilter | None) -> list[Event]:
    out = []
    for entry_id, fields in entries or ():
        event = _event(entry_id, fields)
        if event is not None and type_wanted(event.type.value, flt):
            out.append(event)
    return out


def _check_since(since: object) -> Since:
    if since is None:
        return None
    if isinstance(since, bool) or not isinstance(since, str | int):
        raise ValidationError(f"since must be an event id or a time in ms, not {since!r}")
    if isinstance(since, int):
        if since < 0:
            raise ValidationError(f"since must be a time in ms >= 0, not {since}")
        return since
    if not _STREAM_ID.fullmatch(since):
        raise ValidationError(
            f"since {since[:45]!r} is not an event id (like '1717000000000-0'): pass the id "
            "of the last event you read, or a time in epoch ms"
        )
    if _past_the_last(since):
        raise ValidationError(
            f"since {since[:45]!r} is at or beyond the largest event id a stream can hold "
            f"({_LAST_SEQ}-{_LAST_SEQ}, after which Redis appends nothing): no stream could "
            "send it; pass the id of the last event you read, or a time in epoch ms"
        )
    return since


def _refuse_the_future(ctx: OpContext, since: str | int) -> Operation[None]:
    """Refuse a ``since`` (checked) after both this clock and the newest event: no event has
    such an id or time yet, so a listing from it is empty and a follow from it stays silent
    until that time comes, as if nothing happened. Past ids cost nothing; a future-looking
    one costs one read of the newest id."""
    at = since if isinstance(since, int) else _id_of(since)[0]
    now = ctx.clock() if ctx.clock is not None else now_ms()
    if at <= now + CLOCK_SLACK_MS:
        return
    newest = yield Cmd("XREVRANGE", ctx.keys.events, "+", "-", "COUNT", 1)
    newest_id = text(newest[0][0]) if newest else "0-0"
    if at <= _id_of(newest_id)[0]:
        return  # the server's clock leads this one: the events are there
    what = "a time" if isinstance(since, int) else "an event id"
    when = iso(at) if at <= MAX_ISO_MS else "after the year 9999"
    last = f"{newest_id} ({iso(_id_of(newest_id)[0])})" if newest else "none yet"
    raise ValidationError(
        f"since {str(since)[:45]!r} ({what}: {when}) is in the future "
        f"(the newest event is {last}): pass the id of an event you read or a time up to "
        "now, or leave since out to follow only the new events"
    )


def _past_the_last(stream_id: str) -> bool:
    """True for an id no stream can follow: a part over 2^64 - 1, or the last id itself
    (reading "after" it is an error in Redis)."""
    ms, _, seq = stream_id.partition("-")
    return max(int(ms), int(seq)) > _LAST_SEQ or int(ms) == int(seq) == _LAST_SEQ


def events(
    ctx: OpContext,
    since: str | int | None = None,
    types: Iterable[EventType | str] | EventType | str | None = None,
    limit: int = 1000,
    newest: bool = False,
) -> Operation[list[Event]]:
    """Events in order, oldest first: after the event id ``since`` (exclusive), or from the
    time ``since`` in epoch ms (inclusive), or from the oldest kept; at most ``limit``, the
    first ones, or with ``newest`` the last ones (what just happened, as ``tail`` shows). A
    ``since`` after both this clock and the newest event is refused (ValidationError): no
    stream sent it, and reading from it would find nothing until that time came."""
    start = _check_since(since)
    flt = type_filter(types)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_EVENTS:
        raise ValidationError(f"limit must be between 1 and {MAX_EVENTS}, not {limit!r}")
    check_flag("newest", newest)
    if start is not None:
        yield from _refuse_the_future(ctx, start)
    bound = "-" if start is None else f"({start}" if isinstance(start, str) else str(start)
    # Oldest first reads forward from the bound; newest reads back from the end to it.
    cursor, end = ("+", bound) if newest else (bound, "+")
    command = "XREVRANGE" if newest else "XRANGE"
    out: list[Event] = []
    while len(out) < limit:
        count = PAGE if flt is not None else min(PAGE, limit - len(out))
        entries = yield Cmd(command, ctx.keys.events, cursor, end, "COUNT", count)
        out.extend(_decode(entries, flt))
        if len(entries) < count:
            break
        cursor = "(" + text(entries[-1][0])
    return out[:limit][::-1] if newest else out[:limit]


def _id_of(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def events_trimmed(ctx: OpContext, since: str | int) -> Operation[EventsTrimmed | None]:
    """Whether events after ``since`` (as for ``events``) were trimmed from the capped stream
    (it keeps the newest ``events_maxlen``): then a read from ``since`` silently starts at
    the oldest kept. None when none were, or when this user may not ask (XINFO: a user made
    before this operation existed; ``swarm acl --apply`` again). One round trip (a ``since``
    in the future is refused, as ``events`` refuses it)."""
    start = _check_since(since)
    if start is None:  # a read from the oldest kept misses nothing it could still read
        raise ValidationError("since must be an event id or a time in ms, not None")
    yield from _refuse_the_future(ctx, start)
    try:
        info = reply_map((yield Cmd("XINFO", "STREAM", ctx.keys.events)))
    except PermissionDenied:
        return None
    except SwarmError as exc:
        if type(exc) is SwarmError and "no such key" in str(exc):
            return None  # no event yet: none trimmed
        raise
    first = info.get("first-entry")
    if not first:
        return None
    oldest = text(first[0])
    # The first id a read from ``start`` can give: from a time, that ms's first; after an
    # event id, the next one (ids are dense within their ms).
    ms, seq = (start, 0) if isinstance(start, int) else _id_of(start)
    first_read = (ms, seq) if isinstance(start, int) else (ms, seq + 1)
    if _id_of(oldest) <= first_read:
        return None  # the stream still holds everything from there on
    kept = ctx.limits.events_maxlen
    added = info.get("entries-added")
    if added is not None:  # Redis >= 7: the stream counts every entry it was given
        # Trimming removes the oldest entries (the events stream is never XDELed), all before
        # the oldest kept; max-deleted-entry-id counts only XDEL, not trimming.
        if int(added) <= int(info.get("length", 0)):
            return None
        return EventsTrimmed(since=start, oldest=oldest, kept=kept)
    # Redis 6.2 counts no additions; MAXLEN ~ trims whole nodes only, leaving at least the
    # cap: a stream shorter than it was never trimmed.
    if int(info.get("length", 0)) < kept:
        return None
    return EventsTrimmed(since=start, oldest=oldest, kept=kept, certain=False)


def follow_start(ctx: OpContext, since: str | int | None = None) -> Operation[str]:
    """The stream id to follow from: the newest event when ``since`` is None (only new
    events follow), else ``since`` as for ``events`` (one in the future refused)."""
    start = _check_since(since)
    if start is not None:
        yield from _refuse_the_future(ctx, start)
    if isinstance(start, str):
        return start
    if isinstance(start, int):
        return f"{start - 1}-{_LAST_SEQ}" if start > 0 else "0-0"
    newest = yield Cmd("XREVRANGE", ctx.keys.events, "+", "-", "COUNT", 1)
    return text(newest[0][0]) if newest else "0-0"


def last_event_id(ctx: OpContext) -> Operation[str]:
    """The id of the newest event ("0-0" when there is none): following from it yields only
    what happens next, with nothing missed in between."""
    return (yield from follow_start(ctx, None))


def follow_deadline(block_s: float, timeout_s: float | None) -> float | None:
    """The monotonic time a follow with ``timeout_s`` ends at (None: never), once its waits
    are checked."""
    check_number("block_s", block_s, 0.001, 86_400)
    if timeout_s is None:
        return None
    return time.monotonic() + check_number("timeout_s", timeout_s, 0, 10 * 365 * 86_400)


def next_block(block_s: float, deadline: float | None) -> float | None:
    """How long the next wait of a follow may block: ``block_s``, cut to what is left before
    the deadline; None once it has passed (the follow ends)."""
    if deadline is None:
        return block_s
    left = deadline - time.monotonic()
    return None if left <= 0 else min(block_s, max(left, 0.001))


def follow_step(
    ctx: OpContext, cursor: str, flt: TypeFilter | None, block_s: float
) -> Operation[tuple[list[Event], str]]:
    """Wait up to ``block_s`` for events after ``cursor``; returns them and the new cursor."""
    # Stay under the socket timeout, or the wait would look like a dead connection.
    block_ms = max(1, int(min(block_s, ctx.settings.socket_timeout - 1.0) * 1000))
    reply = yield Cmd(
        "XREAD", "COUNT", FOLLOW_COUNT, "BLOCK", block_ms, "STREAMS", ctx.keys.events, cursor
    )
    if not reply:
        return [], cursor
    # RESP2: [[stream, entries]]; RESP3: {stream: [entries]}
    streams = [v[0] for v in reply.values()] if isinstance(reply, dict) else [r[1] for r in reply]
    entries = [e for stream in streams for e in stream]
    if not entries:
        return [], cursor
    return _decode(entries, flt), text(entries[-1][0])
