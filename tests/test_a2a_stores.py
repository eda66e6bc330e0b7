"""The Redis stores for a2a-sdk servers (redis_swarm.a2a) behave as the SDK's own backends:
listings checked against the SDK's InMemoryTaskStore on the same tasks and requests; the
version rules of VersionedTaskStore as the SDK's tests of its database store state them; two
replicas (two handles, two connections) racing on one task; a subscriber after version N; on
the standalone server and on the cluster."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from a2a.auth.user import User
from a2a.server.cluster import ConcurrentTaskModificationError, TaskVersion, VersionedEvent
from a2a.server.context import ServerCallContext
from a2a.server.tasks import InMemoryTaskStore, TaskStore
from a2a.types.a2a_pb2 import (
    ListTasksRequest,
    Task,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import InvalidParamsError

from redis_swarm import AsyncSwarm, PermissionDenied, Settings, Swarm, apply_role
from redis_swarm.a2a import RedisTaskEventStream, RedisTaskStore, RedisVersionedTaskStore

from ._cancel import lose_a_cancellation, needs_cancelling
from ._servers import ServerFactory

SWARM = "a2a"
ROLES = ("shard", "worker")
S = TaskState


class Named(User):
    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self._name


ALICE = ServerCallContext(user=Named("alice"))
BOB = ServerCallContext(user=Named("bob"))


def task(
    task_id: str, state: int = S.TASK_STATE_SUBMITTED, context_id: str = "ctx", at: int | None = 0
) -> Task:
    made = Task(id=task_id, context_id=context_id, status=TaskStatus(state=state))  # type: ignore[arg-type]
    if at is not None:
        made.status.timestamp.seconds, made.status.timestamp.nanos = 1_700_000_000 + at, at
    return made


def run(url: str, body: Callable[[AsyncSwarm], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with AsyncSwarm(url, swarm=SWARM) as swarm:
            return await body(swarm)

    return asyncio.run(main())


# --- the plain TaskStore


def test_save_get_delete_per_owner(server_url: str) -> None:
    async def body(swarm: AsyncSwarm) -> None:
        store = RedisTaskStore(swarm)
        assert isinstance(store, TaskStore)
        assert await store.get("t1", ALICE) is None
        await store.save(task("t1"), ALICE)
        got = await store.get("t1", ALICE)
        assert got == task("t1")
        assert got is not None
        got.status.state = S.TASK_STATE_WORKING  # a copy: the store is not changed
        assert await store.get("t1", ALICE) == task("t1")
        assert await store.get("t1", BOB) is None  # another owner's
        await store.delete("t1", BOB)
        await store.save(task("t1", S.TASK_STATE_WORKING), ALICE)  # an overwrite
        assert await store.get("t1", ALICE) == task("t1", S.TASK_STATE_WORKING)
        await store.delete("t1", ALICE)
        assert await store.get("t1", ALICE) is None
        assert (await store.list(ListTasksRequest(), ALICE)).total_size == 0

    run(server_url, body)


def _tasks() -> list[Task]:
    """Tasks in two contexts and three states, some with equal times and some with none."""
    out = []
    states = [S.TASK_STATE_WORKING, S.TASK_STATE_COMPLETED, S.TASK_STATE_SUBMITTED]
    for i in range(14):
        at = None if i % 5 == 4 else i // 2
        out.append(task(f"t{i:02}", states[i % 3], f"ctx-{i % 2}", at))
    return out


def _requests() -> list[ListTasksRequest]:
    since = ListTasksRequest(page_size=3)
    since.status_timestamp_after.seconds, since.status_timestamp_after.nanos = 1_700_000_003, 3
    return [
        ListTasksRequest(),
        ListTasksRequest(page_size=3),
        ListTasksRequest(page_size=4, context_id="ctx-1"),
        ListTasksRequest(page_size=2, status=S.TASK_STATE_WORKING),
        ListTasksRequest(page_size=2, context_id="ctx-0", status=S.TASK_STATE_COMPLETED),
        since,
        ListTasksRequest(page_size=5, context_id="none"),
    ]


async def _pages(store: TaskStore, request: ListTasksRequest) -> list[tuple[int, list[str], bool]]:
    """Every page of a listing: total, ids, and whether a token followed."""
    pages = []
    page = ListTasksRequest()
    page.CopyFrom(request)
    while True:
        reply = await store.list(page, ALICE)
        pages.append((reply.total_size, [t.id for t in reply.tasks], bool(reply.next_page_token)))
        assert reply.page_size == (request.page_size or 50)
        if not reply.next_page_token:
            return pages
        page.page_token = reply.next_page_token


def test_listing_matches_the_sdks_store(server_url: str) -> None:
    async def body(swarm: AsyncSwarm) -> None:
        ours, theirs = RedisTaskStore(swarm), InMemoryTaskStore()
        for made in _tasks():
            for store in (ours, theirs):
                await store.save(made, ALICE)
        await ours.save(task("bobs"), BOB)
        for request in _requests():
            expected = await _pages(theirs, request)
            assert await _pages(ours, request) == expected, request
        # A legacy page token (the id of the page's first task) starts the page there.
        legacy = ListTasksRequest(page_size=3, page_token=base64.b64encode(b"t05").decode())
        ids = [t.id for t in (await ours.list(legacy, ALICE)).tasks]
        assert ids == [t.id for t in (await theirs.list(legacy, ALICE)).tasks]
        assert ids[0] == "t05"
        for token in (base64.b64encode(b"nope").decode(), "%%%"):
            with pytest.raises(InvalidParamsError):
                await ours.list(ListTasksRequest(page_token=token), ALICE)

    run(server_url, body)


def test_a_page_token_survives_its_task_changing(server_url: str) -> None:
    """The token carries the position, not the task: as the SDK's stores (a task updated
    mid-listing may move above it)."""

    async def body(swarm: AsyncSwarm) -> None:
        store = RedisTaskStore(swarm)
        for i in range(6):
            await store.save(task(f"t{i}", at=i), ALICE)
        first = await store.list(ListTasksRequest(page_size=2), ALICE)
        assert [t.id for t in first.tasks] == ["t5", "t4"]
        await store.delete("t4", ALICE)
        await store.save(task("t5", at=100), ALICE)
        rest = await store.list(
            ListTasksRequest(page_size=10, page_token=first.next_page_token), ALICE
        )
        assert [t.id for t in rest.tasks] == ["t3", "t2", "t1", "t0"]

    run(server_url, body)


# --- the VersionedTaskStore


async def _save(
    store: RedisVersionedTaskStore, made: Task, prev: TaskVersion, event: Any = None
) -> TaskVersion:
    return await store.save(made, event=event, prev=None, prev_version=prev, context=ALICE)


def test_versions_follow_the_sdks_rules(server_url: str) -> None:
    async def body(swarm: AsyncSwarm) -> None:
        store = RedisVersionedTaskStore(swarm)
        assert await store.get("t", ALICE) is None
        v1 = await _save(store, task("t"), TaskVersion.MISSING)
        assert not v1.is_missing
        stored = await store.get("t", ALICE)
        assert stored is not None and stored.version == v1 and stored.task == task("t")
        v2 = await _save(store, task("t", S.TASK_STATE_WORKING), v1)
        assert v2.is_after(v1)
        with pytest.raises(ConcurrentTaskModificationError):  # stale
            await _save(store, task("t", S.TASK_STATE_COMPLETED), v1)
        with pytest.raises(ConcurrentTaskModificationError):  # a second first write
            await _save(store, task("t", S.TASK_STATE_COMPLETED), TaskVersion.MISSING)
        stored = await store.get("t", ALICE)
        assert stored is not None and stored.task.status.state == S.TASK_STATE_WORKING
        with pytest.raises(TypeError, match="integer versions"):
            await _save(store, task("t", S.TASK_STATE_COMPLETED), TaskVersion("v"))
        # CANCELED overwrites a task that is not finished, whatever the version...
        v3 = await _save(store, task("t", S.TASK_STATE_CANCELED), v1)
        assert v3.is_after(v2)
        # ... and is refused on a finished or absent task.
        with pytest.raises(ConcurrentTaskModificationError):
            await _save(store, task("t", S.TASK_STATE_CANCELED), v3)
        with pytest.raises(ConcurrentTaskModificationError):
            await _save(store, task("absent", S.TASK_STATE_CANCELED), TaskVersion(123))
        with pytest.raises(ConcurrentTaskModificationError):  # another owner's
            await store.save(
                task("t", S.TASK_STATE_WORKING), event=None, prev=None, prev_version=v3,
                context=BOB,
            )  # fmt: skip
        # Plain saves (as_task_store) keep the version; a task only they wrote has none.
        plain = store.as_task_store
        assert isinstance(plain, TaskStore)
        await plain.save(task("t", S.TASK_STATE_COMPLETED), ALICE)
        stored = await store.get("t", ALICE)
        assert stored is not None and stored.version == v3
        await plain.save(task("p"), ALICE)
        stored = await store.get("p", ALICE)
        assert stored is not None and stored.version.is_missing
        assert (await _save(store, task("p", S.TASK_STATE_WORKING), TaskVersion.MISSING)) == v1
        assert {t.id for t in (await store.list(ListTasksRequest(), ALICE)).tasks} == {"t", "p"}
        await store.delete("t", ALICE)
        assert await store.get("t", ALICE) is None
        assert (await _save(store, task("t"), TaskVersion.MISSING)) == v1  # anew

    run(server_url, body)


def test_two_replicas_saving_one_task_one_wins(server_url: str) -> None:
    """Two store instances on two handles (separate connections) derive a change from the
    same version and save it at once: exactly one wins, every time."""

    async def main() -> None:
        async with (
            AsyncSwarm(server_url, swarm=SWARM) as one,
            AsyncSwarm(server_url, swarm=SWARM) as two,
        ):
            replicas = [RedisVersionedTaskStore(one), RedisVersionedTaskStore(two)]
            version = await _save(replicas[0], task("race"), TaskVersion.MISSING)
            for round_ in range(20):
                saves = [
                    _save(store, task("race", S.TASK_STATE_WORKING, at=round_ * 2 + n), version)
                    for n, store in enumerate(replicas)
                ]
                results = await asyncio.gather(*saves, return_exceptions=True)
                won = [r for r in results if isinstance(r, TaskVersion)]
                lost = [r for r in results if isinstance(r, ConcurrentTaskModificationError)]
                assert len(won) == 1 and len(lost) == 1, results
                winner = results.index(won[0])
                stored = await replicas[1 - winner].get("race", ALICE)
                assert stored is not None and stored.version == won[0]
                assert stored.task.status.timestamp.seconds == 1_700_000_000 + round_ * 2 + winner
                version = won[0]

    asyncio.run(main())


# --- the TaskEventStream


def status(task_id: str, state: int) -> TaskStatusUpdateEvent:
    return TaskStatusUpdateEvent(
        task_id=task_id,
        context_id="ctx",
        status=TaskStatus(state=state),  # type: ignore[arg-type]
    )


def test_a_subscriber_after_a_version_misses_nothing(server_url: str) -> None:
    async def body(swarm: AsyncSwarm) -> None:
        store, stream = RedisVersionedTaskStore(swarm), RedisTaskEventStream(swarm, block_s=0.2)
        states = [S.TASK_STATE_SUBMITTED, S.TASK_STATE_WORKING, S.TASK_STATE_INPUT_REQUIRED]
        versions = [TaskVersion.MISSING]
        for state in states:  # each save appends its event, atomically
            made = task("t", state)
            versions.append(await _save(store, made, versions[-1], status("t", state)))
            # what the SDK does next: publish it (already there: not added twice)
            await stream.publish("t", VersionedEvent(status("t", state), versions[-1]))

        async def read(after: TaskVersion, n: int) -> list[VersionedEvent]:
            out = []
            async for item in stream.subscribe("t", after=after):
                out.append(item)
                if len(out) == n:
                    break
            return out

        after_first = await read(versions[1], 2)
        assert [e.version for e in after_first] == versions[2:]
        assert [e.event for e in after_first] == [status("t", s) for s in states[1:]]
        assert [e.version for e in await read(TaskVersion.MISSING, 3)] == versions[1:]

        # One already waiting gets what is saved next, live, in order.
        live = asyncio.create_task(read(versions[-1], 2))
        await asyncio.sleep(0.05)
        working = await _save(
            store, task("t", S.TASK_STATE_WORKING), versions[-1], status("t", S.TASK_STATE_WORKING)
        )
        done = await _save(
            store, task("t", S.TASK_STATE_COMPLETED), working, status("t", S.TASK_STATE_COMPLETED)
        )
        got = await asyncio.wait_for(live, 5)
        assert [e.version for e in got] == [working, done]

        # A finished task's stream expires; destroy frees it at once.
        events_key = swarm.keys.a2a_events("t")
        assert 0 < await swarm.redis.pttl(events_key) <= 3_600_000
        await stream.destroy("t")
        assert not await swarm.redis.exists(events_key)

    run(server_url, body)


@needs_cancelling
def test_a_subscriber_stops_after_a_lost_cancellation(server_url: str) -> None:
    """The SDK cancels a subscription when its client goes; a cancellation lost in a read
    that ended as it came (Python 3.11's wait_for, inside redis-py) must not leave the
    subscription reading on for good."""

    async def body(swarm: AsyncSwarm) -> None:
        stream = RedisTaskEventStream(swarm, block_s=0.2)
        working = status("lost", S.TASK_STATE_WORKING)
        await stream.publish("lost", VersionedEvent(working, TaskVersion(1)))
        subscription = stream.subscribe("lost", after=TaskVersion.MISSING)
        assert (await anext(subscription)).version == TaskVersion(1)
        await lose_a_cancellation(swarm.status())
        # (no wait_for here: the subscription must run in this task, as the SDK runs it)
        me = asyncio.current_task()
        assert me is not None
        watchdog = asyncio.get_running_loop().call_later(2.0, me.cancel)
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await anext(subscription)
        watchdog.cancel()
        assert time.monotonic() - started < 1.0  # at once, not when the watchdog fired

    run(server_url, body)


def test_publish_alone_and_delete_frees_every_key(server_url: str) -> None:
    """The stream works with a store that does not append (publish adds each version once,
    and a finished task's stream expires); deleting a task leaves no key, index entry or
    stream of it behind."""

    async def body(swarm: AsyncSwarm) -> None:
        stream = RedisTaskEventStream(swarm, block_s=0.1)
        states = {1: S.TASK_STATE_SUBMITTED, 2: S.TASK_STATE_WORKING, 3: S.TASK_STATE_AUTH_REQUIRED}
        for version in (1, 2, 2, 1, 3):
            event = status("x", states[version])
            await stream.publish("x", VersionedEvent(event, TaskVersion(version)))
        got = []
        async for item in stream.subscribe("x", after=TaskVersion(1)):
            got.append(item)
            if len(got) == 2:
                break
        assert [(e.version, e.event) for e in got] == [
            (TaskVersion(2), status("x", states[2])),
            (TaskVersion(3), status("x", states[3])),
        ]
        events_key = swarm.keys.a2a_events("x")
        assert await swarm.redis.pttl(events_key) == -1  # not finished: kept
        done = status("x", S.TASK_STATE_COMPLETED)
        await stream.publish("x", VersionedEvent(done, TaskVersion(4)))
        assert 0 < await swarm.redis.pttl(events_key) <= 3_600_000  # finished: expires
        # An event without a version (a message-only reply) opens no stream.
        await stream.publish("y", VersionedEvent(status("y", 1), TaskVersion.MISSING))
        assert not await swarm.redis.exists(swarm.keys.a2a_events("y"))
        store = RedisVersionedTaskStore(swarm)
        await _save(store, task("x"), TaskVersion.MISSING, status("x", 1))
        await store.delete("x", ALICE)
        keys = swarm.keys
        for key in (keys.a2a_records("alice"), keys.a2a_index("alice"), keys.a2a_events("x")):
            assert not await swarm.redis.exists(key), key

    run(server_url, body)


def test_the_stores_take_a_url_and_close_their_handle(redis_url: str) -> None:
    async def main() -> None:
        store = RedisTaskStore(redis_url, swarm=SWARM)
        stream = RedisTaskEventStream(redis_url, swarm=SWARM)
        await store.save(task("u"), ALICE)
        assert store.swarm.name == SWARM
        await store.aclose()
        await stream.aclose()
        async with AsyncSwarm(redis_url, swarm=SWARM) as swarm:
            assert await RedisTaskStore(swarm).get("u", ALICE) == task("u")
            with pytest.raises(ValueError, match="name the swarm"):
                RedisTaskStore(swarm, swarm="other")
        with Swarm(redis_url, swarm=SWARM) as sync, pytest.raises(TypeError, match="AsyncSwarm"):
            RedisTaskStore(sync)  # type: ignore[arg-type]

    asyncio.run(main())


def test_an_a2a_server_runs_as_a_shard_user_and_workers_are_refused(
    servers: ServerFactory,
) -> None:
    """The stores through ACL users of the swarm (Redis >= 7: Functions, selectors): a shard's
    user runs them; a worker's may read an A2A server's tasks (as every key of its swarm)
    but not write them."""
    server = servers.start()
    try:
        settings = Settings.from_url(server.url, swarm=SWARM)
        users = {role: apply_role(settings, role, f"a2a-{role}").user for role in ROLES}

        def url(role: str) -> str:
            spec = users[role]
            return f"redis://{spec.user}:{spec.password}@127.0.0.1:{server.port}"

        async def main() -> None:
            admin = AsyncSwarm(server.url, swarm=SWARM)
            await admin.load_functions()  # swarm up's part: workers and shards may not load
            await admin.aclose()
            shard = RedisVersionedTaskStore(url("shard"), swarm=SWARM)
            stream = RedisTaskEventStream(url("shard"), swarm=SWARM, block_s=0.1)
            worker = RedisVersionedTaskStore(url("worker"), swarm=SWARM)
            try:
                v1 = await _save(shard, task("acl"), TaskVersion.MISSING, status("acl", 1))
                assert (await shard.list(ListTasksRequest(), ALICE)).total_size == 1
                async for item in stream.subscribe("acl", after=TaskVersion.MISSING):
                    assert item.version == v1
                    break
                # A worker reads every key of its swarm, these too, but writes none of them.
                assert await worker.get("acl", ALICE) is not None
                with pytest.raises(PermissionDenied):
                    await _save(worker, task("acl", S.TASK_STATE_WORKING), v1)
                with pytest.raises(PermissionDenied):
                    await worker.delete("acl", ALICE)
            finally:
                for made in (shard, stream, worker):
                    await made.aclose()

        asyncio.run(main())
    finally:
        server.stop()
