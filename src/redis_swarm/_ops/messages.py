"""Messages: per-agent inboxes, broadcast, and typed requests (synthesis).

An inbox is a stream per agent; a broadcast goes to one capped stream that every agent reads
from its own cursor. Reading with ``ack`` consumes what was read, atomically, so the next
read returns only newer messages; a read whose reply is lost (and is retried) returns the
same batch again rather than losing it (see ``lua/inbox_read.lua``), and a read interrupted
before its caller got its batch (a cancelled task, Ctrl-C) gives it back. A reader that must
never lose what it did not show (a hook, a session that may restart) peeks, shows, and then
``mark_read`` through the last message shown: its durable cursor (in Redis) moves only then,
so a restarted reader sees exactly what it had not been shown. ``inbox(wait_s=...)`` blocks
on the event stream until a message arrives (or the agent leaves). ``message_status`` tells
a sender whether its message was read. ``get_message`` shows one message an agent received,
by id, read or not, marking nothing: an inbox keeps its newest ``READ_KEPT`` read messages
for it (a reader that showed a message cut can point there), the broadcast stream its
newest ``BROADCAST_MAXLEN``. Sending to an agent that is not registered is an
error, never a phantom inbox; a full inbox (an agent that never reads) refuses new messages
rather than dropping old ones.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Mapping
from typing import Any

from .._codec import UNREADABLE, loads
from .._durability import Repair, repair_cli
from .._errors import (
    BroadcastsTrimmed,
    Conflict,
    CorruptRecord,
    NotFound,
    PayloadTooLarge,
    SwarmError,
    ValidationError,
)
from .._hints import CHECK_MESSAGE_ID
from .._models import (
    SYNTHESIS_REQUEST_KIND,
    EventType,
    Inbox,
    Message,
    MessageStatus,
    event_order,
)
from .._protocol import INTERRUPTS, Batch, Call, Cmd, Notice, OpContext, Operation
from .._replies import reply_fields
from .._validate import MAX_READ, MAX_WAIT_S, READ_DEFAULT, check_agent, check_id, check_name
from ._bus import check_data, new_id, text
from ._stream_health import MAX_STREAM_ID
from ._work import await_events, block_chunk_s, check_label, check_number, check_pass_written

__all__ = [
    "BROADCAST_MAXLEN",
    "INBOX_LIMIT",
    "MAX_READ",
    "MESSAGE_INDEX_MAX",
    "READ_DEFAULT",
    "READ_KEPT",
    "Inbox",
    "broadcast",
    "get_message",
    "give_back_inbox",
    "inbox",
    "mark_read",
    "message_status",
    "request_synthesis",
    "send",
]

# How the id of each read of an inbox begins (``give_back_inbox`` takes one back).
READ_ID_PREFIX = "r-"
# Unread messages an inbox may hold before sends to it are refused.
INBOX_LIMIT = 10_000
# Broadcasts kept (approximately); an agent that falls further behind misses the oldest.
BROADCAST_MAXLEN = 10_000
# Read messages an inbox keeps (its newest), so that get_message can show one again.
READ_KEPT = 100
# Messages whose read status a sender can ask for (the newest; older ones are forgotten).
MESSAGE_INDEX_MAX = 100_000
_SEQ = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
# A seq without its -N (the stream id's time alone): no message id is all digits (they are
# m-...), so it is that seq, read as its millisecond's first message (-0): never past it.
# The largest part (ms, or seq) of a stream id.
_STREAM_ID_PART_MAX = int(MAX_STREAM_ID.partition("-")[0])
_STREAM_ID = re.compile(r"([0-9]+)-([0-9]+)", re.ASCII)
_DIGITS = re.compile(r"[0-9]*", re.ASCII)
_SEQ_TIME = re.compile(r"[0-9]{1,20}")
# The largest part (ms, or seq) of a stream id.
_STREAM_ID_PART_MAX = int(MAX_STREAM_ID.partition("-")[0])


def _send(
    ctx: OpContext,
    to: str,
    body: str,
    *,
    sender: str | None,
    kind: str,
    data: Mapping[str, Any] | None,
    pass_name: str = "",
) -> Operation[Message]:
    if sender is not None:
        check_agent("sender", sender)
    kind = check_name("message kind", kind, max_len=64)
    if not isinstance(body, str):
        raise ValidationError(f"the message body must be a string, not {type(body).__name__}")
    if not body.strip():  # (an unset variable, a producer that printed nothing)
        raise ValidationError(
            "the message is empty: give its text (with data attached, say what it is)"
        )
    limit = ctx.limits.max_message_bytes
    encoded = check_data("message data", data, limit)
    size = len(body.encode(errors="surrogatepass")) + len(encoded.encode())
    if size > limit:
        raise PayloadTooLarge(
            f"the message is {size:,} bytes (body and data); the limit is {limit:,} "
            "(the swarm's message limit): publish big content as a context and send its owner"
        )
    keys = ctx.keys
    message_id = new_id("m-")
    stream = keys.broadcast if to == "*" else keys.inbox(to)
    seq, created, counted = yield Call(
        "message_send",
        (keys.agents, stream, keys.events, keys.cursors, keys.messages, keys.message_order),
        (
            to,
            message_id,
            sender or "",
            kind,
            body,
            encoded,
            ctx.now_arg(),
            INBOX_LIMIT,
            BROADCAST_MAXLEN,
            ctx.limits.events_maxlen,
            pass_name,
            MESSAGE_INDEX_MAX,
        ),
    )
    return Message(
        id=message_id,
        sender=sender,
        to=to,
        kind=kind,
        body=body,
        data=loads(encoded) if encoded else None,
        created_at=int(created),
        seq=text(seq),
        # (the readers message_send counted: a broadcast's sender is told at once when it
        # reached nobody, ``Message.unreached``)
        receivers=int(counted) if text(counted).isdigit() else None,
    )


def send(
    ctx: OpContext,
    to: str,
    body: str,
    *,
    sender: str | None = None,
    kind: str = "text",
    data: Mapping[str, Any] | None = None,
) -> Operation[Message]:
    """Put a message in a registered agent's inbox (NotFound if it is not registered)."""
    to = check_agent("recipient agent", to)
    return (yield from _send(ctx, to, body, sender=sender, kind=kind, data=data))


