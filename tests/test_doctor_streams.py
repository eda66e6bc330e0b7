"""``swarm doctor`` names a poisoned or tampered stream of the swarm (real servers).

A worker may XADD to the event log, the broadcasts and any inbox of its swarm, and Redis ACLs
cannot restrict a command's arguments: it can append an entry with an id of its choosing. At
the largest id a stream can hold, Redis refuses every later append (the event log is then
lost from there on); an id far in the future gives every later entry an id that is not its
time. Doctor reads each stream's last-generated-id with plain commands (XINFO STREAM), names
the stream, what it means and the repair, fails for the event log and warns for the others.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_swarm import Settings, Swarm, apply_role
from redis_swarm._keys import Keys
from redis_swarm._ops import _stream_health

from ._cli import Cli
from ._servers import RedisServer, ServerFactory, system_redis

SWARM = "test"
K = Keys(SWARM)
MAX_ID = "18446744073709551615-18446744073709551615"
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def server7(servers: ServerFactory) -> Iterator[RedisServer]:
    server = servers.start(binary=system_redis())
    yield server
    server.stop()


@pytest.fixture
def url(server7: RedisServer) -> str:
    with contextlib.closing(server7.client()) as admin:
        admin.flushall()
    return server7.url


@pytest.fixture
def raw(url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url, decode_responses=True)
    yield client
    client.close()


def _busy_swarm(url: str) -> Swarm:
    """A swarm with events, a broadcast and two agents with messages in their inboxes."""
    swarm = Swarm(url, swarm=SWARM)
    swarm.post_task("q", "one")
    for name in ("w1", "w2"):
        swarm.register("worker", name=name)
    swarm.send("w1", "hello", sender="w2")
    swarm.send("w2", "hello", sender="w1")
    swarm.broadcast("all of you", sender="w1")
    return swarm


def _stream_warnings(report: dict[str, Any]) -> list[str]:
    return [w for w in report.get("warnings", []) if "XADD KEY ID" in w]


def _doctor(url: str, expect: int = 0, cli_url: str | None = None) -> dict[str, Any]:
    out = Cli(cli_url or url, swarm=SWARM)("doctor", "--quick", "--json", expect=expect)
    report: dict[str, Any] = out.json()
    return report


def test_a_clean_swarm_has_no_stream_warning(url: str) -> None:
    with _busy_swarm(url):
        pass
    report = _doctor(url)
    assert report["ok"] is True
    assert report["streams"] == "ok: the event log, the broadcasts, 2 inboxes"
    assert _stream_warnings(report) == []


def test_a_poisoned_event_log_fails_the_doctor(url: str, raw: redis.Redis) -> None:
    with _busy_swarm(url):
        pass
    raw.xadd(K.events, {"f": "v"}, id=MAX_ID)  # as a worker may
    raw.xtrim(K.events, maxlen=0)  # emptied: the last id stays
    with pytest.raises(redis.ResponseError, match="exhausted"):
        raw.xadd(K.events, {"f": "v"})
    report = _doctor(url, expect=1)
    assert report["ok"] is False
    assert report["streams"].startswith("damaged: the event log (see the warnings)")
    (warning,) = _stream_warnings(report)
    assert f"the swarm's event log ({K.events}) is poisoned" in warning
    assert MAX_ID in warning
    assert (
        "refuses every append to it from now on, even once it is emptied: the log is lost "
        "from then on" in warning
    )
    assert "a worker may: Redis ACLs cannot restrict a command's arguments" in warning
    assert f"as a shard, coordinator or admin user: redis-cli -u URL DEL '{K.events}'" in warning
    # the repair it names works: appends are taken again, and doctor is clean
    raw.delete(K.events)
    Swarm(url, swarm=SWARM).post_task("q", "two")
    assert _doctor(url)["streams"].startswith("ok:")


def test_a_poisoned_inbox_and_broadcasts_are_warned_of(url: str, raw: redis.Redis) -> None:
    with _busy_swarm(url) as swarm:
        raw.xadd(K.inbox("w1"), {"f": "v"}, id=MAX_ID)
        with pytest.raises(Exception, match="refuses new entries"):
            swarm.send("w1", "refused now", sender="w2")
        future = int(raw.time()[0]) * 1000 + 3 * DAY_MS
        raw.xadd(K.broadcast, {"f": "v"}, id=f"{future}-0")
    report = _doctor(url)  # warned, not failed: the log is whole
    assert report["ok"] is True
    assert report["streams"].startswith(
        "damaged: the broadcasts, the inbox of agent w1 (see the warnings)"
    )
    broadcast, inbox = _stream_warnings(report)
    assert f"the swarm's broadcast stream ({K.broadcast}) has a last id 3 days past" in broadcast
    assert "which no longer says when it was written" in broadcast
    # (maybe no tampering: a server whose clock is behind; appends still work)
    assert "a failover or a restore onto a host whose clock is behind" in broadcast
    assert "Leaving it is safe" in broadcast
    assert "DEL" not in broadcast and "rotate" not in broadcast
    assert "deregister" not in broadcast
    assert f"the inbox of agent w1 ({K.inbox('w1')}) is poisoned" in inbox
    assert "every message sent to w1 fails (its sender gets the error)" in inbox
    assert "swarm agents deregister w1" in inbox


def test_a_stream_merely_ahead_keeps_messages_in_order(url: str, raw: redis.Redis) -> None:
    """What the warning says of a stream ahead of the clock ("leaving it is safe") holds: a
    message and a broadcast after it keep the order they were sent in, and are both shown."""
    with _busy_swarm(url) as swarm:
        future = int(raw.time()[0]) * 1000 + 3 * DAY_MS
        raw.xadd(K.broadcast, {"f": "v"}, id=f"{future}-0")
        swarm.broadcast("first", sender="w2")
        swarm.send("w1", "second", sender="w2")
        swarm.broadcast("third", sender="w2")
        shown = []
        while got := swarm.inbox("w1", ack=False, limit=1):
            shown.append(got[0].body)
            swarm.mark_read("w1", got[0].seq)
    assert [body for body in shown if body != "hello"][-3:] == ["first", "second", "third"]
    assert "second" in shown


@pytest.mark.parametrize("kind", ["events", "broadcast", "inbox"])
def test_a_stream_key_of_another_type_is_reported_damaged(
    url: str, raw: redis.Redis, kind: str
) -> None:
    """Doctor stopped on a bare WRONGTYPE from XINFO STREAM, with no report."""
    with _busy_swarm(url):
        pass
    key = {"events": K.events, "broadcast": K.broadcast, "inbox": K.inbox("w1")}[kind]
    raw.delete(key)
    raw.set(key, "x")
    report = _doctor(url, expect=1 if kind == "events" else 0)
    assert report["ok"] is (kind != "events")  # (the log takes no event: doctor fails)
    name = {"events": "the event log", "broadcast": "the broadcasts"}.get(
        kind, "the inbox of agent w1"
    )
    assert report["streams"].startswith(f"damaged: {name} (see the warnings)")
    (warning,) = [w for w in report["warnings"] if "is not a stream" in w]
    assert f"({key}) is not a stream: the key holds another type" in warning
    assert f"redis-cli -u URL DEL '{key}'" in warning
    assert "ping_ms" in report and "corrupt_records" in report  # (the rest of the report stands)


def test_inboxes_read_are_bounded_to_the_agents_heard_from_last(
    url: str, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_stream_health, "INBOXES_CHECKED", 2)
    with Swarm(url, swarm=SWARM) as swarm:
        for n in range(4):
            swarm.register("worker", name=f"a{n}")
            swarm.send(f"a{n}", "hello")
            raw.zadd(K.presence, {f"a{n}": n + 1})  # a0 heard from first, a3 last
    raw.xadd(K.inbox("a0"), {"f": "v"}, id=MAX_ID)  # not among the 2 read
    raw.xadd(K.inbox("a3"), {"f": "v"}, id=MAX_ID)
    report = _doctor(url)
    assert report["streams"] == (
        "damaged: the inbox of agent a3 (see the warnings); read: the event log, the "
        "broadcasts, 2 inboxes (of the 2 agents heard from last; 4 known)"
    )


def test_a_worker_reads_the_streams(url: str, raw: redis.Redis, server7: RedisServer) -> None:
    made = apply_role(Settings.from_url(url), "worker", "streams-worker", swarm=SWARM)
    worker = f"redis://streams-worker:{made.user.password}@127.0.0.1:{server7.port}"
    with _busy_swarm(url):
        pass
    raw.xadd(K.events, {"f": "v"}, id=MAX_ID)
    report = _doctor(url, expect=1, cli_url=worker)
    assert report["streams"].startswith("damaged: the event log")


def test_a_user_without_xinfo_is_told_not_read(
    url: str, raw: redis.Redis, server7: RedisServer
) -> None:
    made = apply_role(Settings.from_url(url), "worker", "old-worker", swarm=SWARM)
    raw.acl_setuser("old-worker", enabled=True, commands=["-xinfo|stream"])  # made by hand
    old = f"redis://old-worker:{made.user.password}@127.0.0.1:{server7.port}"
    with _busy_swarm(url):
        pass
    raw.xadd(K.events, {"f": "v"}, id=MAX_ID)
    report = _doctor(url, expect=0, cli_url=old)
    assert report["streams"].startswith("not read: ")
    assert "xinfo" in report["streams"].lower()
    assert _stream_warnings(report) == []
