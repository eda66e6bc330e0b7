"""What a new user following docs/mcp.md found: a worker told to check an id with list_agents
(a tool it is not given), another role's tool refused only as "Unknown tool", a printed
`claude mcp add` line with an empty bearer token and no warning, and one argument check that
did not read like the others."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from redis_swarm import AlreadyCompleted, LeaseLost, NotFound, Swarm, ValidationError
from redis_swarm.cli import main
from redis_swarm.mcp_server import AGENT_ROLES, build_server, tool_names
from redis_swarm.mcp_server._render import tool_error, tool_words
from redis_swarm.mcp_server._roles import declared_tool_names
from redis_swarm.mcp_server._tools import TOOL_ROLES

from .mcp_server._helpers import SRC, connect


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()


def test_a_worker_is_not_sent_to_list_agents(core: Swarm) -> None:
    """A worker's server offers no list_agents: neither its error nor send_message's `to`
    names it; a coordinator's still does."""

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            said = await worker.error("send_message", to="ghost", body="hi")
            assert "list_agents" not in said, said
            assert (
                "check the id with the agent that gave it to you, or the swarm's operator" in said
            )
            assert "swarm_status lists queues" not in said, said  # (no second, other hint)
            tools = {t.name: t for t in (await worker.client.list_tools()).tools}
            to = tools["send_message"].input_schema["properties"]["to"]["description"]
            assert "list_agents" not in to and "the swarm's operator" in to, to
        async with connect(build_server(core, role="coordinator")) as coordinator:
            said = await coordinator.error("send_message", to="ghost", body="hi")
            assert "check the id with list_agents" in said, said
            tools = {t.name: t for t in (await coordinator.client.list_tools()).tools}
            to = tools["send_message"].input_schema["properties"]["to"]["description"]
            assert "(list_agents)" in to, to

    anyio.run(body)


def test_no_role_is_told_of_a_tool_it_lacks_in_its_argument_descriptions(core: Swarm) -> None:
    async def body() -> None:
        for role in AGENT_ROLES:
            async with connect(build_server(core, role=role)) as agent:
                lacks = set(TOOL_ROLES) - set(tool_names(role))
                for listed in (await agent.client.list_tools()).tools:
                    schema = json.dumps(listed.input_schema)
                    for name in lacks:
                        assert f"({name})" not in schema, (role, listed.name, name)

    anyio.run(body)


@pytest.mark.parametrize("role", AGENT_ROLES)
def test_no_role_is_told_of_a_tool_it_lacks_in_its_errors_or_descriptions(
    role: str, core: Swarm
) -> None:
    """Every hint's words and every error's added hint, as ``role``'s server says them,
    name only tools it offers (a worker was sent to post_task and next_question, a shard
    and a coordinator to claim_task); so do its server's instructions and every tool's
    description and argument descriptions as its client lists them (a worker's next_page
    named list_findings, a coordinator's list_findings synthesize)."""
    offered = set(tool_names(role))
    lacked = declared_tool_names() - offered
    said = list(tool_words(role).values())
    for kind in (AlreadyCompleted, LeaseLost, NotFound, ValidationError):
        said.append(str(tool_error(kind("x"), role)))

    async def listed() -> None:
        server = build_server(core, role=role)
        said.append(server.instructions or "")
        async with connect(server) as agent:
            for tool in (await agent.client.list_tools()).tools:
                assert tool.description, tool.name
                said.append(f"{tool.name}: {tool.description}")
                said.append(f"{tool.name}: {json.dumps(tool.input_schema)}")

    anyio.run(listed)
    for text in said:
        named = {name for name in lacked if re.search(rf"\b{name}\b", text)}
        assert not named, (role, text, named)


