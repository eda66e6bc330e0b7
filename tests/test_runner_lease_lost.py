"""A renewal that finds its agent's lease lost stops the agent unless the pool proves the
task's new lease an orphan of its own: a claim of one of its slots whose reply was lost (it
raised ``ConnectionFailed``; a paused server runs the claims it received while paused when it
wakes up, leasing again the task whose lease ran out meanwhile), and no slot of the pool took
the task as its work since, and a lease secret that claim sent (the error carries them)
renews the new lease. The slot then holds that lease, renewed while its agent runs, and the
agent's report completes the task. A worker id alone is no evidence: another process may
claim under the same prefix (``swarm serve``'s default), and may have seen a claim of that
name fail in the same pause; a task requeued and leased again by a slot of the pool is that
slot's, or handed to the running agent's slot (``PoolState._adopted``). Each would have run
the task twice.

The outage itself is played without one: the test runs the lease out, and the pool's handle
lets its claim script run in Redis, then raises ``ConnectionFailed`` as a lost reply does.
Leases of 30 s (renewed every 10 s) leave a loaded box ample time to set each scene before
the pool's first renewal; the test of an orphan outliving its length drives the renewal
itself, on 2-second leases."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import AlreadyCompleted, ConnectionFailed, Swarm, Task
from redis_swarm._protocol import Batch, Call, items_of
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
    """The pool's handle: once ``lose`` is set, the reply of its next claim script that
    leases a task (any claim script, with ``even_empty``) is lost: the script ran in Redis,
    and the handle raises ``ConnectionFailed`` to the claim as a lost reply does (the core's
    claim adds the lease secrets it sent). What it leased, as Redis stored it (no token), is
    kept in ``unseen``."""

    def __init__(self, url: str, *, even_empty: bool = False) -> None:
        super().__init__(url, swarm=SWARM)
        self.lose = threading.Event()
        self.even_empty = even_empty
        self.unseen: list[Task] = []

    def _attempt(self, request: Any) -> Any:
        reply = super()._attempt(request)
        if not self.lose.is_set() or not isinstance(request, Call | Batch):
            return reply
        items = items_of(request)
        claims = [i for i, item in enumerate(items) if getattr(item, "script", "") == "task_claim"]
        if not claims:
            return reply
        claimed = reply if isinstance(request, Call) else reply[claims[0]]
        if not claimed[0] and not self.even_empty:
            return reply
        self.lose.clear()
        if claimed[0]:
            self.unseen.extend(self.get_task(json.loads(raw)["id"]) for raw in claimed[0::2])
        raise ConnectionFailed("the claim's reply was lost (the test's)")


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
    no slot holds that lease. The renewal of slot 1 (the old token) is refused; the pool
    proves the new lease its own with a secret that claim sent, and renews it (slot 1 holds
    it now): its agent runs on and its report completes the task, once."""
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
        (orphan,) = handle.unseen
        adopted = swarm.get_task(task.id)  # renewed by the pool: the lease is its own
        assert (adopted.worker, adopted.attempts) == (f"{POOL}-2", 2), adopted
        assert (adopted.lease_deadline or 0) > (orphan.lease_deadline or 0), (adopted, orphan)
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


# --- the proof, driven through the pool's parts


def _lose_a_claim(pool: Runner, handle: _LosingReplies, worker: str) -> ConnectionFailed:
    """A claim of ``pool``'s slot ``worker`` whose reply is lost (``handle``: the pool's)."""
    handle.lose.set()
    with pytest.raises(ConnectionFailed) as lost:
        pool._claim_batch(worker, 1, 0.0)
    assert lost.value.lease_secrets  # (the secrets the claim sent)
    return lost.value


def _working(pool: Runner, handle: Swarm, worker: str, lease_s: float = 30) -> Task:
    """A task claimed as ``worker`` through ``handle``, the pool's slot's work."""
    task = handle.claim([QUEUE], worker=worker, lease_s=lease_s)
    assert task is not None and pool._adopted(task)
    return task


