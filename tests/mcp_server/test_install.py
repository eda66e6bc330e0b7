"""``swarm mcp install``: the configuration printed or written for each MCP client."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from redis_swarm import ConfigError
from redis_swarm._config import DEFAULT_HOME
from redis_swarm.cli import main
from redis_swarm.mcp_server._codex_toml import merge_toml
from redis_swarm.mcp_server._install import (
    claude_command,
    codex_toml,
    gemini_settings,
    launch_spec,
    mcp_json,
    merge_json,
    swarm_command,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def test_swarm_command_is_absolute() -> None:
    argv = swarm_command()
    assert Path(argv[0]).is_absolute()
    assert os.access(argv[0], os.X_OK)


def test_launch_spec() -> None:
    spec = launch_spec(
        url="redis://h:1/0",
        swarm="team",
        role="worker",
        agent_name="w1",
        budget=6000,
        home=Path("/tmp/h"),
        command=["/abs/swarm"],
    )
    assert spec.command == "/abs/swarm"
    assert spec.args == ["mcp", "--role", "worker", "--name", "w1", "--budget", "6000"]
    assert spec.env == {"SWARM_URL": "redis://h:1/0", "SWARM_NAME": "team", "SWARM_HOME": "/tmp/h"}
    python = launch_spec(url="embedded", swarm="s", command=["/py", "-m", "redis_swarm"])
    assert python.argv == ["/py", "-m", "redis_swarm", "mcp", "--role", "all"]
    with pytest.raises(ConfigError, match="server name"):
        launch_spec(url="embedded", swarm="s", server_name="bad name")


def test_claude_command_puts_the_name_before_the_variadic_env() -> None:
    spec = launch_spec(url="embedded", swarm="s", role="shard", command=["/abs/swarm"])
    argv = claude_command(spec, scope="project")
    assert argv[:4] == ["claude", "mcp", "add", "swarm"]
    assert argv[argv.index("--scope") + 1] == "project"
    assert argv[argv.index("-e") : argv.index("-e") + 2] == ["-e", "SWARM_URL=embedded"]
    assert argv[argv.index("--") + 1 :] == ["/abs/swarm", "mcp", "--role", "shard"]


def test_codex_table_is_valid_toml() -> None:
    spec = launch_spec(url='redis://u:p"w@h/0', swarm="s", command=["/abs/swarm"])
    parsed = tomllib.loads(codex_toml(spec))
    server = parsed["mcp_servers"]["swarm"]
    assert server["command"] == "/abs/swarm"
    assert server["args"] == ["mcp", "--role", "all"]
    assert server["env"] == {
        "SWARM_URL": 'redis://u:p"w@h/0',
        "SWARM_NAME": "s",
        "SWARM_HOME": str(DEFAULT_HOME),
    }
    assert server["tool_timeout_sec"] >= 300


def test_merge_toml_replaces_only_our_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        'model = "o3"\n\n[mcp_servers.swarm]\ncommand = "old"\n\n[mcp_servers.swarm.env]\n'
        'X = "1"\n\n[mcp_servers.other]\ncommand = "keep"\n'
    )
    spec = launch_spec(url="embedded", swarm="s", command=["/abs/swarm"])
    merge_toml(path, "mcp_servers.swarm", codex_toml(spec))
    merge_toml(path, "mcp_servers.swarm", codex_toml(spec))  # idempotent
    parsed = tomllib.loads(path.read_text())
    assert parsed["model"] == "o3"
    assert parsed["mcp_servers"]["other"] == {"command": "keep"}
    assert parsed["mcp_servers"]["swarm"]["command"] == "/abs/swarm"
    assert parsed["mcp_servers"]["swarm"]["env"] == {
        "SWARM_URL": "embedded",
        "SWARM_NAME": "s",
        "SWARM_HOME": str(DEFAULT_HOME),
    }


def test_json_configs_and_merge(tmp_path: Path) -> None:
    spec = launch_spec(url="embedded", swarm="s", command=["/abs/swarm"])
    assert mcp_json(spec)["mcpServers"]["swarm"]["type"] == "stdio"
    assert gemini_settings(spec)["mcpServers"]["swarm"]["timeout"] >= 300_000
    path = tmp_path / ".gemini" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"theme": "dark", "mcpServers": {"other": {"command": "x"}}}))
    merge_json(path, gemini_settings(spec))
    data = json.loads(path.read_text())
    assert data["theme"] == "dark"
    assert set(data["mcpServers"]) == {"other", "swarm"}
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        merge_json(path, gemini_settings(spec))


def _invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args, env=env or {})
    return result.exit_code, result.stdout, result.stderr


def test_cli_prints_each_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWARM_HOME")  # the default home (conftest gives each test its own)
    env = {"SWARM_URL": "redis://127.0.0.1:7777/0", "SWARM_NAME": "team"}
    code, out, err = _invoke(["mcp", "install", "--client", "json", "--role", "worker"], env)
    assert code == 0, err
    server = json.loads(out)["mcpServers"]["swarm"]
    assert Path(server["command"]).is_absolute()
    assert server["args"][-3:] == ["mcp", "--role", "worker"]
    assert server["env"] == {  # the default home too: the client's environment may name another
        "SWARM_URL": "redis://127.0.0.1:7777/0",
        "SWARM_NAME": "team",
        "SWARM_HOME": str(DEFAULT_HOME),
    }
    assert ".mcp.json" in err
    assert not (tmp_path / ".mcp.json").exists()  # printed, not written

    code, out, _ = _invoke(["mcp", "install", "--client", "claude"], env)
    assert code == 0 and out.startswith("claude mcp add swarm --scope user")
    code, out, _ = _invoke(["mcp", "install", "--client", "codex"], env)
    assert code == 0 and tomllib.loads(out)["mcp_servers"]["swarm"]["env"]["SWARM_NAME"] == "team"
    code, out, _ = _invoke(["--json", "mcp", "install", "--client", "gemini"], env)
    assert code == 0
    report = json.loads(out)
    assert report["written"] is False and report["target"].endswith(".gemini/settings.json")
    assert report["config"]["mcpServers"]["swarm"]["env"]["SWARM_URL"].startswith("redis://")


def test_cli_writes_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"CODEX_HOME": str(tmp_path / "codex"), "SWARM_NAME": "team"}
    assert _invoke(["mcp", "install", "--client", "json", "--write"], env)[0] == 0
    assert json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]["swarm"]
    assert _invoke(["mcp", "install", "--client", "gemini", "--write"], env)[0] == 0
    assert json.loads((tmp_path / ".gemini/settings.json").read_text())["mcpServers"]["swarm"]
    assert _invoke(["mcp", "install", "--client", "codex", "--write"], env)[0] == 0
    codex = tomllib.loads((tmp_path / "codex/config.toml").read_text())
    assert codex["mcp_servers"]["swarm"]["env"]["SWARM_NAME"] == "team"


def _fake_claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `claude` on PATH that records its arguments, one call a line, in the file returned."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    fake = bin_dir / "claude"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_cli_write_claude_runs_claude_mcp_add(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--write with claude runs `claude mcp remove` then `claude mcp add` (a recording fake)."""
    log = _fake_claude(tmp_path, monkeypatch)
    code, _, err = _invoke(["mcp", "install", "--client", "claude", "--write", "--scope", "local"])
    assert code == 0, err
    calls = log.read_text().splitlines()
    assert calls[0] == "mcp remove swarm --scope local"
    assert calls[1].startswith("mcp add swarm --scope local --transport stdio -e SWARM_URL=")


