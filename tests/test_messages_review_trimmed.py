"""Review fix: a reader behind on broadcasts by more than the swarm keeps is told that it
lost some (trimmed unread), and message_status does not count them read by it."""

from __future__ import annotations

import pytest

from redis_swarm import BroadcastsTrimmed, Swarm
from redis_swarm._keys import Keys

from ._raw import raw_client

KEYS = Keys("test")


def test_trimmed_broadcasts_are_said_and_not_read(swarm: Swarm, redis_url: str) -> None:
    swarm.register("worker", name="lag")
    swarm.register("worker", name="bc")
    sent = [swarm.broadcast(f"b{i}", sender="bc") for i in range(5)]
    with raw_client(redis_url) as r:  # (as message_send's MAXLEN trims the oldest)
        r.xtrim(KEYS.broadcast, minid=sent[3].seq, approximate=False)
    with pytest.warns(BroadcastsTrimmed, match="lag had not read, through .* were trimmed"):
        peeked = swarm.inbox("lag", ack=False)
    assert peeked.trimmed is not None and sent[3].seq in peeked.trimmed
    with pytest.warns(BroadcastsTrimmed, match="trimmed"):
        got = swarm.inbox("lag")
    assert [m.body for m in got] == ["b3", "b4"]
    assert got.trimmed is not None
    swarm.inbox("lag", ack=False)  # (commits nothing; says no gap now: cursor past it)
    assert swarm.inbox("lag").trimmed is None  # (commits the batch)
    lost = swarm.message_status(sent[0].id)
    assert "lag" not in lost.read_by and lost.read is False
    assert "lag" in swarm.message_status(sent[4].id).read_by
