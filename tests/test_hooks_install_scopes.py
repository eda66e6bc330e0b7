"""``swarm hooks install`` across a client's scopes, with real files in a temp HOME and project:

- ``--scope user`` writes the file in the user folder the client itself reads: Claude Code's
  ``CLAUDE_CONFIG_DIR`` (``$CLAUDE_CONFIG_DIR/settings.json``), Codex's ``CODEX_HOME``
  (``$CODEX_HOME/hooks.json``), Gemini CLI's ``GEMINI_CLI_HOME`` (a home:
  ``$GEMINI_CLI_HOME/.gemini/settings.json``), as ``swarm mcp install`` finds them (one
  function). Before, the hooks went in ``~/`` whatever the variable, where the client never
  looked. Checked with the real clients too: each runs (Codex lists) the hooks installed so.
- Hooks of ours at the client's other scope are warned of (the client runs both sets, each
  event answered twice), with the exact ``--remove`` that takes them out; before, nothing.
- Reinstalling with other options says what it replaced, and what it was; before, "written
  to" as for a first install.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm._executable import swarm_command
from redis_swarm.mcp_server import tool_names

from ._cli import Cli, Out, swarm_bin
from .mcp_server.test_clients import CLAUDE, CODEX, GEMINI, _needs, _quiet_env
from .mcp_server.test_hooks_clients import (
    HOOK_EVENTS,
    _app_server,
    _expect_session_start,
    _gemini_list,
    _lead,
    _model_stand_in,
    _run_until,
)

VARIABLES = {"claude": "CLAUDE_CONFIG_DIR", "codex": "CODEX_HOME", "gemini": "GEMINI_CLI_HOME"}
# Where each client reads its user hooks, in the folder its variable names.
MOVED = {"claude": "settings.json", "codex": "hooks.json", "gemini": ".gemini/settings.json"}
# ... and in HOME, with the variable unset.
IN_HOME = {"claude": ".claude/settings.json", "codex": ".codex/hooks.json",
           "gemini": ".gemini/settings.json"}  # fmt: skip
APPS = {"claude": "Claude Code", "codex": "Codex", "gemini": "Gemini CLI"}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project folder the installs run in; HOME (``tmp_path/home``) beside it, and none
    of the clients' variables set (each test sets the ones it means)."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


class _Scoped(Cli):
    """``swarm`` with HOME in ``tmp_path`` and the clients' variables as given (the others
    unset, whatever the environment running the tests holds)."""

    def __init__(self, tmp_path: Path, **env: str | None) -> None:
        super().__init__("redis://127.0.0.1:1/0", swarm="team")
        self.scoped = {"HOME": str(tmp_path / "home"), **dict.fromkeys(VARIABLES.values()), **env}

    def __call__(self, *args: str, env: Mapping[str, str | None] | None = None, **kw: Any) -> Out:
        return super().__call__(*args, env={**self.scoped, **(env or {})}, **kw)


def _ours(path: Path) -> list[str]:
    """The `swarm ... hook` commands in a settings file."""
    hooks = json.loads(path.read_text()).get("hooks", {})
    return [h["command"] for gs in hooks.values() for g in gs for h in g["hooks"]
            if " hook " in h["command"]]  # fmt: skip


@pytest.mark.parametrize("client", ["claude", "codex", "gemini"])
def test_user_scope_goes_where_the_clients_variable_says(
    work: Path, tmp_path: Path, client: str
) -> None:
    home, moved = tmp_path / "home", tmp_path / "moved"
    cli = _Scoped(tmp_path, **{VARIABLES[client]: str(moved)})
    out = cli("hooks", "install", "--client", client, "--scope", "user", "--write")
    assert out.stderr.endswith(f"written to {moved / MOVED[client]}\n"), out
    assert _ours(moved / MOVED[client])
    assert not (home / IN_HOME[client]).exists()
    printed = cli("hooks", "install", "--client", client, "--scope", "user")
    assert f"goes in {moved / MOVED[client]}" in printed.stderr
    if client != "claude":  # (Claude Code's servers are added by its own CLI)
        # `swarm mcp install` writes its entry in the same folder
        scope = ["--scope", "user"] if client == "gemini" else []  # (codex: the only one)
        cli("mcp", "install", "--client", client, *scope, "--write")
        config = moved / ("config.toml" if client == "codex" else ".gemini/settings.json")
        assert "swarm" in config.read_text() and "mcp" in config.read_text()
        assert not (home / ".gemini").exists() and not (home / ".codex").exists()
    removed = cli("hooks", "install", "--client", client, "--scope", "user", "--remove")
    assert removed.stderr == f"removed from {moved / MOVED[client]}\n"

    # set but empty: taken as unset, as the clients take it
    unset = _Scoped(tmp_path, **{VARIABLES[client]: ""})
    unset("hooks", "install", "--client", client, "--scope", "user", "--write")
    assert _ours(home / IN_HOME[client])


@pytest.mark.parametrize("client", ["claude", "codex", "gemini"])
def test_hooks_at_the_other_scope_are_warned_of(work: Path, tmp_path: Path, client: str) -> None:
    cli = _Scoped(tmp_path)
    app = APPS[client]
    project, user = work / IN_HOME[client], tmp_path / "home" / IN_HOME[client]
    first = cli("hooks", "install", "--client", client, "--write")
    assert "warning" not in first.stderr
    both = f"{app} runs both sets at every event"
    out = cli("hooks", "install", "--client", client, "--scope", "user", "--write")
    warning, done = out.stderr.splitlines()[-2:]
    # (run by this install's executable, whose entries it takes out: tests/test_hooks_leftovers.py)
    me = shlex.join(swarm_command())
    removal = f"{me} hooks install --client {client} --scope project --remove"
    assert warning == (
        f"warning: `swarm hook` entries are also in {project} ({app}'s project scope): {both} "
        "(each message shown twice; with --loop, a second task claimed at each Stop): take one "
        f"set out: that one with `{removal}`, or this one with --remove"
    )
    assert done == f"written to {user}"
    # printing says it too, and so does an install at the project scope of the user's
    assert both in cli("hooks", "install", "--client", client, "--scope", "user").stderr
    again = cli("hooks", "install", "--client", client, "--write").stderr
    assert f"also in {user} ({app}'s user scope)" in again
    assert f"`{me} hooks install --client {client} --scope user --remove`" in again

    # the command it gives takes them out; a removal says what the client still runs
    cli(*shlex.split(removal)[len(swarm_command()) :])
    assert not project.exists() or not _ours(project)
    assert "warning" not in cli("hooks", "install", "--client", client, "--scope", "user").stderr
    cli("hooks", "install", "--client", client, "--write")
    removed = cli("hooks", "install", "--client", client, "--remove").stderr
    assert f"entries are still in {user} ({app}'s user scope), and {app} runs them" in removed

    # another tool's hooks at the other scope are none of ours: nothing said
    project.parent.mkdir(exist_ok=True)
    theirs = {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send x"}]}]}}
    project.write_text(json.dumps(theirs))
    assert "warning" not in cli("hooks", "install", "--client", client, "--scope", "user").stderr


def test_run_in_the_home_folder_one_file_is_no_other_scope(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run in HOME, Claude Code's project file is its user file: nothing to warn of, though
    another project's does warn (the control)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)
    cli = _Scoped(tmp_path)
    cli("hooks", "install", "--client", "claude", "--write")
    out = cli("hooks", "install", "--client", "claude", "--scope", "user", "--write")
    assert "warning" not in out.stderr and "nothing to change" in out.stderr
    monkeypatch.chdir(tmp_path)
    assert "also in" in cli("hooks", "install", "--client", "claude", "--write").stderr


def test_codex_warns_of_a_project_file_above_this_folder(
    work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Codex reads the .codex/hooks.json of every folder from here up to the checkout's root
    (its `hooks/list` lists each): ours in the root's, installed again in a folder below, is
    warned of, with the removal to run there."""
    (work / ".git").mkdir()
    cli = _Scoped(tmp_path)
    cli("hooks", "install", "--client", "codex", "--write")
    sub = work / "pkg"
    sub.mkdir()
    monkeypatch.chdir(sub)
    out = cli("hooks", "install", "--client", "codex", "--write").stderr
    me = shlex.join(swarm_command())
    removal = f"cd {work} && {me} hooks install --client codex --scope project --remove"
    assert f"also in {work / '.codex/hooks.json'} (Codex's project scope)" in out
    assert f"`{removal}`" in out


