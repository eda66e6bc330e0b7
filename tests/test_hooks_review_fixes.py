"""A review of the hooks' tour fixes (bad53a4) found:

1. A loop-mode claim the server ran after the hook's 1 s socket timeout (a busy server runs
   it when it is free) left the task leased to the agent with its token lost: the session
   could not report or renew it, and the hook said the server could not be reached.
2. More than 1,000 kept lease tokens failed every hook (``leases_of`` takes 1,000 ids a call),
   and the file was never trimmed.
3. A loop session's next task was cut to leave room for messages even when none were unread:
   with a small ``--budget`` a long task lost its report and fail instructions.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import MAX_PAGE, ConnectionFailed, Settings, Swarm
from redis_swarm import _lease_tokens as tokens
from redis_swarm._budget import Budget
from redis_swarm._hooks.events import MIN_MESSAGES_ROOM, HookOptions, _next_task, handle
from redis_swarm._hooks.reach import hook_swarm
from redis_swarm._models import TaskStatus

from ._servers import RedisServer, ServerFactory

LOOP = HookOptions(loop=True, queues=("q",), agent="agent1")
STOP = {"session_id": "s1", "hook_event_name": "Stop", "stop_hook_active": False}


@pytest.fixture
def own_server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of the test's own, which takes ``DEBUG SLEEP``: it is made busy."""
    server = servers.start(extra=["--enable-debug-command", "yes"])
    yield server
    server.kill()


@contextlib.contextmanager
def busy(server: RedisServer, seconds: float) -> Iterator[None]:
    """``server`` busy for ``seconds`` (``DEBUG SLEEP``, as a long script or a fork for a
    save holds it: it answers nothing, then runs what it was sent), from the block's start
    to its end at the soonest."""
    address = ("127.0.0.1", server.port or 0)
    with socket.create_connection(address) as sleeper, socket.create_connection(address) as probe:
        sleeper.sendall(f"DEBUG SLEEP {seconds}\r\n".encode())
        probe.settimeout(0.1)
        while True:  # until a PING goes unanswered: the sleep has begun
            probe.sendall(b"PING\r\n")
            try:
                probe.recv(64)
            except TimeoutError:
                break
        yield
        assert sleeper.recv(64) == b"+OK\r\n"  # (the sleep is over)


@pytest.fixture
def swarm(redis_url: str, swarm_home: Path) -> Iterator[Swarm]:
    with Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home)) as handle:
        yield handle


# --- 1. a claim that got no reply


def test_a_loop_claim_a_busy_server_ran_late_is_adopted_by_the_next_hook(
    own_server: RedisServer, tmp_path: Path
) -> None:
    settings = Settings.from_url(own_server.url, swarm="test", home=tmp_path)
    with Swarm(settings) as swarm, hook_swarm(settings) as hooks:
        posted = swarm.post_task("q", "the next job")
        handle(hooks, "SessionStart", {**STOP, "source": "startup"}, LOOP)  # (registers)
        agent = hooks.get_agent("agent1")
        with busy(own_server, 3.0), pytest.raises(ConnectionFailed) as caught:
            # (the step of Stop that claims: a Stop's reads before it would fail first)
            _next_task(hooks, "agent1", LOOP, agent, "s1")
        said = str(caught.value)
        assert "did not answer within 1 s" in said and "may be busy" in said, said
        assert "cannot reach" not in said and "the claim may still run" in said
        # The server ran the claim as it woke up (before the busy block ended).
        claimed = swarm.get_task(posted.id)
        assert claimed.worker == "agent1" and tokens.known(settings, "agent1") == {}
        assert len(tokens.unanswered(settings, "agent1")) == 1  # (the claim's secret)

    with hook_swarm(settings) as hooks:
        answer = handle(hooks, "Stop", STOP, LOOP)
    token = tokens.known(settings, "agent1").get(posted.id)
    assert token is not None and token.startswith(f"{claimed.attempts}."), token
    assert "before you stop" in answer.block and f"--token {token}" in answer.block, answer
    assert "not known here" not in answer.block
    assert tokens.unanswered(settings, "agent1") == []  # (used)
    with Swarm(settings) as swarm:
        swarm.report(posted.id, token, {"summary": "done"}, worker="agent1")
        assert swarm.get_task(posted.id).status is TaskStatus.COMPLETED


def test_a_kept_secret_proves_no_lease_that_is_not_its_claims(swarm: Swarm) -> None:
    swarm.post_task("q", "claimed elsewhere")
    other = swarm.claim("q", worker="agent1")  # its token kept nowhere on this machine
    assert other is not None
    tokens.keep_unanswered(swarm.settings, "agent1", ["not-the-secret-of-that-claim"])
    with hook_swarm(swarm.settings) as hooks:
        answer = handle(hooks, "Stop", STOP, LOOP)
    assert f"{other.id} (queue q) is yours: use the lease token your claim printed" in (
        answer.block
    ), answer
    assert tokens.known(swarm.settings, "agent1") == {}
    assert tokens.unanswered(swarm.settings, "agent1") == ["not-the-secret-of-that-claim"]


# --- 2. more tokens than one leases_of call takes


def test_over_a_page_of_kept_tokens_is_read_in_pages_and_trimmed(swarm: Swarm) -> None:
    swarm.post_task("q", "held")
    held = swarm.claim("q", worker="agent1")
    assert held is not None and held.token is not None
    for i in range(MAX_PAGE):  # tokens of tasks long gone (kept, say, while the home was full)
        tokens.remember(swarm.settings, "agent1", f"t-gone-{i:04d}", f"1.secret{i}")
    tokens.remember(swarm.settings, "agent1", held.id, held.token)  # the last page's
    with hook_swarm(swarm.settings) as hooks:
        answer = handle(hooks, "PreCompact", {"session_id": "s1"}, LOOP)
    assert answer.message == f"renewed the leases of {held.id}", answer
    assert tokens.known(swarm.settings, "agent1") == {held.id: held.token}


# --- 3. a next task cut for messages that are not there


def test_a_loop_task_is_not_cut_when_no_message_follows(swarm: Swarm) -> None:
    options = HookOptions(loop=True, queues=("q",), agent="agent1", budget=Budget(500))
    swarm.post_task("q", "Review this. " + "x" * 1_300)
    with hook_swarm(swarm.settings) as hooks:
        block = handle(hooks, "Stop", STOP, options).block
        # (the task is longer than the room left beside messages: the cut this test is about)
        assert len(block) > options.limit - MIN_MESSAGES_ROOM - 2, len(block)
        assert "x" * 1_300 in block and "task report" in block and "task fail" in block, block
        assert len(block) <= options.limit
        # A message unread: it comes with the next task.
        swarm.post_task("q", "the one after")
        first = swarm.list_tasks(queue="q", status=TaskStatus.CLAIMED).items[0]
        swarm.report(first.id, tokens.known(swarm.settings, "agent1")[first.id], {"summary": "s"})
        swarm.broadcast("URGENT: stop", sender="lead")
        block = handle(hooks, "Stop", STOP, options).block
    assert "the one after" in block and "URGENT: stop" in block, block
