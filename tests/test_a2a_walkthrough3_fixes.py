"""What a third walkthrough of ``swarm a2a`` (docs/a2a.md) found: a webhook given with a
retried message kept for good on a finished task, secrets and all; a messageId that posted a
second task when its retry named another skill; webhook log lines without their cause; core
and CLI words and Python class names in what clients and the operator were told; the docs'
``-32600`` said to carry id null; a ``?token=`` told it "sent none"; any token taken off
loopback. Real servers: Redis, ``swarm a2a``, a webhook receiver."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._acl import MIN_PASSWORD_LEN
from redis_swarm._errors import ConfigError
from redis_swarm._web import require_token_off_loopback
from redis_swarm.a2a_server._push import PushDispatcher
from redis_swarm.cli import main

from ._a2a import OTHER, QUEUE, TOKEN, A2AServer, Receiver, push_one_task, receiver, work_one
from ._servers import RedisServer, free_port

HEADERS = {"Authorization": f"Bearer {TOKEN}", "A2A-Version": "1.0"}
PUSH_LOGGER = "redis_swarm.a2a_server._push"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    yield from receiver()


def _rpc(a2a: A2AServer, method: str, params: Any, **extra: Any) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params, **extra}
    return httpx.post(a2a.url + "/", json=body, headers=HEADERS, timeout=20).json()


def _message(text: str = "look it up", **fields: Any) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": text}],
            **fields}  # fmt: skip


def _send(a2a: A2AServer, message: dict[str, Any], **configuration: Any) -> Any:
    params = {"message": message, "configuration": {"returnImmediately": True, **configuration}}
    return _rpc(a2a, "SendMessage", params)


def _error(answer: Any) -> dict[str, Any]:
    assert "error" in answer, answer
    error: dict[str, Any] = answer["error"]
    return error


# --- 1. a webhook given with a retry of a message whose task has settled


def test_a_retry_with_a_webhook_for_a_settled_task_stores_nothing(
    a2a: A2AServer, a2a_worker: Swarm, hook: Receiver
) -> None:
    """The retry stored the webhook (URL and token, no expiry), listed by
    ListTaskPushNotificationConfigs, never fired nor removed; CreateTaskPushNotificationConfig
    refused the same. The retry still returns its task, saying the config was not stored."""
    from redis_swarm.a2a_server._handler import PUSH_NOT_STORED_KEY

    message = _message()
    task_id = _send(a2a, message)["result"]["task"]["id"]
    while work_one(a2a_worker, QUEUE, "done") != task_id:  # (the module's others first)
        pass
    push = {"url": hook.url, "token": "secret-of-the-webhook"}
    for extra in ({}, {"id": "mine"}):
        answer = _send(a2a, message, taskPushNotificationConfig={**push, **extra})
        task = answer["result"]["task"]
        assert task["id"] == task_id and task["status"]["state"] == "TASK_STATE_COMPLETED"
        said = task["metadata"][PUSH_NOT_STORED_KEY]
        assert f"task {task_id} is TASK_STATE_COMPLETED" in said and "none is stored" in said
        assert a2a_worker.webhooks(task_id) == []
        listed = _rpc(a2a, "ListTaskPushNotificationConfigs", {"taskId": task_id})
        assert listed["result"].get("configs", []) == [], listed
    # Create says it in the same words (one rule).
    created = _rpc(a2a, "CreateTaskPushNotificationConfig", {"taskId": task_id, **push})
    assert _error(created)["code"] == -32004 and said in _error(created)["message"]
    # A task not settled still takes the webhook given with its message, and says nothing.
    pending = _send(a2a, _message(), taskPushNotificationConfig=push)["result"]["task"]
    assert PUSH_NOT_STORED_KEY not in pending.get("metadata", {}), pending
    assert [w.url for w in a2a_worker.webhooks(pending["id"])] == [hook.url]


# --- 2. a messageId that names another skill


def test_a_message_id_used_for_another_skill_posts_no_second_task(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    """The dedupe key is per queue: the same messageId naming another skill posted a second
    task. It is refused, naming the first task, and nothing is posted; a retry naming the
    first skill still returns its task."""
    message = _message()
    first = _send(a2a, message)["result"]["task"]["id"]
    before = a2a_worker.queue_stats()
    for where in ("message", "request"):
        sent = {**message, "metadata": {"skill": OTHER}} if where == "message" else message
        params: dict[str, Any] = {"message": sent, "configuration": {"returnImmediately": True}}
        if where == "request":
            params["metadata"] = {"skill": OTHER}
        error = _error(_rpc(a2a, "SendMessage", params))
        assert error["code"] == -32602, error
        said = error["message"]
        assert f"already posted task {first}, to skill {QUEUE}" in said, said
        assert f"names skill {OTHER}" in said and "new unique messageId" in said, said
    assert a2a_worker.queue_stats() == before  # nothing posted
    assert _send(a2a, message)["result"]["task"]["id"] == first
    # A messageId a server of other skills used (a review: one server's clients used up
    # another's ids, refused here): its own task there, a task of its own here.
    elsewhere = _message()
    stored = asyncio.run(_post_elsewhere(a2a_worker, elsewhere["messageId"]))
    here = _send(a2a, elsewhere)["result"]["task"]["id"]
    assert here != stored and a2a_worker.get_task(stored).queue == "elsewhere"


async def _post_elsewhere(worker: Swarm, message_id: str) -> str:
    """Post, as a server exposing only 'elsewhere' would, the task of ``message_id``."""
    from redis_swarm.a2a_server._convert import MESSAGE_KEY, task_id_of

    task_id = task_id_of(message_id, ["elsewhere"])
    async with AsyncSwarm(worker.settings) as swarm:
        task = await swarm.post_task("elsewhere", "look", task_id=task_id,
                                     dedupe_key=MESSAGE_KEY + message_id)  # fmt: skip
        return task.id


# --- 3. webhook log lines say the cause


class _Answering:
    """A webhook on loopback that answers every POST with ``status``."""

    def __init__(self, status: int) -> None:
        answer = status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pushed(
    redis_server: RedisServer, url: str, caplog: pytest.LogCaptureFixture
) -> tuple[str, list[str]]:
    """Post a task's updates to ``url`` until its final one is handled: the task's id, and
    what the dispatcher logged."""

    async def body() -> str:
        async with (
            AsyncSwarm(redis_server.url, swarm=f"push-log-{uuid.uuid4().hex[:8]}") as swarm,
            httpx.AsyncClient(timeout=5) as http,
        ):
            dispatcher = PushDispatcher(swarm, [QUEUE], http, retry_delays_s=(0.05, 0.05))
            return await push_one_task(swarm, dispatcher, url)

    with caplog.at_level(logging.INFO, logger=PUSH_LOGGER):
        task_id = asyncio.run(body())
    return task_id, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("status", "said"),
    [(404, "refused an update of task {}: answered HTTP 404 Not Found"),
     (500, "giving up on an update of task {} after 3 tries: answered HTTP 500 Internal "
           "Server Error")],
)  # fmt: skip
def test_a_webhook_answer_is_logged_with_its_status_and_task(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, status: int, said: str
) -> None:
    """A 404 was "refused an update: <Response [404 Not Found]>" (httpx's repr, no task);
    a 500 "giving up on an update of task T", no cause."""
    webhook = _Answering(status)
    try:
        task_id, logged = _pushed(redis_server, webhook.url, caplog)
    finally:
        webhook.close()
    assert logged and all(said.format(task_id) in line for line in logged), logged
    assert not [line for line in logged if "<Response" in line], logged


def test_a_webhook_that_refuses_connections_is_logged_so(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    task_id, logged = _pushed(redis_server, f"http://127.0.0.1:{free_port()}/hook", caplog)
    assert logged, logged
    for line in logged:
        assert f"giving up on an update of task {task_id} after 3 tries: could not" in line, line
        assert "refused" in line.lower(), line  # (the error's own words: connection refused)


# --- 4. A2A words, not the core's, the CLI's, or Python's


def test_a_request_without_a_task_id_is_told_which_member_is_missing(a2a: A2AServer) -> None:
    """It was "task id is empty: use ASCII letters, digits, '.', '_' or '-'"."""
    for method, member in (
        ("GetTask", "id"),
        ("CancelTask", "id"),
        ("ListTaskPushNotificationConfigs", "taskId"),
        ("CreateTaskPushNotificationConfig", "taskId"),
    ):
        error = _error(_rpc(a2a, method, {}))
        assert error["code"] == -32602, (method, error)
        said = error["message"]
        assert f"params.{member} is missing" in said and "ASCII" not in said, (method, said)


def test_a_push_config_without_a_url_is_told_to_give_one(a2a: A2AServer, a2a_worker: Swarm) -> None:
    """It was "webhook url '' is not an http(s) URL"."""
    task_id = _send(a2a, _message())["result"]["task"]["id"]
    error = _error(_rpc(a2a, "CreateTaskPushNotificationConfig", {"taskId": task_id}))
    assert error["code"] == -32602 and "config has no url" in error["message"], error
    error = _error(_send(a2a, _message(), taskPushNotificationConfig={"token": "t"}))
    assert "config has no url" in error["message"], error
    assert a2a_worker.webhooks(task_id) == []


def test_an_unknown_push_config_is_not_found(a2a: A2AServer) -> None:
    """It was invalid params (HTTP+JSON 400 INVALID_ARGUMENT); the SDK's own handler answers
    not found."""
    task_id = _send(a2a, _message())["result"]["task"]["id"]
    params = {"taskId": task_id, "id": "no-such-config"}
    error = _error(_rpc(a2a, "GetTaskPushNotificationConfig", params))
    assert error["code"] == -32001, error
    assert "has no push notification config 'no-such-config'" in error["message"], error
    rest = httpx.get(f"{a2a.url}/tasks/{task_id}/pushNotificationConfigs/no-such-config",
                     headers=HEADERS, timeout=20)  # fmt: skip
    assert rest.status_code == 404 and rest.json()["error"]["status"] == "NOT_FOUND", rest.text


def test_a_description_too_long_is_told_in_a2a_terms(a2a: A2AServer) -> None:
    """It was "put the material in data or in a context"."""
    said = _error(_send(a2a, _message("x" * 70_000)))["message"]
    assert "in a data part of the message" in said and "in a context" not in said, said


# --- 5. an invalid request's id


def test_an_invalid_request_echoes_a_valid_id(a2a: A2AServer) -> None:
    """docs/a2a.md said -32600 "with id null, with or without an id": the SDK echoes a
    valid id; only an id that is not valid is answered null. (The docs were wrong, not the
    server: this holds what they say now.)"""
    for sent, echoed in ((7, 7), ("r-1", "r-1"), ({"bad": 1}, None), ([1], None)):
        body = {"jsonrpc": "1.0", "id": sent, "method": "ListTasks", "params": {}}
        answer = httpx.post(a2a.url + "/", json=body, headers=HEADERS, timeout=20).json()
        assert answer["error"]["code"] == -32600 and answer["id"] == echoed, (sent, answer)


# --- 6. a token in the URL


def test_a_token_in_the_url_is_told_it_is_not_taken(a2a: A2AServer) -> None:
    """It was told it "sent none"."""
    answer = httpx.get(f"{a2a.url}/tasks?token={TOKEN}", headers={"A2A-Version": "1.0"},
                       timeout=10)  # fmt: skip
    assert answer.status_code == 401
    said = answer.json()["message"]
    assert "takes no token in the URL (?token=" in said, said
    assert "Authorization: Bearer TOKEN" in said and TOKEN not in said, said


# --- 7. a short token off loopback


@pytest.mark.parametrize(
    "face",
    [["a2a", "--queue", "q"], ["dashboard"], ["mcp", "--transport", "http"]],
    ids=["a2a", "dashboard", "mcp-http"],
)
def test_a_short_token_off_loopback_is_refused(redis_url: str, face: list[str]) -> None:
    """``swarm a2a --host 0.0.0.0 --token a`` served, any token taken, where swarm acl
    requires passwords of 16 characters or more."""
    short = "a" * (MIN_PASSWORD_LEN - 1)
    args = ["--url", redis_url, "--swarm", "walk3", *face, "--host", "0.0.0.0", "--port", "0"]
    result = CliRunner().invoke(main, [*args, "--token", short])
    assert result.exit_code == 2, result.output  # (a bad option: swarm mcp's, a2a's, dashboard's)
    said = result.output
    assert f"is {len(short)} characters long" in said and f"at least {MIN_PASSWORD_LEN}" in said
    assert "secrets.token_urlsafe" in said, said


def test_a_short_token_on_loopback_is_taken() -> None:
    require_token_off_loopback("127.0.0.1", "a", what="it", env="E")
    require_token_off_loopback("0.0.0.0", "a" * MIN_PASSWORD_LEN, what="it", env="E")
    with pytest.raises(ConfigError, match="at least"):
        require_token_off_loopback("::", "a", what="it", env="E")