def broadcast(
    ctx: OpContext,
    body: str,
    *,
    sender: str | None = None,
    kind: str = "text",
    data: Mapping[str, Any] | None = None,
) -> Operation[Message]:
    """Send a message to every agent (each reads it once, from its own cursor). Its
    ``receivers``: how many agents were registered when it was sent, its sender aside (those
    that receive it; one registering later does not); with none, ``unreached`` says so."""
    return (yield from _send(ctx, "*", body, sender=sender, kind=kind, data=data))


def request_synthesis(
    ctx: OpContext,
    shard: str,
    pass_name: str,
    instructions: str,
    *,
    sender: str | None = None,
) -> Operation[Message]:
    """Ask a shard to synthesise a pass: a ``synthesis_request`` message carrying
    ``pass_name`` and ``instructions``, plus a ``synthesis.requested`` event."""
    shard = check_agent("shard agent", shard)
    check_label("pass name", pass_name)
    if not isinstance(instructions, str):
        raise ValidationError("instructions must be a string")
    yield from check_pass_written(ctx, pass_name)  # (as a pass's tasks are posted with it)
    body = f"Synthesize the findings of {pass_name}." + (
        f"\n\n{instructions}" if instructions else ""
    )
    data = {"pass_name": pass_name, "instructions": instructions}
    return (
        yield from _send(
            ctx,
            shard,
            body,
            sender=sender,
            kind=SYNTHESIS_REQUEST_KIND,
            data=data,
            pass_name=pass_name,
        )
    )


# The one key of the data shown for a message whose data cannot be decoded (an XADD around
# redis-swarm): the message is shown, its data marked so, and the inbox's others with it; one
# bad entry must not block an agent's whole inbox.
UNREADABLE_DATA = "unreadable"


def _message(seq: str, fields: dict[str, str]) -> Message:
    at = fields.get("at", "0")
    return Message(
        id=fields.get("id", ""),
        sender=fields.get("from") or None,
        to=fields.get("to", ""),
        kind=fields.get("kind", "text"),
        body=fields.get("body", ""),
        data=_data(fields["data"]) if fields.get("data") else None,
        created_at=int(at) if at.isdigit() else 0,  # (0: unknown, as one without any)
        seq=seq,
    )


def _data(raw: str) -> Any:
    try:
        return loads(raw)
    except UNREADABLE as exc:
        return {
            UNREADABLE_DATA: f"this message's data is stored corrupt ({type(exc).__name__}: "
            f"{str(exc)[:120]}): something wrote it around redis-swarm; ask its sender again"
        }


# What inbox_read answers, before reading or writing anything, when a cursor field of the
# agent holds what redis-swarm never writes there: DAMAGED, the field, its value.
_DAMAGED = "damaged"


def _repair(ctx: OpContext) -> Repair:
    """The redis-cli command that repairs a record written around redis-swarm, on the swarm's
    server (``repair_cli``: the role of the agent that met the damage is not known here, a
    worker most often, which may not: as an admin or shard user, said so)."""
    return repair_cli(ctx.settings)


