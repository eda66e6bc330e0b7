"""Freeing a pipeline's bookkeeping (``swarm pipeline retire NAME``, the core's
``retire_queues``): a pipeline run, then run again from the start (run 2), leaves lease,
planning and synthesizer tasks of no pass; retired, they go with their findings and every
key of theirs, the counters brought down by exactly that, the passes' own tasks kept;
``pipeline status`` says so and a rerun works; a dry run changes nothing; a run holding the
lease refuses it (atomically too); a cited finding stays; an unfinished last run keeps its
own; a worker may not retire. The lease task of the highest generation stays: after a
partial retirement two runs starting together still post one lease (none holds a number
posted before), and an old run's late release leaves a new run's lease alone; a pipeline run
hundreds of times is retired in calls the core takes; the note on costs is the last run's."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_swarm import Conflict, PermissionDenied, Settings, Swarm, apply_role
from redis_swarm._keys import Keys
from redis_swarm._models import TaskStatus
from redis_swarm._ops import retire_questions as retiring_ops
from redis_swarm._pipeline import load_plan
from redis_swarm._pipeline.lease import RunLease
from redis_swarm._pipeline.names import (
    bookkeeping_queues,
    lease_queue,
    lease_task_id,
    plan_owner,
)
from redis_swarm._pipeline.report import stored_plan
from redis_swarm._pipeline.retiring import retire_pipeline
from redis_swarm._protocol import Call

from ._cli import Cli
from ._handles import must
from ._invariants import check_swarm
from ._servers import RedisServer
from .test_pipeline_run import plan_text, run_plan, short_backoff, three_passes
from .test_retire import _contents
from .test_script_keys import ran  # noqa: F401 (the fixture that checks a script's keys)

K = Keys("test")
LEASE = lease_queue("audit")
RUN_1 = bookkeeping_queues("audit", 1)
RUN_2 = bookkeeping_queues("audit", 2)
BOOKKEEPING = (*RUN_1, *RUN_2, LEASE)


def _ran_twice(cli: Cli, tmp_path: Path) -> Path:
    """Pipeline "audit" (a planned pass 2 and 3: a planning task each) run to its end, then
    from the start again (run 2)."""
    path = three_passes(tmp_path)
    assert run_plan(cli, path)["done"]
    assert run_plan(cli, path, "--restart")["done"]
    return path


def _of(swarm: Swarm, queues: tuple[str, ...]) -> dict[str, dict[str, int]]:
    stats = swarm.queue_stats()
    return {q: {s: n for s, n in stats.get(q, {}).items() if n} for q in queues}


def _records(raw: redis.Redis, queues: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """The ids of the tasks of ``queues`` stored, and of their findings."""

    def of_queues(key: str) -> set[str]:
        stored: dict[str, str] = raw.hgetall(key)  # type: ignore[assignment]
        return {i for i, v in stored.items() if any(f'"queue":"{q}"' in v for q in queues)}

    return of_queues(K.tasks), of_queues(K.findings)


def test_a_pipeline_run_twice_is_freed_of_its_bookkeeping(
    cli: Cli, redis_url: str, raw: redis.Redis, tmp_path: Path
) -> None:
    path = _ran_twice(cli, tmp_path)
    with Swarm(redis_url, swarm="test") as swarm:
        before = swarm.queue_stats()
        # two cancelled leases; a completed planning task per planned pass and run
        assert _of(swarm, BOOKKEEPING) == {
            RUN_1[0]: {"completed": 2}, RUN_1[1]: {}, RUN_2[0]: {"completed": 2}, RUN_2[1]: {},
            LEASE: {"cancelled": 2},
        }  # fmt: skip
        tasks, findings = _records(raw, BOOKKEEPING)
        assert len(tasks) == 6 and len(findings) == 4
        status_before = cli.json("pipeline", "status", "audit")

        # a dry run counts, and changes nothing
        contents = _contents(raw)
        seen = retire_pipeline(swarm, "audit", older_than_s=0, dry_run=True)
        assert (seen.total("tasks"), seen.total("findings"), seen.unfinished) == (5, 4, None)
        assert _contents(raw) == contents

        done = retire_pipeline(swarm, "audit", older_than_s=0)
        assert (done.total("tasks"), done.total("findings"), done.total("open")) == (5, 4, 0)
        # the last lease task stays (the next run numbers its own from it), not as recent
        assert done.lease_kept == lease_task_id("audit", 2) and done.total("recent") == 0
        check_swarm(raw, "test")
        tasks.discard(lease_task_id("audit", 2))
        # every key of theirs gone: records, data, indexes, dedupe entries, counters
        assert _records(raw, BOOKKEEPING) == ({lease_task_id("audit", 2)}, set())
        assert not tasks & set(raw.hkeys(K.task_data))
        assert not tasks & set(raw.zrange(K.task_index, 0, -1))
        assert not findings & set(raw.zrange(K.finding_index, 0, -1))
        assert not raw.exists(*(K.findings_by("queue", q) for q in BOOKKEEPING))
        assert not [v for v in raw.hvals(K.dedupe) if v in tasks]
        after = swarm.queue_stats()
        assert all(not any(after.get(q, {}).values()) for q in BOOKKEEPING if q != LEASE)
        assert _of(swarm, (LEASE,)) == {LEASE: {"cancelled": 1}}
        # the passes' own tasks and everything else: untouched
        assert {q: s for q, s in after.items() if q not in BOOKKEEPING} == {
            q: s for q, s in before.items() if q not in BOOKKEEPING
        }
        # again: nothing left
        assert retire_pipeline(swarm, "audit", older_than_s=0).total("tasks") == 0

    # status still reads the pipeline, and says what went (the planners' costs with it)
    status = cli.json("pipeline", "status", "audit")
    assert status["done"] and status["posted"] == status_before["posted"]
    # (run 2's planning: the costs shown are run 2's, run 1's retired bookkeeping not in them)
    assert status["bookkeeping_retired"]["tasks"] == 2
    assert status["bookkeeping_retired"]["findings"] == 2
    shown = cli("pipeline", "status", "audit").stdout
    assert "swarm pipeline retire" in shown and "bookkeeping" in shown
    report = cli("pipeline", "report", "audit").stdout
    assert "(swarm pipeline retire)" in report and "## Cost" in report
    tree = cli.json("lineage", "audit")
    assert tree["kind"] == "pipeline" and tree["bookkeeping_retired"]["tasks"] == 2
    assert "(swarm pipeline retire)" in cli("lineage", "audit").stdout
    # a rerun of the retired pipeline works: it resumes run 2 (done), under a new lease
    again = run_plan(cli, path)
    assert again["done"] and again["run"] == 2
    assert again["bookkeeping_retired"] == status["bookkeeping_retired"]
    with Swarm(redis_url, swarm="test") as swarm:
        assert _of(swarm, (LEASE,)) == {LEASE: {"cancelled": 2}}
        assert swarm.get_task(lease_task_id("audit", 3)).status is TaskStatus.CANCELLED
        check_swarm(raw, "test")


def test_the_cli_says_what_went_and_what_stayed(cli: Cli, tmp_path: Path) -> None:
    _ran_twice(cli, tmp_path)
    assert cli("pipeline", "retire", "audit", "--older-than", "0", "--dry-run").stdout == (
        "would retire the bookkeeping of pipeline audit: 5 tasks, 4 findings (0 open tasks "
        "kept; the last lease task kept: the next run numbers its own from it)\n"
    )
    kept = cli("pipeline", "retire", "audit", "--older-than", "3600").stdout
    assert kept.startswith("retired the bookkeeping of pipeline audit: 0 tasks, 0 findings")
    assert "5 settled more recently kept" in kept
    out = cli.json("pipeline", "retire", "audit", "--older-than", "0")
    assert (out["tasks"], out["findings"], out["dry_run"]) == (5, 4, False)
    assert out["lease_kept"] == lease_task_id("audit", 2)
    # (the synthesizers' queues never held a task: not named)
    assert {q["queue"] for q in out["queues"]} == {RUN_1[0], RUN_2[0], LEASE}
    assert "no pipeline 'nobody'" in cli("pipeline", "retire", "nobody", expect=1).stderr
    cli("pipeline", "retire", "audit", "--older-than", "-1", expect=2)


def test_a_run_holding_the_lease_refuses_it(
    cli: Cli, redis_url: str, raw: redis.Redis, tmp_path: Path
) -> None:
    _ran_twice(cli, tmp_path)
    with Swarm(redis_url, swarm="test") as swarm:
        # a run drives the pipeline: it holds the lease (an open task of the lease queue)
        swarm.post_task(LEASE, "the lease", task_id="t-held-lease")
        held = must(swarm.claim(LEASE, worker="a-run", lease_s=1))
        contents = _contents(raw)
        with pytest.raises(Conflict, match="pipeline audit is being run") as running:
            retire_pipeline(swarm, "audit", older_than_s=0)
        assert "(a-run holds t-held-lease since " in str(running.value)
        assert str(running.value).endswith("Run this again when that run ends")
        assert _contents(raw) == contents
        time.sleep(1.1)  # its lease runs out unrenewed: a killed run's, maybe
        refused = cli("pipeline", "retire", "audit", "--older-than", "0", expect=1)
        assert "is being run" in refused.stderr
        assert "take the pipeline back from it (swarm task cancel t-held-lease)" in " ".join(
            refused.stderr.split()
        )
        # the core holds it off at every step too: a run starting after the first reads
        with pytest.raises(Conflict, match="has an open task"):
            swarm.retire_queues([RUN_1[0]], older_than_s=0, unless_open=LEASE)
        assert _of(swarm, (RUN_1[0],)) == {RUN_1[0]: {"completed": 2}}
        swarm.cancel(held.id)
        # (the last lease task stays, and the one posted by hand after it)
        assert retire_pipeline(swarm, "audit", older_than_s=0).total("tasks") == 5
        check_swarm(raw, "test")


def _lease_taken_once(
    op: Generator[Any, Any, Any], when: Callable[[], bool], other: Swarm
) -> Generator[Any, Any, Any]:
    """Drive ``op``, a run taking the pipeline's lease (through ``other``) between two of
    its script calls, once ``when`` is true."""
    request, taken = op.send(None), False
    while True:
        calls = [r for r in getattr(request, "items", (request,)) if isinstance(r, Call)]
        if calls and not taken and when():
            other.post_task(LEASE, "the lease", task_id="t-taken-lease")
            must(other.claim(LEASE, worker="a-run"))
            taken = True
        try:
            request = op.send((yield request))
        except StopIteration as stop:
            return stop.value


def test_a_run_taking_the_lease_midway_stops_the_retirement_at_its_next_step(
    cli: Cli, redis_url: str, raw: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retiring_ops, "RETIRE_CHUNK", 1)
    _ran_twice(cli, tmp_path)
    with Swarm(redis_url, swarm="test") as swarm, Swarm(redis_url, swarm="test") as other:
        op = retiring_ops.retire_queues(
            swarm._ctx, [*RUN_1, LEASE], older_than_s=0, unless_open=LEASE
        )

        def one_gone() -> bool:
            return _of(other, RUN_1)[RUN_1[0]] == {"completed": 1}

        with pytest.raises(Conflict, match="has an open task"):
            swarm._run(_lease_taken_once(op, one_gone, other))
        check_swarm(raw, "test")
        # what went before stays gone (the counters with it); the rest waits for the run
        assert one_gone() and len(_records(raw, RUN_1)[0]) == 1
        assert _of(swarm, (LEASE,)) == {LEASE: {"cancelled": 2, "claimed": 1}}


def test_an_unfinished_last_run_keeps_its_bookkeeping(
    cli: Cli, redis_url: str, raw: redis.Redis, tmp_path: Path
) -> None:
    path = _ran_twice(cli, tmp_path)
    with Swarm(redis_url, swarm="test") as swarm:
        plan = stored_plan(swarm, "audit")
        # run 2's last pass lost its synthesis: a run to be resumed
        last = swarm.get_synthesis(_synthesis_of(swarm, plan, 2))
        raw.hdel(K.syntheses, last.id)
        raw.zrem(K.synthesis_index, last.id)
        done = retire_pipeline(swarm, "audit", older_than_s=0)
        assert done.unfinished == 2
        assert {q.queue for q in done.queues} == {RUN_1[0], LEASE}
        assert _of(swarm, RUN_2) == {RUN_2[0]: {"completed": 2}, RUN_2[1]: {}}
    assert "run 2 is not finished" in cli("pipeline", "retire", "audit").stdout
    assert run_plan(cli, path)["done"]  # resumed: its planners' tasks read, not run again


def _synthesis_of(swarm: Swarm, plan: Any, index: int) -> str:
    from redis_swarm._pipeline.names import synthesis_id

    return synthesis_id(plan, index)


def test_a_finding_a_synthesis_cites_stays(
    cli: Cli, redis_url: str, raw: redis.Redis, tmp_path: Path
) -> None:
    _ran_twice(cli, tmp_path)
    with Swarm(redis_url, swarm="test") as swarm:
        _tasks, findings = _records(raw, RUN_1)
        cited = sorted(findings)[0]
        swarm.synthesize("lead", "a review", "cites a planner's list", [cited])
        done = retire_pipeline(swarm, "audit", older_than_s=0)
        assert (done.total("tasks"), done.total("findings"), done.total("cited")) == (4, 3, 1)
        assert swarm.get_finding(cited).id == cited
        assert swarm.get_task(swarm.get_finding(cited).task_id).status.value == "completed"
        check_swarm(raw, "test")


def test_a_worker_may_not_retire_a_pipeline(
    cli: Cli, redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    _ran_twice(cli, tmp_path)
    settings = Settings.from_url(redis_url, swarm="test")
    user = apply_role(settings, "worker", "retire-p-worker").user
    url = f"redis://{user.user}:{user.password}@127.0.0.1:{redis_server.port}"
    try:
        with Swarm(url, swarm="test") as worker:
            with pytest.raises(PermissionDenied):
                retire_pipeline(worker, "audit", older_than_s=0)
            assert worker.queue_stats()[LEASE]["cancelled"] == 2  # nothing went
    finally:
        client = redis_server.client()
        client.acl_deluser(user.user)
        client.close()


def test_the_script_touches_only_the_keys_it_is_given(
    ran: set[str],  # noqa: F811 (the fixture)
    server_url: str,
) -> None:
    with Swarm(server_url, swarm="test") as swarm:
        swarm.cancel(swarm.post_task(LEASE, "a lease").id)
        held = swarm.post_task("pipeline-lease.other", "another's lease")
        assert swarm.retire_queues([LEASE], older_than_s=0, unless_open=LEASE)[0].questions == 1
        with pytest.raises(Conflict):
            swarm.retire_queues([LEASE], older_than_s=0, unless_open=held.queue)
    assert "questions_retire" in ran


def test_a_retired_pass_posted_again_by_a_rerun_is_no_longer_titled_retired(
    cli: Cli, redis_url: str, tmp_path: Path
) -> None:
    """Pass 2's every task died; swarm retire took them; the rerun posts and runs it again:
    its row shows the new tasks under its own name, its note says it was posted again."""
    path = plan_text(tmp_path)
    with Swarm(redis_url, swarm="test") as swarm:
        short_backoff(swarm, path)
    cli("pipeline", "run", str(path), expect=1, env={"FAIL_ON": "again"})
    cli("retire", "audit: Pass 2")
    retired = cli("pipeline", "status", "audit").stdout
    assert "Pass 2 (retired)" in retired
    assert run_plan(cli, path)["done"]
    status = cli.json("pipeline", "status", "audit")
    two = status["passes"][1]
    assert two["posted"] == 2 and two["retired"]["posted_again"] is True
    table = cli("pipeline", "status", "audit").stdout
    assert "(retired)" not in table and "a run posted it again since" in " ".join(table.split())
    assert "## Pass 2 (retired)" not in cli("pipeline", "report", "audit").stdout


def _lease_taken_and_given_up(swarm: Swarm, path: Path, holder: str) -> str:
    """A run's lease on pipeline "audit": taken, then given up (its task cancelled)."""
    lease = RunLease(swarm, load_plan(path), holder=holder)
    assert lease.acquire() and lease.task is not None
    lease.release()
    return lease.task.id


