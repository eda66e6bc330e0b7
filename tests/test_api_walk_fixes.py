"""Fixes from a user's walk of the Python API: an AsyncSwarm under a second asyncio.run, an
answer's sources, a renewed task's token, a webhook's repr, MemoryShard's arguments, and
bad input refused with ValidationError instead of raw Python errors."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from collections.abc import Callable
from typing import Any

import pytest

from redis_swarm import (
    AsyncSwarm,
    ConfigError,
    Coordinator,
    Limits,
    MemoryShard,
    Swarm,
    Task,
    TaskSpec,
    TaskStatus,
    ValidationError,
    Webhook,
)

from ._raw import raw_client
from ._servers import ServerFactory
from ._tls import make_pki, start_tls_server

# --- an AsyncSwarm used under one asyncio.run after another


def _clients(url: str) -> int:
    with raw_client(url) as raw:
        return len(raw.client_list())


def test_async_swarm_works_under_a_second_asyncio_run(server_url: str) -> None:
    handle = AsyncSwarm(server_url, swarm="test")
    asyncio.run(handle.post_task("q", "first"))
    asyncio.run(handle.post_task("q", "second"))  # (raised "Event loop is closed")
    claimed = asyncio.run(handle.claim("q", worker="w1"))
    assert claimed is not None and claimed.token is not None

    asyncio.run(handle.report(claimed.id, claimed.token, {"summary": "done"}))
    asyncio.run(handle.aclose())
    with Swarm(server_url, swarm="test") as sync:
        tasks = sync.list_tasks("q").items
        assert sorted(t.description for t in tasks) == ["first", "second"]  # once each
        assert sync.get_task(claimed.id).status.value == "completed"


def test_async_swarm_aclose_on_a_new_loop_closes_every_connection(server_url: str) -> None:
    if server_url.startswith("redis+cluster://"):
        pytest.skip("one count of clients per node: the standalone server says it")
    before = _clients(server_url)
    handle = AsyncSwarm(server_url, swarm="test")
    asyncio.run(handle.post_task("q", "one"))
    asyncio.run(handle.post_task("q", "two"))
    asyncio.run(handle.aclose())
    gc.collect()
    assert _clients(server_url) == before


def test_async_swarm_over_tls_under_a_second_asyncio_run(
    servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A TLS stream of a closed loop is closed too (its socket under the TLS transport)."""
    server = start_tls_server(servers, make_pki(tmp_path_factory.mktemp("pki")))
    try:
        with Swarm(server.url, swarm="test") as sync:
            assert sync.list_tasks("q").items == ()  # (its own connections, opened first)
            before = len(sync.redis.client_list())
            handle = AsyncSwarm(server.url, swarm="test")
            asyncio.run(handle.post_task("q", "first"))
            asyncio.run(handle.post_task("q", "second"))
            asyncio.run(handle.aclose())
            gc.collect()
            assert len(sync.list_tasks("q").items) == 2
            assert len(sync.redis.client_list()) == before
    finally:
        server.stop()


# --- answer's sources and extra, checked as report's


def _claimed(swarm: Swarm, queue: str = "q") -> Task:
    swarm.post_task(queue, "what is in c.md?")
    task = swarm.claim(queue, worker="w1")
    assert task is not None and task.token is not None
    return task


def test_answer_refuses_one_string_as_sources(swarm: Swarm) -> None:
    task = _claimed(swarm)
    with pytest.raises(ValidationError, match=r"sources.*list of strings"):
        swarm.answer(task.id, task.token, "it says hello", sources="c.md:2")
    with pytest.raises(ValidationError, match="extra must be a dict"):
        swarm.answer(task.id, task.token, "it says hello", extra=-1)  # type: ignore[call-overload]
    assert swarm.get_task(task.id).status is TaskStatus.CLAIMED  # nothing stored
    finding = swarm.answer(task.id, task.token, "it says hello", sources=["c.md:2"])
    assert list(finding.sources) == ["c.md:2"]


def test_answer_takes_none_as_no_sources(swarm: Swarm) -> None:
    task = _claimed(swarm)
    finding = swarm.answer(task.id, task.token, "nothing", sources=None)  # type: ignore[call-overload]
    assert not finding.sources


# --- renew returns the task with the token it was given


def test_renew_returns_the_task_with_its_token(swarm: Swarm) -> None:
    task = _claimed(swarm)
    renewed = swarm.renew(task.id, task.token, 30)
    assert renewed.token == task.token
    again = swarm.renew(renewed.id, renewed.token, 60)  # (the renewed task, used as it is)
    swarm.report(again.id, again.token, {"summary": "done"})
    assert swarm.get_task(task.id).status is TaskStatus.COMPLETED


# --- a webhook's repr hides the secrets of its URL


def test_webhook_repr_masks_the_secrets_of_its_url() -> None:
    url = "https://alice:HookPass1@hooks.example/x?api_key=HookKey2&page=2"
    hook = Webhook(id="h-1", task_id="t-1", url=url, token="Tok3")
    shown = repr(hook)
    for secret in ("HookPass1", "HookKey2", "Tok3"):
        assert secret not in shown
    assert "hooks.example/x" in shown and "page=2" in shown
    assert hook.url == url and hook.to_dict()["url"] == url  # stored whole


# --- MemoryShard: its specialization first, a server's address refused there


@pytest.mark.parametrize("address", ["10.0.0.5", "localhost", "redis.internal:6379", "::1"])
def test_memory_shard_refuses_an_address_as_its_specialization(
    redis_url: str, address: str
) -> None:
    with pytest.raises(ValidationError, match="redis_host="):
        MemoryShard(address, url=redis_url, swarm="test")


