"""What ``swarm hooks install`` and ``swarm mcp install`` print, as a terminal shows it (real
processes, every byte): without --write the file (or command), ending with a newline; with
--write only the line saying what was written where (docs/live.md, docs/mcp.md)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ._cli import SRC

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

URL = "redis://127.0.0.1:1/0"  # installing reaches no server


def _swarm(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    """``swarm ARGS`` as a real process in ``cwd``, its HOME under it, no swarm of the
    developer's; ``env`` added."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    base |= {"HOME": str(cwd / "home"), "PYTHONPATH": SRC, "SWARM_URL": URL}
    done = subprocess.run(
        [sys.executable, "-m", "redis_swarm", *args],
        env={**base, **(env or {})},
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == expect, done
    return done


@pytest.mark.parametrize(
    ("client", "file"),
    [("claude", ".claude/settings.json"), ("codex", ".codex/hooks.json"),
     ("gemini", ".gemini/settings.json")],
)  # fmt: skip
def test_hooks_install_prints_the_file_or_only_where_it_wrote_it(
    tmp_path: Path, client: str, file: str
) -> None:
    path = tmp_path / file
    args = ["hooks", "install", "--client", client, "--queue", "review", "--loop"]
    shown = _swarm(args, tmp_path)
    assert shown.stdout.endswith("}\n") and json.loads(shown.stdout)["hooks"]
    assert shown.stderr == f"# {client}: goes in {path} (--write merges it)\n"
    assert not path.exists()

    written = _swarm([*args, "--write"], tmp_path)
    assert (written.stdout, written.stderr) == ("", f"written to {path}\n")
    assert json.loads(path.read_text()) == json.loads(shown.stdout)
    again = _swarm([*args, "--write"], tmp_path)
    assert (again.stdout, again.stderr) == ("", f"{path}: nothing to change\n")
    removed = _swarm(["hooks", "install", "--client", client, "--remove"], tmp_path)
    assert (removed.stdout, removed.stderr) == ("", f"removed from {path}\n")


@pytest.mark.parametrize("client", ["json", "gemini", "codex"])
def test_mcp_install_prints_the_file_or_only_where_it_wrote_it(tmp_path: Path, client: str) -> None:
    codex_home = tmp_path / "codex"
    path = {"json": tmp_path / ".mcp.json", "gemini": tmp_path / ".gemini/settings.json",
            "codex": codex_home / "config.toml"}[client]  # fmt: skip
    args = ["mcp", "install", "--client", client, "--role", "worker"]
    env = {"CODEX_HOME": str(codex_home), "GEMINI_CLI_TRUST_WORKSPACE": "true"}  # (trusted)
    shown = _swarm(args, tmp_path, env)
    assert shown.stdout.endswith("\n") and not shown.stdout.endswith("\n\n")
    parsed = tomllib.loads(shown.stdout) if client == "codex" else json.loads(shown.stdout)
    assert parsed["mcp_servers" if client == "codex" else "mcpServers"]["swarm"]
    assert shown.stderr == f"# {client}: goes in {path} (--write merges it)\n"
    assert not path.exists()

    written = _swarm([*args, "--write"], tmp_path, env)
    assert (written.stdout, written.stderr) == ("", f"written to {path}\n")
    assert path.read_text().rstrip("\n") == shown.stdout.rstrip("\n")
    if client != "codex":  # (its table is written again in place)
        again = _swarm([*args, "--write"], tmp_path, env)
        assert (again.stdout, again.stderr) == ("", f"{path}: nothing to change\n")


def test_mcp_install_for_claude_says_what_it_ran(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "claude"
    fake.write_text('#!/bin/sh\n[ "$2" = remove ] && exit 1\nexit 0\n')  # (it has no server)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    path = f"{bindir}{os.pathsep}{os.environ['PATH']}"
    args = ["mcp", "install", "--client", "claude", "--role", "worker"]
    shown = _swarm(args, tmp_path, {"PATH": path})
    assert shown.stdout.startswith("claude mcp add swarm ") and shown.stdout.endswith("\n")
    assert shown.stderr == (
        "# claude: nothing was installed: run it in a shell, or add --write to install it\n"
    )
    written = _swarm([*args, "--write", "--scope", "project"], tmp_path, {"PATH": path})
    assert written.stdout == ""
    assert written.stderr == "added swarm to Claude Code's project scope (claude mcp add)\n"


@pytest.mark.parametrize("client", ["codex", "json"])
def test_a_scope_of_a_client_with_one_file_names_the_file(tmp_path: Path, client: str) -> None:
    codex_home = tmp_path / "codex"
    path = codex_home / "config.toml" if client == "codex" else tmp_path / ".mcp.json"
    refused = _swarm(
        ["mcp", "install", "--client", client, "--scope", "user"], tmp_path,
        {"CODEX_HOME": str(codex_home)}, expect=2,
    )  # fmt: skip
    assert f"--scope user: {client} has one file, {path}: leave --scope out" in refused.stderr
