"""A report without a token (from outside any lease) completes any task no live lease holds: a
shard's tool, refused to a worker's ACL user by Redis itself (docs/security.md, "Report
without a token"). Real servers, users made as ``swarm acl --apply`` makes them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import (
    LeaseLost,
    PermissionDenied,
    Settings,
    Swarm,
    ValidationError,
    apply_role,
)
from redis_swarm._acl import function_rules, role_scripts
from redis_swarm._keys import Keys
from redis_swarm._ops._work import block_chunk_s
from redis_swarm._protocol import Call, Operation
from redis_swarm._scripts import fcall

from ._handles import must
from ._servers import RedisServer, ServerFactory, system_redis

SWARM = "tokenless"
K = Keys(SWARM)
Q = "q"


@pytest.fixture(scope="module")
def server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A private Redis >= 7 (Functions, per-function ACL rules)."""
    started = servers.start(binary=system_redis())
    yield started
    started.stop()


def _handle(server: RedisServer, role: str) -> Swarm:
    made = apply_role(Settings.from_url(server.url, swarm=SWARM), role, f"tokenless-{role}").user
    return Swarm(f"redis://{made.user}:{made.password}@127.0.0.1:{server.port}", swarm=SWARM)


@pytest.fixture(scope="module")
def handles(server: RedisServer) -> Iterator[dict[str, Swarm]]:
    made = {role: _handle(server, role) for role in ("worker", "shard", "coordinator")}
    yield made
    for handle in made.values():
        handle.close()


@pytest.fixture
def clean(server: RedisServer) -> Iterator[Any]:
    raw = server.client()
    for key in raw.scan_iter(f"{K.prefix}*"):
        raw.delete(key)
    yield raw
    raw.close()


def _report_keys() -> tuple[str, ...]:
    """task_report's keys for a task of queue Q of no pass and no shard."""
    return (K.tasks, K.counts, K.pass_counts, K.events, K.pending(Q), K.delayed(Q), K.leases(Q),
            K.dead(Q), K.findings, K.finding_index, K.findings_by("queue", Q))  # fmt: skip


def _stored(raw: Any) -> tuple[dict[bytes, bytes], int]:
    """The findings stored, and the entries of the finding index."""
    return raw.hgetall(K.findings), raw.zcard(K.finding_index)


def test_a_worker_may_not_report_without_a_token(handles: dict[str, Swarm], clean: Any) -> None:
    shard, worker = handles["shard"], handles["worker"]
    task = shard.post_task(Q, "never claimed by this worker", pass_name="P1", parent="shard-1")
    before = _stored(clean)
    with pytest.raises(PermissionDenied) as refused:
        worker.report(task.id, None, {"summary": "forged"}, worker="w-evil")
    said = str(refused.value)
    # Redis's ACL refused the call (its words, kept), not a check of the worker's own client
    assert "no permissions to run the 'fcall' command" in said, said
    assert said.startswith(f"a report without a token (task {task.id}) is a shard's"), said
    assert "report with the token your claim returned" in said
    assert "made by an older redis-swarm gets this right" in said  # (re-apply it)
    assert "a shard or coordinator user may ('swarm acl --role shard" in said
    assert _stored(clean) == before
    assert shard.get_task(task.id).status == "pending"
    with pytest.raises(PermissionDenied):  # an answer without a token is a report without one
        worker.answer(task.id, None, "forged", worker="w-evil")
    assert _stored(clean) == before
    assert shard.get_task(task.id).status == "pending"


def test_a_raw_call_of_the_leased_function_without_a_token_is_refused(
    handles: dict[str, Swarm], clean: Any, server: RedisServer
) -> None:
    """A worker's own client could skip the unleased function and send no token to the one
    it may call: the script refuses that, and stores nothing."""
    shard = handles["shard"]
    task = shard.post_task(Q, "pending")
    made = apply_role(Settings.from_url(server.url, swarm=SWARM), "worker", "tokenless-raw").user
    as_worker: Any = server.client()
    as_worker.execute_command("AUTH", made.user, made.password)
    body = json.dumps({"id": "f-x", "task_id": task.id, "summary": "forged", "sources": []})
    keys = _report_keys()
    args = (0, 1000, task.id, Q, "", "f-x", body, "w-evil", "0", "0")
    before = _stored(clean)
    try:
        with pytest.raises(Exception, match="a report without a token is a shard's") as leased:
            as_worker.execute_command(*fcall("task_report", keys, args))
        assert "SWARM_INVALID" in str(leased.value)
        with pytest.raises(Exception, match="no permissions to run the 'fcall' command"):
            as_worker.execute_command(*fcall("task_report_unleased", keys, args))
    finally:
        as_worker.close()
    assert _stored(clean) == before
    assert shard.get_task(task.id).status == "pending"


