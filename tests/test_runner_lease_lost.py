"""A renewal that finds its agent's lease lost stops the agent only when its report could not
count or would duplicate another worker's run: the task settled (completed, cancelled) or
leased to a worker outside the pool. A lease lost to the pool's own worker (a claim whose
reply was lost: a paused server runs the claims it received while paused when it wakes up,
leasing again the task whose lease ran out meanwhile), or a task back in its queue or
dead-lettered after its lease ran out, keeps the agent: its report, with its old token, is
the first of an open task and completes it (docs/tasks.md). The outage itself is played
without one: the test runs the lease out and makes the claim the server would have replayed."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redis_swarm import AlreadyCompleted, Swarm, Task
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions
from redis_swarm._runner.lease_renewal import LeaseRenewal

from ._invariants import check_swarm
from ._raw import raw_client

PY = sys.executable
SWARM = "lease-lost"
QUEUE = "work"
POOL = "pool"  # the pool's worker prefix: its slots claim as pool-1, pool-2
RUNS_ON = "its agent runs on"

# A run that waits for the test: it logs its task, leaves its lease's token where the test
# reads it, and prints its finding once the test says go.
WAITING_AGENT = """
import json, os, sys, time
sys.stdin.read()
task, folder = os.environ["SWARM_TASK_ID"], sys.argv[1]
with open(os.path.join(folder, "runs.log"), "a") as log:
    log.write(task + "\\n")
with open(os.path.join(folder, "token"), "w") as out:
    out.write(os.environ["SWARM_TASK_TOKEN"])
while not os.path.exists(os.path.join(folder, "go")):
    time.sleep(0.05)
print(json.dumps({"summary": "done " + task}))
"""


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    handle = Swarm(redis_url, swarm=SWARM)
    yield handle
    handle.close()


def _wait(until: Callable[[], object], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _lease_taken_while_the_agent_runs(
    swarm: Swarm, redis_url: str, tmp_path: Path, taker: str
) -> tuple[Task, Runner, list[str]]:
    """A pool of two slots, one task to run (lease 9 s: renewed every 3 s), runs its agent, which
    waits; meanwhile its lease runs out (shortened with its own token, as an outage would
    let it) and ``taker`` claims the task through another handle (attempt 2). Once the
    pool's next renewal has met the lost lease (a progress line, or the agent stopped), the
    agent is let go. Returns the task as stored, the pool and its progress lines."""
    script = tmp_path / "agent.py"
    script.write_text(WAITING_AGENT)
    notes: list[str] = []
    task = swarm.post_task(QUEUE, "the one task")
    options = RunOptions(
        queues=(QUEUE,),
        command=f"{PY} {script} {tmp_path}",
        concurrency=2,
        max_tasks=1,  # (slot 2 stops at once: its claims would take the task back, see _adopted)
        lease_s=9,
        poll_s=0.2,
        worker=POOL,
    )
    pool = Runner(swarm, options, on_progress=notes.append)
    thread = threading.Thread(target=pool.run)
    thread.start()
    try:
        token = tmp_path / "token"
        _wait(lambda: token.exists() and token.read_text(), f"no run: {pool.errors}")
        swarm.renew(task.id, token.read_text(), lease_s=0.05)  # runs out at once
        time.sleep(0.2)
        with Swarm(redis_url, swarm=SWARM) as other:
            again = other.claim([QUEUE], worker=taker, lease_s=60)
        # (None if the pool's renewal came first: its 3 s are far off)
        assert again is not None and again.id == task.id and again.attempts == 2, again
        assert not pool.outcomes, pool.outcomes
        _wait(
            lambda: any(RUNS_ON in n for n in notes) or pool.outcomes,
            f"the pool never renewed: {pool.errors}",
        )
        (tmp_path / "go").touch()
        thread.join(20)
    finally:
        pool.abort()
        thread.join(20)
    assert not thread.is_alive()
    assert (tmp_path / "runs.log").read_text().split() == [task.id]  # run once
    return swarm.get_task(task.id), pool, notes


def test_a_lease_taken_by_the_pools_own_worker_keeps_the_agent(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """The claim a slot gave up on (its reply lost) leased the task again to that slot's
    worker id (pool-2), a lease no slot holds: the renewal of the slot running the task
    (pool-1, the old token) is refused, yet its agent runs on and its report completes the
    task, once; nothing runs it again (before, the agent was stopped and the task ended
    ``lost``, to be run again once that orphan lease ran out)."""
    stored, pool, notes = _lease_taken_while_the_agent_runs(
        swarm, redis_url, tmp_path, taker=f"{POOL}-2"
    )
    assert [o.status for o in pool.outcomes] == [OutcomeStatus.COMPLETED], pool.outcomes
    assert stored.status == "completed" and stored.attempts == 2
    findings = swarm.findings().items
    assert [(f.task_id, f.superseded, f.worker) for f in findings] == [
        (stored.id, False, f"{POOL}-1")
    ]
    assert stored.finding_id == findings[0].id
    kept = [n for n in notes if RUNS_ON in n]
    assert len(kept) == 1 and f"{POOL}-2, a worker of this pool" in kept[0], notes
    check_swarm(raw_client(redis_url), SWARM)


def test_a_lease_taken_by_another_worker_still_stops_the_agent(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """Another worker (not of the pool) leased the task whose lease ran out: it runs the
    task now, so the pool's agent is stopped at its next renewal, unreported."""
    stored, pool, notes = _lease_taken_while_the_agent_runs(
        swarm, redis_url, tmp_path, taker="someone-else"
    )
    (outcome,) = pool.outcomes
    assert outcome.status is OutcomeStatus.LOST, outcome
    assert outcome.detail.startswith("stopped the agent: the lease of attempt 1")
    assert outcome.detail.endswith("worker someone-else holds it"), outcome.detail
    assert stored.status == "claimed" and stored.worker == "someone-else"
    assert not swarm.findings().items and not [n for n in notes if RUNS_ON in n]


