"""A give-back of a read another read committed puts copies of its messages in the inbox
(``lua/inbox_read.lua``): each message's status, ``get_message`` and ``mark_read`` by id
follow its copy (unread until it is read), the copies wake a reader waiting on the inbox as a
new message does, and they take their place in the swarm's one message order. And the CLI's
``msg mark-read --json`` and ``msg inbox --json`` say whether anything was marked read."""

from __future__ import annotations

import threading
import time

import pytest

from redis_swarm import Inbox, Swarm

from ._cli import Cli
from ._raw import raw_client


@pytest.fixture
def handle(inbox_pair: Swarm) -> Swarm:
    return inbox_pair


def _lost_batch(handle: Swarm) -> Inbox:
    """A batch read by one reader of inbox ``a`` and committed by the other's read (empty,
    here) before its reader gave it back: what a cut read leaves."""
    taken = handle.inbox("a")
    assert taken and taken.read_id is not None
    assert list(handle.inbox("a")) == []  # (the other reader: commits the batch)
    return taken


def test_a_given_back_message_reads_unread_until_its_copy_is_read(handle: Swarm) -> None:
    """The sender polling message_status of its message saw it read though no reader got
    it (the entry read, not its copy, was looked at); get_message showed the entry read, and
    mark_read by id marked nothing (its seq), leaving the copy unread for ever."""
    sent = [handle.send("a", f"m{i}", sender="lead") for i in range(2)]
    taken = _lost_batch(handle)
    assert handle.give_back_inbox("a", taken.read_id or "") is True

    for m in sent:
        status = handle.message_status(m.id)
        assert (status.read, status.unread_by) == (False, ("a",)), status
    shown = handle.get_message("a", sent[1].id)
    assert shown.body == "m1" and shown.seq != sent[1].seq  # (the copy, where it waits)
    assert [m.seq for m in handle.inbox("a", ack=False)][-1] == shown.seq

    assert handle.mark_read("a", sent[0].id) is True  # (its copy, not the entry read)
    assert handle.message_status(sent[0].id).read is True
    assert handle.message_status(sent[1].id).read is False
    assert [m.id for m in handle.inbox("a")] == [sent[1].id]
    assert handle.message_status(sent[1].id).read is True


def test_a_given_back_broadcast_reads_unread_for_that_reader_only(
    handle: Swarm, server_url: str
) -> None:
    """A broadcast's copy goes to the one inbox given back: that reader has not read it until
    the copy is read (its broadcast cursor passed the broadcast); other readers as before."""
    handle.register("worker", name="b")
    cast = handle.broadcast("to all", sender="lead")
    taken = _lost_batch(handle)
    assert [m.id for m in taken] == [cast.id]
    assert handle.give_back_inbox("a", taken.read_id or "") is True

    status = handle.message_status(cast.id)
    assert (status.read_by, status.unread_by) == ((), ("a", "b")), status
    # Shown to "a" as its copy waits in its inbox (its seq: a mark-read by seq marks it).
    copy = handle.get_message("a", cast.id)
    assert copy.seq != cast.seq and copy.body == "to all", copy
    assert handle.get_message("b", cast.id).seq == cast.seq
    # An entry stored before the index held READERS: its copy token is found too.
    with raw_client(server_url) as r:
        entry = r.hget(handle.keys.messages, cast.id).decode().split(" ")
        r.hset(handle.keys.messages, cast.id, " ".join([*entry[:4], *entry[5:]]))
    assert handle.get_message("a", cast.id).seq == copy.seq
    assert [m.id for m in handle.inbox("b")] == [cast.id]
    assert handle.message_status(cast.id).unread_by == ("a",)
    assert handle.mark_read("a", cast.id) is True  # (by id: its copy's seq)
    assert handle.inbox("a", ack=False) == []
    assert handle.message_status(cast.id).read is True


def test_a_give_back_wakes_a_reader_waiting_on_the_inbox(handle: Swarm, server_url: str) -> None:
    """A reader waiting on the empty inbox got the copies only when its wait's current
    block ran out (up to 5 s): nothing told it they were there."""
    sent = [handle.send("a", f"m{i}").id for i in range(2)]
    taken = _lost_batch(handle)
    got: list[tuple[list[str], float]] = []

    def wait() -> None:
        with Swarm(server_url, swarm="test") as waiter:
            read = waiter.inbox("a", wait_s=30)
            got.append(([m.id for m in read], time.monotonic()))

    waiting = threading.Thread(target=wait)
    waiting.start()
    time.sleep(0.5)  # (the reader waits by then; one not yet waiting finds the copies at once)
    given = time.monotonic()
    assert handle.give_back_inbox("a", taken.read_id or "") is True
    waiting.join(15)
    assert got and got[0][0] == sent
    assert got[0][1] - given < 1.5, f"woken {got[0][1] - given:.2f} s after the give-back"


def test_copies_take_their_place_in_the_one_message_order(handle: Swarm) -> None:
    """A copy's seq comes from the message.sent sequence, after every message sent before
    the give-back and before every one sent after: marking read through a later broadcast
    passes the copy only when the copy was shown before it."""
    sent = handle.send("a", "direct")
    taken = _lost_batch(handle)
    before = handle.events(limit=1, newest=True)[-1].id
    assert handle.give_back_inbox("a", taken.read_id or "") is True
    after = handle.events(since=before)
    assert [(e.type.value, e.fields.get("message"), e.fields.get("to")) for e in after] == [
        ("message.sent", sent.id, "a")
    ]
    later = handle.broadcast("later", sender="lead")
    assert [m.id for m in handle.inbox("a", ack=False)] == [sent.id, later.id]
    assert [m.seq for m in handle.inbox("a", ack=False)] == [after[0].id, later.seq]


def test_cli_json_says_whether_anything_was_marked(server_url: str, handle: Swarm) -> None:
    """msg mark-read --json said only what it was given (the text output says whether
    anything changed); msg inbox --json not whether the listed messages are read now."""
    cli = Cli(server_url)
    m = handle.send("a", "hello")
    peeked = cli.json("msg", "inbox", "a", "--peek")
    assert [i["id"] for i in peeked["items"]] == [m.id] and peeked["marked"] is False
    done = cli.json("msg", "mark-read", m.id, "--agent", "a")
    assert done == {"agent": "a", "through": m.id, "marked": True}
    again = cli.json("msg", "mark-read", m.id, "--agent", "a")
    assert again == {"agent": "a", "through": m.id, "marked": False}
    n = handle.send("a", "next")
    read = cli.json("msg", "inbox", "a")
    assert [i["id"] for i in read["items"]] == [n.id] and read["marked"] is True
    assert cli.json("msg", "inbox", "a")["marked"] is False