def _damaged_cursor(ctx: OpContext, agent: str, field: str, value: str) -> CorruptRecord:
    """The CorruptRecord of ``agent``'s cursor ``field`` (in the cursors hash) holding
    ``value``: which it is, the repair, and what the repair costs."""
    # (quoted: a field holds '|', which a shell takes for a pipe)
    key, quoted = shlex.quote(ctx.keys.cursors), shlex.quote(field)
    repair_by = _repair(ctx)
    cli = repair_by.cli
    if field == agent:
        what = "broadcast cursor"
        repair = (
            f"{cli}HDEL {key} {quoted} (its broadcasts since it registered, of the newest "
            f"{BROADCAST_MAXLEN:,} kept, read unread again: some are shown twice)"
        )
    elif field == f"{agent}|inbox":
        what = "inbox cursor"
        repair = (
            f"{cli}HDEL {key} {quoted} {shlex.quote(agent + '|pending')} (every "
            "message its inbox holds reads unread again: the newest "
            f"{READ_KEPT} read ones it keeps are shown twice)"
        )
    elif field == f"{agent}|pending":
        what = "record of its read not yet committed"
        repair = (
            f"{cli}HDEL {key} {quoted} (the messages of its last acknowledged read, if not "
            "committed yet, read unread again: shown twice at most)"
        )
    else:
        what = "record of its last batch committed"
        repair = (
            f"{cli}HDEL {key} {quoted} (no message is read again; only that batch, "
            "and the give-back last made, can no longer be given back)"
        )
    return CorruptRecord(
        f"the {what} of {agent}, field {field!r} of {ctx.keys.cursors}, holds "
        f"{value[:60]!r}, not what redis-swarm writes there: something wrote it around "
        f"redis-swarm. Nothing was read or marked; repair it {repair_by.by}: "
        f"{repair}, then read again",
        record_id=field,
    )


_TRIMMED = "trimmed"  # (inbox_read's reply when broadcasts were trimmed unread: reply_of)


def _gap(agent: str, reply: Any) -> tuple[Any, str | None]:
    """An inbox_read reply's entries, and the words saying broadcasts after ``agent``'s
    cursor were trimmed before it was shown them (None when none was)."""
    if not (reply and isinstance(reply[0], bytes | str) and text(reply[0]) == _TRIMMED):
        return reply, None
    newest, oldest = text(reply[2]), text(reply[3])
    return reply[4], (
        f"broadcasts {agent} had not read, through {newest}, were trimmed before it read "
        f"them (a swarm keeps its newest {BROADCAST_MAXLEN:,}; the oldest kept is {oldest}): "
        f"{agent} never gets them; read more often, or ask their senders to send what "
        "matters again"
    )


def _checked(ctx: OpContext, agent: str, reply: Any) -> Any:
    """``reply`` of inbox_read, unless it says a cursor is damaged (the CorruptRecord)."""
    if reply and isinstance(reply[0], bytes | str) and text(reply[0]) == _DAMAGED:
        raise _damaged_cursor(ctx, agent, text(reply[1]), text(reply[2]))
    return reply


def _check_cursors(ctx: OpContext, cursors: Mapping[str, str], agent: str) -> None:
    """The CorruptRecord of the first cursor field of ``agent`` a status would misread (the
    shapes inbox_read checks: ``cursor_ok``), if any."""
    for field in (agent, f"{agent}|inbox", f"{agent}|pending", f"{agent}|gap"):
        value = cursors.get(field)
        if value is not None and not cursor_ok(field, value):
            raise _damaged_cursor(ctx, agent, field, value)


def _stream_id_ok(value: str) -> bool:
    """A stream id as a stream holds it: ``MS-SEQ``, no leading zeros, each part at most
    ``MAX_STREAM_ID``'s (lua/inbox_read.lua's ``sid_ok``, which a read checks its cursors
    with: these checks are its words in Python, for message_status and the doctor)."""
    match = _STREAM_ID.fullmatch(value)
    return match is not None and all(
        (len(part) == 1 or part[0] != "0") and int(part) <= _STREAM_ID_PART_MAX
        for part in match.groups()
    )


def _stream_id_or_none_ok(value: str) -> bool:
    return value == "-" or _stream_id_ok(value)