def test_after_a_partial_retirement_two_runs_starting_together_take_one_lease(
    cli: Cli, redis_url: str, tmp_path: Path
) -> None:
    path = _ran_twice(cli, tmp_path)  # lease generations 1 and 2
    with Swarm(redis_url, swarm="test") as swarm:
        _lease_taken_and_given_up(swarm, path, "old-run")  # 3
        time.sleep(1.5)
        for holder in ("new-run-1", "new-run-2"):  # 4, 5: settled less than a second ago
            _lease_taken_and_given_up(swarm, path, holder)
        done = retire_pipeline(swarm, "audit", older_than_s=1)
        assert done.queues[-1].questions == 3  # the lease tasks of generations 1 to 3
        # two runs start together: each finds the lease task to claim before either claims
        plan = load_plan(path)
        first, second = (RunLease(swarm, plan, holder=h) for h in ("run-a", "run-b"))
        found = [first._open_task().id, second._open_task().id]
        # the same one, numbered after every one posted (none posted twice)
        assert found == [lease_task_id("audit", 6)] * 2
        assert first.acquire()
        try:
            with pytest.raises(Conflict, match="pipeline audit is being run by run-a"):
                second.acquire()
            assert swarm.queue_stats()[LEASE].get("claimed") == 1
        finally:
            first.release()


