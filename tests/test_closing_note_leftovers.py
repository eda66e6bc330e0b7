"""Small mends from a closing note: the stale default said once (a slot's beats derived from
it), the role's bound named once, the peek's hint naming the command as it was typed, and a
message seq given to mark_read without its ``-N``."""

from __future__ import annotations

import inspect

import pytest
from click.testing import CliRunner

from redis_swarm import AsyncSwarm, Message, Swarm, ValidationError
from redis_swarm._models import STALE_AFTER_S
from redis_swarm._runner.slot_presence import BEAT_EVERY_S
from redis_swarm._validate import MAX_ROLE
from redis_swarm.cli import main

from ._cli import Cli


def test_the_stale_default_is_one_constant_and_a_slot_beats_three_times_within_it() -> None:
    for face in (Swarm, AsyncSwarm):
        for name in ("status", "agents", "get_agent", "sweep"):
            stale = inspect.signature(getattr(face, name)).parameters["stale_after_s"]
            assert stale.default == STALE_AFTER_S, (face, name)
    assert BEAT_EVERY_S * 3 == STALE_AFTER_S


def test_the_role_bound_is_one_constant_for_register_join_and_listing(swarm: Swarm) -> None:
    swarm.register("r" * MAX_ROLE, name="w1")
    too_long = "r" * (MAX_ROLE + 1)
    said = f"role is {MAX_ROLE + 1} characters long; the limit is {MAX_ROLE}"
    with pytest.raises(ValidationError, match=said):
        swarm.register(too_long, name="w2")
    with pytest.raises(ValidationError, match=said):
        swarm.join("w1", lambda _agent: {"role": too_long})
    with pytest.raises(ValidationError, match=said):
        swarm.agents(role=too_long)


def test_the_peek_hint_names_the_command_as_it_was_typed(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.register("worker", name="w")
        first = swarm.send("w", "hello", sender="boss")
    env = {"SWARM_URL": redis_url, "SWARM_NAME": "test"}
    for typed in ("swarm", "python -m redis_swarm"):
        out = CliRunner().invoke(main, ["msg", "inbox", "w", "--peek"], prog_name=typed, env=env)
        assert out.exit_code == 0, out.output
        assert f"'{typed} msg mark-read {first.id} --agent w' marks these read" in out.stderr


def _to_a_new_millisecond(swarm: Swarm, agent: str) -> Message:
    """Send ``agent`` messages until one is the first of its millisecond (seq ``T-0``)."""
    for i in range(10_000):
        sent = swarm.send(agent, f"message {i}", sender="boss")
        if sent.seq.endswith("-0"):
            return sent
    raise AssertionError("no message was the first of its millisecond")


def test_mark_read_takes_a_seq_without_its_suffix_as_its_first_message(
    cli: Cli, swarm: Swarm
) -> None:
    """``1700000000000`` is ``1700000000000-0``: the messages through it are read, the later
    ones not (a bare number was looked up as a message id, unknown)."""
    swarm.register("worker", name="w")

    def by_cli(agent: str, through: str) -> None:
        cli("msg", "mark-read", through, "--agent", agent)

    for mark in (swarm.mark_read, by_cli):
        through = _to_a_new_millisecond(swarm, "w")
        after = swarm.send("w", "sent after it", sender="boss")
        mark("w", through.seq.removesuffix("-0"))
        assert [m.id for m in swarm.inbox("w", ack=False)] == [after.id]
        swarm.mark_read("w", after.seq)
