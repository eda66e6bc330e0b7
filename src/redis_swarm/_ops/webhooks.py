"""Webhooks: where to push a task's updates (the push notifications of ``swarm a2a``).

A task's webhooks live in one hash (``Keys.webhooks``), with, for each, a cursor: the id of
the last event claimed for delivery to it. ``claim_webhook_event`` moves that cursor forward
atomically (a script), so every server that follows the event stream may try every event and
exactly one delivers it, once; a restart that replays part of the stream sends nothing twice.
Nothing expires (no operation of a role sets a TTL: tests/test_acl.py): whoever delivers a
task's final state removes the webhook (``swarm a2a`` does), so webhooks do not pile up.
What a webhook may hold is checked by ``check_webhook`` (no I/O; ``Swarm.check_webhook``),
which ``set_webhook`` runs: a face checks a webhook given with a task before it posts it.
"""

from __future__ import annotations

import re
from typing import Any

from .._codec import dumps, loads
from .._errors import NotFound, ValidationError
from .._hints import CHECK_TASK_ID
from .._models import Webhook, shown_webhook_url
from .._protocol import Batch, Call, Cmd, OpContext, Operation
from .._replies import reply_fields
from .._validate import check_id
from ._work import check_label, new_id, text

__all__ = [
    "check_webhook",
    "claim_webhook_event",
    "delete_webhook",
    "set_webhook",
    "webhooks",
]

MAX_URL_CHARS = 2048
_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
_SENT = "|sent"


# What a webhook's url, token and authentication may hold: visible ASCII. They go into the
# request line and headers of each push, where httpx refuses a control character in a URL
# or a non-ASCII one in a header, and h11 a CR or LF (a header injected). A space, which
# RFC 9110 allows inside a field value, only an authentication's credentials need (Digest's
# or AWS's name=value lists), between visible characters. Refused when the webhook is set,
# not met by the sender at each update (which cannot build such a request).
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]*")
_FIELD_VALUE = re.compile(r"[\x21-\x7e]+(?: +[\x21-\x7e]+)*")
MAX_SECRET_CHARS = 4096  # (a token, an authentication's scheme or credentials)


def _check_url(url: object) -> str:
    if not isinstance(url, str) or not re.match(r"https?://[^\s/]+", url):
        raise ValidationError(
            f"webhook url {shown_webhook_url(str(url))[:80]!r} is not an http(s) URL: give an "
            "http(s) URL (https for a server on a public network)"
        )
    if len(url) > MAX_URL_CHARS:
        raise ValidationError(
            f"webhook url is {len(url)} characters long; the limit is {MAX_URL_CHARS}: give "
            "a shorter URL (keep what the webhook needs in its path, or in its token)"
        )
    if not _VISIBLE_ASCII.fullmatch(url):
        raise ValidationError(
            f"webhook url {shown_webhook_url(url)[:80]!r} holds a space, a control character or "
            "a non-ASCII one: percent-encode them (a non-ASCII host name in its IDNA form, xn--...)"
        )
    return url


def _check_secret(kind: str, value: str | None) -> str | None:
    """A webhook's header value (its token, its authentication's scheme or credentials):
    never quoted in the refusal, being a secret."""
    if value is None:
        return None
    check_label(f"webhook {kind}", value, max_chars=MAX_SECRET_CHARS)
    spaced = kind == "auth_credentials"
    if not (_FIELD_VALUE if spaced else _VISIBLE_ASCII).fullmatch(value):
        held = (
            "a control character or a non-ASCII character"
            if spaced
            else ("a space, a control character or a non-ASCII character")
        )
        raise ValidationError(
            f"the webhook {kind} holds {held}: it is sent in an HTTP header, which carries "
            "visible ASCII only: use only letters, digits and punctuation"
            + (" (single spaces between them)" if spaced else "")
        )
    return value


