"""An acknowledged inbox read cut before its caller got its messages (its asyncio task
cancelled, Ctrl-C) gives them back: the next read returns them. Each message sent to a lone
reader is returned exactly once, however the cuts fall (before its script ran, while its
reply is on the way, during the peek that follows a full batch); another reader's batch is
never given back nor returned twice; a read that is not cut acknowledges as before."""

from __future__ import annotations

import asyncio
import functools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
import redis

from redis_swarm import AsyncSwarm, Swarm, ValidationError
from redis_swarm.mcp_server import build_server

from ._proxy import LatencyProxy
from ._servers import RedisServer
from .mcp_server._helpers import connect

SWARM = "inbox-cancel"


@pytest.fixture
def near(own_server: RedisServer, own: redis.Redis) -> Iterator[Swarm]:
    """A handle straight to the server: the sender, and the reader that checks afterwards."""
    with Swarm(f"redis://127.0.0.1:{own_server.port}", swarm=SWARM) as swarm:
        swarm.register("shard", name="a")
        yield swarm


@pytest.fixture
def link(own_server: RedisServer) -> Iterator[LatencyProxy]:
    """The far reader's way to the server: replies come late on demand (``delay_s``)."""
    with LatencyProxy(own_server.port or 0) as proxy:
        yield proxy


def _blocked(own: redis.Redis) -> int:
    return int(own.info("clients")["blocked_clients"])


async def _until(what: str, check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Return once ``check()`` holds (looked at every 2 ms: the checks are quick)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s:g} s: {what}"
        await asyncio.sleep(0.002)


def _waits(own: redis.Redis, read: asyncio.Task[Any]) -> bool:
    """The server holds a wait (the read's), or the read returned without one."""
    return _blocked(own) >= 1 or read.done()


def _taken(near: Swarm, message_id: str) -> bool:
    """The read script ran: the message counts as shown to its reader (read, or in the
    batch of a read not yet committed)."""
    return near.message_status(message_id).read


# --- one cut read, wherever the cut falls


@pytest.mark.parametrize("wait_s", [0.0, 5.0])
def test_a_read_cancelled_while_its_reply_is_on_the_way_gives_its_messages_back(
    wait_s: float, near: Swarm, link: LatencyProxy, own: redis.Redis
) -> None:
    """The read script ran (its batch taken) and its reply is still on the way when the read
    is cancelled: the batch is given back before CancelledError goes on, and the next read
    returns it (read alone, or after a wait on an empty inbox: the read behind the wait)."""

    async def main() -> list[str]:
        async with AsyncSwarm(link.url, swarm=SWARM) as far:
            await far.ping()  # (connected)
            sent = [] if wait_s else [near.send("a", f"m{i}").id for i in range(3)]
            link.delay_s = 0.3  # (each way: the reply comes 0.3 s after the script ran)
            read = asyncio.create_task(far.inbox("a", wait_s=wait_s))
            if wait_s:
                await _until("the read waiting", lambda: _blocked(own) >= 1)
                sent = [near.send("a", f"m{i}").id for i in range(3)]
            await _until("the read script run", lambda: _taken(near, sent[-1]))
            assert not read.done()
            read.cancel()
            link.delay_s = 0.0
            with pytest.raises(asyncio.CancelledError):
                await read
            return sent

    sent = asyncio.run(main())
    assert not any(near.message_status(m).read for m in sent), "not given back"
    assert [m.id for m in near.inbox("a")] == sent
    assert all(near.message_status(m).read for m in sent)


def test_a_read_cancelled_during_the_peek_after_a_full_batch_gives_the_batch_back(
    near: Swarm, link: LatencyProxy
) -> None:
    """A read that fills its limit peeks afterwards (are more waiting?): cancelled while that
    peek is on its way, the read gives its batch back; the peek committed nothing."""
    sent = [near.send("a", f"m{i}").id for i in range(3)]

    async def main() -> None:
        async with AsyncSwarm(link.url, swarm=SWARM) as far:
            await far.ping()
            link.delay_s = 0.3
            start = link.stats.exchanges
            read = asyncio.create_task(far.inbox("a", limit=2))
            # the second round trip sent: the batch came back, the peek is on its way
            await _until("the peek sent", lambda: link.stats.exchanges >= start + 2)
            assert not read.done()
            read.cancel()
            with pytest.raises(asyncio.CancelledError):
                await read
            link.delay_s = 0.0

    asyncio.run(main())
    assert not any(near.message_status(m).read for m in sent)
    assert [m.id for m in near.inbox("a")] == sent


