"""Walk 58: a big pass is settled at once. ``cancel_tasks`` cancels every open task of a pass
or queue and ``requeue_tasks`` puts its dead tasks back, hundreds per round trip, each as
one task_update (its counters, its event), so that ``swarm retire`` can follow; the CLI's
``swarm task cancel --pass`` / ``swarm task requeue --pass``; a worker's user is refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import (
    Conflict,
    NotFound,
    PermissionDenied,
    Settings,
    Swarm,
    ValidationError,
    apply_role,
)
from redis_swarm._protocol import Batch, Call, Cmd

from ._cli import Cli
from ._servers import RedisServer
from ._spying import Spying

PASS = "Pass 1: Signal Capture"
N = 2_000


def _mixed_pass(swarm: Swarm) -> dict[str, Any]:
    """2,000 tasks of PASS in two queues, in every state: pending, delayed, claimed,
    completed, dead; and a task of another pass in the same queue, which stays open."""
    specs: list[dict[str, Any]] = [
        {"queue": "q1" if i % 2 else "q2", "description": f"look at {i}", "pass_name": PASS}
        for i in range(N - 100)
    ]
    specs += [
        {"queue": "q1", "description": f"later {i}", "pass_name": PASS, "delay_s": 3600}
        for i in range(100)
    ]
    swarm.post_tasks(specs)
    other = swarm.post_task("q1", "another pass's", pass_name="Pass 2")
    claimed = swarm.claim("q2", worker="w1", n=30)
    for t in claimed[:10]:
        swarm.report(t.id, t.token, {"summary": "done"}, worker="w1")
    for t in claimed[10:15]:
        swarm.fail(t.id, t.token, "broken", retry=False)
    return {"other": other, "completed": 10, "dead": 5, "claimed": 15}


def test_a_pass_of_2000_in_mixed_states_is_cancelled_in_a_few_round_trips(swarm: Swarm) -> None:
    made = _mixed_pass(swarm)
    before = swarm.pass_stats(PASS)
    assert before["pending"] and before["delayed"] == 100 and before["claimed"] == 15
    open_n = before["pending"] + before["delayed"] + before["claimed"]
    last = swarm.last_event_id()

    counted = swarm.cancel_tasks(pass_name=PASS, dry_run=True)  # counts, changes nothing
    assert (counted.cancelled, counted.settled, counted.skipped) == (open_n, 15, 0)
    assert counted.dry_run and swarm.pass_stats(PASS) == before
    assert swarm.last_event_id() == last

    done = swarm.cancel_tasks(pass_name=PASS)
    assert (done.cancelled, done.settled, done.skipped) == (open_n, 15, 0), done
    assert done.round_trips <= 8, done  # (2,000 tasks: 500 per round trip)
    after = swarm.pass_stats(PASS)
    assert after["pending"] == after["delayed"] == after["claimed"] == 0
    assert after["cancelled"] == open_n and after["completed"] == 10 and after["dead"] == 5
    assert swarm.get_task(made["other"].id).status.value == "pending"  # another pass's
    assert swarm.check_counters().ok  # the O(1) counters match the sets (swarm doctor)
    stats = swarm.queue_stats()
    assert stats["q1"]["pending"] == 1 and stats["q2"]["claimed"] == 0
    events = swarm.events(since=last, types="task.cancelled", limit=10_000)
    assert len(events) == open_n
    assert len({e.fields["task"] for e in events}) == open_n

    again = swarm.cancel_tasks(pass_name=PASS)  # nothing open: nothing cancelled
    assert (again.cancelled, again.settled) == (0, N)
    retired = swarm.retire_pass(PASS)  # refused before: open tasks
    assert retired.tasks == N and retired.kept == 0


def test_a_queue_and_a_status_narrow_what_is_cancelled(swarm: Swarm) -> None:
    _mixed_pass(swarm)
    delayed = swarm.cancel_tasks(queue="q1", status="delayed")
    assert delayed.cancelled == 100 and delayed.statuses == ("delayed",)
    assert swarm.queue_stats()["q1"]["delayed"] == 0
    in_q2 = swarm.cancel_tasks(pass_name=PASS, queue="q2", status=["claimed"])
    assert in_q2.cancelled == 15
    assert swarm.queue_stats()["q2"]["claimed"] == 0 and swarm.queue_stats()["q2"]["pending"]
    assert swarm.queue_stats()["q1"]["pending"] == (N - 100) // 2 + 1  # (and Pass 2's)
    assert swarm.check_counters().ok


def test_dead_tasks_are_requeued_by_pass(swarm: Swarm) -> None:
    swarm.post_tasks(
        [
            {"queue": "dq", "description": f"d{i}", "pass_name": PASS, "max_attempts": 1}
            for i in range(40)
        ]
    )
    other = swarm.post_task("dq", "another pass's", pass_name="Pass 2", max_attempts=1)
    for t in swarm.claim("dq", worker="w1", n=41):
        swarm.fail(t.id, t.token, "broken", retry=False)
    assert swarm.queue_stats()["dq"]["dead"] == 41
    last = swarm.last_event_id()
    counted = swarm.requeue_tasks(pass_name=PASS, dry_run=True)
    assert counted.requeued == 40 and swarm.queue_stats()["dq"]["dead"] == 41
    done = swarm.requeue_tasks(pass_name=PASS)
    assert (done.requeued, done.not_dead, done.skipped) == (40, 0, 0), done
    assert swarm.pass_stats(PASS)["pending"] == 40 and swarm.pass_stats(PASS)["dead"] == 0
    assert swarm.get_task(other.id).status.value == "dead"
    assert swarm.check_counters().ok
    assert len(swarm.events(since=last, types="task.requeued", limit=1000)) == 40
    task = swarm.get_task(swarm.list_tasks(pass_name=PASS, limit=1).items[0].id)
    assert task.failures == 0  # (fresh budgets, as requeue_dead gives)


def test_neither_a_pass_nor_a_queue_is_refused_in_words(swarm: Swarm) -> None:
    swarm.post_task("q1", "one", pass_name=PASS)
    for call in (swarm.cancel_tasks, swarm.requeue_tasks):
        with pytest.raises(ValidationError, match=r"give a pass \(pass_name\), a queue, or both"):
            call()
    with pytest.raises(NotFound, match="nothing to cancel"):
        swarm.cancel_tasks(pass_name="Pass 9")
    with pytest.raises(NotFound, match="no task was ever posted to queue"):
        swarm.cancel_tasks(queue="nope")
    with pytest.raises(ValidationError, match="requeue them"):
        swarm.cancel_tasks(queue="q1", status="dead")
    assert swarm.pass_stats(PASS)["pending"] == 1


def test_retire_refused_names_the_bulk_cancel(swarm: Swarm) -> None:
    swarm.post_task("q1", "open", pass_name=PASS)
    with pytest.raises(Conflict) as info:
        swarm.retire_pass(PASS)
    assert f'swarm task cancel --pass "{PASS}"' in str(info.value)


class _Counting(Spying):
    """A Swarm that counts the round trips of its operations."""

    trips = 0

    def seen(self, request: Any) -> None:
        if isinstance(request, Batch | Call | Cmd):
            self.trips += 1


def test_the_round_trips_are_bounded_as_said(redis_url: str) -> None:
    swarm = _Counting(redis_url, swarm="test")
    with swarm:
        swarm.post_tasks(
            [{"queue": "q1", "description": f"{i}", "pass_name": PASS} for i in range(N)]
        )
        swarm.trips = 0
        done = swarm.cancel_tasks(pass_name=PASS)
        assert done.cancelled == N and swarm.trips == done.round_trips <= 7


def _cancels(request: Any) -> bool:
    """Whether ``request`` is a batch of task changes."""
    items = request.items if isinstance(request, Batch) else ()
    return any(isinstance(i, Call) and i.script == "task_update" for i in items)


class _Racing(Spying):
    """A Swarm whose bulk cancel meets a task completed by its worker after the cancel read
    its record, just before the cancels are sent (``racer`` completes it)."""

    racer: Any = None

    def seen(self, request: Any) -> None:
        if self.racer is not None and _cancels(request):
            racer, self.racer = self.racer, None
            racer()


def test_a_task_completed_between_the_read_and_its_cancel_is_counted_settled(
    redis_url: str,
) -> None:
    swarm = _Racing(redis_url, swarm="test")
    with swarm, Swarm(redis_url, swarm="test") as worker:
        swarm.post_tasks(
            [{"queue": "q1", "description": f"{i}", "pass_name": PASS} for i in range(10)]
        )
        claimed = worker.claim("q1", worker="w1", n=10)
        late = claimed[3]
        swarm.racer = lambda: worker.report(late.id, late.token, {"summary": "s"}, worker="w1")
        last = swarm.last_event_id()
        done = swarm.cancel_tasks(pass_name=PASS)
        assert (done.cancelled, done.settled, done.skipped) == (9, 1, 0), done
        assert swarm.get_task(late.id).status.value == "completed"
        assert swarm.pass_stats(PASS)["cancelled"] == 9 and swarm.check_counters().ok
        assert len(swarm.events(since=last, types="task.cancelled")) == 9


def test_a_task_claimed_between_the_read_and_a_pending_cancel_keeps_its_lease(
    redis_url: str,
) -> None:
    """``status="pending"`` narrows what is cancelled at the moment of the cancel, not only
    when the records were read: a task claimed in between keeps its worker's lease."""
    swarm = _Racing(redis_url, swarm="test")
    with swarm, Swarm(redis_url, swarm="test") as worker:
        swarm.post_tasks(
            [{"queue": "q1", "description": f"{i}", "pass_name": PASS} for i in range(10)]
        )
        taken: list[Any] = []
        swarm.racer = lambda: taken.append(worker.claim("q1", worker="w1"))
        done = swarm.cancel_tasks(pass_name=PASS, status="pending")
        (lease,) = taken
        assert (done.cancelled, done.skipped) == (9, 1), done
        assert swarm.get_task(lease.id).status.value == "claimed"
        worker.report(lease.id, lease.token, {"summary": "kept"}, worker="w1")
        assert swarm.check_counters().ok


