"""Retiring a pass (``retire_pass``) where it meets the rest of the swarm: findings a synthesis
of another pass cites stay (with their tasks), a report that comes late is swept, a task's
own keys go in the same step as the task, a queue that appears while it runs is retired too,
records stored unreadable are counted and skipped, and a report on a retired task says so.
The swarm's invariants are checked after each scenario."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest
import redis

from redis_swarm import AlreadyCompleted, NotFound, Swarm
from redis_swarm._keys import Keys
from redis_swarm._ops import retire
from redis_swarm._pipeline.lineage import lineage, lineage_text
from redis_swarm._protocol import Call

from ._cli import Cli
from ._handles import must
from ._invariants import check_swarm

K = Keys("test")


def _done(swarm: Swarm, queue: str, description: str, pass_name: str) -> tuple[str, str]:
    """A task of ``pass_name`` posted, claimed and completed: (its id, its finding's id)."""
    swarm.post_task(queue, description, pass_name=pass_name, parent="s1")
    lease = must(swarm.claim(queue, worker="w"))
    return lease.id, swarm.report(lease.id, lease.token, {"summary": description}).id


def _driven(
    op: Generator[Any, Any, Any],
    after: Callable[[Any], bool | None],
) -> Generator[Any, Any, Any]:
    """Drive ``op``, calling ``after`` with the reply of each of its script calls; it stops
    ``op`` (as a process killed then would) when ``after`` returns True. Returns what ``op``
    returned, None when stopped."""
    request = op.send(None)
    while True:
        reply = yield request
        if isinstance(request, Call) and after(reply):
            op.close()
            return None
        try:
            request = op.send(reply)
        except StopIteration as stop:
            return stop.value


def _phase(reply: Any) -> str:
    value = reply[1] if len(reply) > 1 else b""
    return value.decode() if isinstance(value, bytes) else str(value)


def test_a_finding_another_pass_cites_stays_with_its_task(swarm: Swarm, raw: redis.Redis) -> None:
    cited_task, cited = _done(swarm, "q", "a: cited", "A")
    # a task whose superseded finding (reported after it completed) is cited
    late_task, _current = _done(swarm, "q", "a: reported twice", "A")
    with pytest.raises(AlreadyCompleted) as refused:
        swarm.report(late_task, None, {"summary": "again, later"})
    late_cited = must(refused.value.finding_id)
    swarm.post_task("q", "a: cancelled", pass_name="A")
    swarm.cancel(must(swarm.claim("q", worker="w")).id)
    own_task, own = _done(swarm, "q", "a: only A cites it", "A")
    _b_task, b_finding = _done(swarm, "q", "b", "B")
    by_b = swarm.synthesize(
        "s1", "B", "B builds on A", [cited, late_cited, b_finding], across_passes=True
    )
    by_a = swarm.synthesize("s1", "A", "what A found", [own, cited])

    seen = swarm.retire_pass("A", dry_run=True)
    done = swarm.retire_pass("A")

    assert (done.tasks, done.findings, done.cited) == (2, 1, 2)  # own_task and the cancelled
    assert (seen.tasks, seen.findings, seen.cited) == (done.tasks, done.findings, done.cited)
    check_swarm(raw, "test")
    assert {t.id for t in swarm.list_tasks(pass_name="A").items} == {cited_task, late_task}
    assert swarm.get_finding(cited).id == cited
    tree = "\n".join(lineage_text(lineage(swarm, by_b.id)))
    assert "(missing)" not in tree and "retired with" not in tree
    tree = "\n".join(lineage_text(lineage(swarm, by_a.id)))
    assert "(retired with pass A on " in tree and "(missing)" not in tree
    assert swarm.pass_stats("A")["completed"] == 2  # the pass stays, with what is cited
    with pytest.raises(NotFound):
        swarm.get_task(own_task)


def test_a_synthesis_stored_while_it_runs_keeps_what_it_cites(
    raw: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        monkeypatch.setattr(retire, "RETIRE_CHUNK", 2)
        made = [_done(swarm, "q", f"a{i}", "A") for i in range(5)]
        cites = made[4][1]

        def synthesize(reply: Any) -> None:
            if not raw.hexists(K.syntheses, "s-late"):
                swarm.synthesize(
                    "s1", "B", "cites A's last", [cites], synthesis_id="s-late", across_passes=True
                )

        done = swarm._run(_driven(retire.retire_pass(swarm._ctx, "A"), synthesize))
        assert (done.tasks, done.cited) == (4, 1)
        assert swarm.get_finding(cites).id == cites
        check_swarm(raw, "test")


def test_a_late_report_is_swept_and_a_rerun_sweeps_what_a_killed_run_left(
    raw: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        monkeypatch.setattr(retire, "RETIRE_CHUNK", 4)
        leases = []
        for i in range(7):
            swarm.post_task("q", f"t{i}", pass_name="P")
            lease = must(swarm.claim("q", worker="w"))
            swarm.report(lease.id, lease.token, {"summary": f"f{i}"})
            leases.append(lease)
        late: list[str] = []

        def report_late(lease: Any) -> None:
            with pytest.raises(AlreadyCompleted) as refused:
                swarm.report(lease.id, lease.token, {"summary": "late"})
            late.append(must(refused.value.finding_id))

        # a report after the findings phase passed its task, before the task went
        def once_in_tasks(reply: Any) -> None:
            if not late and _phase(reply) == "tasks":
                report_late(leases[-1])

        done = swarm._run(_driven(retire.retire_pass(swarm._ctx, "P"), once_in_tasks))
        assert (done.tasks, done.findings) == (7, 8)
        assert not raw.hexists(K.findings, late[0])
        check_swarm(raw, "test")

        # the same, the run killed before its sweep: the next run sweeps the finding left
        for i in range(3):
            swarm.post_task("q", f"u{i}", pass_name="R")
            lease = must(swarm.claim("q", worker="w"))
            swarm.report(lease.id, lease.token, {"summary": f"g{i}"})
            leases.append(lease)
        late.clear()

        def killed_before_the_sweep(reply: Any) -> bool:
            if not late and _phase(reply) == "tasks":
                report_late(leases[-1])
            return _phase(reply) == "sweep"

        assert (
            swarm._run(_driven(retire.retire_pass(swarm._ctx, "R"), killed_before_the_sweep))
            is None
        )
        assert raw.hexists(K.findings, late[0])  # left by the killed run, its task gone
        assert "R" not in [p.name for p in swarm.status().passes]
        again = swarm.retire_pass("R")
        assert (again.tasks, again.findings) == (0, 1)
        assert not raw.hexists(K.findings, late[0])
        check_swarm(raw, "test")


def test_a_tasks_own_keys_go_in_the_step_that_removes_it(
    raw: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        monkeypatch.setattr(retire, "RETIRE_CHUNK", 2)
        ids = []
        for i in range(5):
            task = swarm.post_task("q", f"h{i}", pass_name="H")
            swarm.cancel(task.id)
            swarm.set_webhook(task.id, "https://example.com/h")
            raw.zadd(K.asked(task.id), {f"t-question-{i}": 1})
            ids.append(task.id)

        def leaked() -> list[str]:
            return [
                tid for tid in ids
                if not raw.hexists(K.tasks, tid) and raw.exists(K.webhooks(tid), K.asked(tid))
            ]  # fmt: skip

        # killed after each step in turn: no task gone keeps a key of its own
        for steps in range(1, 6):
            made = [0]

            def kill(reply: Any, made: list[int] = made, steps: int = steps) -> bool:
                made[0] += 1
                return made[0] == steps

            swarm._run(_driven(retire.retire_pass(swarm._ctx, "H"), kill))
            assert leaked() == [], steps
            check_swarm(raw, "test")
        swarm.retire_pass("H")
        assert not any(raw.exists(K.webhooks(tid), K.asked(tid)) for tid in ids)
        check_swarm(raw, "test")


def test_a_queue_that_appears_while_it_runs_is_retired_too(
    raw: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        monkeypatch.setattr(retire, "RETIRE_CHUNK", 4)
        for i in range(6):
            _done(swarm, "q", f"t{i}", "P")

        def retired(dry_run: bool, queue: str) -> Any:
            """A run during whose first step a task of ``queue`` (new) is done in the pass."""
            posted: list[str] = []

            def in_a_new_queue(reply: Any) -> None:
                if not posted:
                    posted.append(queue)
                    _done(swarm, queue, "late", "P")

            op = retire.retire_pass(swarm._ctx, "P", dry_run=dry_run)
            return swarm._run(_driven(op, in_a_new_queue))

        seen = retired(True, "newq1")
        assert (seen.tasks, seen.findings, seen.kept) == (7, 7, 0)
        done = retired(False, "newq2")
        assert (done.tasks, done.findings, done.kept) == (8, 8, 0)
        assert "P" not in [p.name for p in swarm.status().passes]
        check_swarm(raw, "test")


def test_records_stored_unreadable_are_counted_and_skipped(
    swarm: Swarm, raw: redis.Redis, cli: Cli
) -> None:
    tasks = [_done(swarm, "q", f"t{i}", "P") for i in range(4)]
    bad_task, bad_finding = tasks[0][0], tasks[1][1]
    saved = raw.hget(K.tasks, bad_task), raw.hget(K.findings, bad_finding)
    raw.hset(K.tasks, bad_task, "not json{")
    raw.hset(K.findings, bad_finding, "[1, 2")

    done = swarm.retire_pass("P")
    # the two unreadable records, and the task whose finding is one of them
    assert (done.tasks, done.findings, done.corrupt) == (2, 2, 3)
    assert cli("retire", "P", "--dry-run").stdout == (
        "would retire pass P: 0 tasks, 0 findings (0 open tasks kept; 3 records stored "
        "unreadable kept: swarm doctor names them)\n"
    )
    raw.hset(K.tasks, bad_task, saved[0])
    raw.hset(K.findings, bad_finding, saved[1])
    again = swarm.retire_pass("P")
    assert (again.tasks, again.findings, again.corrupt) == (2, 2, 0)
    check_swarm(raw, "test")


def test_a_report_on_a_retired_task_says_it_was_retired(swarm: Swarm, raw: redis.Redis) -> None:
    task = swarm.post_task("q", "cancelled while worked on", pass_name="P")
    lease = must(swarm.claim("q", worker="w"))
    swarm.cancel(task.id)
    swarm.retire_pass("P")
    with pytest.raises(NotFound, match=f'task {task.id} was retired with its pass "P" on '):
        swarm.report(lease.id, lease.token, {"summary": "too late"})
    check_swarm(raw, "test")