def test_only_a_claim_lost_since_the_task_was_taken_gives_secrets_to_try(
    redis_url: str, tmp_path: Path
) -> None:
    handle = _LosingReplies(redis_url, even_empty=True)
    with handle:
        pool = _pool(handle, tmp_path, [])
        _lose_a_claim(pool, handle, f"{POOL}-2")  # before the task was taken: no evidence
        handle.post_task(QUEUE, "first")
        handle.post_task(QUEUE, "second")
        first = _working(pool, handle, f"{POOL}-1")
        assert pool._orphan_secrets(first, f"{POOL}-2") == []
        lost = _lose_a_claim(pool, handle, f"{POOL}-2")
        assert pool._orphan_secrets(first, f"{POOL}-2") == list(lost.lease_secrets)
        assert pool._orphan_secrets(first, f"{POOL}-1") == []  # (no claim of pool-1 lost)
        assert pool._orphan_secrets(first, "someone-else") == []
        pool._let_go(first)  # another slot may take the task as its work now
        handle.post_task(QUEUE, "third")
        _working(pool, handle, f"{POOL}-1")
        assert pool._orphan_secrets(first, f"{POOL}-2") == []  # not the pool's work any longer


def _renewal(
    pool: Runner, task: Task, lease_s: int, lost: list[str], kept: list[str]
) -> Callable[[], str | None]:
    """The renewal of ``task`` as the pool's agent runs it (``AgentRuns``), due when called."""
    renewal = LeaseRenewal(
        pool.swarm,
        task,
        lease_s,
        lost,
        token=lambda: pool._token(task),
        on_outage=lambda exc: pytest.fail(f"no outage here: {exc}"),
        on_back=lambda: None,
        adopt=lambda now: pool._adopt_orphan(task, now),
        on_kept=kept.append,
    )

    def renew() -> str | None:
        renewal._due = 0.0
        return renewal()

    return renew


def test_an_orphan_lease_proved_the_pools_is_renewed_past_its_length(
    redis_url: str, tmp_path: Path
) -> None:
    """Short leases (2 s): the orphan lease, proved the pool's at the first renewal refused,
    is renewed from then on with its token, and holds long past its own length; the agent's
    report (the slot's token now) completes the task (before: never renewed, it ran out)."""
    lost: list[str] = []
    kept: list[str] = []
    handle = _LosingReplies(redis_url)
    with handle:
        pool = _pool(handle, tmp_path, [], lease_s=2)
        handle.post_task(QUEUE, "the task")
        task = _working(pool, handle, f"{POOL}-1", lease_s=2)
        renew = _renewal(pool, task, 2, lost, kept)
        _cut(handle, task, task.token or "")
        _lose_a_claim(pool, handle, f"{POOL}-2")
        (orphan,) = handle.unseen
        assert (orphan.id, orphan.attempts, orphan.worker) == (task.id, 2, f"{POOL}-2")
        assert renew() is None and len(kept) == 1, (lost, kept)
        deadline = orphan.lease_deadline or 0  # (epoch ms) the orphan lease's own
        end = deadline / 1000 + 1.0  # (epoch s) well past it
        while time.time() < end:
            time.sleep(0.4)
            assert renew() is None, lost
        assert handle.reap() == 0
        stored = handle.get_task(task.id)
        assert (stored.status, stored.worker, stored.attempts) == ("claimed", f"{POOL}-2", 2)
        assert (stored.lease_deadline or 0) > deadline + 1000
        assert not lost and len(kept) == 1
        handle.report(task.id, pool._token(task), {"summary": "the agent's"})
        assert handle.get_task(task.id).status == "completed"
        pool._let_go(task)
    check_swarm(raw_client(redis_url), SWARM)


