"""``swarm mcp install`` reads the clients' trust and approval as the clients do.

Gemini CLI's trusted folders file: a line whose folder is a loop of links, or holds a NUL
byte, is kept as written (Gemini CLI 0.61's getRealPath) where the install crashed after
writing the settings file; a file Gemini CLI refuses (not JSON, no object, a level it does
not know: it then does not start at all) is said to be that, not "add a line to it".

Claude Code's project .mcp.json server against its user scope's of the same name: which of
the two it starts follows the answer kept in its settings (approved, declined, not asked
yet); the warning said "starts the one installed here ... once it is approved there (until
then, that one) ...: an edit of that one changes nothing here" whatever the answer. Each
case is checked against the real CLIs in .npm-tools (`gemini mcp list`, `claude mcp get`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from redis_swarm.cli import main
from redis_swarm.mcp_server import _install

from .mcp_server.test_clients import BIN, CLAUDE, GEMINI, _needs

_QUIET = {"DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1",
          "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}  # fmt: skip


def _env(home: Path) -> dict[str, str | None]:
    return {"HOME": str(home), "CLAUDE_CONFIG_DIR": None, "GEMINI_CLI_HOME": None,
            "GEMINI_CLI_TRUSTED_FOLDERS_PATH": None, "GEMINI_CLI_TRUST_WORKSPACE": None,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "SWARM_URL": "embedded",
            **_QUIET}  # fmt: skip


def _warnings(home: Path, *args: str) -> list[str]:
    """The warnings of ``swarm mcp install ARGS`` (it must succeed)."""
    result = CliRunner().invoke(main, ["mcp", "install", *args], env=_env(home))
    assert result.exit_code == 0, (result.stderr, result.exception)
    lines = result.stderr.splitlines()
    return [line.removeprefix("warning: ") for line in lines if line.startswith("warning: ")]


def _real_cli(tool: Path, home: Path, *args: str) -> str:
    env = {k: v for k, v in {**os.environ, **_env(home)}.items() if v is not None}
    done = subprocess.run(
        [str(tool), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return done.stdout + done.stderr


# --- Gemini CLI's trusted folders file ---------------------------------------------------


def _gemini_trust_file(home: Path, rules: str) -> None:
    path = home / ".gemini" / "trustedFolders.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(rules)


def _gemini_starts_servers(project: Path) -> str:
    """What `gemini mcp list` says of a server of the project (it tries to start it, in a
    folder it trusts; "Disabled" in one it does not). The entries the installs wrote are
    taken out first: started by it, each would leave its swarm's redis-server running."""
    home = project.parent / "home"
    (home / ".gemini" / "settings.json").write_text("{}")
    settings = project / ".gemini" / "settings.json"
    settings.parent.mkdir(exist_ok=True)
    settings.write_text(json.dumps({"mcpServers": {"probe": {"command": "true"}}}))
    return _real_cli(GEMINI, project.parent / "home", "mcp", "list")


@_needs(GEMINI, "Gemini CLI (@google/gemini-cli)")
def test_a_gemini_line_that_cannot_be_resolved_is_kept_as_written(project: Path) -> None:
    home = project.parent / "home"
    loop = project.parent / "loop1"
    loop.symlink_to(loop)  # (a loop of links: resolving it fails)
    rules = {str(loop): "TRUST_FOLDER", "a\0b": "TRUST_FOLDER", str(project): "TRUST_FOLDER"}
    _gemini_trust_file(home, json.dumps(rules))
    # (before: RuntimeError: Symlink loop, after the settings file was written)
    said = _warnings(home, "--client", "gemini", "--scope", "user", "--write")
    assert said == [], said
    probe = _gemini_starts_servers(project)
    assert "probe" in probe and "Disabled" not in probe, probe  # (Gemini CLI trusts it too)
    # the lines that cannot be resolved trust nothing, as for Gemini CLI
    del rules[str(project)]
    _gemini_trust_file(home, json.dumps(rules))
    (hint,) = _warnings(home, "--client", "gemini", "--scope", "user", "--write")
    assert hint.startswith("Gemini CLI does not trust this folder"), hint
    assert "Disabled" in _gemini_starts_servers(project)


