"""Push notifications: every task event, posted to the webhooks of its task, once.

One ``PushDispatcher`` runs in each ``swarm a2a`` server. It follows the swarm's event
stream; for a task event that changes what a client sees, it reads the task's webhooks and,
for each, claims the event (``claim_webhook_event``: an atomic cursor in Redis) before it
posts. So however many servers follow the stream, and however often one restarts and
replays the last minutes (``replay_s``), each event reaches each webhook at most once, in
order. A webhook given with a message is stored just after its task is posted: the
dispatcher reads each event ``LAG_S`` after it happened, so that the webhook is there by
then, and the handler asks for a catch-up (``catch_up``) in case it was not. A post is
retried (``RETRY_DELAYS_S``) on a network error, a 5xx, 408 or 429; an event still
undelivered after the last retry is logged and dropped (the task's state stays readable with
GetTask). One that no retry delivers is dropped at once, one line in the log: a 4xx other
than 408 and 429 (the webhook refused it), and a TLS connection the webhook's server did not
make (``tls_refused``, by the ssl module's exception types: its certificate does not verify
or names another host, an alert refusing the handshake, a port that answers it with no TLS,
no TLS version in common); the webhook's next updates are each tried again (a certificate
may be renewed meanwhile). So is one to a webhook of which no request can be built (a
control character in its url, a non-ASCII or CR/LF one in its token: the core refuses them
since, an older version did not), said by the error's type: no log line here carries a
webhook's token or credentials (``_unsaid``). An error no rule here foresees drops that
update alone (``_drain``). After a task's final state is delivered, its webhook is removed.

The dispatcher rides out a lost Redis, following the stream again after waits that double
(``reconnect_delay``). A connection no retry makes (``_errors.needs_a_fix``: its certificate
refused, a certificate or key file of the URL that no longer loads, its password or a right
refused) is said once, as an error with what to fix, and tried again only every
``RECONNECT_MAX_S``, as the other faces do (the MCP channel, the dashboard): a fix made
where the server runs resumes the pushes without a restart (said once too). That it follows
again is said as soon as Redis answers (``last_event_id``), not when the next event comes: on
a quiet swarm the last line stayed "paused" long after Redis was back. A completion naming a
finding that does not exist is not believed (``_feed.updates_of``): it stopped the pushes,
replayed and failing again after each wait, for good.

A server that does not post inside its network (``url_check``: the rule its handler checks a
webhook with when a client gives one, as ``_addresses.webhook_target``) checks the address
again before each post: the webhook may have been stored by another server of the swarm,
with another rule, and a hostname may resolve elsewhere since (DNS rebinding). The post goes
to an address checked (``_addresses.pin``), never to a second lookup's: the first, else,
when it cannot be connected to, the next (within one attempt: nothing was sent). So the
client posts directly (``push_client``: no proxy from the environment, which would resolve
the name itself, and through which httpcore checks a pinned post's certificate against the
address). An update to
an address it forbids is not posted, nor retried (the address is not flaky, it is
forbidden): it is dropped, one line in the log, as an update a webhook refused (4xx). A host
that does not resolve is a network error (a resolver's failure may be temporary): retried
as one.

The body is what the SDK's own sender posts: the update as a ``StreamResponse`` in JSON,
written as the server's answers are (``_wire.render``: whole numbers as integers); the
config's token goes in ``X-A2A-Notification-Token``, its authentication in
``Authorization``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Coroutine, Sequence
from typing import Any

import httpx
from a2a.types import TaskArtifactUpdateEvent, TaskStatusUpdateEvent
from a2a.utils.proto_utils import to_stream_response

from .._client import AsyncSwarm
from .._codec import now_ms
from .._config import mask_url
from .._errors import (
    NotFound,
    PermissionDenied,
    SwarmError,
    needs_a_fix,
    tls_refused,
)
from .._models import Event, Webhook
from .._translate import causes
from ._addresses import REFUSED_ADDRESS, AddressCheck, pin, unresolved
from ._feed import updates_of
from ._states import STATUS_AFTER, TERMINAL
from ._wire import render
from ._words import for_operator, needs_role

__all__ = ["PUSH_TIMEOUT_S", "RETRY_DELAYS_S", "PushDispatcher", "push_client", "reconnect_delay"]

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.2, 1.0, 3.0)
PUSH_TIMEOUT_S = 10.0  # (seconds a webhook has to answer one post)
# How far back a starting dispatcher reads: what happened while no server ran is delivered
# (claims make sure that what was delivered before is not delivered again).
REPLAY_S = 600.0
# After losing Redis: wait this long, then follow again from the last event handled; each
# failure in a row doubles the wait, up to RECONNECT_MAX_S (a server left running with a
# stopped Redis logs one line a minute, not one a second; one with a wrong password says it
# once, then tries every RECONNECT_MAX_S: ``needs_a_fix``).
RECONNECT_S = 1.0
RECONNECT_MAX_S = 60.0
# A follow that lasted this long had reached Redis: its failure starts the waits again.
HEALTHY_S = 30.0
TOKEN_HEADER = "X-A2A-Notification-Token"
# How long after an event the dispatcher handles it (see above): a bound on its wait, so a
# server clock ahead of this one delays nothing longer.
LAG_S = 0.2

Update = TaskStatusUpdateEvent | TaskArtifactUpdateEvent
# What one claimed event sends to one webhook: the webhook, its updates, and whether the
# task is settled (then the webhook is removed once they are sent).
Delivery = tuple[Webhook, list[Update], bool]


def push_client(
    verify: ssl.SSLContext | bool = True, timeout_s: float = PUSH_TIMEOUT_S
) -> httpx.AsyncClient:
    """The HTTP client webhooks are posted with: directly, whatever ``HTTPS_PROXY``,
    ``HTTP_PROXY`` or ``ALL_PROXY`` say (``trust_env=False``; see the module). The CAs
    ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` name are still trusted (``verify`` True), as
    httpx trusts them when it reads the environment."""
    context = httpx.create_ssl_context(verify, trust_env=True)
    return httpx.AsyncClient(timeout=timeout_s, verify=context, trust_env=False)


def reconnect_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` (>= 1) failed follows in a row."""
    return min(RECONNECT_S * 2.0 ** min(failures - 1, 16), RECONNECT_MAX_S)


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def _answered(response: httpx.Response) -> str:
    """A webhook's answer that is no success, for the log: its status code and phrase."""
    return f"answered HTTP {response.status_code} {response.reason_phrase}".rstrip()


