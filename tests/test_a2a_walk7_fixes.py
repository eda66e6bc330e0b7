"""What a seventh walkthrough of ``swarm a2a`` (docs/a2a.md) found: a message whose push
notification config was refused still posted its task; webhooks the core took (a control
character in the url, a non-ASCII or CR/LF token) crashed the push sender, kept the webhook
for good, or wrote its token in the log; whole numbers of a data part reached the worker as
floats; a wrong-typed ``params`` member was skipped; the JS SDK's ``"UNRECOGNIZED"`` status
refused; errors without a next step; a running server's log telling its operator to run a
command again. Real servers: Redis, ``swarm a2a``, a webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.utils.errors import InternalError

from redis_swarm import AsyncSwarm, NotFound, Swarm, ValidationError
from redis_swarm._codec import dumps
from redis_swarm._errors import ConnectionFailed
from redis_swarm._models import Webhook
from redis_swarm.a2a_server._convert import task_id_of
from redis_swarm.a2a_server._handler import swarm_errors
from redis_swarm.a2a_server._push import PushDispatcher, push_client

from ._a2a import OTHER, QUEUE, TOKEN, A2AServer, Receiver, receiver
from ._servers import RedisServer

HEADERS = {"Authorization": f"Bearer {TOKEN}", "A2A-Version": "1.0"}
PUSH_LOGGER = "redis_swarm.a2a_server._push"
DOCS = Path(__file__).parents[1] / "docs" / "a2a.md"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    yield from receiver()


def _rpc(a2a: A2AServer, method: str, params: Any) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return httpx.post(a2a.url + "/", json=body, headers=HEADERS, timeout=20).json()


def _message(**fields: Any) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER",
            "parts": [{"text": "look it up"}], **fields}  # fmt: skip


def _error(answer: Any) -> str:
    assert "error" in answer, answer
    assert answer["error"]["code"] == -32602, answer
    said: str = answer["error"]["message"]
    return said


# --- 1. a refused push notification config posts no task


@pytest.mark.parametrize(
    ("push", "said"),
    [
        ({"url": "ftp://x"}, "give an http(s) URL (https for a server on a public network)"),
        ({"url": "http://127.0.0.1:1/" + "a" * 3000}, "the limit is 2048: give a shorter URL"),
        ({"url": "http://127.0.0.1:1/\u001b[31mRED"}, "percent-encode them"),
        ({"url": "http://127.0.0.1:1/h", "token": "t" * 5000},
         "webhook token is 5000 characters long; the limit is 4096"),
        ({"url": "http://127.0.0.1:1/h", "token": "tøken"}, "visible ASCII only"),
        ({"url": "http://127.0.0.1:1/h", "token": "a\r\nX-Injected: 1"}, "visible ASCII only"),
        ({"url": "http://127.0.0.1:1/h", "id": "no good id!"}, "webhook id"),
    ],
)  # fmt: skip
def test_a_message_whose_push_config_is_refused_posts_no_task(
    a2a: A2AServer, a2a_worker: Swarm, push: dict[str, Any], said: str
) -> None:
    """The client got -32602, yet the task was posted (and run by a worker); a resend with a
    new messageId posted a second. Every rule of the core is checked before the post."""
    for _ in range(2):  # (the resend, with a new messageId)
        message = _message()
        params = {"message": message,
                  "configuration": {"returnImmediately": True,
                                    "taskPushNotificationConfig": push}}  # fmt: skip
        refusal = _error(_rpc(a2a, "SendMessage", params))
        assert said in refusal, refusal
        assert "tøken" not in refusal and "X-Injected" not in refusal, refusal  # (a secret)
        posted = task_id_of(message["messageId"], [QUEUE, OTHER])
        with pytest.raises(NotFound):  # (the refused message posted its task)
            a2a_worker.get_task(posted)


def test_create_config_is_refused_alike(a2a: A2AServer) -> None:
    task_id = _rpc(a2a, "SendMessage", {"message": _message(),
                                        "configuration": {"returnImmediately": True}})  # fmt: skip
    task_id = task_id["result"]["task"]["id"]
    refusal = _error(_rpc(a2a, "CreateTaskPushNotificationConfig",
                          {"taskId": task_id, "url": "http://127.0.0.1:1/h",
                           "authentication": {"scheme": "Bearer",
                                              "credentials": "cr\u00e9d"}}))  # fmt: skip
    assert "webhook auth_credentials holds" in refusal and "cr\u00e9d" not in refusal, refusal


def test_the_core_refuses_what_no_header_or_url_carries(redis_server: RedisServer) -> None:
    with Swarm(redis_server.url, swarm=f"hooks-{uuid.uuid4().hex[:6]}") as swarm:
        task = swarm.post_task(QUEUE, "look it up")
        for url, token in (
            ("http://127.0.0.1:1/\u001b[31mRED", None),
            ("http://127.0.0.1:1/a b", None),
            ("http://127.0.0.1:1/h", "t\u00f8ken"),
            ("http://127.0.0.1:1/h", "a\r\nX-Injected: 1"),
            ("http://127.0.0.1:1/h", "tab\there"),
        ):
            with pytest.raises(ValidationError) as refused:
                swarm.set_webhook(task.id, url, token=token)
            assert token is None or token not in str(refused.value), refused.value
        assert swarm.webhooks(task.id) == []
        swarm.check_webhook("https://example.com/h", token="Aa0-._~+/=", webhook_id="w-1")
        # A URL's credentials are never quoted in a refusal.
        for url in ("ftp://bob:s3cret@example.com/h", "https://bob:s3cret@example.com/a b"):
            with pytest.raises(ValidationError) as refused:
                swarm.check_webhook(url)
            assert "s3cret" not in str(refused.value) and "***@" in str(refused.value)
        # Credentials may hold single spaces between visible characters (Digest's, AWS's
        # name=value lists); a token or a scheme none, credentials no CR, LF or tab.
        swarm.check_webhook(
            "https://example.com/h", auth_scheme="Digest",
            auth_credentials='username="a", realm="r", nonce="n"',
        )  # fmt: skip
        for given in ({"auth_scheme": "Dig est"}, {"auth_credentials": "a=1,\r\nX: 1"},
                      {"auth_credentials": "a=1,\tb=2"}, {"auth_credentials": " a=1"}):  # fmt: skip
            with pytest.raises(ValidationError, match="use only letters, digits and punct"):
                swarm.check_webhook("https://example.com/h", **given)


# --- 2, 3. webhooks stored before the core refused them: no crash, no secret in the log


def _store_raw(redis_server: RedisServer, swarm: AsyncSwarm, hook: Webhook, since: str) -> None:
    """A webhook as an older version stored it, without today's checks."""
    key = swarm.keys.webhooks(hook.task_id)
    client = redis_server.client()
    try:
        client.hset(key, hook.id, dumps(hook.to_dict()))
        client.hsetnx(key, hook.id + "|sent", since)
    finally:
        client.close()


