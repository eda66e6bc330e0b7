"""What a second tour of ``swarm a2a`` found: a push notification config for a settled task
stored for good and never fired; a body that is not UTF-8 an internal error with a
traceback; the client's messageId and role lost from the task's history, and a message
without a messageId taken (which turned off the retry dedupe); webhook addresses checked
only when given, not before each post; an unknown method or path answered barely (a path
redirected first); Redis out of reach answered 500 on HTTP+JSON."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher

from redis_swarm import AsyncSwarm, Settings, Swarm, apply_role
from redis_swarm.a2a_server._addresses import webhook_allowed, webhook_target
from redis_swarm.a2a_server._logs import one_line_client_errors
from redis_swarm.a2a_server._push import PushDispatcher
from redis_swarm.a2a_server._rpc import A2A_0_3_METHODS
from redis_swarm.a2a_server.app import create_app

from ._a2a import QUEUE, SWARM, TOKEN, A2AServer, Receiver, receiver, start_a2a, stop, work_one
from ._servers import RedisServer, ServerFactory

HEADERS = {"Authorization": f"Bearer {TOKEN}", "A2A-Version": "1.0"}


@pytest.fixture
def hook() -> Iterator[Receiver]:
    yield from receiver()


def _rpc(a2a: A2AServer, method: str, params: dict[str, Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return httpx.post(a2a.url + "/", json=body, headers=HEADERS, timeout=20).json()


def _message(text: str = "look it up", **fields: Any) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": text}],
            **fields}  # fmt: skip


def _sent(a2a: A2AServer, message: dict[str, Any]) -> str:
    answer = _rpc(a2a, "SendMessage", {"message": message,
                                       "configuration": {"returnImmediately": True}})  # fmt: skip
    assert "result" in answer, answer
    return str(answer["result"]["task"]["id"])


# --- 1. a push notification config for a settled task


def test_a_push_config_for_a_settled_task_is_refused_and_not_stored(
    a2a: A2AServer, a2a_worker: Swarm, hook: Receiver
) -> None:
    """It was answered with the config, stored for good (no expiry) and never fired."""
    task_id = _sent(a2a, _message())
    while work_one(a2a_worker, QUEUE, "done") != task_id:  # (the module's others first)
        pass
    cancelled = _sent(a2a, _message())
    a2a_worker.cancel(cancelled)
    for settled, state in ((task_id, "TASK_STATE_COMPLETED"), (cancelled, "TASK_STATE_CANCELED")):
        answer = _rpc(a2a, "CreateTaskPushNotificationConfig", {"taskId": settled, "url": hook.url})
        assert "error" in answer, answer
        assert answer["error"]["code"] == -32004  # UnsupportedOperation, as SubscribeToTask
        said = answer["error"]["message"]
        assert f"task {settled} is {state}" in said and "GetTask returns the task" in said, said
        assert a2a_worker.webhooks(settled) == []
    rest = httpx.post(f"{a2a.url}/tasks/{task_id}/pushNotificationConfigs",
                      json={"url": hook.url}, headers=HEADERS, timeout=20)  # fmt: skip
    assert rest.status_code == 400 and "GetTask returns the task" in rest.text, rest.text
    assert a2a_worker.webhooks(task_id) == []
    # A task not settled takes one, as before.
    pending = _sent(a2a, _message())
    answer = _rpc(a2a, "CreateTaskPushNotificationConfig", {"taskId": pending, "url": hook.url})
    assert answer["result"]["url"] == hook.url, answer
    assert [w.url for w in a2a_worker.webhooks(pending)] == [hook.url]


# --- 2. a body that is not UTF-8


BAD_RPC = b'{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":{"contextId":"\xff"}}'
BAD_REST = b'{"message":{"messageId":"m-1","role":"ROLE_USER","parts":[{"text":"\xff"}]}}'


def _bad_bodies(a2a: A2AServer) -> None:
    headers = {**HEADERS, "Content-Type": "application/json"}
    rpc = httpx.post(a2a.url + "/", content=BAD_RPC, headers=headers, timeout=20)
    assert rpc.status_code == 200
    assert rpc.json()["id"] is None and rpc.json()["error"]["code"] == -32700, rpc.text
    said = rpc.json()["error"]["message"]
    assert "not UTF-8" in said and "send it as UTF-8 JSON" in said and "codec" not in said
    rest = httpx.post(a2a.url + "/message:send", content=BAD_REST, headers=headers, timeout=20)
    assert rest.status_code == 400, rest.text
    error = rest.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and "send it as UTF-8 JSON" in error["message"]


def test_a_body_that_is_not_utf8_is_a_parse_error_of_one_log_line(
    a2a_redis: RedisServer, a2a_worker: Swarm
) -> None:
    """It was an internal error (-32603 with the codec's words; HTTP+JSON 500) and a
    traceback in the log; nothing is posted."""
    server = start_a2a(a2a_redis.url, SWARM, TOKEN, "--queue", "utf8-only")
    try:
        _bad_bodies(server)
    finally:
        err = stop(server)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "not UTF-8" in line]
    assert len(lines) == 2 and all("0xff" in line for line in lines), err
    assert a2a_worker.queue_stats().get("utf8-only", {}).get("pending", 0) == 0


# --- 3. the client's messageId and role; a message without messageId


def test_the_history_keeps_the_clients_message_id_and_role(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    """The history said ``TASK-request`` and ROLE_USER whatever the client sent."""
    for role in ("ROLE_USER", "ROLE_AGENT"):
        message = _message(role=role, messageId=f"client-{role}-{uuid.uuid4()}")
        task_id = _sent(a2a, message)
        (first,) = _rpc(a2a, "GetTask", {"id": task_id})["result"]["history"]
        assert (first["messageId"], first["role"]) == (message["messageId"], role), first
        listed = _rpc(a2a, "ListTasks", {"contextId": first["contextId"]})["result"]["tasks"]
        assert listed[0]["history"][0]["messageId"] == message["messageId"]
        assert _sent(a2a, message) == task_id  # a retry: the task it posted, as before
    # A message without a role is refused: A2A requires one (tests/test_a2a_leftovers.py).
    message = _message()
    del message["role"]
    answer = _rpc(a2a, "SendMessage", {"message": message})
    assert answer["error"]["code"] == -32602 and "message.role" in answer["error"]["message"]


def test_tasks_stored_before_read_as_they_did(a2a: A2AServer, a2a_worker: Swarm) -> None:
    """A task an earlier version posted from a message (its dedupe key, of the message's id),
    and one posted outside A2A (none)."""
    earlier = a2a_worker.post_task(QUEUE, "posted by 0.x", dedupe_key="a2a-message:m-old-1")
    outside = a2a_worker.post_task(QUEUE, "posted by a shard")
    keyed = a2a_worker.post_task(QUEUE, "posted with a key", dedupe_key="batch-7")
    for task, message_id in (
        (earlier, "m-old-1"),
        (outside, f"{outside.id}-request"),
        (keyed, f"{keyed.id}-request"),
    ):
        (first,) = _rpc(a2a, "GetTask", {"id": task.id})["result"]["history"]
        assert (first["messageId"], first["role"]) == (message_id, "ROLE_USER"), first


@pytest.mark.parametrize("message_id", [None, "", "   "])
def test_a_message_without_message_id_is_refused(
    a2a: A2AServer, a2a_worker: Swarm, message_id: str | None
) -> None:
    """It was posted, with no dedupe key: a retry posted a second task."""
    message = _message()
    if message_id is None:
        del message["messageId"]
    else:
        message["messageId"] = message_id
    before = a2a_worker.queue_stats()
    answer = _rpc(a2a, "SendMessage", {"message": message})
    assert answer.get("error", {}).get("code") == -32602, answer
    said = answer["error"]["message"]
    assert "no messageId" in said and "the same one when you send it again" in said, said
    rest = httpx.post(a2a.url + "/message:send", json={"message": message},
                      headers=HEADERS, timeout=20)  # fmt: skip
    assert rest.status_code == 400 and "no messageId" in rest.text, rest.text
    assert a2a_worker.queue_stats() == before  # nothing posted


# --- 4. a webhook's address checked again before each post


def test_a_webhook_on_loopback_is_not_posted_to_by_a_server_that_refuses_it(
    a2a_redis: RedisServer, hook: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A server off loopback (``private_webhooks=False``) refuses a loopback webhook given to
    it, but posted to one stored otherwise (another server's rule, another client of the
    swarm) or one whose name resolved elsewhere since: its address is checked only when
    given. The webhook here is written with the public operation, as another server would."""
    swarm_name = f"a2a-rebind-{uuid.uuid4().hex[:8]}"
    one_line_client_errors()  # (as swarm a2a does: the check's own line is ours)

    async def body() -> tuple[str, list[str]]:
        async with AsyncSwarm(a2a_redis.url, swarm=swarm_name) as swarm:
            app = create_app(swarm, queues=[QUEUE], base_url="http://127.0.0.1:1/",
                             token=TOKEN, private_webhooks=False)  # fmt: skip
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://a") as c:
                    sent = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                            "params": {"message": _message(),
                                       "configuration": {"returnImmediately": True}}}  # fmt: skip
                    task_id = (await c.post("/", json=sent, headers=HEADERS)).json()["result"][
                        "task"
                    ]["id"]
                    refused = {**sent, "method": "CreateTaskPushNotificationConfig",
                               "params": {"taskId": task_id, "url": hook.url}}  # fmt: skip
                    answer = (await c.post("/", json=refused, headers=HEADERS)).json()
                    assert "is refused" in answer["error"]["message"], answer
                await swarm.set_webhook(task_id, hook.url)  # as another server would
                claimed = await swarm.claim(QUEUE, worker="w", wait_s=5)
                assert claimed is not None and claimed.id == task_id
                await swarm.report(task_id, claimed.token, {"summary": "done"})
                # The final state's delivery removes the webhook, posted to or not.
                for _ in range(600):
                    if not await swarm.webhooks(task_id):
                        break
                    await asyncio.sleep(0.05)
                left = [w.url for w in await swarm.webhooks(task_id)]
        return task_id, left

    with caplog.at_level(logging.INFO):
        task_id, left = asyncio.run(body())
    assert left == [], "the final state was never handled"
    assert hook.posts == [], hook.posts
    lines = [r.getMessage() for r in caplog.records if "not posted" in r.getMessage()]
    # Each update: the claim and the completion (its artifact, its status).
    assert len(lines) == 3 and all(task_id in line and hook.url in line for line in lines), lines
    assert not [r for r in caplog.records if r.name == "a2a.utils.push_url_validator"]


# --- 5. unknown methods and paths; Redis out of reach


def test_an_unknown_method_is_told_the_methods(a2a: A2AServer) -> None:
    """It got a bare "Method not found"."""
    answer = _rpc(a2a, "FrobnicateTask", {})
    assert answer["error"]["code"] == -32601
    said = answer["error"]["message"]
    assert "'FrobnicateTask' is no method of A2A 1.0" in said, said
    methods = list(JsonRpcDispatcher.METHOD_TO_MODEL)  # (the SDK's route's)
    assert said.endswith(", ".join(methods)), said
    assert set(A2A_0_3_METHODS.values()) == set(methods)
    # A2A 0.3's names are still told their 1.0 name.
    assert "where it is 'GetTask'" in _rpc(a2a, "tasks/get", {})["error"]["message"]


def test_an_unknown_path_is_a_json_404_naming_the_routes(a2a: A2AServer) -> None:
    """It was a 307 to ``/nope/``, then a plain-text 404."""
    for path in ("/nope", "/nope/", "/tasks/x/y/z", "/tasks/"):
        answer = httpx.get(a2a.url + path, headers=HEADERS, timeout=20)
        assert answer.status_code == 404, (path, answer.status_code, answer.headers)
        error = answer.json()["error"]
        assert error["status"] == "NOT_FOUND" and f"no route {path}:" in error["message"]
        assert "POST /message:send" in error["message"] and "GET /tasks/{id}" in error["message"]
    wrong = httpx.get(a2a.url + "/message:send", headers=HEADERS, timeout=20)
    assert (
        wrong.status_code == 405
        and "/message:send takes no GET" in wrong.json()["error"]["message"]
    )
    assert "POST" in wrong.headers["allow"]


def test_a_method_the_card_or_a_task_route_does_not_take_is_405(a2a: A2AServer) -> None:
    """The tenant's mount matched such a path first, and its 404 said "no route" of a path
    the same answer listed as served."""
    for method, path, allowed in (
        ("DELETE", "/.well-known/agent-card.json", "GET"),
        ("POST", "/.well-known/agent-card.json", "GET"),
        ("DELETE", "/tasks/t-1", "GET"),
    ):
        answer = httpx.request(method, a2a.url + path, headers=HEADERS, timeout=20)
        assert answer.status_code == 405, (method, path, answer.status_code, answer.text)
        assert f"{path} takes no {method}" in answer.json()["error"]["message"]
        assert allowed in answer.headers["allow"]


def test_redis_out_of_reach_is_503_with_retry_after(servers: ServerFactory) -> None:
    """HTTP+JSON answered 500 INTERNAL; JSON-RPC keeps its internal error, which says when
    to try again."""
    redis = servers.start()

    async def body() -> None:
        # (no retries: each request fails at once, as it would once the retries ran out)
        async with AsyncSwarm(f"{redis.url}?retries=0", swarm="a2a-down") as swarm:
            app = create_app(swarm, queues=[QUEUE], base_url="http://127.0.0.1:1/",
                             token=TOKEN, push=False)  # fmt: skip
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://a") as c:
                assert (await c.get("/tasks", headers=HEADERS)).status_code == 200
                redis.stop()
                for method, path, sent in (
                    ("GET", "/tasks", None),
                    ("GET", "/tasks/t-0123", None),
                    ("POST", "/message:send", {"message": _message()}),
                ):
                    answer = await c.request(method, path, json=sent, headers=HEADERS)
                    assert answer.status_code == 503, (path, answer.text)
                    assert answer.headers["retry-after"] == "5"
                    error = answer.json()["error"]
                    assert error["code"] == 503 and error["status"] == "UNAVAILABLE"
                    # (it began "ConnectionFailed: ...", a Python class name)
                    said = error["message"]
                    assert said.startswith("this A2A server cannot reach its swarm's Redis")
                    assert "try again later" in said
                rpc = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
                answer = await c.post("/", json=rpc, headers=HEADERS)
                assert answer.status_code == 200 and answer.json()["error"]["code"] == -32603
                assert "try again later" in answer.json()["error"]["message"]

    asyncio.run(body())


# --- 6. a review of the above: a lookup that failed once, a retry across versions and roles,
# a long messageId, a user without a right


def test_a_webhook_whose_host_fails_to_resolve_once_still_gets_every_update(
    a2a_redis: RedisServer, hook: Receiver
) -> None:
    """The check before each post (the SDK's) read a lookup that failed, even a temporary
    EAI_AGAIN, as a forbidden address: the update was dropped, not retried, and after the
    final one the webhook was removed, so a client lost the final state for good. The
    resolver here fails once, then answers the receiver's loopback address, which the
    dispatcher's rule takes for public (the post goes to the address checked)."""
    lookups: list[str] = []

    async def flaky(host: str, port: int) -> list[str]:
        lookups.append(host)
        if len(lookups) == 1:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return ["127.0.0.1"]

    async def private(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]

    async def body() -> tuple[str, list[str]]:
        # The same rule at registration: one private address forbids, no answer is refused.
        assert await webhook_allowed(hook.url, resolve=private) is False
        assert await webhook_allowed("ftp://example.com/", resolve=flaky) is False
        with pytest.raises(OSError, match="Temporary failure"):
            await webhook_allowed(hook.url, resolve=flaky)
        lookups.clear()
        swarm_name = f"a2a-dns-{uuid.uuid4().hex[:8]}"
        async with (
            AsyncSwarm(a2a_redis.url, swarm=swarm_name) as swarm,
            httpx.AsyncClient(timeout=10) as http,
        ):
            check = functools.partial(webhook_target, resolve=flaky, blocked=lambda _ip: False)
            dispatcher = PushDispatcher(
                swarm, [QUEUE], http, retry_delays_s=(0.05, 0.05, 0.05), url_check=check
            )
            task = await swarm.post_task(QUEUE, "look it up")
            await swarm.set_webhook(task.id, hook.url)
            running = asyncio.create_task(dispatcher.run())
            try:
                claimed = await swarm.claim(QUEUE, worker="w", wait_s=5)
                assert claimed is not None and claimed.id == task.id
                await swarm.report(task.id, claimed.token, {"summary": "done"})
                for _ in range(600):
                    if not await swarm.webhooks(task.id):
                        break
                    await asyncio.sleep(0.05)
                left = [w.url for w in await swarm.webhooks(task.id)]
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
        return task.id, left

    task_id, left = asyncio.run(body())
    assert left == [], "the final state was never handled"
    assert len(lookups) == 4  # three updates, the first looked up twice
    sent = [post for _headers, post in hook.wait_for(3)]
    states = [p["statusUpdate"]["status"]["state"] for p in sent if "statusUpdate" in p]
    assert states == ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"], sent
    assert "artifactUpdate" in sent[1] and all(task_id in str(p) for p in sent), sent


def test_a_retry_finds_its_task_whatever_its_role_and_version(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    """An agent's message had a dedupe key of its own (``a2a-agent-message:ID``): its retry
    after an upgrade from a version that keyed every message ``a2a-message:ID`` posted a
    second task, and so did a retry that changed the role. The role is kept in the task's
    data instead; its history reads it back."""
    earlier_id = f"m-{uuid.uuid4()}"  # posted from an agent's message by the earlier version
    earlier = a2a_worker.post_task(QUEUE, "look it up", dedupe_key=f"a2a-message:{earlier_id}")
    assert _sent(a2a, _message(messageId=earlier_id, role="ROLE_AGENT")) == earlier.id
    (first,) = _rpc(a2a, "GetTask", {"id": earlier.id})["result"]["history"]
    assert (first["messageId"], first["role"]) == (earlier_id, "ROLE_USER")  # (none kept)
    # A retry that changes the role gets the task the first message posted, with its role.
    data = {"a2aRole": "ROLE_AGENT", "data": [1]}  # (user data that reads as a role: kept)
    for role, other in (("ROLE_USER", "ROLE_AGENT"), ("ROLE_AGENT", "ROLE_USER")):
        sent = _message(role=role, parts=[{"text": "look"}, {"data": data}])
        task_id = _sent(a2a, sent)
        assert _sent(a2a, {**sent, "role": other}) == task_id
        (first,) = _rpc(a2a, "GetTask", {"id": task_id})["result"]["history"]
        assert (first["messageId"], first["role"]) == (sent["messageId"], role), first
        assert first["parts"][1]["data"] == data, first  # as sent, whatever the role
        stored = a2a_worker.get_task(task_id)
        assert stored.dedupe_key == f"a2a-message:{sent['messageId']}"
        if role == "ROLE_AGENT":  # what its workers see: who sent it
            assert stored.data == {"a2aRole": "ROLE_AGENT", "data": data}


def test_a_long_message_id_is_refused_in_its_own_words(a2a: A2AServer, a2a_worker: Swarm) -> None:
    """Over 244 characters (an agent's: 238) it was refused as a "dedupe key ... the limit is
    256: shorten it": a key the client never sent."""
    for role in ("ROLE_USER", "ROLE_AGENT"):
        longest = _message(role=role, messageId=f"{uuid.uuid4()}".ljust(244, "x"))
        assert _sent(a2a, longest) == _sent(a2a, longest)  # (taken, and a retry finds it)
        before = a2a_worker.queue_stats()
        answer = _rpc(a2a, "SendMessage", {"message": {**longest, "messageId": "y" * 245}})
        assert answer.get("error", {}).get("code") == -32602, answer
        said = answer["error"]["message"]
        assert "the messageId is 245 characters long; the limit is 244" in said, said
        assert "dedupe" not in said and "a shorter unique id" in said, said
        assert a2a_worker.queue_stats() == before  # nothing posted


def test_a_user_without_a_right_is_no_503_to_retry(
    a2a_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis user that may not post tasks (a worker's) was answered as Redis gone: 503 with
    Retry-After (``retryAfterSeconds`` on JSON-RPC), so a client retried forever what only
    the operator can fix. It is an internal error saying so; the log says the role."""
    spec = apply_role(
        Settings.from_url(a2a_redis.url, swarm=SWARM), "worker", "a2a-tour-worker"
    ).user
    url = f"redis://{spec.user}:{spec.password}@127.0.0.1:{a2a_redis.port}"

    async def body() -> None:
        async with AsyncSwarm(url, swarm=SWARM) as swarm:
            app = create_app(swarm, queues=[QUEUE], base_url="http://127.0.0.1:1/",
                             token=TOKEN, push=False)  # fmt: skip
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://a") as c:
                sent = {"message": _message(), "configuration": {"returnImmediately": True}}
                answer = await c.post("/message:send", json=sent, headers=HEADERS)
                assert answer.status_code == 500, answer.text
                assert "retry-after" not in answer.headers
                error = answer.json()["error"]
                assert error["status"] == "INTERNAL" and "retryAfterSeconds" not in answer.text
                # (it began "PermissionDenied: ...", a Python class name)
                assert error["message"].startswith("this A2A server's Redis user lacks a right")
                assert "its operator" in error["message"] and "try again" not in error["message"]
                rpc = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": sent}
                error = (await c.post("/", json=rpc, headers=HEADERS)).json()["error"]
                assert error["code"] == -32603 and "Redis user lacks a right" in error["message"]
                assert "retryAfterSeconds" not in str(error.get("data")), error

    with caplog.at_level(logging.WARNING):
        asyncio.run(body())
    logged = [r.getMessage() for r in caplog.records if "a request failed" in r.getMessage()]
    assert logged and all(f"swarm acl --role shard --swarm {SWARM}" in m for m in logged)
    # (the operator's log advised "post it without --pass (pass_name)", a CLI option, where
    # this server posts every message to its context)
    assert not any("--pass" in m or "pass_name" in m for m in logged), logged
