"""Messages: inbox order and ack, broadcast, typed requests, refusals (both shells)."""

from __future__ import annotations

import functools

import pytest

from redis_swarm import Conflict, Message, NotFound, PayloadTooLarge, Swarm, ValidationError
from redis_swarm._keys import Keys
from redis_swarm._ops import messages as message_ops

from ._handles import untyped
from ._raw import raw_client, run_script

KEYS = Keys("test")


def test_inbox_order_ack_and_peek(swarm: Swarm) -> None:
    swarm.register("shard", name="s1")
    sent = [swarm.send("s1", f"m{i}", sender="w1", data={"i": i}) for i in range(5)]
    assert all(isinstance(m, Message) and m.id.startswith("m-") for m in sent)
    assert sent[0].to == "s1" and sent[0].sender == "w1" and sent[0].kind == "text"
    peek = swarm.inbox("s1", ack=False)
    assert peek == sent
    assert swarm.inbox("s1", ack=False) == sent  # peeking consumes nothing
    assert swarm.inbox("s1", limit=2) == sent[:2]
    assert swarm.inbox("s1") == sent[2:]
    assert swarm.inbox("s1") == []
    later = swarm.send("s1", "later", kind="status")
    assert swarm.inbox("s1") == [later]
    assert later.data is None and later.kind == "status"


def test_broadcast_reaches_every_agent_once(swarm: Swarm) -> None:
    swarm.register("coordinator", name="boss")
    swarm.register("worker", name="w1")
    swarm.register("worker", name="w2")
    direct = swarm.send("w1", "direct before")
    everyone = swarm.broadcast("all hands", sender="boss")
    direct2 = swarm.send("w1", "direct after")
    assert everyone.to == "*"
    # Merged in the order sent; the sender does not get its own broadcast.
    assert swarm.inbox("w1") == [direct, everyone, direct2]
    assert swarm.inbox("w2", ack=False) == [everyone]
    assert swarm.inbox("w2") == [everyone]
    assert swarm.inbox("w2") == []
    assert swarm.inbox("w1") == []
    assert swarm.inbox("boss") == []
    # An agent that joins later receives only the broadcasts sent after it joined.
    swarm.register("worker", name="w3")
    assert swarm.inbox("w3") == []
    news = swarm.broadcast("news")
    assert swarm.inbox("w3") == [news]
    assert swarm.inbox("w1") == [news]


def test_unknown_recipient_is_an_error_not_a_phantom_inbox(swarm: Swarm, redis_url: str) -> None:
    with pytest.raises(NotFound, match="not registered"):
        swarm.send("nobody", "hello")
    with pytest.raises(NotFound, match="not registered"):
        swarm.request_synthesis("nobody", "Pass 1", "go")
    with pytest.raises(NotFound, match="not registered"):
        swarm.inbox("nobody")
    with raw_client(redis_url) as r:
        assert not r.exists(KEYS.inbox("nobody"))
        assert r.xlen(KEYS.events) == 0


def test_request_synthesis(swarm: Swarm, redis_url: str) -> None:
    swarm.register("shard", name="s1")
    msg = swarm.request_synthesis("s1", "Pass 1: Signal Capture", "cite every finding", sender="c")
    assert msg.kind == "synthesis_request" and msg.sender == "c"
    assert msg.data == {"pass_name": "Pass 1: Signal Capture", "instructions": "cite every finding"}
    assert swarm.inbox("s1") == [msg]
    with raw_client(redis_url) as r:
        kinds = [f[b"type"] for _, f in r.xrange(KEYS.events)]
        (_, requested) = r.xrange(KEYS.events)[-1]
    assert kinds[-2:] == [b"message.sent", b"synthesis.requested"]
    assert requested[b"shard"] == b"s1" and requested[b"pass"] == b"Pass 1: Signal Capture"
    assert requested[b"message"] == msg.id.encode()
    with pytest.raises(ValidationError, match="pass name"):
        swarm.request_synthesis("s1", " ", "x")


