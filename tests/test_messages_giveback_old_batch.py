"""An inbox remembers its pending read and the last one another read committed; a give-back
of a read older than those is refused with a Conflict saying why and what to do, never
answered False as if there were nothing to give back. Its messages stay read."""

from __future__ import annotations

import pytest

from redis_swarm import Conflict, Swarm


@pytest.fixture
def handle(inbox_pair: Swarm) -> Swarm:
    return inbox_pair


def test_a_give_back_of_a_batch_committed_two_reads_back_is_refused(handle: Swarm) -> None:
    first = handle.send("a", "m0", sender="lead")
    old = handle.inbox("a")
    assert old.read_id is not None
    handle.send("a", "m1", sender="lead")
    assert [m.body for m in handle.inbox("a")] == ["m1"]  # (commits the first)
    assert list(handle.inbox("a")) == []  # (commits the second: the first is older)
    with pytest.raises(Conflict) as caught:
        handle.give_back_inbox("a", old.read_id)
    said = str(caught.value)
    assert old.read_id in said and "get_message" in said and "mark_read" in said, said
    assert list(handle.inbox("a")) == []  # (they stay read)
    assert handle.get_message("a", first.id).body == "m0"


def test_a_read_id_never_taken_is_refused_too(handle: Swarm) -> None:
    handle.send("a", "m0", sender="lead")
    with pytest.raises(Conflict, match="r-0123456789abcdef"):
        handle.give_back_inbox("a", "r-0123456789abcdef")
    assert [m.body for m in handle.inbox("a")] == ["m0"]
