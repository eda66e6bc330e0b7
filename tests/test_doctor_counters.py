"""``swarm doctor``'s ``counters`` row and its repair, ``swarm doctor --recount``: a worker may
HINCRBY the status counters by any amount (docs/security.md, 'Forge the status counters'),
which makes ``wait`` take a queue for settled while tasks of it are open. The doctor holds each
queue's pending, delayed, claimed and dead counters against the sets that hold those tasks,
and names any counter below zero; the recount (a shard's, never a worker's) sets the first
from the sets. Real servers, users made as ``swarm acl --apply`` makes them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_swarm import PermissionDenied, Swarm, Timeout
from redis_swarm._keys import Keys, label_id
from redis_swarm._ops import counters

from ._cli import Cli
from ._handles import must
from ._role_users import role_urls
from ._servers import RedisServer, ServerFactory, system_redis

SWARM = "counted"
K = Keys(SWARM)
Q = "q"


@pytest.fixture(scope="module")
def server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A private Redis >= 7 (Functions, per-function ACL rules, selectors)."""
    started = servers.start(binary=system_redis())
    yield started
    started.stop()


@pytest.fixture(scope="module")
def urls(server: RedisServer) -> dict[str, str]:
    """The URL of a worker's and a shard's user of the swarm."""
    return role_urls(server, SWARM, "c")


@pytest.fixture
def handles(server: RedisServer, urls: dict[str, str]) -> Iterator[dict[str, Swarm]]:
    raw = server.client()
    for key in raw.scan_iter(f"{K.prefix}*"):
        raw.delete(key)
    raw.close()
    made = {role: Swarm(url, swarm=SWARM) for role, url in urls.items()}
    yield made
    for handle in made.values():
        handle.close()


@pytest.fixture
def forger(urls: dict[str, str]) -> Iterator[Any]:
    """A plain client as the worker's user: what a worker may send by hand."""
    client = redis.Redis.from_url(urls["worker"], decode_responses=True)
    yield client
    client.close()


def _cli(urls: dict[str, str], role: str) -> Cli:
    return Cli(urls[role], swarm=SWARM)


def _fill(shard: Swarm, worker: Swarm) -> None:
    """A swarm with a task in every status, of a pass and a shard."""
    shard.post_tasks(
        [
            {"queue": Q, "description": f"d{i}", "pass_name": "P1", "parent": "shard-1"}
            for i in range(6)
        ]
    )
    shard.post_task(Q, "later", not_before=2**41, pass_name="P1")
    shard.post_task("other", "elsewhere")
    done = must(worker.claim(Q, worker="w-1"))
    worker.report(done.id, done.token, {"summary": "s"})
    dead = must(worker.claim(Q, worker="w-1"))
    worker.fail(dead.id, dead.token, "no", retry=False)
    shard.cancel(shard.post_task(Q, "not needed", pass_name="P1").id)
    must(worker.claim(Q, worker="w-1"))  # (held)


def test_a_clean_swarm_has_no_wrong_counter(
    handles: dict[str, Swarm], urls: dict[str, str]
) -> None:
    _fill(handles["shard"], handles["worker"])
    check = handles["worker"].check_counters()
    assert check.ok and check.queues == 2 and check.checked == 2 and check.passes == 1
    assert not check.warnings
    report = _cli(urls, "worker").json("doctor", "--quick")
    assert report["ok"] is True
    assert report["counters"].startswith("ok: the pending, delayed, claimed and dead counters")


