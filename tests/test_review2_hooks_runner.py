"""The second review of the hooks and the runner: each defect it found, shown on real Redis.

1. A subagent's last message kept on this machine (its SubagentStop did not reach Redis) is
   reported by the parent's next hook with the token kept for it, though its lease ran out
   meanwhile and its task went back to its queue; one that settles no task is kept (set
   aside) and the line names the subagent and why.
2. The pool says no "work is kept" line about a request it gave up at a stop.
3. ``is_swarm_hook`` takes the entries of swarm's executable alone, however launched.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Settings, Swarm
from redis_swarm import _lease_tokens as tokens
from redis_swarm._hooks.events import subagent_for
from redis_swarm._models import TaskStatus

from ._cli import Cli
from ._servers import RedisServer, ServerFactory


@pytest.fixture
def own_server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of the test's own: it is paused (``CLIENT PAUSE``)."""
    server = servers.start()
    yield server
    server.kill()


def _paused(server: RedisServer, ms: int) -> None:
    """Every client of ``server`` paused for ``ms``: it takes connections, answers nothing."""
    with socket.create_connection(("127.0.0.1", server.port or 0)) as raw:
        raw.sendall(f"CLIENT PAUSE {ms} ALL\r\n".encode())
        assert raw.recv(64) == b"+OK\r\n"


STOPPED = {"session_id": "s1", "hook_event_name": "SubagentStop", "agent_id": "sub-1",
           "last_assistant_message": "The bug is in parse(): off by one."}  # fmt: skip
PROMPT = {"session_id": "s1", "hook_event_name": "UserPromptSubmit", "prompt": "go on"}


def _spooled_past_its_lease(server: RedisServer, home: Path) -> tuple[Settings, str, Cli]:
    """A subagent's task claimed for 1 s, its SubagentStop run while Redis is paused (its
    last message kept on this machine), then its lease run out and reaped: the task is back
    in its queue, open. The task's id, and the CLI of the parent session."""
    settings = Settings.from_url(server.url, swarm="test", home=home)
    worker = subagent_for("agent1", "sub-1")
    with Swarm(settings) as swarm:
        posted = swarm.post_task("q", "find the bug")
        claimed = swarm.claim("q", worker=worker, lease_s=1.0)
        assert claimed is not None and claimed.token is not None
    tokens.remember(settings, worker, claimed.id, claimed.token)  # (as `task claim` keeps it)
    cli = Cli(server.url, env={"SWARM_HOME": str(home), "SWARM_AGENT": "agent1"})
    _paused(server, 2500)
    out = cli("hook", "SubagentStop", input=json.dumps(STOPPED))
    assert "next hook reports it" in json.loads(out.stdout)["systemMessage"], out
    with Swarm(settings) as swarm:  # (waits out the pause: the 1 s lease is over by then)
        assert swarm.reap() == 1
        assert swarm.get_task(posted.id).status is TaskStatus.PENDING
    assert list((home / "spool").rglob("*.json"))
    return settings, posted.id, cli


def test_a_spooled_finding_is_reported_after_its_lease_ran_out(
    own_server: RedisServer, tmp_path: Path
) -> None:
    settings, task_id, cli = _spooled_past_its_lease(own_server, tmp_path)
    out = cli("hook", "UserPromptSubmit", input=json.dumps(PROMPT))
    said = json.loads(out.stdout)["systemMessage"]
    assert f"{task_id} reported" in said and "after its lease ended" in said, out
    assert not any(line.startswith(" ") for line in said.splitlines()), said  # (a subject)
    with Swarm(settings) as swarm:
        task = swarm.get_task(task_id)
        assert task.status is TaskStatus.COMPLETED and task.finding_id is not None
        assert "off by one" in json.dumps(swarm.get_finding(task.finding_id).to_dict())
    assert not list((tmp_path / "spool").rglob("*.json*"))  # (settled: its file gone)