def cursor_ok(field: str, value: str) -> bool:
    """Whether a field of the read cursors hash (``Keys.cursors``) holds what its reads take:
    ``AGENT`` and ``AGENT|inbox`` a stream id, ``AGENT|pending`` 'READID LAST_INBOX
    LAST_BROADCAST N_READ', ``AGENT|orphan`` 'READID START_INBOX LAST_INBOX START_BROADCAST
    LAST_BROADCAST [GIVEN]' (the ids '-' for none), ``AGENT|gap`` 'FROM TO' (broadcasts its
    cursor passed trimmed: lua/inbox_read.lua)."""
    _, sep, suffix = field.rpartition("|")
    if not sep or suffix == "inbox":
        return _stream_id_ok(value)
    parts = value.split(" ")
    if suffix == "pending":
        return (
            len(parts) == 4 and parts[0] != "" and parts[3].isascii() and parts[3].isdigit()
            and all(_stream_id_or_none_ok(p) for p in parts[1:3])
        )  # fmt: skip
    if suffix == "gap":
        return len(parts) == 2 and all(_stream_id_ok(p) for p in parts)
    if suffix == "orphan":
        return (
            len(parts) in (5, 6) and all(parts)
            and all(_stream_id_or_none_ok(p) for p in parts[1:5])
        )  # fmt: skip
    return True  # (a field no read takes)


def index_entry_ok(entry: str) -> bool:
    """Whether an entry of the message index (``Keys.messages``) reads as message_status and
    mark_read read it (``_index_entry``): a recipient, a stream id, a time, a sender (none:
    ""), a count of readers, and copies at stream ids."""
    to, seq, at, _, counted, copies = _index_entry(entry)
    loose = [token for token in text(entry).split(" ")[4:] if token and "=" not in token]
    return (
        bool(to) and _stream_id_ok(seq) and bool(_DIGITS.fullmatch(at))
        and loose == ([counted] if counted else []) and bool(_DIGITS.fullmatch(counted))
        and all(agent and _stream_id_ok(copy) for agent, copy in copies.items())
    )  # fmt: skip


def _entry(
    ctx: OpContext, message_id: str, entry: Any
) -> tuple[str, str, str, str, str, dict[str, str]]:
    """``_index_entry`` of message ``message_id``'s entry, or the CorruptRecord that names it
    and its repair when it is not of that shape (written around redis-swarm)."""
    if not index_entry_ok(text(entry)):
        repair = _repair(ctx)
        raise CorruptRecord(
            f"message {message_id}'s entry in the message index ({ctx.keys.messages}) holds "
            f"{text(entry)[:60]!r}, not what redis-swarm writes there: something wrote it "
            "around redis-swarm, so whether it was read cannot be said; repair it "
            f"{repair.by}: {repair.cli}HDEL {shlex.quote(ctx.keys.messages)} "
            f"{shlex.quote(message_id)} (the message is then unknown to message_status; its "
            "copies in inboxes stay)",
            record_id=message_id,
        )
    return _index_entry(entry)


def _read_call(
    ctx: OpContext, agent: str, mode: str, arg: str, limit: int = 1, *, check: bool = False
) -> Call:
    """The ``inbox_read`` call; ``check``: (mode '2') ``arg`` must be the seq of a message
    ``agent`` receives."""
    keys = ctx.keys
    return Call(
        "inbox_read",
        (keys.agents, keys.inbox(agent), keys.broadcast, keys.cursors, keys.events, keys.messages),
        (
            agent,
            limit,
            mode,
            arg,
            READ_KEPT,
            "1" if check else "0",
            ctx.limits.events_maxlen,
            ctx.now_arg(),
        ),
        # an acknowledged read's reply is read even when its caller is interrupted meanwhile,
        # so that the withdrawal that follows (_give_back) runs after it on the server
        shielded=mode == "1",
    )


