"""What a tour of agents joining from other machines found (TLS, per-role users, A2A): a
worker URL used with the wrong swarm told nothing of the swarm in use; a worker configuring a
queue not told whose that is; 'swarm acl --apply' as a non-admin told to make an admin (which
needs one); ``swarm a2a`` took its token in the URL; array params, A2A 0.3's method names and
notifications answered unhelpfully; a malformed request two lines in the log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from redis_swarm import PermissionDenied, Settings, Swarm, apply_role
from redis_swarm._acl import AclUser
from redis_swarm.cli import main

from ._a2a import SWARM, TOKEN, A2AServer, start_a2a, stop
from ._servers import RedisServer, user_url

LEGAL = "legal"

# --- per-role users: what a refusal says


@pytest.fixture(scope="module")
def worker(acl_server: RedisServer) -> AclUser:
    """The user 'swarm acl --role worker --swarm legal --user legal-worker --apply' makes."""
    admin = Settings.from_url(acl_server.url, swarm=LEGAL)
    Swarm(admin).load_functions()
    return apply_role(admin, "worker", "legal-worker", swarm=LEGAL).user


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), env={"SWARM_NAME": None})
    assert result.exit_code == 1, result.output
    return result.output


def test_a_worker_url_used_with_another_swarm_names_the_swarm_in_use(
    acl_server: RedisServer, worker: AclUser
) -> None:
    """SWARM_NAME unset: swarm 'default', every key of which the legal worker is refused."""
    said = _cli("--url", user_url(acl_server, worker), "task", "claim", "research")
    assert "swarm 'default', the swarm in use" in said, said
    assert "check --swarm / SWARM_NAME" in said, said
    with (
        Swarm(user_url(acl_server, worker), swarm="other") as swarm,
        pytest.raises(PermissionDenied, match="swarm 'other', the swarm in use"),
    ):
        swarm.claim("research", worker="w-1")


def test_a_worker_configuring_a_queue_is_told_a_shard_or_coordinator_may(
    acl_server: RedisServer, worker: AclUser
) -> None:
    with Swarm(user_url(acl_server, worker), swarm=LEGAL) as swarm:
        with pytest.raises(PermissionDenied) as info:
            swarm.configure_queue("research", description="hi")
        said = str(info.value)
        assert "a shard or coordinator user may" in said, said
        assert "swarm acl --role shard" in said, said
        swarm.claim("research", worker="w-1")  # (its own work it may do: the user is of this swarm)


def test_a_worker_of_another_swarm_posting_is_told_to_check_the_swarm_not_of_shards(
    acl_server: RedisServer, worker: AclUser
) -> None:
    """A worker may post tasks (its role holds task_post, which ask calls): refused every key
    of swarm 'default' (SWARM_NAME unset), the swarm is what to check, not the role."""
    said = _cli("--url", user_url(acl_server, worker), "task", "post", "research", "look")
    assert "swarm 'default', the swarm in use: check --swarm / SWARM_NAME" in said, said
    assert "shard or coordinator" not in said and "--role shard" not in said, said
    with Swarm(user_url(acl_server, worker), swarm=LEGAL) as swarm:
        swarm.post_task("research", "look")  # (of its own swarm, it may)


def test_a_shard_only_refusal_says_the_role_first_then_the_swarm_check(
    acl_server: RedisServer, worker: AclUser
) -> None:
    # (the user is the swarm's own: its role is the likely cause, said first)
    with (
        Swarm(user_url(acl_server, worker), swarm=LEGAL) as swarm,
        pytest.raises(PermissionDenied) as info,
    ):
        swarm.configure_queue("research", description="hi")
    said = str(info.value)
    assert said.index("a shard or coordinator") < said.index("check --swarm / SWARM_NAME"), said


def test_acl_apply_as_a_worker_points_at_an_admin_url_not_at_making_one(
    acl_server: RedisServer, worker: AclUser
) -> None:
    said = _cli(
        "--url", user_url(acl_server, worker), "acl", "--role", "worker", "--user", "x1", "--apply"
    )
    assert "only an admin user may" in said, said
    assert f"SWARM_URL=redis://ADMIN:PASSWORD@127.0.0.1:{acl_server.port}" in said, said
    assert "--role admin" not in said, said
    assert (worker.password or "?") not in said


# --- swarm a2a: the token, and JSON-RPC requests


def _post(a2a: A2AServer, body: dict[str, Any]) -> httpx.Response:
    sent = {**a2a.headers, "A2A-Version": "1.0"}
    return httpx.post(a2a.url + "/", json=body, headers=sent, timeout=20)


def test_a2a_refuses_a_token_in_the_url(a2a: A2AServer) -> None:
    """Access logs print URLs: as the MCP server, only the header is taken."""
    answer = httpx.get(f"{a2a.url}/tasks?token={TOKEN}", timeout=20)
    assert answer.status_code == 401
    said = answer.json()["message"]
    assert "Authorization: Bearer TOKEN" in said and "takes no token in the URL" in said, said
    assert answer.headers["www-authenticate"].startswith("Bearer")
    sent = {**a2a.headers, "A2A-Version": "1.0"}
    assert httpx.get(f"{a2a.url}/tasks", headers=sent, timeout=20).status_code == 200


def test_array_params_are_said_to_be_an_object_of_named_members(a2a: A2AServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": ["t-x"]}
    error = _post(a2a, body).json()["error"]
    assert error["code"] == -32602
    assert "params is an array" in error["message"] and '{"id"' in error["message"], error


@pytest.mark.parametrize(
    ("old", "new"), [("message/send", "SendMessage"), ("tasks/get", "GetTask")]
)
def test_a2a_0_3_method_names_name_their_1_0_method(a2a: A2AServer, old: str, new: str) -> None:
    body = {"jsonrpc": "2.0", "id": 7, "method": old, "params": {"id": "t-x"}}
    answer = _post(a2a, body).json()
    assert answer["id"] == 7 and answer["error"]["code"] == -32601
    assert repr(new) in answer["error"]["message"], answer


def test_a_notification_gets_no_reply(a2a: A2AServer) -> None:
    """JSON-RPC 2.0: a request without an id is a notification, which the server does not
    answer (HTTP 204, no body)."""
    answer = _post(a2a, {"jsonrpc": "2.0", "method": "ListTasks", "params": {}})
    assert answer.status_code == 204 and answer.content == b"", answer.text


def test_a_malformed_request_is_one_line_in_the_log(a2a_redis: RedisServer) -> None:
    server = start_a2a(a2a_redis.url, SWARM, TOKEN, "--queue", "research")
    try:
        sent = {**server.headers, "A2A-Version": "1.0"}
        body = {"id": 1, "method": "GetTask", "params": {"id": str(uuid.uuid4())}}
        answer = httpx.post(server.url + "/", json=body, headers=sent, timeout=20).json()
        assert answer["error"]["code"] == -32600
    finally:
        log = stop(server)
    said = [line for line in log.splitlines() if "JSON-RPC" in line or "Request Error" in line]
    assert len(said) == 1, log
    assert "Code=-32600" in said[0], log


@pytest.mark.parametrize(
    "body",
    [{"jsonrpc": "1.0", "method": "ListTasks"}, {"method": "GetTask", "params": {"id": "t"}}],
)
def test_an_invalid_request_without_id_is_answered_not_taken_for_a_notification(
    a2a: A2AServer, body: dict[str, Any]
) -> None:
    """Only a request of JSON-RPC 2.0 is a notification; another gets the SDK's -32600."""
    answer = _post(a2a, body)
    assert answer.status_code == 200, answer
    assert answer.json()["id"] is None and answer.json()["error"]["code"] == -32600, answer.text


