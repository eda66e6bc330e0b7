"""Messages: per-agent inboxes, broadcast, and typed requests (synthesis).

An inbox is a stream per agent; a broadcast goes to one capped stream that every agent reads
from its own cursor. Reading with ``ack`` consumes what was read, atomically, so the next
read returns only newer messages; a read whose reply is lost (and is retried) returns the
same batch again rather than losing it (see ``lua/inbox_read.lua``). Sending to an agent
that is not registered is an error, never a phantom inbox; a full inbox (an agent that never
reads) refuses new messages rather than dropping old ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import PayloadTooLarge, ValidationError
from .._models import Message, loads
from .._protocol import Call, OpContext, Operation
from .._validate import check_name
from ._bus import check_data, decode_fields, new_id

__all__ = ["BROADCAST_MAXLEN", "INBOX_LIMIT", "broadcast", "inbox", "request_synthesis", "send"]

# Unread messages an inbox may hold before sends to it are refused.
INBOX_LIMIT = 10_000
# Broadcasts kept (approximately); an agent that falls further behind misses the oldest.
BROADCAST_MAXLEN = 10_000
MAX_READ = 1000
MAX_PASS_NAME_CHARS = 200


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
        check_name("sender", sender, max_len=64)
    kind = check_name("message kind", kind, max_len=64)
    if not isinstance(body, str):
        raise ValidationError(f"the message body must be a string, not {type(body).__name__}")
    limit = ctx.limits.max_message_bytes
    encoded = check_data("message data", data, limit)
    size = len(body.encode(errors="surrogatepass")) + len(encoded.encode())
    if size > limit:
        raise PayloadTooLarge(
            f"the message is {size:,} bytes (body and data); the limit is {limit:,} "
            "(Limits.max_message_bytes): publish big content as a context and send its owner"
        )
    keys = ctx.keys
    message_id = new_id("m")
    stream = keys.broadcast if to == "*" else keys.inbox(to)
    _, created = yield Call(
        "message_send",
        (keys.agents, stream, keys.events, keys.cursors),
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
    to = check_name("recipient agent", to, max_len=64)
    return (yield from _send(ctx, to, body, sender=sender, kind=kind, data=data))


def broadcast(
    ctx: OpContext,
    body: str,
    *,
    sender: str | None = None,
    kind: str = "text",
    data: Mapping[str, Any] | None = None,
) -> Operation[Message]:
    """Send a message to every agent (each reads it once, from its own cursor)."""
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
    shard = check_name("shard agent", shard, max_len=64)
    if not isinstance(pass_name, str) or not pass_name.strip():
        raise ValidationError("pass_name is empty: name the pass to synthesise")
    if len(pass_name) > MAX_PASS_NAME_CHARS:
        raise ValidationError(f"pass_name is longer than {MAX_PASS_NAME_CHARS} characters")
    if not isinstance(instructions, str):
        raise ValidationError("instructions must be a string")
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
            kind="synthesis_request",
            data=data,
            pass_name=pass_name,
        )
    )


def _message(fields: dict[str, str]) -> Message:
    return Message(
        id=fields.get("id", ""),
        sender=fields.get("from") or None,
        to=fields.get("to", ""),
        kind=fields.get("kind", "text"),
        body=fields.get("body", ""),
        data=loads(fields["data"]) if fields.get("data") else None,
        created_at=int(fields.get("at", "0")),
    )


def inbox(
    ctx: OpContext, agent: str, ack: bool = True, limit: int = 100
) -> Operation[list[Message]]:
    """The agent's oldest unread messages (its own and broadcasts), in the order sent.

    ``ack=True`` consumes them (the next call returns only newer ones); ``ack=False`` peeks."""
    agent = check_name("agent id", agent, max_len=64)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_READ:
        raise ValidationError(f"limit must be between 1 and {MAX_READ}, not {limit!r}")
    keys = ctx.keys
    entries = yield Call(
        "inbox_read",
        (keys.agents, keys.inbox(agent), keys.broadcast, keys.cursors),
        (agent, limit, "1" if ack else "0", new_id("r")),
    )
    return [_message(decode_fields(fields)) for _, fields in entries]
