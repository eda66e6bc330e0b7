"""Five defects of live sessions (hooks, MCP server, channel) found by a user tour:

1. A session whose hooks and stdio MCP server share one agent id was handed its tasks with
   the CLI's `swarm task report/renew/fail` where its MCP tools fit; a hooks-only session
   (the server no longer running) keeps the CLI's commands.
2. A restarted named channel pushed nothing of what arrived while it was down.
3. A named session whose server closed read alive for up to a minute.
4. Two sessions of one agent counting their loop claims at once lost a count.
5. A hook with the server down cost 2 to 5 s (the connect retries of every face).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from redis_swarm import Settings, Swarm
from redis_swarm import _lease_tokens as tokens
from redis_swarm._hooks import HookOptions, handle
from redis_swarm._hooks.events import _session_key
from redis_swarm._hooks.reach import HOOK_RETRIES, hook_settings
from redis_swarm._mcp_names import SETTLING_ROLES, SETTLING_TOOLS, settles_tasks
from redis_swarm._models import Agent, TaskStatus
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._channel import WAITING_READ
from redis_swarm.mcp_server._roles import AGENT_ROLES
from redis_swarm.mcp_server._session import BEAT_WAIT_S, SessionRegistry
from redis_swarm.mcp_server._tools import TOOL_ROLES, SwarmTools, offers

from ._cli import SRC
from ._ports import CountingPort
from .mcp_server._helpers import connect, eventually
from .mcp_server.test_channel import Heard, _client, _next, _registered
from .test_import_cost import _loaded_by
from .test_session_identity import _call, _stdio

REPORT = SwarmTools.report_finding.__name__
RENEW = SwarmTools.renew_task.__name__
FAIL = SwarmTools.fail_task.__name__


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()


def test_an_mcp_session_is_told_its_mcp_tools_a_hooks_only_one_the_cli(
    redis_url: str, tmp_path: Path
) -> None:
    core = Swarm(redis_url, swarm="test")
    hooks = Swarm(Settings.from_url(redis_url, swarm="test", home=tmp_path))
    options = HookOptions(agent="both", queues=("work",), loop=True)
    stop = {"session_id": "s1", "stop_hook_active": False}
    for n in range(3):
        core.post_task("work", f"task {n}", lease_s=60)

    async def body() -> None:
        async with _stdio(redis_url, tmp_path, "both") as session:
            await _call(session, "swarm_status")  # registered: via mcp, this server's pid
            # loop mode: the hook claims the next task; the session settles it with its tools
            handed = handle(hooks, "Stop", stop, options).block
            assert handed is not None and "Next task for you" in handed
            (task_id, token), *_ = tokens.known(hooks.settings, "both").items()
            args = f"task_id={json.dumps(task_id)}, token={json.dumps(token)}"
            assert f"{RENEW}({args})" in handed
            assert f'{REPORT}({args}, summary="what you found")' in handed
            assert f'{FAIL}({args}, error="why")' in handed
            assert " task report " not in handed and " task renew " not in handed
            # a task held: the stop is refused naming the same tools, and so does
            # SessionStart's context (a resumed session carries on with them)
            refused = handle(hooks, "Stop", stop, options).block
            assert refused is not None and f"{REPORT}({args}" in refused
            start = handle(hooks, "SessionStart", {"session_id": "s1", "source": "resume"}, options)
            assert f"{REPORT}({args}" in start.context and " task report " not in start.context
            await _call(session, REPORT, task_id=task_id, token=token, summary="done")
        # The server is gone (its metadata stays: via mcp): a session under that id now has
        # the hooks alone, and is told the CLI's commands.
        assert (core.get_agent("both").metadata or {}).get("via") == "mcp"
        later = handle(hooks, "Stop", {"session_id": "s2", "stop_hook_active": False}, options)
        assert later.block is not None and "Next task for you" in later.block
        assert " task report " in later.block and " task renew " in later.block
        assert f"{REPORT}(" not in later.block

    try:
        anyio.run(body)
    finally:
        hooks.close()
        core.close()


def test_a_worker_role_server_s_tools_are_named_only_when_its_role_has_them(
    redis_url: str, tmp_path: Path
) -> None:
    """A session whose server is a shard's (no report_finding) keeps the CLI's commands."""
    from redis_swarm._hooks.events import mcp_tools

    core = Swarm(redis_url, swarm="test")
    try:
        here = {"via": "mcp", "transport": "stdio", "host": socket.gethostname()}
        alive = {**here, "pid": os.getpid()}
        core.register("shard", name="sh", metadata=alive)
        core.register("agent", name="all", metadata=alive)  # (--role all)
        core.register("worker", name="http", metadata={**alive, "transport": "http"})
        core.register("worker", name="gone", metadata={**here, "pid": _dead_pid()})
        assert mcp_tools(core.get_agent("sh")) is None
        assert mcp_tools(core.get_agent("all")) is not None
        assert mcp_tools(core.get_agent("http")) is None
        assert mcp_tools(core.get_agent("gone")) is None
    finally:
        core.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_restarted_named_channel_pushes_what_waited_then_only_what_is_new(
    core: Swarm, redis_url: str
) -> None:
    name = "chan-back"

    async def body() -> None:
        first = Heard()
        async with _client(redis_url, "legacy", first, name):
            await _registered(core, name)
        # while it is down: a message, then a synthesis request
        away = core.send(name, "sent while you were away", sender="lead")
        core.request_synthesis(name, "p1", instructions="sum it up", sender="lead")
        heard = Heard()
        async with _client(redis_url, "legacy", heard, name):
            started = time.monotonic()
            waiting = await _next(heard, 1, started)
            asked = await _next(heard, 2, started)
            assert waiting.meta == {"kind": "message", "message_id": away.id, "from": "lead"}
            assert "sent while you were away" in waiting.content
            assert asked.meta["kind"] == "synthesis_request" and asked.meta["pass_name"] == "p1"
            # a message a notice showed whole is read, as a live one's; the synthesis
            # request, whose instructions it did not show, is not
            await eventually(lambda: core.message_status(away.id).read)
            assert [m.kind for m in core.inbox(name, ack=False)] == ["synthesis_request"]
            live_sent = time.monotonic()
            live = core.send(name, "and now this", sender="lead")
            fresh = await _next(heard, 3, live_sent)
            assert fresh.meta["message_id"] == live.id
            await anyio.sleep(0.5)
            assert len(heard.events) == 3, heard.events  # nothing pushed twice

    anyio.run(body)


def test_a_named_session_reads_stale_as_soon_as_its_server_closes(
    core: Swarm, redis_url: str
) -> None:
    async def body() -> None:
        async with connect(build_server(core, role="worker", name="named")) as tools:
            await tools("swarm_status")
            assert core.get_agent("named").alive
            sent = core.send("named", "keep this", sender="lead")
        agent = core.get_agent("named")  # still registered, its inbox kept
        assert agent.alive is False and agent.last_seen is not None
        assert [a.alive for a in core.agents() if a.id == "named"] == [False]
        assert core.status().agents.stale == 1
        assert core.get_message("named", sent.id).body == "keep this"
        assert core.sweep(60) == {}  # swept only once silent that long, as before
        async with connect(build_server(core, role="worker", name="named")) as tools:
            await tools("swarm_status")
            assert core.get_agent("named").alive  # back

    anyio.run(body)


def test_the_cli_lists_a_closed_named_session_stale(
    core: Swarm, redis_url: str, tmp_path: Path
) -> None:
    async def body() -> None:
        async with connect(build_server(core, role="worker", name="cli-named")) as tools:
            await tools("swarm_status")

    anyio.run(body)
    out = subprocess.run(
        [sys.executable, "-m", "redis_swarm", "--url", redis_url, "--swarm", "test",
         "--json", "agents"],
        env={"PYTHONPATH": SRC, "SWARM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    (row,) = [a for a in json.loads(out)["items"] if a["id"] == "cli-named"]
    assert row["alive"] is False


def test_sessions_of_one_agent_counting_at_once_keep_every_count(
    redis_url: str, tmp_path: Path
) -> None:
    """Sessions of one id end their turns at the same instant, each claiming in loop mode
    (those that find none held): every claim is counted for its session (the read, then
    register, lost the counts of the others written in between)."""
    # Rounds go on until two sessions have claimed in one round (the race this is about; a
    # session finding the agent's task held claims none, so one round may see one claim).
    sessions, max_rounds = 6, 12
    core = Swarm(redis_url, swarm="test")
    hooks = Swarm(Settings.from_url(redis_url, swarm="test", home=tmp_path))
    options = HookOptions(agent="shared", queues=("work",), loop=True, max_tasks=100)
    for n in range(sessions * max_rounds):
        core.post_task("work", f"task {n}")
    handle(hooks, "SessionStart", {"session_id": "s0", "source": "startup"}, options)
    claimed: dict[str, int] = {}
    lock = threading.Lock()

    def stop(session: str, barrier: threading.Barrier) -> None:
        barrier.wait()
        payload = {"session_id": session, "stop_hook_active": False}
        block = handle(hooks, "Stop", payload, options).block or ""
        if "Next task for you" in block:
            with lock:
                claimed[session] = claimed.get(session, 0) + 1

    try:
        rounds = 0
        while rounds < max_rounds and (rounds < 3 or sum(claimed.values()) <= rounds):
            rounds += 1
            barrier = threading.Barrier(sessions)
            threads = [
                threading.Thread(target=stop, args=(f"s{n}", barrier)) for n in range(sessions)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            for task_id, token in tokens.known(hooks.settings, "shared").items():
                core.report(task_id, token, {"summary": "done"}, worker="shared")
        assert sum(claimed.values()) > rounds  # (sessions did claim at once)
        counts = (core.get_agent("shared").metadata or {})["loop_claims"]
        keys = {f"s{n}": _session_key({"session_id": f"s{n}"}) for n in range(sessions)}
        assert {keys[s]: n for s, n in claimed.items()} == counts
    finally:
        hooks.close()
        core.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Closing(CountingPort):
    """A port that takes each connection and closes it at once: a server that goes away."""

    def answer(self, client: socket.socket) -> None:
        client.close()


def test_a_hook_fails_fast_when_the_server_is_down(tmp_path: Path) -> None:
    """A hook with its server down fails with one try (the CLI's retries took 2 to 5 s:
    1.9, 3.7, 3.1 s measured), with the same line and exit 1. Its tries are counted, not
    timed (a time bound failed on a loaded machine): a port that closes each connection
    sees one per run (seven with the CLI's retries)."""
    env = {"PYTHONPATH": SRC, "SWARM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    payload = json.dumps({"session_id": "s1", "hook_event_name": "UserPromptSubmit"})

    def hook(url: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "redis_swarm", "--url", url, "--swarm", "test"]
        return subprocess.run(
            [*argv, "hook", "UserPromptSubmit"], input=payload, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    for _ in range(2):
        done = hook(f"redis://127.0.0.1:{_closed_port()}")
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.startswith("swarm hook UserPromptSubmit: cannot reach Redis at")
    closing = _Closing()
    try:
        for run in range(1, 3):
            done = hook(f"redis://127.0.0.1:{closing.port}")
            assert done.returncode == 1 and done.stdout == "", done.stderr
            assert closing.connections == run, f"{closing.connections} tries in {run} runs"
    finally:
        closing.close()


@pytest.mark.parametrize("query", ["", "?retries=1&connect_timeout=0.2", "?retries=40"])
def test_only_the_hooks_retry_less(query: str) -> None:
    given = Settings.from_url(f"redis://127.0.0.1:7000{query}")
    fast = hook_settings(given)
    assert fast.retries == min(given.retries, HOOK_RETRIES)
    assert fast.connect_timeout == min(given.connect_timeout, 1.0)
    assert fast.retry_window_s < 0.31 and fast.none_answered_window_s < 0.31
    assert Settings.from_url("redis://127.0.0.1:7000").retries == 6  # every other face's


# The review of those fixes:
# 1. the hooks named the MCP tools by importing the MCP server (its SDK, half a second);
# 2. "all" registers as "agent" was said in the hooks and the server alike;
# 3. a pid reused after the MCP server closed was taken for the server;
# 4. a restarted channel told nothing of the messages waiting past its first 100;
# 6. a heartbeat on its way as a named session closed made it read alive again.


def test_the_tools_the_hooks_name_are_the_mcp_server_s_given_to_the_roles_said() -> None:
    for name in SETTLING_TOOLS:
        assert TOOL_ROLES[name] == SETTLING_ROLES, name
    assert (RENEW, REPORT, FAIL) == SETTLING_TOOLS
    for role in AGENT_ROLES:  # (what a server of each role registers as, and offers)
        server = SessionRegistry(Swarm("redis://127.0.0.1:1"), role=role)
        has_them = all(offers(role, name) for name in SETTLING_TOOLS)
        assert settles_tasks(server.agent_role) is has_them, role
    assert SessionRegistry(Swarm("redis://127.0.0.1:1"), role="all").agent_role == "agent"


def test_a_hook_naming_the_mcp_tools_imports_no_mcp_code(redis_url: str, tmp_path: Path) -> None:
    core = Swarm(redis_url, swarm="test")
    here = {"via": "mcp", "transport": "stdio", "host": socket.gethostname()}
    try:
        # (this process stands for the session's running server)
        core.register("worker", name="quick", metadata={**here, "pid": os.getpid()})
        core.post_task("work", "a task")
    finally:
        core.close()
    payload = {"hook_event_name": "Stop", "session_id": "s1", "stop_hook_active": False}
    loaded, answer = _loaded_by(
        "hook", "Stop", "--client", "claude", "--queue", "work", "--loop",
        stdin=json.dumps(payload), SWARM_URL=redis_url, SWARM_NAME="test",
        SWARM_AGENT="quick", SWARM_HOME=str(tmp_path),
    )  # fmt: skip
    block = json.loads(answer)["reason"]
    assert "Next task for you" in block and f"{REPORT}(task_id=" in block
    assert not [m for m in loaded if m == "mcp" or m.startswith(("mcp.", "redis_swarm.mcp"))]


def test_a_server_that_closed_is_not_taken_for_one_running_under_a_reused_pid(
    redis_url: str, tmp_path: Path
) -> None:
    """The server closed cleanly (mark_stale), and its pid now runs another program: the hooks
    name the CLI's commands, after their own registration too (which drops ``left_at``)."""
    from redis_swarm._hooks.events import mcp_tools

    core = Swarm(redis_url, swarm="test")
    hooks = Swarm(Settings.from_url(redis_url, swarm="test", home=tmp_path))
    here = {"via": "mcp", "transport": "stdio", "host": socket.gethostname()}
    options = HookOptions(agent="reused", queues=("work",), loop=True)
    try:
        core.register("worker", name="reused", metadata={**here, "pid": os.getpid()})
        assert mcp_tools(core.get_agent("reused")) is not None  # (running: the tools)
        core.mark_stale("reused")  # the server closed; os.getpid() stands for the reuse
        assert mcp_tools(core.get_agent("reused")) is None
        core.post_task("work", "a task", lease_s=60)
        handed = handle(hooks, "Stop", {"session_id": "s1", "stop_hook_active": False}, options)
        assert handed.block is not None and " task report " in handed.block
        start = handle(hooks, "SessionStart", {"session_id": "s1", "source": "resume"}, options)
        assert " task report " in start.context and f"{REPORT}(" not in start.context
        assert core.get_agent("reused").left_at is None  # registered again: gone from it...
        assert mcp_tools(core.get_agent("reused")) is None  # ...and the server's pid with it
        refused = handle(hooks, "Stop", {"session_id": "s1", "stop_hook_active": False}, options)
        assert refused.block is not None and " task report " in refused.block
        # a server that registers the id again is the session's: its tools once more
        core.register("worker", name="reused", metadata={**here, "pid": os.getpid()})
        assert mcp_tools(core.get_agent("reused")) is not None
    finally:
        hooks.close()
        core.close()


def test_a_restarted_named_channel_says_when_more_wait_than_it_pushed(
    core: Swarm, redis_url: str
) -> None:
    name = "chan-many"

    async def body() -> None:
        async with _client(redis_url, "legacy", Heard(), name):
            await _registered(core, name)
        for n in range(WAITING_READ + 2):
            core.send(name, f"message {n}", sender="lead")
        heard = Heard()
        async with _client(redis_url, "legacy", heard, name):
            started = time.monotonic()
            pushed = await _next(heard, 1, started)
            assert pushed.meta == {"kind": "message", "count": str(WAITING_READ)}
            more = await _next(heard, 2, started)
            assert more.meta == {"kind": "message", "more": "true"}
            assert "read_inbox shows them, oldest first" in more.content
            await anyio.sleep(0.3)
            assert len(heard.events) == 2, heard.events
        # a channel that pushed every waiting message says nothing more
        core.inbox(name, limit=WAITING_READ)
        quiet = Heard()
        async with _client(redis_url, "legacy", quiet, name):
            only = await _next(quiet, 1, time.monotonic())
            assert only.meta["kind"] == "message" and "more" not in only.meta
            await anyio.sleep(0.3)
            assert len(quiet.events) == 1, quiet.events

    anyio.run(body)


class _SlowFirstBeat(Swarm):
    """A handle whose first heartbeat takes a second on its way to Redis (``entered`` once it
    set out, ``landed`` once Redis answered it): one in flight as the session closes."""

    def __init__(self, url: str, delay_s: float = 1.0) -> None:
        super().__init__(url, swarm="test")
        self.delay_s = delay_s
        self.entered = threading.Event()
        self.landed = threading.Event()

    def heartbeat(self, agent_id: str, *, current_task: str | None = None) -> Agent:
        if self.entered.is_set():
            return super().heartbeat(agent_id, current_task=current_task)
        self.entered.set()
        time.sleep(self.delay_s)
        try:
            return super().heartbeat(agent_id, current_task=current_task)
        finally:
            self.landed.set()


@pytest.mark.parametrize("named", [True, False])
def test_a_heartbeat_stalled_as_a_session_closes_does_not_hold_its_leases(
    core: Swarm, redis_url: str, named: bool
) -> None:
    """A heartbeat that does not come back (a server not answering) holds the close for
    BEAT_WAIT_S, not for the client's retry window: the session's task goes back at once,
    and when the heartbeat lands at last, the agent still reads ended."""
    slow = _SlowFirstBeat(redis_url, delay_s=BEAT_WAIT_S + 2.0)
    core.post_task("work", "held by the session")

    async def body() -> None:
        registry = SessionRegistry(slow, role="worker", name="stalled" if named else None)
        session = await registry._open("client")
        task = await anyio.to_thread.run_sync(lambda: slow.claim("work", worker=session.agent_id))
        assert task is not None
        session.hold(task)
        async with anyio.create_task_group() as tg:
            tg.start_soon(registry.heartbeat_forever, 0.01)
            await anyio.to_thread.run_sync(slow.entered.wait)  # a heartbeat on its way
            start = time.monotonic()
            await registry.close(session)
            took = time.monotonic() - start
            assert took < BEAT_WAIT_S + 1.0, took  # not the heartbeat's 3 s
            assert core.get_task(task.id).status is TaskStatus.PENDING  # given back at once
            await anyio.to_thread.run_sync(slow.landed.wait)
            await anyio.sleep(0.3)  # (what the loop does after it lands)
            tg.cancel_scope.cancel()
        _ended(core, session.agent_id, named)

    try:
        anyio.run(body)
    finally:
        slow.close()


def _ended(core: Swarm, agent_id: str, named: bool) -> None:
    """What a closed session leaves: a named agent stale (not alive again), a made-up one
    gone (not rejoined)."""
    if named:
        assert core.get_agent(agent_id).alive is False
    else:
        assert agent_id not in {a.id for a in core.agents()}


@pytest.mark.parametrize("named", [True, False])
def test_a_heartbeat_on_its_way_as_a_session_closes_lands_before_its_agent_ends(
    core: Swarm, redis_url: str, named: bool
) -> None:
    """Named: it reads stale after (not alive again); made up: it is gone (not rejoined)."""
    slow = _SlowFirstBeat(redis_url)

    async def body() -> None:
        registry = SessionRegistry(slow, role="worker", name="beating" if named else None)
        session = await registry._open("client")
        async with anyio.create_task_group() as tg:
            tg.start_soon(registry.heartbeat_forever, 0.01)
            await anyio.to_thread.run_sync(slow.entered.wait)  # a heartbeat on its way
            await registry.close(session)
            await anyio.to_thread.run_sync(slow.landed.wait)
            await anyio.sleep(0.3)  # (what the loop does after it: a rejoin, when not found)
            tg.cancel_scope.cancel()
        _ended(core, session.agent_id, named)

    try:
        anyio.run(body)
    finally:
        slow.close()
