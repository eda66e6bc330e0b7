"""Signs of life after a coordinator's tour: a lease renewal marks its worker present (a
worker busy on one long task is alive, and no sweep removes it), a sweep keeps an agent
holding a lease not yet expired and says what unread messages it dropped, a heartbeat names
only a task that exists, and a broadcast whose readers left is not said to be read; one
registering again has not left (its registered_at is kept), and a sweep pages the stale
agents by score and reads the live leases in chunks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from redis_swarm import NotFound, Swarm
from redis_swarm._keys import Keys
from redis_swarm._ops import agents as agent_ops

from ._cli import Cli
from ._handles import FakeClock, make_swarm
from .conftest import SWARM_KINDS


@pytest.fixture(params=SWARM_KINDS)
def clocked(request: pytest.FixtureRequest, redis_url: str) -> Iterator[tuple[Swarm, FakeClock]]:
    clock = FakeClock()
    handle = make_swarm(request.param, redis_url, clock=clock)
    yield handle, clock
    handle.close()


def _alive(swarm: Swarm) -> dict[str, bool]:
    return {a.id: bool(a.alive) for a in swarm.agents(stale_after_s=60)}


# --- 1. a renewal is a sign of life; a live lease is not swept


def test_a_worker_renewing_its_lease_stays_alive_and_is_not_swept(
    clocked: tuple[Swarm, FakeClock],
) -> None:
    swarm, clock = clocked
    task = swarm.post_task("q", "long work", lease_s=90)
    held = swarm.claim("q", worker="busy")
    assert held is not None and held.id == task.id
    for _ in range(4):  # 4 x 40 s: far past the 60 s a heartbeat would need
        clock.advance(40)
        swarm.renew(held.id, held.token)
    assert _alive(swarm) == {"busy": True}
    status = swarm.status(stale_after_s=60)
    assert (status.agents.alive, status.agents.stale) == (1, 0)
    assert swarm.get_agent("busy").last_seen == clock.now
    assert swarm.sweep(60) == {}
    assert [a.current_task for a in swarm.agents()] == [task.id]


def test_a_worker_not_renewing_goes_stale_but_keeps_its_live_lease(
    clocked: tuple[Swarm, FakeClock],
) -> None:
    swarm, clock = clocked
    swarm.post_task("q", "long work, never renewed", lease_s=600)
    held = swarm.claim("q", worker="quiet")
    assert held is not None
    swarm.register("worker", name="idle")
    swarm.send("idle", "never read")
    swarm.send("idle", "nor this")
    clock.advance(120)
    assert _alive(swarm) == {"quiet": False, "idle": False}  # stale, as before
    # the idle one goes (with what it never read), the one holding a lease stays
    assert swarm.sweep(60) == {"idle": 2}
    assert [a.id for a in swarm.agents()] == ["quiet"]
    clock.advance(600)  # its lease has expired: nothing holds it back now
    assert swarm.sweep(60) == {"quiet": 0}


def test_a_sweep_finds_the_stale_agents_behind_a_batch_of_lease_holders(
    clocked: tuple[Swarm, FakeClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    swarm, clock = clocked
    monkeypatch.setattr(agent_ops, "SWEEP_BATCH", 2)
    for n in range(3):  # the oldest silences: each holding a long lease
        swarm.post_task("q", f"long {n}", lease_s=600)
        assert swarm.claim("q", worker=f"holder-{n}") is not None
        clock.advance(1)
    for n in range(3):
        swarm.register("worker", name=f"idle-{n}")
        clock.advance(1)
    clock.advance(120)
    assert sorted(swarm.sweep(60)) == ["idle-0", "idle-1", "idle-2"]
    assert [a.id for a in swarm.agents()] == ["holder-0", "holder-1", "holder-2"]


def test_a_renewal_registers_nobody(clocked: tuple[Swarm, FakeClock]) -> None:
    swarm, clock = clocked
    swarm.post_task("q", "work", lease_s=90)
    held = swarm.claim("q", worker="gone")
    assert held is not None
    swarm.deregister("gone")
    clock.advance(10)
    swarm.renew(held.id, held.token)  # the lease is still its own
    assert swarm.agents() == []


# --- 3. a heartbeat names only a task that exists


def test_a_heartbeat_naming_an_unknown_task_is_refused(
    clocked: tuple[Swarm, FakeClock],
) -> None:
    swarm, clock = clocked
    task = swarm.post_task("q", "real")
    swarm.register("worker", name="w")
    swarm.heartbeat("w", current_task=task.id)
    clock.advance(5)
    with pytest.raises(NotFound, match="t-bogus does not exist: check the id with swarm task"):
        swarm.heartbeat("w", current_task="t-bogus")
    agent = swarm.get_agent("w")
    assert agent.current_task == task.id  # nothing changed, its presence neither
    assert agent.last_seen == clock.now - 5000
    assert swarm.heartbeat("w", current_task="").current_task is None  # clearing needs none
    assert swarm.heartbeat("w").id == "w"


def test_cli_heartbeat_with_an_unknown_task_fails(cli: Cli, swarm: Swarm) -> None:
    swarm.register("worker", name="w")
    result = cli("agents", "heartbeat", "w", "--task", "t-bogus", expect=1)
    assert "t-bogus does not exist" in result.stderr
    assert swarm.get_agent("w").current_task is None


# --- 4. a sweep says what it dropped


def _silent_since_1970(raw: Any, *agents: str) -> None:
    """Backdate the agents' last sign of life: the CLI sweeps none silent for less than a
    live agent's beat interval, so a sweep of agents just registered needs them older."""
    raw.zadd(Keys("test").presence, dict.fromkeys(agents, 0))