def test_a_forged_counter_fails_the_doctor_and_the_recount_mends_it(
    handles: dict[str, Swarm], urls: dict[str, str], forger: Any
) -> None:
    shard, worker = handles["shard"], handles["worker"]
    _fill(shard, worker)
    held = shard.queue_stats()[Q]
    assert (held["pending"], held["claimed"], held["delayed"]) == (3, 1, 1)
    # The worker's forgery: the queue reads as settled, and wait believes it.
    forger.hincrby(K.counts, f"{Q}|pending", -3)
    forger.hincrby(K.counts, f"{Q}|claimed", -1)
    forger.hincrby(K.counts, f"{Q}|delayed", -1)
    assert worker.wait(queue=Q, timeout_s=0.5)["pending"] == 0

    out = _cli(urls, "worker")("doctor", "--quick", expect=1)
    said = " ".join(out.stdout.split())
    assert "wrong: queue q pending: counter 0, set 3" in said
    assert counters.RECOUNT_COMMAND in said
    report = _cli(urls, "worker").json("doctor", "--quick", expect=1)
    assert report["ok"] is False
    assert any("do not match the sets" in warning for warning in report["warnings"])

    # A worker may not recount (it is the role that can forge them).
    refused = _cli(urls, "worker")("doctor", "--recount", expect=None)
    assert refused.code != 0 and "never a worker user's" in refused.stderr
    assert shard.queue_stats()[Q]["pending"] == 0  # (nothing written)

    mended = _cli(urls, "shard").json("doctor", "--quick", "--recount")
    assert mended["ok"] is True, mended
    assert mended["counters"].startswith("ok:")
    assert sorted((c["status"], c["was"], c["now"]) for c in mended["counters_recounted"]) == [
        ("claimed", 0, 1),
        ("delayed", 0, 1),
        ("pending", 0, 3),
    ]
    assert shard.queue_stats()[Q] == held
    with pytest.raises(Timeout):  # open tasks again: the wait waits
        worker.wait(queue=Q, timeout_s=0.2)
    shown = " ".join(_cli(urls, "shard")("doctor", "--quick", "--recount").stdout.split())
    assert "nothing to change: every queue's counters matched its sets" in shown


def test_a_worker_is_refused_the_recount(handles: dict[str, Swarm], forger: Any) -> None:
    handles["shard"].post_task(Q, "one")
    forger.hincrby(K.counts, f"{Q}|pending", 5)
    with pytest.raises(PermissionDenied, match="never a worker user's"):
        handles["worker"].recount_counters()
    assert handles["shard"].queue_stats()[Q]["pending"] == 6
    assert [(c.status, c.was, c.now) for c in handles["shard"].recount_counters()] == [
        ("pending", 6, 1)
    ]


def test_counters_below_zero_that_no_set_holds_are_named_and_left(
    handles: dict[str, Swarm], urls: dict[str, str], forger: Any
) -> None:
    shard, worker = handles["shard"], handles["worker"]
    _fill(shard, worker)
    forger.hincrby(K.pass_counts, f"{label_id('P1')}|pending", -9)
    forger.hincrby(K.counts, "shard:shard-1|claimed", -4)
    forger.hincrby(K.counts, f"{Q}|completed", -7)
    check = worker.check_counters()
    assert not check.ok and not check.mismatches
    assert sorted(b.text for b in check.bad) == [
        "pass 'P1' pending: -6",
        "queue q completed: -6",
        "shard shard-1 claimed: -3",
    ]
    assert "cannot set them" in check.warnings[0]
    assert counters.BY_HAND in check.warnings[0]
    assert shard.recount_counters() == ()  # (no set holds them: left)
    report = _cli(urls, "shard").json("doctor", "--quick", "--recount", expect=1)
    assert report["ok"] is False and report["counters_recounted"] == []


def test_a_recount_while_tasks_are_claimed_keeps_the_claims_working(
    handles: dict[str, Swarm], forger: Any
) -> None:
    shard, worker = handles["shard"], handles["worker"]
    shard.post_tasks([{"queue": Q, "description": f"d{i}", "pass_name": "P1"} for i in range(4)])
    first = must(worker.claim(Q, worker="w-1"))
    second = must(worker.claim(Q, worker="w-2"))
    forger.hincrby(K.counts, f"{Q}|claimed", 7)
    forger.hincrby(K.counts, f"{Q}|pending", -2)
    assert {(c.status, c.now) for c in shard.recount_counters()} == {("claimed", 2), ("pending", 2)}
    worker.renew(first.id, first.token)
    worker.report(first.id, first.token, {"summary": "s"})
    worker.release(second.id, second.token)
    for _ in range(3):
        task = must(worker.claim(Q, worker="w-3"))
        worker.report(task.id, task.token, {"summary": "s"})
    assert worker.claim(Q, worker="w-3") is None
    stats = shard.queue_stats()[Q]
    assert (stats["pending"], stats["claimed"], stats["completed"]) == (0, 0, 4)
    assert worker.check_counters().ok
    assert worker.wait(pass_name="P1", timeout_s=1)["completed"] == 4


