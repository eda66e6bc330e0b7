"""``swarm hooks install`` (issue 19.3): print or merge the hook entries into each client's
settings file; other hooks kept, a second install changes nothing, --remove takes back
exactly what it added."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from redis_swarm.mcp_server._install import swarm_command

from ._cli import Cli

FILES = {
    "claude": ".claude/settings.json",
    "codex": ".codex/hooks.json",
    "gemini": ".gemini/settings.json",
}
EVENTS = {
    "claude": {"SessionStart", "UserPromptSubmit", "Stop", "SubagentStart", "SubagentStop",
               "PreCompact", "SessionEnd"},
    "codex": {"SessionStart", "UserPromptSubmit", "Stop", "SubagentStart", "SubagentStop",
              "PreCompact", "SessionEnd"},
    "gemini": {"SessionStart", "BeforeAgent", "AfterAgent", "PreCompress", "SessionEnd"},
}  # fmt: skip
THEIRS = {
    "model": "keep-me",
    "hooks": {
        "Stop": [{"matcher": "", "hooks": [{"type": "command", "command": "notify-send done"}]}],
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "lint"}]}],
    },
}


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    monkeypatch.chdir(tmp_path)
    return Cli("redis://127.0.0.1:1/0", swarm="team")


def _commands(data: dict[str, object]) -> list[str]:
    hooks = data.get("hooks", {})
    assert isinstance(hooks, dict)
    return [h["command"] for groups in hooks.values() for g in groups for h in g["hooks"]]


@pytest.mark.parametrize("client", ["claude", "codex", "gemini"])
def test_print_write_again_and_remove(cli: Cli, tmp_path: Path, client: str) -> None:
    path = tmp_path / FILES[client]
    path.parent.mkdir()
    original = json.dumps(THEIRS, indent=4) + "\n"
    if client != "codex":  # Codex's hooks.json holds hooks only
        path.write_text(original)
    args = ("hooks", "install", "--client", client, "--queue", "q", "--loop", "--max-tasks", "5",
            "--budget", "1500")  # fmt: skip
    printed = cli(*args)
    assert FILES[client] in printed.stderr
    shown = json.loads(printed.stdout)
    ours = [c for c in _commands(shown) if " hook " in c]
    assert len(ours) == len(EVENTS[client])
    assert set(shown["hooks"]) >= EVENTS[client]
    line = shlex.split(ours[0])
    assert line[: len(swarm_command())] == swarm_command()
    assert line[len(swarm_command()) :][:4] == ["--url", "redis://127.0.0.1:1/0", "--swarm", "team"]
    assert {"--client", client, "--loop", "--max-tasks", "5", "--queue", "q"} <= set(line)
    assert line[line.index("--budget") + 1] == "1500"
    assert (path.read_text() if path.exists() else None) == (
        original if client != "codex" else None
    )  # printing writes nothing

    cli(*args, "--write")
    written = path.read_text()
    data = json.loads(written)
    assert data == shown
    if client != "codex":
        assert data["model"] == "keep-me" and "notify-send done" in _commands(data)
    group = data["hooks"]["SessionStart"][-1]
    hook = group["hooks"][0]
    assert hook["timeout"] == (30_000 if client == "gemini" else 30)
    # a session's end is given 3 s (Codex clamps a longer one, Claude Code waits 1.5 s)
    (end,) = data["hooks"]["SessionEnd"][-1]["hooks"]
    assert end["timeout"] == (3_000 if client == "gemini" else 3)
    assert ("matcher" in group) == (client != "codex")
    assert cli(*args, "--write").stderr.endswith("nothing to change\n")
    assert path.read_text() == written
    # other options replace ours, never add a second set
    cli("hooks", "install", "--client", client, "--queue", "other", "--write")
    again = [c for c in _commands(json.loads(path.read_text())) if " hook " in c]
    assert len(again) == len(EVENTS[client]) and all("other" in c for c in again)

    cli("hooks", "install", "--client", client, "--remove")
    if client == "codex":
        assert not path.exists()
    else:
        assert json.loads(path.read_text()) == THEIRS
    assert cli("hooks", "install", "--client", client, "--remove").stderr.endswith(
        "nothing to change\n"
    )


def test_user_scope_and_bad_files(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    cli("hooks", "install", "--client", "claude", "--scope", "user", "--write")
    assert "Stop" in json.loads((home / ".claude/settings.json").read_text())["hooks"]
    bad = tmp_path / ".gemini/settings.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    out = cli("hooks", "install", "--client", "gemini", "--write", expect=1)
    assert "not valid JSON" in out.stderr and bad.read_text() == "{not json"
    cli("hooks", "install", "--client", "gemini", "--write", "--remove", expect=2)


def test_a_bad_queue_name_is_refused(cli: Cli, tmp_path: Path) -> None:
    """Every event would hand the session a command with it: refused at install."""
    out = cli("hooks", "install", "--client", "claude", "--queue", "bad q", "--write", expect=2)
    assert "queue 'bad q'" in out.stderr and "use only" in out.stderr
    assert not (tmp_path / FILES["claude"]).exists()


def test_entries_keep_a_password_out_and_carry_the_home(cli: Cli, tmp_path: Path) -> None:
    """A settings file is often shared: a URL's password stays out of it (each hook reads
    SWARM_URL from the session's environment), and the home is written, or the hooks would
    reach another embedded server and another store of lease tokens."""
    home = tmp_path / "swarm-home"
    env = {"SWARM_URL": "redis://:s3cret@127.0.0.1:1/0", "SWARM_HOME": str(home)}
    out = cli("hooks", "install", "--client", "claude", env=env)
    assert "s3cret" not in out.stdout and "SWARM_URL" in out.stderr
    line = _hook_line(out.stdout)
    assert "--url" not in line and line[line.index("--home") + 1] == str(home)
    embedded = cli("hooks", "install", "--client", "claude", env={**env, "SWARM_URL": "embedded"})
    line = _hook_line(embedded.stdout)
    assert line[line.index("--url") + 1] == "embedded"
    assert line[line.index("--home") + 1] == str(home)


def _hook_line(printed: str) -> list[str]:
    return shlex.split(next(c for c in _commands(json.loads(printed)) if " hook " in c))
