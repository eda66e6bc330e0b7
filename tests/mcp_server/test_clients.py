"""Real MCP clients against ``swarm mcp``: Claude Code (`claude mcp add`, `claude mcp list`) and
the MCP Inspector's CLI driving a worker's claim and report.

Both come from npm: `make test` installs them into .npm-tools/ (scripts/system-deps.sh). These
tests skip, saying why, only where they could not be installed (no npm, or no network).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from redis_swarm import Swarm
from redis_swarm._models import EventType
from redis_swarm.cli import main
from redis_swarm.mcp_server import tool_names
from redis_swarm.mcp_server._install import (
    LaunchSpec,
    claude_command,
    launch_spec,
    remote_spec,
    shell_line,
)

from .._servers import ServerFactory, free_port
from ._helpers import REPO, SRC, http_server

BIN = REPO / ".npm-tools" / "node_modules" / ".bin"
CLAUDE = BIN / "claude"
INSPECTOR = BIN / "mcp-inspector"
GEMINI = BIN / "gemini"
CODEX = BIN / "codex"
_MISSING = "run `make system-deps` (it needs npm) to install it into .npm-tools/"


def _needs(tool: Path, name: str) -> pytest.MarkDecorator:
    reason = f"{name} is not installed: {_MISSING}"
    if tool.exists() and shutil.which("node") is None:
        reason = f"{name} is installed but node is not on PATH"
    return pytest.mark.skipif(not tool.exists() or shutil.which("node") is None, reason=reason)


def _quiet_env(home: Path) -> dict[str, str]:
    """A private HOME (the user's own client config is never touched), nothing phoned home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "CLAUDE"))}
    env.update(
        HOME=str(home),
        DISABLE_AUTOUPDATER="1",
        DISABLE_TELEMETRY="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path, *, both: bool = False) -> str:
    """The output of a command that must succeed (stdout, or with ``both`` stderr too)."""
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, f"{argv[:3]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr if both else done.stdout


@_needs(CLAUDE, "Claude Code (@anthropic-ai/claude-code)")
@pytest.mark.parametrize("channel", [None, ("q",)], ids=["tools", "channel"])
def test_claude_code_adds_and_connects_to_the_server(
    core: Swarm, redis_url: str, tmp_path: Path, channel: tuple[str, ...] | None
) -> None:
    """`claude mcp add` as `swarm mcp install` prints it connects, as a channel server too
    (its handshake reply declares claude/channel)."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    spec = launch_spec(
        url=redis_url, swarm="test", role="worker", command=[sys.executable, "-m", "redis_swarm"],
        channel=channel,
    )  # fmt: skip
    spec = LaunchSpec(spec.name, spec.command, spec.args, {**spec.env, "PYTHONPATH": SRC})
    argv = claude_command(spec, scope="user")
    env = _quiet_env(home)
    _run([str(CLAUDE), *argv[1:]], env, work)
    assert "swarm" in json.loads((home / ".claude.json").read_text())["mcpServers"]

    listed = _run([str(CLAUDE), "mcp", "list"], env, work)
    line = next(line for line in listed.splitlines() if line.startswith("swarm:"))
    assert "Connected" in line and "Failed" not in line, listed
    assert ("--channel --watch-queue q" in line) == (channel is not None), line
    # Claude Code's health check was a session: it joined as an agent, and left (the server
    # leaves once Claude Code closes its stdin, maybe after `claude mcp list` returned).
    deadline = time.monotonic() + 10
    while core.agents() and time.monotonic() < deadline:
        time.sleep(0.05)
    joined = [e.fields["agent"] for e in core.events(types=[EventType.AGENT_JOINED])]
    assert joined and all(a.startswith("claude-code-worker-") for a in joined)
    assert core.agents() == []


@_needs(CLAUDE, "Claude Code (@anthropic-ai/claude-code)")
def test_claude_code_reaches_an_http_server_with_its_token(redis_url: str, tmp_path: Path) -> None:
    """The printed `claude mcp add --transport http ... --header` line keeps the token's
    variable, not the token (single-quoted: neither the argv, which ps shows, nor
    ~/.claude.json holds the secret); Claude Code fills it in when it connects: it connects
    with SWARM_MCP_TOKEN set to the server's token, and not with another."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    argv, server_env = _token_server(redis_url, port)
    env = _quiet_env(home)
    with open(tmp_path / "server.log", "w+") as log, http_server(argv, server_env, log, url):
        spec = remote_spec(url, token_env="SWARM_MCP_TOKEN", server_name="swarm")
        line = shell_line(claude_command(spec))
        assert "--header 'Authorization: Bearer ${SWARM_MCP_TOKEN}'" in line
        shell = {**env, "SWARM_MCP_TOKEN": "right-token-123"}
        _run(["sh", "-c", line.replace("claude", shlex.quote(str(CLAUDE)), 1)], shell, work)
        config = json.loads((home / ".claude.json").read_text())["mcpServers"]["swarm"]
        assert config["headers"] == {"Authorization": "Bearer ${SWARM_MCP_TOKEN}"}
        for token, connected in (("right-token-123", True), ("wrong-token", False)):
            listed = _run([str(CLAUDE), "mcp", "list"], {**env, "SWARM_MCP_TOKEN": token}, work)
            status = next(x for x in listed.splitlines() if x.startswith("swarm:"))
            assert ("Connected" in status) is connected, listed


def _token_server(redis_url: str, port: int) -> tuple[list[str], dict[str, str]]:
    """``swarm mcp --transport http`` on loopback, with the token ``right-token-123``."""
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    env["SWARM_MCP_TOKEN"] = "right-token-123"
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--role", "worker", "--transport"]
    return [*argv, "http", "--port", str(port)], env


def _install(client: str, url: str, env: dict[str, str], cwd: Path, *more: str) -> None:
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "install", "--client", client]
    _run([*argv, "--http", url, "--write", *more], {**env, "PYTHONPATH": SRC}, cwd)


@_needs(GEMINI, "Gemini CLI (@google/gemini-cli)")
def test_gemini_cli_reaches_an_http_server_with_its_token(redis_url: str, tmp_path: Path) -> None:
    """The settings `swarm mcp install --client gemini --http` writes: Gemini CLI expands
    ${SWARM_MCP_TOKEN} in the header and connects; with a wrong token it does not."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".gemini").mkdir(parents=True)
    work.mkdir()
    # Gemini CLI starts no MCP server of an untrusted folder.
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(work): "TRUST_FOLDER"}))
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    argv, server_env = _token_server(redis_url, port)
    env = _quiet_env(home)
    _install("gemini", url, env, work, "--scope", "user")
    # The same server again, under a name and a token variable of its own, which holds a wrong
    # token: one `gemini mcp list` checks both.
    _install("gemini", url, env, work, "--scope", "user", "--server-name", "swarm-wrong",
             "--token-env", "SWARM_MCP_WRONG_TOKEN")  # fmt: skip
    entries = json.loads((home / ".gemini" / "settings.json").read_text())["mcpServers"]
    assert entries["swarm"]["headers"] == {"Authorization": "Bearer ${SWARM_MCP_TOKEN}"}
    wrong = {"Authorization": "Bearer ${SWARM_MCP_WRONG_TOKEN}"}
    assert entries["swarm-wrong"] == {**entries["swarm"], "headers": wrong}
    shell = {**env, "SWARM_MCP_TOKEN": "right-token-123", "SWARM_MCP_WRONG_TOKEN": "wrong-token"}
    with open(tmp_path / "server.log", "w+") as log, http_server(argv, server_env, log, url):
        listed = _run([str(GEMINI), "mcp", "list"], shell, work, both=True)
    for name, state in (("swarm", "Connected"), ("swarm-wrong", "Disconnected")):
        status = next(x for x in listed.splitlines() if f"{name}:" in x)
        assert status.endswith(f"- {state}"), listed


@_needs(CODEX, "Codex (@openai/codex)")
def test_codex_reads_the_http_server_table(tmp_path: Path) -> None:
    """The table `swarm mcp install --client codex --http` writes is a streamable HTTP server
    whose bearer token Codex reads from SWARM_MCP_TOKEN."""
    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    env = {**_quiet_env(home), "CODEX_HOME": str(home / ".codex")}
    _install("codex", "http://127.0.0.1:8765/mcp", env, tmp_path)
    got = json.loads(_run([str(CODEX), "mcp", "get", "swarm", "--json"], env, tmp_path))
    assert got["enabled"] is True
    assert got["transport"] == {
        "type": "streamable_http",
        "url": "http://127.0.0.1:8765/mcp",
        "bearer_token_env_var": "SWARM_MCP_TOKEN",
        "http_headers": None,
        "env_http_headers": None,
        "http_headers_helper": None,
    }
    assert got["tool_timeout_sec"] >= 300


def _inspect(config: Path, env: dict[str, str], *args: str) -> Any:
    argv = [str(INSPECTOR), "--cli", "--config", str(config), "--server", "swarm"]
    argv += ["-e", f"PYTHONPATH={SRC}", *args]
    return json.loads(_run(argv, env, config.parent))


def _tool(config: Path, env: dict[str, str], name: str, **args: object) -> dict[str, Any]:
    pairs = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in args.items()]
    extra = ["--tool-arg", *pairs] if pairs else []
    result = _inspect(config, env, "--method", "tools/call", "--tool-name", name, *extra)
    assert not result.get("isError"), result
    head = json.loads(result["content"][0]["text"])
    assert isinstance(head, dict)
    if len(result["content"]) > 1:
        head["_text"] = result["content"][1]["text"]
    return head


@_needs(INSPECTOR, "The MCP Inspector (@modelcontextprotocol/inspector)")
def test_inspector_cli_drives_a_worker(
    core: Swarm, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core.register("shard", name="shard-1")
    core.publish_context("shard-1", "alpha\nthe answer is 42\nomega\n", source="notes.md")
    task = core.post_task("work", "find the answer", parent="shard-1", pass_name="P")

    # The .mcp.json that `swarm mcp install --client json --write` writes is what it runs.
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main,
        ["mcp", "install", "--client", "json", "--role", "worker", "--write"],
        env={"SWARM_URL": redis_url, "SWARM_NAME": "test"},
    )
    assert result.exit_code == 0, result.output
    config = tmp_path / ".mcp.json"
    env = _quiet_env(tmp_path)

    # Each Inspector call is a new server process and a new session: the list, the claim and
    # a search run side by side (each start takes seconds), the report after the claim.
    with ThreadPoolExecutor(3) as calls:
        listing = calls.submit(_inspect, config, env, "--method", "tools/list")
        claiming = calls.submit(_tool, config, env, "claim_task", queue="work")
        # the search's session knows no claim: it names the context it reads
        searching = calls.submit(
            _tool, config, env, "search_context", pattern="answer", owner="shard-1"
        )
        listed, claimed, hits = listing.result(), claiming.result(), searching.result()
    assert [t["name"] for t in listed["tools"]] == tool_names("worker")
    assert claimed["task"]["id"] == task.id and claimed["context"]["owner"] == "shard-1"
    assert hits["owner"] == "shard-1" and "2:the answer is 42" in hits["_text"]
    # The claim's session is gone too: the worker passes the token claim_task returned.
    reported = _tool(
        config,
        env,
        "report_finding",
        task_id=task.id,
        summary="42",
        token=claimed["token"],
        sources=["context:L2"],
        confidence=0.9,
    )
    finding = core.get_finding(reported["finding_id"])
    assert finding.summary == "42" and finding.sources == ("context:L2",)
    assert finding.worker is not None and finding.worker.startswith("inspector-cli-worker-")
    assert core.get_task(task.id).status == "completed"
    assert core.agents(role="worker") == []


@_needs(CLAUDE, "Claude Code (@anthropic-ai/claude-code)")
def test_claude_code_fills_the_password_of_a_projects_file_from_its_environment(
    servers: ServerFactory, tmp_path: Path
) -> None:
    """`swarm mcp install --client json --write` keeps a URL's password out of .mcp.json
    (``${SWARM_URL}``): Claude Code fills it from its environment and connects; with a wrong
    password the server refuses to start, and Claude Code says it failed (a copy of the
    server that reads a variable holding the wrong URL: one `claude mcp list` checks both)."""
    server = servers.start()
    server.client().config_set("requirepass", "s3cret")
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".claude").mkdir(parents=True)
    work.mkdir()
    # Claude Code starts a project's servers once they are approved: all of them, here.
    (home / ".claude" / "settings.json").write_text('{"enableAllProjectMcpServers": true}')
    url = f"redis://:s3cret@127.0.0.1:{server.port}/0"
    install = [sys.executable, "-m", "redis_swarm", "mcp", "install", "--client", "json"]
    env = {**_quiet_env(home), "SWARM_URL": url, "PYTHONPATH": SRC}
    _run([*install, "--role", "worker", "--write"], env, work)
    written = (work / ".mcp.json").read_text()
    assert "s3cret" not in written and "${SWARM_URL}" in written
    entries = json.loads(written)["mcpServers"]
    entries["swarm-wrong"] = json.loads(
        json.dumps(entries["swarm"]).replace("${SWARM_URL}", "${SWARM_WRONG_URL}")
    )
    (work / ".mcp.json").write_text(json.dumps({"mcpServers": entries}))
    wrong = {**env, "SWARM_WRONG_URL": url.replace("s3cret", "wrong")}
    listed = _run([str(CLAUDE), "mcp", "list"], wrong, work)
    lines = listed.splitlines()
    assert "Connected" in next(line for line in lines if line.startswith("swarm:")), listed
    assert "Failed" in next(line for line in lines if line.startswith("swarm-wrong:")), listed
