"""``swarm serve --session``: a slot joins once per start of its server. Recording each new
conversation on the slot's agent (``_remember``) revises the record it joined with; it used
to register the slot again, and the event stream (``swarm events``, the dashboard) showed the
slot joining once more at every new conversation. The agents' ``join(announce=False)``
behind it: no ``agent.joined`` within a life, one when it starts a new one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm

from . import _fake_claude
from ._cli import SRC

BOOK = "".join(f"line {i}: tea\n" for i in range(1, 200))
SLOT = "serve-lib-1"
RESUMING = f"{sys.executable} {_fake_claude.SOURCE} -p --output-format json --resume {{session}}"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        handle.publish_context("lib", BOOK, source="book.md")
        yield handle


def joins(swarm: Swarm, agent: str) -> list[dict[str, str]]:
    """The ``agent.joined`` events of ``agent``, oldest first (their fields)."""
    return [e.fields for e in swarm.events(types="agent.joined") if e.fields["agent"] == agent]


class Serving:
    """``swarm serve lib --session`` as a process, with the scripted agent."""

    def __init__(self, redis_url: str, state: Path, log: Path) -> None:
        env = {**os.environ, "SWARM_URL": redis_url, "SWARM_NAME": "test", "PYTHONPATH": SRC,
               "FAKE_STATE": str(state)}  # fmt: skip
        args = ["serve", "lib", "--exec", RESUMING, "--session", "--json"]
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "redis_swarm", *args], env=env, stdout=out, stderr=out
            )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise
        assert code == 0, self.log.read_text()


def test_a_slot_joins_once_per_start_however_many_conversations_it_records(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    state = tmp_path / "fake"
    state.mkdir()
    log = tmp_path / "serve.log"
    first = Serving(redis_url, state, log)
    try:
        one = swarm.ask("lib", "Q1: first?", timeout_s=30)  # a new conversation, recorded
        assert one.usage is not None and one.usage.session_id
        (state / "broken").write_text(one.usage.session_id)
        two = swarm.ask("lib", "Q2: second?", timeout_s=30)  # it failed: another, recorded
        swarm.publish_context("lib", BOOK + "line 200: more tea\n", source="book.md")
        three = swarm.ask("lib", "Q3: third?", timeout_s=30)  # a new context: another
    finally:
        first.stop()
    sessions = [a.usage.session_id if a.usage else None for a in (one, two, three)]
    assert len(set(sessions)) == 3, sessions  # three conversations recorded in one start
    assert joins(swarm, SLOT) == [{"agent": SLOT, "role": "answerer", "parent": "lib"}]
    slot = swarm.get_agent(SLOT)
    assert slot.role == "answerer" and slot.parent == "lib"
    assert slot.metadata == {
        "session": sessions[2], "context_version": swarm.context_info("lib").version
    }  # fmt: skip

    second = Serving(redis_url, state, log)  # a restart: the slot joins again, once
    try:
        four = swarm.ask("lib", "Q4: fourth?", timeout_s=30)
    finally:
        second.stop()
    assert four.usage is not None and four.usage.session_id == sessions[2]  # resumed
    assert len(joins(swarm, SLOT)) == 2
    again = swarm.get_agent(SLOT)
    assert again.registered_at == slot.registered_at  # the same life
    assert again.metadata is not None and again.metadata["session"] == sessions[2]


def test_a_join_that_does_not_announce_records_no_arrival_within_a_life(swarm: Swarm) -> None:
    def answerer(session: str) -> dict[str, object]:
        return {"role": "answerer", "parent": "lib", "metadata": {"session": session}}

    swarm.join("slot", lambda _stored: answerer("s0"))
    revised = swarm.join("slot", lambda _stored: answerer("s1"), announce=False)
    assert revised.metadata == {"session": "s1"}
    assert len(joins(swarm, "slot")) == 1
    swarm.deregister("slot")  # a new life is announced however it is joined
    swarm.join("slot", lambda stored: answerer("s2" if stored is None else "?"), announce=False)
    assert len(joins(swarm, "slot")) == 2
    assert swarm.get_agent("slot").metadata == {"session": "s2"}
