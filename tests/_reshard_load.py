"""A swarm at work, for the resharding test: the roles (task producer, task workers, a shard
publishing a multi-chunk context, readers fetching it) and what each saw.

Every role takes a handle with the synchronous calls of ``Swarm``: a ``Swarm``, or an
``AsyncAsSync`` adapter, whose calls from several threads run as concurrent coroutines on one
``AsyncSwarm``. The roles run in threads of the test process and in spawned worker processes
(``work_in_a_process``); none stops at an error: it records it (with its traceback) and goes
on, so that the test reports every failure, not just the first.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis_swarm import AsyncSwarm, ContextCache, Limits, Swarm
from redis_swarm._keys import Keys
from redis_swarm._protocol import Batch, Call, Cmd, Operation

from .conftest import AsyncAsSync

T = TypeVar("T")

SWARM_QUEUE = "work"
OWNER = "shard-1"
CHUNK_BYTES = 8 * 1024
EDITIONS = 4  # the shard publishes these versions of its context in turn (3 are kept)
_LINES = 2400


def context_text(edition: int) -> bytes:
    """Edition ``edition`` of the shard's context: about 120 KB, 15 chunks of 8 KB. Editions
    differ in a few lines of the same length, so they share most chunks and differ in some."""
    lines = []
    for i in range(_LINES):
        changed = i % 600 == (edition * 97) % 600
        lines.append(
            f"{i:05d} a line of the shared context, edition {edition if changed else 0:03d}\n"
        )
    return "".join(lines).encode()


EXPECTED = {hashlib.sha256(context_text(e)).hexdigest(): context_text(e) for e in range(EDITIONS)}


@dataclass
class Tally:
    """What one role (or one process) did and saw; picklable, so a process can send it."""

    ops: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, name
    errors: list[str] = field(default_factory=list)
    posted: list[str] = field(default_factory=list)  # task ids
    claims: list[tuple[str, int]] = field(default_factory=list)  # task id, attempt
    fetched: int = 0  # whole contexts fetched and found byte-identical to an edition
    published: int = 0

    def merge(self, other: Tally) -> None:
        self.ops += other.ops
        self.errors += other.errors
        self.posted += other.posted
        self.claims += other.claims
        self.fetched += other.fetched
        self.published += other.published


class _Timed:
    """Runs calls, timing each into a Tally; an error is recorded and None returned."""

    def __init__(self, tally: Tally, who: str) -> None:
        self.tally = tally
        self.who = who
        self._lock = threading.Lock()

    def __call__(self, name: str, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T | None:
        start = time.monotonic()
        try:
            return call(*args, **kwargs)
        except Exception as exc:  # recorded, reported by the test
            with self._lock:
                self.tally.errors.append(f"{self.who} {name}: {exc!r}\n{traceback.format_exc()}")
            return None
        finally:
            with self._lock:
                self.tally.ops.append((start, time.monotonic(), name))


def produce(handle: Any, tally: Tally, stop: Any) -> None:
    """Post tasks, one at a time and in batches of five, until ``stop`` is set."""
    timed = _Timed(tally, "producer")
    n = 0
    while not stop.is_set():
        if n % 2:
            batch = [
                {"queue": SWARM_QUEUE, "description": f"task {n}.{i}", "pass_name": "P1"}
                for i in range(5)
            ]
            posted = timed("post_tasks", handle.post_tasks, batch)
            tally.posted += [task.id for task in posted or []]
        else:
            task = timed(
                "post_task", handle.post_task, SWARM_QUEUE, f"task {n}", {"n": n}, pass_name="P1"
            )
            if task is not None:
                tally.posted.append(task.id)
        n += 1
        time.sleep(0.01)


def work(handle: Any, tally: Tally, name: str, all_posted: Any, wait_s: float = 0.0) -> None:
    """A registered agent that claims, renews and reports tasks (and heartbeats, reads its
    inbox and the event log) until every task is posted and none is left to claim."""
    timed = _Timed(tally, name)
    rounds = 0
    while True:
        done = all_posted.is_set()
        task = timed("claim", handle.claim, SWARM_QUEUE, worker=name, wait_s=wait_s)
        if task is not None:
            tally.claims.append((task.id, task.attempts))
            timed("renew", handle.renew, task.id, task.token)
            timed("report", handle.report, task.id, task.token, {"summary": f"{task.id} by {name}"})
        elif done:
            return
        rounds += 1
        if rounds % 5 == 0:
            timed(
                "heartbeat",
                handle.heartbeat,
                name,
                current_task=task.id if task is not None else None,
            )
            timed("inbox", handle.inbox, name)
            timed("events", handle.events, limit=20)


def publish(handle: Any, tally: Tally, stop: Any, workers: list[str]) -> None:
    """The shard: publish the editions of its context in turn (each past the third prunes
    one, so chunks are put, acquired and released), and tell the workers."""
    timed = _Timed(tally, "shard")
    timed("register", handle.register, "shard", name="shard-agent")
    edition = 0
    while not stop.is_set():
        text = context_text(edition % EDITIONS)
        if timed("publish_context", handle.publish_context, OWNER, text, source="ctx.md"):
            tally.published += 1
        timed("broadcast", handle.broadcast, f"edition {edition}", sender="shard-agent")
        target = workers[edition % len(workers)]
        timed("send", handle.send, target, f"edition {edition}", sender="shard-agent")
        edition += 1
        time.sleep(0.1)


def read(handle: Any, tally: Tally, name: str, stop: Any) -> None:
    """Fetch the whole context again and again (the handle has no cache): every fetch must be
    byte-identical to one of the editions."""
    timed = _Timed(tally, name)
    while not stop.is_set():
        raw = timed("get_context_bytes", handle.get_context_bytes, OWNER)
        if raw is not None:
            if EXPECTED.get(hashlib.sha256(raw).hexdigest()) == raw:
                tally.fetched += 1
            else:
                tally.errors.append(f"{name}: fetched {len(raw)} bytes that match no edition")
        time.sleep(0.005)


def _one(request: Batch) -> Operation[Any]:
    reply = yield request
    return reply


def _run_batch(handle: Any, request: Batch) -> Any:
    """Send one Batch through the handle's shell (its cluster pipeline and its retries)."""
    if isinstance(handle, AsyncAsSync):
        inner: AsyncSwarm = handle._swarm
        return handle.call(inner._run(_one(request)))
    return handle._run(_one(request))