def test_another_roles_tool_says_which_server_has_it(core: Swarm) -> None:
    """Was the SDK's "Unknown tool: post_task"; said now as a prompt of another role is."""

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            said = await worker.error("post_task", queue="q", description="x")
            assert said.startswith("no tool 'post_task' here: this server (--role worker)"), said
            assert "offers " + ", ".join(tool_names("worker")) in said, said
            assert "a shard's or a coordinator's" in said, said
            assert "--role shard or --role coordinator (or all)" in said, said
            said = await worker.error("publish_context", text="x")
            assert "--role shard (or all) has it" in said, said
            said = await worker.error("claim_tsak", queue="q")  # misspelt: no role has it
            assert said.startswith("no tool 'claim_tsak' here") and "claim_task" in said, said
            assert "has it" not in said, said
        async with connect(build_server(core, role="all")) as anyone:
            said = await anyone.error("no_such_tool")
            assert "(--role all) offers" in said and "tools/list" in said, said
        # The SDK's own envelope stays (a refusal the middleware made alone lacked the
        # serverInfo stamp of the newest protocol version that every other result carries).
        async with connect(build_server(core, role="worker"), mode="2026-07-28") as worker:
            refused = await worker.raw("post_task", queue="q", description="x")
            taken = await worker.raw("swarm_status")
            assert refused.is_error and refused.meta is not None, refused
            assert set(refused.meta) == set(taken.meta or {}), (refused.meta, taken.meta)

    anyio.run(body)


def test_end_before_start_is_a_validation_error_as_the_others(core: Swarm) -> None:
    async def body() -> None:
        async with connect(build_server(core, role="shard")) as shard:
            await shard("publish_context", text="one\ntwo\n")
            said = await shard.error("read_context_lines", start=10, end=5)
            assert said.startswith("Error executing tool read_context_lines: ValidationError: ")
            assert said.endswith("(fix that argument and call again)"), said
            assert "start <= end" in said, said

    anyio.run(body)


def test_a_printed_claude_line_warns_of_an_unset_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--write refuses; the printed line (which the shell expands to an empty bearer header)
    is printed all the same, with the same words as a warning."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SWARM_MCP_TOKEN", raising=False)
    args = [
        "mcp",
        "install",
        "--client",
        "claude",
        "--http",
        "http://127.0.0.1:18765/mcp",
        "--token-in-config",
    ]  # (else the reference: the shell expands nothing)
    printed = CliRunner().invoke(main, args)
    assert printed.exit_code == 0, printed.output
    assert "Bearer ${SWARM_MCP_TOKEN}" in printed.stdout
    warned = re.search(r"warning: (SWARM_MCP_TOKEN is not set: .*)", printed.stderr)
    assert warned is not None, printed.stderr
    monkeypatch.setenv("PATH", str(tmp_path))  # (no claude: refused before it is looked for)
    written = CliRunner().invoke(main, [*args, "--write"])
    assert written.exit_code != 0
    assert warned[1] in written.stderr, written.stderr
    monkeypatch.setenv("SWARM_MCP_TOKEN", "t0ken")
    quiet = CliRunner().invoke(main, args)
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr, quiet.stderr


def _nulls(value: object) -> list[str]:
    """The keys holding null anywhere in ``value`` (a JSON reply)."""
    if isinstance(value, dict):
        return [k for k, v in value.items() if v is None] + [
            n for v in value.values() for n in _nulls(v)
        ]
    return [n for v in value for n in _nulls(v)] if isinstance(value, list) else []


def test_another_roles_tool_is_said_in_content_a_strict_client_takes(
    redis_url: str, tmp_path: Path
) -> None:
    """The text of a tool this server lacks went out as content blocks with ``"annotations":
    null`` and ``"meta": null``, which the TypeScript SDK (the Inspector's, Claude Code's)
    refuses as a whole ("expected object, received null"): the agent saw a schema error, not
    which server has the tool. Read on the wire, over stdio, as such a client reads it."""
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--role", "worker", "--name", "w-1"]
    info = {"name": "inspector", "version": "1"}
    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": info}
    sent = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "post_task", "arguments": {"queue": "q", "description": "x"}}},
    ]  # fmt: skip
    with (
        open(tmp_path / "stderr.log", "w") as errlog,
        subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog, text=True,
            env=env,
        ) as proc,
    ):  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in sent))
        proc.stdin.flush()
        replies = [json.loads(proc.stdout.readline()) for _ in range(2)]
        proc.stdin.close()
        assert proc.wait(15) == 0
    result = next(r for r in replies if r.get("id") == 2)["result"]
    assert result["isError"] is True
    assert result["content"][0]["text"].startswith("no tool 'post_task' here"), result
    assert not _nulls(result["content"]), result
