"""The waiters list of a queue (``Keys.waiters``): a post gives each new task's token to the
worker that began waiting last, so that a stream of tasks keeps one warm worker busy while
the others sleep (Redis serves the BLPOPs of one wake list in the order they began: every
task woke the next idle worker in turn). A wait stands on the list only while it waits; a
worker killed mid-wait is popped once, and the task it was given is claimed by the next
claim all the same."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import redis

from redis_swarm import AsyncSwarm, Swarm, Task, TaskStatus
from redis_swarm._keys import Keys

from ._handles import must
from ._raw import blocked_clients
from ._servers import ServerFactory
from .test_hooks_review_fixes import busy

KEYS = Keys("test")
WAITERS = KEYS.waiters("q")


def _until(what: str, check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


def _waiting(raw: redis.Redis, names: list[str]) -> None:
    """Until exactly ``names`` wait on q (top of the list first), each blocked."""
    _until(
        f"{names} waiting",
        lambda: raw.lrange(WAITERS, 0, -1) == names and blocked_clients(raw) >= len(names),
    )


def _completed(swarm: Swarm, task_id: str) -> bool:
    return swarm.get_task(task_id).status == TaskStatus.COMPLETED


class _Waiter(threading.Thread):
    def __init__(self, swarm: Swarm, worker: str, wait_s: float = 8) -> None:
        super().__init__(daemon=True)
        self.swarm, self.worker, self.wait_s = swarm, worker, wait_s
        self.task: Task | None = None

    def run(self) -> None:
        self.task = self.swarm.claim("q", worker=self.worker, wait_s=self.wait_s)


def test_the_worker_that_began_waiting_last_is_woken_first(swarm: Swarm, raw: redis.Redis) -> None:
    waiters = []
    for i in range(3):
        waiter = _Waiter(swarm, f"w{i}")
        waiter.start()
        waiters.append(waiter)
        _waiting(raw, [f"w{j}" for j in range(i, -1, -1)])
    for expected, left in (("w2", ["w1", "w0"]), ("w1", ["w0"]), ("w0", [])):
        posted = swarm.post_task("q", f"for {expected}")
        woken = next(w for w in waiters if w.worker == expected)
        woken.join(5)
        assert woken.task is not None and woken.task.id == posted.id
        # taken off the list by the pipeline its wait was in, the others still on it
        assert raw.lrange(WAITERS, 0, -1) == left
    assert not raw.exists(KEYS.wake("q"))  # every token went to a worker's own list
    assert not raw.exists(KEYS.waiter_wake("w2", "q"))  # and was taken by its wait


def test_tasks_one_at_a_time_keep_one_worker_busy(swarm: Swarm, raw: redis.Redis) -> None:
    """Four workers looping claim -> report(claim_next=, wait_s=) (the report's own wait,
    pipelined behind it), tasks posted one at a time: the worker that just finished is on
    top of the list again, and serves them all (the wake list's order woke each in turn)."""
    served: dict[str, str] = {}
    stop = threading.Event()

    def work(name: str) -> None:
        task = None
        while not stop.is_set():
            if task is None:
                task = swarm.claim("q", worker=name, wait_s=1)
                continue
            served[task.id] = name
            _, task = swarm.report(
                task.id, task.token, {"summary": "ok"}, worker=name, claim_next="q", wait_s=1
            )

    threads = [threading.Thread(target=work, args=(f"w{i}",), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    _until("four waiters", lambda: raw.llen(WAITERS) == 4 and blocked_clients(raw) >= 4)
    posted = []
    for i in range(8):
        task_id = swarm.post_task("q", f"t{i}").id
        posted.append(task_id)
        _until(f"t{i} completed", lambda t=task_id: _completed(swarm, t))
        _until("four waiters again", lambda: raw.llen(WAITERS) == 4 and blocked_clients(raw) >= 4)
    stop.set()
    for thread in threads:
        thread.join(5)
    assert sorted(served) == sorted(posted)
    assert len(set(served.values())) == 1, served


def test_a_worker_killed_mid_wait_is_given_one_token_and_loses_no_task(
    redis_url: str, raw: redis.Redis
) -> None:
    """Killed while it waits, a worker's name stays on the list: the next post gives it that
    task's token, which nobody takes (it expires with the worker's own list), and pops it.
    The task stays pending and the next claim takes it: here the live waiter's, when its
    wait's chunk ends (socket_timeout / 3)."""
    # (chunks of 2 s: a live waiter renews its place at each, and one renewal between the
    # ghost's kill and the post put it back on top, the ghost's name below it: one more try)
    url = redis_url + ("&" if "?" in redis_url else "?") + "socket_timeout=6"
    with Swarm(url, swarm="test") as swarm:
        live = _Waiter(swarm, "live", wait_s=30)
        live.start()
        _waiting(raw, ["live"])
        code = (
            "import sys; from redis_swarm import Swarm; "
            "Swarm(sys.argv[1], swarm='test').claim('q', worker='ghost', wait_s=30)"
        )
        for _ in range(3):
            raw.lrem(WAITERS, 0, "ghost")  # (a try before: its name sank below the live one)
            _waiting(raw, ["live"])
            ghost = subprocess.Popen([sys.executable, "-c", code, url], env=dict(os.environ))
            try:
                _waiting(raw, ["ghost", "live"])
            finally:
                ghost.send_signal(signal.SIGKILL)
                ghost.wait(10)
            _until("the ghost's connection closed", lambda: blocked_clients(raw) == 1)
            if raw.lindex(WAITERS, 0) == "ghost":
                break
        posted = swarm.post_task("q", "given to the ghost")
        assert raw.lrange(WAITERS, 0, -1) == ["live"]  # popped once
        own = KEYS.waiter_wake("ghost", "q")
        assert raw.llen(own) == 1 and 0 < raw.pttl(own) <= 60_000
        live.join(10)
        assert live.task is not None and live.task.id == posted.id
        assert not raw.exists(WAITERS)


def test_a_cancelled_wait_leaves_the_waiters_list(redis_url: str, raw: redis.Redis) -> None:
    async def main() -> None:
        async with AsyncSwarm(redis_url, swarm="test") as swarm:
            waiting = asyncio.ensure_future(swarm.claim("q", worker="w1", wait_s=30))
            await asyncio.to_thread(_waiting, raw, ["w1"])
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            assert raw.lrange(WAITERS, 0, -1) == []
            # the next post goes to the wake list, for whoever waits next
            await swarm.post_task("q", "after")
            assert raw.llen(KEYS.wake("q")) == 1

    asyncio.run(main())


def test_a_wait_on_several_queues_stays_on_their_wake_lists(swarm: Swarm, raw: redis.Redis) -> None:
    """On the waiters list of each queue, a wait could be given two tasks' tokens at once
    (posts to both before it wakes) and keep one asleep in its own list."""
    result: list[Task | None] = []
    thread = threading.Thread(
        target=lambda: result.append(swarm.claim(["q", "r"], worker="w1", wait_s=8)), daemon=True
    )
    thread.start()
    _until("the wait blocked", lambda: blocked_clients(raw) >= 1)
    time.sleep(0.1)  # (past its first claim, which found nothing)
    assert not raw.exists(WAITERS) and not raw.exists(KEYS.waiters("r"))
    posted = swarm.post_task("r", "for w1")
    thread.join(5)
    assert result and result[0] is not None and result[0].id == posted.id


def test_a_post_between_a_waiters_wake_and_its_claim_still_wakes_someone(
    servers: ServerFactory,
) -> None:
    """W (on q's waiters list) is woken by a released task's token on the wake list; a post
    read in the same pass of the event loop (lined up behind a DEBUG SLEEP) runs before W's
    claim and gives W a token too. W's claim takes the released task, leaves the list and
    gives that token on: Y, also waiting, takes the posted task at once, not when its wait's
    chunk ends (socket_timeout 6 s: a 2 s chunk)."""
    server = servers.start(extra=["--enable-debug-command", "yes"])
    url = server.url + "?socket_timeout=6"
    raw = redis.Redis.from_url(server.url, decode_responses=True)
    handles = [Swarm(url, swarm="test") for _ in range(3)]
    admin, holder, poster = handles
    try:
        admin.post_task("q", "T1")
        held = must(holder.claim("q", worker="Z"))
        got: dict[str, tuple[str | None, float]] = {}

        def wait(name: str, queues: Any) -> None:
            with Swarm(url, swarm="test") as swarm:
                assert swarm.claim(queues, worker=name) is None  # (the next starts waiting)
                task = swarm.claim(queues, worker=name, wait_s=10)
                got[name] = (task.description if task else None, time.monotonic())

        w = threading.Thread(target=wait, args=("W", "q"), daemon=True)
        w.start()
        _waiting(raw, ["W"])
        y = threading.Thread(target=wait, args=("Y", ["q", "r"]), daemon=True)
        y.start()
        _until("Y waiting", lambda: blocked_clients(raw) >= 2)
        poster.ping()
        holder.ping()
        with busy(server, 0.5):  # (the two requests below wait in the server's sockets)
            release = threading.Thread(target=lambda: holder.release(held.id, held.token))
            release.start()
            time.sleep(0.05)
            posted_at = time.monotonic()
            post = threading.Thread(target=lambda: poster.post_task("q", "T2"))
            post.start()
        for thread in (release, post, w, y):
            thread.join(10)
        assert got["W"][0] == "T1" and got["Y"][0] == "T2"
        assert got["Y"][1] - posted_at < 1.5  # (the sleep's 0.5 s, not a 2 s chunk)
        assert not raw.exists(KEYS.waiter_wake("W", "q")) and not raw.exists(WAITERS)
    finally:
        for handle in handles:
            handle.close()
        raw.close()


def test_one_worker_name_waiting_on_two_queues_wakes_for_its_own_queue(
    redis_url: str, raw: redis.Redis
) -> None:
    """Two processes sharing a worker name (the CLI's default is one per host), one waiting
    on a, one on b: a task of a wakes the one waiting on a at once, not the one on b (which
    found nothing), the task left until a's wait's chunk ended (socket_timeout 15: 5 s)."""
    url = redis_url + ("&" if "?" in redis_url else "?") + "socket_timeout=15"
    got: dict[str, tuple[Task | None, float]] = {}

    def wait(queue: str) -> None:
        with Swarm(url, swarm="test") as swarm:
            assert swarm.claim(queue, worker="w", wait_s=0) is None  # (the next starts waiting)
            task = swarm.claim(queue, worker="w", wait_s=12)
            got[queue] = (task, time.monotonic())

    on_b = threading.Thread(target=wait, args=("b",), daemon=True)
    on_b.start()  # (it blocks first: a list both watched would be served to it first)
    _until("w waiting on b", lambda: raw.lrange(KEYS.waiters("b"), 0, -1) == ["w"])
    _until("b blocked", lambda: blocked_clients(raw) >= 1)
    time.sleep(0.2)
    on_a = threading.Thread(target=wait, args=("a",), daemon=True)
    on_a.start()
    _until("w waiting on a", lambda: raw.lrange(KEYS.waiters("a"), 0, -1) == ["w"])
    _until("both blocked", lambda: blocked_clients(raw) >= 2)
    with Swarm(url, swarm="test") as poster:
        posted_at = time.monotonic()
        posted = poster.post_task("a", "for a")
        on_a.join(10)
        task, at = got["a"]
        assert task is not None and task.id == posted.id
        assert at - posted_at < 2.0
        poster.post_task("b", "for b")
        on_b.join(10)
        assert got["b"][0] is not None and got["b"][0].description == "for b"


def test_the_waiters_list_keeps_the_newest_names(swarm: Swarm, raw: redis.Redis) -> None:
    """Names of workers killed mid-wait sink below the live ones, which push theirs anew at
    each wait: the list keeps the newest 256, however many died."""
    raw.lpush(WAITERS, *[f"dead-{i}" for i in range(300)])
    assert swarm.claim("q", worker="live", wait_s=0) is None
    assert swarm.claim("q", worker="live", wait_s=0.05) is None  # (a wait: on the list)
    assert raw.llen(WAITERS) == 256 and raw.lindex(WAITERS, 0) == "dead-299"