def test_reinstalling_says_what_it_replaced(work: Path, tmp_path: Path) -> None:
    cli = _Scoped(tmp_path)
    path = work / IN_HOME["claude"]
    args = ("hooks", "install", "--client", "claude", "--write")
    assert cli(*args, "--queue", "a").stderr == f"written to {path}\n"
    out = cli(*args, "--queue", "b", "--loop")
    assert out.stderr == (
        f"replaced the `swarm hook` entries in {path}: they were swarm hook EVENT --client "
        "claude --role worker --queue a, swarm team\n"
    )
    assert all("--queue b" in c for c in _ours(path))
    assert cli(*args, "--queue", "b", "--loop").stderr == f"{path}: nothing to change\n"
    # another URL only: said as other settings, never the URL (it may hold a password)
    other = cli(*args, "--queue", "b", "--loop", env={"SWARM_URL": "redis://127.0.0.1:2/0"})
    assert other.stderr == (
        f"replaced the `swarm hook` entries in {path}: they were swarm hook EVENT --client "
        "claude --role worker --queue b --loop, swarm team too, with other settings (URL, "
        "home, executable, events or timeouts)\n"
    )
    secret = cli(*args, "--queue", "b", env={"SWARM_URL": "redis://u:s3cret@127.0.0.1:2/0"})
    assert "they were swarm hook EVENT --client claude --role worker --queue b --loop," in (
        secret.stderr
    )
    assert "s3cret" not in secret.stderr + path.read_text()
    back = cli(*args, "--queue", "b")
    assert "they were swarm hook EVENT --client claude --role worker --queue b --url-from-env," in (
        back.stderr
    )


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()


