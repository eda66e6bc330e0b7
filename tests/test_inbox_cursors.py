"""No message missed (issue 19): durable read cursors moved only once messages were shown,
a blocking ``inbox(wait_s=...)``, and ``message_status`` for senders; the CLI's
``swarm msg inbox --wait`` and ``swarm msg status``."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest

from redis_swarm import MessageStatus, NotFound, Swarm, ValidationError
from redis_swarm._ops import messages as message_ops

from ._cli import Cli


@pytest.fixture
def handle(server_url: str) -> Iterator[Swarm]:
    with Swarm(server_url, swarm="test") as s:
        yield s


@pytest.mark.slow
def test_a_session_restarting_mid_stream_sees_each_of_1000_messages_once(
    handle: Swarm, server_url: str
) -> None:
    """A sender streams 1,000 messages (direct and broadcast) while the reader restarts
    every few reads with a new handle, and sometimes dies between reading and showing (so
    nothing is marked read): every message is shown exactly once, in the order sent."""
    handle.register("worker", name="reader")
    handle.register("coordinator", name="boss")
    sent: list[str] = []

    def stream() -> None:
        with Swarm(server_url, swarm="test") as s:
            for i in range(1000):
                m = s.broadcast(f"b{i}", sender="boss") if i % 3 == 0 else s.send("reader", f"d{i}")
                sent.append(m.id)

    sender = threading.Thread(target=stream)
    sender.start()
    shown: list[str] = []
    rng = random.Random(19)
    restarts = crashes = 0
    while len(shown) < 1000:
        restarts += 1
        with Swarm(server_url, swarm="test") as session:
            for _ in range(rng.randint(1, 6)):
                batch = session.inbox("reader", ack=False, limit=rng.randint(1, 60), wait_s=5)
                if not batch:
                    continue
                if rng.random() < 0.2:  # dies before showing them: they must come back
                    crashes += 1
                    break
                shown.extend(m.id for m in batch)
                session.mark_read("reader", batch[-1].seq)
    sender.join()
    assert restarts > 10 and crashes > 0
    assert shown == sent
    assert handle.inbox("reader", ack=False) == []


def test_mark_read_never_moves_back_and_checks_its_seq(swarm: Swarm) -> None:
    handle = swarm
    handle.register("worker", name="w")
    a, b, c = (handle.send("w", x) for x in "abc")
    handle.mark_read("w", b.seq)
    handle.mark_read("w", a.seq)  # older: changes nothing
    assert handle.inbox("w", ack=False) == [c]
    handle.mark_read("w", b.seq)
    assert handle.inbox("w", ack=False) == [c]
    with pytest.raises(ValidationError, match="seq of the last message shown"):
        handle.mark_read("w", "m-123")
    # The two-step acknowledged read and mark_read share the cursor.
    assert handle.inbox("w") == [c]
    d = handle.send("w", "d")
    assert handle.inbox("w") == [d]
    assert handle.inbox("w") == []


def test_inbox_wait_blocks_until_a_message_for_this_agent(handle: Swarm, server_url: str) -> None:
    handle.register("worker", name="w")
    handle.register("worker", name="other")
    start = time.monotonic()
    assert handle.inbox("w", wait_s=0.3) == []
    assert time.monotonic() - start >= 0.3

    def later() -> None:
        with Swarm(server_url, swarm="test") as s:
            time.sleep(0.3)
            s.send("other", "not for w")
            s.broadcast("own broadcast", sender="w")  # never shown to its sender
            time.sleep(0.3)
            s.send("w", "for w")

    t = threading.Thread(target=later)
    t.start()
    start = time.monotonic()
    got = handle.inbox("w", wait_s=10)
    elapsed = time.monotonic() - start
    t.join()
    assert [m.body for m in got] == ["for w"]
    assert 0.5 < elapsed < 3


def test_message_status_direct_and_broadcast(swarm: Swarm) -> None:
    handle = swarm
    handle.register("coordinator", name="boss")
    handle.register("worker", name="w1")
    handle.register("worker", name="w2")
    direct = handle.send("w1", "hi", sender="boss")
    st = handle.message_status(direct.id)
    assert st == MessageStatus(
        id=direct.id, to="w1", seq=direct.seq, read=False, read_by=(), unread_by=("w1",)
    )
    handle.inbox("w1", ack=False)  # a peek shows nothing to anyone
    assert not handle.message_status(direct.id).read
    handle.inbox("w1")  # acknowledged (not yet committed) counts as read
    assert handle.message_status(direct.id).read_by == ("w1",)
    handle.inbox("w1")  # commits it
    assert handle.message_status(direct.id).read

    everyone = handle.broadcast("all", sender="boss")
    time.sleep(0.005)  # registration times are in ms
    handle.register("worker", name="late")  # joined after it: not a reader
    st = handle.message_status(everyone.id)
    assert (st.to, st.read, st.read_by, st.unread_by) == ("*", False, (), ("w1", "w2"))
    batch = handle.inbox("w2", ack=False)
    handle.mark_read("w2", batch[-1].seq)
    st = handle.message_status(everyone.id)
    assert (st.read_by, st.unread_by) == (("w2",), ("w1",))
    with pytest.raises(NotFound, match="never sent"):
        handle.message_status("m-nope")


def test_the_status_index_keeps_only_the_newest(
    handle: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(message_ops, "MESSAGE_INDEX_MAX", 3)
    handle.register("worker", name="w")
    sent = [handle.send("w", str(i)) for i in range(5)]
    with pytest.raises(NotFound):
        handle.message_status(sent[1].id)
    assert [handle.message_status(m.id).to for m in sent[2:]] == ["w"] * 3


def test_cli_inbox_wait_and_status(server_url: str, handle: Swarm) -> None:
    cli = Cli(server_url)
    handle.register("worker", name="w")
    sent = cli.json("msg", "send", "w", "hello", "--from", "boss")
    out = cli("msg", "status", sent["id"])
    assert (
        out.stdout.startswith(f"{sent['id']} (to w): unread") and "not yet read by: w" in out.stdout
    )
    assert cli.json("msg", "inbox", "w", "--peek")["items"][0]["seq"] == sent["seq"]
    assert cli.json("msg", "status", sent["id"])["read"] is False
    assert [m["body"] for m in cli.json("msg", "inbox", "w")["items"]] == ["hello"]
    assert cli.json("msg", "status", sent["id"])["read_by"] == ["w"]
    start = time.monotonic()
    out = cli("msg", "inbox", "w", "--wait", "0.3")
    assert "no new messages" in out.stderr and time.monotonic() - start >= 0.3
    timer = threading.Timer(0.2, lambda: handle.send("w", "late"))
    timer.start()
    assert [m["body"] for m in cli.json("msg", "inbox", "w", "--wait", "10")["items"]] == ["late"]
    timer.join()
    cli("msg", "status", "m-unknown", expect=1)