def test_a_read_cut_by_ctrl_c_gives_its_messages_back(near: Swarm, link: LatencyProxy) -> None:
    """The sync handle: Ctrl-C (SIGINT) while the read's reply is on the way. KeyboardInterrupt
    goes on once the batch is given back; the next read returns it."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT is taken by the main thread only")
    sent = [near.send("a", f"m{i}").id for i in range(3)]
    main = threading.main_thread().ident
    assert main is not None
    pressed = threading.Event()

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 15
        while not _taken(near, sent[-1]) and time.monotonic() < deadline:
            time.sleep(0.002)
        pressed.set()
        signal.pthread_kill(main, signal.SIGINT)

    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with Swarm(link.url, swarm=SWARM) as far:
            far.ping()
            link.delay_s = 0.5
            presser = threading.Thread(target=press_ctrl_c, daemon=True)
            presser.start()
            with pytest.raises(KeyboardInterrupt):
                far.inbox("a")
            assert pressed.is_set()
            presser.join(15)
            link.delay_s = 0.0
    finally:
        signal.signal(signal.SIGINT, handler)
    assert [m.id for m in near.inbox("a")] == sent


# --- many cuts, at every moment


@pytest.mark.parametrize("same_handle", [False, True])
def test_waiting_reads_cancelled_at_every_moment_lose_nothing_and_repeat_nothing(
    same_handle: bool, near: Swarm, link: LatencyProxy, own: redis.Redis
) -> None:
    """A reader waits on its empty inbox (the server holds its wait), a message is sent, and
    the read is cancelled 0 to 38 ms later: before its wake-up, while its read is on the way,
    after the script ran, once it returned. Every message is returned exactly once, by the
    cancelled read that returned or by a later read (the sender on the reader's handle too)."""

    async def main() -> tuple[list[str], list[str], int]:
        async with AsyncSwarm(link.url, swarm=SWARM) as far:
            await far.ping()
            link.delay_s = 0.004  # (a round trip of 8 ms: the cuts fall all along it)
            sent: list[str] = []
            received: list[str] = []
            cancelled = 0
            for i in range(40):
                await _until("the last wait ended", lambda: _blocked(own) == 0)
                while True:  # (a read finds what a cut read gave back at once: no wait)
                    read = asyncio.create_task(far.inbox("a", wait_s=5))
                    await _until("the read waiting", functools.partial(_waits, own, read))
                    if not read.done():
                        break
                    received += [m.id for m in read.result()]
                if same_handle:
                    sent.append((await far.send("a", f"m{i}")).id)
                else:
                    sent.append(near.send("a", f"m{i}").id)
                await asyncio.sleep((i % 20) * 0.002)
                read.cancel()
                try:
                    received += [m.id for m in await read]
                except asyncio.CancelledError:
                    cancelled += 1
            link.delay_s = 0.0
            received += [m.id for m in await far.inbox("a", limit=1000)]
            return sent, received, cancelled

    sent, received, cancelled = asyncio.run(main())
    assert cancelled, "no read was cut: the test proves nothing"
    assert sorted(received) == sorted(sent), {
        "lost": sorted(set(sent) - set(received)),
        "twice": sorted({m for m in received if received.count(m) > 1}),
    }
    assert all(near.message_status(m).read for m in sent)


# --- two readers of one inbox


def test_a_cut_read_gives_back_its_own_batch_only(near: Swarm, link: LatencyProxy) -> None:
    """Another reader's batch, handed out before the cut read ran (the cut read committed it,
    as any read does), stays read: the give-back returns the cut read's batch alone."""
    first = [near.send("a", f"first{i}").id for i in range(2)]
    assert [m.id for m in near.inbox("a")] == first  # (the other reader's: pending)
    second = [near.send("a", f"second{i}").id for i in range(2)]

    async def main() -> None:
        async with AsyncSwarm(link.url, swarm=SWARM) as far:
            await far.ping()
            link.delay_s = 0.3
            read = asyncio.create_task(far.inbox("a"))
            await _until("the read script run", lambda: _taken(near, second[-1]))
            read.cancel()
            with pytest.raises(asyncio.CancelledError):
                await read
            link.delay_s = 0.0

    asyncio.run(main())
    assert all(near.message_status(m).read for m in first)
    assert [m.id for m in near.inbox("a")] == second


def test_a_cut_read_never_gives_back_the_batch_of_a_read_made_since(
    near: Swarm, link: LatencyProxy
) -> None:
    """The other reader read between the cut read's script and its give-back (its read
    committed the cut read's batch, as the next read does): that reader's own batch stays
    its own, never handed out twice, and the cut read's messages, which no caller got, come
    back (copies: the cursors cannot move back past them; they were lost)."""
    early = [near.send("a", f"early{i}").id for i in range(2)]

    async def main() -> list[str]:
        async with AsyncSwarm(link.url, swarm=SWARM) as far:
            await far.ping()
            link.delay_s = 0.3
            read = asyncio.create_task(far.inbox("a"))
            await _until("the read script run", lambda: _taken(near, early[-1]))
            late = [near.send("a", f"late{i}").id for i in range(2)]
            assert [m.id for m in near.inbox("a")] == late  # (the other reader, meanwhile)
            read.cancel()
            with pytest.raises(asyncio.CancelledError):
                await read
            link.delay_s = 0.0
            return late

    late = asyncio.run(main())
    assert all(near.message_status(m).read for m in late)
    assert [m.id for m in near.inbox("a")] == early
    assert list(near.inbox("a")) == []


def test_a_read_whose_reply_was_lost_gets_its_batch_though_another_read_committed_it(
    near: Swarm, link: LatencyProxy
) -> None:
    """Two readers of one inbox: the first read's reply is lost, the other reader reads
    before redis-py sends the first again (committing its batch, as the next read does):
    the read sent again returned nothing and its batch was lost (an adversarial run). It
    gets its batch; the other reader's stays the other's."""
    early = [near.send("a", f"early{i}").id for i in range(2)]

    async def main() -> tuple[list[str], list[str]]:
        async with AsyncSwarm(link.url, swarm=SWARM) as far:
            await far.ping()
            link.delay_s = 0.5
            read = asyncio.create_task(far.inbox("a"))
            await _until("the read script run", lambda: _taken(near, early[-1]))
            late = [near.send("a", f"late{i}").id for i in range(2)]
            assert [m.id for m in near.inbox("a")] == late  # (the other reader, meanwhile)
            link.cut()  # (the reply, still on its way, is lost: the read is sent again)
            link.delay_s = 0.0
            return [m.id for m in await read], late

    got, late = asyncio.run(main())
    assert got == early
    assert all(near.message_status(m).read for m in late)
    assert list(near.inbox("a")) == []


def test_a_batch_another_read_committed_is_given_back_once(near: Swarm) -> None:
    """A caller that got a batch but could not hand it on gives it back after another read
    of the inbox committed it: its messages come back once (it answered False, the batch
    lost); a give-back sent again copies nothing more (test_messages_giveback_old_batch:
    a batch committed before the last one)."""
    sent = [near.send("a", f"m{i}").id for i in range(2)]
    taken = near.inbox("a")
    assert [m.id for m in taken] == sent and taken.read_id is not None
    assert list(near.inbox("a")) == []  # (the other reader: commits the batch)
    assert near.give_back_inbox("a", taken.read_id) is True
    assert near.give_back_inbox("a", taken.read_id) is True  # (a retry: no copy twice)
    again = near.inbox("a")
    assert [(m.id, m.body) for m in again] == [(sent[0], "m0"), (sent[1], "m1")]
    assert list(near.inbox("a")) == []
    near.broadcast("to all", sender="lead")
    older = near.inbox("a")
    assert [m.body for m in older] == ["to all"] and older.read_id is not None
    assert list(near.inbox("a")) == []  # commits it: the last batch committed
    assert list(near.inbox("a")) == []  # (an empty read commits nothing more)
    assert near.give_back_inbox("a", older.read_id) is True
    assert [m.body for m in near.inbox("a")] == ["to all"]


# --- reads not cut


def test_reads_not_cut_acknowledge_as_before(near: Swarm) -> None:
    """A read consumes what it returns; a full batch says more wait without committing
    itself (its messages count as read all the same), and the next read returns the rest."""
    sent = [near.send("a", f"m{i}").id for i in range(3)]
    batch = near.inbox("a", limit=2)
    assert [m.id for m in batch] == sent[:2] and batch.more
    assert [near.message_status(m).read for m in sent] == [True, True, False]
    rest = near.inbox("a", limit=2)
    assert [m.id for m in rest] == sent[2:] and not rest.more
    assert list(near.inbox("a")) == []
    assert all(near.message_status(m).read for m in sent)
    near.broadcast("to all", sender="lead")
    got = near.inbox("a", limit=1)
    assert [m.body for m in got] == ["to all"] and not got.more
    assert list(near.inbox("a")) == []


def test_a_peek_between_a_read_and_its_give_back_takes_nothing(near: Swarm) -> None:
    """A server's channel (or a hook) peeks at the inbox while a cancelled read_inbox gives
    its batch back: the peek committed the batch as read, and the give-back found nothing
    (a review's repro: both messages lost). A peek looks past a pending batch now."""
    sent = [near.send("a", f"m{i}").id for i in range(2)]
    taken = near.inbox("a")
    assert [m.id for m in taken] == sent and taken.read_id is not None
    later = near.send("a", "after").id
    assert [m.id for m in near.inbox("a", ack=False)] == [later]  # (past the batch taken)
    assert near.give_back_inbox("a", taken.read_id)
    assert [m.id for m in near.inbox("a")] == [*sent, later]


def test_a_give_back_names_a_read_and_says_when_nothing_was_given(near: Swarm) -> None:
    """'-' (the script's 'no batch pending') was taken as a read id and answered True; a
    give-back sent again answers as the first (test_messages_giveback_retry)."""
    near.send("a", "m")
    with pytest.raises(ValidationError, match="not a read id"):
        near.give_back_inbox("a", "-")
    taken = near.inbox("a")
    assert taken.read_id is not None
    assert near.give_back_inbox("a", taken.read_id)
    assert near.give_back_inbox("a", taken.read_id)  # (a retry answers as the first try)
    assert [m.body for m in near.inbox("a")] == ["m"]


# --- the MCP read_inbox tool


def test_a_cancelled_read_inbox_call_loses_no_message(redis_url: str) -> None:
    """read_inbox cancelled while its acknowledged read runs: the messages it took are
    returned by the next read (the read ran on a worker thread, whose result anyio drops
    for a cancelled request: the face gives the batch back, ``give_back_inbox``)."""
    core = Swarm(redis_url, swarm="test")
    taken, cancelled = threading.Event(), threading.Event()
    real = core.inbox

    def read_then_cross(*args: Any, **kwargs: Any) -> Any:
        got = real(*args, **kwargs)
        if kwargs.get("ack", True):
            taken.set()
            cancelled.wait(10)  # (its answer arrives after the client cancelled)
        return got

    core.inbox = read_then_cross
    sent: list[str] = []

    async def body() -> None:
        with anyio.fail_after(15):
            async with connect(build_server(core, role="worker")) as tools:
                await tools("swarm_status")
                (agent,) = core.agents()
                sent.append(core.send(agent.id, "for you", sender="lead").id)
                async with anyio.create_task_group() as tg:
                    scope = anyio.CancelScope()

                    async def reading() -> None:
                        with scope:
                            await tools.raw("read_inbox")

                    tg.start_soon(reading)
                    await anyio.to_thread.run_sync(lambda: taken.wait(10))
                    scope.cancel()
                cancelled.set()
                again, _ = await tools("read_inbox")
                assert [m["body"] for m in again["messages"]] == ["for you"], again

    try:
        anyio.run(body)
    finally:
        cancelled.set()
        core.inbox = real
        core.close()
