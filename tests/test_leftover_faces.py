"""Leftovers of the faces: lineage of an empty ID says what it takes; a bad --token of swarm
a2a and swarm dashboard exits 2, as swarm mcp's; swarm run's default timeout is no task's
lease (the lease is renewed while the agent runs); docs/ask.md says the MCP ask tool's
task_id rule; an MCP server under a --name a live agent of another role holds, served by
another MCP server, is refused (at the start, and by each session as it registers), while a
server of the same role still takes its own name back."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from redis_swarm import Swarm, TaskStatus
from redis_swarm._acl import MIN_PASSWORD_LEN
from redis_swarm._validate import DEFAULT_TIMEOUT_S
from redis_swarm.cli import main
from redis_swarm.mcp_server import build_server

from ._cli import Cli, run_swarm, subprocess_env, swarm_bin
from .mcp_server._helpers import connect

DOCS = Path(__file__).resolve().parent.parent / "docs"

# --- 1. lineage of an ID that can be no id nor name


@pytest.mark.parametrize("ident", ["", "a b"])
def test_lineage_of_an_empty_or_bad_id_says_what_it_takes(cli: Cli, ident: str) -> None:
    out = cli("lineage", "--", ident, expect=2)
    said = out.stderr
    assert "give a finding, task or synthesis id, or a pipeline name" in said, out
    assert "pipeline name is empty" not in said and "pipeline name 'a b'" not in said, out
    assert "swarm synth list" in said and "swarm task list" in said, out
    # (an id nothing has is still not found, exit 1)
    out = cli("lineage", "nope", expect=1)
    assert "no synthesis, finding, task or pipeline is called 'nope'" in out.stderr, out


# --- 2. a bad --token of the web faces is a usage error, as swarm mcp's


@pytest.mark.parametrize("face", [["a2a", "--queue", "q"], ["dashboard"]], ids=["a2a", "dash"])
@pytest.mark.parametrize(
    "options",
    [
        ["--token", ""],
        ["--token", " "],
        ["--host", "0.0.0.0", "--token", "a" * (MIN_PASSWORD_LEN - 1)],
        ["--host", "0.0.0.0"],
    ],
    ids=["empty", "blank", "short", "none-off-loopback"],
)
def test_a_bad_token_of_a2a_and_dashboard_exits_2(
    redis_url: str, face: list[str], options: list[str]
) -> None:
    args = ["--url", redis_url, "--swarm", "faces", *face, "--port", "0", *options]
    result = CliRunner().invoke(main, args, env={"SWARM_A2A_TOKEN": None,
                                                 "SWARM_DASHBOARD_TOKEN": None})  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: "), result.output
    assert "--token" in result.output, result.output


def test_cli_md_says_so() -> None:
    text = (DOCS / "cli.md").read_text()
    assert "a bad `--token` of `mcp`, `a2a` or `dashboard`" in text


# --- 3. swarm run's default timeout is no lease


def test_a_short_lease_does_not_kill_an_agent_that_would_finish(
    cli: Cli, redis_url: str, tmp_path: Path
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        task = swarm.post_task("slow", "takes longer than its lease", lease_s=1)
    agent = tmp_path / "agent.py"
    agent.write_text(
        "import sys, time\nsys.stdin.read()\ntime.sleep(2.5)\n"
        'print(\'{"summary": "finished after 2.5 s"}\')\n'
    )
    cli("run", "--queue", "slow", "--exec", f"{sys.executable} {agent}", "--until-done")
    with Swarm(redis_url, swarm="test") as swarm:
        done = swarm.get_task(task.id)
        assert done.status == TaskStatus.COMPLETED, done
        assert done.attempts == 1, done


def test_run_help_and_docs_name_the_default_timeout(cli: Cli) -> None:
    seconds = f"{DEFAULT_TIMEOUT_S:g}"
    said = " ".join(cli("run", "--help").stdout.split())
    assert f"(default: {seconds}, whatever the task's lease_s" in said, said
    assert (
        f"| `--timeout S` | {seconds}, whatever the task's `lease_s`"
        in (DOCS / "cli.md").read_text()
    )
    assert "its default is\neach task's `lease_s`" not in (DOCS / "ask.md").read_text()
    assert f"(default: {seconds} s, whatever" in (DOCS / "agents.md").read_text()


# --- 4. docs/ask.md says the MCP ask tool's task_id rule


def test_ask_md_says_the_mcp_ask_task_id_rule() -> None:
    text = " ".join((DOCS / "ask.md").read_text().split())
    assert "this session holds no lease on task T" in text
    assert "the asker recorded is always the session's own agent" in text
    assert "ask(target, question, data, timeout_s, dedupe_key, task_id)" in text


# --- 5. one name, two MCP servers of two roles


def test_a_second_server_of_another_role_under_a_live_name_is_refused(redis_url: str) -> None:
    """Before, the worker session took the shard's agent over (role worker) and, as it
    ended, marked it gone (left_at) until the shard's next heartbeat. A server of the same
    role started again still takes its own name (a restart), and a record the hooks alone
    wrote (no server named) is still the session's: its server registers it in its role."""
    core = Swarm(redis_url, swarm="test")
    core.join("dup-5", lambda _: {"role": "worker", "metadata": {"hook": "claude"}})

    async def body() -> None:
        async with connect(build_server(core, role="shard", name="dup-3")) as shard:
            await shard("read_inbox")  # (registered)
            async with connect(build_server(core, role="worker", name="dup-3")) as worker:
                said = await worker.error("claim_task", queue="nothing-here")
                assert "agent dup-3 is live as role shard" in said, said
                assert "another --name" in said, said
            agent = await anyio.to_thread.run_sync(core.get_agent, "dup-3")
            assert agent.role == "shard" and agent.alive and agent.left_at is None, agent
            await shard("read_inbox")  # (the shard's session runs on, as itself)
            async with connect(build_server(core, role="shard", name="dup-3")) as again:
                await again("read_inbox")  # (the same role: not refused)
        async with connect(build_server(core, role="shard", name="dup-5")) as hooked:
            await hooked("read_inbox")
            agent = await anyio.to_thread.run_sync(core.get_agent, "dup-5")
            assert agent.role == "shard", agent

    try:
        anyio.run(body)
    finally:
        core.close()


def test_swarm_mcp_is_refused_at_its_start(redis_url: str, tmp_path: Path) -> None:
    core = Swarm(redis_url, swarm="test")
    env = subprocess_env(redis_url, "test", swarm_bin(tmp_path / "bin").parent)
    env.pop("SWARM_AGENT", None)

    async def body() -> None:
        async with connect(build_server(core, role="shard", name="dup-4")) as shard:
            await shard("read_inbox")
            done = await anyio.to_thread.run_sync(
                lambda: run_swarm(["mcp", "--role", "worker", "--name", "dup-4"], env, input=b"")
            )
            err = done.stderr.decode()
            assert done.returncode == 1, err
            assert err.startswith("error: agent dup-4 is live as role shard, served by another "
                                  "MCP server"), err  # fmt: skip
            assert "another --name" in err and "swarm agents deregister dup-4" in err, err
            agent = await anyio.to_thread.run_sync(core.get_agent, "dup-4")
            assert agent.role == "shard" and agent.alive, agent

    try:
        anyio.run(body)
    finally:
        core.close()
