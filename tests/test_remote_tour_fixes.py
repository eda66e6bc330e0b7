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
from ._servers import RedisServer, ServerFactory, system_redis

LEGAL = "legal"

# --- per-role users: what a refusal says


@pytest.fixture(scope="module")
def acl_server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A private Redis >= 7 (ACL key selectors): its users do not leak into other tests."""
    server = servers.start(binary=system_redis())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(acl_server: RedisServer) -> AclUser:
    """The user 'swarm acl --role worker --swarm legal --user legal-worker --apply' makes."""
    admin = Settings.from_url(acl_server.url, swarm=LEGAL)
    Swarm(admin).load_functions()
    return apply_role(admin, "worker", "legal-worker", swarm=LEGAL).user


def _url(server: RedisServer, user: AclUser) -> str:
    return f"redis://{user.user}:{user.password}@127.0.0.1:{server.port}"


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), env={"SWARM_NAME": None})
    assert result.exit_code == 1, result.output
    return result.output


def test_a_worker_url_used_with_another_swarm_names_the_swarm_in_use(
    acl_server: RedisServer, worker: AclUser
) -> None:
    """SWARM_NAME unset: swarm 'default', every key of which the legal worker is refused."""
    said = _cli("--url", _url(acl_server, worker), "task", "claim", "research")
    assert "swarm 'default', the swarm in use" in said, said
    assert "check --swarm / SWARM_NAME" in said, said
    with (
        Swarm(_url(acl_server, worker), swarm="other") as swarm,
        pytest.raises(PermissionDenied, match="swarm 'other', the swarm in use"),
    ):
        swarm.claim("research", worker="w-1")


def test_a_worker_configuring_a_queue_is_told_a_shard_or_coordinator_may(
    acl_server: RedisServer, worker: AclUser
) -> None:
    with Swarm(_url(acl_server, worker), swarm=LEGAL) as swarm:
        with pytest.raises(PermissionDenied) as info:
            swarm.configure_queue("research", description="hi")
        said = str(info.value)
        assert "a shard or coordinator user may" in said, said
        assert "swarm acl --role shard" in said, said
        swarm.claim("research", worker="w-1")  # (its own work it may do: the user is of this swarm)


def test_acl_apply_as_a_worker_points_at_an_admin_url_not_at_making_one(
    acl_server: RedisServer, worker: AclUser
) -> None:
    said = _cli(
        "--url", _url(acl_server, worker), "acl", "--role", "worker", "--user", "x1", "--apply"
    )
    assert "only an admin user may" in said, said
    assert f"--url redis://ADMIN:PASSWORD@127.0.0.1:{acl_server.port}" in said, said
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
    assert "Authorization: Bearer TOKEN" in said and "?token" not in said, said
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
