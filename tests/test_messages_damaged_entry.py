"""A message index entry written around redis-swarm made ``message_status`` (and
``mark_read`` by message id) fail with a raw ValueError, or say a confident wrong thing
("garbage is not registered"): a CorruptRecord naming the entry and its repair, which the
doctor names too. A message sent with no sender, or a broadcast, is no damage."""

from __future__ import annotations

import pytest

from redis_swarm import CorruptRecord, Swarm

from ._raw import raw_client


@pytest.fixture
def handle(inbox_pair: Swarm) -> Swarm:
    return inbox_pair


@pytest.mark.parametrize(
    "junk", ["a notaseq 1 lead", "garbage", "* 1-0 1 lead x", "* 1-0 1 lead -5", "a 1-0 1 lead 1 x"]
)
def test_a_damaged_entry_is_a_corrupt_record_naming_its_repair(
    handle: Swarm, server_url: str, junk: str
) -> None:
    sent = handle.send("a", "hello", sender="lead")
    with raw_client(server_url) as raw:
        raw.hset(handle.keys.messages, sent.id, junk)
    for call in (
        lambda: handle.message_status(sent.id),
        lambda: handle.mark_read("a", sent.id),
    ):
        with pytest.raises(CorruptRecord) as info:
            call()
        said = str(info.value)
        assert f"message {sent.id}'s entry in the message index" in said
        assert f"HDEL '{handle.keys.messages}' {sent.id}" in said
    assert handle.corrupt_records()["message"] == [sent.id]
    with raw_client(server_url) as raw:  # the repair it names
        raw.hdel(handle.keys.messages, sent.id)
    assert handle.corrupt_records()["message"] == []


def test_messages_without_a_sender_and_broadcasts_are_no_damage(handle: Swarm) -> None:
    quiet = handle.send("a", "from nobody")
    everyone = handle.broadcast("to all", sender="lead")
    assert handle.message_status(quiet.id).read is False
    assert handle.message_status(everyone.id).read is False
    handle.inbox("a")
    handle.mark_read("a", quiet.id)
    assert handle.corrupt_records()["message"] == []