@_needs(GEMINI, "Gemini CLI (@google/gemini-cli)")
@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("[1]", "it holds no JSON object"),
        ("{bad", "it is not valid JSON"),
        ("", "it is not valid JSON"),
        ('{"/tmp": "TRUST"}', '"/tmp": "TRUST" is no trust level'),
    ],
)
def test_a_gemini_trust_file_it_refuses_is_said_to_be_unusable(
    project: Path, content: str, why: str
) -> None:
    home = project.parent / "home"
    _gemini_trust_file(home, content)
    (hint,) = _warnings(home, "--client", "gemini", "--write")
    path = home / ".gemini" / "trustedFolders.json"
    assert hint.startswith(f"Gemini CLI cannot use its trusted folders file, {path}: {why}"), hint
    assert "it does not start at all" in hint and "add " not in hint, hint
    assert (project / ".gemini" / "settings.json").exists()  # (written all the same)
    assert "Please fix the configuration file" in _gemini_starts_servers(project)


def test_gemini_folders_compare_in_lower_case_on_macos_and_windows(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = project.parent / "home"
    _gemini_trust_file(home, json.dumps({str(project).upper(): "TRUST_FOLDER"}))
    assert len(_warnings(home, "--client", "gemini", "--write")) == 1  # (Linux: case counts)
    monkeypatch.setattr(_install, "_CASELESS_FOLDERS", True)  # (as on macOS and Windows)
    assert _warnings(home, "--client", "gemini", "--write") == []


# --- Claude Code's approval of a project's .mcp.json server ------------------------------


def _answer(home: Path, project: Path, settings: dict[str, object], *, trusted: bool) -> None:
    """Claude Code's answers as it keeps them: in the project's .claude/settings.local.json,
    and the project's trust in ~/.claude.json (what its dialogs write)."""
    local = project / ".claude" / "settings.local.json"
    local.parent.mkdir(exist_ok=True)
    local.write_text(json.dumps(settings))
    state_path = home / ".claude.json"
    state = json.loads(state_path.read_text())
    entry = state.setdefault("projects", {}).setdefault(str(project.resolve()), {})
    entry["hasTrustDialogAccepted"] = trusted
    state_path.write_text(json.dumps(state))


def _claude_starts(home: Path) -> str:
    """Which scope's ``swarm`` the real Claude Code starts here: "project" or "user"."""
    said = _real_cli(CLAUDE, home, "mcp", "get", "swarm")
    if "Scope: Project config" in said:
        return "project"
    assert "Scope: User config" in said, said
    return "user"


@_needs(CLAUDE, "Claude Code (@anthropic-ai/claude-code)")
@pytest.mark.parametrize(
    ("settings", "trusted"),
    [
        ({}, True),  # not asked yet
        ({"enabledMcpjsonServers": ["swarm"]}, True),
        ({"enabledMcpjsonServers": ["swarm"]}, False),  # (an untrusted project's: not read)
        ({"enableAllProjectMcpServers": True}, True),
        ({"disabledMcpjsonServers": ["swarm"]}, True),
    ],
)
def test_the_claude_code_warning_names_the_one_it_starts(
    project: Path, settings: dict[str, object], trusted: bool
) -> None:
    home = project.parent / "home"
    for scope in ("user", "project"):  # (the real CLI writes both)
        _real_cli(CLAUDE, home, "mcp", "add", "--scope", scope, "swarm", "--", "echo", scope)
    _answer(home, project, settings, trusted=trusted)
    started = _claude_starts(home)
    # installed at the user scope (printed only), the project's .mcp.json being the other
    (of_project,) = _warnings(home, "--client", "claude", "--scope", "user")
    # installed in the project's .mcp.json, the user scope's being the other
    (of_user,) = _warnings(home, "--client", "json")
    here, there = "starts the one installed here in this project", "starts that one in this project"
    if started == "project":
        assert there in of_project and here in of_user, (of_project, of_user)
    else:
        assert here in of_project and there in of_user, (of_project, of_user)
    # the one started now (or once approved) is never said to be one whose edit changes nothing
    for words, other in ((of_project, "project"), (of_user, "user")):
        assert "changes nothing here" not in words or started != other, words
        if "until" in words:  # (not approved yet)
            assert "changes nothing here" not in words, words
    if settings == {} or not trusted:  # (not approved yet: it asks, then starts the project's)
        assert "it asks as it starts here" in of_project and "it asks" in of_user
