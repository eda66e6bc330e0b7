"""A red-team tour of ``swarm a2a``: every client holding the server's token is one identity,
and one client's webhook secrets (its config's ``token`` and ``authentication.credentials``)
were answered to any other that listed or got the task's configs; a body nested 5,000 levels
deep (well within the body limit) was a plain-text 500 on JSON-RPC and a traceback in the
log; and the webhook address rule let 6to4 addresses that carry a loopback or private IPv4
one (``2002:7f00:1::`` is 127.0.0.1) and site-local ones (``fec0::/10``) through. Real
servers: Redis, ``swarm a2a`` as a process, a webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm.a2a_server._addresses import blocked_ip, webhook_target
from redis_swarm.a2a_server.app import create_app

from ._a2a import QUEUE, SWARM, TOKEN, A2AServer, Receiver, receiver, start_a2a, stop, work_one
from ._servers import RedisServer
from .test_a2a_leftovers import HEADERS, _message, _rpc

# A webhook's secrets, as a client gives them (none may come back in an answer).
SECRET_TOKEN = "tok-" + "s3cret-notification-token"
SECRET_CREDENTIALS = "cred-" + "s3cret-bearer-credentials"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    yield from receiver()


# --- 1. a webhook's secrets are kept, never shown


def _states(hook: Receiver) -> list[str]:
    """The task states a webhook was posted, in order."""
    return [body["statusUpdate"]["status"]["state"] for _h, body in hook.posts
            if "statusUpdate" in body]  # fmt: skip


def _shown(answer: Any) -> str:
    """An answer as the client reads it (every secret it holds is in this text)."""
    return json.dumps(answer)


def test_no_answer_shows_a_webhooks_secrets_and_each_post_still_carries_them(
    a2a: A2AServer, a2a_worker: Swarm, hook: Receiver
) -> None:
    """Client A gives webhooks with secrets (with its message, and later); client B, holding
    the same server token, listed and got them with their ``token`` and ``credentials``."""
    auth = {"scheme": "Bearer", "credentials": SECRET_CREDENTIALS}
    given = {"url": hook.url, "token": SECRET_TOKEN, "authentication": auth}
    sent = _rpc(a2a, "SendMessage", {
        "message": _message(),
        "configuration": {"returnImmediately": True, "taskPushNotificationConfig": given},
    })  # fmt: skip
    task_id = sent["result"]["task"]["id"]
    headers = {**a2a.headers, **HEADERS}
    configs = f"{a2a.url}/tasks/{task_id}/pushNotificationConfigs"
    made = [
        _rpc(a2a, "CreateTaskPushNotificationConfig",
             {"taskId": task_id, "id": "later-rpc", **given, "url": hook.url + "/rpc"}),
        httpx.post(configs, json={"id": "later-rest", **given, "url": hook.url + "/rest"},
                   headers=headers, timeout=20).json(),
    ]  # fmt: skip
    assert [m.get("result", m)["id"] for m in made] == ["later-rpc", "later-rest"], made
    stored = {w.id: w for w in a2a_worker.webhooks(task_id)}
    assert {w.token for w in stored.values()} == {SECRET_TOKEN}  # kept, each of them
    assert {w.auth_credentials for w in stored.values()} == {SECRET_CREDENTIALS}
    # Client B: the same token, another client.
    listed = [
        _rpc(a2a, "ListTaskPushNotificationConfigs", {"taskId": task_id})["result"],
        httpx.get(configs, headers=headers, timeout=20).json(),
    ]
    got = [
        _rpc(a2a, "GetTaskPushNotificationConfig", {"taskId": task_id, "id": hook_id})["result"]
        for hook_id in stored
    ] + [httpx.get(f"{configs}/{hook_id}", headers=headers, timeout=20).json()
         for hook_id in stored]  # fmt: skip
    for answer in (*made, *listed, *got):
        text = _shown(answer)
        assert SECRET_TOKEN not in text and SECRET_CREDENTIALS not in text, text
        assert '"token"' not in text and '"credentials"' not in text, text
    for page in listed:
        assert {c["id"] for c in page["configs"]} == set(stored), page
        for config in page["configs"]:
            assert config["url"] == stored[config["id"]].url, config
            assert config["taskId"] == task_id and config["authentication"] == {"scheme": "Bearer"}
    assert sorted(g["id"] for g in got) == sorted([*stored, *stored]), got
    assert all(g["url"] == stored[g["id"]].url for g in got), got
    # The secrets are still posted with each update, to each of the three webhooks.
    while work_one(a2a_worker, QUEUE, "done") != task_id:  # (the module's others first)
        pass
    # Each webhook gets the task's working and completed states (and its artifact); the one
    # given with the message may also get its submitted state, depending on whether it was
    # stored before the push dispatcher read the task's posting.
    with hook.arrived:
        hook.arrived.wait_for(lambda: _states(hook).count("TASK_STATE_COMPLETED") >= 3, 15.0)
        posts = list(hook.posts)
    states = _states(hook)
    assert states.count("TASK_STATE_WORKING") == 3, posts
    assert states.count("TASK_STATE_COMPLETED") == 3, posts
    assert sum(1 for _h, body in posts if "artifactUpdate" in body) == 3, posts
    assert len(posts) - 9 == states.count("TASK_STATE_SUBMITTED") <= 1, posts
    for posted_headers, _ in posts:
        assert posted_headers["x-a2a-notification-token"] == SECRET_TOKEN
        assert posted_headers["authorization"] == f"Bearer {SECRET_CREDENTIALS}"


# --- 2. a body nested too deep


DEPTH = 5_000
DEEP = "[" * DEPTH + "]" * DEPTH
DEEP_RPC = (
    '{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":{"messageId":"m-deep",'
    '"role":"ROLE_USER","parts":[{"text":"x"}],"metadata":{"a":' + DEEP + "}}}}"
)
DEEP_REST = (
    '{"message":{"messageId":"m-deep","role":"ROLE_USER","parts":[{"text":"x"}],'
    '"metadata":{"a":' + DEEP + "}}}"
)
TOO_DEEP = "nests JSON deeper than 200 levels"


def test_a_body_nested_too_deep_is_a_parse_error_of_one_log_line(
    a2a_redis: RedisServer, a2a_worker: Swarm
) -> None:
    """JSON-RPC answered a plain-text 500 (Python's parser raised RecursionError, which is
    no ValueError), with a traceback in the log; HTTP+JSON the parser's words. Both now say
    it is nested too deep, before anything parses it; nothing is posted."""
    server = start_a2a(a2a_redis.url, SWARM, TOKEN, "--queue", "deep-only")
    headers = {**server.headers, **HEADERS, "Content-Type": "application/json"}
    try:
        answers = [
            httpx.post(server.url + "/", content=body, headers=headers, timeout=20)
            for body in (DEEP, DEEP_RPC)
        ]
        rest = [
            httpx.post(server.url + path, content=body, headers=headers, timeout=20)
            for path, body in (
                ("/message:send", DEEP_REST),
                ("/tasks/t-01m93kpassetr5fmgy/pushNotificationConfigs", DEEP),
            )
        ]
    finally:
        err = stop(server)
    for answer in answers:
        assert answer.status_code == 200, answer.text
        error = answer.json()["error"]
        assert answer.json()["id"] is None and error["code"] == -32700, answer.text
        assert TOO_DEEP in error["message"] and "flatten it" in error["message"]
    for answer in rest:
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT" and TOO_DEEP in error["message"]
    assert "Traceback" not in err and "RecursionError" not in err, err
    lines = [line for line in err.splitlines() if TOO_DEEP in line]
    assert len(lines) == 4, err
    assert a2a_worker.queue_stats().get("deep-only", {}).get("pending", 0) == 0


def test_a_body_within_the_depth_limit_is_read_as_before(redis_server: RedisServer) -> None:
    """The edge refuses only what the swarm would not store: a task with data nested a few
    levels is posted, on both bindings."""
    nested: Any = "leaf"
    for _ in range(20):
        nested = {"n": nested}
    message = {**_message(), "parts": [{"text": "x"}, {"data": nested}]}
    body = {"message": message, "configuration": {"returnImmediately": True}}

    async def run() -> list[httpx.Response]:
        async with AsyncSwarm(redis_server.url, swarm=f"a2a-deep-{uuid.uuid4().hex[:8]}") as swarm:
            app = create_app(swarm, queues=[QUEUE], base_url="http://127.0.0.1:1/", push=False)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                rpc = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": body}
                return [
                    await c.post("/message:send", json=body, headers=HEADERS),
                    await c.post("/", json=rpc, headers=HEADERS),
                ]

    rest, rpc = asyncio.run(run())
    assert rest.status_code == 200 and rest.json()["task"]["id"], rest.text
    assert rpc.json()["result"]["task"]["id"], rpc.text


# --- 3. webhook addresses that carry a private one, and site-local ones


BLOCKED = (
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254 (a cloud's metadata service)
    "2002::",  # 6to4 of 0.0.0.0
    "fec0::1",  # site-local
    "fec0:0:0:1::5",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo (blocked whatever it carries)
    "::ffff:127.0.0.1",  # IPv4-mapped, as before
)
PUBLIC_IPS = ("2002:808:808::1", "2606:4700::1111", "::ffff:8.8.8.8", "8.8.8.8")


def test_6to4_addresses_are_judged_by_the_ipv4_they_carry_and_site_local_ones_blocked() -> None:
    """Python 3.11 counts 2002::/16 and fec0::/10 global: they passed the rule."""
    assert [ip for ip in BLOCKED if not blocked_ip(ip)] == []
    assert [ip for ip in PUBLIC_IPS if blocked_ip(ip)] == []

    async def resolving_to(addresses: Sequence[str]) -> tuple[str, ...] | None:
        async def resolve(host: str, port: int) -> Sequence[str]:
            return addresses

        return await webhook_target("https://hooks.example.com/hook", resolve)

    # A name with one such address among public ones is refused whole, before each post too.
    for ip in BLOCKED:
        assert asyncio.run(resolving_to(["2606:4700::1111", ip])) is None, ip
    assert asyncio.run(resolving_to(["2002:808:808::1"])) == ("2002:808:808::1",)


def test_a_server_off_loopback_refuses_such_a_webhook(redis_server: RedisServer) -> None:
    """The rule as a client meets it: the config is refused (-32602, saying why), nothing is
    stored."""

    async def run() -> tuple[list[Any], list[Any]]:
        async with AsyncSwarm(redis_server.url, swarm=f"a2a-6to4-{uuid.uuid4().hex[:8]}") as swarm:
            app = create_app(
                swarm, queues=[QUEUE], base_url="http://127.0.0.1:1/", push=False,
                private_webhooks=False,
            )  # fmt: skip
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                params = {"message": _message(), "configuration": {"returnImmediately": True}}
                rpc = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params}
                task_id = (await c.post("/", json=rpc, headers=HEADERS)).json()["result"]["task"]
                answers = []
                for url in ("http://[2002:7f00:1::]:8080/hook", "http://[fec0::1]/hook"):
                    create = {"taskId": task_id["id"], "url": url}
                    rpc = {"jsonrpc": "2.0", "id": 2, "method": "CreateTaskPushNotificationConfig",
                           "params": create}  # fmt: skip
                    answers.append((await c.post("/", json=rpc, headers=HEADERS)).json())
                return answers, list(await swarm.webhooks(task_id["id"]))

    answers, stored = asyncio.run(run())
    for answer in answers:
        assert answer["error"]["code"] == -32602, answer
        assert "non-public address" in answer["error"]["message"], answer
    assert stored == []