def test_the_changes_answer_without_the_tasks_data(redis_url: str) -> None:
    """Each cancel's reply held its task's whole data (a round trip of 500 tasks of 1 MiB
    data: 500 MiB sent back and thrown away)."""
    with Swarm(redis_url, swarm="test") as swarm:
        big = {"blob": "x" * 100_000}
        swarm.post_tasks(
            [{"queue": "q1", "description": f"{i}", "pass_name": PASS, "data": big}
             for i in range(20)]
        )  # fmt: skip
        before = int(swarm.redis.info("stats")["total_net_output_bytes"])
        assert swarm.cancel_tasks(pass_name=PASS).cancelled == 20
        sent = int(swarm.redis.info("stats")["total_net_output_bytes"]) - before
        assert sent < 200_000, f"{sent:,} bytes answered for 20 cancels"


@pytest.fixture
def roles(acl_server: RedisServer) -> Iterator[dict[str, Swarm]]:
    admin = acl_server.client()
    admin.flushall()
    admin.close()
    settings = Settings.from_url(acl_server.url, swarm="bulk")
    handles = {}
    for role in ("worker", "shard"):
        user = apply_role(settings, role, f"bulk-{role}").user
        url = f"redis://{user.user}:{user.password}@127.0.0.1:{acl_server.port}"
        handles[role] = Swarm(url, swarm="bulk")
    yield handles
    for handle in handles.values():
        handle.close()


