"""An a2a-sdk server on the Redis stores, as docs/a2a.md writes it, run as two uvicorn
processes on one swarm, served to the SDK's own client (create_client): a message sent to one
replica, its task read, streamed, listed and cancelled through the other."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from a2a.client import Client, create_client
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskState,
)

import redis_swarm

from ._servers import free_port

DOC = Path(__file__).resolve().parent.parent / "docs" / "a2a.md"
SECTION = "## Redis task stores for a2a-sdk servers"
S = TaskState


def server_source() -> str:
    """The server of the section: its first Python block."""
    section = DOC.read_text(encoding="utf-8").split(SECTION, 1)[1]
    found = re.search(r"```python\n(.*?)\n```", section, re.S)
    assert found, f"docs/a2a.md: no python block under {SECTION!r}"
    return found[1]


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the replica at {url} exited (see its log in the test's tmp)")
        try:
            if httpx.get(url + "/.well-known/agent-card.json", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the replica at {url} did not start")


@pytest.fixture
def replicas(server_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two replicas of the documented server on free loopback ports (on the standalone
    server, then on the cluster); their URLs."""
    (tmp_path / "server.py").write_text(server_source(), encoding="utf-8")
    src = str(Path(redis_swarm.__file__).resolve().parents[1])
    urls, processes = [], []
    try:
        for _ in range(2):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            env = {**os.environ, "SWARM_URL": server_url, "PUBLIC_URL": url}
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
            command = [sys.executable, "-m", "uvicorn", "server:app", "--host", "127.0.0.1"]
            command += ["--port", str(port), "--log-level", "warning"]
            with (tmp_path / f"replica-{port}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
                    )
                )
            urls.append(url)
        for url, process in zip(urls, processes, strict=True):
            _wait_for(url, process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def message(text: str) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(message_id=f"m-{text[:8]}", role=Role.ROLE_USER, parts=[Part(text=text)])
    )


def kind(response: StreamResponse) -> str:
    return response.WhichOneof("payload") or ""


async def _first(stream: AsyncIterator[StreamResponse], wanted: str) -> StreamResponse:
    async for response in stream:
        if kind(response) == wanted:
            return response
    raise AssertionError(f"the stream ended before a {wanted}")


async def scenario(a: Client, b: Client) -> None:
    words = [f"w{i}" for i in range(40)]  # 8 s of work: long enough to reach it from B
    sent = a.send_message(message(" ".join(words)))
    first = await _first(sent, "artifact_update")
    task_id = first.artifact_update.task_id
    seen_on_a = asyncio.create_task(_drain(sent))

    # B reads the task A is running, from Redis.
    task = await b.get_task(GetTaskRequest(id=task_id))
    assert task.status.state == S.TASK_STATE_WORKING
    assert task.artifacts and task.artifacts[0].parts[0].text == "w0"

    # B streams it: the task as stored, then the words A saves next, in order.
    subscription = b.subscribe(SubscribeToTaskRequest(id=task_id))
    snapshot = await _first(subscription, "task")
    stored = [artifact.parts[0].text for artifact in snapshot.task.artifacts]
    following = [(await _first(subscription, "artifact_update")) for _ in range(2)]
    streamed = [r.artifact_update.artifact.parts[0].text for r in following]
    assert stored + streamed == words[: len(stored) + 2]

    # B cancels it: A's next save fails its version check and its agent stops.
    cancelled = await b.cancel_task(CancelTaskRequest(id=task_id))
    assert cancelled.status.state == S.TASK_STATE_CANCELED
    ended = await _first(subscription, "status_update")
    while ended.status_update.status.state != S.TASK_STATE_CANCELED:
        ended = await _first(subscription, "status_update")
    await asyncio.wait_for(seen_on_a, 4)  # its agent stopped: the 40 words take 8 s
    final = await a.get_task(GetTaskRequest(id=task_id))
    assert final.status.state == S.TASK_STATE_CANCELED
    assert len(final.artifacts) < len(words)

    # A quick one sent to B, read and listed through A.
    done = [r async for r in b.send_message(message("one two"))]
    quick_id = next(r.task.id if kind(r) == "task" else r.status_update.task_id for r in done)
    quick = await a.get_task(GetTaskRequest(id=quick_id))
    assert quick.status.state == S.TASK_STATE_COMPLETED
    assert [x.parts[0].text for x in quick.artifacts] == ["one", "two"]
    listed = await a.list_tasks(ListTasksRequest(include_artifacts=True))
    assert listed.total_size == 2
    assert [t.id for t in listed.tasks] == [quick_id, task_id]  # newest status first


async def _drain(stream: AsyncIterator[StreamResponse]) -> list[StreamResponse]:
    return [response async for response in stream]


def test_two_replicas_serve_one_task(replicas: list[str]) -> None:
    async def main() -> None:
        a = await create_client(replicas[0])
        b = await create_client(replicas[1])
        try:
            await asyncio.wait_for(scenario(a, b), 40)
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())
