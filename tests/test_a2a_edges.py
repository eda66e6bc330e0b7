"""``swarm a2a`` at its edges, as a user's tour met them: a start that cannot work fails at
once, bad arguments are usage errors, a body is bounded while it is read, a misspelt status
or a made-up ``Last-Event-ID`` is refused or ignored, a status time is never a stale one,
remote clients are told what to do in A2A words, and the operator's log stays one line per
client mistake, with a clean stop."""

from __future__ import annotations

import asyncio
import json
import logging
import select
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.server.context import ServerCallContext
from a2a.types import CancelTaskRequest, GetTaskRequest, ListTasksRequest, TaskState
from click.testing import CliRunner
from google.protobuf.timestamp_pb2 import Timestamp

from redis_swarm import AsyncSwarm, Limits, Settings, Swarm, _hints, apply_role
from redis_swarm._models import EventType, Task
from redis_swarm._models import TaskStatus as SwarmStatus
from redis_swarm._validate import MAX_DESCRIPTION_CHARS
from redis_swarm.a2a_server import SwarmRequestHandler
from redis_swarm.a2a_server._convert import a2a_task
from redis_swarm.a2a_server._push import RECONNECT_MAX_S, PushDispatcher, reconnect_delay
from redis_swarm.a2a_server._request import max_body_bytes
from redis_swarm.a2a_server._resume import Position
from redis_swarm.a2a_server._words import A2A_WORDS
from redis_swarm.a2a_server.app import EndCancelled
from redis_swarm.cli import main

from ._a2a import QUEUE, SWARM, TOKEN, A2AServer, start_a2a, stop
from ._handles import must
from ._servers import RedisServer, ServerFactory, free_port
from ._tls import make_pki, start_tls_server

S = TaskState


def _rpc(a2a: A2AServer, method: str, params: dict[str, Any], **headers: str) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    sent = {**a2a.headers, "A2A-Version": "1.0", **headers}
    return httpx.post(a2a.url + "/", json=body, headers=sent, timeout=20).json()


def _message(text: str, *parts: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageId": str(uuid.uuid4()),
        "role": "ROLE_USER",
        "parts": [{"text": text}, *parts],
    }


def _a2a_cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


# --- 1. a start that cannot work fails before the card is announced


@pytest.fixture(scope="module")
def worker_url(a2a_redis: RedisServer) -> str:
    spec = apply_role(
        Settings.from_url(a2a_redis.url, swarm=SWARM), "worker", "a2a-edges-worker"
    ).user
    return f"redis://{spec.user}:{spec.password}@127.0.0.1:{a2a_redis.port}"