# What a post that got no answer failed at, by httpx's error (``_failed``).
_FAILURES: dict[type[httpx.HTTPError], str] = {
    httpx.ConnectError: "could not connect",
    httpx.ConnectTimeout: "timed out connecting",
    httpx.ReadTimeout: "timed out waiting for its answer",
    httpx.WriteTimeout: "timed out sending the update",
    httpx.PoolTimeout: "timed out waiting for a connection",
    httpx.RemoteProtocolError: "its server broke the HTTP exchange",
}


def _failed(exc: httpx.HTTPError) -> str:
    """A post that got no answer, for the log: what failed (a connection refused, a
    timeout...), with the error's own words. (httpx's errors may have none: a timeout's
    type then says it.)"""
    kind = _FAILURES.get(type(exc), "failed")
    said = str(exc) or type(exc).__name__
    errno = next((c.errno for c in causes(exc) if isinstance(c, OSError) and c.errno), None)
    if errno is not None and os.strerror(errno) not in said:  # (asyncio's hides it in its words)
        said += f": {os.strerror(errno)}"
    return f"{kind} ({said})"


def _unsaid(text: str, hook: Webhook) -> str:
    """``text`` (an error's words, for the log) without the webhook's secrets, as they are
    or as Python quotes them (``b'...'``): no log line carries a token or credentials."""
    for secret in (hook.token, hook.auth_credentials):
        if secret:
            for form in {secret, repr(secret)[1:-1], repr(secret.encode())[2:-1]}:
                text = text.replace(form, "[secret]")
    return text


def _unsendable(hook: Webhook, exc: Exception) -> None:
    """Say that an update to ``hook`` was dropped, not retried: no request can be built of
    its url, token or authentication (one stored before the core refused such values: a
    control character, a non-ASCII one). Said by the error's type, whose words could quote
    a header (a secret); an invalid URL's words, which name what is wrong with it, too."""
    why = type(exc).__name__
    if isinstance(exc, httpx.InvalidURL):
        why += f": {exc}"
    log.warning(
        "webhook %r of task %s: not posted, an update dropped (not retried): no HTTP request "
        "can be made of its url, token or authentication (%s); give the task a webhook of a "
        "valid one", mask_url(hook.url)[:200], hook.task_id, why,
    )  # fmt: skip


