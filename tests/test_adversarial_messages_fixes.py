"""Fixes from an adversarial run: a seed reader sees the text of a message that carries data
too; a seed role's close() keeps an agent whose messages wait unread (and says so);
``swarm agents deregister`` counts the unread messages it drops; ``swarm events --since``
at the oldest kept event's own ms says nothing was trimmed; a sweep's refusal of inf says
a finite number; ``swarm msg send`` to a name no agent can have says so."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator

import pytest

from redis_swarm import (
    EphemeralWorker,
    RedisSwarmCoordinator,
    SonnetCoordinator,
    Swarm,
    SwarmMemoryShard,
    ValidationError,
)
from redis_swarm._keys import Keys

from ._cli import Cli
from ._handles import must
from ._raw import raw_client


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


# --- 1. a message with text and data


def test_a_seed_reader_gets_the_text_and_the_data_of_a_message_with_both(
    redis_url: str, cli: Cli
) -> None:
    with (
        SwarmMemoryShard(url=redis_url, swarm="test") as shard,
        SonnetCoordinator(url=redis_url, swarm="test") as sonnet,
    ):
        sonnet.send(
            shard.agent_id, "use v2 and re-run pass 3", kind="directive", data={"version": "ab12"}
        )
        cli("msg", "send", shard.agent_id, "see the data", "--data", '{"n": 1}')
        # what the seed API sends round-trips as before, a dict with "text" and "data" too
        sent = [
            "done",
            {"type": "status", "left": 0},
            {"text": "t", "data": {"d": 1}},
            [1, 2, 3],
            42,
            None,
            "",
            {},
        ]
        for message in sent:
            sonnet.send_message(shard.agent_id, message)
        sonnet.request_synthesis(shard.agent_id, "Pass 1", "be brief")
        got = [m["content"] for m in shard.get_messages(limit=20)]
    assert got[:2] == [
        {"text": "use v2 and re-run pass 3", "data": {"version": "ab12"}},
        {"text": "see the data", "data": {"n": 1}},
    ]
    assert got[2:-1] == sent
    assert got[-1] == {"pass_name": "Pass 1", "instructions": "be brief"}


def test_a_value_message_with_a_text_of_its_own_keeps_the_text(redis_url: str) -> None:
    with (
        RedisSwarmCoordinator(url=redis_url, swarm="test") as v1,
        Swarm(redis_url, swarm="test") as s,
    ):
        me = v1.register_agent("shard")
        s.send(me, "the count", kind="json", data={"value": 7})
        [message] = v1.get_messages()
    assert message["content"] == {"text": "the count", "data": {"value": 7}}


# --- 2. close() with unread messages


def test_close_keeps_a_worker_with_unread_messages_and_warns(redis_url: str, swarm: Swarm) -> None:
    sonnet = SonnetCoordinator(url=redis_url, swarm="test")
    worker = EphemeralWorker(url=redis_url, swarm="test")
    worker.heartbeat()
    name = worker.worker_id
    sonnet.send_message(name, "stop after this task")
    with pytest.warns(UserWarning, match=rf"agent {name} registered \(marked stale\)") as said:
        worker.close()
    assert said[0].filename == __file__  # the line that called close()
    assert "swarm msg inbox" in str(said[0].message)
    kept = swarm.get_agent(name)
    assert kept.alive is False  # stale at once, not alive a minute
    assert [m.body for m in swarm.inbox(name)] == ["stop after this task"]
    assert not [e for e in swarm.events(types=["agent.left"]) if e.fields["agent"] == name]
    sonnet.close()
    # one with nothing unread leaves as before, without a word
    other = EphemeralWorker(url=redis_url, swarm="test")
    other.heartbeat()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other.close()
    assert other.worker_id not in {a.id for a in swarm.agents()}


# --- 3. swarm agents deregister


def test_deregister_says_how_many_unread_messages_it_dropped(cli: Cli, swarm: Swarm) -> None:
    for name in ("z1", "z2", "z3"):
        swarm.register("shard", name=name)
    swarm.send("z1", "one")
    swarm.send("z1", "two")
    swarm.send("z3", "three")
    out = cli("agents", "deregister", "z1")
    assert out.stdout.strip() == "deregistered z1 (2 unread messages dropped)"
    assert cli("agents", "deregister", "z2").stdout.strip() == "deregistered z2"
    assert cli.json("agents", "deregister", "z3") == {"deregistered": "z3", "unread": 1}
    assert {a.id for a in swarm.agents()} == set()


# --- 4. swarm events --since at the oldest kept event


def test_a_since_at_the_oldest_kept_event_says_nothing_was_trimmed(
    cli: Cli, redis_url: str
) -> None:
    ms = 1_700_000_000_000
    with raw_client(redis_url) as r:
        for stream_id in (f"{ms - 5}-0", f"{ms - 5}-1", f"{ms}-0", f"{ms}-1", f"{ms + 7}-0"):
            r.xadd(Keys("test").events, {"type": "task.posted", "task": "t"}, id=stream_id)
        r.xtrim(Keys("test").events, maxlen=3, approximate=False)  # the oldest kept: ms-0
    from_ms = cli("events", "--since", str(ms))
    assert from_ms.stdout.split()[1] == f"{ms}-0"
    assert "trimmed" not in from_ms.stderr  # the first event from ms on is kept
    assert "trimmed" not in cli("events", "--since", f"{ms}-0").stderr
    # before it: events were trimmed, and it says so
    assert f"up to {ms}-0 were trimmed" in cli("events", "--since", str(ms - 1)).stderr
    assert f"up to {ms}-0 were trimmed" in cli("events", "--since", f"{ms - 5}-1").stderr
    with raw_client(redis_url) as r:
        r.xtrim(Keys("test").events, maxlen=2, approximate=False)  # the oldest kept: ms-1
    # after ms-0, the next id: nothing between them was trimmed
    after = cli("events", "--since", f"{ms}-0")
    assert after.stdout.split()[1] == f"{ms}-1" and "trimmed" not in after.stderr
    assert f"up to {ms}-1 were trimmed" in cli("events", "--since", str(ms)).stderr
    with Swarm(redis_url, swarm="test") as swarm:  # the core's answer, which every face reads
        assert swarm.events_trimmed(f"{ms}-0") is None
        assert swarm.events_trimmed(ms + 1) is None
        assert must(swarm.events_trimmed(ms)).oldest == f"{ms}-1"


# --- 6. an infinite max age


def test_a_sweep_of_inf_asks_for_a_finite_number(swarm: Swarm, redis_url: str) -> None:
    finite = r"must be a number of seconds, finite and >= 0 \(at most 1e\+09\), not "
    for huge in (float("inf"), 1e306):  # (1e306: its milliseconds overflowed an int)
        with pytest.raises(ValidationError, match=finite + repr(huge).replace("+", r"\+")):
            swarm.sweep(huge)
    with (
        RedisSwarmCoordinator(url=redis_url, swarm="test") as v1,
        pytest.raises(
            ValidationError, match=r"^max_age_seconds must be a number of seconds, finite"
        ),
    ):
        v1.cleanup_stale_agents(float("inf"))  # type: ignore[arg-type]


# --- 7. msg send to a name no agent can have


def test_msg_send_to_a_name_beginning_with_a_dash_says_it_is_invalid(
    cli: Cli, redis_url: str
) -> None:
    out = cli("msg", "send", "--", "-k1", "hi", expect=2)
    assert "no agent '-k1' is registered, and none can be" in out.stderr
    assert "register" not in out.stderr.replace("is registered", "")
    # an agent stored under such a name before the rule (copied here by hand) is sent to
    with Swarm(redis_url, swarm="test") as s, raw_client(redis_url) as r:
        s.register("shard", name="ok1")
        record = json.loads(r.hget(Keys("test").agents, "ok1"))
        r.hset(Keys("test").agents, "-k2", json.dumps({**record, "id": "-k2"}))
        assert cli("msg", "send", "--", "-k2", "hi").stdout.startswith("sent ")
        assert [m.body for m in s.inbox("-k2")] == ["hi"]
