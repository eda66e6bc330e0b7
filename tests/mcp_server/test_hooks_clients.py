"""Real clients (from npm, in .npm-tools) load what ``swarm hooks install`` and ``swarm mcp
install`` write, and run it, without a model (issue 19): each client is started with a fake
key against a stand-in for its model API (or none), so it never reaches a model, yet runs its
SessionStart hooks first; the context our hook answered is then found where the client put it
for the model (the request it sent, or its session transcript).

- Claude Code 2.1 (`claude -p`): the SessionStart context is in its first model request.
- Codex 0.171: `codex app-server` lists the hooks of .codex/hooks.json (``hooks/list``) and
  connects to the stdio server of config.toml (``mcpServerStatus/list``); `codex exec
  --dangerously-bypass-hook-trust` runs the hooks and records the context as a
  ``hooks.additional_context`` model input in its rollout.
- Gemini CLI 0.61: validates the hooks of .gemini/settings.json (`gemini mcp list` reports a
  malformed one), connects to the stdio server (`gemini mcp list`), and sends the
  SessionStart context in its first model request (`gemini -p`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm.mcp_server import tool_names

from .._cli import Cli, swarm_bin
from .._model_stub import ModelHandler, serving
from .test_clients import CLAUDE, CODEX, GEMINI, _needs, _quiet_env

# One agent per client: a hook a client started may outlive it, and must not touch the next test.
AGENTS = {"claude": "live-claude", "codex": "live-codex", "gemini": "live-gemini"}
HOOK_EVENTS = {
    "codex": {"sessionStart", "userPromptSubmit", "stop", "subagentStart", "subagentStop",
              "preCompact", "sessionEnd"},
}  # fmt: skip


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project directory the client runs in; installs write there, with the command of a
    ``swarm`` that runs this checkout (the installed one may be another version)."""
    swarm = swarm_bin(tmp_path / "bin")
    for module in ("redis_swarm.cli._hooks", "redis_swarm.mcp_server._install"):
        monkeypatch.setattr(f"{module}.swarm_command", lambda: [str(swarm)])
    path = tmp_path / "work"
    path.mkdir()
    monkeypatch.chdir(path)
    return path


def _lead(core: Swarm, agent: str) -> str:
    """The state the session starts in: its agent with a message waiting, a task in q."""
    core.register("coordinator", name="lead")
    core.register("worker", name=agent)
    core.post_task("q", "review auth.py")
    return core.send(agent, "hello from lead", sender="lead").id


def _install(redis_url: str, home: Path, *args: str) -> None:
    Cli(redis_url, env={"HOME": str(home), "CODEX_HOME": str(home / ".codex")})(*args, "--write")


def _expect_session_start(text: str, core: Swarm, agent: str, message_id: str) -> None:
    assert f"You are agent {agent} in the swarm test" in text
    assert "hello from lead" in text and "q: 1 pending" in text
    assert core.message_status(message_id).read  # shown, so marked read