def test_message_size_and_shape_are_bounded(swarm: Swarm, redis_url: str) -> None:
    swarm.register("shard", name="s1")
    with pytest.raises(PayloadTooLarge, match=r"the swarm.s message limit"):
        swarm.send("s1", "x" * (64 * 1024 + 1))
    with pytest.raises(PayloadTooLarge):
        swarm.send("s1", "x", data={"blob": "y" * 70_000})
    with pytest.raises(ValidationError, match="mapping"):
        untyped(swarm).send("s1", "x", data=[1, 2])
    with pytest.raises(ValidationError, match="body"):
        untyped(swarm).send("s1", b"bytes")
    for bad in ["a:b", "a b", "", "é", "x" * 10_000]:
        with pytest.raises(ValidationError):
            swarm.send(bad, "x")
        with pytest.raises(ValidationError):
            swarm.send("s1", "x", sender=bad)
        with pytest.raises(ValidationError):
            swarm.send("s1", "x", kind=bad)
        with pytest.raises(ValidationError):
            swarm.inbox(bad)
    for limit in [0, 5000, "10"]:
        with pytest.raises(ValidationError, match="limit"):
            untyped(swarm).inbox("s1", limit=limit)
    assert swarm.inbox("s1") == []


def test_full_inbox_refuses_rather_than_drops(
    swarm: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(message_ops, "INBOX_LIMIT", 3)
    swarm.register("shard", name="s1")
    first = [swarm.send("s1", str(i)) for i in range(3)]
    with pytest.raises(Conflict, match="full"):
        swarm.send("s1", "one too many")
    assert swarm.inbox("s1") == first
    swarm.send("s1", "room again")


def test_a_retried_send_is_stored_once(server_url: str) -> None:
    """A send whose reply was lost is retried with the same message id: one message."""
    with Swarm(server_url, swarm="test") as s:
        s.register("shard", name="s1")
        args = ("s1", "m-fixed", "", "text", "hi", "", 0, 10, 10, 100, "", 100)
        keys: tuple[str, ...] = (KEYS.agents, KEYS.inbox("s1"), KEYS.events, KEYS.cursors)
        keys += (KEYS.messages, KEYS.message_order)
        first = run_script(s, "message_send", keys, args)
        again = run_script(s, "message_send", keys, args)
        assert first == again
        assert [m.id for m in s.inbox("s1")] == ["m-fixed"]


def test_a_retried_read_returns_the_same_batch(server_url: str) -> None:
    """A read whose reply was lost is sent again with the same read id: nothing is lost."""
    with Swarm(server_url, swarm="test") as s:
        s.register("shard", name="s1")
        s.register("worker", name="w1")
        sent = [s.send("s1", f"m{i}") for i in range(3)]
        everyone = s.broadcast("b", sender="w1")
        keys = (KEYS.agents, KEYS.inbox("s1"), KEYS.broadcast, KEYS.cursors)
        read = functools.partial(run_script, s, "inbox_read")
        first = read(keys, ("s1", 3, "1", "r-lost", message_ops.READ_KEPT))
        assert read(keys, ("s1", 3, "1", "r-lost", message_ops.READ_KEPT)) == first  # retry
        assert [f[f.index(b"body") + 1] for _, f in first] == [b"m0", b"m1", b"m2"]
        # The next read commits that batch and goes on.
        assert s.inbox("s1") == [everyone]
        assert s.inbox("s1") == []
        assert s.inbox("s1", ack=False) == []
        later = s.send("s1", "later")
        assert s.inbox("s1", ack=False) == [later]
        assert s.inbox("s1") == [later]
        with raw_client(server_url) as r:
            # committed by the next read: m0-m2 are kept as read (the last count of the
            # pending field), later is in the new pending batch; none counts as unread
            assert r.xlen(KEYS.inbox("s1")) == 4
            assert r.hget(KEYS.cursors, "s1|pending").split()[-1] == b"4"
        assert sent[0].body == "m0"


def test_a_blank_message_is_refused_and_nothing_is_sent(swarm: Swarm) -> None:
    """Every face's send meets it: an unset variable or a producer that printed nothing."""
    swarm.register("shard", name="shard-a")
    for body in ("", " \n\t"):
        with pytest.raises(ValidationError, match="the message is empty"):
            swarm.send("shard-a", body, data={"n": 1})
        with pytest.raises(ValidationError, match="the message is empty"):
            swarm.broadcast(body)
    assert swarm.inbox("shard-a", limit=10) == []


def test_get_message_shows_one_message_received_and_marks_nothing(swarm: Swarm) -> None:
    swarm.register("shard", name="s1")
    swarm.register("worker", name="w1")
    direct = swarm.send("s1", "the plan " + "x" * 5_000, sender="w1", data={"step": 2})
    everyone = swarm.broadcast("all hands", sender="w1")
    assert swarm.get_message("s1", direct.id) == direct
    assert swarm.get_message("s1", everyone.id) == everyone
    assert swarm.get_message("w1", everyone.id) == everyone  # any broadcast still kept
    assert not swarm.message_status(direct.id).read  # nothing marked read
    assert swarm.inbox("s1") == [direct, everyone]
    # read: still shown by id (the inbox keeps its newest read messages)
    assert swarm.get_message("s1", direct.id) == direct
    with pytest.raises(NotFound, match="sent to s1, not to w1: ask for it as s1"):
        swarm.get_message("w1", direct.id)
    with pytest.raises(NotFound, match="m-none is unknown: it was never sent"):
        swarm.get_message("s1", "m-none")
    with pytest.raises(NotFound, match="agent nobody is not registered"):
        swarm.get_message("nobody", direct.id)
    for bad in ["", "a b", "x" * 100]:
        with pytest.raises(ValidationError, match="message id"):
            swarm.get_message("s1", bad)
    with pytest.raises(ValidationError, match="agent id"):
        swarm.get_message("a:b", direct.id)


def test_an_inbox_keeps_its_newest_read_messages_and_counts_only_unread_ones(
    swarm: Swarm, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read messages stay showable by id (the newest READ_KEPT), whichever way they were
    read (an acknowledged read, mark_read), and never count against the inbox limit nor as
    the unread messages an agent leaving drops."""
    monkeypatch.setattr(message_ops, "READ_KEPT", 3)
    monkeypatch.setattr(message_ops, "INBOX_LIMIT", 4)
    swarm.register("shard", name="s1")
    sent = [swarm.send("s1", f"m{i}") for i in range(2)]
    swarm.mark_read("s1", sent[1].seq)  # 2 read: both kept
    sent += [swarm.send("s1", f"m{i}") for i in range(2, 6)]  # 4 unread: the limit
    with pytest.raises(Conflict, match="full"):
        swarm.send("s1", "one too many")
    assert swarm.inbox("s1", limit=2) == sent[2:4]
    assert swarm.inbox("s1", limit=1) == sent[4:5]
    swarm.mark_read("s1", sent[5].seq)
    sent += [swarm.send("s1", f"m{i}") for i in range(6, 10)]  # none of the read counts
    with pytest.raises(Conflict, match="full"):
        swarm.send("s1", "one too many")
    for m in sent[3:]:  # the newest 3 read, and the unread
        assert swarm.get_message("s1", m.id) == m
    for m in sent[:3]:
        with pytest.raises(NotFound, match=r"no longer kept \(an inbox keeps its newest 3 read"):
            swarm.get_message("s1", m.id)
    assert swarm.inbox("s1", ack=False) == sent[6:]
    assert swarm.inbox("s1") == sent[6:]
    assert swarm.inbox("s1") == []  # commits that read: the inbox holds 3 read, no more
    with raw_client(redis_url) as r:
        assert r.xlen(KEYS.inbox("s1")) == 3
    swarm.send("s1", "unread when it leaves")
    swarm.deregister("s1")
    with raw_client(redis_url) as r:
        (_, left) = r.xrevrange(KEYS.events, count=1)[0]
    assert left[b"type"] == b"agent.left" and left[b"unread"] == b"1"
