"""Leftovers of ``swarm a2a``: a webhook posted to what its host resolved to when the HTTP
client connected, not to the address checked (DNS rebinding); a contextId over 256
characters refused as a "pass name"; two log lines for one request failed while Redis is
down; a message without a role (or with an unknown one) taken as the user's; and the same
401 for a wrong token as for none. Then a review's catches: a pinned HTTPS post sent
through the environment's proxy (whose tunnel checked the certificate against the address),
one checked address tried where the connection tried each, a client's text that hid the
SDK's line by holding the log filter's marker, and a retry without a role. Real servers
throughout: Redis, ``swarm a2a`` as a process, webhook receivers on loopback (plain and
TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm.a2a_server._addresses import webhook_target
from redis_swarm.a2a_server._logs import LOGGED_FOR_OPERATOR, one_line_client_errors
from redis_swarm.a2a_server._push import PushDispatcher, push_client
from redis_swarm.a2a_server.app import create_app

from ._a2a import QUEUE, SWARM, TOKEN, A2AServer, push_one_task
from ._servers import RedisServer, ServerFactory, free_port
from ._tls import make_pki

HEADERS = {"A2A-Version": "1.0"}
# The address that plays a public one in the push tests (every address here is loopback:
# no test sends anything off this machine). The rule before each post takes it, and only
# it, for public; 127.0.0.1, where the "private" receiver listens, stays forbidden.
PUBLIC = "127.0.0.2"


def _rpc(a2a: A2AServer, method: str, params: dict[str, Any], **headers: str) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    sent = {**a2a.headers, **HEADERS, **headers}
    return httpx.post(a2a.url + "/", json=body, headers=sent, timeout=20).json()


def _message(**fields: Any) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": "x"}],
            **fields}  # fmt: skip


def _invalid_params(answer: Any) -> str:
    assert "error" in answer, answer
    assert answer["error"]["code"] == -32602, answer
    message = answer["error"]["message"]
    assert isinstance(message, str)
    return message


def _pending(swarm: Swarm) -> int:
    return sum(stats.get("pending", 0) for stats in swarm.queue_stats().values())


# --- 1. a webhook is posted to the address that was checked


@dataclass
class _Hook:
    """A webhook receiver on one loopback address: each POST's Host header and body, and
    the name each TLS handshake asked for (SNI)."""

    url: str = ""
    posts: list[tuple[str, Any]] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)


def _serve(
    address: str, port: int, tls: ssl.SSLContext | None
) -> tuple[_Hook, ThreadingHTTPServer]:
    box = _Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            box.posts.append((self.headers["Host"], body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    def asked_for(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        box.sni.append(name)

    server = ThreadingHTTPServer((address, port), Handler)
    if tls is not None:
        tls.sni_callback = asked_for
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return box, server


@contextlib.contextmanager
def _two_hooks(
    tls: ssl.SSLContext | None = None,
) -> Iterator[tuple[_Hook, _Hook]]:
    """Receivers on one port of PUBLIC and of 127.0.0.1 (the private address a rebinding
    name answers to the connection): ``localhost`` resolves to the second."""
    for _ in range(20):
        port = free_port()
        try:
            public, first = _serve(PUBLIC, port, tls)
        except OSError:
            continue
        try:
            private, second = _serve("127.0.0.1", port, None)
        except OSError:
            first.shutdown()
            first.server_close()
            continue
        break
    else:
        raise AssertionError("no port free on both loopback addresses")
    scheme = "https" if tls is not None else "http"
    public.url = private.url = f"{scheme}://localhost:{port}/hook"
    try:
        yield public, private
    finally:
        for server in (first, second):
            server.shutdown()
            server.server_close()


def _run_one_task(
    redis_url: str,
    hook_url: str,
    verify: ssl.SSLContext | bool = True,
    addresses: tuple[str, ...] = (PUBLIC,),
) -> None:
    """A task of a swarm of its own, its webhook ``hook_url``, worked to completion, with a
    push dispatcher (its client the server's, ``push_client``) following it under the rule
    off loopback (the public addresses: ``addresses``, which the host resolves to, in that
    order); returns once its final update was handled (the webhook removed)."""

    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    check = functools.partial(
        webhook_target, resolve=resolve, blocked=lambda ip: ip not in addresses
    )

    async def body() -> None:
        async with (
            AsyncSwarm(redis_url, swarm=f"a2a-pin-{uuid.uuid4().hex[:8]}") as swarm,
            push_client(verify, timeout_s=5) as http,
        ):
            dispatcher = PushDispatcher(
                swarm, [QUEUE], http, retry_delays_s=(0.05, 0.05), url_check=check
            )
            await push_one_task(swarm, dispatcher, hook_url, within_s=10)

    asyncio.run(body())


def _states(hook: _Hook) -> list[str]:
    return [p["statusUpdate"]["status"]["state"] for _host, p in hook.posts if "statusUpdate" in p]


def test_a_webhook_is_posted_to_the_address_checked_not_to_a_second_lookup(
    redis_server: RedisServer,
) -> None:
    """The check found the host public, and the HTTP client resolved the name again: a name
    that answered the check a public address and the connection 127.0.0.1 had the server
    post inside its network. Now the post goes to the address checked, its Host header
    still the URL's."""
    with _two_hooks() as (public, private):
        _run_one_task(redis_server.url, public.url)
    assert private.posts == [], "posted to the address of a second lookup"
    assert _states(public) == ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"], public.posts
    port = public.url.rsplit(":", 1)[1].split("/")[0]
    assert {host for host, _body in public.posts} == {f"localhost:{port}"}


@pytest.mark.parametrize("certificate", ["for-the-name", "for-another-name"])
def test_a_pinned_https_post_checks_the_certificate_against_the_urls_name(
    redis_server: RedisServer, tmp_path: Path, certificate: str
) -> None:
    """Posted to the address checked, TLS still speaks to the URL's name: SNI is
    ``localhost`` and the certificate (for localhost and 127.0.0.1, not for PUBLIC) is
    checked against it; one made for another name is refused, nothing posted."""
    pki = make_pki(tmp_path / "pki")
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if certificate == "for-the-name":
        served.load_cert_chain(pki.server_cert, pki.server_key)
    else:
        served.load_cert_chain(pki.wrong_host_cert, pki.wrong_host_key)
    trusted = ssl.create_default_context(cafile=str(pki.ca))
    with _two_hooks(served) as (public, private):
        _run_one_task(redis_server.url, public.url, trusted)
    assert private.posts == []
    assert public.sni and set(public.sni) == {"localhost"}, public.sni
    if certificate == "for-the-name":
        assert _states(public) == ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"], public.posts
    else:
        assert public.posts == []


def test_a_pinned_https_post_goes_direct_whatever_proxy_the_environment_names(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HTTPS_PROXY set, httpx tunnelled the post through that proxy, and httpcore's
    tunnel checked the certificate against the pinned address, not the URL's name: every
    pinned HTTPS post failed. The push client takes no proxy from the environment: here a
    proxy that is not there (every post through it would fail) changes nothing."""
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    pki = make_pki(tmp_path / "pki")
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(pki.server_cert, pki.server_key)
    with _two_hooks(served) as (public, private):
        _run_one_task(redis_server.url, public.url, ssl.create_default_context(cafile=str(pki.ca)))
    assert private.posts == []
    assert _states(public) == ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"], public.posts


def test_a_checked_address_that_cannot_be_connected_to_is_followed_by_the_next(
    redis_server: RedisServer,
) -> None:
    """The host resolves to two public addresses, the first with nothing listening: the
    post went to the first only (every retry refused, the update dropped); the connection
    the client made unpinned tried each address. Now each checked address is tried in
    order within one attempt, and the update arrives once."""
    with _two_hooks() as (public, private):
        port = int(public.url.rsplit(":", 1)[1].split("/")[0])
        with socket.socket() as probe:  # (nothing listens there: a refused connection)
            assert probe.connect_ex(("127.0.0.3", port)) != 0
        _run_one_task(redis_server.url, public.url, addresses=("127.0.0.3", PUBLIC))
    assert private.posts == []
    assert _states(public) == ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"], public.posts


# --- 2. a contextId too long is refused in A2A's words


def test_a_context_id_over_the_limit_is_refused_as_a_context_id(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    """It was "pass name is 300 characters long; the limit is 256: shorten it"."""
    before = _pending(a2a_worker)
    long = "c" * 300
    send = {"message": _message(contextId=long), "configuration": {"returnImmediately": True}}
    for said in (
        _invalid_params(_rpc(a2a, "SendMessage", send)),
        _invalid_params(_rpc(a2a, "ListTasks", {"contextId": long})),
        httpx.post(a2a.url + "/message:send", json=send, headers={**a2a.headers, **HEADERS}).json()[
            "error"
        ]["message"],
    ):
        assert said.startswith("contextId is 300 characters long; the limit is 256"), said
        assert "pass" not in said
    blank = _rpc(a2a, "SendMessage", {**send, "message": _message(contextId="   ")})
    said = _invalid_params(blank)
    assert said.startswith("contextId is empty") and "pass" not in said, said
    # At the limit it is taken.
    at_limit = {**send, "message": _message(contextId="c" * 256)}
    assert _rpc(a2a, "SendMessage", at_limit)["result"]["task"]["contextId"] == "c" * 256
    assert _pending(a2a_worker) == before + 1


# --- 4. a message must say whose it is


@pytest.mark.parametrize(
    ("role", "said"),
    [(None, "the message has no role"),
     ("ROLE_FOO", 'the message\'s role "ROLE_FOO" is not one of A2A\'s'),
     ("ROLE_UNSPECIFIED", 'the message\'s role "ROLE_UNSPECIFIED" is not one of A2A\'s'),
     (7, "the message's role 7 is not one of A2A's"),
     ("user", '"user" is A2A 0.3\'s name for "ROLE_USER"')],
)  # fmt: skip
def test_a_message_without_a_known_role_is_refused(
    a2a: A2AServer, a2a_worker: Swarm, role: Any, said: str
) -> None:
    """A2A requires a message's role, ROLE_USER or ROLE_AGENT; the SDK read one left out, or
    a name it did not know, as unspecified, which was taken for the user's (and a number it
    did not know was an internal error). Refused (-32602, REST 400), naming the field and
    the roles; nothing posted."""
    before = _pending(a2a_worker)
    message = _message()
    if role is None:
        del message["role"]
    else:
        message["role"] = role
    params = {"message": message, "configuration": {"returnImmediately": True}}
    told = _invalid_params(_rpc(a2a, "SendMessage", params))
    rest = httpx.post(a2a.url + "/message:send", json=params, headers={**a2a.headers, **HEADERS})
    assert rest.status_code == 400 and rest.json()["error"]["status"] == "INVALID_ARGUMENT"
    streamed = _rpc(a2a, "SendStreamingMessage", params)  # (refused before any stream)
    for text in (told, rest.json()["error"]["message"], _invalid_params(streamed)):
        assert said in text, text
        assert 'message.role, which A2A requires): send "ROLE_USER" or "ROLE_AGENT"' in text
    assert _pending(a2a_worker) == before
    # The same message with a role is taken (the refusal stored nothing under its id).
    message["role"] = "ROLE_AGENT"
    assert _rpc(a2a, "SendMessage", params)["result"]["task"]["history"][0]["role"] == "ROLE_AGENT"


def test_a_retry_without_a_role_is_refused_and_with_one_gets_the_earlier_task(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    """docs/a2a.md said a retry got its task "whatever the retry's role"; one without a role
    of a message an earlier version posted (it took it for the user's) is refused before
    the dedupe look-up, as the doc now says. Nothing is posted; sent again with its role, it
    gets the task the first send posted."""
    earlier_id = f"m-{uuid.uuid4()}"  # posted by the version that took no role for the user's
    earlier = a2a_worker.post_task(QUEUE, "look it up", dedupe_key=f"a2a-message:{earlier_id}")
    before = _pending(a2a_worker)
    retry = _message(messageId=earlier_id)
    del retry["role"]
    params = {"message": retry, "configuration": {"returnImmediately": True}}
    assert "the message has no role" in _invalid_params(_rpc(a2a, "SendMessage", params))
    assert _pending(a2a_worker) == before
    retry["role"] = "ROLE_USER"
    assert _rpc(a2a, "SendMessage", params)["result"]["task"]["id"] == earlier.id
    assert _pending(a2a_worker) == before


# --- 5. a wrong token is told apart from none


def test_a_wrong_token_is_told_apart_from_a_missing_one(a2a: A2AServer) -> None:
    """Both got "this A2A server needs its token: send 'Authorization: Bearer TOKEN'"."""
    answers = {
        name: httpx.get(f"{a2a.url}/tasks", headers={**HEADERS, **sent}, timeout=10)
        for name, sent in {
            "none": {},
            "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
            "wrong": {"Authorization": "Bearer not-the-token"},
            "close": {"Authorization": f"Bearer {TOKEN[:-1]}"},
        }.items()
    }
    said = {name: a.json()["message"] for name, a in answers.items()}
    assert all(a.status_code == 401 for a in answers.values()), said
    assert "sent none" in said["none"] and "Authorization: Bearer TOKEN" in said["none"]
    assert "sent none (its Authorization header is not a bearer token)" in said["basic"]
    assert said["wrong"].startswith("the token this request sent is not this A2A server's")
    assert said["close"] == said["wrong"]  # (nothing says how near it came)
    for text in said.values():
        assert TOKEN[:6] not in text and str(len(TOKEN)) not in text, text
    assert 'error="invalid_token"' in answers["wrong"].headers["www-authenticate"]
    assert "error=" not in answers["none"].headers["www-authenticate"]
    right = httpx.get(f"{a2a.url}/tasks", headers={**a2a.headers, **HEADERS}, timeout=10)
    assert right.status_code == 200


# --- 3. one line in the log per request failed while Redis is down


def test_a_request_failed_while_redis_is_down_is_one_line_in_the_log(
    servers: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The handler logged the cause ("a request failed: cannot reach Redis ..."), and the
    SDK then logged the error it answered ("Request error: Code=N/A, ...") on HTTP+JSON and
    on JSON-RPC streams: two lines a request. The app in process, with the log filters
    ``swarm a2a`` installs; its Redis real, and stopped."""
    redis = servers.start()
    redis.stop()
    task_id = "t-01m93kpassetr5fmgy"  # (any id: Redis is not reached)
    body = {"message": _message()}
    one_line_client_errors()

    async def run() -> list[httpx.Response]:
        # (no retries: each request fails at once, not after the 5 s a restart is ridden out)
        async with AsyncSwarm(f"{redis.url}?retries=0", swarm=SWARM) as swarm:
            app = create_app(swarm, queues=[QUEUE], base_url="http://127.0.0.1:1/", push=False)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                answers = [
                    await c.get(f"/tasks/{task_id}", headers=HEADERS),
                    await c.post("/message:send", json=body, headers=HEADERS),
                    await c.post("/message:stream", json=body, headers=HEADERS),
                    await c.post(f"/tasks/{task_id}:subscribe", headers=HEADERS),
                ]
                for method, params in (
                    ("GetTask", {"id": task_id}),
                    ("SubscribeToTask", {"id": task_id}),
                    ("SendStreamingMessage", body),
                ):
                    rpc = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
                    answers.append(await c.post("/", json=rpc, headers=HEADERS))
                return answers

    with caplog.at_level(logging.INFO):
        answers = asyncio.run(run())
    for answer in answers:
        assert "cannot reach its swarm's Redis" in answer.text, answer.text
        assert "(its operator's log says why)" in answer.text
    lines = [r.getMessage() for r in caplog.records if r.name.startswith(("a2a", "redis_swarm"))]
    failed = [line for line in lines if line.startswith("a request failed: cannot reach Redis")]
    assert len(failed) == len(answers), lines
    assert len(lines) == len(answers), lines


def test_a_clients_text_holding_the_marker_does_not_hide_its_line(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The filter dropped every SDK line whose text held "(its operator's log says why)",
    and a client's text is quoted in them: a role of that text hid the SDK's -32602 line.
    Only an internal error's line whose message ends with it (the handler's) is dropped."""
    role = f"ROLE_X {LOGGED_FOR_OPERATOR}"
    message = {**_message(), "role": role}
    body = {"message": message, "configuration": {"returnImmediately": True}}
    one_line_client_errors()

    async def run() -> list[httpx.Response]:
        async with AsyncSwarm(redis_server.url, swarm=f"a2a-log-{uuid.uuid4().hex[:8]}") as swarm:
            app = create_app(swarm, queues=[QUEUE], base_url="http://127.0.0.1:1/", push=False)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                # (the SDK logs the error it answered on HTTP+JSON and JSON-RPC streams)
                rpc = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": body}
                return [
                    await c.post("/message:send", json=body, headers=HEADERS),
                    await c.post("/", json=rpc, headers=HEADERS),
                ]

    with caplog.at_level(logging.INFO):
        rest, jsonrpc = asyncio.run(run())
    assert rest.status_code == 400 and jsonrpc.json()["error"]["code"] == -32602
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("a2a")]
    quoted = [line for line in lines if f'role "{role}" is not one of' in line]
    assert [line.split(":")[0] for line in quoted] == ["Request error", "Request Error (ID"], lines
