"""``swarm mcp install`` when the client already holds an entry of that name at its other
scope: it says so, naming that file and which of the two the client starts (Claude Code: local,
then the project's .mcp.json, then user; Gemini CLI: project over user; Codex: a project's
.codex/config.toml over its own file), with what takes the other out; ``--json`` says it too.
Before, nothing was said: the client started one and the user edited the other.

The other scope's entries are written by the clients' own means: an earlier install (the
files the tests of ``test_install_replace`` check), the real `claude` CLI, and a project's
.codex/config.toml as Codex reads it (Codex writes only its own file)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from redis_swarm.cli import main

from .test_clients import BIN, CLAUDE, _needs

CLAUDE_ORDER = (
    "(it takes the local scope first, then the project's .mcp.json (once approved there), "
    "then the user scope)"
)
GEMINI_ORDER = "(it takes the project's .gemini/settings.json over the user's)"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project folder the installs run in (a git checkout), HOME and CODEX_HOME beside it."""
    folder = tmp_path / "work"
    (folder / ".git").mkdir(parents=True)
    monkeypatch.chdir(folder)
    return folder


def _run(work: Path, *args: str) -> Result:
    env = {
        "HOME": str(work.parent / "home"),
        "CODEX_HOME": str(work.parent / "codex"),
        "CLAUDE_CONFIG_DIR": None,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "SWARM_URL": "embedded",
        "GEMINI_CLI_TRUST_WORKSPACE": "true",  # (the folder's trust: test_walkthrough2_fixes)
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.stderr
    return result


def _warnings(work: Path, *args: str) -> list[str]:
    """The warnings of ``swarm mcp install ARGS`` (each on one line, before its last line)."""
    lines = _run(work, "mcp", "install", *args).stderr.splitlines()
    assert not lines[-1].startswith("warning:"), lines
    return [line.removeprefix("warning: ") for line in lines if line.startswith("warning: ")]


def test_gemini_says_which_scope_s_entry_it_starts(work: Path) -> None:
    user = work.parent / "home" / ".gemini" / "settings.json"
    project = work / ".gemini" / "settings.json"
    assert _warnings(work, "--client", "gemini", "--scope", "user", "--write") == []
    # the project's, installed over the user's: Gemini CLI starts it, and the user's is moot
    assert _warnings(work, "--client", "gemini", "--scope", "project", "--write") == [
        f"swarm is also in {user} (Gemini CLI's user scope), but Gemini CLI starts the one "
        f"installed here in this project, not that one {GEMINI_ORDER}: an edit of that one "
        "changes nothing here"
    ]
    # the user's again (printed only, or written): the project's wins in this project
    said = (
        f"swarm is also in {project} (Gemini CLI's project scope), and Gemini CLI starts that "
        f"one in this project, not the one installed here {GEMINI_ORDER}: take that one out "
        "(`swarm mcp install --client gemini --scope project --remove`), or install at the "
        "project scope"
    )
    assert _warnings(work, "--client", "gemini", "--scope", "user") == [said]
    written = _warnings(work, "--client", "gemini", "--scope", "user", "--role", "shard", "--write")
    assert written == [said]
    printed = _run(work, "--json", "mcp", "install", "--client", "gemini", "--scope", "user")
    data = json.loads(printed.stdout)
    assert data["elsewhere"] == [{"scope": "project", "where": str(project), "used": True}]
    # the removal it names takes it out; the user's is then the one, said by the removal
    lines = _run(work, "mcp", "install", "--client", "gemini", "--scope", "project", "--remove")
    assert lines.stderr.splitlines() == [
        f"warning: swarm is still in {user} (Gemini CLI's user scope), and Gemini CLI starts "
        f"that one in this project {GEMINI_ORDER}",
        f"removed swarm from {project}",
    ]
    assert _warnings(work, "--client", "gemini", "--scope", "user", "--write") == []


def test_another_server_name_is_not_the_same_entry(work: Path) -> None:
    _run(work, "mcp", "install", "--client", "gemini", "--scope", "user", "--write")
    args = ["--client", "gemini", "--server-name", "swarm-w", "--write"]
    assert _warnings(work, *args) == []
    said = _warnings(work, "--client", "gemini", "--scope", "user", "--server-name", "swarm-w")
    assert said[0].endswith(
        "(`swarm mcp install --client gemini --scope project --remove --server-name swarm-w`), "
        "or install at the project scope"
    ), said


def test_codex_says_a_project_s_table_is_the_one_it_starts(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    codex = work / ".codex" / "config.toml"
    codex.parent.mkdir()
    codex.write_text('model = "o3"\n\n[mcp_servers.other]\ncommand = "node"\n')
    sub = work / "src"
    sub.mkdir()
    monkeypatch.chdir(sub)  # (Codex reads the project's files from the folder up to its root)
    assert _warnings(sub, "--client", "codex") == []
    codex.write_text('[mcp_servers.swarm]\ncommand = "node"\nargs = ["x.js"]\n')
    own = sub.parent / "codex" / "config.toml"  # (CODEX_HOME beside the folder run in)
    own.parent.mkdir()
    own.write_text(f'[projects."{work.resolve()}"]\ntrust_level = "trusted"\n')
    assert _warnings(sub, "--client", "codex", "--write") == [
        f"swarm is also in {codex} (Codex's project scope), and Codex starts that one in this "
        "project, not the one installed here (it takes a project's .codex/config.toml, in a "
        "project it trusts, over its own config.toml): take that one out of its file"
    ]
    # (in a project Codex does not trust: tests/test_vendor_tour_fixes.py)


@_needs(CLAUDE, "Claude Code (@anthropic-ai/claude-code)")
def test_claude_code_s_scopes_are_said_in_its_order(work: Path) -> None:
    """The real `claude` CLI writes the user and local scopes (``~/.claude.json``, the local
    one under the checkout); ``--client json`` writes the project's .mcp.json."""
    config = work.parent / "home" / ".claude.json"
    mcp_json = work / ".mcp.json"
    user = f"{config} (Claude Code's user scope)"
    project = f"{mcp_json} (Claude Code's project scope)"
    local = f"{config}, this project's entry (Claude Code's local scope)"

    # (the project's .mcp.json against the user scope: not approved yet, the user scope's is
    # started until it is; each answer: tests/test_install_trust.py)
    def until_this_approved(there: str) -> str:
        return (
            f"swarm is also in {there}, and Claude Code starts that one in this project until "
            f"the one installed here is approved (it asks as it starts here), then the one "
            f"installed here {CLAUDE_ORDER}: approve it when asked"
        )

    def until_that_approved(there: str, scope: str) -> str:
        return (
            f"swarm is also in {there}, which is not approved there yet: Claude Code starts the "
            "one installed here in this project until that one is approved (it asks as it "
            f"starts here), then that one {CLAUDE_ORDER}: to keep the one installed here, "
            f"decline that one when asked, or take that one out (`swarm mcp install --client "
            f"claude --scope {scope} --remove`), or install at the {scope} scope"
        )

    def ignored(there: str) -> str:
        return (
            f"swarm is also in {there}, but Claude Code starts the one installed here in this "
            f"project, not that one {CLAUDE_ORDER}: an edit of that one changes nothing here"
        )

    def started(there: str, scope: str) -> str:
        return (
            f"swarm is also in {there}, and Claude Code starts that one in this project, not "
            f"the one installed here {CLAUDE_ORDER}: take that one out (`swarm "
            f"mcp install --client claude --scope {scope} --remove`), or install at the {scope} "
            "scope"
        )

    assert _warnings(work, "--client", "claude", "--scope", "user", "--write") == []
    assert _warnings(work, "--client", "json", "--write") == [until_this_approved(user)]
    assert _warnings(work, "--client", "claude", "--scope", "local", "--write") == [
        ignored(project),
        ignored(user),
    ]
    assert _warnings(work, "--client", "claude", "--scope", "user", "--write") == [
        started(local, "local"),
        until_that_approved(project, "project"),
    ]
    assert _warnings(work, "--client", "claude", "--scope", "project") == [
        started(local, "local"),
        until_this_approved(user),
    ]
    done = _run(work, "mcp", "install", "--client", "claude", "--scope", "local", "--remove")
    assert done.stderr.splitlines() == [
        f"warning: swarm is still in {project}, and Claude Code starts that one in this "
        f"project {CLAUDE_ORDER}",
        "removed swarm from Claude Code's local scope",
    ]
