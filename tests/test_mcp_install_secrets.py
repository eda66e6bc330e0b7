"""``swarm mcp install`` with a URL that holds a password: no client's configuration holds it
unless asked (--url-in-config: a user's file, made 0600, with a warning), and what is printed
masks it unless --show-secrets; a server told to take SWARM_URL from its client's environment
says so when the client did not have it."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from redis_swarm import ConfigError, Settings
from redis_swarm.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

PASSWORD = "PW-s3cret"
URL = f"rediss://legal-worker:{PASSWORD}@host.example:6380/0"


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    return tmp_path


def _install(*args: str, url: str = URL) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["mcp", "install", *args], env={"SWARM_URL": url})
    return result.exit_code, result.stdout, result.stderr


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_codex_forwards_the_variable_instead_of_writing_the_password(homes: Path) -> None:
    code, out, err = _install("--client", "codex", "--write")
    assert code == 0, err
    written = (homes / "codex" / "config.toml").read_text()
    assert PASSWORD not in written + out + err
    server = tomllib.loads(written)["mcp_servers"]["swarm"]
    assert server["env_vars"] == ["SWARM_URL"] and "SWARM_URL" not in server["env"]
    assert server["args"][-1] == "--url-from-env"
    assert 'env_vars = ["SWARM_URL"]' in err and "set SWARM_URL there" in err


@pytest.mark.parametrize("scope", ["user", "project"])
def test_gemini_refers_to_the_variable_in_every_scope(homes: Path, scope: str) -> None:
    code, out, err = _install("--client", "gemini", "--scope", scope, "--write")
    assert code == 0, err
    folder = homes / "home" if scope == "user" else homes
    written = (folder / ".gemini" / "settings.json").read_text()
    assert PASSWORD not in written + out + err
    env = json.loads(written)["mcpServers"]["swarm"]["env"]
    assert env["SWARM_URL"] == "${SWARM_URL}"


@pytest.mark.parametrize("scope", ["user", "local", "project"])
def test_claude_refers_to_the_variable_in_every_scope(homes: Path, scope: str) -> None:
    for args in ([], ["--json"]):
        result = CliRunner().invoke(
            main, [*args, "mcp", "install", "--client", "claude", "--scope", scope],
            env={"SWARM_URL": URL},
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert PASSWORD not in result.stdout + result.stderr
        assert "SWARM_URL=${SWARM_URL}" in result.stdout


def test_url_in_config_writes_a_new_file_0600_with_a_warning(homes: Path) -> None:
    code, out, err = _install("--client", "gemini", "--scope", "user", "--url-in-config", "--write")
    assert code == 0, err
    path = homes / "home" / ".gemini" / "settings.json"
    assert json.loads(path.read_text())["mcpServers"]["swarm"]["env"]["SWARM_URL"] == URL
    assert _mode(path) == 0o600
    assert f"warning: {path} holds the swarm's password" in err and "a new file" in err
    assert PASSWORD not in out + err


def test_url_in_config_tightens_an_existing_file(homes: Path) -> None:
    path = homes / "codex" / "config.toml"
    path.parent.mkdir()
    path.write_text('model = "o3"\n')
    path.chmod(0o644)
    code, _, err = _install("--client", "codex", "--url-in-config", "--write")
    assert code == 0, err
    parsed = tomllib.loads(path.read_text())
    assert parsed["model"] == "o3" and parsed["mcp_servers"]["swarm"]["env"]["SWARM_URL"] == URL
    assert _mode(path) == 0o600 and "tightened from 0644" in err
    # written again unchanged, a file loosened since is tightened again
    path.chmod(0o644)
    code, _, err = _install("--client", "codex", "--url-in-config", "--write")
    assert code == 0 and _mode(path) == 0o600, err


def test_printed_configuration_masks_the_password_unless_asked(homes: Path) -> None:
    for client in ("claude", "codex"):
        code, out, err = _install("--client", client, "--url-in-config")
        assert code == 0, err
        assert PASSWORD not in out + err and "legal-worker:***@" in out
        assert "add --show-secrets to print it" in err
        code, out, err = _install("--client", client, "--url-in-config", "--show-secrets")
        assert code == 0 and URL in out, err
    result = CliRunner().invoke(
        main, ["--json", "mcp", "install", "--client", "codex", "--url-in-config"],
        env={"SWARM_URL": URL},
    )  # fmt: skip
    assert result.exit_code == 0 and PASSWORD not in result.stdout
    assert "legal-worker:***@" in json.loads(result.stdout)["config"]
    assert not (homes / "codex").exists()  # printed, not written


def test_url_in_config_is_refused_for_a_projects_file(homes: Path) -> None:
    for args in (["--client", "json"], ["--client", "claude", "--scope", "project"]):
        code, _, err = _install(*args, "--url-in-config")
        assert code == 2 and "often committed" in err
    code, _, err = _install("--client", "codex", "--show-secrets")
    assert code == 2 and "--show-secrets is for --url-in-config" in err


def test_a_url_without_password_is_written_as_before(homes: Path) -> None:
    code, out, _ = _install("--client", "codex", url="redis://127.0.0.1:7777/0")
    server = tomllib.loads(out)["mcp_servers"]["swarm"]
    assert code == 0 and server["env"]["SWARM_URL"] == "redis://127.0.0.1:7777/0"
    assert "env_vars" not in server and "--url-from-env" not in server["args"]


@pytest.mark.parametrize("forwarded", ["", None], ids=["gemini-empty", "codex-absent"])
def test_the_server_refuses_to_start_without_the_forwarded_variable(
    forwarded: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gemini CLI fills an unset ${SWARM_URL} with "", Codex forwards nothing: the server
    would else serve the embedded swarm, not the one meant."""
    monkeypatch.delenv("SWARM_URL", raising=False)
    env = {} if forwarded is None else {"SWARM_URL": forwarded}
    result = CliRunner().invoke(main, ["mcp", "--url-from-env"], env=env)
    assert result.exit_code == 1
    assert "SWARM_URL is not set in the MCP server's environment" in result.stderr


def test_an_unfilled_reference_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Claude Code passes ``${SWARM_URL}`` on as written when SWARM_URL is unset, and the MCP
    Inspector always (it expands no variable): the error allows for both, and says how to
    give a client that does not expand it the URL itself."""
    says = r"^SWARM_URL is not set or not expanded: .*Inspector.*export SWARM_URL=.*-e SWARM_URL="
    with pytest.raises(ConfigError, match=says):
        Settings.from_url("${SWARM_URL}")
    result = CliRunner().invoke(main, ["mcp"], env={"SWARM_URL": "${SWARM_URL}"})
    assert result.exit_code == 2  # (a SWARM_URL that is no URL: a usage error)
    assert "SWARM_URL is not set" in result.stderr and "is not a Redis URL" not in result.stderr