@pytest.mark.parametrize("role", ["shard", "coordinator"])
def test_a_shard_or_coordinator_reports_without_a_token(
    handles: dict[str, Swarm], clean: Any, role: str
) -> None:
    reporter = handles[role]
    task = reporter.post_task(Q, "run by the shard itself", pass_name="P1", parent="shard-1")
    finding = reporter.report(task.id, None, {"summary": "found"}, worker="w-ran-by-shard")
    assert (finding.task_id, finding.worker, finding.attempt) == (task.id, "w-ran-by-shard", None)
    assert reporter.get_task(task.id).status == "completed"
    assert reporter.get_finding(finding.id).summary == "found"
    # still refused while a live lease holds the task: that lease's worker reports
    held = reporter.post_task(Q, "held")
    claimed = must(handles["worker"].claim(Q, worker="w-1"))
    assert claimed.id == held.id
    with pytest.raises(LeaseLost, match="held by worker w-1"):
        reporter.report(held.id, None, {"summary": "early"}, worker="w-2")


def test_a_workers_leased_report_is_unchanged(handles: dict[str, Swarm], clean: Any) -> None:
    shard, worker = handles["shard"], handles["worker"]
    shard.post_task(Q, "one")
    shard.post_task(Q, "two")
    task = must(worker.claim(Q, worker="w-1"))
    finding = worker.report(task.id, task.token, {"summary": "s"}, worker="w-1")
    assert (finding.worker, finding.attempt) == ("w-1", 1)
    assert shard.get_task(task.id).status == "completed"
    second = must(worker.claim(Q, worker="w-1"))
    _, following = worker.report(second.id, second.token, {"summary": "s"}, claim_next=Q)
    assert following is None  # (nothing left: the claim_next path ran)
    assert shard.get_task(second.id).status == "completed"


def test_the_roles_rules_name_the_unleased_function_for_shards_only() -> None:
    assert "task_report_unleased" not in role_scripts("worker")
    assert "task_report" in role_scripts("worker")
    assert "+fcall|rs_task_report_unleased" not in function_rules("worker")
    for role in ("shard", "coordinator"):
        assert "+fcall|rs_task_report_unleased" in function_rules(role)


def test_a_token_sent_to_the_unleased_function_is_refused(
    handles: dict[str, Swarm], clean: Any, server: RedisServer
) -> None:
    """The unleased function reports from outside any lease only: a token goes to the
    leased one, which checks it."""
    shard = handles["shard"]
    task = shard.post_task(Q, "pending")
    body = json.dumps({"id": "f-y", "task_id": task.id, "summary": "s", "sources": []})
    keys = _report_keys()
    args = (0, 1000, task.id, Q, "1.secret", "f-y", body, "w", "0", "0")
    before = _stored(clean)
    with pytest.raises(ValidationError, match="a report with a token is a leased report"):
        shard._run(_raw_call("task_report_unleased", keys, args))
    assert _stored(clean) == before


def _raw_call(script: str, keys: tuple[str, ...], args: tuple[Any, ...]) -> Operation[Any]:
    return (yield Call(script, keys, args))


def test_a_workers_refused_report_does_not_wait_for_its_next_task(
    handles: dict[str, Swarm], clean: Any
) -> None:
    """A report whose last claim had to wait sends its wait behind it (one round trip), and
    its script ends that wait when it does not complete its task; a report Redis refuses
    before its script runs would end it only when it times out: so a report without a token
    never sends its wait behind it, and the worker hears of the refusal at once."""
    shard, worker = handles["shard"], handles["worker"]
    waited: list[Any] = []
    thread = threading.Thread(
        target=lambda: waited.append(worker.claim("qd", worker="w-1", wait_s=5))
    )
    thread.start()
    time.sleep(0.3)
    shard.post_task("qd", "woken for it")  # the claim waited for it: "qd" looks dry
    thread.join()
    assert waited[0] is not None
    task = shard.post_task(Q, "never claimed")
    block = block_chunk_s(worker._ctx)
    assert block >= 1
    started = time.monotonic()
    with pytest.raises(PermissionDenied, match="a report without a token"):
        worker.report(
            task.id, None, {"summary": "forged"}, worker="w-1", claim_next="qd", wait_s=30
        )
    assert time.monotonic() - started < block / 2
    assert shard.get_task(task.id).status == "pending"
