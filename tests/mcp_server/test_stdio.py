"""``swarm mcp`` as a subprocess on stdio, the way agent clients start it: a worker loop, a
shard loop, a clean exit on SIGTERM, and nothing on stdout but the protocol."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import Implementation

from redis_swarm import Swarm
from redis_swarm._models import EventType

from ._helpers import Tools, stdio_env

CONTEXT = "".join(
    f"{i:04d} {'the treaty was signed in 1648' if i == 777 else 'nothing to see here'}\n"
    for i in range(1, 2001)
)


@asynccontextmanager
async def stdio(
    redis_url: str, role: str, *args: str, errlog: IO[str], client: str = "stdio-test"
) -> AsyncIterator[Tools]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "redis_swarm", "mcp", "--role", role, *args],
        env=stdio_env(redis_url),
    )
    info = Implementation(name=client, version="1.0")
    async with Client(params, mode="legacy", client_info=info, read_timeout_seconds=60) as c:
        yield Tools(c, 8_000)


def test_worker_loop_over_stdio(core: Swarm, redis_url: str, tmp_path: Path) -> None:
    core.register("shard", name="shard-1")
    core.publish_context("shard-1", CONTEXT, source="history.md")
    for part in ("1600-1700", "1700-1800"):
        core.post_task("hist", f"find treaties signed in {part}", pass_name="P1", parent="shard-1")

    async def body() -> None:
        with open(tmp_path / "stderr.log", "w") as errlog:
            async with stdio(redis_url, "worker", errlog=errlog, client="claude-code") as worker:
                names = [t.name for t in (await worker.client.list_tools()).tools]
                assert "claim_task" in names and "publish_context" not in names
                while True:
                    claimed, _ = await worker("claim_task", queue="hist")
                    if claimed["task"] is None:
                        break
                    task = claimed["task"]
                    head, hits = await worker("search_context", pattern="treaty")
                    assert head["owner"] == "shard-1" and hits is not None
                    line = int(hits.split("\n")[2].split(":")[0])
                    _, text = await worker("read_context_lines", start=line, end=line)
                    assert text == "0777 the treaty was signed in 1648\n"
                    found = "1648" if task["description"].endswith("1600-1700") else "none"
                    await worker(
                        "report_finding",
                        task_id=task["id"],
                        summary=f"treaty: {found}",
                        sources=[f"context:L{line}"],
                        confidence=0.7,
                    )
                agents = core.agents(role="worker")
                assert len(agents) == 1 and agents[0].metadata is not None
                assert agents[0].metadata["client"] == "claude-code"
                assert agents[0].metadata["transport"] == "stdio"

    anyio.run(body)
    findings = list(core.findings(pass_name="P1"))
    assert sorted(f.summary for f in findings) == ["treaty: 1648", "treaty: none"]
    version = core.context_info("shard-1").version
    assert all(f.context_version == version and f.shard == "shard-1" for f in findings)
    assert core.agents(role="worker") == []  # the session left when stdin closed


def test_shard_loop_over_stdio(core: Swarm, redis_url: str, tmp_path: Path) -> None:
    source = tmp_path / "history.md"
    source.write_text(CONTEXT)

    async def work(redis_url: str, errlog: IO[str]) -> int:
        done = 0
        async with stdio(redis_url, "worker", errlog=errlog) as worker:
            deadline = time.monotonic() + 60
            while done < 3 and time.monotonic() < deadline:
                claimed, _ = await worker("claim_task", queue="hist", wait_s=2)
                if claimed["task"] is not None:
                    task_id = claimed["task"]["id"]
                    await worker("report_finding", task_id=task_id, summary=f"done {task_id}")
                    done += 1
        return done

    async def body() -> None:
        with open(tmp_path / "stderr.log", "w") as errlog:
            async with stdio(
                redis_url, "shard", "--name", "shard-9", "--root", str(tmp_path), errlog=errlog
            ) as shard:
                published, _ = await shard("publish_context", path=str(source))
                assert published["owner"] == "shard-9" and published["total_lines"] == 2000
                assert published["source"] == str(source)
                posted, _ = await shard(
                    "post_tasks",
                    tasks=[
                        {"queue": "hist", "description": f"century {c}", "pass_name": "P1"}
                        for c in (17, 18, 19)
                    ],
                )
                assert posted["posted"] == 3
                async with anyio.create_task_group() as tg:
                    results: list[int] = []

                    async def run_worker() -> None:
                        results.append(await work(redis_url, errlog))

                    tg.start_soon(run_worker)
                    settled: dict[str, Any] = {"settled": False}
                    while not settled["settled"]:
                        settled, _ = await shard("wait_for_pass", pass_name="P1", timeout_s=10)
                assert results == [3] and settled["counts"] == {"completed": 3}
                listed, _ = await shard("list_findings", pass_name="P1")
                ids = [f["id"] for f in listed["findings"]]
                assert len(ids) == 3
                synthesis, _ = await shard(
                    "synthesize", pass_name="P1", text="Three centuries read.", sources=ids
                )
                assert synthesis["sources"] == 3

    anyio.run(body)
    (synthesis,) = list(core.syntheses(shard="shard-9"))
    assert synthesis.text == "Three centuries read." and len(synthesis.sources) == 3
    # The named shard stays registered (stale), its inbox kept for its next start; the
    # worker, whose id was made up, left.
    assert [a.id for a in core.agents()] == ["shard-9"]


def _rpc(proc: subprocess.Popen[str], message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


@contextmanager
def _raw_server(redis_url: str, errlog: IO[str], *options: str) -> Iterator[subprocess.Popen[str]]:
    """``swarm mcp --role worker`` on pipes, for tests that speak the protocol by hand; killed
    on the way out if it is still running (never left to a later test)."""
    argv = [sys.executable, "-m", "redis_swarm", *options, "mcp", "--role", "worker"]
    env = {**os.environ, **stdio_env(redis_url)}
    popen = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog, text=True, env=env
    )
    with popen as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def _initialize(request_id: int) -> dict[str, Any]:
    info = {"name": "raw-client", "version": "0"}
    params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": info}
    return {"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": params}


def _reply(proc: subprocess.Popen[str], request_id: int | str) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        assert line, "the server closed stdout"
        message = json.loads(line)  # every stdout line is a JSON-RPC message
        assert message.get("jsonrpc") == "2.0"
        if message.get("id") == request_id:
            return dict(message)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_sigterm_leaves_cleanly_and_stdout_holds_only_the_protocol(
    core: Swarm, redis_url: str, tmp_path: Path, signum: int
) -> None:
    """SIGTERM: the task held is released and the agent deregistered; SIGKILL (a crash):
    both stay until the lease runs out and the agent goes stale, as before."""
    task = core.post_task("q", "a task", lease_s=60)
    with (
        open(tmp_path / "stderr.log", "w+") as errlog,
        _raw_server(redis_url, errlog, "--debug") as proc,
    ):
        _rpc(proc, _initialize(1))
        assert _reply(proc, 1)["result"]["serverInfo"]["name"] == "redis-swarm"
        _rpc(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _rpc(
            proc,
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "claim_task", "arguments": {"queue": "q"}},
            },
        )
        result = _reply(proc, 2)["result"]
        assert not result.get("isError")
        assert json.loads(result["content"][0]["text"])["task"]["description"] == "a task"
        assert [a.metadata and a.metadata["client"] for a in core.agents()] == ["raw-client"]
        proc.send_signal(signum)
        assert proc.wait(15) == (0 if signum == signal.SIGTERM else -signal.SIGKILL)
        errlog.seek(0)
        log = errlog.read()
    if signum == signal.SIGKILL:
        assert core.get_task(task.id).status == "claimed"  # until the lease expires
        assert len(core.agents()) == 1
        return
    assert core.agents() == [], log  # deregistered on the way out
    assert core.get_task(task.id).status == "pending", log  # released, not left to expire
    assert "left" in log and "released" in log  # the log went to stderr


def test_a_signal_during_the_registration_waits_for_it_and_deregisters(
    core: Swarm, raw: Any, redis_url: str, tmp_path: Path
) -> None:
    """Claude Code's `claude mcp list` sends SIGINT tens of milliseconds after
    `initialized`, maybe while the session's agent is still on its way to Redis: the server
    waits for that registration, deregisters the agent and exits. (Before, it found no agent
    to close and exited at once: the registration was cut off, or, if Redis had it, the agent
    stayed registered until it went stale.)"""
    with (
        open(tmp_path / "stderr.log", "w+") as errlog,
        _raw_server(redis_url, errlog) as proc,
    ):
        _rpc(proc, _initialize(1))
        _reply(proc, 1)
        raw.execute_command("CLIENT", "PAUSE", 30_000, "WRITE")  # writes wait in Redis
        try:
            _rpc(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
            deadline = time.monotonic() + 15
            while not int(raw.info("clients")["blocked_clients"]):  # the registration
                assert time.monotonic() < deadline, "the server did not register"
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
            time.sleep(0.5)  # time enough for a server that does not wait to be gone
        finally:
            raw.execute_command("CLIENT", "UNPAUSE")
        assert proc.wait(15) == 0
        errlog.seek(0)
        log = errlog.read()
    joined = [e.fields["agent"] for e in core.events(types=[EventType.AGENT_JOINED])]
    assert [a.split("-")[0] for a in joined] == ["raw"], log  # it registered,
    assert core.agents() == [], log  # and left


def test_2026_era_client_over_stdio(core: Swarm, redis_url: str, tmp_path: Path) -> None:
    """A client that speaks the 2026-07-28 protocol (no handshake) is served too."""
    task = core.post_task("q", "a task")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "redis_swarm", "mcp", "--role", "worker"],
        env=stdio_env(redis_url),
    )

    async def body() -> None:
        info = Implementation(name="future-client", version="1.0")
        async with Client(params, mode="auto", client_info=info) as client:
            assert client.protocol_version == "2026-07-28"
            tools = Tools(client, 8_000)
            claimed, _ = await tools("claim_task", queue="q")
            assert claimed["task"]["id"] == task.id
            done, _ = await tools("report_finding", task_id=task.id, summary="ok")
            assert done["completed"] is True

    anyio.run(body)
    assert core.get_task(task.id).status == "completed"
    assert core.agents() == []


def test_arguments_too_deep_get_an_error_reply(redis_url: str, tmp_path: Path) -> None:
    """5,000 levels of nesting: a JSON-RPC error with the request's id (wherever the id sits
    in the object), and the server goes on serving; a deep line without an id is dropped."""
    deep = "[" * 5000 + "]" * 5000
    call = '"method":"tools/call","params":{"name":"claim_task","arguments":{"queue":' + deep
    call += "}}"
    with (
        open(tmp_path / "stderr.log", "w+") as errlog,
        _raw_server(redis_url, errlog) as proc,
    ):
        assert proc.stdin is not None
        _rpc(proc, _initialize(1))
        _reply(proc, 1)
        _rpc(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        # As a JavaScript client writes it (id last), as Python writes it, and no id.
        proc.stdin.write('{"jsonrpc":"2.0",' + call + ',"id":2}\n')
        proc.stdin.write('{"jsonrpc":"2.0","id":"three",' + call + "}\n")
        proc.stdin.write('{"jsonrpc":"2.0",' + call.replace("tools/call", "x/y") + "}\n")
        proc.stdin.flush()
        for request_id in (2, "three"):
            error = _reply(proc, request_id)["error"]
            assert error["code"] == -32700, error
            assert "nested" in error["message"] and "flatter" in error["message"]
        # Short malformed lines too: a trailing comma, a truncated line.
        proc.stdin.write('{"jsonrpc":"2.0","id":5,"method":"ping",}\n')
        proc.stdin.write('{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"na\n')
        proc.stdin.flush()
        for request_id in (5, 6):
            assert _reply(proc, request_id)["error"]["code"] == -32700
        _rpc(proc, {"jsonrpc": "2.0", "id": 4, "method": "ping"})
        assert _reply(proc, 4)["result"] == {}
        proc.stdin.close()
        assert proc.wait(15) == 0  # the end of input still ends the server
