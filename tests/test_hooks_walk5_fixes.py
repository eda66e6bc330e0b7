"""Defects an adversarial walk of the hooks found (the fifth), each held fixed here:

1. A subagent's last message over the hook's 4 MiB input cap was refused (exit 1, nothing kept,
   its task claimed until its lease ended), and one whose finding the core refuses for its
   size (a 3 MB ``details``) failed its task, the message thrown away: now the task is
   reported with a finding cut to fit, the whole message kept on this machine and named; an
   input over the (larger) cap is kept whole and the line says where.
2. SubagentStop's message, Redis paused, named the URL with the hook's own options
   (``?retries=0&socket_timeout=1...``) where every other event names it as given.
3. A SWARM_AGENT too long for a file name was refused, then said to be a token file that
   "holds no JSON object" and cannot be set aside ([Errno 36]): one line now, before any
   file is named from it.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Settings, Swarm, TaskStatus
from redis_swarm import _lease_tokens as tokens
from redis_swarm._hooks.events import subagent_for
from redis_swarm.cli._hooks import MAX_INPUT_BYTES

from ._cli import Cli
from ._servers import RedisServer

LEAD = "lead"
WORKER = subagent_for(LEAD, "sub-1")


@pytest.fixture
def swarm(redis_url: str, swarm_home: Path) -> Iterator[Swarm]:
    with Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home)) as handle:
        yield handle


def _claimed(swarm: Swarm) -> str:
    """A task claimed by the subagent ``WORKER``, its token kept as `swarm task claim` keeps it."""
    posted = swarm.post_task("review", "review src/auth.py", max_attempts=3)
    task = swarm.claim("review", worker=WORKER)
    assert task is not None and task.token is not None and task.id == posted.id
    tokens.remember(swarm.settings, WORKER, task.id, task.token)
    return task.id


def _stop_input(message: str) -> bytes:
    payload = {
        "session_id": "s1",
        "hook_event_name": "SubagentStop",
        "agent_id": "sub-1",
        "agent_type": "general-purpose",
        "stop_hook_active": False,
        "last_assistant_message": message,
    }
    return json.dumps(payload).encode()


def _cli(url: str, home: Path) -> Cli:
    return Cli(url, env={"SWARM_AGENT": LEAD, "SWARM_HOME": str(home)})


def _said(cli: Cli, raw: bytes) -> str:
    """The SubagentStop answered with exit 0: its message for the user."""
    out = cli("hook", "SubagentStop", "--client", "claude", "--queue", "review", input=raw)
    assert "Traceback" not in out.stderr, out
    answer: dict[str, Any] = json.loads(out.stdout)
    said: str = answer["systemMessage"]
    return said


def _kept_in(finding_extra: dict[str, Any]) -> Path:
    host, _, path = str(finding_extra["last_message_kept_in"]).partition(":")
    assert host == socket.gethostname()
    return Path(path)


# --- 1. a subagent's big last message is reported, cut to fit, and kept whole


def test_a_last_message_over_4_mib_is_reported_and_kept_whole(
    redis_url: str, swarm_home: Path, swarm: Swarm
) -> None:
    task_id = _claimed(swarm)
    message = "The review found no leak.\n" + "Checked line by line, all clean.\n" * 160_000
    assert len(message) > 5_000_000
    said = _said(_cli(redis_url, swarm_home), _stop_input(message))
    assert f"{task_id} reported" in said and "is kept in" in said, said
    task = swarm.get_task(task_id)
    assert task.status is TaskStatus.COMPLETED and task.finding_id is not None
    finding = swarm.get_finding(task.finding_id)
    assert finding.summary.startswith("The review found no leak.")
    assert finding.details is not None and len(finding.details) <= 64 * 1024
    kept = _kept_in(finding.extra)
    assert str(kept) in said and kept.read_text(encoding="utf-8") == message
    assert finding.extra["last_message_chars"] == len(message)
    assert kept.stat().st_mode & 0o077 == 0


def test_a_refused_finding_is_reported_cut_with_the_whole_message_kept(
    redis_url: str, swarm_home: Path, swarm: Swarm
) -> None:
    task_id = _claimed(swarm)
    found = {"summary": "token leak in refresh()", "details": "D" * 3_000_000}
    message = "Done.\n```json\n" + json.dumps(found) + "\n```"
    said = _said(_cli(redis_url, swarm_home), _stop_input(message))
    assert f"{task_id} reported with its finding cut to fit" in said, said
    assert "the finding was refused" in said
    task = swarm.get_task(task_id)
    assert task.status is TaskStatus.COMPLETED and task.finding_id is not None
    finding = swarm.get_finding(task.finding_id)
    assert finding.summary == "token leak in refresh()"
    assert finding.extra["finding_refused"].startswith("the finding was refused: ")
    kept = _kept_in(finding.extra)
    assert kept.read_text(encoding="utf-8") == message
    assert finding.details is not None and finding.details.startswith(message[:1000])
    assert finding.details.endswith(f"is kept in {kept}]")


def test_an_input_over_the_cap_is_kept_whole_and_said(
    redis_url: str, swarm_home: Path, swarm: Swarm
) -> None:
    _claimed(swarm)
    raw = _stop_input("x" * (MAX_INPUT_BYTES + 1000))
    cli = _cli(redis_url, swarm_home)
    out = cli("hook", "SubagentStop", "--queue", "review", input=raw, expect=1)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "is over 16 MiB" in lines[0], out
    assert "it is kept whole in " in lines[0] and "report each by hand" in lines[0]
    kept = Path(lines[0].split("it is kept whole in ", 1)[1].split(". ", 1)[0])
    assert kept.read_bytes() == raw and kept.stat().st_mode & 0o077 == 0
    # (nowhere a hook would read it as a subagent's spooled message)
    assert tokens.spooled(swarm.settings, LEAD) == []


def test_a_kept_input_is_bounded_json_and_old_ones_pruned(
    redis_url: str, swarm_home: Path, swarm: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endless stdin filled the disk: what is kept is at most MAX_KEPT_INPUT, only an
    input that is a JSON object is kept, and kept messages and inputs older than KEPT_DAYS
    go as the next is kept (the spool grew without bound)."""
    monkeypatch.setattr(tokens, "MAX_KEPT_INPUT", 3 * 1024 * 1024)
    head = b'{"hook_event_name": "SubagentStop", "last_assistant_message": "'
    kept = tokens.keep_input(swarm.settings, "SubagentStop", head, io.BytesIO(b"x" * 10**7))
    assert kept is not None and kept[1] is True
    assert kept[0].stat().st_size == tokens.MAX_KEPT_INPUT
    assert tokens.keep_input(swarm.settings, "SubagentStop", b"xxxx", io.BytesIO(b"y")) is None
    old = time.time() - (tokens.KEPT_DAYS + 1) * 86400
    os.utime(kept[0], (old, old))
    message = tokens.keep_message(swarm.settings, LEAD, "w-1", "the whole message")
    assert not kept[0].exists() and message.exists()