@pytest.fixture
def real(work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Installs write the command of a ``swarm`` that runs this checkout (the installed one
    may be another version); the client's HOME."""
    swarm = swarm_bin(tmp_path / "bin")
    for module in ("redis_swarm.cli._hooks", "redis_swarm.mcp_server._install"):
        monkeypatch.setattr(f"{module}.swarm_command", lambda: [str(swarm)])
    return tmp_path / "home"


def _install(redis_url: str, home: Path, env: dict[str, str], *args: str) -> None:
    """An install at the user's scope (Codex has only that one for its MCP servers)."""
    scope = [] if args[:1] == ("mcp",) and "codex" in args else ["--scope", "user"]
    Cli(redis_url, env={"HOME": str(home), **env})(*args, *scope, "--write")


@_needs(CLAUDE, "Claude Code (@anthropic-ai/claude-code)")
def test_claude_code_runs_user_hooks_installed_in_its_config_dir(
    core: Swarm, redis_url: str, work: Path, real: Path, tmp_path: Path
) -> None:
    """Claude Code with CLAUDE_CONFIG_DIR reads its user settings there, not in ~/.claude."""
    agent = "scoped-claude"
    lead = _lead(core, agent)
    moved = {"CLAUDE_CONFIG_DIR": str(tmp_path / "claude-config")}
    _install(redis_url, real, moved, "hooks", "install", "--client", "claude", "--queue", "q")
    with _model_stand_in() as (url, bodies):
        model = {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": url}
        env = _quiet_env(real) | moved | model | {"SWARM_AGENT": agent}
        out = _run_until([str(CLAUDE), "-p", "carry on"], env, work, lambda: bool(bodies))
    assert bodies, out
    _expect_session_start(bodies[0], core, agent, lead)


@_needs(CODEX, "Codex (@openai/codex)")
def test_codex_lists_user_hooks_installed_in_codex_home(
    redis_url: str, work: Path, real: Path, tmp_path: Path
) -> None:
    """The tour's case: CODEX_HOME set, `--scope user`: `hooks/list` shows them, from there."""
    codex_home = tmp_path / "ch2"
    moved = {"CODEX_HOME": str(codex_home)}
    _install(redis_url, real, moved, "hooks", "install", "--client", "codex", "--queue", "q")
    _install(redis_url, real, moved, "mcp", "install", "--client", "codex", "--role", "worker")
    with _app_server(_quiet_env(real) | moved, work) as call:
        (listed,) = call("hooks/list", {"cwds": [str(work)]})["data"]
        assert listed["errors"] == [] and listed["warnings"] == [], listed
        hooks = listed["hooks"]
        assert {h["eventName"] for h in hooks} == HOOK_EVENTS["codex"]
        assert {(h["source"], h["sourcePath"]) for h in hooks} == {
            ("user", str(codex_home / "hooks.json"))
        }
        (server,) = call("mcpServerStatus/list", {"detail": "toolsAndAuthOnly"})["data"]
        assert sorted(server["tools"]) == sorted(tool_names("worker"))


@_needs(GEMINI, "Gemini CLI (@google/gemini-cli)")
def test_gemini_cli_runs_user_hooks_and_server_installed_in_its_home(
    core: Swarm, redis_url: str, work: Path, real: Path, tmp_path: Path
) -> None:
    """Gemini CLI with GEMINI_CLI_HOME reads $GEMINI_CLI_HOME/.gemini/settings.json: both
    installs write there, and it runs the hooks and connects to the server."""
    agent = "scoped-gemini"
    lead = _lead(core, agent)
    gemini_home = tmp_path / "gemini-home"
    (gemini_home / ".gemini").mkdir(parents=True)
    # Gemini CLI runs headless only in a trusted folder; its key is chosen in its settings.
    (gemini_home / ".gemini" / "trustedFolders.json").write_text(
        json.dumps({str(work): "TRUST_FOLDER"})
    )
    auth = {"security": {"auth": {"selectedType": "gemini-api-key"}}}
    (gemini_home / ".gemini" / "settings.json").write_text(json.dumps(auth))
    moved = {"GEMINI_CLI_HOME": str(gemini_home)}
    _install(redis_url, real, moved, "hooks", "install", "--client", "gemini", "--queue", "q")
    _install(redis_url, real, moved, "mcp", "install", "--client", "gemini", "--role", "worker")
    env = _quiet_env(real) | moved
    listed = _gemini_list(env, work)
    status = next((line for line in listed.splitlines() if "swarm:" in line), listed)
    assert status.endswith("- Connected"), listed
    with _model_stand_in() as (url, bodies):
        run = env | {"GEMINI_API_KEY": "test", "GOOGLE_GEMINI_BASE_URL": url,
                     "SWARM_AGENT": agent, "TMPDIR": str(tmp_path)}  # fmt: skip

        def has_context() -> bool:
            return "hello from lead" in "".join(bodies)

        out = _run_until([str(GEMINI), "-p", "carry on"], run, work, has_context)
    assert has_context(), out
    _expect_session_start("".join(bodies), core, agent, lead)
    assert not (real / ".gemini").exists()
