"""No message missed (issue 19): durable read cursors moved only once messages were shown,
a blocking ``inbox(wait_s=...)``, and ``message_status`` for senders; the CLI's
``swarm msg inbox --wait`` and ``swarm msg status``."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import MessageStatus, NotFound, Swarm, ValidationError
from redis_swarm._ops import messages as message_ops
from redis_swarm._validate import MAX_READ

from ._cli import Cli, subprocess_env
from ._handles import untyped


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
                if len(shown) >= 1000:  # all shown: a read now would wait out its 5 s
                    break
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
    with pytest.raises(NotFound, match="message m-123 is unknown"):
        handle.mark_read("w", "m-123")
    with pytest.raises(ValidationError, match="id of the last message shown"):
        untyped(handle).mark_read("w", 123)
    # The two-step acknowledged read and mark_read share the cursor.
    assert handle.inbox("w") == [c]
    d = handle.send("w", "d")
    assert handle.inbox("w") == [d]
    assert handle.inbox("w") == []


def test_mark_read_by_message_id_leaves_later_messages_unread(swarm: Swarm) -> None:
    """A reader that peeked marks read through the last message it was shown, by its id:
    what arrived after it stays unread (an acknowledged read would take it too)."""
    swarm.register("worker", name="w")
    swarm.register("worker", name="other")
    a = swarm.send("w", "a")
    everyone = swarm.broadcast("to all", sender="boss")
    shown = swarm.inbox("w", ack=False)
    assert shown == [a, everyone]
    later = swarm.send("w", "arrived after the peek")
    swarm.mark_read("w", everyone.id)  # a broadcast's id marks its place too
    assert swarm.inbox("w", ack=False) == [later]
    swarm.mark_read("w", a.id)  # older: changes nothing
    assert swarm.inbox("w", ack=False) == [later]
    elsewhere = swarm.send("other", "not for w")
    with pytest.raises(NotFound, match="sent to other, not to w: mark it read as other"):
        swarm.mark_read("w", elsewhere.id)
    with pytest.raises(NotFound, match="agent ghost is not registered"):
        swarm.mark_read("ghost", everyone.id)
    swarm.mark_read("w", later.id)
    assert swarm.inbox("w", ack=False) == []
    assert swarm.inbox("other", ack=False) == [everyone, elsewhere]


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


def test_cli_mark_read_takes_only_what_a_peek_showed(server_url: str, handle: Swarm) -> None:
    """msg inbox --peek, then msg mark-read with the last id shown: a message that arrived
    in between stays unread (msg inbox would have taken it too)."""
    cli = Cli(server_url)
    handle.register("worker", name="w")
    first = handle.send("w", "first")
    shown = cli("msg", "inbox", "w", "--peek")
    assert f"'swarm msg mark-read {first.id} --agent w' marks these read" in shown.stderr
    later = handle.send("w", "arrived in between")
    out = cli("msg", "mark-read", first.id, "--agent", "w")
    assert out.stdout == f"marked read for w through {first.id}\n"
    assert [m["id"] for m in cli.json("msg", "inbox", "w", "--peek")["items"]] == [later.id]
    done = cli.json("msg", "mark-read", later.seq, "--agent", "w")  # a seq, from the JSON
    assert done == {"agent": "w", "through": later.seq, "marked": True}
    assert handle.inbox("w", ack=False) == []
    out = cli("msg", "mark-read", "m-nosuchmessage", "--agent", "w", expect=1)
    assert "message m-nosuchmessage is unknown" in out.stderr and "check the id" in out.stderr
    out = cli("msg", "mark-read", first.seq, "--agent", "ghost", expect=1)
    assert "agent ghost is not registered: register it" in out.stderr
    out = cli("msg", "mark-read", first.id, expect=2, env={"SWARM_AGENT": None})
    assert "name the agent whose messages to mark read with --agent" in out.stderr


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


def test_cli_msg_show_prints_one_message_whole_and_marks_nothing(
    server_url: str, handle: Swarm
) -> None:
    cli = Cli(server_url)
    handle.register("worker", name="w")
    body = "line one\nline two " + "z" * 3_000
    sent = cli.json("msg", "send", "w", body, "--from", "boss", "--data", '{"step": 3}')
    shown = cli.json("msg", "show", sent["id"], "--agent", "w")
    assert shown == sent
    out = cli("msg", "show", sent["id"], env={"SWARM_AGENT": "w"})
    assert out.stdout.endswith(f"\n{body}\n") and '{"step": 3}' in out.stdout, out
    assert "boss" in out.stdout and "ago)" in out.stdout
    assert cli.json("msg", "status", sent["id"])["read"] is False  # marks nothing
    assert [m["id"] for m in cli.json("msg", "inbox", "w")["items"]] == [sent["id"]]
    assert cli.json("msg", "show", sent["id"], "--agent", "w")["body"] == body  # read: kept
    everyone = cli.json("msg", "broadcast", "all hands", "--from", "boss")
    assert "everyone (broadcast)" in cli("msg", "show", everyone["id"], "--agent", "w").stdout
    out = cli("msg", "show", sent["id"], env={"SWARM_AGENT": ""}, expect=2)
    assert "name the agent that received it with --agent (or set SWARM_AGENT)" in out.stderr
    handle.register("worker", name="v")
    out = cli("msg", "show", sent["id"], "--agent", "v", expect=1)
    assert "was sent to w, not to v: ask for it as w" in out.stderr
    out = cli("--json", "msg", "show", "m-unknown", "--agent", "w", expect=1)
    assert json.loads(out.stderr)["error"] == "NotFound" and "is unknown" in out.stderr


# --- one reader per message, how many wait, and an agent leaving mid-wait


def _waiting_readers(raw: Any) -> int:
    """Connections blocked in XREAD (each waiting ``msg inbox --wait``)."""
    return sum(1 for c in raw.client_list() if c.get("cmd") == "xread")


def _reader(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``swarm --json msg inbox a ARGS`` as a real process, its output piped."""
    command = [sys.executable, "-m", "redis_swarm", "--json", "msg", "inbox", "a", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_waiting_cli_readers_never_print_one_message_twice(
    redis_url: str, raw: Any, tmp_path: Path
) -> None:
    """Two ``swarm msg inbox a --wait`` at once, then one message: one prints it, the other
    waits on and prints the next (they both printed the first, 8 rounds in 10, when the CLI
    peeked and marked read after printing)."""
    env = subprocess_env(redis_url, "test", tmp_path)
    with Swarm(redis_url, swarm="test") as s:
        s.register("worker", name="a")
        for round_ in range(3):
            readers = [_reader(env, "--wait", "20") for _ in range(2)]
            deadline = time.monotonic() + 30
            while _waiting_readers(raw) < 2:
                assert time.monotonic() < deadline, "the readers never waited"
                time.sleep(0.02)
            s.send("a", f"x-{round_}", sender="c")
            while all(r.poll() is None for r in readers):
                assert time.monotonic() < deadline, "nobody read the message"
                time.sleep(0.02)
            s.send("a", f"y-{round_}", sender="c")
            got = []
            for r in readers:
                out, err = r.communicate(timeout=30)
                assert r.returncode == 0, err
                got.append([m["body"] for m in json.loads(out)["items"]])
            assert sorted(got) == [[f"x-{round_}"], [f"y-{round_}"]]


def test_a_read_says_when_more_wait(swarm: Swarm) -> None:
    swarm.register("worker", name="r")
    for i in range(250):
        swarm.send("r", f"m{i}")
    peeked = swarm.inbox("r", ack=False)
    assert len(peeked) == 100 and peeked.more  # the default limit
    first = swarm.inbox("r")
    assert [m.body for m in first] == [m.body for m in peeked] and first.more
    second = swarm.inbox("r", limit=150)
    assert second[0].body == "m100" and len(second) == 150 and not second.more
    assert swarm.inbox("r") == [] and not swarm.inbox("r").more
    swarm.send("r", "one")
    assert not swarm.inbox("r", ack=False, limit=1).more
    last = swarm.inbox("r", limit=1)  # exactly the limit, nothing after it
    assert [m.body for m in last] == ["one"] and not last.more
    with pytest.raises(ValidationError, match=f"between 1 and {MAX_READ}"):
        swarm.inbox("r", limit=MAX_READ + 1)


def test_cli_inbox_says_when_more_wait(server_url: str, handle: Swarm) -> None:
    cli = Cli(server_url)
    handle.register("worker", name="r")
    for i in range(250):
        handle.send("r", f"m{i}")
    peeked = cli.json("msg", "inbox", "r", "--peek")
    assert len(peeked["items"]) == 100 and peeked["more"] is True
    out = cli("msg", "inbox", "r", "--peek", "--limit", "10")
    assert "(the oldest 10; more messages are waiting: raise --limit (at most 1000))" in out.stderr
    out = cli("msg", "inbox", "r")
    # (the bodies, at each line's end: a message id may hold "m100" too)
    bodies = [line.split()[-1] for line in out.stdout.splitlines() if " text " in line]
    assert "m99" in bodies and "m100" not in bodies, bodies
    assert (
        "(the oldest 100; more messages are waiting: read again, or raise --limit (at most 1000))"
        in out.stderr
    )
    rest = cli.json("msg", "inbox", "r", "--limit", "150")
    assert [m["body"] for m in rest["items"]] == [f"m{i}" for i in range(100, 250)]
    assert rest["more"] is False
    assert cli.json("msg", "inbox", "r") == {"items": [], "more": False, "marked": False}
    out = cli("msg", "inbox", "r", "--limit", str(MAX_READ + 1), expect=2)
    assert "--limit" in out.stderr


@pytest.mark.parametrize("leave", ["deregister", "sweep"])
def test_an_agent_leaving_ends_its_wait_at_once(swarm: Swarm, redis_url: str, leave: str) -> None:
    swarm.register("worker", name="w")

    left_at: list[float] = []

    def later() -> None:
        with Swarm(redis_url, swarm="test") as s:
            time.sleep(0.3)
            left_at.append(time.monotonic())
            s.deregister("w") if leave == "deregister" else s.sweep(0)

    t = threading.Thread(target=later)
    t.start()
    with pytest.raises(NotFound, match="agent w is not registered"):
        swarm.inbox("w", wait_s=20)
    ended = time.monotonic()
    t.join()
    # Timed from the leave, not from the start: on a loaded machine the other thread's
    # cluster handle alone took seconds to connect. The bound: not the rest of the wait,
    # nor of a 5 s block on the stream.
    assert ended - left_at[0] < 2.5


def test_cli_inbox_wait_ends_when_the_agent_is_deregistered(server_url: str, handle: Swarm) -> None:
    handle.register("worker", name="a")
    left_at: list[float] = []

    def leave() -> None:
        left_at.append(time.monotonic())
        handle.deregister("a")

    timer = threading.Timer(0.3, leave)
    timer.start()
    out = Cli(server_url)("msg", "inbox", "a", "--wait", "20", expect=1)
    ended = time.monotonic()
    timer.join()
    # (timed from the leave: a loaded machine may take seconds to start the CLI)
    assert "agent a is not registered" in out.stderr and ended - left_at[0] < 2.5


def test_an_interruption_while_messages_print_waits_until_they_are_out(
    redis_url: str, tmp_path: Path
) -> None:
    """The messages are taken when read: SIGTERM while they are written (here into a pipe
    nobody reads yet) is let pass: they are all written, and the command ends as it would
    have, exit 0 (it was killed halfway once, which lost the rest; then killed after them,
    which failed a `... > f && use f` that had them)."""
    env = subprocess_env(redis_url, "test", tmp_path)
    with Swarm(redis_url, swarm="test") as s:
        s.register("worker", name="a")
        bodies = [f"{i}:" + "x" * 8000 for i in range(20)]  # 160 KB: more than a pipe holds
        for body in bodies:
            s.send("a", body)
        with _reader(env) as reader:
            assert reader.stdout is not None
            first = reader.stdout.read(1)  # it is printing: the pipe is full, the write blocks
            reader.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert reader.poll() is None  # held while the messages are written
            rest = reader.stdout.read()
            reader.wait(30)
        assert reader.returncode == 0  # (the work was done: cli/_app.finish_uninterrupted)
        assert [m["body"] for m in json.loads(first + rest)["items"]] == bodies
        assert s.inbox("a") == []
