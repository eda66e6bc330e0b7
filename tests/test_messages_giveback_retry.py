"""A give-back sent again (its first reply lost: redis-py resends it, or its caller does)
answers as its first try did: True, the messages given back once, never copied twice."""

from __future__ import annotations

import pytest

from redis_swarm import Swarm


@pytest.fixture
def handle(inbox_pair: Swarm) -> Swarm:
    return inbox_pair


def test_a_retried_give_back_of_the_pending_read_answers_true(handle: Swarm) -> None:
    sent = [handle.send("a", f"m{i}", sender="lead").id for i in range(2)]
    taken = handle.inbox("a")
    assert taken.read_id is not None
    assert handle.give_back_inbox("a", taken.read_id) is True
    assert handle.give_back_inbox("a", taken.read_id) is True  # (the retry)
    assert [m.id for m in handle.inbox("a")] == sent
    assert list(handle.inbox("a")) == []


def test_a_retried_give_back_of_a_committed_read_copies_once(handle: Swarm) -> None:
    sent = [handle.send("a", f"m{i}", sender="lead").id for i in range(2)]
    taken = handle.inbox("a")
    assert taken.read_id is not None
    assert list(handle.inbox("a")) == []  # (commits it: another reader's read)
    assert handle.give_back_inbox("a", taken.read_id) is True
    assert handle.give_back_inbox("a", taken.read_id) is True  # (the retry)
    assert [m.id for m in handle.inbox("a")] == sent  # (one copy each)
    assert list(handle.inbox("a")) == []


def test_a_retry_still_answers_true_after_another_read(handle: Swarm) -> None:
    handle.send("a", "m0", sender="lead")
    taken = handle.inbox("a")
    assert handle.give_back_inbox("a", taken.read_id or "") is True
    assert [m.body for m in handle.inbox("a")] == ["m0"]  # (another read meanwhile)
    assert handle.give_back_inbox("a", taken.read_id or "") is True