def probe(handle: Any, tally: Tally, name: str, swarm: str, stop: Any) -> None:
    """Batches of multi-key scripts on the swarm's slot, one of whose keys never exists
    (TRYAGAIN for as long as the slot moves), mixed with plain commands: the batch path of the
    shell, which no operation of the load sends with several scripts at once."""
    timed = _Timed(tally, name)
    keys = Keys(swarm)
    n = 2  # (ping answers its argument, except 0: the server's time)
    while not stop.is_set():
        batch = Batch(
            (
                Call("ping", (keys.tasks, keys.counts, keys.wake("never")), (n,)),
                Cmd("HLEN", keys.tasks),
                Call("ping", (keys.task_index, keys.events), (n + 1,)),
            )
        )
        replies = timed("batch", _run_batch, handle, batch)
        if replies is not None and (replies[0], replies[2]) != (n, n + 1):
            tally.errors.append(f"{name}: batch {n} answered {replies!r}")
        n += 2
        time.sleep(0.005)


def open_handle(url: str, swarm: str, mode: str, *, cold: bool = False) -> Any:
    """A Swarm (mode "sync") or an AsyncAsSync adapter on an AsyncSwarm (mode "async");
    ``cold``: with no context cache, so that every read fetches the chunks."""
    limits = Limits(context_chunk_bytes=CHUNK_BYTES)
    cache = ContextCache(max_bytes=0) if cold else None
    if mode == "sync":
        return Swarm(url, swarm=swarm, limits=limits, cache=cache)
    return AsyncAsSync(lambda: AsyncSwarm(url, swarm=swarm, limits=limits, cache=cache))