def inbox(
    ctx: OpContext,
    agent: str,
    ack: bool = True,
    limit: int = READ_DEFAULT,
    wait_s: float = 0.0,
) -> Operation[Inbox]:
    """The agent's oldest unread messages (its own and broadcasts), in the order sent: at
    most ``limit`` (1 to ``MAX_READ``); the result's ``more`` says whether others wait.

    ``ack=True`` consumes them (the next call returns only newer ones); ``ack=False`` peeks
    (then ``mark_read`` through the last one shown). With ``wait_s``, an empty inbox is
    waited on, blocking on the event stream, until a message arrives or ``wait_s`` passes
    (then the result is empty); an agent deregistered or swept meanwhile ends the wait at
    once with NotFound.

    An acknowledged read interrupted before it returns (its asyncio task cancelled, Ctrl-C)
    gives back what it took, before the interrupt goes on: the next read returns those
    messages again (unless another reader of the inbox took a batch in that instant).

    Broadcasts after the agent's cursor trimmed before it read them (it fell more than
    ``BROADCAST_MAXLEN`` behind) are said: the result's ``trimmed``, and a ``BroadcastsTrimmed``
    notice in the same words (``Notice``: a warning at the caller's line; made an error by
    a warnings filter, the read gives back what it took and raises it)."""
    agent = check_agent("agent id", agent)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_READ:
        # (a bool is an int to Python, not to Redis: refused here, not by the server)
        raise ValidationError(f"limit must be a number between 1 and {MAX_READ}, not {limit!r}")
    wait = check_number("wait_s", wait_s, 0, MAX_WAIT_S)
    deadline = time.monotonic() + wait
    mode = "1" if ack else "0"
    # A peek reads one message more than it returns, which says whether more wait; an
    # acknowledged read must take exactly what it returns, so it asks afterwards.
    count = limit if ack else limit + 1
    gone = {EventType.AGENT_LEFT.value, EventType.AGENT_STALE.value}

    def wakes_me(fields: Mapping[str, str]) -> bool:
        kind = fields.get("type")
        if kind in gone:  # the read that follows fails at once: not registered
            return fields.get("agent") == agent
        if kind != EventType.MESSAGE_SENT.value:
            return False
        to = fields.get("to")
        return to == agent or (to == "*" and fields.get("from") != agent)

    # The acknowledged read whose batch the caller does not have yet (None: none taken):
    # the next read would commit it, so an interrupt before this returns gives it back.
    held: str | None = None
    try:
        while True:
            rid = new_id(READ_ID_PREFIX)
            read = _read_call(ctx, agent, mode, rid, count)
            held = rid if ack else None
            if wait <= 0:
                entries, trimmed = _gap(agent, _checked(ctx, agent, (yield read)))
                break
            # The last event id is read with the inbox: a message sent after it is seen by
            # XREAD.
            last, entries = yield Batch(
                (Cmd("XREVRANGE", ctx.keys.events, "+", "-", "COUNT", 1), read)
            )
            entries, trimmed = _gap(agent, _checked(ctx, agent, entries))
            remaining = deadline - time.monotonic()
            if entries or remaining <= 0:
                break
            held = None  # (it took nothing to give: the wait that follows is cut alone)
            last_id = text(last[0][0]) if last else "0-0"
            yield from await_events(ctx, last_id, min(remaining, block_chunk_s(ctx)), wakes_me)
        messages = [_message(text(seq), reply_fields(fields)) for seq, fields in entries[:limit]]
        taken = rid if ack and messages else None
        if trimmed is not None:  # (said by the shell, as every notice: ``Notice``)
            raised = yield Notice((BroadcastsTrimmed(trimmed),))
            if raised is not None:  # (a warnings filter's error: what was taken goes back)
                if taken is not None:
                    yield from _give_back(ctx, agent, taken, raised)
                raise raised
        if not ack or len(messages) < limit:
            return Inbox(messages, more=len(entries) > limit, read_id=taken, trimmed=trimmed)
        # A peek after the acknowledged read, under its read id: it looks past the batch,
        # which it leaves pending (the next read commits it), and finds whether more wait.
        try:
            after, _ = _gap(
                agent, _checked(ctx, agent, (yield _read_call(ctx, agent, "0", rid, 1)))
            )
        except SwarmError:  # (the agent left meanwhile; the server went away): the batch stands
            after = []
        return Inbox(messages, more=bool(after), read_id=taken, trimmed=trimmed)
    except INTERRUPTS as exc:
        if held is not None:
            yield from _give_back(ctx, agent, held, exc)
        raise


def give_back_inbox(ctx: OpContext, agent: str, read_id: str) -> Operation[bool]:
    """Make the messages of ``agent``'s acknowledged read ``read_id`` (its ``Inbox.read_id``)
    unread again, for a caller that could not hand them on (a face whose request was
    cancelled once the read had run): the next read returns them. True when they were
    given back, by this call or by one before it with the same ``read_id`` (a retry, its
    reply lost, answers as the first try). One round trip. (``inbox`` does it itself when
    it is interrupted before it returns.)

    An inbox can give back its pending read (the next acknowledged read, or a
    ``mark_read``, commits it; a peek does not) and the last one such a commit took as read.
    A batch another read committed already (that last one) comes back as copies, each sent
    as a message is (its own seq in the message order, a ``message.sent`` event that wakes
    a waiting reader); the message's id names its copy from then on, for ``message_status``,
    ``mark_read`` and ``get_message`` (``lua/inbox_read.lua``). Conflict for any other read
    id: one committed two reads back or earlier (its messages stay read), or no
    acknowledged read of this inbox that took messages."""
    agent = check_agent("agent id", agent)
    if not check_id("read", read_id).startswith(READ_ID_PREFIX):
        raise ValidationError(
            f"{read_id!r} is not a read id: pass the read_id of the Inbox an acknowledged "
            f"read returned (it begins {READ_ID_PREFIX})"
        )
    if not (yield from _withdraw(ctx, agent, read_id)):
        raise Conflict(
            f"the read {read_id} of {agent}'s inbox cannot be given back: it is neither "
            "the inbox's pending read nor the last one a later read committed (an inbox "
            "keeps only those two), so its messages stay read, or it took none. get_message "
            "shows each of them again by id; a reader that may not get to hand its "
            "messages on peeks (ack=False) and calls mark_read once they are shown"
        )
    return True


