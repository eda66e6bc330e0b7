"""What docs/ask.md, seed.md, dashboard.md and security.md say, held to the code: the commands
they name exist, the `swarm serve` synopsis lists its options, the event stream's first
message is the one shown, `swarm acl --json`'s keys are all documented, and the rights that
ask.md gives a worker user are the ones its ACL rules give."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import click
import pytest

from redis_swarm import AsyncSwarm
from redis_swarm._acl import acl_user
from redis_swarm.cli import main
from redis_swarm.cli._ask import serve
from redis_swarm.cli._run import run as run_command
from redis_swarm.dashboard.app import create_app

from ._cli import Cli
from ._sse import SSEClient

DOCS = Path(__file__).resolve().parent.parent / "docs"
TOURED = ("ask.md", "seed.md", "dashboard.md", "security.md")
WORDS = r"swarm ([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)?)"
FENCED = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)


def named_commands(text: str) -> list[str]:
    """The words after ``swarm`` in inline code, and at the start of a code block's lines."""
    blocks = FENCED.findall(text)
    prose = FENCED.sub("", text)
    in_blocks = re.findall(r"^(?:\$ )?" + WORDS, "\n".join(blocks), re.M)
    return re.findall("`" + WORDS, prose) + in_blocks


def _command(words: list[str]) -> str | None:
    """What is wrong with ``swarm WORDS...`` as a command path (None: nothing)."""
    group: click.Command = main
    for depth, word in enumerate(words):
        if not isinstance(group, click.Group):
            return None  # an argument of a command
        ctx = click.Context(group)
        found = group.get_command(ctx, word)
        if found is None:
            # below the top level a group may take arguments; only a group that takes none
            # would refuse a word that is no subcommand
            if depth == 0 or not any(isinstance(p, click.Argument) for p in group.params):
                return f"'swarm {' '.join(words[: depth + 1])}': no such command"
            return None
        group = found
    return None


@pytest.mark.parametrize("doc", TOURED)
def test_the_commands_the_docs_name_exist(doc: str) -> None:
    text = (DOCS / doc).read_text()
    wrong = {
        named: problem
        for named in named_commands(text)
        if (problem := _command(named.split())) is not None
    }
    assert not wrong, f"docs/{doc} names commands that do not exist: {wrong}"


def _options(command: click.Command) -> set[str]:
    return {
        name
        for param in command.params
        if isinstance(param, click.Option)
        for name in param.opts
        if name.startswith("--") and name != "--json"  # (--json: every command's)
    }


def test_ask_md_gives_the_serve_synopsis_and_its_timeout_default() -> None:
    text = (DOCS / "ask.md").read_text()
    synopsis = re.search(r"`swarm serve OWNER --exec CMD (.*?)` is", text, re.S)
    assert synopsis is not None
    assert set(re.findall(r"--[a-z-]+", synopsis.group(0))) == _options(serve)
    timeout = next(p for p in serve.params if p.name == "timeout_s")
    assert f"`--timeout` (default {timeout.default:g} s" in " ".join(text.split())
    # and swarm run's, the same (a lease is renewed while the agent runs: no time limit)
    run_timeout = next(p for p in run_command.params if p.name == "timeout_s")
    assert f"(default: {timeout.default:g}, whatever the task's lease_s" in str(run_timeout.help)
    assert (
        f"(`swarm run --timeout` has the same default, {timeout.default:g} s whatever the "
        "task's `lease_s`" in " ".join(text.split())
    )


def test_ask_md_says_what_the_worker_rules_allow() -> None:
    rules = acl_user("worker", "docs", "w-docs", "p" * 16).rules
    assert "+fcall|rs_task_post" in rules  # a worker may ask (peer assist)
    text = " ".join((DOCS / "ask.md").read_text().split())
    rights = re.search(r"- Rights: (.*?)(?: - |$)", text)
    assert rights is not None
    assert "PermissionDenied" not in rights.group(1)
    assert "a worker too" in rights.group(1) and "+fcall|rs_task_post" in rights.group(1)


def test_dashboard_md_shows_the_stream_s_first_message(redis_url: str) -> None:
    async def first_message() -> str:
        async with (
            AsyncSwarm(redis_url, swarm="docs") as swarm,
            SSEClient(create_app(swarm), "/api/events") as sse,
        ):
            await swarm.post_task("q.docs", "hello")
            await sse.next()
            return f"retry: {sse.retry}\n" + "".join(f": {c}\n" for c in sse.comments)

    head = asyncio.run(first_message())
    assert head == "retry: 1000\n: connected\n"
    example = re.search(
        r"Server-Sent Events.*?```text\n(.*?)```", (DOCS / "dashboard.md").read_text(), re.S
    )
    assert example is not None and example.group(1).startswith(head + "\n")


def test_security_md_documents_every_key_of_acl_json(tmp_path: Path) -> None:
    cli = Cli(f"unix://{tmp_path}/none.sock")  # --redis-version: no server is asked
    out = cli("acl", "--role", "worker", "--user", "w-docs", "--redis-version", "7.0", "--json")
    keys = set(out.json())
    assert "password" in keys  # generated: shown once
    text = (DOCS / "security.md").read_text()
    section = text.split("### `swarm acl --json`", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))
    assert documented == keys