def test_an_invalid_id_is_answered_null(a2a: A2AServer) -> None:
    answer = _post(a2a, {"jsonrpc": "2.0", "id": {"a": 1}, "method": "tasks/get"}).json()
    assert answer["id"] is None and answer["error"]["code"] == -32600, answer


@pytest.mark.parametrize(("params", "said"), [(None, "null"), ("t-x", "a string"), (1, "a number")])
def test_params_not_an_object_are_said_in_json_words(
    a2a: A2AServer, params: Any, said: str
) -> None:
    body = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": params}
    error = _post(a2a, body).json()["error"]
    assert error["code"] == -32602 and f"params is {said};" in error["message"], error


def test_an_a2a_0_3_name_says_to_send_the_version_header(a2a: A2AServer) -> None:
    body = {"jsonrpc": "2.0", "id": 3, "method": "tasks/list", "params": {}}
    said = _post(a2a, body).json()["error"]["message"]
    assert "(and send the header A2A-Version: 1.0 too)" in said, said


@pytest.fixture(scope="module")
def a2a_waiting(a2a_redis: RedisServer) -> Iterator[A2AServer]:
    """A server whose blocking SendMessage waits a minute for the task to settle."""
    server = start_a2a(a2a_redis.url, SWARM, TOKEN, "--queue", "research", "--wait", "60")
    yield server
    stop(server)


def _notify(a2a: A2AServer, method: str, params: dict[str, Any]) -> httpx.Response:
    """A notification, which must be answered at once: 5 s, not the task's run or --wait."""
    sent = {**a2a.headers, "A2A-Version": "1.0"}
    body = {"jsonrpc": "2.0", "method": method, "params": params}
    return httpx.post(a2a.url + "/", json=body, headers=sent, timeout=5)


def _message(context: str) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "contextId": context,
            "parts": [{"text": "look it up"}]}  # fmt: skip


@pytest.mark.parametrize(
    ("method", "configuration"),
    [
        ("SendMessage", {}),
        ("SendMessage", {"returnImmediately": False}),
        ("SendStreamingMessage", {}),
    ],
)
def test_a_notification_to_send_posts_and_is_answered_at_once(
    a2a_waiting: A2AServer, a2a_redis: RedisServer, method: str, configuration: dict[str, Any]
) -> None:
    context = f"ctx-{uuid.uuid4().hex[:12]}"
    params = {"message": _message(context), "configuration": configuration}
    answer = _notify(a2a_waiting, method, params)
    assert answer.status_code == 204 and answer.content == b"", answer.text
    with Swarm(a2a_redis.url, swarm=SWARM) as swarm:
        assert len(swarm.list_tasks(pass_name=context)) == 1


def test_a_notification_to_subscribe_is_answered_at_once(a2a_waiting: A2AServer) -> None:
    params = {"message": _message(f"ctx-{uuid.uuid4().hex[:12]}"),
              "configuration": {"returnImmediately": True}}  # fmt: skip
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params}
    task = _post(a2a_waiting, body).json()["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_SUBMITTED", task
    answer = _notify(a2a_waiting, "SubscribeToTask", {"id": task["id"]})
    assert answer.status_code == 204 and answer.content == b"", answer.text
