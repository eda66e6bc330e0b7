"""A cold fetch checks each chunk as its reply arrives (``Fetch``: the sync shell hands the
replies over one by one; the async shell and a cluster after the batch): damaged data is
refused without leaving unread replies on the connection, and a fetch sent again (a retry
after a dropped connection) is checked from its start."""

from __future__ import annotations

import pytest

from redis_swarm import ContextCache, Limits, Swarm
from redis_swarm._ops import _context_store as store
from redis_swarm._protocol import Batch, Cmd, Fetch, Operation, together

from ._raw import raw_client

TEXT = "".join(f"{i:05d} a line of a context of several chunks\n" for i in range(200))


def test_damage_is_refused_and_the_connection_stays_in_step(server_url: str) -> None:
    limits = Limits(context_chunk_bytes=1024, context_copy_bytes=0)  # the chunks' path
    with Swarm(server_url, swarm="test", limits=limits, cache=ContextCache(max_bytes=0)) as s:
        s.publish_context("damaged", TEXT, source="s")
        s.publish_context("intact", TEXT.upper(), source="s")
        manifest = store.parse_manifest(s.redis.hget(s.keys.contexts, "damaged") or b"")
        first = s.keys.chunk(manifest.parts[0].digest)
        with raw_client(server_url) as r:
            data = r.hget(first, "data")
            r.hset(first, "data", b"X" + data[1:])
        for _ in range(2):
            with pytest.raises(Exception, match="damaged"):
                s.get_context("damaged")
            # The replies after the damaged one were read too: the next answers are ours.
            assert s.get_context("intact") == TEXT.upper()
            assert s.context_info("intact").owner == "intact"


def test_a_fetch_sent_again_is_checked_from_its_start(server_url: str) -> None:
    limits = Limits(context_chunk_bytes=1024)
    with Swarm(server_url, swarm="test", limits=limits) as s:
        info = s.publish_context("o", TEXT, source="s")
        manifest = store.parse_manifest(s.redis.hget(s.keys.contexts, "o") or b"")
    data = TEXT.encode()
    chunks = [data[i : i + 1024] for i in range(0, len(data), 1024)]
    indices = range(len(chunks))
    reader = store._Chunks(manifest, indices, hash_each=False, whole=True)
    reader.take(0, chunks[0])
    reader.take(1, b"lost half-way")  # the connection dropped: the pipeline is sent again
    for index, chunk in enumerate(chunks):
        reader.take(index, chunk)
    result = reader.result()
    assert isinstance(result, list) and b"".join(result) == data
    assert manifest.version == info.version
    wrong = store._Chunks(manifest, indices, hash_each=False, whole=True)
    for index, chunk in enumerate(chunks):
        wrong.take(index, chunk[::-1] if index == 1 else chunk)  # same length, other bytes
    with pytest.raises(Exception, match="damaged"):
        wrong.result()


class _Sum:
    """A reader that adds up integer replies (``take`` after a restart starts over)."""

    def __init__(self) -> None:
        self.total = 0

    def take(self, index: int, reply: int) -> None:
        self.total = reply if index == 0 else self.total + reply

    def result(self) -> int:
        return self.total


def test_together_hands_a_fetch_its_reader_s_result() -> None:
    def summing() -> Operation[int]:
        total: int = yield Fetch((Cmd("GET", "a"), Cmd("GET", "b")), _Sum, 0)
        return total

    def plain() -> Operation[bytes]:
        reply: bytes = yield Cmd("GET", "c")
        return reply

    op = together(summing(), plain())
    batch = next(op)
    assert isinstance(batch, Batch) and [c.args for c in batch.items] == [
        ("GET", "a"),
        ("GET", "b"),
        ("GET", "c"),
    ]
    with pytest.raises(StopIteration) as done:
        op.send([2, 3, b"c"])
    assert done.value.value == [5, b"c"]
