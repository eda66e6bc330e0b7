"""A model-based test: random posts, claims (one, or a batch), renewals, reports (alone, or
leasing the next task), failures, releases, cancels, requeues, reaps and clock advances, run
against Redis and against a plain-Python model of the rules; after every step the two must
agree on every task (its status and when it took it: ``status_since``) and every counter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from redis_swarm import AlreadyCompleted, InvalidState, LeaseLost, Swarm, Task, TaskStatus
from redis_swarm._ops.tasks import BACKOFF_BASE_MS, BACKOFF_CAP_MS

from ._clock import FakeClock
from ._raw import raw_client

QUEUES = ("a", "b")
CLAIMED_QUEUES = st.sampled_from([("a",), ("b",), ("a", "b"), ("b", "a")])
PRIO_SHIFT = 2**39


@dataclass
class ModelTask:
    id: str
    queue: str
    priority: int
    seq: int
    max_attempts: int
    max_abandons: int
    lease_ms: int
    status: str
    since: int  # when it took its status (the fake clock's time of that change)
    not_before: int | None = None
    attempts: int = 0
    failures: int = 0
    abandons: int = 0
    worker: str | None = None
    deadline: int | None = None
    claims: dict[int, str] = field(default_factory=dict)
    finding: str | None = None

    @property
    def rank(self) -> int:
        return -self.priority * PRIO_SHIFT + self.seq


class Model:
    """The rules of the work queue, in plain Python."""

    def __init__(self) -> None:
        self.tasks: dict[str, ModelTask] = {}
        self.seq = 0

    def _expire_and_promote(self, queues: tuple[str, ...], now: int) -> int:
        reclaimed = 0
        for q in queues:
            expired = [t for t in self.tasks.values() if t.queue == q and t.status == "claimed"]
            for t in sorted(expired, key=lambda t: (t.deadline or 0, t.id)):
                if t.deadline is not None and t.deadline <= now:
                    reclaimed += 1
                    t.worker, t.deadline = None, None
                    t.abandons += 1
                    t.status = "dead" if t.abandons >= t.max_abandons else "pending"
                    t.since = now
            for t in self.tasks.values():
                if t.queue == q and t.status == "delayed" and (t.not_before or 0) <= now:
                    t.status, t.since = "pending", now
        return reclaimed

    def claim(self, queues: tuple[str, ...], worker: str, now: int) -> ModelTask | None:
        self._expire_and_promote(queues, now)
        ready = [t for t in self.tasks.values() if t.queue in queues and t.status == "pending"]
        if not ready:
            return None
        t = min(ready, key=lambda t: t.rank)
        t.status, t.since = "claimed", now
        t.attempts += 1
        t.worker = worker
        t.claims[t.attempts] = worker
        t.deadline = now + t.lease_ms
        return t

    def reap(self, now: int) -> int:
        return self._expire_and_promote(QUEUES, now)

    @staticmethod
    def holds(t: ModelTask, token: int) -> bool:
        return t.status == "claimed" and t.attempts == token

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for t in self.tasks.values():
            per = out.setdefault(t.queue, {s.value: 0 for s in TaskStatus})
            per[t.status] += 1
        return out


class QueueMachine(RuleBasedStateMachine):
    tasks = Bundle("tasks")

    def __init__(self, swarm: Swarm, raw: redis.Redis, clock: FakeClock) -> None:
        super().__init__()
        raw.flushall()
        self.swarm = swarm
        self.clock = clock
        self.model = Model()
        self.tokens: dict[tuple[str, int], str] = {}  # (task, attempt) -> the token claim gave

    # --- actions

    @rule(
        target=tasks,
        queue=st.sampled_from(QUEUES),
        priority=st.integers(-1, 1),
        max_attempts=st.integers(1, 2),
        max_abandons=st.integers(1, 2),
        lease_s=st.sampled_from([5, 10]),
        delay_s=st.sampled_from([None, 0, 5]),
    )
    def post(
        self,
        queue: str,
        priority: int,
        max_attempts: int,
        max_abandons: int,
        lease_s: int,
        delay_s: int | None,
    ) -> str:
        not_before = None if delay_s is None else self.clock.now + delay_s * 1000
        task = self.swarm.post_task(
            queue, "d", priority=priority, max_attempts=max_attempts, lease_s=lease_s,
            not_before=not_before, max_abandons=max_abandons,
        )  # fmt: skip
        self.model.seq += 1
        delayed = not_before is not None and not_before > self.clock.now
        self.model.tasks[task.id] = ModelTask(
            task.id, queue, priority, self.model.seq, max_attempts, max_abandons, lease_s * 1000,
            "delayed" if delayed else "pending", self.clock.now, not_before,
        )  # fmt: skip
        return str(task.id)

    @rule(queues=CLAIMED_QUEUES, worker=st.sampled_from(["w1", "w2"]))
    def claim(self, queues: tuple[str, ...], worker: str) -> None:
        got = self.swarm.claim(list(queues), worker=worker)
        self._claimed(got, self.model.claim(queues, worker, self.clock.now))

    def _claimed(self, got: Task | None, expected: ModelTask | None) -> None:
        assert (got and got.id) == (expected and expected.id)
        if got is not None and expected is not None:
            assert got.attempts == expected.attempts and got.token is not None
            assert got.worker == expected.worker
            self.tokens[(got.id, got.attempts)] = got.token
            assert got.lease_deadline == expected.deadline

    @rule(queues=CLAIMED_QUEUES, worker=st.sampled_from(["w1", "w2"]), n=st.integers(1, 4))
    def claim_batch(self, queues: tuple[str, ...], worker: str, n: int) -> None:
        got = self.swarm.claim(list(queues), worker=worker, n=n)
        expected = [self.model.claim(queues, worker, self.clock.now) for _ in range(n)]
        leased = [t for t in expected if t is not None]
        assert len(got) == len(leased)
        for task, model_task in zip(got, leased, strict=True):
            self._claimed(task, model_task)

    def _token(self, t: ModelTask, which: str) -> int:
        return {"current": t.attempts, "stale": max(0, t.attempts - 1), "forged": t.attempts + 1}[
            which
        ]

    def _real(self, task: str, attempt: int) -> str:
        """The token claim returned for that attempt; for one never made, a guessed one."""
        return self.tokens.get((task, attempt), f"{max(1, attempt)}.{'A' * 22}")

    @rule(task=tasks, which=st.sampled_from(["current", "current", "stale", "forged"]))
    def renew(self, task: str, which: str) -> None:
        t = self.model.tasks[task]
        token = self._token(t, which)
        if self.model.holds(t, token):
            got = self.swarm.renew(task, self._real(task, token))
            t.deadline = self.clock.now + t.lease_ms
            assert got.lease_deadline == t.deadline
        else:
            self._refused(LeaseLost, lambda: self.swarm.renew(task, self._real(task, token)))

    @rule(task=tasks, which=st.sampled_from(["current", "current", "stale", "forged"]))
    def report(self, task: str, which: str) -> None:
        self._report(task, which, None)

    @rule(
        task=tasks,
        which=st.sampled_from(["current", "current", "stale", "forged"]),
        queues=CLAIMED_QUEUES,
    )
    def report_and_claim_next(self, task: str, which: str, queues: tuple[str, ...]) -> None:
        self._report(task, which, queues)

    def _report(self, task: str, which: str, claim_next: tuple[str, ...] | None) -> None:
        """A report, and with ``claim_next`` the next claim in the same call: made only when
        the report completes its task."""
        t = self.model.tasks[task]
        token = self._token(t, which)
        real = self._real(task, token)

        def call() -> Any:
            if claim_next is None:
                return self.swarm.report(task, real, {"summary": "x"})
            return self.swarm.report(task, real, {"summary": "x"}, claim_next=list(claim_next))

        if token < 1 or token > t.attempts:
            self._refused(LeaseLost, call)
        elif t.status in ("completed", "cancelled"):
            self._refused(AlreadyCompleted, call)
        else:
            finding, nxt = (call(), None) if claim_next is None else call()
            assert finding.worker == t.claims[token] and not finding.superseded
            t.status, t.worker, t.deadline = "completed", t.claims[token], None
            t.since = self.clock.now
            t.finding = finding.id
            if claim_next is not None:
                self._claimed(nxt, self.model.claim(claim_next, t.claims[token], self.clock.now))

    @rule(task=tasks, which=st.sampled_from(["current", "current", "stale"]), retry=st.booleans())
    def fail(self, task: str, which: str, retry: bool) -> None:
        t = self.model.tasks[task]
        token = self._token(t, which)
        real = self._real(task, token)
        if not self.model.holds(t, token):
            self._refused(LeaseLost, lambda: self.swarm.fail(task, real, "e", retry=retry))
            return
        got = self.swarm.fail(task, real, "e", retry=retry)
        t.worker, t.deadline, t.since = None, None, self.clock.now
        t.failures += 1
        assert got.failures == t.failures
        if not retry or t.failures >= t.max_attempts:
            t.status = "dead"
        else:
            t.status = "delayed"
            delay = min(BACKOFF_BASE_MS * 2 ** (t.failures - 1), BACKOFF_CAP_MS)
            t.not_before = self.clock.now + delay
            assert got.not_before == t.not_before

    @rule(task=tasks, which=st.sampled_from(["current", "stale"]))
    def release(self, task: str, which: str) -> None:
        t = self.model.tasks[task]
        token = self._token(t, which)
        if not self.model.holds(t, token):
            self._refused(LeaseLost, lambda: self.swarm.release(task, self._real(task, token)))
            return
        self.swarm.release(task, self._real(task, token))
        t.status, t.worker, t.deadline, t.since = "pending", None, None, self.clock.now

    @rule(task=tasks, drop=st.booleans())
    def cancel(self, task: str, drop: bool = False) -> None:
        t = self.model.tasks[task]
        # (a dead task is dropped from the dead letters only when asked: dead=True)
        if t.status == "completed" or (t.status == "dead" and not drop):
            self._refused(InvalidState, lambda: self.swarm.cancel(task, dead=drop))
            return
        if t.status != "cancelled":  # cancelling twice changes nothing
            t.since = self.clock.now
        self.swarm.cancel(task, dead=drop)
        t.status, t.worker, t.deadline = "cancelled", None, None

    @rule(task=tasks)
    def requeue_dead(self, task: str) -> None:
        t = self.model.tasks[task]
        if t.status != "dead":
            self._refused(InvalidState, lambda: self.swarm.requeue_dead(task))
            return
        self.swarm.requeue_dead(task)
        t.status, t.failures, t.abandons, t.since = "pending", 0, 0, self.clock.now

    @rule(seconds=st.sampled_from([1, 5, 5, 10]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule()
    def reap(self) -> None:
        assert self.swarm.reap() == self.model.reap(self.clock.now)

    def _refused(self, error: type[Exception], call: Any) -> None:
        try:
            call()
        except error:
            return
        raise AssertionError(f"expected {error.__name__}")

    # --- agreement

    @invariant()
    def tasks_agree(self) -> None:
        listed = {t.id: t for t in self.swarm.list_tasks(limit=1000)}
        assert set(listed) == set(self.model.tasks)
        for task_id, t in self.model.tasks.items():
            got = listed[task_id]
            assert (got.status.value, got.attempts, got.worker) == (t.status, t.attempts, t.worker)
            assert got.status_since == t.since, (task_id, t.status)
            if t.status == "claimed":
                assert got.lease_deadline == t.deadline
            if t.status == "completed":
                assert got.finding_id == t.finding

    @invariant()
    def counters_agree(self) -> None:
        assert self.swarm.queue_stats() == self.model.counts()


def test_the_queue_follows_the_model(swarm: Swarm, redis_url: str) -> None:
    clock = FakeClock()
    swarm._ctx.clock = clock  # the swarm fixture, on a fake clock (both shells)
    raw = raw_client(redis_url)

    class Bound(QueueMachine):
        def __init__(self) -> None:
            super().__init__(swarm, raw, clock)

    try:
        run_state_machine_as_test(
            Bound,
            settings=settings(
                max_examples=100,
                stateful_step_count=40,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        raw.close()


def test_a_cost_is_shown_one_way_and_never_reads_as_free() -> None:
    from redis_swarm._usage import usd

    assert usd(None) == "-" and usd(None, unknown="cost unknown") == "cost unknown"
    assert usd(0.0) == "$0.0000" and usd(0.0123) == "$0.0123" and usd(1234.5) == "$1,234.5000"
    assert usd(0.00004) == "$0.000040" and usd(0.0000012) == "$0.0000012"
    assert usd(0.24000000000000002) == "$0.2400"


def test_what_runs_cost_reads_one_way_with_its_unknowns_said() -> None:
    from redis_swarm._usage import usage_line

    def line(cost: float | None, tokens_in: int | None, tokens_out: int | None) -> str:
        return usage_line({"cost_usd": cost, "tokens_in": tokens_in, "tokens_out": tokens_out})

    assert line(0.0123, 12_345, 678) == "$0.0123 · 12,345 in / 678 out"
    assert line(None, 6_000, 300) == "cost unknown · 6,000 in / 300 out"
    assert line(0.5, None, None) == "$0.5000"  # no count reported: none shown
    assert line(0.5, 10, None) == "$0.5000 · 10 in / - out"  # not "0 out"
