"""The init prompts' text: every role, interface and client; the URL; the finding format."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from redis_swarm import ContextInfo, Settings, Task
from redis_swarm._config import DEFAULT_HOME
from redis_swarm._prompts import (
    CLIENTS,
    MCP_TOOLS,
    ROLES,
    VIAS,
    render_prompt,
    render_question_prompt,
    render_task_prompt,
    swarm_command,
    task_context_note,
)
from redis_swarm._runner import finding_tags, parse_finding
from redis_swarm.mcp_server._install import swarm_command as install_command

from ._cli import Cli

REMOTE = Settings.from_url("redis://alice:s3cret@10.1.2.3:6380/0", swarm="research")
# The install's own executable, by its absolute path (as hooks and `mcp install` write it).
SWARM = shlex.join(install_command())
# A URL that holds a password stays out of the commands: they read SWARM_URL.
PREFIX = f"{SWARM} --swarm research "


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)\n```", text, re.S)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize("role", ROLES)
def test_every_prompt_renders_for_this_install(role: str, via: str, client: str) -> None:
    text = render_prompt(role, settings=REMOTE, queue="if.search_pass1", via=via, client=client)
    assert "s3cret" not in text
    assert "`research`" in text
    assert "redis://alice:***@10.1.2.3:6380/0" in text
    assert "must be set in your environment" in text and "--url" not in text
    assert text.endswith("\n") and not text.endswith("\n\n")
    for code in blocks(text, "python"):
        ast.parse(code)
    if via == "cli":
        commands = "\n".join(blocks(text, "bash"))
        assert commands
        assert PREFIX in commands
        for line in commands.splitlines():
            # every command is the install's swarm with the options that reach this swarm
            assert not re.match(r"\s*swarm ", line), line
            if line.startswith(SWARM + " "):
                assert line.startswith(PREFIX)


def test_show_password_writes_it() -> None:
    text = render_prompt("worker", settings=REMOTE, show_password=True)
    assert "redis://alice:s3cret@10.1.2.3:6380/0" in text
    assert "***" not in text


def test_default_install_commands_are_the_install_s_swarm_pinning_the_defaults() -> None:
    """The install's executable by its absolute path, as hooks and `mcp install` write it: a
    shell without this install's bin/ on PATH runs the prompt's commands too. The default
    server, swarm and home are given too (an agent's shell may name others: SWARM_URL,
    SWARM_NAME, SWARM_HOME), as the hooks give them (tests/test_prompt_reach.py runs them)."""
    settings = Settings.from_url("embedded")
    home = shlex.quote(str(DEFAULT_HOME.absolute()))
    pinned = f"{SWARM} --url embedded --swarm default --home {home}"
    assert swarm_command(settings) == pinned and Path(install_command()[0]).is_absolute()
    text = render_prompt("worker", settings=settings, queue="q1")
    assert f"{pinned} task claim q1 --worker <WORKER_NAME> --wait 10 --json" in text
    assert swarm_command(Settings.from_url("embedded", swarm="s2")) == pinned.replace(
        "--swarm default", "--swarm s2"
    )


def test_mcp_prompts_name_the_server_tools() -> None:
    worker = render_prompt("worker", settings=REMOTE, via="mcp", client="claude")
    for tool in ("claim_task", "search_context", "read_context_lines", "report_finding"):
        assert f"`{tool}`" in worker
    assert "mcp install --client claude --role worker --write" in worker
    shard = render_prompt("shard", settings=REMOTE, via="mcp", client="codex")
    for tool in ("publish_context", "post_tasks", "wait_for_pass", "list_findings", "synthesize"):
        assert f"`{tool}`" in shard
    assert "mcp install --client codex --role shard --name <SHARD_NAME> --write" in shard
    gemini = render_prompt("worker", settings=REMOTE, via="mcp", client="gemini")
    assert "mcp install --client gemini --role worker --write" in gemini
    assert "edits `.gemini/settings.json`" in gemini
    generic = render_prompt("coordinator", settings=REMOTE, via="mcp")
    assert "mcp install --client json --role coordinator\n" in generic
    assert "`request_synthesis`" in generic
    for role in ROLES:
        text = render_prompt(role, settings=REMOTE, via="mcp")
        named = set(re.findall(r"`([a-z]+(?:_[a-z]+)+)`", text))
        tools = {n for n in named if n in MCP_TOOLS or n.split("_")[-1] in ("task", "context")}
        assert tools <= set(MCP_TOOLS), tools - set(MCP_TOOLS)


def test_client_flavours() -> None:
    claude = render_prompt("shard", settings=REMOTE, client="claude")
    assert "Task-tool subagent" in claude and "claude -p" in claude
    codex = render_prompt("shard", settings=REMOTE, client="codex")
    assert "codex exec -" in codex
    gemini = render_prompt("shard", settings=REMOTE, client="gemini")
    # --allowed-tools is deprecated in Gemini CLI 0.61: its workers load a policy instead.
    assert "gemini --policy .gemini/swarm-workers.toml -p" in gemini and "`gemini -p`" in gemini
    assert 'commandPrefix = "swarm"' in gemini and "allowed-tools" not in gemini
    generic = render_prompt("shard", settings=REMOTE)
    assert "<AGENT_COMMAND>" in generic


def test_every_client_an_install_configures_has_its_prompts() -> None:
    """`swarm mcp install --client X` and the prompts for X go together (Gemini CLI's were
    missing, so its MCP prompt failed)."""
    from redis_swarm.mcp_server._install import CLIENTS as INSTALLABLE

    assert set(INSTALLABLE) - {"json"} <= set(CLIENTS)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="role"):
        render_prompt("janitor", settings=REMOTE)
    with pytest.raises(ValueError, match="interface"):
        render_prompt("worker", settings=REMOTE, via="carrier-pigeon")
    with pytest.raises(ValueError, match="client"):
        render_prompt("worker", settings=REMOTE, client="emacs")


TASK = Task(
    id="t-1",
    queue="q",
    description="Find the signals.",
    data={"focus": "pricing"},
    pass_name="Pass 1: Signal Capture",
    attempts=1,
    max_attempts=3,
    parent="shard-a",
)
INFO = ContextInfo(
    owner="shard-a",
    version="ab" * 32,
    size_bytes=123_456,
    tokens_est=30_000,
    chunks=1,
    source="notes.md",
)


def test_task_prompt_has_everything_a_worker_needs() -> None:
    text = render_task_prompt(TASK, settings=REMOTE, context=INFO, summary_limit=500)
    assert "Find the signals." in text
    assert '"focus": "pricing"' in text
    assert "Pass 1: Signal Capture" in text
    assert f"swarm context search shard-a 'words to find' --around 3 --version {'ab' * 32}" in text
    assert "at most 500 characters" in text
    assert "30,000 tokens" in text
    # The example finding in the prompt is itself a valid finding.
    example = blocks(text, "json")[-1]
    assert parse_finding(f"```json\n{example}\n```") is not None
    no_context = render_task_prompt(TASK, settings=REMOTE)
    assert "has not published a context" in no_context
    # With the run's tags: the agent is told to put its finding between them.
    tags = finding_tags("0123abcd")
    marked = render_task_prompt(TASK, settings=REMOTE, finding_tags=tags)
    assert f"between a line `{tags[0]}` and a line `{tags[1]}`" in marked
    example = blocks(marked, "json")[-1]
    answer = f"{tags[0]}\n{example}\n{tags[1]}"
    assert parse_finding(marked + answer, mark="0123abcd") == (json.loads(example), "marked")
    # The prompt alone (an agent echoing it) holds no marked finding.
    assert (parse_finding(marked, mark="0123abcd") or ({}, ""))[1] != "marked"


def test_prompt_command(redis_url: str) -> None:
    cli = Cli(redis_url, swarm="research")
    out = cli("prompt", "worker", "--queue", "q1", "--for", "claude")
    assert "swarm --url" in out.stdout and "task claim q1" in out.stdout
    assert "note:" not in out.stderr
    # Without --queue it names the default, and says so (a worker told to claim from 'work'
    # found nothing where its tasks were posted to another queue).
    out = cli("prompt", "worker", "--for", "claude")
    assert "task claim work" in out.stdout
    assert out.stderr.startswith("note: the prompt names the queue work, the default")
    data = cli.json("prompt", "shard", "--via", "python")
    assert set(data) == {"role", "via", "client", "queue", "prompt"}
    assert data["role"] == "shard" and data["queue"] == "work"
    assert "from redis_swarm import Swarm" in data["prompt"]
    out = cli("prompt", "janitor", expect=2)
    assert "janitor" in out.stderr
    out = cli("prompt", "worker", "--queue", "bad queue", expect=2)
    assert out.stderr.startswith("error: queue 'bad queue'")


def test_prompt_masks_the_password_of_the_url_in_use(tmp_path: Path) -> None:
    cli = Cli("redis://bob:pw123@127.0.0.1:1/0")
    out = cli("prompt", "coordinator")
    assert "pw123" not in out.stdout and "bob:***@" in out.stdout
    assert "pw123" in cli("prompt", "coordinator", "--show-password").stdout


def test_every_template_section_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """The prose lives in prompts/*.md (package data): each section of each file is rendered
    by some prompt, and rendering fills every placeholder (string.Template is strict)."""
    from importlib import resources

    from redis_swarm import _prompts

    used: set[tuple[str, str]] = set()
    fill = _prompts._fill

    def spy(file: str, section: str, /, **values: object) -> str:
        used.add((file, section))
        return fill(file, section, **values)

    monkeypatch.setattr(_prompts, "_fill", spy)
    for role in ROLES:
        for via in VIAS:
            for client in CLIENTS:
                render_prompt(role, settings=REMOTE, via=via, client=client)
    orphan = Task(id="t-2", queue="q", description="d", parent="shard-b")
    pdf = replace(INFO, media_type="application/pdf")  # not text: written to a file
    for task, info in ((TASK, INFO), (TASK, pdf), (orphan, None)):
        for tags in (None, finding_tags("ab12")):
            render_task_prompt(task, settings=REMOTE, context=info, finding_tags=tags)
    task_context_note("shard-a", INFO, mcp=True)  # (the hooks', for an MCP session)
    asker = Task(id="t-3", queue="main", description="audit", worker="w-1")
    question = Task(id="t-4", queue="ask.shard-a", description="where?", data={"data": {"a": 1}})
    for info, text, in_session, by in (
        (INFO, "the text\n", False, asker), (INFO, None, False, None), (INFO, None, True, None),
        (pdf, None, False, None), (pdf, None, True, None), (None, None, False, None),
    ):  # fmt: skip
        asked = question if by is None else replace(question, data={"asker": "w-1"})
        render_question_prompt(
            asked, settings=REMOTE, owner="shard-a", context=info, text=text, asker_task=by,
            in_session=in_session,
        )  # fmt: skip
    render_question_prompt(replace(question, data={"asker": "w-2"}), settings=REMOTE, owner="o")
    folder = resources.files("redis_swarm") / "prompts"
    files = sorted(p.name[:-3] for p in folder.iterdir() if p.name.endswith(".md"))
    assert files == ["clients", "common", "coordinator", "question", "shard", "task", "worker"]
    defined = {(f, s) for f in files for s in _prompts._sections(f)}
    assert defined == used


def test_the_task_prompt_counts_claims_and_failures_apart() -> None:
    """Claims count abandons too, failures only reported ones (against max_attempts): a
    prompt that said "attempt 3 of 2" after two expired leases read as a contradiction."""
    again = dataclasses.replace(TASK, attempts=3, failures=1, abandons=2)
    text = render_task_prompt(again, settings=REMOTE)
    assert "claim 3, 1 of 3 failures used" in text and "attempt" not in text.split("\n## ")[1]
