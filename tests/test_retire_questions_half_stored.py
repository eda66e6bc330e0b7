"""A question's answer whose first try stored its finding and stopped half-way (a command the
worker's ACL refused: Redis does not roll a script back), retried after another answer
settled the question: the retry keeps the first try's finding again, superseded, as a copy
(``FID.late-...``, which names the first record: ``stands_for``), indexed, and the first
record stays in no index by design (lua/_report.lua). Nothing but a retirement of the copy
ever removes that first record: retiring the queue's questions removes it with the copy
(lua/questions_retire.lua, through ``stood_for`` of lua/_tasks.lua, as a pass's retirement
does: tests/test_report_half_stored_late.py), so no record of the retired question is left."""

from __future__ import annotations

from typing import Any

import pytest

from redis_swarm import Swarm, Timeout
from redis_swarm._acl import AclUser
from redis_swarm._errors import AlreadyCompleted, PermissionDenied
from redis_swarm._keys import Keys, ask_queue

from ._servers import RedisServer, old_worker_url, role_users, user_url

SWARM = "late-q"
KEYS = Keys(SWARM)
OWNER = "lib"
QUEUE = ask_queue(OWNER)


@pytest.fixture(scope="module")
def users(acl_server: RedisServer) -> dict[str, AclUser]:
    return role_users(acl_server, SWARM, "lateq")


def _claim(worker: Swarm) -> Any:
    claimed = worker.claim(QUEUE, worker="wz")
    assert claimed is not None and claimed.token is not None
    return claimed


def test_retiring_questions_removes_a_half_stored_answer_s_first_record_with_its_copy(
    acl_server: RedisServer, users: dict[str, AclUser]
) -> None:
    old_url = old_worker_url(acl_server, SWARM, "lateq-old-worker")
    raw: Any = acl_server.client()
    with (
        Swarm(old_url, swarm=SWARM) as old,
        Swarm(user_url(acl_server, users["shard"]), swarm=SWARM) as shard,
        Swarm(user_url(acl_server, users["worker"]), swarm=SWARM) as worker,
    ):
        shard.publish_context(OWNER, "the answer is in chapter 42\n", source="book.md")
        with pytest.raises(Timeout) as waited:  # (kept: its asker stopped waiting at once)
            shard.ask(OWNER, "where is the answer?", timeout_s=0.05, keep=True)
        qid = waited.value.task_id
        assert qid is not None
        token = _claim(old).token
        old.fail(qid, token, "timeout", retry=False)  # dead: its answer's report stops half-way
        fid = worker.new_finding_id()
        body = {"summary": "chapter 42, found late", "sources": ["book.md"]}
        with pytest.raises(PermissionDenied):  # (its finding stored, then refused)
            old.report(qid, token, body, worker="wz", finding_id=fid)
        assert raw.hexists(KEYS.findings, fid) == 1
        # settled meanwhile by another answer
        shard.requeue_dead(qid)
        other = _claim(worker)
        assert other.id == qid
        winner = worker.answer(qid, other.token, "chapter 42").id
        with pytest.raises(AlreadyCompleted) as late:  # the half-stored answer, retried
            worker.report(qid, token, body, worker="wz", finding_id=fid)
        copy = late.value.finding_id
        assert copy is not None and copy.startswith(fid + ".late-")
        assert shard.get_finding(copy).superseded
        assert raw.hget(KEYS.findings, copy) is not None
        assert raw.zscore(KEYS.finding_index, fid) is None  # the first record: in no index
        assert {f.id for f in shard.findings(queue=QUEUE)} == {winner, copy}

        retired = shard.retire_questions(OWNER, older_than_s=0)

        assert retired.questions == 1 and retired.findings == 2  # (the answer and the copy)
        for gone in (fid, copy, winner):
            assert raw.hexists(KEYS.findings, gone) == 0, gone
        assert raw.hexists(KEYS.tasks, qid) == 0
        assert shard.findings(queue=QUEUE).items == ()
        assert shard.check_counters().ok
        damaged = shard.corrupt_records()
        assert not any(damaged.values()), damaged
    raw.close()