def test_cli_sweep_says_the_unread_messages_dropped(cli: Cli, swarm: Swarm, raw: Any) -> None:
    swarm.register("worker", name="dave")
    swarm.register("worker", name="erin")
    swarm.send("dave", "one")
    swarm.send("dave", "two")
    _silent_since_1970(raw, "dave", "erin")
    out = cli("agents", "sweep", "--stale-after", "3600").stdout
    assert "removed 2: dave (2 unread messages dropped), erin" in out
    assert cli.json("agents", "sweep", "--stale-after", "3600") == {"items": [], "unread": {}}


def test_cli_sweep_json_counts_the_unread(cli: Cli, swarm: Swarm, raw: Any) -> None:
    swarm.register("worker", name="dave")
    swarm.send("dave", "one")
    _silent_since_1970(raw, "dave")
    assert cli.json("agents", "sweep", "--stale-after", "3600") == {
        "items": ["dave"],
        "unread": {"dave": 1},
    }


# --- 2. a broadcast whose readers left is not said to be read


def test_a_broadcast_whose_readers_were_swept_is_not_said_read(cli: Cli, swarm: Swarm) -> None:
    swarm.register("worker", name="alice")
    swarm.register("worker", name="bob")
    swarm.register("coordinator", name="boss")
    sent = swarm.broadcast("all hands", sender="boss")
    assert [m.id for m in swarm.inbox("alice")] == [sent.id]
    swarm.inbox("alice")  # commits the read
    assert swarm.message_status(sent.id).read_by == ("alice",)
    swarm.deregister("alice")  # one reader gone (it had read it: no longer known)
    st = swarm.message_status(sent.id)
    assert (st.read, st.read_by, st.unread_by) == (False, (), ("bob",))
    swarm.deregister("bob")
    st = swarm.message_status(sent.id)
    assert (st.read, st.read_by, st.unread_by) == (False, (), ())
    out = cli("msg", "status", sent.id).stdout
    assert f"{sent.id} (broadcast): not known to be read" in out
    assert "no readers" not in out and "whether they read it is not known" in out
    status = cli.json("msg", "status", sent.id)
    assert (status["read"], status["read_by"], status["unread_by"]) == (False, [], [])