def _withdraw(ctx: OpContext, agent: str, read_id: str) -> Operation[bool]:
    """inbox_read's mode '3': whether ``read_id``'s messages are unread again (now, or by
    an earlier give-back of it); False when the inbox keeps no such read."""
    reply = _checked(ctx, agent, (yield _read_call(ctx, agent, "3", read_id)))
    return bool(reply) and int(reply[0]) == 1


def _give_back(ctx: OpContext, agent: str, rid: str, interrupt: BaseException) -> Operation[None]:
    """Withdraw the acknowledged read ``rid`` of ``agent``, cut by ``interrupt`` before its
    caller got its batch (``give_back_inbox``; a read cut before it ran took nothing: there
    is nothing to give back). A failure to is noted on the interrupt, which goes on either
    way."""
    from .ask import _add_note  # (loaded only when a read is cut)

    try:
        yield from _withdraw(ctx, agent, rid)
    except SwarmError as failed:
        _add_note(
            interrupt,
            f"the inbox read of {agent} was interrupted and could not give back what it took "
            f"({failed}): those messages count as read; get_message shows them by id",
        )


def mark_read(ctx: OpContext, agent: str, through: str) -> Operation[bool]:
    """Move the agent's read cursors through ``through``, the last message shown to it: its
    ``seq``, or its id (one more round trip, to find its seq): its inbox up to there is
    consumed, its broadcasts up to there passed; messages sent after it stay unread. A seq
    without its ``-N`` (``1700000000000``) is taken as ``1700000000000-0``, the first message
    sent in that millisecond.

    True when messages through it were unread (they are read now); False when the agent had
    read through it already: cursors never move back, so marking again, or an older
    message, changes nothing.

    NotFound for an agent not registered, an unknown id, one sent to another agent, or a
    seq that is no message the agent receives (one of its inbox, or a broadcast) while
    messages through it are unread: a seq past the newest message, or another agent's,
    would mark read messages the agent was never shown."""
    agent = check_agent("agent id", agent)
    if not isinstance(through, str):
        raise ValidationError(
            f"cannot mark read through {through!r}: pass the id of the last message shown "
            "(such as m-0123abcd) or its seq (a stream id such as 1700000000000-0)"
        )
    given = through
    if _SEQ_TIME.fullmatch(through) or _SEQ.fullmatch(through):
        # as a stream holds it (no leading zeros; each part at most MAX_STREAM_ID's)
        ms, _, seq = through.partition("-")
        parts = (int(ms), int(seq or 0))
        if max(parts) > _STREAM_ID_PART_MAX:
            raise _not_received(agent, given)
        through = "{}-{}".format(*parts)
        check = True
    else:
        through = yield from _seq_of(ctx, agent, check_name("message id", through, max_len=64))
        check = False
    reply = _checked(ctx, agent, (yield _read_call(ctx, agent, "2", through, check=check)))
    outcome = text(reply[0])
    if outcome == "foreign":
        raise _not_received(agent, given)
    return outcome == "marked"


def _not_received(agent: str, seq: str) -> NotFound:
    return NotFound(
        f"no message {agent} receives has the seq {seq}: nothing was marked read (a seq past "
        "the newest message, or another agent's, would mark read messages it was never "
        f"shown); pass the id or seq of the last message shown to {agent}, one of its inbox "
        f"or a broadcast (swarm msg inbox {agent} --peek lists its unread ones)"
    )


def _index_entry(entry: Any) -> tuple[str, str, str, str, str, dict[str, str]]:
    """A message's entry in the index kept for message_status: ``TO SEQ AT SENDER COUNTED``
    (COUNTED: a broadcast's readers when it was sent), then a broadcast's ``AGENT=SEQ`` for
    each agent that has a copy of it in its inbox (a give-back's: ``lua/inbox_read.lua``; a
    direct message's copy takes its SEQ instead). Returns them, the copies as a dict."""
    parts = text(entry).split(" ")
    to, seq, at, sender = [*parts, "", "", ""][:4]
    # (COUNTED is absent from an entry stored before it was: its copies' tokens come fifth)
    rest = parts[4:]
    counted = rest[0] if rest and "=" not in rest[0] else ""
    copies = dict(token.partition("=")[::2] for token in rest if "=" in token)
    return to, seq, at, sender, counted, copies


