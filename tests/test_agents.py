"""Agents: registration, presence, parents and children, sweep (both shells)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import Agent, NotFound, Swarm, ValidationError
from redis_swarm._keys import Keys

from ._handles import FakeClock, make_swarm, untyped
from ._raw import raw_client
from .conftest import SWARM_KINDS

BAD_NAMES = ["a:b", "a{b", "a}b", "a*b", "a b", "a\x00b", "a\tb", "é", "", "x" * 10_000]
KEYS = Keys("test")


@pytest.fixture(params=SWARM_KINDS)
def clocked(request: pytest.FixtureRequest, redis_url: str) -> Iterator[tuple[Swarm, FakeClock]]:
    clock = FakeClock()
    handle = make_swarm(request.param, redis_url, clock=clock)
    yield handle, clock
    handle.close()


def _events(url: str, kind: str) -> list[dict[bytes, bytes]]:
    with raw_client(url) as r:
        return [f for _, f in r.xrange(KEYS.events) if f[b"type"] == kind.encode()]


def test_register_and_get(swarm: Swarm, redis_url: str) -> None:
    shard = swarm.register(
        "shard",
        name="shard-1",
        model="claude-opus",
        specialization="law",
        capacity_tokens=800_000,
        metadata={"tags": [], "big": 2**60, "nested": {"a": [1, {}]}},
    )
    assert isinstance(shard, Agent)
    assert (shard.id, shard.role, shard.model, shard.specialization) == (
        "shard-1",
        "shard",
        "claude-opus",
        "law",
    )
    assert shard.capacity_tokens == 800_000 and shard.implicit is False and shard.alive
    assert shard.registered_at is not None and shard.registered_at > 1_700_000_000_000
    assert shard.registered_at == shard.last_seen
    assert swarm.get_agent("shard-1") == shard
    worker = swarm.register("worker", parent="shard-1")
    assert worker.id.startswith("worker-") and worker.parent == "shard-1"
    assert swarm.register("worker").id != worker.id
    joined = _events(redis_url, "agent.joined")
    assert joined[0] == {b"type": b"agent.joined", b"agent": b"shard-1", b"role": b"shard"}
    assert joined[1][b"parent"] == b"shard-1"


def test_heartbeat_and_current_task_keep_the_record_intact(swarm: Swarm) -> None:
    meta = {"tags": [], "big": 2**60, "text": 'has ,"current_task": inside', "current_task": 1}
    agent = swarm.register("shard", name="s1", metadata=meta)
    task = swarm.post_task("q", "work", task_id="t-123")
    beat = swarm.heartbeat("s1", current_task=task.id)
    assert beat.current_task == "t-123" and beat.last_seen is not None
    assert beat.metadata == meta  # empty list, big int and look-alike keys unchanged
    assert swarm.heartbeat("s1").current_task == "t-123"  # None leaves it
    assert swarm.heartbeat("s1", current_task="").current_task is None  # "" clears it
    again = swarm.get_agent("s1")
    assert again.metadata == meta and again.registered_at == agent.registered_at
    with pytest.raises(NotFound, match="register it again"):
        swarm.heartbeat("ghost")


def test_reregistering_replaces_the_profile(swarm: Swarm) -> None:
    swarm.register("shard", name="s1", model="a")
    swarm.send("s1", "keep me")
    swarm.register("shard", name="s1", model="b")
    assert swarm.get_agent("s1").model == "b"
    assert [m.body for m in swarm.inbox("s1")] == ["keep me"]
    assert len(swarm.agents()) == 1


def test_presence_expiry_and_sweep(clocked: tuple[Swarm, FakeClock], redis_url: str) -> None:
    swarm, clock = clocked
    swarm.register("coordinator", name="boss")
    swarm.register("worker", name="w1", parent="boss")
    clock.advance(30)
    swarm.register("worker", name="w2", parent="boss")
    swarm.send("w1", "you will not read this")
    clock.advance(40)  # w1 and boss: 70 s silent; w2: 40 s
    assert {a.id: a.alive for a in swarm.agents()} == {"boss": False, "w1": False, "w2": True}
    assert [a.id for a in swarm.agents(alive=True)] == ["w2"]
    assert [a.id for a in swarm.agents(alive=False)] == ["boss", "w1"]
    assert [a.id for a in swarm.agents(stale_after_s=100, alive=True)] == ["boss", "w1", "w2"]
    assert swarm.get_agent("w1").alive is False
    assert swarm.get_agent("w1", stale_after_s=80).alive is True
    swarm.heartbeat("boss")
    assert swarm.get_agent("boss").alive is True
    assert swarm.sweep(60) == {"w1": 1}  # (its unread message dropped)
    assert [a.id for a in swarm.agents()] == ["boss", "w2"]
    with pytest.raises(NotFound):
        swarm.get_agent("w1")
    with pytest.raises(NotFound, match="register it again"):
        swarm.heartbeat("w1")
    (stale,) = _events(redis_url, "agent.stale")
    assert stale[b"agent"] == b"w1" and stale[b"unread"] == b"1"
    with raw_client(redis_url) as r:
        assert not r.exists(KEYS.inbox("w1"))
        assert not r.hexists(KEYS.cursors, "w1")
    assert swarm.sweep(60) == {}
    clock.advance(3600)
    assert sorted(swarm.sweep(0)) == ["boss", "w2"]
    assert swarm.agents() == []


def test_parents_and_children(swarm: Swarm) -> None:
    swarm.register("coordinator", name="boss")
    swarm.register("shard", name="s1", parent="boss")
    swarm.register("shard", name="s2", parent="boss")
    swarm.register("worker", name="w1", parent="s1")
    assert [a.id for a in swarm.agents(parent="boss")] == ["s1", "s2"]
    assert [a.id for a in swarm.agents(parent="s1")] == ["w1"]
    assert [a.id for a in swarm.agents(role="shard")] == ["s1", "s2"]
    assert swarm.agents(parent="nobody") == []


def test_implicit_workers_are_listed(swarm: Swarm, redis_url: str) -> None:
    """The work queue registers claiming workers with a minimal record."""
    with raw_client(redis_url) as r:
        t = r.time()
        now = t[0] * 1000 + t[1] // 1000
        record = {"id": "w-impl", "role": "worker", "implicit": True, "registered_at": now}
        r.hsetnx(KEYS.agents, "w-impl", json.dumps(record))
        r.zadd(KEYS.presence, {"w-impl": now})
    (agent,) = swarm.agents()
    assert (agent.id, agent.role, agent.implicit, agent.alive) == ("w-impl", "worker", True, True)
    assert agent.model is None and agent.metadata is None and agent.current_task is None
    swarm.post_task("q", "work", task_id="t-9")
    beat = swarm.heartbeat("w-impl", current_task="t-9")
    assert beat.current_task == "t-9" and beat.implicit is True
    assert swarm.get_agent("w-impl").current_task == "t-9"
    swarm.send("w-impl", "hello")
    assert [m.body for m in swarm.inbox("w-impl")] == ["hello"]
    swarm.deregister("w-impl")
    assert swarm.agents() == []


def test_deregister(swarm: Swarm, redis_url: str) -> None:
    swarm.register("worker", name="w1")
    for body in "abc":
        swarm.send("w1", body)
    assert [m.body for m in swarm.inbox("w1", limit=1)] == ["a"]  # read: not counted below
    assert swarm.deregister("w1") is None
    with pytest.raises(NotFound):
        swarm.get_agent("w1")
    with pytest.raises(NotFound):
        swarm.deregister("w1")
    with pytest.raises(NotFound, match="not registered"):
        swarm.send("w1", "late")
    (left,) = _events(redis_url, "agent.left")
    assert left == {b"type": b"agent.left", b"agent": b"w1", b"unread": b"2"}
    with raw_client(redis_url) as r:
        assert not r.exists(KEYS.inbox("w1"))


def test_bad_input(swarm: Swarm, redis_url: str) -> None:
    for name in BAD_NAMES:
        with pytest.raises(ValidationError):
            swarm.register("worker", name=name)
        with pytest.raises(ValidationError):
            swarm.register(name)
        with pytest.raises(ValidationError):
            swarm.register("worker", parent=name)
        with pytest.raises(ValidationError):
            swarm.heartbeat(name)
        with pytest.raises(ValidationError):
            swarm.get_agent(name)
        with pytest.raises(ValidationError):
            swarm.deregister(name)
    bad_profiles: list[dict[str, Any]] = [
        {"capacity_tokens": 0},
        {"capacity_tokens": "big"},
        {"metadata": ["not", "a", "mapping"]},
        {"metadata": {"x": object()}},
        {"metadata": {"x": "y" * 20_000}},
        {"model": "m\n"},
        {"model": "m" * 500},
    ]
    for kwargs in bad_profiles:
        with pytest.raises(ValidationError):
            swarm.register("worker", **kwargs)
    for stale in [-1, float("nan"), "60"]:
        with pytest.raises(ValidationError, match="stale_after_s"):
            untyped(swarm).agents(stale_after_s=stale)
    with raw_client(redis_url) as r:
        assert r.dbsize() == 0
    with pytest.raises(NotFound):
        swarm.get_agent("nobody")
    with pytest.raises(NotFound):
        swarm.deregister("nobody")


def test_a_retried_register_records_one_joined_event(
    swarm: Swarm, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lost reply makes redis-py send the same script call again: same registration token.
    monkeypatch.setattr("redis_swarm._ops.agents.new_id", lambda prefix: f"{prefix}-fixed")
    first = swarm.register("worker", name="w1", model="m")
    again = swarm.register("worker", name="w1", model="m")
    assert again.registered_at == first.registered_at and again.model == "m"
    assert len(_events(redis_url, "agent.joined")) == 1
    monkeypatch.undo()
    swarm.register("worker", name="w1", model="n")  # a new call: a re-registration
    assert swarm.get_agent("w1").model == "n"
    assert len(_events(redis_url, "agent.joined")) == 2


def test_a_retried_deregister_returns_as_if_it_succeeded(
    swarm: Swarm, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    swarm.register("worker", name="w1")
    swarm.send("w1", "unread")
    monkeypatch.setattr("redis_swarm._ops.agents.new_id", lambda prefix: f"{prefix}-fixed")
    assert swarm.deregister("w1") is None
    assert swarm.deregister("w1") is None  # the same call, sent again
    assert [f[b"unread"] for f in _events(redis_url, "agent.left")] == [b"1"]
    monkeypatch.undo()
    with pytest.raises(NotFound, match="not registered"):
        swarm.deregister("w1")  # a new call finds nobody
    swarm.register("worker", name="w1")
    assert swarm.deregister("w1") is None
    assert len(_events(redis_url, "agent.left")) == 2


def test_departures_are_bounded(
    swarm: Swarm, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("redis_swarm._ops.agents.DEPARTURES_KEPT", 3)
    for i in range(5):
        swarm.register("worker", name=f"w{i}")
        swarm.deregister(f"w{i}")
    with raw_client(redis_url) as r:
        kept = [m.split(b"|")[0] for m in r.zrange(KEYS.departures, 0, -1)]
    assert kept == [b"w2", b"w3", b"w4"]
