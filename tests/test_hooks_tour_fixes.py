"""A user tour of the hooks found (docs/live.md):

1. With over 2,000 claimed tasks in the swarm the hooks lost an agent's leases and forgot
   its lease tokens: they listed the claimed tasks, oldest first, and stopped at 2,000.
2. A server that accepts connections but does not answer held every hook for 10 s.
3. A ``--loop`` session never saw a broadcast: Stop showed direct messages only.
4. SessionStart and Stop showed 3 held tasks and did not say more exist.
5. Odd input (nested deep, not UTF-8, half a surrogate pair, a numeric session_id) gave a
   traceback, a bare codec error, or "has no session_id".
6. Hook errors named the URL with the hooks' own ``?retries=2&connect_timeout=1``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_swarm import Settings, Swarm, ValidationError
from redis_swarm import _lease_tokens as tokens
from redis_swarm._hooks.events import HELD_SHOWN, subagent_for
from redis_swarm._hooks.reach import HOOK_SOCKET_TIMEOUT_S, SESSION_END_TIMEOUT_S, hook_settings
from redis_swarm._keys import Keys

from ._cli import SRC, Cli
from ._servers import RedisServer, ServerFactory


@pytest.fixture
def swarm(redis_url: str, swarm_home: Path) -> Iterator[Swarm]:
    with Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home)) as handle:
        yield handle


@pytest.fixture
def cli(redis_url: str, swarm_home: Path) -> Cli:
    return Cli(redis_url, env={"SWARM_AGENT": "", "SWARM_HOME": str(swarm_home)})


def _hook(cli: Cli, event: str, *options: str, agent: str, **payload: Any) -> dict[str, Any]:
    body = {"session_id": "k1", "hook_event_name": event, **payload}
    out = cli("hook", event, *options, input=json.dumps(body), env={"SWARM_AGENT": agent})
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


def _context(answer: dict[str, Any]) -> str:
    return str(answer.get("hookSpecificOutput", {}).get("additionalContext", ""))


def _claim_kept(swarm: Swarm, queue: str, worker: str) -> Any:
    """A claim as ``swarm task claim`` makes it: its token kept on this machine."""
    task = swarm.claim(queue, worker=worker)
    assert task is not None and task.token is not None
    tokens.remember(swarm.settings, worker, task.id, task.token)
    return task


# --- 1. an agent's leases, however many tasks the swarm holds claimed


def test_the_hooks_find_an_agents_leases_past_2000_claimed_tasks(swarm: Swarm, cli: Cli) -> None:
    swarm.post_tasks([{"queue": "bulkq", "description": f"bulk {i}"} for i in range(2_001)])
    for _ in range(21):
        swarm.claim("bulkq", worker="bulkw", n=100)
    swarm.post_tasks([{"queue": "kq", "description": d} for d in ("kate's job", "next job")])
    mine = cli.json("task", "claim", "kq", "--worker", "kate")  # keeps its token here
    sub = subagent_for("kate", "a1")
    swarm.post_task("subq", "the subagent's job")
    theirs = _claim_kept(swarm, "subq", sub)
    loop = ("--loop", "--queue", "kq")

    stop = _hook(cli, "Stop", *loop, agent="kate", stop_hook_active=False)
    assert stop.get("decision") == "block" and mine["id"] in stop["reason"], stop
    assert "before you stop" in stop["reason"] and "next job" not in stop["reason"]
    assert swarm.queue_stats()["kq"]["pending"] == 1  # no second task claimed
    assert tokens.known(swarm.settings, "kate") == {mine["id"]: mine["token"]}
    assert (
        f"renewed the leases of {mine['id']}"
        in _hook(cli, "PreCompact", agent="kate")["systemMessage"]
    )
    assert f"--token {mine['token']}" in _context(_hook(cli, "SessionStart", agent="kate"))
    done = _hook(cli, "SubagentStop", agent="kate", agent_id="a1", last_assistant_message="ok")
    assert f"{theirs.id} reported" in done["systemMessage"], done
    assert swarm.get_task(theirs.id).status == "completed"


def test_a_token_is_forgotten_only_once_its_task_was_read_and_found_not_held(
    swarm: Swarm, cli: Cli, raw: Any
) -> None:
    swarm.post_tasks([{"queue": "q", "description": d} for d in ("done", "held")])
    done, held = _claim_kept(swarm, "q", "ann"), _claim_kept(swarm, "q", "ann")
    swarm.report(done.id, done.token, {"summary": "s"})  # settled where the CLI did not see
    unreadable = "t-unreadable"
    raw.hset(Keys("test").tasks, unreadable, "not json")
    tokens.remember(swarm.settings, "ann", unreadable, "its-token")
    _hook(cli, "PreCompact", agent="ann")
    # The settled one is dropped; the one stored unreadable may still be held: kept.
    assert tokens.known(swarm.settings, "ann") == {held.id: held.token, unreadable: "its-token"}


def test_leases_of_reads_the_tasks_asked_for_and_the_newest_leases(swarm: Swarm) -> None:
    swarm.post_tasks([{"queue": "q", "description": str(i), "data": {"n": i}} for i in range(3)])
    a, b, c = (swarm.claim("q", worker=w) for w in ("w1", "w1", "w2"))
    assert a is not None and b is not None and c is not None
    page = swarm.leases_of("w1", [b.id, c.id, "t-none"], newest_leases=0)
    assert [t.id for t in page] == [b.id] and page[0].data == {"n": 1}
    assert {t.id for t in swarm.leases_of("w1")} == {a.id, b.id}  # (the newest leases)
    with pytest.raises(ValidationError, match="the limit is 1,000: ask in batches"):
        swarm.leases_of("w1", [b.id] * 1_001, newest_leases=0)


# --- 2. a server that does not answer


@pytest.fixture
def paused(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of its own that accepts connections and answers nothing."""
    server = servers.start()
    client = server.client()
    client.client_pause(30_000)  # (every command, writes and reads alike)
    client.close()
    yield server
    server.kill()


