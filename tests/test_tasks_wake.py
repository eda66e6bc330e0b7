"""Waiting claims wake through per-queue wake lists: one claimable task wakes one waiter (not
every waiter of the swarm), the lists stay bounded, and a claim that finds nothing clears
them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from redis_swarm import (
    AlreadyCompleted,
    LeaseLost,
    PermissionDenied,
    Swarm,
    Task,
    TaskSpec,
    TaskStatus,
    ValidationError,
)
from redis_swarm._keys import Keys
from redis_swarm._ops import claiming
from redis_swarm._protocol import Batch, Call, Cmd

from ._handles import make_swarm, must
from ._proxy import LatencyProxy
from ._raw import blocked_clients, command_calls, reset_stats, script_calls
from ._servers import RedisServer

KEYS = Keys("test")
WAKE_CAP = 64  # lua/_tasks.lua
ZERO = {status.value: 0 for status in TaskStatus}


@pytest.fixture
def swarm_direct(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _scripts_run(raw: redis.Redis) -> int:
    return script_calls(command_calls(raw))


def _wait_blocked(raw: redis.Redis, n: int) -> None:
    deadline = time.monotonic() + 10
    while blocked_clients(raw) < n:
        assert time.monotonic() < deadline, "the waiters never blocked"
        time.sleep(0.02)


class _Waiter(threading.Thread):
    def __init__(self, swarm: Swarm, worker: str, wait_s: float = 5) -> None:
        super().__init__()
        self.swarm, self.worker, self.wait_s = swarm, worker, wait_s
        self.task: Task | None = None
        self.elapsed = 0.0

    def run(self) -> None:
        start = time.monotonic()
        self.task = self.swarm.claim("q", worker=self.worker, wait_s=self.wait_s)
        self.elapsed = time.monotonic() - start


def test_one_task_wakes_one_waiter(swarm: Swarm, raw: redis.Redis) -> None:
    n = 8
    waiters = [_Waiter(swarm, f"w{i}") for i in range(n)]
    for w in waiters:
        w.start()
    _wait_blocked(raw, n)
    before = _scripts_run(raw)
    posted = []
    for i in range(n):
        posted.append(swarm.post_task("q", f"t{i}").id)
        time.sleep(0.05)
    for w in waiters:
        w.join(10)
    claims = _scripts_run(raw) - before - n  # minus the n task_post scripts
    got = [w.task.id for w in waiters if w.task is not None]
    assert sorted(got) == sorted(posted)  # every waiter got exactly one task
    assert all(w.elapsed < 4 for w in waiters)  # woken, not timed out
    # Waking every waiter for every task would run 8 + 7 + ... + 1 = 36 claim scripts.
    assert claims <= 2 * n


def test_a_waiter_wakes_for_a_released_task(swarm: Swarm) -> None:
    swarm.post_task("q", "d")
    first = swarm.claim("q", worker="w0")
    assert first is not None
    waiter = _Waiter(swarm, "w1")
    waiter.start()
    time.sleep(0.3)
    swarm.release(first.id, first.token)
    waiter.join(10)
    assert waiter.task is not None and waiter.task.id == first.id and waiter.task.attempts == 2
    assert waiter.elapsed < 2.5


def test_a_waiter_wakes_for_a_delayed_task_falling_due(swarm: Swarm) -> None:
    waiter = _Waiter(swarm, "w1")
    waiter.start()
    time.sleep(0.3)  # blocked on an empty queue, with nothing due
    task = swarm.post_task("q", "later", not_before=int(time.time() * 1000) + 400)
    waiter.join(10)
    assert waiter.task is not None and waiter.task.id == task.id
    assert 0.6 < waiter.elapsed < 2.5


def test_a_waiter_wakes_for_a_requeued_task(swarm: Swarm) -> None:
    swarm.post_task("q", "d", max_attempts=1)
    first = swarm.claim("q", worker="w0")
    assert first is not None
    swarm.fail(first.id, first.token, "boom", retry=False)
    waiter = _Waiter(swarm, "w1")
    waiter.start()
    time.sleep(0.3)
    swarm.requeue_dead(first.id)
    waiter.join(10)
    assert waiter.task is not None and waiter.task.id == first.id
    assert waiter.elapsed < 2.5


def test_wake_lists_stay_bounded_and_are_cleared(swarm: Swarm, raw: redis.Redis) -> None:
    swarm.post_tasks([TaskSpec("q", f"t{i}") for i in range(1_000)])
    assert raw.llen(KEYS.wake("q")) == WAKE_CAP
    for i in range(200):
        swarm.post_task("q", f"one by one {i}")
    assert raw.llen(KEYS.wake("q")) == WAKE_CAP
    for i in range(5):
        swarm.post_task("r", f"r{i}")
    assert raw.llen(KEYS.wake("r")) == 5
    while swarm.claim(["r"], worker="w1") is not None:
        assert raw.llen(KEYS.wake("r")) <= 5
    assert not raw.exists(KEYS.wake("r"))  # the claim that found nothing cleared it
    assert raw.llen(KEYS.wake("q")) == WAKE_CAP  # other queues keep theirs


def test_a_claim_takes_the_token_of_the_task_it_takes(swarm: Swarm, raw: redis.Redis) -> None:
    """One token per claimable task: a claim that did not wait pops the token of the task it
    takes, so that no waiter wakes later for a task already gone; the last clears the list."""
    swarm.post_tasks([TaskSpec("q", f"t{i}") for i in range(3)])
    assert raw.llen(KEYS.wake("q")) == 3
    for left in (2, 1):
        assert swarm.claim("q", worker="w1") is not None
        assert raw.llen(KEYS.wake("q")) == left
    assert swarm.claim("q", worker="w1") is not None
    assert not raw.exists(KEYS.wake("q"))


def test_a_claim_after_a_report_that_found_nothing_starts_with_the_wait(
    swarm: Swarm, raw: redis.Redis
) -> None:
    """report(claim_next=q) that finds q empty answers as an empty claim does, so a waiting
    claim of q right after it blocks at once: one script (when its wait ends), not two."""
    swarm.post_task("q", "only")
    task = must(swarm.claim("q", worker="w1"))
    reset_stats(raw)
    _, nxt = swarm.report(task.id, task.token, {"summary": "ok"}, worker="w1", claim_next="q")
    assert nxt is None
    assert swarm.claim("q", worker="w1", wait_s=0.05) is None
    calls = command_calls(raw)
    assert script_calls(calls) == 2 and calls.get("blpop") == 1
    # the report's counters: completed +1 and claimed -1, written once
    assert calls.get("hincrby") == 2
    waiter = _Waiter(swarm, "w2", wait_s=5)  # and a task posted now still wakes a waiter
    waiter.start()
    _wait_blocked(raw, 1)
    posted = swarm.post_task("q", "next")
    waiter.join(10)
    assert waiter.task is not None and waiter.task.id == posted.id


# --- the wait and the claim it wakes for, in one round trip


def test_a_woken_claim_runs_one_script_behind_its_wait(swarm: Swarm, raw: redis.Redis) -> None:
    """A waiting claim right after a claim that found the queue empty starts with the wait,
    its script queued behind the BLPOP in the same pipeline: woken, it runs that one script
    (round trips: tests/_op_costs.py counts them through a proxy)."""
    assert swarm.claim("q", worker="w1") is None
    waiter = _Waiter(swarm, "w1")
    reset_stats(raw)
    waiter.start()
    _wait_blocked(raw, 1)
    posted = swarm.post_task("q", "for the waiter")
    waiter.join(10)
    assert waiter.task is not None and waiter.task.id == posted.id
    calls = command_calls(raw)
    assert script_calls(calls) == 2 and calls.get("blpop") == 1  # the post and the claim
    assert not raw.exists(KEYS.wake("q"))  # its token taken by the wait, none left over


NO_WAIT_USER = "no-wait"


def _on_every_node(raw: Any, *command: str) -> None:
    """Run ``command`` on the server, or on every node of a cluster (ACL is per node)."""
    if isinstance(raw, RedisCluster):
        raw.execute_command(*command, target_nodes=RedisCluster.ALL_NODES)  # type: ignore[no-untyped-call]
    else:
        raw.execute_command(*command)


@pytest.fixture
def no_wait_url(redis_url: str, raw: redis.Redis) -> Iterator[str]:
    """``redis_url`` as a user who may do anything but wait for a wake token (BLPOP): every
    wait fails, and the claim behind it in the same round trip runs."""
    rule = ("ACL", "SETUSER", NO_WAIT_USER, "reset", "on", ">pw", "~*", "&*", "+@all", "-blpop")
    _on_every_node(raw, *rule)
    scheme, rest = redis_url.split("://", 1)
    yield f"{scheme}://{NO_WAIT_USER}:pw@{rest}"
    _on_every_node(raw, "ACL", "DELUSER", NO_WAIT_USER)


def test_a_claim_behind_a_failed_wait_keeps_its_task(
    request: pytest.FixtureRequest, swarm: Swarm, no_wait_url: str
) -> None:
    """A wait fails (here the user may not BLPOP; on a cluster, its slot moving under it)
    while the claim behind it in the same round trip leases a task: the claim returns that
    task. Raising the wait's error threw the lease away (the request was sent again whole,
    and the task stayed leased to a worker that never knew it until the lease ended)."""
    waiter = make_swarm(request.node.callspec.params["swarm"], no_wait_url)
    try:
        assert waiter.claim("q", worker="w1") is None  # the next waiting claim starts waiting
        posted = swarm.post_task("q", "behind the wait")
        got = must(waiter.claim("q", worker="w1", wait_s=5))
        assert got.id == posted.id
        waiter.report(got.id, got.token, {"summary": "done"})
        assert swarm.get_task(posted.id).status == TaskStatus.COMPLETED
        # With nothing to claim, the wait is sent again alone and its error raised: not a
        # claim after a claim until wait_s has passed.
        start = time.monotonic()
        with pytest.raises(PermissionDenied):
            waiter.claim("q", worker="w1", wait_s=5)
        assert time.monotonic() - start < 2.5
    finally:
        waiter.close()


def test_a_wait_that_times_out_leases_nothing(swarm: Swarm, raw: redis.Redis) -> None:
    swarm.post_task("other", "not for this waiter")
    for n in (None, 3):
        start = time.monotonic()
        got = swarm.claim("q", worker="w1", wait_s=0.3, n=n)
        assert got == ([] if n else None)
        assert 0.25 < time.monotonic() - start < 3
    assert swarm.queue_stats()["other"]["pending"] == 1
    assert "q" not in swarm.queue_stats()
    assert not [e for e in swarm.events() if e.type.value == "task.claimed"]
    assert raw.llen(KEYS.wake("other")) == 1


def test_a_waiting_batch_claim_takes_what_woke_it_and_the_tokens_of_what_it_took(
    swarm: Swarm, raw: redis.Redis
) -> None:
    """n=3 behind a wait: the BLPOP took one token, the script the tokens of the two other
    tasks it leased; the two tasks left keep theirs."""
    assert swarm.claim("q", worker="w1", n=3) == []
    got: list[Task] = []
    waiter = threading.Thread(
        target=lambda: got.extend(swarm.claim("q", worker="w1", wait_s=5, n=3))
    )
    waiter.start()
    _wait_blocked(raw, 1)
    posted = swarm.post_tasks([TaskSpec("q", f"t{i}") for i in range(5)])
    waiter.join(10)
    assert [t.id for t in got] == [t.id for t in posted[:3]]
    assert raw.llen(KEYS.wake("q")) == 2
    assert swarm.queue_stats()["q"]["pending"] == 2


def test_one_task_for_several_waiters_the_others_keep_waiting(
    swarm: Swarm, raw: redis.Redis
) -> None:
    waiters = [_Waiter(swarm, f"w{i}", wait_s=1.5) for i in range(4)]
    for w in waiters:
        w.start()
    _wait_blocked(raw, 4)
    posted = swarm.post_task("q", "only one")
    for w in waiters:
        w.join(10)
    winners = [w for w in waiters if w.task is not None]
    assert len(winners) == 1 and must(winners[0].task).id == posted.id
    assert winners[0].elapsed < 1.2
    assert all(w.elapsed >= 1.4 for w in waiters if w.task is None)  # waited to the end


def test_a_task_posted_between_two_waits_is_not_missed(swarm: Swarm) -> None:
    """The claim script that found nothing cleared the wake list, and a task posted before
    the next wait pushed its token: that wait ends at once, its script takes the task."""
    op = claiming.claim(swarm._ctx, "q", worker="w1", wait_s=10)
    first = next(op)
    assert isinstance(first, Call)  # no hint: the script alone
    again = op.send(swarm._attempt(first))
    assert isinstance(again, Batch) and isinstance(again.items[0], Cmd)  # BLPOP, then the script
    posted = swarm.post_task("q", "between the waits")
    start = time.monotonic()
    reply = swarm._attempt(again)
    with pytest.raises(StopIteration) as done:
        op.send(reply)
    assert done.value.value.id == posted.id
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_wait_cut_mid_way_is_sent_again(
    kind: str, redis_server: RedisServer, swarm_direct: Swarm, raw: redis.Redis
) -> None:
    """The connection of a blocked wait drops (a network failure): the client sends the wait
    and its claim again on a new connection, and a task posted then still wakes it."""
    with LatencyProxy(redis_server.port or 0) as link:
        far = make_swarm(kind, link.url)
        assert far.claim("q", worker="w1") is None  # the waiting claim starts with the wait
        waiter = _Waiter(far, "w1", wait_s=10)
        waiter.start()
        _wait_blocked(raw, 1)
        link.cut()
        time.sleep(0.3)  # the server drops its end; the client reconnects and waits again
        _wait_blocked(raw, 1)
        posted = swarm_direct.post_task("q", "after the cut")
        waiter.join(15)
        far.close()
    assert waiter.task is not None and waiter.task.id == posted.id
    assert waiter.elapsed < 8


# --- a report that waits for the next task (report's wait_s)


def _woken(swarm: Swarm, raw: redis.Redis, worker: str = "w1") -> Task:
    """A task ``worker`` claimed after waiting for it: the handle now takes the queue as dry."""
    assert swarm.claim("q", worker=worker) is None
    waiter = _Waiter(swarm, worker)
    waiter.start()
    _wait_blocked(raw, 1)
    swarm.post_task("q", "woken for")
    waiter.join(10)
    return must(waiter.task)


class _Reporter(threading.Thread):
    """report(..., claim_next="q", wait_s=) on a thread: its finding, next task, error, time."""

    def __init__(self, swarm: Swarm, task: Task, token: str, wait_s: float = 10) -> None:
        super().__init__()
        self.swarm, self.task, self.token, self.wait_s = swarm, task, token, wait_s
        self.next: Task | None = None
        self.error: Exception | None = None
        self.elapsed = 0.0

    def run(self) -> None:
        start = time.monotonic()
        try:
            _, self.next = self.swarm.report(
                self.task.id, self.token, {"summary": "done"}, worker="w1", claim_next="q",
                wait_s=self.wait_s,
            )  # fmt: skip
        except Exception as exc:  # the test asserts it
            self.error = exc
        self.elapsed = time.monotonic() - start


def test_a_report_after_a_woken_claim_waits_for_the_next_task_behind_it(
    swarm: Swarm, raw: redis.Redis
) -> None:
    """Woken for its task, a worker's report sends the wait and the claim behind it: one
    BLPOP, the report and the claim, and no claim inside the report (round trips:
    tests/_op_costs.py)."""
    task = _woken(swarm, raw)
    reset_stats(raw)
    reporter = _Reporter(swarm, task, must(task.token))
    reporter.start()
    _wait_blocked(raw, 1)  # the report is stored while the wait blocks
    assert swarm.get_task(task.id).status.value == "completed"
    posted = swarm.post_task("q", "the next")
    reporter.join(10)
    assert reporter.error is None and must(reporter.next).id == posted.id
    assert must(reporter.next).worker == "w1" and reporter.elapsed < 5
    calls = command_calls(raw)
    assert script_calls(calls) == 3 and calls.get("blpop") == 1 and calls.get("llen") == 1
    assert not raw.exists(KEYS.wake("q")) and not raw.exists(KEYS.worker_wake("w1"))
    # the lease is a lease: renewed and reported with its token, refused with another
    following = must(reporter.next)
    swarm.renew(following.id, following.token)
    with pytest.raises(LeaseLost):
        swarm.report(following.id, task.token, {"summary": "a stale token"})
    assert swarm.queue_stats()["q"] == {**ZERO, "claimed": 1, "completed": 1}


def test_what_a_handle_learns_of_a_queue_is_each_workers_own(
    swarm: Swarm, raw: redis.Redis
) -> None:
    """Agents sharing one handle (as the MCP server's sessions do) each keep what their own
    claims learnt: one woken for its task does not make another's report wait behind itself
    (a BLPOP and a second script) where its claim_next takes a pending task in one script."""
    swarm.post_task("q", "w2's")
    held = must(swarm.claim("q", worker="w2"))  # no wait: w2 has not found q dry
    _woken(swarm, raw, worker="w1")  # w1 has
    pending = swarm.post_task("q", "pending")
    reset_stats(raw)
    _, nxt = swarm.report(
        held.id, must(held.token), {"summary": "done"}, worker="w2", claim_next="q", wait_s=10
    )
    assert must(nxt).id == pending.id
    calls = command_calls(raw)
    assert script_calls(calls) == 1 and "blpop" not in calls, calls


def _report_in_thread(swarm: Swarm, task: Task, token: str) -> _Reporter:
    reporter = _Reporter(swarm, task, token, wait_s=30)
    reporter.start()
    reporter.join(60)
    return reporter


def test_a_refused_report_ends_its_wait_and_claims_nothing(swarm: Swarm, raw: redis.Redis) -> None:
    """The wait behind a report that does not complete its task ends at once (the refusal
    is heard now, not when a task comes), and its claim takes nothing."""
    task = _woken(swarm, raw)
    forged = f"{must(task.token).partition('.')[0]}.{'x' * 22}"
    reporter = _report_in_thread(swarm, task, forged)
    assert isinstance(reporter.error, LeaseLost) and reporter.elapsed < 5
    assert swarm.get_task(task.id).status.value == "claimed"
    assert not raw.exists(KEYS.worker_wake("w1"))
    posted = swarm.post_task("q", "for another worker")  # nothing waits for it here
    assert raw.llen(KEYS.wake("q")) == 1
    assert swarm.get_task(posted.id).status.value == "pending"


def test_a_superseded_report_ends_its_wait_and_claims_nothing(
    swarm: Swarm, raw: redis.Redis
) -> None:
    """A late report (its task completed already) is kept superseded and raises at once;
    a task pending meanwhile stays pending with its token, for another worker."""
    task = _woken(swarm, raw)
    swarm.report(task.id, task.token, {"summary": "first"})
    pending = swarm.post_task("q", "stays pending")
    reporter = _report_in_thread(swarm, task, must(task.token))
    assert isinstance(reporter.error, AlreadyCompleted) and reporter.elapsed < 5
    assert swarm.get_task(pending.id).status.value == "pending"
    assert raw.llen(KEYS.wake("q")) == 1 and not raw.exists(KEYS.worker_wake("w1"))
    # the same late report again (its finding id): raised again at once, no token left over
    fid = reporter.error.finding_id
    for _ in range(2):
        start = time.monotonic()
        with pytest.raises(AlreadyCompleted):
            swarm.report(
                task.id, task.token, {"summary": "done"}, worker="w1", finding_id=fid,
                claim_next="q", wait_s=30,
            )  # fmt: skip
        assert time.monotonic() - start < 5 and not raw.exists(KEYS.worker_wake("w1"))
    assert swarm.get_task(pending.id).status.value == "pending"


def test_a_report_waiting_behind_itself_switches_back_when_tasks_wait(
    swarm: Swarm, raw: redis.Redis
) -> None:
    """Woken, then tasks pile up: the claim behind the report sees tokens left, and the
    next report claims next inside its own script (no wait, no second script)."""
    task = _woken(swarm, raw)
    swarm.post_tasks([TaskSpec("q", f"t{i}") for i in range(3)])
    reset_stats(raw)
    _, nxt = swarm.report(
        task.id, task.token, {"summary": "1"}, worker="w1", claim_next="q", wait_s=5
    )
    calls = command_calls(raw)
    assert calls.get("blpop") == 1 and calls.get("llen") == 1 and script_calls(calls) == 2
    reset_stats(raw)
    nxt = must(nxt)
    _, after = swarm.report(
        nxt.id, nxt.token, {"summary": "2"}, worker="w1", claim_next="q", wait_s=5
    )
    calls = command_calls(raw)
    assert after is not None and "blpop" not in calls and script_calls(calls) == 1


def test_a_report_waiting_behind_itself_times_out_with_nothing_leased(
    swarm: Swarm, raw: redis.Redis
) -> None:
    task = _woken(swarm, raw)
    start = time.monotonic()
    _, nxt = swarm.report(
        task.id, task.token, {"summary": "1"}, worker="w1", claim_next="q", wait_s=0.4
    )
    assert nxt is None and 0.35 < time.monotonic() - start < 5
    assert swarm.queue_stats()["q"] == {**ZERO, "completed": 1}
    assert not raw.exists(KEYS.worker_wake("w1"))


def test_report_wait_s_needs_claim_next_and_a_sane_number(swarm: Swarm) -> None:
    task = swarm.post_task("q", "t")
    claimed = must(swarm.claim("q", worker="w1"))
    with pytest.raises(ValidationError, match="claim_next"):
        swarm.report(claimed.id, claimed.token, {"summary": "x"}, wait_s=1)
    with pytest.raises(ValidationError, match="wait_s"):
        swarm.report(claimed.id, claimed.token, {"summary": "x"}, claim_next="q", wait_s=-1)
    assert swarm.get_task(task.id).status.value == "claimed"  # nothing stored


@pytest.mark.parametrize("others", [0, 1])
def test_a_retried_report_that_waited_behind_itself_gets_the_same_lease_back(
    swarm: Swarm, raw: redis.Redis, others: int
) -> None:
    """The reply of a report whose wait took the next task is lost; the same report sent
    again (same finding id) answers that lease at once, token included, never a second
    task, as a report with claim_next does (docs/reliability.md). ``others``: tasks left
    pending besides (0: the retry waits behind itself too; 1: it claims next in its script)."""
    task = _woken(swarm, raw)
    swarm.post_tasks([TaskSpec("q", f"t{i}") for i in range(1 + others)])
    fid = swarm.new_finding_id()

    def send() -> tuple[object, Task | None]:
        return swarm.report(
            task.id, task.token, {"summary": "s"}, worker="w1", finding_id=fid,
            claim_next="q", wait_s=30,
        )  # fmt: skip

    _, first = send()
    reset_stats(raw)
    start = time.monotonic()
    _, again = send()
    assert time.monotonic() - start < 5
    assert command_calls(raw).get("blpop", 0) == (1 if others == 0 else 0)
    first, again = must(first), must(again)
    assert (again.id, again.token) == (first.id, first.token)
    stats = {**ZERO, "pending": others, "claimed": 1, "completed": 1}
    assert swarm.queue_stats()["q"] == stats
    # once that lease no longer holds, a retry claims anew, as its wait_s asks: one lease
    swarm.release(first.id, first.token)
    _, after = send()
    assert must(after).token != first.token
    assert swarm.queue_stats()["q"] == stats