def test_a_recount_wakes_the_claims_a_forged_count_stopped(
    handles: dict[str, Swarm], server: RedisServer, forger: Any
) -> None:
    """A pending count forged to zero makes a claim clear the queue's wake list with tasks
    left; the recount gives the queue a token again."""
    shard, worker = handles["shard"], handles["worker"]
    shard.post_tasks([{"queue": Q, "description": f"d{i}"} for i in range(3)])
    forger.hincrby(K.counts, f"{Q}|pending", -3)
    must(worker.claim(Q, worker="w-1"))
    raw = server.client()
    try:
        assert raw.llen(K.wake(Q)) == 0
        shard.recount_counters()
        assert raw.llen(K.wake(Q)) == 1
    finally:
        raw.close()
    assert shard.queue_stats()[Q]["pending"] == 2


def test_the_queues_checked_are_capped_and_said_so(
    handles: dict[str, Swarm], monkeypatch: pytest.MonkeyPatch, forger: Any
) -> None:
    shard = handles["shard"]
    for queue in ("a", "b", "c"):
        shard.post_task(queue, "one")
    forger.hincrby(K.counts, "c|pending", -2)
    monkeypatch.setattr(counters, "QUEUES_CHECKED", 2)
    check = handles["worker"].check_counters()
    assert (check.queues, check.checked, check.capped) == (3, 2, True)
    assert [b.text for b in check.bad] == ["queue c pending: -1"]  # (past the cap: below zero)
    assert any("past the first 2" in warning for warning in check.warnings)
    forger.hincrby(K.counts, "c|pending", 2)
    assert check.row  # (and a clean capped check says which it held)
    assert "the first 2 of 3 queues (by name)" in handles["worker"].check_counters().row


def test_check_and_recount_on_every_kind_of_handle(swarm: Swarm, raw: Any) -> None:
    """Sync and async, on one server and on a cluster (the swarm's keys share one slot)."""
    keys = Keys("test")
    swarm.post_tasks([{"queue": queue, "description": "d"} for queue in ("a", "b", "c")])
    must(swarm.claim("b", worker="w-1"))
    assert swarm.check_counters().ok
    raw.hincrby(keys.counts, "a|pending", -1)
    raw.hincrby(keys.counts, "b|claimed", 2)
    check = swarm.check_counters()
    assert [m.text for m in check.mismatches] == [
        "queue a pending: counter 0, set 1",
        "queue b claimed: counter 3, set 1",
    ]
    changed = swarm.recount_counters()
    assert sorted((c.queue, c.status, c.was, c.now) for c in changed) == [
        ("a", "pending", 0, 1),
        ("b", "claimed", 3, 1),
    ]
    assert swarm.check_counters().ok


def test_a_busy_swarm_is_no_wrong_counter(handles: dict[str, Swarm], urls: dict[str, str]) -> None:
    """Tasks claimed, reported and posted while the doctor reads: a task moved between two
    reads is not taken for a wrong counter (each queue's counters are read beside its sets,
    and a queue found wrong read again)."""
    shard = handles["shard"]
    stop = threading.Event()

    def churn() -> None:
        with Swarm(urls["worker"], swarm=SWARM) as worker:
            while not stop.is_set():
                shard_posts = [{"queue": q, "description": "d"} for q in ("a", "b")]
                shard.post_tasks(shard_posts)
                for task in worker.claim(["a", "b"], worker="w-1", n=2):
                    worker.report(task.id, task.token, {"summary": "s"})

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            check = handles["worker"].check_counters()
            assert check.ok, check.row
    finally:
        stop.set()
        thread.join(10)


def test_a_set_holding_more_than_its_counter_says_its_ids_may_be_stray(
    handles: dict[str, Swarm], forger: Any
) -> None:
    """An id a worker ZADDs to a pending set, no task behind it: a recount would count it and
    the next claim drop it, leaving the counter one above its set (a review's catch), so the
    doctor says to look at the set's ids before recounting. A counter above its set (a task
    dropped, or a forged counter) has no such warning."""
    shard, worker = handles["shard"], handles["worker"]
    shard.post_task(Q, "real")
    forger.zadd(K.pending(Q), {"t-stray": 1})
    stray = [
        w for w in worker.check_counters().warnings if "a set holds more than its counter" in w
    ]
    assert len(stray) == 1 and f"queue {Q} pending: counter 1, set 2" in stray[0]
    forger.zrem(K.pending(Q), "t-stray")
    for step in (1, -3):  # a counter above its set, then one below zero: no stray ids said
        forger.hincrby(K.counts, f"{Q}|pending", step)
        check = worker.check_counters()
        assert not check.ok
        assert not any("a set holds more than its counter" in w for w in check.warnings)
