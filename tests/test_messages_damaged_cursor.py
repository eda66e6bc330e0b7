"""An inbox cursor written around redis-swarm (junk in a field of the cursors hash) is a
CorruptRecord naming the key, the field and the repair with its cost, never a raw Redis
"Invalid stream ID" error; nothing is read or marked meanwhile, and the repair it names
works."""

from __future__ import annotations

import shlex

import pytest

from redis_swarm import CorruptRecord, Swarm

from ._raw import raw_client


@pytest.fixture
def handle(inbox_pair: Swarm) -> Swarm:
    return inbox_pair


# field of the cursors hash -> junk written there (each once a real Redis refused it)
DAMAGE = {
    "a": "junk",  # the broadcast cursor
    "a|inbox": "12-x",
    "a|pending": "r-1 nope - 1",
    "a|orphan": "r-1 - 99999999999999999999999-0 - -",
}


@pytest.mark.parametrize("field", sorted(DAMAGE))
def test_a_damaged_cursor_is_a_corrupt_record_naming_its_repair(
    field: str, handle: Swarm, server_url: str
) -> None:
    sent = handle.send("a", "hello", sender="lead")
    handle.broadcast("to all", sender="lead")
    taken = handle.inbox("a", limit=1)  # (a pending read, then committed: an orphan)
    assert [m.id for m in taken] == [sent.id]
    handle.inbox("a", ack=False)
    key = handle.keys.cursors
    with raw_client(server_url) as r:
        r.hset(key, field, DAMAGE[field])
        before = r.hgetall(key)
        for read in (
            lambda: handle.inbox("a"),
            lambda: handle.inbox("a", ack=False),
            lambda: handle.mark_read("a", sent.seq),
            lambda: handle.give_back_inbox("a", taken.read_id or ""),
        ):
            with pytest.raises(CorruptRecord) as caught:
                read()
            said = str(caught.value)
            assert "Invalid stream ID" not in said
            assert key in said and repr(field) in said, said
            # (a command a shell runs as named: the field's '|' quoted)
            assert f"--user ADMIN --askpass HDEL {shlex.quote(key)} {shlex.quote(field)}" in said, (
                said
            )
            assert "around redis-swarm" in said, said
            assert "repair it as an admin or shard user (its name for ADMIN): " in said, said
        assert r.hgetall(key) == before  # (nothing written)
        r.hdel(key, field)  # the repair it names
    handle.inbox("a")
    assert list(handle.inbox("a", ack=False)) == []


def test_message_status_says_a_damaged_cursor_too(handle: Swarm, server_url: str) -> None:
    sent = handle.send("a", "hello", sender="lead")
    with raw_client(server_url) as r:
        r.hset(handle.keys.cursors, "a|inbox", "junk")
    with pytest.raises(CorruptRecord, match="HDEL"):
        handle.message_status(sent.id)


def test_a_cursors_key_of_another_type_is_a_corrupt_record(handle: Swarm, server_url: str) -> None:
    """The whole cursors hash replaced by a string made every read raise Redis's raw
    WRONGTYPE: a CorruptRecord pointing to the doctor, which names the key."""
    with raw_client(server_url) as r:
        r.delete(handle.keys.cursors)
        r.set(handle.keys.cursors, "junk")
    with pytest.raises(CorruptRecord) as caught:
        handle.inbox("a")
    said = str(caught.value)
    assert "holds another type than redis-swarm writes there" in said and "WRONGTYPE" in said
    assert "'swarm doctor' names the key" in said
    assert handle.corrupt_records()["key"] == [handle.keys.cursors]