def test_a_server_that_does_not_answer_fails_a_hook_within_seconds(
    paused: RedisServer, tmp_path: Path
) -> None:
    assert hook_settings(Settings.from_url(paused.url)).socket_timeout == HOOK_SOCKET_TIMEOUT_S
    env = {"PYTHONPATH": SRC, "SWARM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "redis_swarm", "--url", paused.url, "--swarm", "test"]
    payload = json.dumps({"session_id": "s1"})
    for event in ("UserPromptSubmit", "SessionEnd"):
        began = time.monotonic()
        done = subprocess.run(
            [*argv, "hook", event], input=payload, env=env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        took = time.monotonic() - began
        assert done.returncode == 1 and done.stdout == "", done
        assert done.stderr.startswith(f"swarm hook {event}: "), done.stderr
        # (said as what it is: the server took the connection and did not answer in time;
        # SessionEnd waits less, to fit in Claude Code's 1.5 s for it)
        waited = SESSION_END_TIMEOUT_S if event == "SessionEnd" else HOOK_SOCKET_TIMEOUT_S
        said = f"the Redis server at {paused.url}/0 did not answer within {waited:g} s: it may be "
        assert said in done.stderr, done.stderr
        assert took < 5.0, f"{event} took {took:.1f} s (the URL's socket timeout: 10 s)"


# --- 3. a loop session sees broadcasts


def test_a_loop_session_is_shown_broadcasts_with_its_next_task(swarm: Swarm, cli: Cli) -> None:
    loop = ("--loop", "--queue", "rq")
    _hook(cli, "SessionStart", *loop, agent="mia", source="startup")
    swarm.post_tasks([{"queue": "rq", "description": d} for d in ("review a", "review b")])
    note = swarm.broadcast("URGENT: stop reviewing auth", sender="lead")
    first = _hook(cli, "Stop", *loop, agent="mia", stop_hook_active=False)
    assert "Next task for you" in first["reason"] and "review a" in first["reason"], first
    assert "URGENT: stop reviewing auth" in first["reason"] and note.id in first["reason"]
    assert "mia" in swarm.message_status(note.id).read_by
    later = swarm.broadcast("second notice", sender="lead")
    refused = _hook(cli, "Stop", *loop, agent="mia", stop_hook_active=False)  # holds review a
    assert "before you stop" in refused["reason"] and "second notice" in refused["reason"]
    assert "URGENT" not in refused["reason"]  # (shown once)
    assert "mia" in swarm.message_status(later.id).read_by


# --- 4. more held tasks than an answer shows


def test_the_held_tasks_not_shown_are_named_with_how_to_see_them(swarm: Swarm, cli: Cli) -> None:
    count = HELD_SHOWN + 2
    swarm.post_tasks([{"queue": "q", "description": f"job {i}"} for i in range(count)])
    held = [_claim_kept(swarm, "q", "ned") for _ in range(count)]
    rest = held[HELD_SHOWN:]
    start = _context(_hook(cli, "SessionStart", agent="ned", source="startup"))
    stop = _hook(cli, "Stop", agent="ned", stop_hook_active=False)["reason"]
    for text in (start, stop):
        assert f"Shown here: {HELD_SHOWN} of the {count}; and 2 more" in text, text
        assert " task show ID: " in text
        for task in rest:
            assert f"{task.id} (lease token {task.token})" in text


# --- 5. odd input


@pytest.mark.parametrize(
    ("stdin", "said"),
    [
        (b"[" * 100_000, "the hook input is nested too deeply to read"),
        (b'{"session_id": "\xff\xfe"}', "the hook input is not UTF-8 text (byte 0xff at offset"),
        (b'{"session_id": "\\ud800"}', "the hook input holds \\ud800, half of a UTF-16"),
        (b'{"session_id": 12}', "the hook input's session_id is 12, not a string"),
    ],
)
def test_odd_input_is_one_line_saying_what_is_wrong(cli: Cli, stdin: bytes, said: str) -> None:
    out = cli("hook", "Stop", "--client", "claude", input=stdin, expect=1)
    assert out.stderr.startswith(f"swarm hook Stop: {said}"), out
    assert out.stderr.count("\n") == 1 and out.stdout == ""


# --- 6. the URL as the user gave it


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_hook_error_names_the_url_as_given(servers: ServerFactory, tmp_path: Path) -> None:
    down = f"redis://127.0.0.1:{_closed_port()}"
    out = Cli(down, env={"SWARM_HOME": str(tmp_path)})(
        "hook", "UserPromptSubmit", input='{"session_id": "s"}', expect=1
    )
    assert f"cannot reach Redis at {down}/0:" in out.stderr and "retries" not in out.stderr, out
    server = servers.start()
    try:
        client: redis.Redis = server.client()
        client.config_set("requirepass", "sesame")
        client.close()
        given = f"{server.url}?socket_timeout=30"
        out = Cli(given, env={"SWARM_HOME": str(tmp_path)})(
            "hook", "UserPromptSubmit", input='{"session_id": "s"}', expect=1
        )
        assert f"as in redis://USER:PASSWORD@127.0.0.1:{server.port}/0?socket_timeout=30" in (
            out.stderr
        ), out
        assert "retries" not in out.stderr and "connect_timeout" not in out.stderr
    finally:
        server.kill()