def test_another_events_input_over_the_cap_is_refused_in_one_line(
    redis_url: str, swarm_home: Path
) -> None:
    raw = json.dumps({"session_id": "s1", "prompt": "y" * (MAX_INPUT_BYTES + 10)}).encode()
    out = _cli(redis_url, swarm_home)("hook", "UserPromptSubmit", input=raw, expect=1)
    assert out.stderr.count("\n") == 1 and "is over 16 MiB" in out.stderr, out
    assert not (swarm_home / "spool").exists()


# --- 2. SubagentStop names the URL as given, Redis paused


def _paused(server: RedisServer, ms: int) -> None:
    with socket.create_connection(("127.0.0.1", server.port or 0)) as raw:
        raw.sendall(f"CLIENT PAUSE {ms} ALL\r\n".encode())
        assert raw.recv(64) == b"+OK\r\n"


def test_subagent_stop_names_the_url_as_given(own_server: RedisServer, tmp_path: Path) -> None:
    settings = Settings.from_url(own_server.url, swarm="test", home=tmp_path)
    with Swarm(settings) as swarm:
        task_id = _claimed(swarm)
    _paused(own_server, 3000)
    said = _said(_cli(own_server.url, tmp_path), _stop_input("The bug is in parse()."))
    assert "did not answer" in said and "next hook reports it" in said, said
    assert "retries=" not in said and "socket_timeout" not in said, said
    assert f":{own_server.port}" in said
    with Swarm(settings) as swarm:  # (waits out the pause)
        assert swarm.get_task(task_id).status is TaskStatus.CLAIMED


# --- 3. an agent id too long for a file name is refused once


def test_an_agent_id_too_long_is_refused_in_one_line(redis_url: str, swarm_home: Path) -> None:
    settings = Settings.from_url(redis_url, swarm="test", home=swarm_home)
    tokens.remember(settings, "w1", "t-1", "1.x")  # (the folder of tokens exists)
    cli = Cli(redis_url, env={"SWARM_AGENT": "a" * 300, "SWARM_HOME": str(swarm_home)})
    start = json.dumps({"session_id": "s1", "source": "startup"})
    out = cli("hook", "SessionStart", input=start, expect=1)
    assert out.stderr.count("\n") == 1, out
    assert "SWARM_AGENT is 300 characters long; the limit is 64" in out.stderr, out
    assert "JSON" not in out.stderr and "Errno" not in out.stderr


def test_a_token_file_name_too_long_is_not_said_unreadable(swarm_home: Path) -> None:
    settings = Settings.from_url("redis://127.0.0.1:1", swarm="test", home=swarm_home)
    tokens.remember(settings, "w1", "t-1", "1.x")  # (the folder exists)
    assert tokens.set_aside_unreadable(settings, "a" * 300) is None