# --- the renewal's rule, driven through its parts


class _Renewal:
    """A ``LeaseRenewal`` of a task claimed as pool-1 (a lease of 30 s), run when asked."""

    def __init__(self, swarm: Swarm, **post: object) -> None:
        self.swarm = swarm
        swarm.post_task(QUEUE, "the task", **post)  # type: ignore[arg-type]
        claimed = swarm.claim([QUEUE], worker=f"{POOL}-1", lease_s=30)
        assert claimed is not None
        self.task = claimed
        self.lost: list[str] = []
        self.kept: list[str] = []
        self.renewal = LeaseRenewal(
            swarm,
            claimed,
            30,
            self.lost,
            token=lambda: claimed.token,
            on_outage=lambda exc: pytest.fail(f"no outage here: {exc}"),
            on_back=lambda: None,
            ours=lambda worker: worker in (f"{POOL}-1", f"{POOL}-2"),
            on_kept=self.kept.append,
        )

    def run_out(self) -> None:
        """Let the lease run out (as through an outage)."""
        self.swarm.renew(self.task.id, self.task.token, lease_s=0.05)
        time.sleep(0.1)

    def __call__(self) -> str | None:
        self.renewal._due = 0.0  # due now
        return self.renewal()


def test_a_lease_the_pools_own_worker_took_keeps_the_agent_and_its_report_counts(
    swarm: Swarm,
) -> None:
    """The renewal refused, the task leased to pool-2 (a claim the pool never saw answered):
    the agent runs on, told once; its report with the old token completes the task (the
    core takes the first report of an open task), and the orphan lease's token, stale now,
    cannot overwrite that completion (its report is kept, superseded)."""
    renew = _Renewal(swarm)
    renew.run_out()
    orphan = swarm.claim([QUEUE], worker=f"{POOL}-2", lease_s=30)
    assert orphan is not None and orphan.id == renew.task.id and orphan.attempts == 2
    assert renew() is None and renew() is None
    assert not renew.lost
    assert len(renew.kept) == 1 and "attempt 2" in renew.kept[0], renew.kept
    first = swarm.report(renew.task.id, renew.task.token, {"summary": "the agent's"})
    assert not first.superseded
    with pytest.raises(AlreadyCompleted):
        swarm.report(orphan.id, orphan.token, {"summary": "stale"})
    stored = swarm.get_task(renew.task.id)
    assert stored.status == "completed" and stored.finding_id == first.id


@pytest.mark.parametrize("status", ["pending", "dead"])
def test_a_task_whose_lease_ran_out_and_no_one_holds_keeps_the_agent(
    swarm: Swarm, status: str
) -> None:
    """The lease ran out and was reclaimed (back to its queue, or dead-lettered when that
    was one abandon too many): no one else runs it, and the agent's report completes it."""
    renew = _Renewal(swarm, max_abandons=1 if status == "dead" else 5)
    renew.run_out()
    assert swarm.reap() == 1
    assert swarm.get_task(renew.task.id).status == status
    assert renew() is None and not renew.lost
    assert [f"the task is {status} now" in k for k in renew.kept] == [True], renew.kept
    swarm.report(renew.task.id, renew.task.token, {"summary": "the agent's"})
    assert swarm.get_task(renew.task.id).status == "completed"


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
        (_taken_by_another_worker, "attempt 2 holds it now"),
    ],
)
def test_a_task_settled_or_taken_by_another_worker_stops_the_agent(
    swarm: Swarm, happens: Callable[[Swarm, Task], None], said: str
) -> None:
    renew = _Renewal(swarm)
    renew.run_out()
    happens(swarm, renew.task)
    why = renew()
    assert why is not None and said in why, why
    assert renew.lost == [why] and not renew.kept
