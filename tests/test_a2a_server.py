"""``swarm a2a`` driven by a client nobody here wrote: the official Python SDK's (its
``create_client``, over both bindings). A worker of ours claims and reports; the client sees
the task go submitted -> working -> completed with the finding as its artifact."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.client.client import Client
from a2a.types import (
    AuthenticationInfo,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.constants import TransportProtocol
from a2a.utils.errors import A2AError
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Value

from redis_swarm import Swarm
from redis_swarm.a2a_server._convert import INLINE_FILE_BYTES
from redis_swarm.a2a_server._push import PushDispatcher
from redis_swarm.a2a_server.app import stop_task
from redis_swarm.cli import main

from ._a2a import OTHER, QUEUE, SWARM, A2AServer, Receiver, receiver, work_one
from ._servers import RedisServer

BINDINGS = [TransportProtocol.JSONRPC.value, TransportProtocol.HTTP_JSON.value]
S = TaskState


@pytest.fixture
def hook() -> Iterator[Receiver]:
    yield from receiver()


def _message(text: str, **metadata: Any) -> Message:
    return Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_USER,
        parts=[Part(text=text), Part(data=ParseDict({"n": 1}, Value()))],
        metadata=metadata or None,
    )


@contextlib.asynccontextmanager
async def _client(a2a: A2AServer, binding: str, **config: Any) -> AsyncIterator[Client]:
    async with httpx.AsyncClient(headers=a2a.headers, timeout=20) as http:
        made = ClientConfig(httpx_client=http, supported_protocol_bindings=[binding], **config)
        client = await create_client(a2a.url, client_config=made)
        try:
            yield client
        finally:
            await client.close()


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def _kind(event: StreamResponse) -> tuple[str, Any]:
    which = event.WhichOneof("payload")
    if which == "task":
        return "task", S.Name(event.task.status.state)
    if which == "status_update":
        return "status", S.Name(event.status_update.status.state)
    if which == "artifact_update":
        return "artifact", event.artifact_update.artifact.parts[0].text
    return str(which), None


def test_the_card_lists_the_queues_as_skills_and_the_token(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    card = httpx.get(f"{a2a.url}/.well-known/agent-card.json").json()
    assert "review" in card["skills"][1]["description"]  # a generic one: the queue has none
    a2a_worker.configure_queue(OTHER, description="Reviews what it is given.")
    a2a_worker.configure_queue(QUEUE, description="not shown: --describe wins")
    card = httpx.get(f"{a2a.url}/.well-known/agent-card.json").json()  # public: no token
    skills = {s["id"]: s for s in card["skills"]}
    assert list(skills) == [QUEUE, OTHER]
    assert skills[QUEUE]["description"] == "Looks things up and reports what it found."
    assert skills[OTHER]["description"] == "Reviews what it is given."
    assert card["capabilities"] == {"streaming": True, "pushNotifications": True}
    bindings = {i["protocolBinding"] for i in card["supportedInterfaces"]}
    assert bindings == {"JSONRPC", "HTTP+JSON"}
    assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "Bearer"
    assert card["securityRequirements"] == [{"schemes": {"bearer": {}}}]


@pytest.mark.parametrize("binding", BINDINGS)
def test_a_streamed_message_goes_submitted_working_completed(
    a2a: A2AServer, a2a_worker: Swarm, binding: str
) -> None:
    async def send() -> list[StreamResponse]:
        async with _client(a2a, binding) as client:
            seen: list[StreamResponse] = []
            request = SendMessageRequest(message=_message("find the answer"))
            async for event in client.send_message(request):
                seen.append(event)
                if len(seen) == 1:  # the task is posted: a worker of ours takes it
                    threading.Thread(target=work_one, args=(a2a_worker, QUEUE, "42")).start()
        return seen

    seen = _run(send())
    kinds = [_kind(e) for e in seen]
    assert kinds == [
        ("task", "TASK_STATE_SUBMITTED"),
        ("status", "TASK_STATE_WORKING"),
        ("artifact", "42"),
        ("status", "TASK_STATE_COMPLETED"),
    ]
    first = seen[0].task
    ours = a2a_worker.get_task(first.id)  # the A2A task id is ours; the context id its pass
    assert ours.queue == QUEUE and ours.pass_name == first.context_id
    assert ours.description == "find the answer" and ours.data == {"n": 1}
    finding = MessageToDict(seen[2].artifact_update.artifact.parts[1].data)
    assert finding["summary"] == "42" and finding["details"] == "did: find the answer"
    assert finding["task_id"] == first.id


@pytest.mark.parametrize("binding", BINDINGS)
def test_get_list_and_cancel(a2a: A2AServer, a2a_worker: Swarm, binding: str) -> None:
    context = str(uuid.uuid4())

    async def scenario() -> dict[str, Any]:
        async with _client(a2a, binding, streaming=False, polling=True) as client:
            out: dict[str, Any] = {}
            tasks = []
            for text in ("one", "two"):
                message = _message(text, skill=OTHER)
                message.context_id = context
                [event] = [
                    e async for e in client.send_message(SendMessageRequest(message=message))
                ]
                tasks.append(event.task)
            out["posted"] = [S.Name(t.status.state) for t in tasks]
            await asyncio.to_thread(work_one, a2a_worker, OTHER, "done")
            done = await client.get_task(GetTaskRequest(id=tasks[0].id))
            out["done"] = (S.Name(done.status.state), [p.text for p in done.artifacts[0].parts])
            cancelled = await client.cancel_task(CancelTaskRequest(id=tasks[1].id))
            out["cancelled"] = S.Name(cancelled.status.state)
            listed = await client.list_tasks(ListTasksRequest(context_id=context))
            out["listed"] = sorted((t.id, S.Name(t.status.state)) for t in listed.tasks)
            out["total"] = listed.total_size
            working = await client.list_tasks(
                ListTasksRequest(context_id=context, status=S.TASK_STATE_CANCELED)
            )
            out["by_state"] = [t.id for t in working.tasks]
            with pytest.raises(A2AError, match="cannot be cancelled"):
                await client.cancel_task(CancelTaskRequest(id=tasks[0].id))
            with pytest.raises(A2AError, match="does not exist"):
                await client.get_task(GetTaskRequest(id="t-nosuchtask"))
            out["ids"] = [t.id for t in tasks]
        return out

    out = _run(scenario())
    one, two = out["ids"]
    assert out["posted"] == ["TASK_STATE_SUBMITTED", "TASK_STATE_SUBMITTED"]
    assert out["done"] == ("TASK_STATE_COMPLETED", ["done", ""])
    assert out["cancelled"] == "TASK_STATE_CANCELED"
    assert out["listed"] == sorted([(one, "TASK_STATE_COMPLETED"), (two, "TASK_STATE_CANCELED")])
    assert out["by_state"] == [two]
    assert out["total"] == 2


def test_a_failed_task_cannot_be_canceled(a2a: A2AServer, a2a_worker: Swarm) -> None:
    """FAILED is final in A2A: the core may drop a dead task for good (a shard's cancel),
    but not through this agent, whose client saw it fail."""

    async def scenario() -> str:
        async with _client(a2a, BINDINGS[1], streaming=False, polling=True) as client:
            [event] = [
                e
                async for e in client.send_message(
                    SendMessageRequest(message=_message("fails", skill=OTHER))
                )
            ]
            task = await asyncio.to_thread(a2a_worker.claim, OTHER, worker="w", wait_s=10)
            assert task is not None and task.id == event.task.id
            await asyncio.to_thread(a2a_worker.fail, task.id, task.token, "broken", retry=False)
            with pytest.raises(A2AError, match="cannot be canceled"):
                await client.cancel_task(CancelTaskRequest(id=task.id))
            got = await client.get_task(GetTaskRequest(id=task.id))
            return S.Name(got.status.state)

    assert _run(scenario()) == "TASK_STATE_FAILED"


def test_a_retried_message_posts_one_task(a2a: A2AServer, a2a_worker: Swarm) -> None:
    async def twice() -> list[str]:
        async with _client(a2a, BINDINGS[1], streaming=False, polling=True) as client:
            message = _message("only once")
            ids = []
            for _ in range(2):
                request = SendMessageRequest(message=message)
                push = TaskPushNotificationConfig(url="http://127.0.0.1:9/never-answers")
                request.configuration.task_push_notification_config.CopyFrom(push)
                [event] = [e async for e in client.send_message(request)]
                ids.append(event.task.id)
            return ids

    first, again = _run(twice())
    assert first == again
    assert len(a2a_worker.webhooks(first)) == 1  # and one webhook, not one per attempt
    a2a_worker.cancel(first)  # the queue is the next tests' too


def test_a_blocking_send_answers_once_the_task_settled(a2a: A2AServer, a2a_worker: Swarm) -> None:
    threading.Timer(0.1, work_one, args=(a2a_worker, QUEUE, "quick")).start()

    async def send() -> list[StreamResponse]:
        async with _client(a2a, BINDINGS[0], streaming=False) as client:
            request = SendMessageRequest(message=_message("be quick"))
            return [e async for e in client.send_message(request)]

    [event] = _run(send())
    assert S.Name(event.task.status.state) == "TASK_STATE_COMPLETED"
    assert event.task.artifacts[0].parts[0].text == "quick"


def test_a_dead_task_fails_with_its_reason(a2a: A2AServer, a2a_worker: Swarm) -> None:
    async def send() -> str:
        async with _client(a2a, BINDINGS[1], streaming=False, polling=True) as client:
            [e] = [e async for e in client.send_message(SendMessageRequest(message=_message("x")))]
        return e.task.id

    async def get(task_id: str) -> Any:
        async with _client(a2a, BINDINGS[1]) as client:
            return await client.get_task(GetTaskRequest(id=task_id))

    task_id = _run(send())
    task = a2a_worker.claim(QUEUE, worker="w", wait_s=5)
    assert task is not None and task.id == task_id
    a2a_worker.fail(task.id, task.token, "the source is gone", retry=False)
    failed = _run(get(task_id))
    assert S.Name(failed.status.state) == "TASK_STATE_FAILED"
    assert "the source is gone" in failed.status.message.parts[0].text


def test_push_notifications_arrive_once_each(
    a2a: A2AServer, a2a_redis: RedisServer, a2a_worker: Swarm, hook: Receiver
) -> None:
    push = TaskPushNotificationConfig(url=hook.url, token="client-secret")

    async def send() -> str:
        async with _client(a2a, BINDINGS[0], streaming=False, polling=True) as client:
            request = SendMessageRequest(message=_message("notify me"))
            request.configuration.task_push_notification_config.CopyFrom(push)
            [e] = [e async for e in client.send_message(request)]
        return e.task.id

    task_id = _run(send())
    work_one(a2a_worker, QUEUE, "pushed")
    posts = hook.wait_for(4)
    assert all(h["x-a2a-notification-token"] == "client-secret" for h, _ in posts)
    kinds = [next(iter(body)) for _, body in posts]
    assert kinds == ["statusUpdate", "statusUpdate", "artifactUpdate", "statusUpdate"]
    states = [b["statusUpdate"]["status"]["state"] for _, b in posts if "statusUpdate" in b]
    assert states == ["TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]
    assert {b[next(iter(b))]["taskId"] for _, b in posts} == {task_id}

    # A second server (or this one restarted) replays every event of the task: nothing is
    # sent again, the claims in Redis say it was delivered.
    async def replay() -> None:
        from redis_swarm import AsyncSwarm

        async with AsyncSwarm(a2a_redis.url, swarm=SWARM) as swarm, httpx.AsyncClient() as http:
            dispatcher = PushDispatcher(swarm, [QUEUE], http)
            for event in await swarm.events(types="task"):
                await dispatcher.handle(event)

    _run(replay())
    assert len(hook.wait_for(5, timeout_s=0.5)) == 4


@pytest.mark.parametrize("binding", BINDINGS)
def test_a_client_subscribes_to_a_task_it_sent(
    a2a: A2AServer, a2a_worker: Swarm, binding: str
) -> None:
    async def scenario() -> tuple[list[tuple[str, Any]], str]:
        async with _client(a2a, binding, streaming=False, polling=True) as client:
            request = SendMessageRequest(message=_message("watch me"))
            [sent] = [e async for e in client.send_message(request)]
        seen = []
        async with _client(a2a, binding) as client:
            async for event in client.subscribe(SubscribeToTaskRequest(id=sent.task.id)):
                seen.append(_kind(event))
                if len(seen) == 1:
                    threading.Thread(target=work_one, args=(a2a_worker, QUEUE, "seen")).start()
        return seen, sent.task.id

    seen, task_id = _run(scenario())
    assert seen == [
        ("task", "TASK_STATE_SUBMITTED"),
        ("status", "TASK_STATE_WORKING"),
        ("artifact", "seen"),
        ("status", "TASK_STATE_COMPLETED"),
    ]
    # Settled: nothing to subscribe to (the SDK's client waits for a stream that never
    # comes over JSON-RPC, so the answer is read here as it is sent).
    body = {"jsonrpc": "2.0", "id": 1, "method": "SubscribeToTask", "params": {"id": task_id}}
    headers = {**a2a.headers, "A2A-Version": "1.0"}
    answer = httpx.post(a2a.url + "/", json=body, headers=headers).json()
    assert "nothing to subscribe to" in answer["error"]["message"]


def test_push_configs_are_kept_and_a_refused_post_is_retried(
    a2a: A2AServer, a2a_worker: Swarm, hook: Receiver
) -> None:
    auth = AuthenticationInfo(scheme="Bearer", credentials="for-the-hook")

    async def configure() -> tuple[str, list[str], list[str]]:
        async with _client(a2a, BINDINGS[1], streaming=False, polling=True) as client:
            request = SendMessageRequest(message=_message("configure me"))
            [sent] = [e async for e in client.send_message(request)]
            task_id = sent.task.id
            made = await client.create_task_push_notification_config(
                TaskPushNotificationConfig(task_id=task_id, url=hook.url, authentication=auth)
            )
            spare = await client.create_task_push_notification_config(
                TaskPushNotificationConfig(task_id=task_id, url=hook.url + "/spare", id="spare")
            )
            got = await client.get_task_push_notification_config(
                GetTaskPushNotificationConfigRequest(task_id=task_id, id=made.id)
            )
            assert got.url == hook.url and got.authentication.scheme == "Bearer"
            assert not got.authentication.credentials  # kept, not shown (test_a2a_redteam)
            listed = await client.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task_id)
            )
            await client.delete_task_push_notification_config(
                DeleteTaskPushNotificationConfigRequest(task_id=task_id, id=spare.id)
            )
            left = await client.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task_id)
            )
            return task_id, [c.id for c in listed.configs], [c.id for c in left.configs]

    task_id, listed, left = _run(configure())
    assert sorted(listed) == sorted([left[0], "spare"]) and "spare" not in left
    hook.refuse = 1  # the first post gets a 503: it is sent again
    work_one(a2a_worker, QUEUE, "retried")
    posts = hook.wait_for(3)
    assert [next(iter(body)) for _, body in posts] == [
        "statusUpdate",
        "artifactUpdate",
        "statusUpdate",
    ]
    assert {h["authorization"] for h, _ in posts} == {"Bearer for-the-hook"}
    assert "x-a2a-notification-token" not in posts[0][0]
    deadline = time.monotonic() + 5  # the final state went out: the webhook is removed
    while a2a_worker.webhooks(task_id) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert a2a_worker.webhooks(task_id) == []


def test_the_token_is_required(a2a: A2AServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "t-x"}}
    assert httpx.post(a2a.url + "/", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.post(a2a.url + "/", json=body, headers=wrong).status_code == 401
    assert httpx.get(a2a.url + "/tasks", headers=wrong).status_code == 401
    ok = httpx.post(a2a.url + "/", json=body, headers={**a2a.headers, "A2A-Version": "1.0"})
    assert ok.status_code == 200 and "error" in ok.json()  # in, and told the task is unknown


def test_bad_messages_are_refused_with_what_to_send(a2a: A2AServer) -> None:
    async def send(message: Message) -> None:
        async with _client(a2a, BINDINGS[0], streaming=False, polling=True) as client:
            [_ async for _ in client.send_message(SendMessageRequest(message=message))]

    by_url = Message(
        message_id="m1",
        role=Role.ROLE_USER,
        parts=[
            Part(
                text="read",
            ),
            Part(url="https://x.example/f.pdf"),
        ],
    )
    with pytest.raises(A2AError, match="file by URL"):
        _run(send(by_url))
    with pytest.raises(A2AError, match="unknown skill 'nope'"):
        _run(send(_message("x", skill="nope")))
    with pytest.raises(A2AError, match="no text"):
        _run(
            send(
                Message(
                    message_id="m2",
                    role=Role.ROLE_USER,
                    parts=[Part(data=ParseDict({"a": 1}, Value()))],
                )
            )
        )


def test_a_small_file_is_inlined_into_the_task_a_big_one_refused(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    """A raw file part up to the inline limit reaches the worker in the task's data (base64,
    with its name and media type); a bigger one is refused with what to do instead."""

    def message(raw: bytes) -> Message:
        return Message(
            message_id=str(uuid.uuid4()),
            role=Role.ROLE_USER,
            parts=[
                Part(text="summarise the attached notes"),
                Part(raw=raw, filename="notes.txt", media_type="text/plain"),
            ],
        )

    async def send(raw: bytes) -> list[Any]:
        async with _client(a2a, BINDINGS[0], streaming=False, polling=True) as client:
            return [r async for r in client.send_message(SendMessageRequest(message=message(raw)))]

    body = b"line one\nline two: \xe2\x9c\x93\n"
    [reply] = _run(send(body))
    task = a2a_worker.get_task(reply.task.id)
    assert task.description == "summarise the attached notes"
    assert task.data == {
        "file": "notes.txt",
        "media_type": "text/plain",
        "base64": base64.b64encode(body).decode(),
    }
    before = a2a_worker.queue_stats()
    with pytest.raises(A2AError, match="files are inlined into the task up to"):
        _run(send(b"x" * (INLINE_FILE_BYTES + 1)))
    assert a2a_worker.queue_stats() == before  # nothing posted


def test_off_loopback_needs_a_token(a2a_redis: RedisServer) -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(
        main, ["--url", a2a_redis.url, "a2a", "--queue", "q", "--host", "0.0.0.0"]
    )
    assert result.exit_code != 0
    assert "needs a token" in result.output


def test_off_loopback_webhooks_inside_the_network_are_refused(a2a_redis: RedisServer) -> None:
    """Served off loopback (``private_webhooks=False``), a client cannot make the server post
    to loopback or private addresses."""
    from a2a.server.context import ServerCallContext
    from a2a.utils.errors import InvalidParamsError
    from a2a.utils.push_url_validator import validate_push_notification_url

    from redis_swarm import AsyncSwarm
    from redis_swarm.a2a_server import SwarmRequestHandler

    async def attempt(url: str) -> None:
        async with AsyncSwarm(a2a_redis.url, swarm="a2a-private") as swarm:
            task = await swarm.post_task(QUEUE, "x")
            handler = SwarmRequestHandler(swarm, [QUEUE], url_check=validate_push_notification_url)
            config = TaskPushNotificationConfig(task_id=task.id, url=url)
            await handler.on_create_task_push_notification_config(config, ServerCallContext())

    for url in ("http://127.0.0.1:8080/hook", "http://10.1.2.3/hook", "http://169.254.169.254/"):
        with pytest.raises(InvalidParamsError, match="refused"):
            _run(attempt(url))


def test_a_follower_that_loses_a_cancellation_is_still_stopped() -> None:
    """On Python 3.11 ``asyncio.wait_for`` (around every command redis-py sends) returns
    instead of raising when a cancellation comes just as its send completes: the push
    dispatcher then followed the stream on, and ``swarm a2a`` hung after SIGTERM. The lifespan
    stops it with ``stop_task``, which cancels again while the task runs on."""
    lost: list[bool] = []

    async def follower() -> None:
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if lost:
                    raise
                lost.append(True)  # as wait_for does when its future is already done

    async def body() -> None:
        task = asyncio.create_task(follower())
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(stop_task(task))
        done, _ = await asyncio.wait({stopping}, timeout=5)
        assert done, "one cancellation was lost and the follower ran on"
        assert task.cancelled()

    asyncio.run(body())  # (its end cancels the tasks left, again)
    assert lost == [True]