def check_webhook(
    url: str,
    *,
    webhook_id: str | None = None,
    token: str | None = None,
    auth_scheme: str | None = None,
    auth_credentials: str | None = None,
) -> None:
    """Refuse (ValidationError) a webhook ``set_webhook`` would refuse for what it is,
    without storing it (no I/O): so that a face can check one given with a message before
    it posts the message's task."""
    _check_url(url)
    if webhook_id is not None:
        check_id("webhook", webhook_id)
    _check_secret("token", token)
    _check_secret("auth_scheme", auth_scheme)
    _check_secret("auth_credentials", auth_credentials)


def _check_event_id(event_id: object) -> str:
    if not isinstance(event_id, str) or not _STREAM_ID.fullmatch(event_id):
        raise ValidationError(f"{str(event_id)[:45]!r} is not an event id (like '1717000000000-0')")
    return event_id


def set_webhook(
    ctx: OpContext,
    task_id: str,
    url: str,
    *,
    webhook_id: str | None = None,
    token: str | None = None,
    auth_scheme: str | None = None,
    auth_credentials: str | None = None,
    since: str | None = None,
) -> Operation[Webhook]:
    """Add (or replace: same ``webhook_id``) a webhook of a task. It gets the task's events
    after ``since`` (an event id; None: from now on); replacing one keeps its cursor, so an
    event already delivered is not delivered again."""
    check_id("task", task_id)
    check_webhook(
        url,
        webhook_id=webhook_id,
        token=token,
        auth_scheme=auth_scheme,
        auth_credentials=auth_credentials,
    )
    record = Webhook(
        id=webhook_id if webhook_id is not None else new_id("w-"),
        task_id=task_id,
        url=url,
        token=token,
        auth_scheme=auth_scheme,
        auth_credentials=auth_credentials,
        created_at=0,
    )
    k = ctx.keys
    exists, newest = yield Batch(
        (Cmd("HEXISTS", k.tasks, task_id), Cmd("XREVRANGE", k.events, "+", "-", "COUNT", 1))
    )
    if not exists:
        raise NotFound(f"task {task_id} does not exist: {CHECK_TASK_ID}")
    start = _check_event_id(since) if since is not None else None
    if start is None:
        start = text(newest[0][0]) if newest else "0-0"
    created = int(start.partition("-")[0])
    record = Webhook(**{**record.to_dict(), "created_at": created})
    key = k.webhooks(task_id)
    yield Batch(
        (
            Cmd("HSET", key, record.id, dumps(record.to_dict())),
            Cmd("HSETNX", key, record.id + _SENT, start),
        )
    )
    return record


def _webhook(raw: Any) -> Webhook | None:
    try:
        return Webhook.from_dict(loads(raw))
    except (ValueError, TypeError, KeyError):
        return None  # unreadable: written around the operations; never delivered to


def webhooks(ctx: OpContext, task_id: str) -> Operation[list[Webhook]]:
    """A task's webhooks, oldest first."""
    check_id("task", task_id)
    fields = reply_fields((yield Cmd("HGETALL", ctx.keys.webhooks(task_id))))
    found = [_webhook(value) for field, value in fields.items() if not field.endswith(_SENT)]
    return sorted((w for w in found if w is not None), key=lambda w: (w.created_at, w.id))


def delete_webhook(ctx: OpContext, task_id: str, webhook_id: str) -> Operation[bool]:
    """Remove a webhook of a task; False if it did not exist."""
    check_id("task", task_id)
    check_id("webhook", webhook_id)
    removed = yield Cmd("HDEL", ctx.keys.webhooks(task_id), webhook_id, webhook_id + _SENT)
    return bool(removed)


def claim_webhook_event(
    ctx: OpContext, task_id: str, webhook_id: str, event_id: str
) -> Operation[bool]:
    """True if the caller is the one to deliver event ``event_id`` to this webhook: no one
    claimed it (or a later event) before, and the webhook still exists."""
    check_id("task", task_id)
    check_id("webhook", webhook_id)
    reply = yield Call(
        "webhook_claim", (ctx.keys.webhooks(task_id),), (webhook_id, _check_event_id(event_id))
    )
    return int(reply) == 1
