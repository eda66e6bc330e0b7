"""A renewal that finds its agent's lease lost stops the agent unless the pool has evidence
that the task's new lease is an orphan of its own: a claim of one of its slots whose reply was
lost (it raised ``ConnectionFailed``; a paused server runs the claims it received while paused
when it wakes up, leasing again the task whose lease ran out meanwhile), and no slot of the
pool took the task as its work since. Then the agent's report, with its old token, is the
first of an open task and completes it (docs/tasks.md). A worker id alone is no evidence:
another process may claim under the same prefix (``swarm serve``'s default), and a task
requeued and leased again by a slot of the pool is that slot's, or handed to the running
agent's slot (``PoolState._adopted``). Each would have run the task twice.

The outage itself is played without one: the test runs the lease out, and the pool's handle
makes the claim the server would have replayed, then raises ``ConnectionFailed`` as a lost
reply does. Leases of 30 s (renewed every 10 s) leave a loaded box ample time to set each
scene before the pool's first renewal."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import AlreadyCompleted, ConnectionFailed, Swarm, Task
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions
from redis_swarm._runner.lease_renewal import LeaseRenewal

from ._invariants import check_swarm
from ._raw import raw_client
from .test_runner_outages import WAITING_AGENT  # (logs its task, waits for 'go')

PY = sys.executable
SWARM = "lease-lost"
QUEUE = "work"
POOL = "pool"  # the pool's worker prefix: its slots claim as pool-1, pool-2
LEASE_S = 30  # renewed every 10 s
RUNS_ON = "its agent runs on"
CAME_BACK = "came back to this pool"


class _LosingReplies(Swarm):
    """The pool's handle: once ``lose`` is set, the next claim that leases a task runs in
    Redis and then raises ``ConnectionFailed``, as a claim whose reply was lost does; the
    leases it took are kept in ``unseen``."""

    def __init__(self, url: str) -> None:
        super().__init__(url, swarm=SWARM)
        self.lose = threading.Event()
        self.unseen: list[Task] = []

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        leased = super().claim(*args, **kwargs)
        if leased and self.lose.is_set():
            self.lose.clear()
            self.unseen.extend(leased if isinstance(leased, list) else [leased])
            raise ConnectionFailed("the claim's reply was lost (the test's)")
        return leased


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    handle = Swarm(redis_url, swarm=SWARM)
    yield handle
    handle.close()


def _wait(until: Callable[[], object], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _pool(handle: Swarm, tmp_path: Path, notes: list[str], **options: Any) -> Runner:
    script = tmp_path / "agent.py"
    script.write_text(WAITING_AGENT)
    settings = {"concurrency": 2, "lease_s": LEASE_S, "poll_s": 0.2, "worker": POOL, **options}
    return Runner(
        handle,
        RunOptions(queues=(QUEUE,), command=f"{PY} {script} {tmp_path}", **settings),
        on_progress=notes.append,
    )


class _Running:
    """Runs ``pool`` in a thread; on leaving, lets its agents go and drains it."""

    def __init__(self, pool: Runner, tmp_path: Path) -> None:
        self.pool, self.tmp_path = pool, tmp_path
        self.thread = threading.Thread(target=pool.run)

    def __enter__(self) -> _Running:
        self.thread.start()
        return self

    def first_token(self) -> str:
        token = self.tmp_path / "token"
        _wait(lambda: token.exists() and token.read_text(), f"no run: {self.pool.errors}")
        return token.read_text()

    def finish(self, outcomes: int) -> None:
        """Let the agents go; drain once ``outcomes`` runs ended."""
        (self.tmp_path / "go").touch()
        _wait(lambda: len(self.pool.outcomes) >= outcomes, f"runs: {self.pool.outcomes}")
        self.pool.drain()
        self.thread.join(20)

    def __exit__(self, *exc: object) -> None:
        self.pool.abort()
        self.thread.join(20)
        assert not self.thread.is_alive()

    def runs(self) -> list[str]:
        return (self.tmp_path / "runs.log").read_text().split()


def _cut(swarm: Swarm, task: Task, token: str) -> None:
    """Let the lease of ``token`` run out (as through an outage)."""
    swarm.renew(task.id, token, lease_s=0.05)
    time.sleep(0.2)


def test_a_lease_taken_by_a_claim_of_the_pool_whose_reply_was_lost_keeps_the_agent(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """Slot 2's claim leased the task again (pool-2, attempt 2) and raised ConnectionFailed:
    no slot holds that lease. The renewal of slot 1 (the old token) is refused, yet its
    agent runs on and its report completes the task, once; nothing runs it again."""
    notes: list[str] = []
    task = swarm.post_task(QUEUE, "the one task")
    handle = _LosingReplies(redis_url)
    with handle, _Running(_pool(handle, tmp_path, notes), tmp_path) as run:
        token = run.first_token()
        handle.lose.set()
        _cut(swarm, task, token)
        _wait(lambda: handle.unseen, f"slot 2 never claimed: {run.pool.errors}")
        assert [(t.id, t.attempts, t.worker) for t in handle.unseen] == [(task.id, 2, f"{POOL}-2")]
        _wait(lambda: [n for n in notes if RUNS_ON in n] or run.pool.outcomes, "no renewal")
        run.finish(1)
        assert run.runs() == [task.id]  # run once
    pool = run.pool
    assert [(o.status, o.worker) for o in pool.outcomes] == [(OutcomeStatus.COMPLETED, f"{POOL}-1")]
    stored = swarm.get_task(task.id)
    assert stored.status == "completed" and stored.attempts == 2
    findings = swarm.findings().items
    assert [(f.task_id, f.superseded) for f in findings] == [(stored.id, False)]
    kept = [n for n in notes if RUNS_ON in n]
    assert len(kept) == 1 and f"{POOL}-2 leased it again (attempt 2)" in kept[0], notes
    check_swarm(raw_client(redis_url), SWARM)


def test_a_lease_taken_by_another_process_under_the_same_prefix_stops_the_agent(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """Two pools, two processes' worth, with one prefix (``swarm serve`` names every process
    of an owner alike): A's lease runs out and B's slot same-1 claims and runs the task. A's
    renewal sees same-1, its own slot's name, but A never lost a claim: B runs the task, so
    A's agent is stopped (before: both ran it and both reported)."""
    task = swarm.post_task(QUEUE, "the one task")
    a_notes: list[str] = []
    b_notes: list[str] = []
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    pool_a = _pool(swarm, a_dir, a_notes, concurrency=1, max_tasks=1, worker="same")
    with _Running(pool_a, a_dir) as a:
        token = a.first_token()
        _cut(swarm, task, token)
        with Swarm(redis_url, swarm=SWARM) as other:
            pool_b = _pool(other, b_dir, b_notes, concurrency=1, max_tasks=1, worker="same")
            with _Running(pool_b, b_dir) as b:
                b.first_token()  # B runs it (attempt 2)
                _wait(
                    lambda: pool_a.outcomes or [n for n in a_notes if RUNS_ON in n],
                    f"A never renewed: {pool_a.errors}",
                )
                b.finish(1)
        a.finish(1)
    (a_outcome,) = pool_a.outcomes
    assert a_outcome.status is OutcomeStatus.LOST, a_outcome
    assert a_outcome.detail == (
        "stopped the agent: its lease ran out and same-1 leased it again (attempt 2)"
    )
    assert [o.status for o in pool_b.outcomes] == [OutcomeStatus.COMPLETED]
    findings = swarm.findings().items
    assert [(f.task_id, f.superseded) for f in findings] == [(task.id, False)]
    check_swarm(raw_client(redis_url), SWARM)