def test_a_worker_user_cannot_wipe_a_pass(roles: dict[str, Swarm]) -> None:
    shard, worker = roles["shard"], roles["worker"]
    shard.post_tasks([{"queue": "q1", "description": f"{i}", "pass_name": PASS} for i in range(20)])
    for call in (
        lambda: worker.cancel_tasks(pass_name=PASS),
        lambda: worker.cancel_tasks(queue="q1", dry_run=True),
        lambda: worker.requeue_tasks(pass_name=PASS),
    ):
        with pytest.raises(PermissionDenied) as info:
            call()
        said = str(info.value)
        assert "shard or coordinator" in said and "another swarm" not in said, said
    assert shard.pass_stats(PASS)["pending"] == 20  # nothing changed
    assert shard.cancel_tasks(pass_name=PASS).cancelled == 20  # a shard's decision


def test_the_cli_counts_asks_cancels_and_retire_follows(
    cli: Cli, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.post_tasks(
            [{"queue": "q1", "description": f"{i}", "pass_name": PASS} for i in range(600)]
        )
        dead = swarm.post_task("qd", "die", pass_name=PASS, max_attempts=1)
        dying = swarm.claim("qd", worker="w1")
        assert dying is not None and dying.id == dead.id and dying.token is not None
        swarm.fail(dying.id, dying.token, "broken", retry=False)
        counted = cli("task", "cancel", "--pass", PASS, "--dry-run")
        assert "would cancel 600 open tasks" in counted.stdout, counted
        assert swarm.pass_stats(PASS)["pending"] == 600
        # On a terminal it asks first: no, and nothing changes
        monkeypatch.setattr("redis_swarm.cli._task_work._asks", lambda app, yes: not yes)
        refused = cli("task", "cancel", "--pass", PASS, input="n\n", expect=1)
        assert (
            "cancel 600 open tasks" in refused.stderr and "nothing was cancelled" in refused.stderr
        )
        assert swarm.pass_stats(PASS)["pending"] == 600
        done = cli.json("task", "cancel", "--pass", PASS, "--yes")
        assert (done["cancelled"], done["settled"], done["skipped"]) == (600, 1, 0)
        assert swarm.check_counters().ok
        requeued = cli("task", "requeue", "--pass", PASS, "--yes")
        assert "requeued 1 dead task" in requeued.stdout, requeued
        assert "cancelled 1 open task" in cli("task", "cancel", "--pass", PASS, "--yes").stdout
        assert "retired pass" in cli("retire", PASS).stdout
    usage = cli("task", "cancel", expect=2)
    assert "--pass PASS and/or --queue QUEUE" in usage.stderr
    both = cli("task", "cancel", "t-1", "--pass", PASS, expect=2)
    assert "not both" in both.stderr