def test_memory_shard_takes_its_specialization_first(redis_url: str) -> None:
    with MemoryShard("security", url=redis_url, swarm="test") as shard:
        assert shard.specialization == "security"
        with Coordinator(url=redis_url, swarm="test") as lead:
            sent = lead.request_synthesis(shard.agent_id, "Pass 1")  # (no instructions)
        assert sent.data is not None and sent.data.get("instructions") == ""


# --- bad input: a ValidationError saying what to give, never a raw Python error


@pytest.mark.parametrize("count", ["", None, float("inf"), -1, 0, 1.9, True, 10**30, 501])
def test_recent_refuses_a_count_out_of_1_to_500(swarm: Swarm, count: object) -> None:
    with pytest.raises(ValidationError, match="findings"):
        swarm.recent(findings=count)  # type: ignore[arg-type]


def test_recent_takes_its_bounds(swarm: Swarm) -> None:
    assert swarm.recent(findings=1, syntheses=500, dead=1).findings == ()


def test_finding_lost_refuses_no_task(swarm: Swarm) -> None:
    with pytest.raises(ValidationError, match="Task"):
        swarm.finding_lost(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("owner", [None, float("nan"), "\ud800"])
def test_a2a_store_refuses_an_owner_that_is_no_text(swarm: Swarm, owner: object) -> None:
    with pytest.raises(ValidationError, match="owner"):
        swarm.a2a_get(owner, "t1")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="owner"):
        swarm.a2a_delete(owner, "t1")  # type: ignore[arg-type]


NOT_A_LIST: Any = 5  # (task_ids=None is post_tasks' default: the number stands for both)
LISTS: list[tuple[str, Callable[[Swarm, Any], Any]]] = [
    ("specs", lambda s, v: s.post_tasks(v)),
    ("task_ids", lambda s, v: s.post_tasks([TaskSpec("q", "d")], task_ids=NOT_A_LIST)),
    ("task_ids", lambda s, v: s.task_statuses(v)),
    ("task_ids", lambda s, v: s.leases_of("w", task_ids=v)),
    ("shards", lambda s, v: s.shard_stats(v)),
    ("queues", lambda s, v: s.retire_queues(v)),
    ("owners", lambda s, v: s.drop_unrecorded_runs(v)),
    ("findings", lambda s, v: s.priced_findings(v)),
]


@pytest.mark.parametrize(("kind", "call"), LISTS, ids=lambda x: x if isinstance(x, str) else "")
@pytest.mark.parametrize("value", [None, 5])
def test_a_list_argument_refuses_none_or_a_number(
    swarm: Swarm, kind: str, call: Callable[[Swarm, Any], Any], value: object
) -> None:
    with pytest.raises(ValidationError, match=f"{kind} must be a list of"):
        call(swarm, value)


@pytest.mark.parametrize(
    "options",
    [
        {"limits": {"max_finding_bytes": 10}},
        {"clock": "x"},
        {"cache": 5},
        {"client": 5},
    ],
    ids=["limits-dict", "clock", "cache", "client"],
)
@pytest.mark.parametrize("shell", [Swarm, AsyncSwarm])
def test_a_handle_refuses_bad_options_when_made(
    redis_url: str, shell: type[Swarm] | type[AsyncSwarm], options: dict[str, Any]
) -> None:
    with pytest.raises((ValidationError, ConfigError), match=f"(?i){next(iter(options))}"):
        shell(redis_url, swarm="test", **options)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_finding_bytes", -1),
        ("max_finding_bytes", float("nan")),
        ("max_task_data_bytes", True),
        ("context_chunk_bytes", 0),
        ("events_maxlen", "100"),
        ("context_versions_kept", 0),
        ("context_copy_bytes", -1),
    ],
)
def test_limits_refuse_a_bad_value_as_they_are_made(field: str, value: object) -> None:
    """Refused where the mistake is made, not at the handle or publish that first uses it."""
    with pytest.raises(ConfigError, match=f"Limits.{field} must be an integer of at least"):
        Limits(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=f"Limits.{field} must be"):
        dataclasses.replace(Limits(), **{field: value})  # type: ignore[arg-type]


def test_limits_take_their_least_values() -> None:
    least = Limits(
        max_finding_bytes=1, context_chunk_bytes=1, context_versions_kept=1, context_copy_bytes=0
    )
    assert least.context_copy_bytes == 0 and least.context_versions_kept == 1


# --- the records operations return are exported


def test_the_records_of_doctor_and_shard_stats_are_exported() -> None:
    import redis_swarm
    from redis_swarm._ops.counters import CounterCheck, Recounted
    from redis_swarm._ops.server import ServerInfo
    from redis_swarm._ops.tasks import ShardStats

    for record in (CounterCheck, Recounted, ServerInfo, ShardStats):
        assert record.__name__ in redis_swarm.__all__
        assert getattr(redis_swarm, record.__name__) is record


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.post_task("q", "d", priority=10**400),
        lambda s: s.claim("q", worker="w", wait_s=10**400),
        lambda s: s.post_task("q", "d", max_attempts=-(10**5000)),
    ],
    ids=["priority", "wait_s", "max_attempts"],
)
def test_an_integer_past_a_floats_range_is_refused_in_words(
    swarm: Swarm, call: Callable[[Swarm], Any]
) -> None:
    """It raised OverflowError ("int too large to convert to float") from the range check."""
    with pytest.raises(ValidationError, match=r"is a (negative )?number of [\d,]+ digits; it must"):
        call(swarm)
