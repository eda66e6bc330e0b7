"""Options of `swarm mcp`, `swarm mcp install`, `swarm hook` and `swarm hooks install` that
would do harm or nothing are refused before anything starts or is written (a tour with the
real clients found each accepted): an --http URL carrying a password or a ``?token=`` (written
in clear into a client's file, and never read by the server), an agent id the core refuses
(the server started, then failed every tool, blaming the model), a hook role the MCP server
does not take, and an option given without the one it works with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from redis_swarm import Swarm, ValidationError
from redis_swarm.cli import main
from redis_swarm.mcp_server import AGENT_ROLES, build_server

from ._cli import run_swarm, subprocess_env

SECRET_URL = "http://user:sekret-PW9@127.0.0.1:8799/mcp?token=tok-Q7Z&x=1"


def _invoke(*args: str, env: dict[str, str] | None = None, input: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env or {}, input=input)
    return result.exit_code, result.stderr


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    return tmp_path


@pytest.mark.parametrize("client", ["json", "gemini", "claude", "codex"])
def test_an_http_url_carrying_a_secret_is_refused(in_tmp: Path, client: str) -> None:
    """Neither the password nor the ?token= reaches a file or the terminal: the install says
    to pass the URL bare and the token as the bearer token's variable (exit 2)."""
    write = [] if client == "claude" else ["--write"]  # (claude: printed, refused all the same)
    code, err = _invoke("mcp", "install", "--client", client, "--http", SECRET_URL, *write)
    assert code == 2, err
    assert "a user and password and a ?token= parameter" in err
    assert "http://127.0.0.1:8799/mcp?x=1" in err  # the URL to pass instead
    assert "Authorization: Bearer" in err and "--token-env VAR" in err
    assert "sekret-PW9" not in err and "tok-Q7Z" not in err
    assert not list(in_tmp.rglob("*.json")) and not list(in_tmp.rglob("*.toml"))
    for url, says in (
        ("http://127.0.0.1:8799/mcp?TOKEN=t", "carries a ?token= parameter"),
        ("https://me@host.example/mcp", "carries a user and password"),
    ):
        code, err = _invoke("mcp", "install", "--client", client, "--http", url)
        assert code == 2 and says in err, err
    code, err = _invoke("mcp", "install", "--client", "json", "--http", "http://h:1/mcp?x=1")
    assert code == 0, err  # (another query is the server's business)


def test_a_bad_agent_id_is_refused_at_install(in_tmp: Path) -> None:
    code, err = _invoke("mcp", "install", "--client", "json", "--name", "bad name", "--write")
    assert code == 2 and "--name 'bad name' contains ' '" in err, err
    assert not (in_tmp / ".mcp.json").exists()


def test_a_bad_agent_id_is_refused_when_the_server_starts(
    redis_url: str, swarm_home: Path, tmp_path: Path
) -> None:
    """A real `swarm mcp` process on a real server: refused before it serves (exit 2, the
    option or variable named), where it served tools that all failed; nothing registered."""
    env = {**subprocess_env(redis_url, "test", tmp_path / "bin"), "SWARM_HOME": str(swarm_home)}
    env.pop("SWARM_AGENT", None)
    for args, extra, says in (
        (["--name", "bad name"], {}, "--name 'bad name' contains ' '"),
        ([], {"SWARM_AGENT": "bad name"}, "SWARM_AGENT 'bad name' contains ' '"),
        ([], {"SWARM_AGENT": "x" * 65}, "SWARM_AGENT is 65 characters long; the limit is 64"),
    ):
        done = run_swarm(["mcp", "--role", "worker", *args], {**env, **extra}, input=b"")
        err = done.stderr.decode()
        assert done.returncode == 2 and says in err, err
    with Swarm(redis_url, swarm="test") as swarm:
        assert swarm.agents() == []


def test_hooks_install_takes_the_roles_the_mcp_server_takes(in_tmp: Path) -> None:
    """One list, the MCP server's: `swarm hooks install` refuses another role (exit 2), in the
    words `swarm mcp --role` uses, before anything is written."""
    says = "'wrkr' is not one of " + ", ".join(f"'{role}'" for role in AGENT_ROLES)
    assert AGENT_ROLES == ("worker", "shard", "coordinator", "all")
    code, err = _invoke("mcp", "--role", "wrkr")
    assert code == 2 and says in err, err
    code, err = _invoke("hooks", "install", "--client", "claude", "--role", "wrkr", "--write")
    assert code == 2 and says in err, err
    assert not (in_tmp / ".claude").exists()
    for role in AGENT_ROLES:
        code, err = _invoke("hooks", "install", "--client", "codex", "--role", role)
        assert code == 0, err