def test_a_direct_message_to_a_swept_agent_is_not_said_read(swarm: Swarm) -> None:
    swarm.register("worker", name="w")
    sent = swarm.send("w", "hello")
    swarm.sweep(0)
    st = swarm.message_status(sent.id)
    assert (st.read, st.read_by, st.unread_by) == (False, (), ())


# --- 5. re-registering is the same life: a broadcast it read stays read


def test_an_agent_registering_again_keeps_its_reads_of_a_broadcast(
    clocked: tuple[Swarm, FakeClock],
) -> None:
    swarm, clock = clocked
    first = swarm.register("worker", name="alice")
    swarm.register("worker", name="bob")
    swarm.register("coord", name="boss")
    clock.advance(1)
    message = swarm.broadcast("hello", sender="boss")
    clock.advance(1)
    for reader in ("alice", "bob"):
        assert [m.id for m in swarm.inbox(reader)] == [message.id]
    assert swarm.message_status(message.id).read
    clock.advance(1)
    # a restart (an MCP server, a SessionStart hook, a runner slot) registers the id again
    again = swarm.register("worker", name="alice", model="m")
    joined = swarm.join("alice", lambda stored: {"role": "worker"})
    assert again.registered_at == joined.registered_at == first.registered_at
    status = swarm.message_status(message.id)
    assert status.read and status.read_by == ("alice", "bob")
    # a new life (after it left, its cursor dropped) starts now
    swarm.deregister("alice")
    assert swarm.register("worker", name="alice").registered_at == clock.now
    assert not swarm.message_status(message.id).read


def test_a_metadata_key_named_registered_at_is_not_taken_for_the_records(
    clocked: tuple[Swarm, FakeClock],
) -> None:
    swarm, clock = clocked
    first = swarm.register("worker", name="w", metadata={"registered_at": 5})
    clock.advance(1)
    again = swarm.register("worker", name="w", metadata={"registered_at": 7})
    assert again.registered_at == first.registered_at == swarm.get_agent("w").registered_at


def test_a_tally_named_registered_at_is_not_taken_for_the_records(
    clocked: tuple[Swarm, FakeClock],
) -> None:
    """A worker its claim registered has no metadata: a tally adds it after the record's own
    registered_at, which a registration must still find (the record is decoded)."""
    swarm, clock = clocked
    swarm.post_task("q", "t")
    assert swarm.claim("q", worker="w9") is not None
    first = swarm.get_agent("w9").registered_at
    swarm.tally("w9", "registered_at", "registered_at", add=7)
    clock.advance(1)
    assert swarm.register("worker", name="w9").registered_at == first


def test_a_worker_its_claim_registered_keeps_the_broadcasts_sent_since_unread(
    swarm: Swarm,
) -> None:
    """Registering a worker its claims registered (no broadcast cursor yet) keeps its life,
    and with it the broadcasts sent since it appeared: unread, in its inbox, not read. (The
    server's clock: a broadcast's id is its time.)"""
    swarm.register("coord", name="boss")
    swarm.post_task("q", "t")
    assert swarm.claim("q", worker="w1") is not None
    time.sleep(0.01)
    message = swarm.broadcast("hello", sender="boss")
    assert swarm.message_status(message.id).unread_by == ("w1",)
    swarm.register("worker", name="w1")
    status = swarm.message_status(message.id)
    assert not status.read and status.unread_by == ("w1",)
    assert [m.id for m in swarm.inbox("w1")] == [message.id]


# --- 6. a sweep pages the stale agents by score, not by an offset


class _HookClock(FakeClock):
    """A clock that runs ``hook`` (once) at the next reading after it is armed."""

    hook: Callable[[], None] | None = None

    def __call__(self) -> int:
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return self.now