def start_threads(*targets: tuple[Callable[..., None], tuple[Any, ...]]) -> list[threading.Thread]:
    threads = [threading.Thread(target=fn, args=args, daemon=True) for fn, args in targets]
    for thread in threads:
        thread.start()
    return threads


def work_in_a_process(
    url: str, swarm: str, mode: str, name: str, ready: Any, all_posted: Any, results: Any
) -> None:
    """A worker process: one agent working tasks and one reader, sharing one handle."""
    tally = Tally()
    handle = open_handle(url, swarm, mode, cold=True)
    try:
        handle.register("worker", name=name)
        ready.set()
        threads = start_threads(
            (work, (handle, tally, name, all_posted)),
            (read, (handle, tally, f"{name}-reader", all_posted)),
        )
        for thread in threads:
            thread.join()
    except Exception:
        tally.errors.append(f"{name}: {traceback.format_exc()}")
    finally:
        handle.close()
        results.put(tally)


class Load:
    """The whole swarm at work, started at once: in this process, a producer, a shard, two
    readers, two probes and five agents (two threads on one Swarm, three on one AsyncSwarm);
    and one worker process of each kind. ``finish`` stops it and returns what all saw."""

    def __init__(self, url: str, swarm: str) -> None:
        spawn = multiprocessing.get_context("spawn")
        self._stop_posting, self._all_posted = spawn.Event(), spawn.Event()
        self._results: Any = spawn.Queue()
        sync, asynchronous = open_handle(url, swarm, "sync"), open_handle(url, swarm, "async")
        readers = [open_handle(url, swarm, mode, cold=True) for mode in ("sync", "async")]
        self._handles = [sync, asynchronous, *readers]
        agents = {"w-sync-1": sync, "w-sync-2": sync}
        agents |= {"w-async-1": asynchronous, "w-async-2": asynchronous, "w-async-3": asynchronous}
        for name, handle in agents.items():
            handle.register("worker", name=name)
        sync.publish_context(OWNER, context_text(0), source="ctx.md")  # before any reader
        self._processes = []
        for mode in ("sync", "async"):
            ready = spawn.Event()
            args = (url, swarm, mode, f"p-{mode}", ready, self._all_posted, self._results)
            self._processes.append((spawn.Process(target=work_in_a_process, args=args), ready))
        for process, _ in self._processes:
            process.start()
        self._tallies = [Tally() for _ in range(6 + len(agents))]
        first, shard, *rest = self._tallies
        stop = self._all_posted
        self._producer = start_threads((produce, (sync, first, self._stop_posting)))
        self._threads = start_threads(
            (publish, (sync, shard, stop, list(agents))),
            (read, (readers[0], rest[0], "reader-sync", stop)),
            (read, (readers[1], rest[1], "reader-async", stop)),
            (probe, (sync, rest[2], "probe-sync", swarm, stop)),
            (probe, (asynchronous, rest[3], "probe-async", swarm, stop)),
            *(
                # half of the agents wait for work (BLPOP on the queue's wake list)
                (work, (handle, tally, name, stop, 0.05 * (i % 2)))
                for i, ((name, handle), tally) in enumerate(
                    zip(agents.items(), rest[4:], strict=True)
                )
            ),
        )

    def wait_ready(self) -> None:
        for _, ready in self._processes:
            assert ready.wait(30), "a worker process did not start"

    def finish(self) -> Tally:
        """Stop posting; the agents work the queue empty; everyone stops."""
        self._stop_posting.set()
        for thread in self._producer:
            thread.join(30)
        self._all_posted.set()
        for thread in self._threads:
            thread.join(60)
            assert not thread.is_alive(), "a role did not stop"
        tally = Tally()
        # Every result is read before any join: a process exits once the queue took its tally.
        for _ in self._processes:
            tally.merge(self._results.get(timeout=60))
        for process, _ in self._processes:
            process.join(30)
            assert process.exitcode == 0, f"a worker process ended with {process.exitcode}"
        for handle in self._handles:
            handle.close()
        for part in self._tallies:
            tally.merge(part)
        return tally
