"""``mark_read`` by seq takes only a message the agent receives: a seq past the newest message
blocked the agent's inbox for good (every later message counted as read), and another
agent's seq marked the agent's own unread messages read. A seq the agent had read through
already says it changed nothing."""

from __future__ import annotations

import pytest

from redis_swarm import NotFound, Swarm

from ._cli import Cli
from ._raw import raw_client

FUTURE = "99999999999999-0"


def test_a_seq_past_the_newest_message_is_refused_and_the_inbox_still_delivers(
    swarm: Swarm,
) -> None:
    swarm.register("worker", name="bob")
    for through in (FUTURE, "99999999999999", "18446744073709551615-18446744073709551615"):
        with pytest.raises(NotFound, match=f"no message bob receives has the seq {through}"):
            swarm.mark_read("bob", through)
    # (a part past the largest a stream id holds is no message either, not a server error)
    with pytest.raises(NotFound, match="swarm msg inbox bob --peek"):
        swarm.mark_read("bob", "99999999999999999999-0")
    sent = swarm.send("bob", "after future mark", sender="lead")
    everyone = swarm.broadcast("to all", sender="lead")
    with pytest.raises(NotFound, match="nothing was marked read"):
        swarm.mark_read("bob", FUTURE)
    assert swarm.inbox("bob", ack=False) == [sent, everyone]
    assert swarm.inbox("bob") == [sent, everyone]


def test_another_agents_seq_is_refused_and_leaves_the_messages_unread(swarm: Swarm) -> None:
    swarm.register("worker", name="carol")
    swarm.register("worker", name="dave")
    mine = swarm.send("carol", "for carol", sender="lead")
    theirs = swarm.send("dave", "for dave", sender="lead")
    with pytest.raises(NotFound, match="no message carol receives has the seq"):
        swarm.mark_read("carol", theirs.seq)
    with pytest.raises(NotFound, match="sent to dave, not to carol"):  # (by id, as before)
        swarm.mark_read("carol", theirs.id)
    assert swarm.inbox("carol", ack=False) == [mine]
    assert swarm.inbox("dave", ack=False) == [theirs]
    assert swarm.message_status(mine.id).read is False


def test_a_seq_read_through_already_changes_nothing_and_says_so(swarm: Swarm, cli: Cli) -> None:
    swarm.register("worker", name="w")
    swarm.register("worker", name="x")
    a, elsewhere, b = swarm.send("w", "a"), swarm.send("x", "for x"), swarm.send("w", "b")
    assert swarm.mark_read("w", b.seq) is True
    c = swarm.send("w", "c")
    assert swarm.mark_read("w", b.seq) is False  # again
    assert swarm.mark_read("w", a.seq) is False  # older
    assert swarm.mark_read("w", a.id) is False  # by id
    assert swarm.mark_read("w", elsewhere.seq) is False  # (another's, passed: marks nothing)
    assert swarm.inbox("x", ack=False) == [elsewhere]
    out = cli("msg", "mark-read", a.seq, "--agent", "w")
    assert out.stdout == f"already read for w through {a.seq}: nothing changed\n"
    assert swarm.inbox("w", ack=False) == [c]
    # An acknowledged read's batch counts as read, committed or not yet.
    assert swarm.inbox("w") == [c]
    assert swarm.mark_read("w", c.seq) is False
    assert swarm.inbox("w", ack=False) == []


def test_a_seq_of_the_agents_inbox_marks_read_through_it(swarm: Swarm, cli: Cli) -> None:
    swarm.register("worker", name="w")
    a, b, c = (swarm.send("w", x) for x in "abc")
    assert swarm.mark_read("w", a.seq) is True
    assert swarm.inbox("w", ack=False) == [b, c]
    out = cli("msg", "mark-read", b.seq, "--agent", "w")
    assert out.stdout == f"marked read for w through {b.seq}\n"
    assert swarm.inbox("w", ack=False) == [c]
    assert swarm.mark_read("w", c.id) is True  # by id
    assert swarm.inbox("w", ack=False) == []
    out = cli("msg", "mark-read", FUTURE, "--agent", "w", expect=1)
    assert "no message w receives has the seq" in out.stderr
    assert "swarm msg inbox w --peek" in out.stderr