def test_a_sweep_finds_every_stale_agent_while_a_lease_holder_renews(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _HookClock()
    swarm = Swarm(redis_url, swarm="test", clock=clock)
    other = Swarm(redis_url, swarm="test", clock=clock)
    monkeypatch.setattr(agent_ops, "SWEEP_BATCH", 3)
    swarm.post_task("q", "long work", lease_s=3600)
    held = swarm.claim("q", worker="a00")  # the oldest silence, holding a lease
    assert held is not None
    for n in range(1, 7):
        clock.advance(1)
        swarm.register("worker", name=f"a{n:02d}")
    clock.advance(120)
    raw = redis.Redis.from_url(redis_url)

    def renew_once_the_first_batch_is_gone() -> None:
        if raw.hexists(swarm.keys.agents, "a01"):
            clock.hook = renew_once_the_first_batch_is_gone  # (not yet: wait for it)
        else:  # between two pages: the kept holder leaves the stale range
            other.renew(held.id, held.token)

    clock.hook = renew_once_the_first_batch_is_gone
    try:
        assert sorted(swarm.sweep(60)) == [f"a{n:02d}" for n in range(1, 7)]
        assert [a.id for a in swarm.agents()] == ["a00"]
        assert swarm.get_agent("a00").last_seen == clock.now  # (renewed mid-sweep)
    finally:
        raw.close()
        swarm.close()
        other.close()


# --- 7. a sweep reads the live leases in chunks, and only as far as it needs


def _calls(raw: redis.Redis, command: str) -> int:
    stats: dict[str, Any] = raw.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_a_sweep_reads_thousands_of_leases_in_bounded_chunks(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    swarm = Swarm(redis_url, swarm="test", clock=clock)
    raw = redis.Redis.from_url(redis_url)
    try:
        leases = 2_500
        swarm.post_tasks([{"queue": "q", "description": "x", "lease_s": 3600}] * leases)
        for n in range(leases // 100):  # claims of 100 tasks: leases tied by deadline
            clock.advance(0.001)
            assert len(swarm.claim("q", worker=f"w{n:02d}", n=100)) == 100
        swarm.register("worker", name="idle")
        clock.advance(120)  # every one stale; all but idle hold live leases
        raw.config_resetstat()
        removed = swarm.sweep(60)
        assert removed == {"idle": 0}
        # every lease read (idle holds none), 1,000 tasks per HMGET at most
        assert _calls(raw, "hmget") == 3
        assert len(swarm.agents()) == leases // 100
        # a sweep whose stale agents are all found holding stops reading leases there
        for n in range(10, leases // 100):
            swarm.heartbeat(f"w{n:02d}")
        raw.config_resetstat()
        assert swarm.sweep(60) == {}
        assert _calls(raw, "hmget") == 1  # (w00..w09's leases: the first 1,000 by deadline)
    finally:
        raw.close()
        swarm.close()


class _Counting(Swarm):
    """A real handle counting the requests it sends (a batch is one round trip)."""

    sent = 0

    def _attempt(self, request: Any) -> Any:
        type(self).sent += 1
        return super()._attempt(request)


def test_a_sweep_of_a_swarm_of_many_queues_costs_no_round_trip_per_queue(
    redis_url: str,
) -> None:
    """300 queues, each holding a live lease, and one silent agent holding none: the sweep
    counts every queue's live leases in one batch and reads them together (it cost a round
    trip per queue ever posted to)."""
    clock = FakeClock()
    swarm = _Counting(redis_url, swarm="test", clock=clock)
    try:
        queues = [f"q{n:03d}" for n in range(300)]
        swarm.post_tasks([{"queue": q, "description": "x", "lease_s": 3600} for q in queues])
        for q in queues:
            assert swarm.claim(q, worker="busy") is not None
        swarm.register("worker", name="idle")
        clock.advance(120)  # both stale; busy holds 300 live leases
        _Counting.sent = 0
        assert swarm.sweep(60) == {"idle": 0}
        assert _Counting.sent <= 8, _Counting.sent
        assert [a.id for a in swarm.agents()] == ["busy"]
    finally:
        swarm.close()