def test_a_webhook_no_request_can_be_made_of_is_dropped_once_and_removed(
    redis_server: RedisServer, hook: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Each update logged a traceback ("Task exception was never retrieved ...
    httpx.InvalidURL", UnicodeEncodeError) and the webhook was never removed; a CR/LF token
    was retried as a network error, its value in the log ("Illegal header value b'a\\r\\n
    X-Injected: 1'"). Now one line per update, no retry, the webhooks removed, the good
    webhook of the same task served, and no token in any line."""
    bad = {
        "w-url": ("http://127.0.0.1:1/\u001b[31mRED", None),
        "w-utf": (hook.url, "t\u00f8ken-secret"),
        "w-crlf": (hook.url, "a\r\nX-Injected: 1"),
    }

    async def body() -> list[Webhook]:
        async with (
            AsyncSwarm(redis_server.url, swarm=f"push-{uuid.uuid4().hex[:8]}") as swarm,
            push_client(timeout_s=5) as http,
        ):
            dispatcher = PushDispatcher(swarm, [QUEUE], http, retry_delays_s=(0.05, 0.05))
            task = await swarm.post_task(QUEUE, "look it up")
            since = await swarm.last_event_id() or "0-0"
            for hook_id, (url, token) in bad.items():
                record = Webhook(id=hook_id, task_id=task.id, url=url, token=token,
                                 auth_scheme=None, auth_credentials=None, created_at=0)  # fmt: skip
                _store_raw(redis_server, swarm, record, since)
            await swarm.set_webhook(task.id, hook.url, webhook_id="w-good", since=since)
            running = asyncio.create_task(dispatcher.run())
            try:
                claimed = await swarm.claim(QUEUE, worker="w", wait_s=5)
                assert claimed is not None and claimed.id == task.id
                await swarm.report(task.id, claimed.token, {"summary": "done"})
                deadline = time.monotonic() + 10
                while (left := await swarm.webhooks(task.id)) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            return left

    with caplog.at_level(logging.INFO):
        left = asyncio.run(body())
    said = [r.getMessage() for r in caplog.records if r.name == PUSH_LOGGER]
    assert not left, f"webhooks kept after the task settled: {[w.id for w in left]}\n{said}"
    assert not [r for r in caplog.records if r.exc_info or "never retrieved" in r.getMessage()]
    text = "\n".join(said)
    assert "X-Injected" not in text and "t\u00f8ken" not in text and "secret" not in text, text
    dropped = [line for line in said if "no HTTP request can be made" in line]
    assert len(dropped) >= 3 and not [line for line in said if "giving up" in line], said
    assert all(h.get("x-a2a-notification-token") is None for h, _ in hook.posts), hook.posts
    assert hook.posts, "the good webhook of the task got nothing"


# --- 4. whole numbers of a data part


def test_whole_numbers_of_a_data_part_reach_the_worker_as_integers(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    message = _message(parts=[{"text": "count them"},
                              {"data": {"count": 3, "ratio": 0.5, "ids": [1, 2]}}])  # fmt: skip
    params = {"message": message, "configuration": {"returnImmediately": True}}
    task_id = _rpc(a2a, "SendMessage", params)["result"]["task"]["id"]
    assert task_id == task_id_of(message["messageId"], [QUEUE, OTHER])  # (as tested above)
    task = a2a_worker.get_task(task_id)
    assert task is not None
    assert task.data == {"count": 3, "ratio": 0.5, "ids": [1, 2]}
    assert type(task.data["count"]) is int and type(task.data["ids"][0]) is int


# --- 5. a wrong-typed object member of params


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"message": "hello"}, "params.message is a string; it must be an object"),
        ({"message": _message(), "configuration": "returnImmediately"},
         "params.configuration is a string; it must be an object"),
        ({"message": _message(), "configuration": {"taskPushNotificationConfig": [1]}},
         "params.configuration.taskPushNotificationConfig is an array"),
        ({"message": {**_message(), "metadata": 3}}, "params.message.metadata is a number"),
    ],
)  # fmt: skip
def test_a_member_that_must_be_an_object_is_refused_naming_it(
    a2a: A2AServer, params: dict[str, Any], said: str
) -> None:
    """``"configuration": "returnImmediately"`` was taken (the call then blocked), and
    ``"message": "hello"`` told "the message has no messageId"."""
    started = time.monotonic()
    refusal = _error(_rpc(a2a, "SendMessage", params))
    assert said in refusal, refusal
    assert time.monotonic() - started < 5


def test_http_json_refuses_them_alike(a2a: A2AServer) -> None:
    for body, said in (
        ({"message": "hello"}, "the body's message is a string; it must be an object"),
        ({"message": _message(), "configuration": "returnImmediately"},
         "the body's configuration is a string"),
    ):  # fmt: skip
        answer = httpx.post(a2a.url + "/message:send", json=body, headers=HEADERS, timeout=20)
        assert answer.status_code == 400, answer.text
        assert said in answer.text, answer.text


def test_a_push_config_authentication_that_is_no_object_is_refused(a2a: A2AServer) -> None:
    params = {"taskId": "t-x", "url": "http://127.0.0.1:1/h", "authentication": "Bearer x"}
    refusal = _error(_rpc(a2a, "CreateTaskPushNotificationConfig", params))
    assert "params.authentication is a string" in refusal, refusal


# --- 7. the JS SDK's status left out


def test_list_tasks_takes_the_js_sdks_unrecognized_status_as_left_out(a2a: A2AServer) -> None:
    answer = _rpc(a2a, "ListTasks", {"status": "UNRECOGNIZED", "pageSize": 1})
    assert "result" in answer, answer
    assert answer["result"]["totalSize"] == _rpc(a2a, "ListTasks", {})["result"]["totalSize"]


# --- 8. errors that say the next step


def test_list_tasks_refusals_say_what_to_send(a2a: A2AServer) -> None:
    said = _error(_rpc(a2a, "ListTasks", {"pageSize": 500}))
    assert said.startswith("pageSize 500 is out of range: give a pageSize of 1 to 100"), said
    said = _error(_rpc(a2a, "ListTasks", {"pageToken": "zzz"}))
    assert said.startswith("pageToken 'zzz' is not one this server gave: start from the first"
                           " page (leave pageToken out)"), said  # fmt: skip
    assert "retire" not in said and "older form" not in said, said


def test_a_task_failed_on_its_one_attempt_says_so(redis_server: RedisServer) -> None:
    with Swarm(redis_server.url, swarm=f"once-{uuid.uuid4().hex[:6]}") as swarm:
        swarm.post_task(QUEUE, "try once", max_attempts=1)
        task = swarm.claim(QUEUE, worker="w")
        assert task is not None
        swarm.fail(task.id, task.token, "boom")
        dead = swarm.get_task(task.id)
        assert dead is not None
        assert dead.dead_reason == "max_attempts reached: failed on its 1 attempt; last error: boom"


# --- 9. a running server's log


def test_a_running_servers_log_does_not_say_to_run_a_command_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the core says of a stopped embedded Redis ends "then run this command again":
    a running server resumes by itself."""
    from redis_swarm._translate import _embedded_not_running

    core = _embedded_not_running("unix:///tmp/nowhere.sock", "Connection refused")
    assert "then run this command again" in core
    with caplog.at_level(logging.WARNING), pytest.raises(InternalError), swarm_errors("s"):
        raise ConnectionFailed(core)
    said = [r.getMessage() for r in caplog.records]
    assert said and not [line for line in said if "run this command again" in line], said
    assert any("resumes by itself" in line for line in said), said


# --- 6. the docs


def test_the_docs_examples_use_what_they_define() -> None:
    doc = DOCS.read_text(encoding="utf-8")
    assert '"Authorization: Bearer $TOKEN"' not in doc
    assert '"Authorization: Bearer $SWARM_A2A_TOKEN"' in doc
    assert "warns once (`UserWarning`)" not in doc
    crew = doc.split("### CrewAI", 1)[1].split("\n## ", 1)[0]
    assert "```python" not in crew and "sketch" in crew
    assert "2^53" in doc