def test_an_old_runs_late_release_leaves_a_new_runs_lease_alone(
    redis_url: str, raw: redis.Redis, tmp_path: Path
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        plan = load_plan(three_passes(tmp_path))
        old = RunLease(swarm, plan, holder="old-run")
        assert old.acquire() and old.task is not None
        old._done.set()  # the old run suspended: it renews no more ...
        must(old._thread).join()
        old._thread = None
        swarm.cancel(old.task.id)  # ... and is taken over
        # its lease task retired by the core itself (its record lost with it): the next run
        # posts the same number again, a lease under the same id as the old run's
        swarm.retire_queues([LEASE], older_than_s=0, unless_open=LEASE)
        raw.hdel(K.retired_questions, LEASE)
        new = RunLease(swarm, plan, holder="new-run")
        assert new.acquire() and new.task is not None
        try:
            assert new.task.id == old.task.id and new.task.attempts == old.task.attempts
            old.release()  # the old run ends at last
            assert swarm.get_task(new.task.id).status is TaskStatus.CLAIMED
        finally:
            new.release()
        assert swarm.get_task(new.task.id).status is TaskStatus.CANCELLED


def test_a_pipeline_run_hundreds_of_times_is_retired_in_calls_the_core_takes(
    cli: Cli, redis_url: str, raw: redis.Redis, tmp_path: Path
) -> None:
    _ran_twice(cli, tmp_path)
    with Swarm(redis_url, swarm="test") as swarm:
        # its 600th run (from the start again): 1,200 queues of runs, of which two hold tasks
        text = swarm.get_context(plan_owner("audit"))
        later = text.replace("# swarm pipeline run 2\n", "# swarm pipeline run 600\n", 1)
        assert later != text
        swarm.publish_context(plan_owner("audit"), later, source="the test")
        seen = retire_pipeline(swarm, "audit", older_than_s=0, dry_run=True)
        assert (seen.run, seen.unfinished, seen.total("tasks")) == (600, 600, 5)
        assert [q.queue for q in seen.queues] == [RUN_1[0], RUN_2[0], LEASE]
        # one call per queue: what a pipeline with more queues than one call takes does
        done = retire_pipeline(swarm, "audit", older_than_s=0, queues_per_call=1)
        assert [q.queue for q in done.queues] == [RUN_1[0], RUN_2[0], LEASE]
        assert (done.total("tasks"), done.total("findings")) == (5, 4)
        check_swarm(raw, "test")


class _CountingScans(Swarm):
    """A real handle that counts the task listings read newest first (the walk through the
    task index that ``newest_lease`` falls back to)."""

    scans = 0

    def list_tasks(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("newest_first"):
            type(self).scans += 1
        return super().list_tasks(*args, **kwargs)


def test_the_next_lease_is_found_from_the_counts_without_walking_the_task_index(
    cli: Cli, redis_url: str, tmp_path: Path
) -> None:
    """In a swarm of many tasks the walk would read every task posted since the last lease:
    the counts and the retirements name the highest generation, two reads confirm it; a
    task posted to the lease queue by hand puts the counts off, and the walk still finds it."""
    path = _ran_twice(cli, tmp_path)  # lease generations 1 and 2
    with _CountingScans(redis_url, swarm="test") as swarm:
        for holder in ("a", "b", "c"):  # 3, 4, 5
            _lease_taken_and_given_up(swarm, path, holder)
        time.sleep(1.2)
        _lease_taken_and_given_up(swarm, path, "d")  # 6, settled just now
        retire_pipeline(swarm, "audit", older_than_s=1)  # 1 to 5 go, 6 is the highest kept
        swarm.post_tasks([{"queue": "busy", "description": f"t{i}"} for i in range(50)])
        _CountingScans.scans = 0
        assert RunLease(swarm, load_plan(path), holder="e")._open_task().id == lease_task_id(
            "audit", 7
        )
        assert _CountingScans.scans == 0
        swarm.post_task(LEASE, "posted here by hand")  # the counts no longer add up
        assert RunLease(swarm, load_plan(path), holder="f")._open_task().id == lease_task_id(
            "audit", 7
        )
        assert _CountingScans.scans > 0