def test_a_task_requeued_while_its_agent_runs_is_not_run_twice(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """The agent's lease runs out and the task dies of it (``max_abandons=1``); it is
    requeued (its abandons counted from 0 again) and the pool's idle slot 2 leases it. That
    lease goes to slot 1, whose agent still runs: the task runs once, its report completing
    it (before: slot 2 ran it again while slot 1's renewal, seeing pool-2, kept its agent)."""
    notes: list[str] = []
    task = swarm.post_task(QUEUE, "the one task", max_abandons=1)
    with _Running(_pool(swarm, tmp_path, notes), tmp_path) as run:
        token = run.first_token()
        _cut(swarm, task, token)
        swarm.reap()  # (or slot 2's claims did)
        assert swarm.get_task(task.id).status == "dead"
        swarm.requeue_dead(task.id)
        _wait(lambda: swarm.get_task(task.id).attempts == 2, "slot 2 never leased it")
        _wait(
            lambda: [n for n in notes if CAME_BACK in n] or len(run.runs()) > 1,
            f"no word of the new lease: {notes}",
        )
        time.sleep(0.5)  # (time for a second run to start, if the pool started one)
        run.finish(1)
        assert run.runs() == [task.id]  # run once
    assert [o.status for o in run.pool.outcomes] == [OutcomeStatus.COMPLETED], run.pool.outcomes
    stored = swarm.get_task(task.id)
    assert stored.status == "completed" and stored.attempts == 2
    findings = swarm.findings().items
    assert [(f.task_id, f.superseded) for f in findings] == [(task.id, False)]
    check_swarm(raw_client(redis_url), SWARM)


def test_a_lease_taken_by_another_worker_still_stops_the_agent(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """Another worker leased the task whose lease ran out: it runs the task now, so the
    pool's agent is stopped at its next renewal, unreported, the holder named once."""
    notes: list[str] = []
    task = swarm.post_task(QUEUE, "the one task")
    # (max_tasks=1: slot 2 stops at once, its claims idle)
    with _Running(_pool(swarm, tmp_path, notes, max_tasks=1), tmp_path) as run:
        _cut(swarm, task, run.first_token())
        with Swarm(redis_url, swarm=SWARM) as other:
            again = other.claim([QUEUE], worker="someone-else", lease_s=60)
        assert again is not None and again.id == task.id and again.attempts == 2, again
        _wait(lambda: run.pool.outcomes, f"the pool never renewed: {run.pool.errors}")
        run.finish(1)
    (outcome,) = run.pool.outcomes
    assert outcome.status is OutcomeStatus.LOST, outcome
    assert outcome.detail == (
        "stopped the agent: its lease ran out and someone-else leased it again (attempt 2)"
    )
    stored = swarm.get_task(task.id)
    assert stored.status == "claimed" and stored.worker == "someone-else"
    assert not swarm.findings().items and not [n for n in notes if RUNS_ON in n]


# --- the evidence, driven through the pool's parts


def test_only_a_claim_lost_since_the_task_was_taken_makes_a_lease_an_orphan(
    swarm: Swarm, tmp_path: Path
) -> None:
    notes: list[str] = []
    pool = _pool(swarm, tmp_path, notes)
    swarm.post_task(QUEUE, "first")
    swarm.post_task(QUEUE, "second")
    pool._claim_unanswered(f"{POOL}-2")  # before the task was taken: no evidence
    first = swarm.claim([QUEUE], worker=f"{POOL}-1", lease_s=30)
    assert first is not None and pool._adopted(first)
    assert not pool._orphan_lease(first, f"{POOL}-2")
    pool._claim_unanswered(f"{POOL}-2")
    assert pool._orphan_lease(first, f"{POOL}-2")
    assert not pool._orphan_lease(first, f"{POOL}-1")  # (no claim of pool-1 lost)
    assert not pool._orphan_lease(first, "someone-else")
    pool._let_go(first)  # another slot may take the task as its work now
    second = swarm.claim([QUEUE], worker=f"{POOL}-1", lease_s=30)
    assert second is not None and pool._adopted(second)
    assert not pool._orphan_lease(first, f"{POOL}-2")  # not the pool's work any longer


# --- the renewal's rule, driven through its parts


class _Renewal:
    """A ``LeaseRenewal`` of a task claimed as pool-1 (a lease of 30 s), run when asked;
    ``orphans``: the worker ids whose lease of it the pool has evidence is an orphan."""

    def __init__(self, swarm: Swarm, **post: Any) -> None:
        self.swarm = swarm
        swarm.post_task(QUEUE, "the task", **post)
        claimed = swarm.claim([QUEUE], worker=f"{POOL}-1", lease_s=30)
        assert claimed is not None
        self.task = claimed
        self.lost: list[str] = []
        self.kept: list[str] = []
        self.orphans: set[str] = set()
        self.renewal = LeaseRenewal(
            swarm,
            claimed,
            30,
            self.lost,
            token=lambda: claimed.token,
            on_outage=lambda exc: pytest.fail(f"no outage here: {exc}"),
            on_back=lambda: None,
            orphaned=self.orphans.__contains__,
            on_kept=self.kept.append,
        )

    def run_out(self) -> None:
        """Let the lease run out (as through an outage)."""
        self.swarm.renew(self.task.id, self.task.token, lease_s=0.05)
        time.sleep(0.1)

    def __call__(self) -> str | None:
        self.renewal._due = 0.0  # due now
        return self.renewal()


def test_an_orphan_lease_keeps_the_agent_and_its_report_counts(swarm: Swarm) -> None:
    """The renewal refused, the task leased to pool-2 by a claim whose reply was lost: the
    agent runs on, told once; its report with the old token completes the task (the core
    takes the first report of an open task), and the orphan lease's token, stale now,
    cannot overwrite that completion."""
    renew = _Renewal(swarm)
    renew.run_out()
    orphan = swarm.claim([QUEUE], worker=f"{POOL}-2", lease_s=30)
    assert orphan is not None and orphan.id == renew.task.id and orphan.attempts == 2
    renew.orphans.add(f"{POOL}-2")
    assert renew() is None and renew() is None
    assert not renew.lost
    assert len(renew.kept) == 1 and "attempt 2" in renew.kept[0], renew.kept
    first = swarm.report(renew.task.id, renew.task.token, {"summary": "the agent's"})
    assert not first.superseded
    with pytest.raises(AlreadyCompleted):
        swarm.report(orphan.id, orphan.token, {"summary": "stale"})
    stored = swarm.get_task(renew.task.id)
    assert stored.status == "completed" and stored.finding_id == first.id


def test_a_lease_of_the_pools_own_name_without_evidence_stops_the_agent(swarm: Swarm) -> None:
    renew = _Renewal(swarm)
    renew.run_out()
    assert swarm.claim([QUEUE], worker=f"{POOL}-2", lease_s=30) is not None
    why = renew()
    assert why == f"its lease ran out and {POOL}-2 leased it again (attempt 2)", why
    assert renew.lost == [why] and not renew.kept


@pytest.mark.parametrize("status", ["pending", "dead"])
def test_a_task_whose_lease_ran_out_and_no_one_holds_stops_the_agent(
    swarm: Swarm, status: str
) -> None:
    """Back in its queue (another worker will run it) or dead-lettered (a requeue would have
    it run again while the agent ran on): the agent is stopped."""
    renew = _Renewal(swarm, max_abandons=1 if status == "dead" else 5)
    renew.run_out()
    assert swarm.reap() == 1
    assert swarm.get_task(renew.task.id).status == status
    why = renew()
    assert why is not None and f"is {status}, no longer held by attempt 1" in why, why
    assert renew.lost == [why] and not renew.kept


def _cancelled(swarm: Swarm, task: Task) -> None:
    swarm.cancel(task.id)


def _completed_elsewhere(swarm: Swarm, task: Task) -> None:
    other = swarm.claim([QUEUE], worker="someone-else", lease_s=30)
    assert other is not None and other.id == task.id
    swarm.report(other.id, other.token, {"summary": "theirs"})


def _taken_by_another_worker(swarm: Swarm, task: Task) -> None:
    other = swarm.claim([QUEUE], worker="someone-else", lease_s=30)
    assert other is not None and other.id == task.id


@pytest.mark.parametrize(
    ("happens", "said"),
    [
        (_cancelled, "is cancelled, no longer held by attempt 1"),
        (_completed_elsewhere, "is completed, no longer held by attempt 1"),
        (_taken_by_another_worker, "its lease ran out and someone-else leased it again"),
    ],
)
def test_a_task_settled_or_taken_by_another_worker_stops_the_agent(
    swarm: Swarm, happens: Callable[[Swarm, Task], None], said: str
) -> None:
    renew = _Renewal(swarm)
    renew.run_out()
    happens(swarm, renew.task)
    renew.orphans.add(f"{POOL}-2")  # (evidence of another id is none of this one)
    why = renew()
    assert why is not None and said in why, why
    assert renew.lost == [why] and not renew.kept