@contextmanager
def _model_stand_in() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server in place of the model API: it keeps what each request sent and refuses
    it (400), so the client stops there."""
    bodies: list[str] = []

    class Refuse(ModelHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("content-length", 0))).decode())
            error = {"error": {"code": 400, "message": "no model here", "type": "test"}}
            self.send(400, "application/json", json.dumps(error).encode())

    with serving(Refuse) as url:
        yield url, bodies


def _run_until(argv: list[str], env: dict[str, str], cwd: Path, done: Callable[[], bool]) -> str:
    """Run a client until ``done()`` (or it exits); its output, for failures."""
    with subprocess.Popen(
        argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    ) as proc:  # fmt: skip
        deadline = time.monotonic() + 90
        while not done() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
    return out


@_needs(CLAUDE, "Claude Code (@anthropic-ai/claude-code)")
def test_claude_code_runs_the_hooks_install_writes(
    core: Swarm, redis_url: str, work: Path, tmp_path: Path
) -> None:
    agent = AGENTS["claude"]
    lead = _lead(core, agent)
    home = tmp_path / "home"
    _install(redis_url, home, "hooks", "install", "--client", "claude", "--queue", "q")
    with _model_stand_in() as (url, bodies):
        env = _quiet_env(home) | {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": url,
                                  "SWARM_AGENT": agent}  # fmt: skip
        out = _run_until([str(CLAUDE), "-p", "carry on"], env, work, lambda: bool(bodies))
    assert bodies, out
    _expect_session_start(bodies[0], core, agent, lead)


@contextmanager
def _app_server(env: dict[str, str], cwd: Path) -> Iterator[Callable[[str, dict[str, Any]], Any]]:
    """`codex app-server` on pipes: a function that sends one request and returns its result.
    Ended with the processes it started (the MCP server, in its own process group): killed
    alone, it left a `swarm mcp` still starting, which joined the swarm as its agent after
    the test, into the next test's swarm (tests/mcp_server/test_clients.py counts joins)."""
    with subprocess.Popen(
        [str(CODEX), "app-server"], env=env, cwd=cwd, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    ) as proc:  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout
        ids = iter(range(1_000_000))

        def call(method: str, params: dict[str, Any]) -> Any:
            ident = next(ids)
            stdin.write(json.dumps({"method": method, "id": ident, "params": params}) + "\n")
            stdin.flush()
            while True:
                line = stdout.readline()
                assert line, "codex app-server closed its output"
                reply = json.loads(line)
                if reply.get("id") == ident:
                    assert "error" not in reply, reply
                    return reply["result"]

        try:
            call("initialize", {"clientInfo": {"name": "redis-swarm-test", "version": "1"}})
            stdin.write(json.dumps({"method": "initialized"}) + "\n")
            yield call
        finally:
            os.killpg(proc.pid, signal.SIGKILL)


@_needs(CODEX, "Codex (@openai/codex)")
def test_codex_loads_and_runs_what_both_installs_write(
    core: Swarm, redis_url: str, work: Path, tmp_path: Path
) -> None:
    agent = AGENTS["codex"]
    lead = _lead(core, agent)
    home = tmp_path / "home"
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True)
    # Codex reads a project's .codex/ only once the project is trusted.
    (codex_home / "config.toml").write_text(f'[projects."{work}"]\ntrust_level = "trusted"\n')
    env = _quiet_env(home) | {"CODEX_HOME": str(codex_home), "SWARM_AGENT": agent}
    hooks_file = work / ".codex" / "hooks.json"
    hooks_file.parent.mkdir()
    hooks_file.write_text(json.dumps({"hooks": {"Stop": "not a list"}}))  # the control
    with _app_server(env, work) as call:
        (listed,) = call("hooks/list", {"cwds": [str(work)]})["data"]
        assert listed["hooks"] == [] and "failed to parse" in " ".join(listed["warnings"])
    hooks_file.unlink()

    _install(redis_url, home, "hooks", "install", "--client", "codex", "--queue", "q")
    _install(redis_url, home, "mcp", "install", "--client", "codex", "--role", "worker")
    with _app_server(env, work) as call:
        (listed,) = call("hooks/list", {"cwds": [str(work)]})["data"]
        assert listed["errors"] == [] and listed["warnings"] == [], listed
        hooks = listed["hooks"]
        assert {h["eventName"] for h in hooks} == HOOK_EVENTS["codex"]
        # (a session's end is given 3 s: Codex clamps it to that, warning of more)
        assert all(h["source"] == "project" and h["enabled"] and " hook " in h["command"]
                   and h["timeoutSec"] == (3 if h["eventName"] == "sessionEnd" else 30)
                   for h in hooks)  # fmt: skip
        # what trusting them is for: Codex asks before it runs new hooks
        assert {h["trustStatus"] for h in hooks} == {"untrusted"}
        (server,) = call("mcpServerStatus/list", {"detail": "toolsAndAuthOnly"})["data"]
        assert server["name"] == "swarm" and server["serverInfo"]["name"] == "redis-swarm"
        assert sorted(server["tools"]) == sorted(tool_names("worker"))

    def context() -> str:
        for rollout in (codex_home / "sessions").rglob("*.jsonl"):
            text = rollout.read_text()
            if "hooks.additional_context" in text:
                return text
        return ""

    argv = [str(CODEX), "exec", "--dangerously-bypass-hook-trust", "--skip-git-repo-check",
            "carry on"]  # fmt: skip
    no_model = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    out = _run_until(argv, env | no_model, work, lambda: bool(context()))
    assert context(), out
    inputs = [json.loads(line) for line in context().splitlines()]
    hooked = [
        item["payload"]["content"][0]["text"]
        for item in inputs
        if "hooks.additional_context" in json.dumps(item.get("payload", {}))
    ]
    _expect_session_start(hooked[0], core, agent, lead)