def test_of_two_pools_sharing_a_prefix_only_the_one_whose_claim_leased_it_keeps_its_agent(
    redis_url: str, tmp_path: Path
) -> None:
    """Pools A and B, two processes of one owner (``swarm serve``: one prefix), each run the
    task (A attempt 1, B attempt 2 after A's lease ran out), and B's lease runs out too. A
    pause: a claim of A's slot pool-2 leases the task (attempt 3) and one of B's pool-2
    finds nothing, both replies lost. Each renewal, refused, sees pool-2 holding it after a
    claim of its own pool-2 failed: A's secrets renew that lease, B's do not, so only A's
    agent runs on (before: both did, the task run twice at once)."""
    a_kept: list[str] = []
    a_lost: list[str] = []
    b_kept: list[str] = []
    b_lost: list[str] = []
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = _LosingReplies(redis_url), _LosingReplies(redis_url, even_empty=True)
    with a, b:
        pool_a = _pool(a, tmp_path / "a", [])
        pool_b = _pool(b, tmp_path / "b", [])
        a.post_task(QUEUE, "the task", max_abandons=5)  # (two leases run out)
        a_task = _working(pool_a, a, f"{POOL}-1")
        renew_a = _renewal(pool_a, a_task, LEASE_S, a_lost, a_kept)
        _cut(a, a_task, a_task.token or "")
        b_task = _working(pool_b, b, f"{POOL}-1")
        renew_b = _renewal(pool_b, b_task, LEASE_S, b_lost, b_kept)
        assert b_task.id == a_task.id and b_task.attempts == 2
        _cut(b, b_task, b_task.token or "")
        _lose_a_claim(pool_a, a, f"{POOL}-2")
        assert [(t.attempts, t.worker) for t in a.unseen] == [(3, f"{POOL}-2")]
        _lose_a_claim(pool_b, b, f"{POOL}-2")
        assert not b.unseen  # (B's claim found nothing: the task is leased)
        assert renew_b() == f"its lease ran out and {POOL}-2 leased it again (attempt 3)"
        assert not b_kept
        assert renew_a() is None and len(a_kept) == 1 and not a_lost, (a_lost, a_kept)
        assert pool_a._token(a_task) != a_task.token  # (the proved lease is A's slot's)
        assert renew_a() is None  # renewed with it
    check_swarm(raw_client(redis_url), SWARM)


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
            adopt=lambda now: now.worker in self.orphans,
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


class _RetriedClaims(Swarm):
    """The pool's handle: once ``retry`` is set, its next claim script is sent twice, as the
    client's own retry sends it again after a first try whose reply was lost (the same
    secrets): the first try's leases are unseen, the second's reply comes back."""

    def __init__(self, url: str) -> None:
        super().__init__(url, swarm=SWARM)
        self.retry = threading.Event()

    def _attempt(self, request: Any) -> Any:
        claims = any(getattr(item, "script", "") == "task_claim" for item in items_of(request))
        if claims and self.retry.is_set():
            self.retry.clear()
            super()._attempt(request)  # (its reply lost)
        return super()._attempt(request)


def test_an_orphan_lease_of_a_claim_the_client_retried_is_proved_by_the_returned_token(
    redis_url: str, tmp_path: Path
) -> None:
    """A claim's first try leased the task whose agent runs (its reply lost), the client's
    retry leased another and came back: no ConnectionFailed, but the retry sent the same
    secrets, so the token it returned proves the orphan the pool's."""
    lost: list[str] = []
    kept: list[str] = []
    handle = _RetriedClaims(redis_url)
    with handle:
        pool = _pool(handle, tmp_path, [])
        handle.post_task(QUEUE, "the task")
        task = _working(pool, handle, f"{POOL}-1")
        renew = _renewal(pool, task, LEASE_S, lost, kept)
        _cut(handle, task, task.token or "")
        handle.post_task(QUEUE, "another")
        handle.retry.set()
        (other,) = pool._claim_batch(f"{POOL}-2", 1, 0.0)
        assert other.id != task.id
        orphan = handle.get_task(task.id)
        assert (orphan.status, orphan.worker, orphan.attempts) == ("claimed", f"{POOL}-2", 2)
        assert renew() is None and len(kept) == 1, (lost, kept)
        handle.report(task.id, pool._token(task), {"summary": "the agent's"})
        assert handle.get_task(task.id).status == "completed"
        pool._let_go(task)