def test_cli_write_claude_without_claude_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    code, _, err = _invoke(["mcp", "install", "--client", "claude", "--write"])
    assert code == 1
    assert "not on PATH" in err and "--client json" in err


def test_http_server_configs_carry_the_token_the_clients_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = "http://10.1.2.3:8765/mcp"
    code, out, err = _invoke(["mcp", "install", "--client", "codex", "--http", url])
    assert code == 0, err
    codex = tomllib.loads(out)["mcp_servers"]["swarm"]
    assert codex["url"] == url and codex["bearer_token_env_var"] == "SWARM_MCP_TOKEN"
    assert "command" not in codex
    code, out, _ = _invoke(["mcp", "install", "--client", "gemini", "--http", url])
    gemini = json.loads(out)["mcpServers"]["swarm"]
    assert gemini["httpUrl"] == url
    assert gemini["headers"] == {"Authorization": "Bearer ${SWARM_MCP_TOKEN}"}
    code, out, _ = _invoke(["mcp", "install", "--client", "json", "--http", url, "--no-token"])
    assert json.loads(out)["mcpServers"]["swarm"] == {"type": "http", "url": url}
    code, out, _ = _invoke(["mcp", "install", "--client", "claude", "--http", url])
    assert out.strip() == (
        f"claude mcp add swarm --scope user --transport http {url} "
        "--header 'Authorization: Bearer ${SWARM_MCP_TOKEN}'"
    )  # (the reference, which Claude Code expands as it connects; not the shell's)
    code, _, err = _invoke(["mcp", "install", "--client", "codex", "--http", "ftp://x"])
    assert code != 0 and "not an http(s) URL" in err