def _gemini_home(home: Path, *works: Path) -> dict[str, str]:
    (home / ".gemini").mkdir(parents=True)
    # Gemini CLI reads no project settings (nor starts MCP servers) of an untrusted folder.
    trusted = {str(work): "TRUST_FOLDER" for work in works}
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps(trusted))
    auth = {"security": {"auth": {"selectedType": "gemini-api-key"}}}
    (home / ".gemini" / "settings.json").write_text(json.dumps(auth))
    return _quiet_env(home)


def _gemini_list(env: dict[str, str], work: Path) -> str:
    done = subprocess.run(
        [str(GEMINI), "mcp", "list"], env=env, cwd=work, capture_output=True, text=True,
        timeout=90, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


@contextmanager
def _gemini_listing(env: dict[str, str], work: Path) -> Iterator[Callable[[], str]]:
    """`gemini mcp list` started in ``work``, running while the block runs: a function that
    waits for what it printed."""
    with subprocess.Popen(
        [str(GEMINI), "mcp", "list"], env=env, cwd=work, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as proc:  # fmt: skip
        yield lambda: proc.communicate(timeout=90)[0]


@_needs(GEMINI, "Gemini CLI (@google/gemini-cli)")
def test_gemini_cli_loads_and_runs_what_both_installs_write(
    core: Swarm, redis_url: str, work: Path, tmp_path: Path
) -> None:
    agent = AGENTS["gemini"]
    lead = _lead(core, agent)
    control = tmp_path / "control"  # a project of the same user, listed meanwhile
    env = _gemini_home(tmp_path / "home", work, control)
    (control / ".gemini").mkdir(parents=True)
    # the control: a malformed hooks entry is reported, so the check below checks something
    malformed = {"hooks": {"AfterAgent": "not a list"}}
    (control / ".gemini" / "settings.json").write_text(json.dumps(malformed))
    with _gemini_listing(env, control) as controlled:
        _install(redis_url, tmp_path / "home", "hooks", "install", "--client", "gemini",
                 "--queue", "q", "--loop")  # fmt: skip
        _install(redis_url, tmp_path / "home", "mcp", "install", "--client", "gemini",
                 "--role", "worker")  # fmt: skip
        settings = work / ".gemini" / "settings.json"
        written = json.loads(settings.read_text())
        assert set(written["hooks"]) == {
            "SessionStart",
            "BeforeAgent",
            "AfterAgent",
            "PreCompress",
            "SessionEnd",
        }
        listed = _gemini_list(env, work)
        assert "Please fix the configuration" in controlled()
    assert "Please fix the configuration" not in listed and "Expected" not in listed, listed
    status = next(line for line in listed.splitlines() if "swarm:" in line)
    assert status.endswith("- Connected"), listed

    with _model_stand_in() as (url, bodies):
        run = env | {
            "GEMINI_API_KEY": "test",
            "GOOGLE_GEMINI_BASE_URL": url,
            "SWARM_AGENT": agent,
            "TMPDIR": str(tmp_path),
        }  # its error reports go there

        def has_context() -> bool:  # SessionStart's and BeforeAgent's may go in two requests
            return "hello from lead" in "".join(bodies)

        out = _run_until([str(GEMINI), "-p", "carry on"], run, work, has_context)
    assert has_context(), out
    _expect_session_start("".join(bodies), core, agent, lead)
