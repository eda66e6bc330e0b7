"""What ``swarm hooks install`` and ``swarm mcp install`` write reaches the swarm they were run
for, even the default swarm in the default home, from a session whose environment names another
swarm and another home (docs/live.md, docs/mcp.md): real ``swarm`` processes, in a scratch
project, as the clients run them."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import Implementation

from redis_swarm import Settings, Swarm
from redis_swarm._embedded import EmbeddedServer

from ._cli import SRC

SESSION = "5d0c7a0e-41b7-4b9e-8f0a-2b1f7e9c3a11"


def _bare(home: Path, **env: str) -> dict[str, str]:
    """This machine's environment without any swarm of the developer's, ``home`` as HOME (so
    that the default swarm home is under it), and this checkout on PYTHONPATH."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    return {**out, "HOME": str(home), "PYTHONPATH": SRC, **env}


def _swarm(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "redis_swarm", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def _run_hook(command: str, payload: dict[str, object], env: dict[str, str]) -> str:
    """The entry's command line as the client runs it: through a shell, the event on stdin."""
    done = subprocess.run(
        ["sh", "-c", command], input=json.dumps(payload), env=env, cwd="/",
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def short_home() -> Iterator[Path]:
    """A HOME with a short path (the embedded server's unix socket is in it); any embedded
    server started under it is stopped at the end."""
    home = Path(tempfile.mkdtemp(prefix="swh", dir="/tmp"))
    try:
        yield home
    finally:
        for server in home.rglob("redis.sock"):
            EmbeddedServer(server.parent).stop()
        shutil.rmtree(home, ignore_errors=True)


def test_an_installed_hook_reaches_the_default_swarm_from_a_session_naming_another(
    redis_url: str, tmp_path: Path
) -> None:
    project, home, elsewhere = tmp_path / "project", tmp_path / "home", tmp_path / "elsewhere"
    project.mkdir()
    installed_home = home / ".local" / "share" / "redis-swarm"  # the default home, under HOME
    _swarm(
        ["hooks", "install", "--client", "claude", "--queue", "review", "--loop", "--write"],
        _bare(home, SWARM_URL=redis_url),
        project,
    )
    entries = json.loads((project / ".claude" / "settings.json").read_text())["hooks"]
    command = {event: groups[0]["hooks"][0]["command"] for event, groups in entries.items()}
    line = shlex.split(command["SessionStart"])
    assert line[line.index("--swarm") + 1] == "default"
    assert line[line.index("--home") + 1] == str(installed_home)
    with Swarm(Settings.from_url(redis_url, swarm="default", home=installed_home)) as swarm:
        task = swarm.post_task("review", "look at it")
        # The session's shell names another swarm and another home.
        session = _bare(home, SWARM_NAME="other", SWARM_HOME=str(elsewhere))
        base = {"session_id": SESSION, "cwd": str(project), "permission_mode": "default"}

        started = _run_hook(
            command["SessionStart"],
            {**base, "hook_event_name": "SessionStart", "source": "startup"},
            session,
        )
        context = json.loads(started)["hookSpecificOutput"]["additionalContext"]
        assert "in the swarm default " in context and "review: 1 pending" in context, context
        assert "--swarm other" not in context
        assert f"--swarm default --home {installed_home} " in context

        stopped = _run_hook(
            command["Stop"],
            {**base, "hook_event_name": "Stop", "stop_hook_active": True,
             "last_assistant_message": "done"},
            session,
        )  # fmt: skip
        reason = json.loads(stopped)["reason"]
        assert f"Task {task.id}" in reason, reason
        # The lease token is kept in the installed home, where the next event looks for it.
        assert list((installed_home / "leases" / "default").glob("*.json"))
        assert not elsewhere.exists()
        report = re.search(r"report it: (.+ task report .+ --worker \S+) --summary", reason)
        assert report, reason
        argv = [*shlex.split(report.group(1)), "--summary", "done"]
        assert argv[argv.index("--home") + 1] == str(installed_home)
        done = subprocess.run(argv, env=session, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert swarm.get_task(task.id).status == "completed"


def test_an_installed_mcp_server_reaches_the_default_embedded_swarm(
    short_home: Path, tmp_path: Path
) -> None:
    """The default swarm of the embedded server in the default home: the server the client
    starts from .mcp.json reaches it, not the one the client's environment names."""
    project, elsewhere = tmp_path / "project", short_home / "elsewhere"
    project.mkdir()
    installed_home = short_home / ".local" / "share" / "redis-swarm"
    installing = _bare(short_home)
    _swarm(["task", "post", "review", "look at it"], installing, project)
    _swarm(["mcp", "install", "--client", "json", "--role", "worker", "--write"], installing,
           project)  # fmt: skip
    server = json.loads((project / ".mcp.json").read_text())["mcpServers"]["swarm"]
    assert server["env"]["SWARM_HOME"] == str(installed_home)
    assert server["env"]["SWARM_NAME"] == "default"

    async def body() -> None:
        # A client's own environment, which the configured one is laid over.
        session = _bare(short_home, SWARM_NAME="other", SWARM_HOME=str(elsewhere))
        params = StdioServerParameters(
            command=server["command"], args=server["args"], env={**session, **server["env"]}
        )
        info = Implementation(name="reach-test", version="1.0")
        async with Client(params, mode="legacy", client_info=info, read_timeout_seconds=60) as c:
            result = await c.call_tool("claim_task", {"queue": "review"})
            claimed = json.loads(result.content[0].text)  # type: ignore[union-attr]
            assert claimed["task"] is not None, claimed
            assert claimed["task"]["description"] == "look at it"

    anyio.run(body)
    assert not elsewhere.exists()