def test_an_installed_hook_keeps_any_valid_role_saying_the_server_takes_none_such(
    redis_url: str, swarm_home: Path
) -> None:
    """Entries an install wrote before the roles were checked (`--role reviewer`) keep
    working at every event, with a warning on stderr; a role the core cannot register is
    refused as it registers (exit 1, never 2)."""
    env = {"SWARM_URL": redis_url, "SWARM_NAME": "test", "SWARM_HOME": str(swarm_home),
           "SWARM_AGENT": "rev-1"}  # fmt: skip
    payload = json.dumps({"session_id": "s-4", "hook_event_name": "SessionStart"})
    code, err = _invoke("hook", "SessionStart", "--role", "reviewer", env=env, input=payload)
    assert code == 0, err
    assert "--role 'reviewer' is not one of `swarm mcp --role`'s (worker, shard, " in err
    with Swarm(redis_url, swarm="test") as swarm:
        assert swarm.get_agent("rev-1").role == "reviewer"
    code, err = _invoke("hook", "SessionStart", "--role", "shard", env=env, input=payload)
    assert code == 0 and err == "", err
    for role, says in (("bad name", "role 'bad name' contains ' '"),
                       ("r" * 41, "role is 41 characters long; the limit is 40")):  # fmt: skip
        code, err = _invoke("hook", "SessionStart", "--role", role, env=env, input=payload)
        assert code == 1 and says in err, err


def test_a_hook_with_role_all_registers_as_the_mcp_server_does(
    redis_url: str, swarm_home: Path
) -> None:
    """`--role all` (the MCP server's default) registers as 'agent', as `swarm mcp --role all`
    does: the session's hooks and server are one agent."""
    env = {"SWARM_URL": redis_url, "SWARM_NAME": "test", "SWARM_HOME": str(swarm_home),
           "SWARM_AGENT": "every-tool"}  # fmt: skip
    payload = json.dumps({"session_id": "s-2", "hook_event_name": "SessionStart"})
    code, err = _invoke("hook", "SessionStart", "--role", "all", env=env, input=payload)
    assert code == 0, err
    with Swarm(redis_url, swarm="test") as swarm:
        assert swarm.get_agent("every-tool").role == "agent"


def test_an_option_without_its_partner_is_refused(in_tmp: Path) -> None:
    for args, says in (
        (["hooks", "install", "--client", "claude", "--queue", "q", "--max-tasks", "3"],
         "--max-tasks is for --loop"),
        (["mcp", "install", "--client", "claude", "--no-token"], "--no-token is for --http"),
        (["mcp", "install", "--client", "json", "--token-env", "T"], "--token-env is for --http"),
        (["mcp", "install", "--client", "json", "--http", "http://h:1/mcp", "--role", "worker"],
         "--role is for a server the client starts, not --http"),
        (["mcp", "install", "--client", "json", "--http", "http://h:1/mcp", "--name", "a"],
         "--name is for a server the client starts, not --http"),
        (["mcp", "install", "--client", "json", "--http", "http://h:1/mcp", "--budget", "9000"],
         "--budget is for a server the client starts, not --http"),
        (["mcp", "install", "--client", "json", "--http", "http://h:1/mcp", "--no-token",
          "--token-env", "T"], "--no-token and --token-env: choose one"),
    ):  # fmt: skip
        code, err = _invoke(*args, "--write")
        assert code == 2 and says in err, (args, err)
    assert not list(in_tmp.rglob("*.json"))
    payload = json.dumps({"session_id": "s-3", "hook_event_name": "Stop"})
    code, err = _invoke("hook", "Stop", "--max-tasks", "3", input=payload)
    assert code == 1 and "--max-tasks is for --loop" in err, err
    # with their partners, each is taken
    printed = CliRunner().invoke(
        main, ["hooks", "install", "--client", "claude", "--loop", "--max-tasks", "3"]
    )
    assert printed.exit_code == 0 and "--loop --max-tasks 3" in printed.stdout, printed.stderr
    code, err = _invoke("mcp", "install", "--client", "json", "--http", "http://h:1/mcp",
                        "--no-token")  # fmt: skip
    assert code == 0, err


def test_a_server_built_with_a_bad_agent_id_is_refused(redis_url: str) -> None:
    """An embedding program (build_server) is refused at once too, not at every tool call."""
    refused = pytest.raises(ValidationError, match="name 'bad name' contains ' '")
    with Swarm(redis_url, swarm="test") as swarm, refused:
        build_server(swarm, role="worker", name="bad name")