def test_a_spooled_message_that_settles_nothing_is_kept_and_said_why(
    own_server: RedisServer, tmp_path: Path
) -> None:
    settings, task_id, cli = _spooled_past_its_lease(own_server, tmp_path)
    with Swarm(settings) as swarm:  # (another worker takes the task and completes it)
        other = swarm.claim("q", worker="w2")
        assert other is not None and other.token is not None
        swarm.report(task_id, other.token, {"summary": "found elsewhere"}, worker="w2")
    out = cli("hook", "UserPromptSubmit", input=json.dumps(PROMPT))
    said = json.loads(out.stdout)["systemMessage"]
    worker = subagent_for("agent1", "sub-1")
    assert said.startswith(f"subagent {worker}: "), said
    assert "no task of it is open" in said and "settled no task" in said, said
    kept = list((tmp_path / "spool").rglob("*.json.unsettled"))
    assert len(kept) == 1 and str(kept[0]) in said, said
    assert "off by one" in kept[0].read_text()  # (the subagent's work is not lost)
    again = cli("hook", "UserPromptSubmit", input=json.dumps(PROMPT))
    assert "systemMessage" not in json.loads(again.stdout), again  # (said once)


# --- 3. which hook entries are ours


@pytest.mark.parametrize(
    "command",
    [
        "swarm hook Stop --client claude",
        "/opt/venv/bin/swarm --swarm team hook SubagentStop",
        r'"C:\Tools\swarm.exe" hook Stop',  # (quoted, as a Windows path is written)
        "uvx --from redis-swarm swarm hook Stop",
        "env A=1 swarm hook Stop",
        "env SWARM_URL=redis://h:1/0 /home/u/.local/bin/swarm --url-from-env hook stop",
        "/usr/bin/python3 -m redis_swarm --swarm team hook stop --client claude",
        "uv run --with redis-swarm python -m redis_swarm hook AfterAgent",
    ],
)
def test_an_entry_running_swarm_is_ours(command: str) -> None:
    from redis_swarm._hooks.install import is_swarm_hook

    assert is_swarm_hook({"type": "command", "command": command})


@pytest.mark.parametrize(
    "command",
    [
        "claude-swarm hook stop",
        "/usr/local/bin/my-swarm hook Stop",
        "swarmctl hook Stop",
        "python -m claude_swarm hook Stop",
        "swarm run --hook Stop",  # (no `hook EVENT`)
        "swarm hook not-an-event",
        "other-tool hook Stop",
    ],
)
def test_an_entry_of_another_tool_is_not_ours(command: str) -> None:
    from redis_swarm._hooks.install import is_swarm_hook

    assert not is_swarm_hook({"type": "command", "command": command})


def test_an_install_and_a_remove_keep_another_tools_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_hooks_review_fixes import _commands, _installer

    cli, work = _installer(tmp_path, monkeypatch)
    settings = work / ".claude/settings.json"
    theirs = "claude-swarm hook stop"
    stop = [{"matcher": "", "hooks": [{"type": "command", "command": theirs}]}]
    settings.write_text(json.dumps({"hooks": {"Stop": stop}}))
    cli("hooks", "install", "--client", "claude", "--write")
    assert theirs in _commands(settings, "Stop") and len(_commands(settings, "Stop")) == 2
    cli("hooks", "install", "--client", "claude", "--remove")
    assert _commands(settings, "Stop") == [theirs]


# --- 4. one wording of the refused --scope local


def test_scope_local_is_refused_in_one_wording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis_swarm._errors import ConfigError
    from redis_swarm._hooks.install import LOCAL_SCOPE_CLAUDES, settings_path

    from .test_hooks_review_fixes import _installer

    cli, _ = _installer(tmp_path, monkeypatch)
    out = cli("hooks", "install", "--client", "codex", "--scope", "local", expect=2)
    assert LOCAL_SCOPE_CLAUDES in " ".join(out.stderr.split()), out
    with pytest.raises(ConfigError, match="use project or user"):
        settings_path("codex", "local", cwd=tmp_path)