def test_cli_write_claude_http_expands_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --token-in-config (else the reference is written: test_walk5_ask_install.py)."""
    log = _fake_claude(tmp_path, monkeypatch)
    args = ["mcp", "install", "--client", "claude", "--write", "--http", "http://h:1/mcp",
            "--token-in-config"]  # fmt: skip
    code, _, err = _invoke(args)
    assert code == 1 and "SWARM_MCP_TOKEN is not set" in err
    code, _, err = _invoke(args, {"SWARM_MCP_TOKEN": "tok"})
    assert code == 0, err
    assert log.read_text().splitlines()[-1].endswith("--header Authorization: Bearer tok")


def test_token_options_are_checked_before_serving() -> None:
    # (usage errors: exit 2, as every bad option's)
    code, _, err = _invoke(["mcp", "--token", "x"])
    assert code == 2 and "--token is for --transport http" in err
    code, _, err = _invoke(["mcp", "--transport", "http", "--token", " "])
    assert code == 2 and "is empty" in err


def test_channel_launch_and_its_options() -> None:
    """`swarm mcp install --channel --watch-queue Q` launches `swarm mcp --channel ...`; the
    channel options are refused where they mean nothing, before anything is served."""
    spec = launch_spec(url="embedded", swarm="s", command=["/abs/swarm"], channel=("a", "b"))
    assert spec.args == ["mcp", "--role", "all", "--channel", "--watch-queue", "a",
                         "--watch-queue", "b"]  # fmt: skip
    assert (
        launch_spec(url="embedded", swarm="s", command=["/x"], channel=()).args[-1] == "--channel"
    )
    code, out, err = _invoke(["mcp", "install", "--client", "json", "--channel", "--json"])
    assert code == 0, err
    assert json.loads(out)["config"]["mcpServers"]["swarm"]["args"][-1] == "--channel"
    for args, says in (
        (["mcp", "--watch-queue", "q"], "--watch-queue is for --channel"),
        (["mcp", "--channel", "--transport", "http"], "--channel is for stdio"),
        (["mcp", "install", "--client", "json", "--watch-queue", "q"], "is for --channel"),
        (["mcp", "install", "--client", "json", "--channel", "--http", "http://h:1/mcp"],
         "not --http"),
        (["mcp", "install", "--client", "codex", "--channel"], "a Claude Code feature, codex"),
        (["mcp", "install", "--client", "gemini", "--channel"], "a Claude Code feature, gemini"),
    ):  # fmt: skip
        code, _, err = _invoke(args)
        assert code == 2 and says in err, err
    # the watched queues are checked before anything starts or is written
    many = [arg for i in range(65) for arg in ("--watch-queue", f"q{i}")]
    for args, says, exit_code in (
        (["mcp", "--channel", "--watch-queue", "bad name"], "queue 'bad name' contains ' '", 2),
        (["mcp", "install", "--client", "json", "--channel", "--watch-queue", "a/b"],
         "queue 'a/b' contains '/'", 2),
        (["mcp", "--channel", *many], "--watch-queue got 65 queues; the limit is 64", 2),
    ):  # fmt: skip
        code, _, err = _invoke(args)
        assert code == exit_code and says in err, err


def test_the_server_refuses_to_start_without_redis(tmp_path: Path) -> None:
    """An unreachable Redis stops `swarm mcp` at once (exit 1, the reason on stderr), so the
    client that starts it (claude mcp list) says it failed, instead of connected tools that
    all fail."""
    dead = tmp_path / "no-server.sock"
    result = CliRunner().invoke(
        main, ["--url", f"unix://{dead}", "mcp", "--role", "worker"], input=""
    )
    assert result.exit_code == 1, result.output
    assert "error:" in result.stderr and str(dead) in result.stderr


def test_a_password_stays_out_of_a_projects_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """.mcp.json and a project's .gemini/settings.json are often committed: a URL's password
    stays out of them (``${SWARM_URL}``, which Claude Code and Gemini CLI fill from their
    environment); a user's configuration too, unless --url-in-config."""
    monkeypatch.chdir(tmp_path)
    env = {"SWARM_URL": "redis://:s3cret@127.0.0.1:7777/0"}
    for client in ("json", "gemini"):
        code, out, err = _invoke(["mcp", "install", "--client", client], env)
        assert code == 0, err
        assert "s3cret" not in out and "SWARM_URL there" in err
        assert json.loads(out)["mcpServers"]["swarm"]["env"]["SWARM_URL"] == "${SWARM_URL}"
    code, out, _ = _invoke(["mcp", "install", "--client", "claude", "--scope", "project"], env)
    assert code == 0 and "'SWARM_URL=${SWARM_URL}'" in out and "s3cret" not in out
    code, out, _ = _invoke(["mcp", "install", "--client", "claude"], env)  # ~/.claude.json
    assert code == 0 and "'SWARM_URL=${SWARM_URL}'" in out and "s3cret" not in out