def test_a_broadcast_seq_marks_read_for_every_receiver(swarm: Swarm) -> None:
    for name in ("r1", "r2", "r3"):
        swarm.register("worker", name=name)
    direct = swarm.send("r1", "before the broadcast", sender="lead")
    everyone = swarm.broadcast("to all", sender="r3")
    later = swarm.send("r1", "after the broadcast", sender="lead")
    for name in ("r1", "r2"):
        assert swarm.mark_read(name, everyone.seq) is True
        assert swarm.mark_read(name, everyone.seq) is False
    swarm.mark_read("r3", everyone.seq)  # its sender's too (as by its id)
    # (the direct message before it is passed too, the one after it is not)
    assert swarm.inbox("r1", ack=False) == [later]
    assert swarm.inbox("r2", ack=False) == swarm.inbox("r3", ack=False) == []
    assert swarm.message_status(everyone.id).read is True
    assert swarm.message_status(direct.id).read is True


def test_an_empty_agent_id_is_said_to_be_empty(cli: Cli) -> None:
    out = cli("msg", "inbox", "", expect=2, env={"SWARM_AGENT": "bob"})
    assert "agent id is empty" in out.stderr
    assert "name the agent" not in out.stderr


def test_a_broadcast_from_the_cli_carries_its_kind_and_data(swarm: Swarm, cli: Cli) -> None:
    # (`msg broadcast` had neither option: only `msg send` could say them)
    swarm.register("worker", name="b1")
    cli("msg", "broadcast", "stop work", "--from", "lead", "--kind", "halt", "--data",
        '{"until": "noon"}')  # fmt: skip
    (got,) = swarm.inbox("b1", ack=False)
    assert (got.body, got.kind, got.data) == ("stop work", "halt", {"until": "noon"})
    out = cli("msg", "broadcast", "-", "--data", "-", input="x", expect=2)
    assert "BODY and --data cannot both read stdin" in out.stderr
    assert swarm.inbox("b1", ack=False) == [got]


def test_a_broadcast_shown_then_trimmed_is_still_marked_through(
    swarm: Swarm, redis_url: str
) -> None:
    # A peek showed a message and a broadcast; the broadcast stream was trimmed since (it
    # keeps the newest 10,000): marking through the broadcast shown still marks (it was
    # refused as no message of the agent's, the session shown them all again).
    swarm.register("worker", name="bob")
    direct = swarm.send("bob", "direct", sender="lead")
    shown = swarm.broadcast("to all", sender="lead")
    later = swarm.broadcast("after the trim", sender="lead")
    assert swarm.inbox("bob", ack=False) == [direct, shown, later]
    raw = raw_client(redis_url)
    assert raw.xtrim(swarm.keys.broadcast, minid=later.seq, approximate=False) == 1
    raw.close()
    assert swarm.mark_read("bob", shown.seq) is True
    assert swarm.inbox("bob", ack=False) == [later]
    with pytest.raises(NotFound):  # (one past the newest is still refused)
        swarm.mark_read("bob", FUTURE)


def test_the_agents_own_broadcasts_alone_mark_nothing(swarm: Swarm) -> None:
    # Its own broadcasts are never shown to it: marking through one with nothing else unread
    # changes nothing (it answered True, the CLI "marked read").
    swarm.register("worker", name="bob")
    own = swarm.broadcast("from bob", sender="bob")
    assert swarm.inbox("bob", ack=False) == []
    assert swarm.mark_read("bob", own.seq) is False
    other = swarm.broadcast("from lead", sender="lead")
    assert swarm.mark_read("bob", other.seq) is True