def test_a_start_that_cannot_work_fails_at_once(
    a2a_redis: RedisServer, worker_url: str, servers: ServerFactory, tmp_path: Path
) -> None:
    """Before, each of these printed the card's URL and then logged a failure once a second
    forever; now each exits 1 with what to fix, and announces nothing."""
    pki = make_pki(tmp_path)
    tls = start_tls_server(servers, pki, auth_clients="optional")
    closed = free_port()
    cases = {
        f"redis://nobody:not-the-password@127.0.0.1:{a2a_redis.port}": "authentication failed",
        f"redis://127.0.0.1:{closed}": "cannot reach Redis",
        f"rediss://127.0.0.1:{tls.port}?ssl_ca_certs={pki.wrong_ca}": "check ssl_ca_certs",
        worker_url: "needs a shard or coordinator user of swarm a2a",
    }
    for url, expected in cases.items():
        result = _a2a_cli("--url", url, "--swarm", SWARM, "a2a", "--queue", QUEUE, "--port", "0")
        assert result.exit_code == 1, (url, result.output)
        assert expected in result.output, (url, result.output)
        assert "card at" not in result.output
    worker = _a2a_cli("--url", worker_url, "--swarm", SWARM, "a2a", "--queue", QUEUE)
    assert f"swarm acl --role shard --swarm {SWARM}" in worker.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--queue", ""], "--queue: queue is empty"),
        (["--queue", "bad/queue"], "contains '/'"),
        (["--queue", "q", "--url", "notaurl"], "'notaurl' is not an http(s) URL with a host"),
        (["--queue", "q", "--url", "ftp://host/"], "is not an http(s) URL"),
        (["--queue", "q", "--url", "http://host:99999/"], "is not an http(s) URL"),
    ],
)
def test_bad_arguments_are_usage_errors(
    a2a_redis: RedisServer, args: list[str], expected: str
) -> None:
    """They were put on the card: a skill without an id, a skill every message to which
    failed, a card at 'notaurl/.well-known/...'."""
    result = _a2a_cli("--url", a2a_redis.url, "a2a", *args)
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_a_refusing_redis_is_said_once_and_an_outage_followed_less_and_less_often(
    a2a_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The push dispatcher, its Redis refusing it: it logged one line a second, forever;
    then a warning at each doubling wait. A refused password is said once now, saying what
    to fix (test_a2a_push_permanent holds the tries that follow); a lost Redis is followed
    again after waits that double."""
    url = f"redis://nobody:not-the-password@127.0.0.1:{a2a_redis.port}"

    async def follow() -> None:
        async with AsyncSwarm(url, swarm=SWARM) as swarm, httpx.AsyncClient() as http:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(PushDispatcher(swarm, [QUEUE], http).run(), 2.5)

    with caplog.at_level(logging.WARNING, logger="redis_swarm.a2a_server._push"):
        asyncio.run(follow())
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1, said
    assert "check the user name and password" in said[0] and "no retry fixes" in said[0]
    delays = [reconnect_delay(n) for n in range(1, 10)]
    assert delays[:4] == [1, 2, 4, 8] and delays[-1] == RECONNECT_MAX_S


# --- 2. a status's time is when the task took it (the record's status_at), or none


def test_a_cancelled_task_is_not_shown_at_its_claim_time(a2a_redis: RedisServer) -> None:
    """A task claimed, then cancelled: GetTask, CancelTask and ListTasks showed the claim's
    time, so ListTasks after the cancellation left it out."""

    async def body() -> dict[str, Any]:
        async with AsyncSwarm(a2a_redis.url, swarm="a2a-times") as swarm:
            handler = SwarmRequestHandler(swarm, [QUEUE])
            posted = await swarm.post_task(QUEUE, "cancel me once claimed")
            claimed = await swarm.claim(QUEUE, worker="w")
            assert claimed is not None and claimed.id == posted.id
            await asyncio.sleep(0.05)
            ctx = ServerCallContext()
            cancelled = await handler.on_cancel_task(CancelTaskRequest(id=posted.id), ctx)
            got = await handler.on_get_task(GetTaskRequest(id=posted.id), ctx)
            after = Timestamp()
            after.FromMilliseconds((claimed.claimed_at or 0) + 1)
            listed = await handler.on_list_tasks(
                ListTasksRequest(status=S.TASK_STATE_CANCELED, status_timestamp_after=after),
                ctx,
            )
            later = Timestamp()
            later.FromMilliseconds((got.status.timestamp.ToMilliseconds()) + 1)
            after_it = await handler.on_list_tasks(
                ListTasksRequest(status=S.TASK_STATE_CANCELED, status_timestamp_after=later),
                ctx,
            )
            events = await swarm.events(types=EventType.TASK_CANCELLED)
            return {
                "claimed_at": claimed.claimed_at,
                "status_at": (await swarm.get_task(posted.id)).status_at,
                "after_it": [t.id for t in after_it.tasks],
                "cancelled": cancelled.status,
                "got": got.status,
                "listed": [t.id for t in listed.tasks],
                "event_at": next(e.at for e in events if e.fields.get("task") == posted.id),
                "id": posted.id,
            }

    out = asyncio.run(body())
    assert out["cancelled"].state == S.TASK_STATE_CANCELED
    # CancelTask answers the record's time of the cancellation (status_at), as GetTask does.
    assert out["cancelled"].timestamp.ToMilliseconds() == out["status_at"] > out["claimed_at"]
    # The record keeps the cancellation's time (status_at): GetTask shows it, and
    # statusTimestampAfter tells the task older than a later time.
    assert out["got"].timestamp.ToMilliseconds() == out["status_at"] > out["claimed_at"]
    assert abs(out["status_at"] - out["event_at"]) <= 5  # one script: the same clock
    assert out["listed"] == [out["id"]] and out["after_it"] == []


def test_status_times_come_from_the_record_where_it_has_them(a2a_redis: RedisServer) -> None:
    with Swarm(a2a_redis.url, swarm="a2a-times-2") as swarm:
        posted = swarm.post_task(QUEUE, "x")
        assert _shown(posted) == posted.created_at
        claimed = swarm.claim(QUEUE, worker="w")
        assert claimed is not None and _shown(claimed) == claimed.claimed_at
        released = swarm.release(claimed.id, claimed.token)
        assert released.status == SwarmStatus.PENDING
        assert released.status_at is not None and _shown(released) == released.status_at
        again = swarm.claim(QUEUE, worker="w")
        assert again is not None
        swarm.report(again.id, again.token, {"summary": "done"})
        done = swarm.get_task(again.id)
        assert _shown(done) == done.completed_at


def _shown(task: Task) -> int | None:
    """The timestamp (ms) of the A2A status the task shows; None: it shows none."""
    status = a2a_task(task, None).status
    return status.timestamp.ToMilliseconds() if status.HasField("timestamp") else None


def test_cancelled_and_dead_tasks_show_when_they_took_their_status(
    a2a: A2AServer, a2a_redis: RedisServer
) -> None:
    """GetTask and ListTasks of a cancelled and a dead-lettered task show the time the
    record keeps (before, neither had one); a record from before status_at shows none."""
    with Swarm(a2a_redis.url, swarm=SWARM) as swarm:
        cancelled = swarm.post_task(QUEUE, "cancel me")
        swarm.cancel(cancelled.id)
        dead = swarm.post_task(QUEUE, "fail me", max_attempts=1)
        claimed = swarm.claim(QUEUE, worker="w")
        assert claimed is not None and claimed.id == dead.id
        swarm.fail(dead.id, claimed.token, "boom", retry=False)
        at = {t: must(swarm.get_task(t).status_at) for t in (cancelled.id, dead.id)}
    for task_id, state in ((cancelled.id, "TASK_STATE_CANCELED"), (dead.id, "TASK_STATE_FAILED")):
        got = _rpc(a2a, "GetTask", {"id": task_id})["result"]["status"]
        assert got["state"] == state
        assert got["timestamp"] == _iso_z(at[task_id])
        listed = _rpc(a2a, "ListTasks", {"status": state})["result"]["tasks"]
        assert [t["status"]["timestamp"] for t in listed if t["id"] == task_id] == [
            got["timestamp"]
        ]
    old = Task(id="t-old", queue=QUEUE, description="d", status=SwarmStatus.CANCELLED)
    assert _shown(old) is None


def _iso_z(ms: int) -> str:
    """A protobuf Timestamp's JSON form of ``ms``."""
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp.ToJsonString()


# --- 3. a Last-Event-ID this server did not write is ignored


@pytest.mark.parametrize(
    "text",
    [
        "1-0.99999999999999999999999.1",  # an absurd skip
        "1-0.2.1",  # more updates than one event makes
        "18446744073709551616-0.0.1",  # past a 64-bit number
        "1" * 30 + "-0.0.1",
        "\u0663-0.0.1",  # (an Arabic-Indic 3: a digit to str.isdigit, not in an id)
    ],
)
def test_an_absurd_last_event_id_is_not_a_position(text: str) -> None:
    assert Position.parse(text) is None


def test_a_position_read_back_keeps_its_skip() -> None:
    assert Position.parse("1700000000000-3.1.3") == Position("1700000000000-3", 1, 3)


@pytest.mark.parametrize("last_id", ["99999999999999-0.0.1", "1-0.99999999999999999999999.1"])
def test_a_made_up_last_event_id_gets_a_plain_subscription(
    a2a: A2AServer, a2a_worker: Swarm, last_id: str
) -> None:
    """Before, an id from the future sent nothing at all, even once the task was cancelled,
    until the client gave up."""
    sent = _rpc(a2a, "SendMessage", {"message": _message("subscribe"), "configuration": {
        "returnImmediately": True}})  # fmt: skip
    task_id = sent["result"]["task"]["id"]
    body = {"jsonrpc": "2.0", "id": 1, "method": "SubscribeToTask", "params": {"id": task_id}}
    headers = {**a2a.headers, "A2A-Version": "1.0", "Last-Event-ID": last_id}
    with httpx.stream("POST", a2a.url + "/", json=body, headers=headers, timeout=10) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        assert json.loads(first[5:])["result"]["task"]["id"] == task_id
        a2a_worker.cancel(task_id)
        final = next(line for line in lines if line.startswith("data:"))
        assert json.loads(final[5:])["result"]["statusUpdate"]["status"]["state"] == (
            "TASK_STATE_CANCELED"
        )


# --- 5. the body is bounded while it is read


def _raw_post(a2a: A2AServer, headers: dict[str, str], chunks: Iterator[bytes]) -> tuple[str, int]:
    """POST / over a plain socket, sending ``chunks`` until the server answers; the status
    line of its answer, and how many body bytes were sent before it came."""
    port = int(a2a.url.rsplit(":", 1)[1])
    head = {"Host": "127.0.0.1", "Authorization": f"Bearer {a2a.token}", **headers}
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(
            (
                "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
            ).encode()
        )
        sent = 0
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered: it reads no more
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
        answer = b""
        deadline = time.monotonic() + 20
        while b"\r\n" not in answer and time.monotonic() < deadline:
            got = sock.recv(65536)
            if not got:
                break
            answer += got
    return answer.split(b"\r\n", 1)[0].decode(), sent


def test_a_body_over_the_limit_is_refused_while_it_is_read(a2a: A2AServer) -> None:
    """One 200 MB SendMessage took the server from 85 MB to 988 MB of memory before the
    swarm refused its description."""
    limit = max_body_bytes(Limits())
    piece = b"x" * 65536
    # Declared too big: refused before a byte of it is read.
    status, _ = _raw_post(a2a, {"Content-Length": str(200 * 1024 * 1024)}, iter([]))
    assert status.startswith("HTTP/1.1 413"), status

    # Chunked (no length said): refused once past the limit, not read to its end.
    def chunked() -> Iterator[bytes]:
        for _ in range(200 * 1024 * 1024 // len(piece)):
            yield b"%x\r\n%s\r\n" % (len(piece), piece)

    status, sent = _raw_post(a2a, {"Transfer-Encoding": "chunked"}, chunked())
    assert status.startswith("HTTP/1.1 413"), status
    assert sent < 50 * limit  # (what the sockets' buffers held besides)


def test_the_largest_task_the_swarm_takes_fits_in_the_limit(
    a2a: A2AServer, a2a_worker: Swarm
) -> None:
    """The limit refuses nothing the swarm would store: the longest description and the
    biggest data, every character written as a JSON escape, pass."""
    limits = Limits()
    text = "\U0001f600" * MAX_DESCRIPTION_CHARS  # 12 bytes each, escaped
    blob = "\u00e9" * ((limits.max_task_data_bytes - len('{"d":""}')) // 2)  # 2 bytes, 6 escaped
    message = _message(text, {"data": {"d": blob}})
    params = {"message": message, "configuration": {"returnImmediately": True}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params}
    encoded = json.dumps(body).encode()  # (ensure_ascii: every non-ASCII character escaped)
    assert len(encoded) <= max_body_bytes(limits)
    headers = {**a2a.headers, "A2A-Version": "1.0", "Content-Type": "application/json"}
    answer = httpx.post(a2a.url + "/", content=encoded, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text[:300]
    task_id = answer.json()["result"]["task"]["id"]
    assert a2a_worker.get_task(task_id).description == text
    a2a_worker.cancel(task_id)


# --- 6. a status that is no task state is refused


@pytest.mark.parametrize("status", ["completed", "TASK_STATE_BOGUS", 99])
def test_list_tasks_refuses_a_status_that_is_no_state(a2a: A2AServer, status: Any) -> None:
    """The SDK reads an unknown status as 0, which is "every state": a misspelt filter
    listed every task."""
    answer = _rpc(a2a, "ListTasks", {"status": status})
    assert answer["error"]["code"] == -32602, answer
    assert "is not a task state" in answer["error"]["message"]
    assert "TASK_STATE_COMPLETED" in answer["error"]["message"]


def test_list_tasks_status_over_http_json(a2a: A2AServer) -> None:
    headers = {**a2a.headers, "A2A-Version": "1.0"}
    bad = httpx.get(a2a.url + "/tasks", params={"status": "BOGUS"}, headers=headers)
    assert bad.status_code == 400 and "is not a task state" in bad.text
    good = httpx.get(a2a.url + "/tasks", params={"status": "TASK_STATE_CANCELED"}, headers=headers)
    assert good.status_code == 200
    assert all(t["status"]["state"] == "TASK_STATE_CANCELED" for t in good.json()["tasks"])
    assert "result" in _rpc(a2a, "ListTasks", {})  # left out: every state


# --- 9. remote clients are told what to do in A2A words


def test_hints_reach_a2a_clients_in_a2a_words(a2a: A2AServer) -> None:
    """A2A clients were told "check the id with swarm task list", a command they do not
    have. Every hint of the core has A2A words, and those a client can meet are said so."""
    assert set(A2A_WORDS) == {getattr(_hints, name) for name in _hints.__all__}
    big = {"data": {"blob": "x" * (Limits().max_task_data_bytes + 1)}}
    said = {
        _hints.CHECK_TASK_ID: _rpc(a2a, "GetTask", {"id": "t-nope"})["error"]["message"]
        + _rpc(a2a, "CancelTask", {"id": "t-nope"})["error"]["message"],
        _hints.PUBLISH_CONTEXT: _rpc(a2a, "SendMessage", {"message": _message("big", big)})[
            "error"
        ]["message"],
    }
    for hint, message in said.items():
        assert A2A_WORDS[hint] in message, message
    for message in said.values():
        as_core = [core for core in A2A_WORDS if _hints.said_of_any(core).search(message)]
        assert not as_core, message


# --- 8. the operator's log: one line per client mistake, and a clean stop


def test_bad_requests_log_one_line_and_a_stop_is_clean(a2a_redis: RedisServer) -> None:
    """Each malformed request printed a parser's traceback; a stop with a blocking
    SendMessage or a resumed subscription waiting printed a CancelledError traceback each."""
    server = start_a2a(a2a_redis.url, SWARM, TOKEN, "--queue", "edges-stop", "--wait", "30")
    try:
        bad: list[dict[str, Any]] = [
            {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": 5}},
            {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": ["x"]}},
        ]
        for body in bad:
            assert "error" in _rpc(server, body["method"], body["params"])
        sent = _rpc(server, "SendMessage", {"message": _message("wait"), "configuration": {
            "returnImmediately": True}})  # fmt: skip
        task_id = sent["result"]["task"]["id"]
        with Swarm(a2a_redis.url, swarm=SWARM) as swarm:  # a position after the task's post
            last = str(Position(swarm.last_event_id(), 0, S.TASK_STATE_SUBMITTED))

        async def waiters() -> list[Any]:
            headers = {**server.headers, "A2A-Version": "1.0", "Last-Event-ID": last}
            async with httpx.AsyncClient(timeout=20) as http:
                blocking = http.post(
                    server.url + "/",
                    json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                          "params": {"message": _message("block")}},
                    headers={**server.headers, "A2A-Version": "1.0"},
                )  # fmt: skip
                resumed = http.post(
                    server.url + "/",
                    json={"jsonrpc": "2.0", "id": 2, "method": "SubscribeToTask",
                          "params": {"id": task_id}},
                    headers=headers,
                )  # fmt: skip
                pending = [asyncio.ensure_future(blocking), asyncio.ensure_future(resumed)]
                await asyncio.sleep(1.5)
                started = time.monotonic()
                await asyncio.to_thread(server.proc.terminate)
                done = await asyncio.gather(*pending)
                assert time.monotonic() - started < 5
                return [r.status_code for r in done] + [done[0].json()]

        blocking_status, resumed_status, answer = asyncio.run(waiters())
    finally:
        err = stop(server)
    assert (blocking_status, resumed_status) == (200, 200)
    assert answer["result"]["task"]["status"]["state"] == "TASK_STATE_SUBMITTED"
    assert "Traceback" not in err and "CancelledError" not in err, err
    assert "timeout graceful shutdown exceeded" not in err, err
    # (the SDK's "Request Error" line, naming the parser's error; its traceback record dropped)
    one_line = [line for line in err.splitlines() if "Request Error" in line]
    assert all("Code=-32602" in line and "parseError" in line for line in one_line), err
    assert "Failed to parse request params" not in err, err
    assert len(one_line) == len(bad), err


def test_a_request_cancelled_by_a_stop_is_answered_not_raised() -> None:
    async def forever(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(60)

    async def body() -> list[Any]:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> Any:
            return {"type": "http.request", "body": b""}

        task = asyncio.create_task(EndCancelled(forever)({"type": "http"}, receive, send))
        await asyncio.sleep(0.01)
        task.cancel()
        await task  # (no CancelledError: uvicorn would print it as a traceback)
        return sent

    sent = asyncio.run(body())
    assert sent[0]["status"] == 503 and sent[-1]["type"] == "http.response.body"


def test_the_docs_state_the_body_limit() -> None:
    doc = " ".join((Path(__file__).resolve().parent.parent / "docs" / "a2a.md").read_text().split())
    assert f"{max_body_bytes(Limits()) / 2**20:.1f} MiB by default" in doc
    assert "A2A-Version: 1.0" in doc