def test_remove_takes_back_exactly_what_install_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`swarm mcp install --remove`: our entry out of each client's file (the rest kept, a
    file holding nothing else deleted), `claude mcp remove` for Claude Code; twice changes
    nothing."""
    monkeypatch.chdir(tmp_path)
    env = {"CODEX_HOME": str(tmp_path / "codex")}
    theirs = {"mcpServers": {"other": {"command": "x"}}, "theme": "dark"}
    gemini = tmp_path / ".gemini" / "settings.json"
    gemini.parent.mkdir()
    gemini.write_text(json.dumps(theirs))
    codex = tmp_path / "codex" / "config.toml"
    codex.parent.mkdir()
    codex.write_text('model = "o3"\n\n[mcp_servers.other]\ncommand = "x"\n')
    for client in ("json", "gemini", "codex"):
        assert _invoke(["mcp", "install", "--client", client, "--write"], env)[0] == 0
    for client in ("json", "gemini", "codex"):
        code, _, err = _invoke(["mcp", "install", "--client", client, "--remove"], env)
        assert code == 0 and "removed swarm from" in err, err
        again = _invoke(["mcp", "install", "--client", client, "--remove"], env)[2]
        assert again.endswith("nothing to change\n"), again
    assert not (tmp_path / ".mcp.json").exists()
    assert json.loads(gemini.read_text()) == theirs
    assert tomllib.loads(codex.read_text()) == {"model": "o3", "mcp_servers": {"other": {
        "command": "x"}}}  # fmt: skip

    log = _fake_claude(tmp_path, monkeypatch)
    code, _, err = _invoke(["mcp", "install", "--client", "claude", "--remove"])
    assert code == 0 and log.read_text() == "mcp remove swarm --scope user\n"
    code, _, err = _invoke(["mcp", "install", "--client", "json", "--write", "--remove"])
    assert code == 2 and "choose one" in err


def test_a_scope_a_client_does_not_have_is_refused() -> None:
    code, _, err = _invoke(["mcp", "install", "--client", "codex", "--scope", "user"])
    assert code == 2 and "codex has one file" in err
    code, _, err = _invoke(["mcp", "install", "--client", "gemini", "--scope", "local"])
    assert code == 2 and "gemini has project or user" in err
