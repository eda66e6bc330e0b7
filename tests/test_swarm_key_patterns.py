"""The patterns that find every key of one swarm (``swarm_key_patterns``): what an operator
deletes to drop a swarm (docs/deployment.md), and what swarm doctor names when memory is
full. They match that swarm's records and chunks and nothing of a swarm whose name starts
with its own and a dot."""

from __future__ import annotations

from typing import Any

from redis_swarm import Swarm
from redis_swarm._keys import swarm_key_patterns


def _fill(url: str, swarm: str) -> None:
    with Swarm(url, swarm=swarm) as handle:
        handle.publish_context("shard", "some text\n" * 2000, source="test")
        handle.post_task("q", "work")


def _scan(client: Any, pattern: str) -> set[str]:
    return set(client.scan_iter(match=pattern, count=1000))


def test_the_patterns_find_every_key_of_a_swarm_and_none_of_another(
    redis_url: str, raw: Any
) -> None:
    _fill(redis_url, "a")
    _fill(redis_url, "a.b")
    records, chunks = swarm_key_patterns("a")
    mine = _scan(raw, records) | _scan(raw, chunks)
    assert any(":chunk:" in key for key in mine) and any("{a}" in key for key in mine)
    assert not [key for key in mine if "{a.b" in key]
    every = _scan(raw, "*")
    theirs = every - mine
    assert theirs and all("{a.b" in key for key in theirs)  # a.b's keys, and only those
    raw.unlink(*mine)  # what docs/deployment.md's loop does
    with Swarm(redis_url, swarm="a.b") as other:
        assert other.get_context("shard") == "some text\n" * 2000
        assert other.queue_stats()["q"]["pending"] == 1
