"""A report whose first try stored its finding and stopped half-way (a command the user's ACL
refused: Redis does not roll a script back), then retried after another report settled the
task: a late report, whose finding is kept superseded and indexed, as any late report's is.
Its retry was refused (Conflict) and left the finding in no index: listed nowhere, and no
worker may delete it. The stored record says "not superseded", which a worker cannot rewrite
(findings are append-only to it), so the finding is kept again, superseded, under an id made
from its own (``FID.late-...``), and that copy is indexed; a retry answers the same copy."""

from __future__ import annotations

from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm._acl import AclUser
from redis_swarm._errors import AlreadyCompleted, PermissionDenied
from redis_swarm._keys import Keys

from ._servers import RedisServer, old_worker_url, role_users, user_url

SWARM = "late-h"
KEYS = Keys(SWARM)


@pytest.fixture(scope="module")
def users(acl_server: RedisServer) -> dict[str, AclUser]:
    return role_users(acl_server, SWARM, "late")


def _claim(worker: Swarm, queue: str) -> Any:
    claimed = worker.claim(queue, worker="wz")
    assert claimed is not None and claimed.token is not None
    return claimed


@pytest.mark.parametrize("case", ["report", "claim_next", "retired"])
def test_a_half_stored_report_retried_after_the_task_settled_is_kept_superseded(
    acl_server: RedisServer, users: dict[str, AclUser], case: str
) -> None:
    """(``retired``: its pass retired after, the first try's record goes with its copy:
    it is in no index, so nothing else would ever remove it.)"""
    claim_next = case == "claim_next"
    pass_name = "late-pass" if case == "retired" else None
    queue = f"late-{case}"
    old_url = old_worker_url(acl_server, SWARM, "late-old-worker")
    with (
        Swarm(old_url, swarm=SWARM) as old,
        Swarm(user_url(acl_server, users["shard"]), swarm=SWARM) as shard,
        Swarm(user_url(acl_server, users["worker"]), swarm=SWARM) as worker,
    ):
        task = shard.post_task(queue, "die", max_attempts=1, pass_name=pass_name)
        token = _claim(old, queue).token
        old.fail(task.id, token, "timeout", retry=False)
        fid = worker.new_finding_id()
        body = {"summary": "found it late", "sources": ["s1"]}
        with pytest.raises(PermissionDenied):  # (its finding stored, then refused)
            old.report(task.id, token, body, worker="wz", finding_id=fid)
        first_try = shard.get_finding(fid)
        # settled meanwhile by another report
        shard.requeue_dead(task.id)
        other = _claim(worker, queue)
        winner = worker.report(other.id, other.token, {"summary": "first"})
        waiting = shard.post_task(queue, "next")
        extra: dict[str, Any] = {"claim_next": queue} if claim_next else {}

        with pytest.raises(AlreadyCompleted) as late:
            worker.report(task.id, token, body, worker="wz", finding_id=fid, **extra)
        kept_id = late.value.finding_id
        assert kept_id is not None and kept_id != fid and kept_id.startswith(fid + ".late-")
        assert kept_id in str(late.value)
        kept = shard.get_finding(kept_id)
        assert kept.superseded and kept.task_id == task.id
        assert (kept.summary, kept.sources) == (first_try.summary, first_try.sources)
        assert kept.created_at == first_try.created_at and kept.worker == "wz"
        listed = shard.findings(queue=queue)
        assert {f.id for f in listed} == {winner.id, kept_id}
        assert [f.id for f in listed if f.superseded] == [kept_id]
        assert shard.get_task(task.id).finding_id == winner.id
        assert shard.get_task(waiting.id).status.value == "pending"  # nothing claimed
        raw: Any = acl_server.client()
        assert raw.zscore(KEYS.finding_index, kept_id) is not None

        # a retry answers the same copy, adding nothing
        with pytest.raises(AlreadyCompleted) as again:
            worker.report(task.id, token, body, worker="wz", finding_id=fid, **extra)
        assert again.value.finding_id == kept_id
        assert {f.id for f in shard.findings(queue=queue)} == {winner.id, kept_id}
        assert shard.get_task(waiting.id).status.value == "pending"
        assert shard.check_counters().ok
        # the first try's record stays in no index by design: the doctor names no loss
        damaged = shard.corrupt_records()
        assert not any(damaged.values()), damaged
        if pass_name is not None:
            retired = shard.retire_pass(pass_name)
            assert raw.hexists(KEYS.findings, fid) == 0 and raw.hexists(KEYS.findings, kept_id) == 0
            assert retired.findings == 2  # (the winner and the copy, as listed)
            damaged = shard.corrupt_records()
            assert not any(damaged.values()), damaged
        raw.close()