def _seq_of(ctx: OpContext, agent: str, message_id: str) -> Operation[str]:
    """The seq of message ``message_id`` as ``agent`` receives it, one to ``agent`` or a
    broadcast (the copy of it given back to ``agent``'s inbox, if any). NotFound for an
    agent not registered, and for a broadcast sent before it registered (it never receives
    it: ``_receivers``), rather than "read already"."""
    entry, record = yield Batch(
        (Cmd("HGET", ctx.keys.messages, message_id), Cmd("HGET", ctx.keys.agents, agent))
    )
    if record is None:
        raise NotFound(
            f"agent {agent} is not registered: nothing was marked read; check the id with "
            "swarm agents"
        )
    if entry is None:
        raise _unknown(message_id)
    to, seq, at, _, _, copies = _entry(ctx, message_id, entry)
    if to not in (agent, "*"):
        raise NotFound(
            f"message {message_id} was sent to {to}, not to {agent}: mark it read as {to}, "
            "its recipient"
        )
    if to == "*" and agent not in copies:
        try:
            since = int(loads(record).get("registered_at") or 0)
        except (ValueError, AttributeError):
            since = 0
        if not (yield from _receivers(ctx, {agent: since}, seq, int(at or 0))):
            raise NotFound(
                f"message {message_id} is a broadcast sent before {agent} registered: "
                f"{agent} never receives it, so nothing was marked read; pass the "
                f"id of a message its inbox listed (swarm msg inbox {agent} --peek)"
            )
    return copies.get(agent, seq)


def _before(a: str, b: str) -> bool:
    """Whether stream id ``a`` comes before ``b``."""
    return event_order(a) < event_order(b)


def _has_read(cursors: Mapping[str, str], agent: str, seq: str, field: str) -> bool:
    """Whether ``agent`` was shown the message at ``seq``: its cursor (``field``) is at or
    past it, or an acknowledged read not yet committed took it."""
    if not field.endswith("|inbox"):
        # (a broadcast its cursor passed by trimming, never shown: inbox_read's agent|gap)
        start, _, end = cursors.get(f"{agent}|gap", "").partition(" ")
        if end and _before(start, seq) and not _before(end, seq):
            return False
    cursor = cursors.get(field)
    if cursor is not None and not _before(cursor, seq):
        return True
    pending = cursors.get(f"{agent}|pending", "").split()
    if len(pending) == 4:
        last = pending[1] if field.endswith("|inbox") else pending[2]
        return last != "-" and not _before(last, seq)
    return False


def _unknown(message_id: str) -> NotFound:
    return NotFound(
        f"message {message_id} is unknown: it was never sent, or is older than the "
        f"newest {MESSAGE_INDEX_MAX:,} messages; {CHECK_MESSAGE_ID}"
    )


def message_status(ctx: OpContext, message_id: str) -> Operation[MessageStatus]:
    """Whether a message was read, and by whom (for a broadcast: which agents registered
    when it was sent have been shown it). ``read`` is true only when every reader is known
    to have read it (or it had none). A reader no longer registered (it left, or was swept
    as stale) took its read cursor with it: whether it read the message is not known, so
    ``read`` is false with that reader in neither list (a direct message to it: both empty).
    NotFound for an id never sent or older than the newest ``MESSAGE_INDEX_MAX``
    messages."""
    message_id = check_name("message id", message_id, max_len=64)
    keys = ctx.keys
    entry, cursor_fields, agent_records = yield Batch(
        (
            Cmd("HGET", keys.messages, message_id),
            Cmd("HGETALL", keys.cursors),
            Cmd("HGETALL", keys.agents),
        )
    )
    if entry is None:
        raise _unknown(message_id)
    to, seq, at, sender, counted, copies = _entry(ctx, message_id, entry)
    cursors = reply_fields(cursor_fields)
    registered_now = reply_fields(agent_records)
    if to != "*":
        # (its recipient left: deregistered or swept, its inbox and read cursor dropped)
        readers = [to] if to in registered_now else []
        where = {to: (seq, f"{to}|inbox")}
        departed = 1 - len(readers)
    else:
        since: dict[str, int] = {}
        for agent_id, record in registered_now.items():
            try:
                since[agent_id] = int(loads(record).get("registered_at") or 0)
            except (ValueError, AttributeError):
                since[agent_id] = 0
        since.pop(sender, None)  # (an agent does not receive its own broadcasts)
        readers = sorted((yield from _receivers(ctx, since, seq, int(at or 0))))
        # (a reader given back a copy of it has read it once its inbox cursor passes the
        # copy: its broadcast cursor passed the broadcast already)
        where = {a: (copies[a], f"{a}|inbox") if a in copies else (seq, a) for a in readers}
        # message_send counted the readers a broadcast had (not in entries stored before it
        # did): those not registered now left since, read or not
        departed = max(0, int(counted) - len(readers)) if counted.isdigit() else 0
    for reader in readers:
        _check_cursors(ctx, cursors, reader)
    read_by = tuple(a for a in readers if _has_read(cursors, a, *where[a]))
    unread_by = tuple(a for a in readers if a not in read_by)
    return MessageStatus(
        id=message_id, to=to, seq=seq, read=not unread_by and not departed,
        read_by=read_by, unread_by=unread_by,
    )  # fmt: skip


