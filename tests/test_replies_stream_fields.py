"""The operations read a stream entry's (and a hash's) fields through ``_replies.reply_fields``,
the one reader of replies of fields (``_ops._bus`` had a copy of its own). The copy decoded
strictly: one event whose field holds a byte that is not UTF-8 (written around the
operations) failed every read of the events with a UnicodeDecodeError; the byte is replaced
now, as in every other reply read there, and the rest is shown."""

from __future__ import annotations

import redis

from redis_swarm import EventType, Swarm
from redis_swarm._keys import Keys

SWARM = "replies-stream"


def test_an_event_with_a_byte_that_is_not_utf8_is_read(redis_url: str) -> None:
    with Swarm(redis_url, swarm=SWARM) as swarm:
        swarm.register("shard", name="s1")
        with redis.Redis.from_url(redis_url) as raw:
            raw.xadd(Keys(SWARM).events, {"type": "agent.left", "agent": b"s\xff1"})
        *_, last = swarm.events()
    assert last.type is EventType.AGENT_LEFT
    assert last.fields == {"agent": "s\ufffd1"}