class PushDispatcher:
    """Follows the event stream and posts each task update to its webhooks, once."""

    def __init__(
        self,
        swarm: AsyncSwarm,
        queues: Sequence[str],
        http: httpx.AsyncClient,
        *,
        replay_s: float = REPLAY_S,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
        url_check: AddressCheck | None = None,
    ) -> None:
        self.swarm = swarm
        self.url_check = url_check
        self.queues = frozenset(queues)
        self.http = http
        self.replay_s = replay_s
        self.retry_delays_s = tuple(retry_delays_s)
        self._background: set[asyncio.Task[None]] = set()
        # One outbox per webhook, drained by its own task: a slow or dead webhook delays only
        # its own updates (in order), never the stream's follower or the other webhooks.
        self._outboxes: dict[tuple[str, str], asyncio.Queue[Delivery]] = {}

    async def run(self) -> None:
        """Forever (cancel the task to stop)."""
        since: str | int = max(0, now_ms() - int(self.replay_s * 1000))
        failures = 0
        stuck = False  # a failure no retry fixes was said, and the follow has not worked since
        try:
            while True:
                started = time.monotonic()
                try:
                    if failures:  # (said once Redis answers: a quiet swarm sends no event)
                        await self.swarm.last_event_id()
                        log.warning("push notifications: following the swarm again")
                        stuck = False
                    async for event in self.swarm.follow_events(since=since, types="task"):
                        failures = 0  # (the waits start again from the shortest)
                        age_s = (now_ms() - event.at) / 1000
                        if age_s < LAG_S:
                            await asyncio.sleep(min(LAG_S, LAG_S - age_s))
                        await self.handle(event)
                        since = event.id
                except SwarmError as exc:  # Redis went away: the claims make a replay safe
                    failures = 1 if time.monotonic() - started >= HEALTHY_S else failures + 1
                    if needs_a_fix(exc):
                        if not stuck:
                            denied = isinstance(exc, PermissionDenied)
                            fix = f" ({needs_role(self.swarm.name)})" if denied else ""
                            log.error(
                                "push notifications stopped: %s%s; no retry fixes that: fix "
                                "it where this server runs, and they resume (tried again "
                                "every %g s; said here when they do)", for_operator(str(exc)), fix,
                                RECONNECT_MAX_S,
                            )  # fmt: skip
                            stuck = True
                        await asyncio.sleep(RECONNECT_MAX_S)
                        continue
                    stuck = False
                    delay = reconnect_delay(failures)
                    said = for_operator(str(exc))
                    log.warning("push notifications paused: %s (trying again in %g s)", said, delay)
                    await asyncio.sleep(delay)
        finally:  # stopping: what is still queued is dropped (at most once, never twice)
            for task in list(self._background):
                task.cancel()

    def catch_up(self, task_id: str, since: str) -> None:
        """In the background: deliver the events of a task after ``since`` that the stream's
        follower passed before the task's new webhook was stored (claims skip the rest)."""

        async def run() -> None:
            try:
                for event in await self.swarm.events(since=since, types="task"):
                    if event.fields.get("task") == task_id:
                        await self.handle(event)
            except SwarmError as exc:
                log.warning("push notifications of task %s: %s", task_id, for_operator(str(exc)))

        self._start(run())

    async def handle(self, event: Event) -> None:
        task_id = event.fields.get("task")
        if task_id is None or event.type not in STATUS_AFTER:
            return
        if event.fields.get("queue") not in self.queues:
            return  # not one of this server's tasks: no read at all
        hooks = await self.swarm.webhooks(task_id)
        if not hooks:
            return
        try:
            task = await self.swarm.get_task(task_id)
        except NotFound:
            return
        if task.queue not in self.queues:
            return
        sent = await updates_of(self.swarm, event, task)  # (none: an event not believed)
        if not sent:
            return
        final = any(
            isinstance(u, TaskStatusUpdateEvent) and u.status.state in TERMINAL for u in sent
        )
        await asyncio.gather(*(self._deliver(hook, event, sent, final) for hook in hooks))

    async def _deliver(self, hook: Webhook, event: Event, sent: list[Update], final: bool) -> None:
        if not await self.swarm.claim_webhook_event(hook.task_id, hook.id, event.id):
            return  # another server has it, or had it before a restart
        key = (hook.task_id, hook.id)
        outbox = self._outboxes.get(key)
        if outbox is None:
            outbox = self._outboxes[key] = asyncio.Queue()
            self._start(self._drain(key, outbox))
        outbox.put_nowait((hook, sent, final))

    async def _drain(self, key: tuple[str, str], outbox: asyncio.Queue[Delivery]) -> None:
        """Post a webhook's updates in the order they were claimed, until its task settles.
        An update whose post fails in a way ``_post`` does not foresee is dropped, said in
        one line: the next ones are still posted, and the webhook removed after the last
        (a task that died here, its error never retrieved, kept the webhook for good)."""
        try:
            while True:
                hook, sent, final = await outbox.get()
                for update in sent:
                    try:
                        await self._post(hook, update)
                    except Exception as exc:  # (its words may quote a header: a secret)
                        log.error(
                            "webhook %s of task %s: an update dropped, its post failed: %s",
                            key[1], key[0], type(exc).__name__,
                        )  # fmt: skip
                if final:
                    await self.swarm.delete_webhook(hook.task_id, hook.id)
                    return
        except SwarmError as exc:
            log.warning("webhook %s of task %s: %s", key[1], key[0], for_operator(str(exc)))
        finally:
            self._outboxes.pop(key, None)

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _post(self, hook: Webhook, update: Update) -> None:
        headers = {}
        if hook.token:
            headers[TOKEN_HEADER] = hook.token
        if hook.auth_scheme and hook.auth_credentials:
            headers["Authorization"] = f"{hook.auth_scheme} {hook.auth_credentials}"
        body = render(to_stream_response(update))
        try:  # (built again for each try, each address: here, whether it can be built at all)
            self.http.build_request("POST", hook.url, json=body, headers=headers)
        except Exception as exc:  # (httpx.InvalidURL, UnicodeEncodeError of a header...)
            _unsendable(hook, exc)
            return
        failed = ""  # why the last try failed, said when the update is given up
        for delay in (*self.retry_delays_s, None):
            try:
                addresses = None if self.url_check is None else await self.url_check(hook.url)
                if self.url_check is not None and not addresses:
                    log.warning(
                        "webhook %s of task %s: not posted, an update dropped: %s",
                        mask_url(hook.url)[:200], hook.task_id, REFUSED_ADDRESS,
                    )  # fmt: skip
                    return
                response = await self._send(hook, body, headers, addresses)
                if response.is_success:
                    return
                failed = _answered(response)
                if not _retryable(response.status_code):
                    log.warning(
                        "webhook %s refused an update of task %s: %s (not retried: a 4xx "
                        "other than 408 and 429)", hook.url, hook.task_id, failed,
                    )  # fmt: skip
                    return
                log.info("webhook %s: %s", hook.url, failed)
            except httpx.LocalProtocolError as exc:  # (a header h11 refuses: a CR, a LF...)
                _unsendable(hook, exc)
                return
            except httpx.HTTPError as exc:
                if tls_refused(exc):  # (the webhook's TLS: its server's to fix)
                    log.warning(
                        "webhook %s: not posted, an update of task %s dropped (no retry "
                        "fixes that): %s", hook.url, hook.task_id, _unsaid(str(exc), hook),
                    )  # fmt: skip
                    return
                failed = _unsaid(_failed(exc), hook)
                log.info("webhook %s: %s", hook.url, failed)
            except OSError as exc:  # (the check's lookup: a network error, see the module)
                failed = unresolved(hook.url, exc)
                log.info("webhook %s: not posted yet: %s", hook.url, failed)
            if delay is None:
                log.warning(
                    "webhook %s: giving up on an update of task %s after %d tries: %s",
                    hook.url, hook.task_id, len(self.retry_delays_s) + 1, failed,
                )  # fmt: skip
                return
            await asyncio.sleep(delay)

    async def _send(
        self, hook: Webhook, body: Any, headers: dict[str, str], addresses: Sequence[str] | None
    ) -> httpx.Response:
        """POST ``body`` to ``url``: at each of ``addresses`` in turn (``pin``) until one
        can be connected to (a connection refused or timed out sent nothing, so the next
        address cannot get the update twice); the last one's error is raised. None: to
        the URL's host as the client resolves it (no rule checked the address)."""
        url = hook.url
        *first, last = addresses or (None,)
        for address in first:
            try:
                return await self._send_to(url, body, headers, address)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                said = _unsaid(str(exc), hook)
                log.info("webhook %s: not connected at %s (%s): trying the next", url, address,
                         said)  # fmt: skip
        return await self._send_to(url, body, headers, last)

    async def _send_to(
        self, url: str, body: Any, headers: dict[str, str], address: str | None
    ) -> httpx.Response:
        request = self.http.build_request("POST", url, json=body, headers=headers)
        if address is not None:
            pin(request, address)
        return await self.http.send(request)