# Events looked at, from a broadcast's millisecond on, for the agent.joined of an agent that
# registered in that millisecond (a tie the clock cannot break).
_JOINED_SCAN = 256


def _receivers(
    ctx: OpContext, registered: Mapping[str, int], seq: str, sent_at: int
) -> Operation[set[str]]:
    """Of the agents ``registered`` (agent -> its ``registered_at``, ms; 0 when its record
    holds none), those that receive the broadcast at stream id ``seq`` sent at ``sent_at``
    (ms): the one rule of ``message_status``'s readers and ``get_message``'s broadcasts, as
    an agent's inbox lists them (it starts after the newest broadcast when it registered:
    ``lua/agent_register.lua``). One registered in an earlier millisecond receives it, one in
    a later one does not; one in the same millisecond receives it when its agent.joined
    event comes after the broadcast (its message.sent event: one sequence), looked up in one
    more round trip, only then (not found, trimmed: it receives it)."""
    receiving = {agent for agent, at in registered.items() if at < sent_at}
    tied = {agent for agent, at in registered.items() if at == sent_at}
    if not tied:
        return receiving
    events = yield Cmd("XRANGE", ctx.keys.events, f"{sent_at}-0", "+", "COUNT", _JOINED_SCAN)
    joined: dict[str, str] = {}
    for event_id, fields in events or []:
        event = reply_fields(fields)
        if event.get("type") == EventType.AGENT_JOINED.value and event.get("agent") in tied:
            joined.setdefault(event["agent"], text(event_id))  # (its first: when it registered)
    return receiving | {a for a in tied if a not in joined or _before(joined[a], seq)}


def get_message(ctx: OpContext, agent: str, message_id: str) -> Operation[Message]:
    """The message ``message_id`` as ``agent`` received it: one sent to its own inbox, read
    or not (an inbox keeps its newest ``READ_KEPT`` read messages), or a broadcast sent since
    it registered (``_receivers``: as its inbox lists them; the newest
    ``BROADCAST_MAXLEN`` are kept). Nothing is marked read. NotFound for an agent not
    registered, an unknown id, a message to another agent, a broadcast sent before it
    registered, or one no longer kept."""
    agent = check_agent("agent id", agent)
    message_id = check_name("message id", message_id, max_len=64)
    keys = ctx.keys
    reply = yield Call(
        "message_get",
        (keys.agents, keys.messages, keys.inbox(agent), keys.broadcast),
        (agent, message_id),
    )
    outcome = text(reply[0])
    if outcome == "unknown":
        raise _unknown(message_id)
    to = text(reply[1])
    if outcome == "elsewhere":
        raise NotFound(
            f"message {message_id} was sent to {to}, not to {agent}: ask for it as {to}, "
            "its recipient"
        )
    sender = text(reply[2]) or "its sender"
    if outcome == "gone":
        kept = (
            f"the newest {BROADCAST_MAXLEN:,} broadcasts are kept"
            if to == "*"
            else f"an inbox keeps its newest {READ_KEPT} read messages, and none once its "
            "agent leaves"
        )
        raise NotFound(
            f"message {message_id} is no longer kept ({kept}): ask {sender} to send it again"
        )
    message = _message(text(reply[3]), reply_fields(reply[4]))
    receiving = {agent: int(reply[5])}
    if to == "*" and not (yield from _receivers(ctx, receiving, message.seq, message.created_at)):
        raise NotFound(
            f"message {message_id} is a broadcast sent before {agent} registered: an agent "
            f"receives only the broadcasts sent since it registered, so {agent}'s inbox never "
            f"lists it; ask for it as an agent registered when it was sent ({sender} sent it)"
        )
    return message
