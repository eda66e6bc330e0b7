"""``swarm mcp install --write`` over an entry of the same name says it replaced it, and what
it was (before, a second install with other options replaced the first one silently, saying
``added``); without --write it says that nothing was installed."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from redis_swarm.cli import main
from redis_swarm.mcp_server._install import describe_entry

from .test_clients import BIN, CLAUDE, _needs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

URL = "redis://:s3cret@127.0.0.1:1/0"  # installing reaches no server; its password is never said


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project folder the installs run in (a git checkout), HOME and CODEX_HOME beside it."""
    folder = tmp_path / "work"
    (folder / ".git").mkdir(parents=True)
    monkeypatch.chdir(folder)
    return folder


def _run(work: Path, *args: str) -> Result:
    """``swarm ARGS`` (in ``work``, HOME its own, the real claude first on PATH), which must
    succeed without saying the URL's password."""
    env = {
        "HOME": str(work.parent / "home"),
        "CODEX_HOME": str(work.parent / "codex"),
        "CLAUDE_CONFIG_DIR": None,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "SWARM_URL": URL,
        "SWARM_NAME": "team",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    return result


def _install(work: Path, *args: str) -> str:
    """``swarm mcp install ARGS``: the last line it says on stderr (the one before says the
    URL's password stays out)."""
    return _run(work, "mcp", "install", *args).stderr.splitlines()[-1]


def _replaced(work: Path, *args: str) -> object:
    """``swarm --json mcp install ARGS``: what its JSON says it replaced."""
    data = json.loads(_run(work, "--json", "mcp", "install", *args).stdout)
    assert data["written"] is ("--write" in args)
    return data["replaced"]


@pytest.mark.parametrize("client", ["json", "gemini", "codex"])
def test_a_file_s_entry_replaced_is_named(work: Path, client: str) -> None:
    path = {"json": work / ".mcp.json", "gemini": work / ".gemini/settings.json",
            "codex": work.parent / "codex/config.toml"}[client]  # fmt: skip
    first = _install(work, "--client", client, "--role", "worker", "--write")
    assert first == f"written to {path}"
    again = _install(work, "--client", client, "--role", "shard", "--name", "lib", "--write")
    assert again == (
        f"replaced swarm in {path}: it was swarm mcp --role worker --url-from-env, swarm team"
    )
    text = path.read_text()
    servers = (
        tomllib.loads(text)["mcp_servers"] if client == "codex" else json.loads(text)["mcpServers"]
    )
    assert servers["swarm"]["args"][-5:] == ["--role", "shard", "--name", "lib", "--url-from-env"]


def test_what_an_install_replaces_is_said_even_when_it_is_not_ours(work: Path) -> None:
    theirs = {"mcpServers": {"swarm": {"command": "node", "args": ["x.js"]}}}
    (work / ".mcp.json").write_text(json.dumps(theirs))
    said = _install(work, "--client", "json", "--write")
    assert said == f"replaced swarm in {work / '.mcp.json'}: it was node x.js"
    gemini = work / ".gemini" / "settings.json"
    gemini.parent.mkdir()
    gemini.write_text('{"theme": "dark", "mcpServers": {"swarm": "broken"}}')
    said = _install(work, "--client", "gemini", "--write")
    assert said == f"replaced swarm in {gemini}: it was settings that could not be read"
    assert json.loads(gemini.read_text())["theme"] == "dark"
    # (a Codex file that is no TOML is refused, unchanged: tests/test_vendor_tour_fixes.py)


def test_an_entry_replaced_never_shows_a_password() -> None:
    ours = {"command": "/x/swarm", "args": ["mcp", "--role", "all"],
            "env": {"SWARM_URL": URL, "SWARM_NAME": "team"}}  # fmt: skip
    assert describe_entry(ours) == "swarm mcp --role all, swarm team"
    remote = {"type": "http", "url": "http://me:pw@h:8765/mcp", "headers": {"A": "Bearer t"}}
    assert describe_entry(remote) == "the HTTP server at http://h:8765/mcp"
    # a URL among the arguments (an older install's --url, another server's own option)
    theirs = {"command": "node", "args": ["srv.js", "--url", "redis://u:s3cret@h:6379/0"]}
    assert describe_entry(theirs) == "node srv.js --url 'redis://***@h:6379/0'"
    older = {"command": "/x/swarm", "args": ["mcp", "--url", "rediss://:s3cret@h/0"]}
    assert "s3cret" not in describe_entry(older)
    # a password may hold '/' or '@' (percent-encoding aside): all before the last '@' goes
    for url in ("redis://u:pa/ss@h:6379", "redis://u:p@ss@h:6379"):
        said = describe_entry({"command": "node", "args": ["srv.js", "--url", url]})
        assert said == "node srv.js --url 'redis://***@h:6379'", said


@_needs(CLAUDE, "Claude Code (@anthropic-ai/claude-code)")
@pytest.mark.parametrize("scope", ["user", "local", "project"])
def test_claude_code_s_entry_replaced_is_named(work: Path, scope: str) -> None:
    """The real `claude` CLI: its files (``~/.claude.json``, the local scope keyed by the
    git checkout; ``.mcp.json``) say what the entry was before it is replaced."""
    where = f"Claude Code's {scope} scope"
    args = ["--client", "claude", "--scope", scope, "--write"]
    assert _install(work, *args) == f"added swarm to {where} (claude mcp add)"
    said = _install(work, *args, "--role", "shard", "--budget", "6000")
    assert said == (
        f"replaced swarm in {where} (claude mcp remove, then add): it was swarm mcp --role all "
        "--url-from-env, swarm team"
    )
    said = _install(work, *args, "--role", "shard", "--budget", "6000")
    assert said.endswith("(claude mcp remove, then add): it had the same settings"), said


def test_claude_without_write_says_nothing_was_installed(work: Path) -> None:
    said = _install(work, "--client", "claude")
    assert (
        said == "# claude: nothing was installed: run it in a shell, or add --write to install it"
    )


@pytest.mark.parametrize("client", ["json", "gemini", "codex"])
def test_json_says_what_a_file_s_entry_replaced_was(work: Path, client: str) -> None:
    """--json says what the line says (before, only ``written``: a replaced entry passed
    unseen by a script), the Redis URL's password never."""
    path = {"json": work / ".mcp.json", "gemini": work / ".gemini/settings.json",
            "codex": work.parent / "codex/config.toml"}[client]  # fmt: skip
    assert _replaced(work, "--client", client, "--role", "worker", "--write") is None
    assert _replaced(work, "--client", client, "--role", "shard", "--write") == {
        "where": str(path),
        "was": "swarm mcp --role worker --url-from-env, swarm team",
        "same_settings": False,
    }
    # the same install again changes nothing: nothing replaced, as the line says
    assert _replaced(work, "--client", client, "--role", "shard", "--write") is None
    assert _replaced(work, "--client", client, "--role", "worker") is None  # (not written)


def test_json_says_an_entry_that_could_not_be_read_was_replaced(work: Path) -> None:
    held = work / ".mcp.json"
    held.write_text('{"mcpServers": {"swarm": ["broken"]}}')
    assert _replaced(work, "--client", "json", "--write") == {
        "where": str(held),
        "was": "settings that could not be read",
        "same_settings": False,
    }


@_needs(CLAUDE, "Claude Code (@anthropic-ai/claude-code)")
def test_json_says_what_claude_code_s_entry_replaced_was(work: Path) -> None:
    args = ["--client", "claude", "--scope", "local", "--write"]
    assert _replaced(work, *args) is None
    where = "Claude Code's local scope"
    assert _replaced(work, *args, "--role", "shard") == {
        "where": where, "was": "swarm mcp --role all --url-from-env, swarm team",
        "same_settings": False,
    }  # fmt: skip
    assert _replaced(work, *args, "--role", "shard") == {
        "where": where, "was": "swarm mcp --role shard --url-from-env, swarm team",
        "same_settings": True,
    }  # fmt: skip
