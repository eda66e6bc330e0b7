"""The CLI as users and agents run it: real ``python -m redis_swarm`` processes, pipes, exit
codes, one-line errors, shell completion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import click
import pytest
from click.testing import CliRunner

from redis_swarm import Swarm
from redis_swarm.cli import main

from ._cli import run_swarm, subprocess_env, swarm_bin


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    return subprocess_env(redis_url, "test", swarm_bin(tmp_path / "bin").parent)


def test_a_pipeline_of_real_processes(env: dict[str, str], redis_url: str) -> None:
    text = b"".join(b"line %d\n" % i for i in range(1, 10001))
    out = run_swarm(["context", "publish", "-", "--owner", "shard-a", "--source", "n.md"], env,
                    input=text)  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = run_swarm(["context", "get", "shard-a"], env)
    assert out.stdout == text
    out = run_swarm(["--json", "task", "post", "q", "-", "--parent", "shard-a"], env,
                    input=b"count the lines")  # fmt: skip
    task = json.loads(out.stdout)
    out = run_swarm(["--json", "task", "claim", "q", "--worker", "w"], env)
    claimed = json.loads(out.stdout)
    assert claimed["id"] == task["id"] and claimed["token"].startswith("1.")
    finding = json.dumps({"summary": "10000 lines", "sources": ["line 10000"]}).encode()
    lease = ["--token", claimed["token"]]
    out = run_swarm(["task", "report", claimed["id"], *lease, "--finding", "-"], env, input=finding)
    assert out.returncode == 0 and out.stdout.startswith(b"reported f-")
    with Swarm(redis_url, swarm="test") as swarm:
        assert swarm.get_task(task["id"]).status == "completed"


def side_by_side(*runs: tuple[list[str], dict[str, str]]) -> list[CompletedProcess[bytes]]:
    """Commands that do not depend on each other, run at once (each pays a Python start)."""
    with ThreadPoolExecutor(len(runs)) as pool:
        return list(pool.map(lambda run: run_swarm(*run), runs))


def test_exit_codes_and_one_line_errors(env: dict[str, str]) -> None:
    empty, missing, unknown, wait = side_by_side(
        (["task", "claim", "empty"], env),
        (["task", "show", "t-missing"], env),
        (["task", "frobnicate"], env),
        (["task", "wait", "--queue", "q", "--timeout", "0"], env),
    )
    assert empty.returncode == 3 and empty.stdout == b""
    assert missing.returncode == 1
    assert missing.stderr.startswith(b"error: ") and missing.stderr.count(b"\n") == 1
    assert unknown.returncode == 2
    # a queue no task was ever posted to (misspelt?) is refused, naming the queues there are
    assert wait.returncode == 1 and b"no task was ever posted to queue" in wait.stderr


def test_unreachable_server_is_one_line_unless_debug(env: dict[str, str]) -> None:
    # one retry, not the default six (whose pauses add up to 5 s per command): the error
    # comes after the retries all the same
    down = {**env, "SWARM_URL": "redis://127.0.0.1:1?retries=1"}
    out, debug, bogus = side_by_side(
        (["status"], down), (["--debug", "status"], down), (["--url", "bogus://x", "agents"], env)
    )
    assert out.returncode == 1
    assert out.stderr.startswith(b"error: ") and b"127.0.0.1:1" in out.stderr
    assert b"Traceback" not in out.stderr and out.stderr.count(b"\n") == 1
    assert debug.returncode == 1 and b"Traceback" in debug.stderr
    # (a bad --url is a bad option: exit 2, as every usage error: docs/cli.md)
    assert bogus.returncode == 2 and bogus.stderr.startswith(b"error: unsupported URL scheme")


def test_agents_run_json_errors_on_stderr(env: dict[str, str]) -> None:
    out = run_swarm(["--json", "task", "show", "t-missing"], env)
    assert out.returncode == 1 and out.stdout == b""
    error = json.loads(out.stderr)
    assert error["error"] == "NotFound" and "t-missing" in error["message"]


def complete(args: str, env: dict[str, str]) -> list[str]:
    """What bash completion offers after ``swarm ARGS``."""
    words = ["swarm", *args.split(" ")]
    runner = CliRunner()
    result = runner.invoke(
        main,
        [],
        prog_name="swarm",
        env={
            **env,
            "_SWARM_COMPLETE": "bash_complete",
            "COMP_WORDS": " ".join(words),
            "COMP_CWORD": str(len(words) - 1),
        },
    )
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if "," in line]


def test_shell_completion_of_queues_tasks_agents_owners(
    env: dict[str, str], redis_url: str
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        a = swarm.post_task("alpha", "first task")
        swarm.post_task("beta", "second task")
        swarm.register("shard", name="shard-a")
        swarm.publish_context("shard-a", "x", source="x.md")
    assert complete("task claim al", env) == ["alpha"]
    assert set(complete("run --queue ", env)) == {"alpha", "beta"}
    assert a.id in complete("task show t-", env)
    assert complete("msg send sh", env) == ["shard-a"]
    assert complete("context get ", env) == ["shard-a"]
    assert "task" in complete("ta", env)
    assert "task.completed" in complete("events --type task.", env)
    # An unreachable server completes nothing, quietly and quickly.
    assert complete("task show t-", {**env, "SWARM_URL": "redis://127.0.0.1:1"}) == []


def test_completion_never_starts_the_embedded_server(tmp_path: Path) -> None:
    from redis_swarm._embedded import EmbeddedServer

    home = tmp_path / "h"
    env = {"SWARM_URL": "embedded", "SWARM_HOME": str(home)}
    assert complete("task show ", env) == []
    assert not EmbeddedServer(home).is_running()


def test_completion_script_is_documented() -> None:
    env: dict[str, Any] = {"_SWARM_COMPLETE": "bash_source"}
    result = CliRunner().invoke(main, [], prog_name="swarm", env=env)
    assert "_swarm_completion" in result.stdout
    docs = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
    assert 'eval "$(_SWARM_COMPLETE=bash_source swarm)"' in docs.read_text()


def test_swarm_help_lists_every_command_on_one_line() -> None:
    """`swarm --help` at 80 columns: every command, each with one whole line of help (a
    first sentence too long wraps: give the command a short_help)."""
    result = CliRunner().invoke(main, ["--help"], prog_name="swarm", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    listing = result.stdout.split("Commands:\n", 1)[1].splitlines()
    names = [line.split()[0] for line in listing if line.strip()]
    assert names == sorted(main.commands), "one line per command (a help that wraps breaks it)"
    for line in listing:
        assert not line.endswith("...") and len(line.split(None, 1)) == 2, line


def _groups(group: click.Group, path: list[str]) -> Iterator[list[str]]:
    yield path
    # through list/get_command: the CLI imports a command's module when it is asked for it,
    # so ``group.commands`` holds only what earlier tests of this process happened to load
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _groups(command, [*path, name])


def test_no_help_listing_cuts_a_command_short() -> None:
    """Every group's --help lists each subcommand with the first sentence of its help whole,
    wrapped, never cut with "..." (at 60 columns, narrower than any terminal it meets)."""
    runner = CliRunner()
    groups = list(_groups(main, []))
    assert ["pipeline"] in groups and ["task"] in groups and ["msg"] in groups
    for path in groups:
        result = runner.invoke(main, [*path, "--help"], env={"COLUMNS": "60"})
        assert result.exit_code == 0, (path, result.output)
        listing = result.stdout.split("Commands:\n", 1)[1]
        assert "..." not in listing, (path, listing)
    # One that click cut before: its first sentence is there whole.
    result = runner.invoke(main, ["pipeline", "--help"], env={"COLUMNS": "60"})
    assert "citations resolved to findings" in " ".join(result.stdout.split())


def test_help_of_every_command() -> None:
    runner = CliRunner()
    for args in (
        [], ["task"], ["task", "post"], ["task", "claim"], ["task", "report"], ["context"],
        ["context", "publish"], ["context", "read"], ["findings"], ["synth"], ["msg"],
        ["events"], ["agents"], ["status"], ["prompt"], ["run"],
    ):  # fmt: skip
        result = runner.invoke(main, [*args, "--help"], env={"COLUMNS": "100"})
        assert result.exit_code == 0, (args, result.output)
        assert "Usage: " in result.stdout
