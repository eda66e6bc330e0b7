"""A walkthrough of the Python library, its catches (real redis-server):

1. A post under a task id another task holds was dropped silently (the stored task came back,
   nothing posted, no error); two specs of one batch under one id lost the second. Now the
   other task is a Conflict, and a batch's repeated id is refused before anything is sent;
   a retry of the same post still returns the stored task.
2. V1 ``claim_task(q, timeout=0)`` was refused in the core's words (``lease_s is 0``).
3. A context version given in uppercase hex was refused as no version.
4. ``not_before`` in seconds was read as a time in 1970 (the task pending at once); a float
   was refused with no word of milliseconds.
5. Damaged context data raised a bare SwarmError whose remedy named no Python way.
6. A report without a token needs no worker unless it claims the next task (the docs said
   it always did).
7. A post under a taken id with the same queue and description but other data (or another
   lease_s) was still dropped silently (the stored task came back): data and lease_s were
   not compared, since the pipeline posts its lease under a known id with its own run in
   its data. Now they are, and the pipeline reads the task posted when its post is refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import (
    Conflict,
    CorruptRecord,
    Limits,
    RedisSwarmCoordinator,
    Swarm,
    TaskSpec,
    TaskStatus,
    ValidationError,
)

from ._cli import Cli
from ._raw import raw_client


@pytest.fixture
def plain(redis_url: str) -> Iterator[Swarm]:
    """One sync handle, for what does not differ between the shells."""
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


# --- 1. a task id names one task


def test_a_post_under_another_tasks_id_is_refused(swarm: Swarm) -> None:
    tid = swarm.new_task_id()
    first = swarm.post_task("idq", "first", task_id=tid)
    with pytest.raises(Conflict, match=f"task id {tid} is taken by another task") as refused:
        swarm.post_task("idq2", "second", {"other": 1}, task_id=tid)
    said = str(refused.value)
    assert "queue 'idq'" in said and "queue 'idq2'" in said  # what differs, both ways
    assert "new id (Swarm.new_task_id()) or none" in said
    assert swarm.get_task(tid) == first  # untouched
    assert "idq2" not in swarm.queue_stats()  # nothing posted
    # Same queue, another description: another task too.
    with pytest.raises(Conflict, match="description 'first'"):
        swarm.post_task("idq", "second", task_id=tid)
    with pytest.raises(Conflict, match="priority"):
        swarm.post_task("idq", "first", priority=3, task_id=tid)


def test_a_retried_post_still_returns_the_stored_task(swarm: Swarm) -> None:
    tid = swarm.new_task_id()
    post: dict[str, Any] = {
        "queue": "q", "description": "work", "data": {"path": "a.py", "n": [1, 2]},
        "pass_name": "P1", "priority": 5, "max_attempts": 4, "max_abandons": 2,
        "dedupe_key": "k", "parent": "shard-1", "lease_s": 30.5,
    }  # fmt: skip
    first = swarm.post_task(**post, task_id=tid)
    again = swarm.post_task(**post, task_id=tid)
    assert again == first and swarm.queue_stats()["q"]["pending"] == 1
    # The same data with its keys in another order is the same data (JSON's objects).
    assert swarm.post_task(**{**post, "data": {"n": [1, 2], "path": "a.py"}}, task_id=tid) == first
    # A delay counts from the server's now: a retry's is not the first one's, and is not
    # compared (the task keeps its first due time). (Other data or lease_s: test 7 below.)
    delayed = swarm.new_task_id()
    kept = swarm.post_task("q", "later", delay_s=60, task_id=delayed)
    assert swarm.post_task("q", "later", delay_s=61, task_id=delayed) == kept
    # A claimed (or completed) task is the same task: the retry returns it as it is now.
    claimed = swarm.claim("q", worker="w")
    assert claimed is not None
    assert swarm.post_task(**post, task_id=tid).status is TaskStatus.CLAIMED


def test_a_batch_refuses_one_id_given_twice_before_sending(swarm: Swarm) -> None:
    tid = swarm.new_task_id()
    with pytest.raises(ValidationError, match=f"task #1: task id {tid} is also task #0's"):
        swarm.post_tasks([TaskSpec("q2", "one"), TaskSpec("q2", "two")], task_ids=[tid, tid])
    with pytest.raises(ValidationError, match=r"line 9: .* is also line 7's"):
        swarm.post_tasks(
            [TaskSpec("q2", "one"), TaskSpec("q2", "two")],
            task_ids=[tid, tid],
            labels=["line 7", "line 9"],
        )
    assert "q2" not in swarm.queue_stats()  # nothing stored


def test_a_batch_with_another_tasks_id_posts_the_rest_and_says_so(swarm: Swarm) -> None:
    taken = swarm.post_task("q", "taken", task_id=swarm.new_task_id())
    ids = [swarm.new_task_id(), taken.id, swarm.new_task_id()]
    specs = [TaskSpec("q", "a"), TaskSpec("q", "b"), TaskSpec("q", "c")]
    with pytest.raises(Conflict, match=f"task #1: task id {taken.id} is taken") as refused:
        swarm.post_tasks(specs, task_ids=ids)
    assert "other tasks were posted" in str(refused.value)
    assert swarm.get_task(taken.id).description == "taken"
    # As the error says: a new id for the refused one, the same ids for the others.
    ids[1] = swarm.new_task_id()
    posted = swarm.post_tasks(specs, task_ids=ids)
    assert [t.description for t in posted] == ["a", "b", "c"]
    assert swarm.queue_stats()["q"]["pending"] == 4  # a and c posted once


def test_cli_jsonl_posts_under_fresh_ids_as_before(cli: Cli, tmp_path: Path) -> None:
    lines = tmp_path / "tasks.jsonl"
    lines.write_text(
        "\n".join(json.dumps({"description": d}) for d in ("one", "one", "two")) + "\n"
    )
    out = cli("--json", "task", "post", "q", "--jsonl", str(lines))
    assert len(json.loads(out.stdout)["items"]) == 3


# --- 2. V1's timeout


def test_v1_claim_task_names_its_timeout(redis_url: str) -> None:
    with RedisSwarmCoordinator(url=redis_url, swarm="test") as v1:
        v1.register_agent("haiku_worker")
        v1.post_task("queue:vq", "t", {"i": 1})
        for bad in (0, -1, True, "60", 31 * 86_400, float("nan")):
            with pytest.raises(ValidationError, match="timeout is") as refused:
                v1.claim_task("vq", timeout=bad)  # type: ignore[arg-type]
            assert "lease_s" not in str(refused.value), bad
        task = v1.claim_task("vq", timeout=1)
        assert task is not None and task["data"] == {"i": 1}


# --- 3. a version in uppercase


def test_a_context_version_is_taken_in_any_case(swarm: Swarm) -> None:
    for n in range(2):
        swarm.publish_context("shard-v", f"version {n}\n", source="v")
    old = swarm.context_versions("shard-v")[-1].version
    assert swarm.get_context("shard-v", version=old[:12].upper()) == "version 0\n"
    assert swarm.get_context("shard-v", version=old.upper()) == "version 0\n"
    assert swarm.read_context("shard-v", lines=(1, 1), version=old[:12].upper()).text == (
        "version 0\n"
    )
    assert [h.line for h in swarm.search_context("shard-v", "0", version=old.upper())] == [1]
    with pytest.raises(ValidationError, match="is not a context version"):
        swarm.get_context("shard-v", version="ZZZZZZZZZZ")


# --- 4. not_before in milliseconds


def test_not_before_in_seconds_is_refused_saying_milliseconds(swarm: Swarm) -> None:
    seconds = int(time.time()) + 3600
    with pytest.raises(ValidationError, match="milliseconds") as refused:
        swarm.post_task("nbq", "x", not_before=seconds)
    assert "seconds times 1000" in str(refused.value) and "delay_s" in str(refused.value)
    with pytest.raises(ValidationError, match=r"must be an integer, got float .*milliseconds"):
        swarm.post_task("nbq", "x", not_before=time.time() * 1000 + 5000.5)  # type: ignore[arg-type]
    for bad in (1, 0, -1, 10**11 - 1):
        with pytest.raises(ValidationError, match="before 1973"):
            swarm.post_task("nbq", "x", not_before=bad)
    with pytest.raises(ValidationError, match="task #0: not_before"):
        swarm.post_tasks([TaskSpec("nbq", "x", not_before=seconds)])
    assert "nbq" not in swarm.queue_stats()
    later = swarm.post_task("nbq", "x", not_before=seconds * 1000)
    assert later.status is TaskStatus.DELAYED and later.not_before == seconds * 1000
    assert swarm.post_task("nbq", "y", not_before=10**11).status is TaskStatus.PENDING


def test_cli_jsonl_not_before_is_checked_as_milliseconds(cli: Cli, tmp_path: Path) -> None:
    due = int(time.time() * 1000) + 3_600_000
    lines = tmp_path / "tasks.jsonl"
    lines.write_text(json.dumps({"description": "later", "not_before": due}) + "\n")
    posted = json.loads(cli("--json", "task", "post", "q", "--jsonl", str(lines)).stdout)
    assert posted["items"][0]["status"] == "delayed"
    lines.write_text(json.dumps({"description": "later", "not_before": due // 1000}) + "\n")
    refused = cli("task", "post", "q", "--jsonl", str(lines), expect=None)
    assert refused.code != 0 and "line 1: not_before" in refused.stderr
    assert "milliseconds" in refused.stderr


# --- 5. damaged context data


def test_damaged_context_data_is_a_corrupt_record_naming_each_repair(
    plain: Swarm, redis_url: str
) -> None:
    text = "".join(f"line {i}\n" for i in range(2000))
    info = plain.publish_context("shard-d", text, source="d.md", compression="none")
    with raw_client(redis_url) as r:
        [key] = list(r.scan_iter("rs:chunk:*"))
        data = r.hget(key, "data")
        r.hset(key, "data", data[:10] + bytes([data[10] ^ 1]) + data[11:])
    with (
        Swarm(redis_url, swarm="test", limits=Limits(context_copy_bytes=0)) as cold,
        pytest.raises(CorruptRecord, match="damaged data") as refused,
    ):
        cold.get_context("shard-d")
    said = str(refused.value)
    assert "swarm context publish d.md --owner shard-d --repair" in said  # the CLI's
    assert "publish_context('shard-d', ..., repair=True)" in said  # Python's
    assert "publish_context with repair=true" in said  # MCP's
    assert refused.value.record_id == info.version
    plain.publish_context("shard-d", text, source="d.md", compression="none", repair=True)
    with Swarm(redis_url, swarm="test", limits=Limits(context_copy_bytes=0)) as cold:
        assert cold.get_context("shard-d") == text


# --- 6. a report without a token


def test_a_report_without_a_token_names_a_worker_only_to_claim_the_next(plain: Swarm) -> None:
    task = plain.post_task("rq", "done by hand")
    finding = plain.report(task.id, None, {"summary": "an operator's"})
    assert finding.worker is None and plain.get_task(task.id).status is TaskStatus.COMPLETED
    other = plain.post_task("rq", "next")
    with pytest.raises(ValidationError, match="claim_next leases the next task"):
        plain.report(other.id, None, {"summary": "s"}, claim_next="rq")


# --- 7. data and lease_s are the task's too


def test_a_post_with_other_data_under_a_taken_id_is_refused(swarm: Swarm) -> None:
    tid = swarm.new_task_id()
    first = swarm.post_task("q", "same description", {"mine": 1}, task_id=tid)
    with pytest.raises(Conflict, match=f"task id {tid} is taken by another task") as refused:
        swarm.post_task("q", "same description", {"other": 1}, task_id=tid)
    said = str(refused.value)
    assert 'data {"mine":1}' in said and 'data {"other":1}' in said, said
    with pytest.raises(Conflict, match=r"its data \{\"mine\":1\}; this post's: no data"):
        swarm.post_task("q", "same description", task_id=tid)
    with pytest.raises(Conflict, match="its lease_s 900; this post's: lease_s 5"):
        swarm.post_task("q", "same description", {"mine": 1}, lease_s=5, task_id=tid)
    # Big data is said cut short, not whole.
    with pytest.raises(Conflict) as refused:
        swarm.post_task("q", "same description", {"text": "x" * 10_000}, task_id=tid)
    assert len(str(refused.value)) < 1_000
    assert swarm.get_task(tid) == first and swarm.queue_stats()["q"]["pending"] == 1
    # In a batch too: the spec under the taken id is refused, the others posted.
    other = swarm.new_task_id()
    specs = [TaskSpec("q", "same description", {"other": 1}), TaskSpec("q", "else")]
    with pytest.raises(Conflict, match=f"task #0: task id {tid} is taken"):
        swarm.post_tasks(specs, task_ids=[tid, other])
    assert swarm.get_task(tid) == first and swarm.get_task(other).description == "else"


def test_data_is_compared_as_json_not_as_python_equality(swarm: Swarm) -> None:
    """1, 1.0 and true are three JSON values (Python's == takes them for one): a post under
    a taken id with one of the others is another task's; key order is no difference."""
    tid = swarm.new_task_id()
    first = swarm.post_task("q", "same", {"n": 1, "flags": [True, 0]}, task_id=tid)
    for other in ({"n": True, "flags": [True, 0]}, {"n": 1.0, "flags": [True, 0]},
                  {"n": 1, "flags": [1, 0]}, {"n": 1, "flags": [True, False]}):  # fmt: skip
        with pytest.raises(Conflict, match=f"task id {tid} is taken by another task"):
            swarm.post_task("q", "same", other, task_id=tid)
    with pytest.raises(Conflict, match="task #0: task id"):
        swarm.post_tasks([TaskSpec("q", "same", {"n": True, "flags": [True, 0]})], task_ids=[tid])
    # The same post sent again, its keys in another order, is the stored task.
    assert swarm.post_task("q", "same", {"flags": [True, 0], "n": 1}, task_id=tid) == first
    assert swarm.post_tasks([TaskSpec("q", "same", {"n": 1, "flags": [True, 0]})],
                            task_ids=[tid]) == [first]  # fmt: skip
    assert swarm.queue_stats()["q"]["pending"] == 1


def test_posted_once_reads_the_task_a_run_posted_with_its_own_data(swarm: Swarm) -> None:
    """The pipeline's "post it, or find the one posted" under a known id (its planning,
    synthesizer and lease tasks): another run's data or lease_s is that run's task."""
    from redis_swarm._pipeline.names import posted_once

    tid = swarm.new_task_id()
    first = posted_once(swarm, "pq", "plan pass 1", {"run": 1}, task_id=tid, lease_s=60)
    assert first.id == tid and first.data == {"run": 1}
    again = posted_once(swarm, "pq", "plan pass 1", {"run": 2}, task_id=tid, lease_s=90)
    assert again == first and swarm.queue_stats()["pq"]["pending"] == 1
    with pytest.raises(Conflict, match="queue 'pq'"):  # another queue's task: not this one
        posted_once(swarm, "pq2", "plan pass 1", {"run": 2}, task_id=tid, lease_s=60)


def test_two_runs_posting_one_lease_at_once_both_get_the_first_runs(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs starting together read the same settled lease and post the same next one,
    each naming itself in its data: the later one gets the earlier's task (not a Conflict),
    and only one claims it."""
    from redis_swarm._pipeline import lease as lease_module
    from redis_swarm._pipeline import load_plan
    from redis_swarm._pipeline.lease import RunLease

    from .test_pipeline_run import plan_text

    plan = load_plan(plan_text(tmp_path))
    # (each read the queue before the other posted: it held no lease then)
    monkeypatch.setattr(lease_module, "newest_lease", lambda swarm, name: None)
    with Swarm(redis_url, swarm="test") as handle:
        first, second = (RunLease(handle, plan, holder=h) for h in ("run-a", "run-b"))
        found = [first._open_task(), second._open_task()]
        assert found[0].id == found[1].id and found[1].data == {
            "pipeline": plan.name, "holder": "run-a",
        }  # fmt: skip
        assert first.acquire()
        try:
            with pytest.raises(Conflict, match=f"pipeline {plan.name} is being run by run-a"):
                second.acquire()
        finally:
            first.release()


def test_a_report_under_another_findings_id_is_refused(swarm: Swarm) -> None:
    """A report under a finding id that holds another finding of the task returned the
    stored one, this one dropped (the same defect posts had). A retry of the same report
    still returns the stored finding; one saying otherwise is a Conflict, nothing stored."""
    task = swarm.post_task("fq", "look")
    claimed = swarm.claim("fq", worker="w")
    assert claimed is not None and claimed.token is not None
    fid = swarm.new_finding_id()
    first = swarm.report(task.id, claimed.token, {"summary": "a", "sources": ["x"]}, finding_id=fid)
    again = swarm.report(task.id, claimed.token, {"summary": "a", "sources": ["x"]}, finding_id=fid)
    assert again == first
    with pytest.raises(Conflict, match=f"finding id {fid} holds another finding") as caught:
        swarm.report(task.id, claimed.token, {"summary": "b", "sources": ["x"]}, finding_id=fid)
    assert "summary differ" in str(caught.value) and "new_finding_id" in str(caught.value)
    assert swarm.get_finding(fid).summary == "a"
    assert [f.id for f in swarm.findings(queue="fq")] == [fid]
