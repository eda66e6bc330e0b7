"""Leftovers of a review: a worker user refused another role's operation is told the role
first (it led with "a user made for another swarm", the less likely cause); a --host naming
this machine by a name that resolves to loopback alone is loopback (it was held reachable
from other machines, so a web face refused it without a token), and a face started there
without a token serves the URL it announces, ``http://NAME:PORT/`` (its guard answered only
loopback Host headers: 403); and what an A2A client sees of a failed task the swarm's
operator requeues (docs/a2a.md, "A failed task reopened"). Real servers throughout: Redis
(>= 7 for the ACL users), the web faces as processes."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.responses import Response
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from redis_swarm import PermissionDenied, Settings, Swarm, apply_role
from redis_swarm._errors import ConfigError
from redis_swarm._web import AccessGuard, require_strong_token, require_token_off_loopback

from ._a2a import QUEUE, A2AServer, Receiver, receiver
from ._cli import SRC, interrupt
from ._servers import RedisServer
from .mcp_server._helpers import HTTP_ACCEPT, HTTP_INIT

# --- 1. a worker refused another role's operation is told the role first

ROLES_SWARM = "leftovers-roles"
SHARD_MAY = "a shard or coordinator user may ('swarm acl --role shard --user NAME' makes one"
OTHER_SWARM = "the user was made for another swarm"


def test_a_worker_refused_a_shards_operation_is_told_the_role_before_the_swarm(
    acl_server: RedisServer,
) -> None:
    admin = Settings.from_url(acl_server.url, swarm=ROLES_SWARM)
    user = apply_role(admin, "worker", "leftovers-worker", swarm=ROLES_SWARM).user
    url = f"redis://{user.user}:{user.password}@127.0.0.1:{acl_server.port}"
    with Swarm(url, swarm=ROLES_SWARM) as worker:
        with pytest.raises(PermissionDenied) as refused:
            worker.configure_queue("q", max_abandons=2)  # (a shard's: a key refused)
        said = str(refused.value)
        assert f"a worker may not do this: {SHARD_MAY}" in said, said
        assert OTHER_SWARM in said and "check --swarm / SWARM_NAME" in said, said
        assert said.index(SHARD_MAY) < said.index(OTHER_SWARM), said
        worker.post_task("q", "a worker may post")  # (its swarm is the right one)


# --- 2. a --host that resolves to loopback alone is loopback

ENV = "SWARM_TEST_TOKEN"


def _loopback_name() -> str:
    """This machine's name when it resolves to loopback addresses alone (Debian's
    /etc/hosts gives it 127.0.1.1 or 127.0.0.1) and is none of the names taken as loopback
    without resolving (localhost): else the test is skipped."""
    name = socket.gethostname()
    try:
        found = {str(a[4][0]) for a in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)}
    except socket.gaierror:
        pytest.skip(f"this machine's name {name!r} does not resolve")
    if not found or not all(a.startswith("127.") or a == "::1" for a in found):
        pytest.skip(f"this machine's name {name!r} resolves off loopback: {found}")
    if name.lower() == "localhost" or name.lower().endswith(".localhost"):
        pytest.skip("this machine is named localhost")
    return name


def test_a_host_name_resolving_to_loopback_alone_needs_no_token() -> None:
    name = _loopback_name()
    require_token_off_loopback(name, None, what="it serves the swarm", env=ENV)
    require_strong_token(name, "short", env=ENV)  # (on loopback any token is taken)
    require_token_off_loopback("localhost", None, what="it serves the swarm", env=ENV)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "no-such-host.invalid"])
def test_a_host_off_loopback_or_unresolved_still_needs_a_strong_token(host: str) -> None:
    # (a name that does not resolve is refused for that, as it is with a token)
    said = "cannot listen on" if host.endswith(".invalid") else "reachable from other machines"
    with pytest.raises(ConfigError, match=said):
        require_token_off_loopback(host, None, what="it serves the swarm", env=ENV)
    with pytest.raises(ConfigError, match="a token needs at least 16"):
        require_strong_token(host, "short", env=ENV)


# --- 2b. a face started on such a name, without a token, answers the URL it announces

FACES = {
    "dashboard": (["dashboard"], "dashboard of swarm test at "),
    "a2a": (["a2a", "--queue", "q"], "A2A server of swarm test: card at "),
    "mcp-http": (["mcp", "--transport", "http"], "serving MCP on "),
}


def _fetch(face: str, url: str, host: str | None = None) -> httpx.Response:
    """The face's normal request at ``url`` (its page, its card, an MCP initialize), with
    the Host header ``host`` when given (else the URL's)."""
    headers = {} if host is None else {"Host": host}
    if face == "mcp-http":
        return httpx.post(url, json=HTTP_INIT, headers={**HTTP_ACCEPT, **headers}, timeout=30)
    return httpx.get(url, headers=headers, timeout=30)


@contextlib.contextmanager
def announced_face(redis_url: str, face: str, *options: str) -> Iterator[str]:
    """``swarm FACE ... OPTIONS --port 0`` as a real process, no token in its environment:
    the URL it announces (its first line), the process interrupted at the end."""
    command, prefix = FACES[face]
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    env["PYTHONUNBUFFERED"] = "1"
    for variable in ("SWARM_DASHBOARD_TOKEN", "SWARM_A2A_TOKEN", "SWARM_MCP_TOKEN"):
        env.pop(variable, None)
    argv = [sys.executable, "-m", "redis_swarm", *command, *options, "--port", "0"]
    with subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()  # the announcement, before serving
            assert line.startswith(prefix), line + (proc.stderr.read() if proc.poll() else "")
            yield line[len(prefix) :].split()[0]
        finally:
            interrupt(proc)


@pytest.mark.parametrize("face", FACES.keys())
def test_a_face_on_a_loopback_name_without_a_token_answers_its_own_url(
    redis_url: str, face: str
) -> None:
    """``--host vm`` (a name that resolves to loopback alone) without a token: the URL the
    face announces, ``http://vm:PORT/``, is served (it was refused 403, saying to open it as
    http://127.0.0.1); a Host header naming another name still is refused, whatever that
    name resolves to (never resolved: DNS rebinding)."""
    name = _loopback_name()
    with announced_face(redis_url, face, "--host", name) as url:
        found = re.fullmatch(rf"http://{re.escape(name)}:(\d+)(/.*)", url)
        assert found, url
        port = int(found[1])
        # The URL announced, as announced (Host: NAME:PORT): the face's normal answer.
        answer = _fetch(face, url)
        assert answer.status_code == 200, answer.text
        if face == "a2a":  # the card names that URL, and its JSON-RPC route takes it
            (interface, *_) = answer.json()["supportedInterfaces"]
            assert interface["url"] == f"http://{name}:{port}/", interface
        # The same name in capitals (a Host header's name has no case).
        assert _fetch(face, url, f"{name.upper()}:{port}").status_code == 200
        # Loopback's own names still are served.
        loopback = url.replace(f"//{name}:", "//127.0.0.1:")
        assert _fetch(face, loopback).status_code == 200
        assert _fetch(face, loopback, f"localhost:{port}").status_code == 200
        # Any other name is not: the page of a site whose name was rebound to
        # 127.0.0.1 reads nothing through the viewer's browser.
        for other in ("evil.example", f"{name}.evil.example", f"x{name}"):
            refused = _fetch(face, loopback, f"{other}:{port}")
            assert refused.status_code == 403, (other, refused.text)
            said = refused.json()["message"]
            urls = f"http://127.0.0.1:{port} or http://{name}:{port}"
            assert f"{urls}, or start it with --token" in said


def guarded(
    token: str | None, own_host: str | None = None, base_url: str = "http://127.0.0.1:8765"
) -> TestClient:
    """An ``AccessGuard`` around an app that answers "ok", reached at ``base_url``."""

    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        await Response("ok")(scope, receive, send)

    guard = AccessGuard(ok, token, "this face", own_host=own_host)
    return TestClient(guard, base_url=base_url)


@pytest.mark.parametrize("own_host", ["0.0.0.0", "no-such-host.invalid", "192.0.2.1"])
def test_an_own_host_other_machines_reach_is_no_name_served_without_a_token(
    own_host: str,
) -> None:
    """Only a name of the face's own that resolves to loopback alone is served besides
    loopback's: a host other machines reach (which the faces refuse without a token anyway)
    or one that does not resolve is not, by its Host header."""
    client = guarded(None, own_host)
    refused = client.get("/", headers={"Host": f"{own_host}:8765"})
    assert refused.status_code == 403
    assert refused.json()["message"].endswith(
        "open it as http://127.0.0.1:8765, or start it with --token"
    )
    assert client.get("/").status_code == 200


def test_with_a_token_the_own_host_lets_no_request_in_without_it() -> None:
    name = _loopback_name()
    client = guarded("a-token-of-16-chars", name)
    assert client.get("/", headers={"Host": f"{name}:8765"}).status_code == 401
    took = client.get(
        "/", headers={"Host": "evil.example", "Authorization": "Bearer a-token-of-16-chars"}
    )
    assert took.status_code == 200


# --- 3. a failed task the operator requeues


@pytest.fixture
def hook() -> Iterator[Receiver]:
    yield from receiver()


def _rpc(a2a: A2AServer, method: str, params: dict[str, Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    headers = {**a2a.headers, "A2A-Version": "1.0"}
    return httpx.post(a2a.url + "/", json=body, headers=headers, timeout=20).json()


def _state(a2a: A2AServer, task_id: str) -> str:
    state: str = _rpc(a2a, "GetTask", {"id": task_id})["result"]["status"]["state"]
    return state


def test_a_failed_task_requeued_is_said_to_be_reopenable_then_open_again(
    a2a: A2AServer, a2a_worker: Swarm, hook: Receiver
) -> None:
    message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": "x"}]}
    sent = _rpc(
        a2a, "SendMessage", {"message": message, "configuration": {"returnImmediately": True}}
    )
    task_id = sent["result"]["task"]["id"]
    claimed = a2a_worker.claim(QUEUE, worker="w", wait_s=5)
    assert claimed is not None and claimed.id == task_id and claimed.token is not None
    a2a_worker.fail(claimed.id, claimed.token, "the source is gone", retry=False)
    assert _state(a2a, task_id) == "TASK_STATE_FAILED"
    # While failed, a webhook is refused, saying the operator may reopen it ("it changes no
    # more" alone was untrue of a failed task).
    answer = _rpc(a2a, "CreateTaskPushNotificationConfig", {"taskId": task_id, "url": hook.url})
    said = answer["error"]["message"]
    assert f"task {task_id} is TASK_STATE_FAILED" in said, said
    assert "unless the swarm's operator requeues it" in said, said
    assert a2a_worker.webhooks(task_id) == []
    # The operator requeues it: the same task, open again (docs/a2a.md says so).
    a2a_worker.requeue_dead(task_id)
    assert _state(a2a, task_id) == "TASK_STATE_SUBMITTED"
    answer = _rpc(a2a, "CreateTaskPushNotificationConfig", {"taskId": task_id, "url": hook.url})
    assert answer["result"]["url"] == hook.url, answer
    # A completed task is told it changes no more, with no "unless".
    claimed = a2a_worker.claim(QUEUE, worker="w", wait_s=5)
    assert claimed is not None and claimed.id == task_id and claimed.token is not None
    a2a_worker.report(task_id, claimed.token, {"summary": "done after all"})
    assert _state(a2a, task_id) == "TASK_STATE_COMPLETED"
    answer = _rpc(a2a, "CreateTaskPushNotificationConfig", {"taskId": task_id, "url": hook.url})
    said = answer["error"]["message"]
    assert "it changes no more, so" in said and "unless" not in said, said
