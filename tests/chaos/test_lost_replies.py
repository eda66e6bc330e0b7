"""Idempotent retries: a request whose reply is lost is sent again, and is not applied twice.

A proxy forwards the request to the server, lets the server run it, and then cuts the
connection instead of passing the reply on. redis-py reconnects and sends the request
again; the script recognises the client-made id (task, finding, op, message, read, publish
token, synthesis) and answers with what it stored the first time. Every test then checks
the swarm's invariants and that the change was applied once (one record, one event).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_swarm import AlreadyCompleted, NotFound, Swarm, TaskStatus
from redis_swarm._scripts import function_name, library

from .._handles import make_swarm
from .._invariants import Summary, check_swarm, event_entries
from .._servers import RedisServer
from ._proxy import DropProxy


def sha(script: str) -> bytes:
    """The marker of a script's calls: its function's name, as FCALL sends it (a bulk
    string, framed by its CRLFs so that no other name matches)."""
    return b"\r\n" + function_name(script).encode() + b"\r\n"


@pytest.fixture
def proxy(redis_server: RedisServer, redis_url: str) -> Iterator[DropProxy]:
    assert redis_server.port is not None
    client = redis_server.client()
    # so that the dropped reply is never a "Function not found" one
    client.function_load(library().source, replace=True)
    client.close()
    with DropProxy(redis_server.port) as p:
        yield p


@pytest.fixture(params=["sync", "async"])
def lossy(request: pytest.FixtureRequest, proxy: DropProxy) -> Iterator[Any]:
    """A swarm handle whose connection goes through the proxy."""
    handle = make_swarm(request.param, proxy.url)
    yield handle
    handle.close()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


def events(raw: redis.Redis) -> Counter[str]:
    return Counter(f["type"] for _, f in event_entries(raw, "test"))


def lose_one(proxy: DropProxy, script: str) -> None:
    proxy.drop_reply(sha(script))


def check_retried(proxy: DropProxy, script: str, raw: redis.Redis) -> Summary:
    """The reply was dropped, the request was sent again, and the data is consistent."""
    assert proxy.dropped == 1
    assert proxy.seen[sha(script)] >= 2
    return check_swarm(raw, "test")


def test_a_post_retried_after_a_lost_reply_posts_once(
    lossy: Any, proxy: DropProxy, raw: redis.Redis
) -> None:
    lose_one(proxy, "task_post")
    task = lossy.post_task("q", "only once", {"n": 1}, pass_name="p")
    summary = check_retried(proxy, "task_post", raw)
    assert summary.tasks == Counter({"pending": 1})
    assert events(raw)["task.posted"] == 1
    assert lossy.get_task(task.id) == task


def test_a_batch_post_retried_after_a_lost_reply_posts_each_task_once(
    lossy: Any, proxy: DropProxy, raw: redis.Redis
) -> None:
    lose_one(proxy, "task_post")
    tasks = lossy.post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(1500)])
    summary = check_retried(proxy, "task_post", raw)
    assert summary.tasks == Counter({"pending": 1500})
    assert events(raw)["task.posted"] == 1500
    assert len({t.id for t in tasks}) == 1500


def test_a_report_retried_after_a_lost_reply_stores_one_finding(
    lossy: Any, proxy: DropProxy, raw: redis.Redis
) -> None:
    lossy.post_task("q", "work")
    task = lossy.claim("q", worker="w1")
    lose_one(proxy, "task_report")
    # The retry finds its finding id stored: the first report's result, not AlreadyCompleted.
    finding = lossy.report(task.id, task.token, {"summary": "found it"})
    summary = check_retried(proxy, "task_report", raw)
    assert not finding.superseded
    assert summary.findings == 1 and summary.superseded == 0
    assert summary.tasks == Counter({"completed": 1})
    assert events(raw)["task.completed"] == 1 and events(raw)["finding.reported"] == 1
    # The same report sent again by the application (same finding id) is also recognised.
    again = lossy.report(task.id, task.token, {"summary": "found it"}, finding_id=finding.id)
    assert again == finding
    assert check_swarm(raw, "test").findings == 1


@pytest.mark.parametrize("how", ["report", "answer"])
def test_a_report_and_claim_retried_after_a_lost_reply_leases_one_next_task(
    lossy: Any, proxy: DropProxy, raw: redis.Redis, how: str
) -> None:
    lossy.post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(3)])
    task = lossy.claim("q", worker="w1")
    lose_one(proxy, "task_report")
    # The retry finds its finding stored, and gets back the lease the first try took.
    if how == "answer":  # swarm serve's: the claimed question, answered and the next leased
        finding, following = lossy.answer(task, task.token, "s", worker="w1", claim_next="q")
    else:
        finding, following = lossy.report(task.id, task.token, {"summary": "s"}, claim_next="q")
    summary = check_retried(proxy, "task_report", raw)
    assert not finding.superseded and following is not None
    assert summary.tasks == Counter({"completed": 1, "claimed": 1, "pending": 1})
    assert events(raw)["task.claimed"] == 2  # the first claim, and one by the report
    lossy.renew(following.id, following.token)  # the token the retry returned holds it


@pytest.mark.parametrize("action", ["renew", "release", "fail", "cancel"])
def test_a_lifecycle_change_retried_after_a_lost_reply_applies_once(
    lossy: Any, proxy: DropProxy, raw: redis.Redis, action: str
) -> None:
    lossy.post_task("q", "work", max_attempts=2)
    task = lossy.claim("q", worker="w1", lease_s=60)
    lose_one(proxy, "task_update")
    if action == "renew":
        after = lossy.renew(task.id, task.token, lease_s=120)
        assert after.status is TaskStatus.CLAIMED
    elif action == "release":
        after = lossy.release(task.id, task.token)
        assert after.status is TaskStatus.PENDING
    elif action == "fail":
        after = lossy.fail(task.id, task.token, "boom", retry=True)
        assert after.status is TaskStatus.DELAYED  # one attempt used, one left
    else:
        after = lossy.cancel(task.id)
        assert after.status is TaskStatus.CANCELLED
    check_retried(proxy, "task_update", raw)
    counted = events(raw)
    want = {"renew": "task.renewed", "release": "task.released", "fail": "task.failed",
            "cancel": "task.cancelled"}[action]  # fmt: skip
    assert counted[want] == 1
    if action == "release":  # the release gave the attempt back once, not twice
        again = lossy.claim("q", worker="w2")
        lossy.fail(again.id, again.token, "x", retry=True)
        assert lossy.get_task(task.id).status is TaskStatus.DELAYED
    if action == "fail":
        assert counted["task.retried"] == 1 and counted["task.dead"] == 0


def test_a_requeue_retried_after_a_lost_reply_applies_once(
    lossy: Any, proxy: DropProxy, raw: redis.Redis
) -> None:
    lossy.post_task("q", "work", max_attempts=1)
    task = lossy.claim("q", worker="w1")
    lossy.fail(task.id, task.token, "fatal", retry=False)
    lose_one(proxy, "task_update")
    assert lossy.requeue_dead(task.id).status is TaskStatus.PENDING
    check_retried(proxy, "task_update", raw)
    assert events(raw)["task.requeued"] == 1


def test_a_report_that_waited_behind_itself_retried_after_a_lost_reply_leases_one_next_task(
    lossy: Any, proxy: DropProxy, raw: redis.Redis, redis_url: str
) -> None:
    """Woken for its task, a worker's report sends its wait and claim behind it; the reply
    of that pipeline is lost. Sent again, the report finds its finding stored and the claim
    answers the lease its first try took, at once: one next task, its token valid."""
    assert lossy.claim("q", worker="w1") is None  # so the waiting claim starts with the wait
    with Swarm(redis_url, swarm="test") as poster:
        timer = threading.Timer(0.2, lambda: poster.post_task("q", "woken for"))
        timer.start()
        task = lossy.claim("q", worker="w1", wait_s=10)
        timer.join()
        poster.post_task("q", "the next")
    lose_one(proxy, "task_claim")
    start = time.monotonic()
    finding, following = lossy.report(
        task.id, task.token, {"summary": "s"}, worker="w1", claim_next="q", wait_s=10
    )
    assert time.monotonic() - start < 5
    summary = check_retried(proxy, "task_claim", raw)
    assert not finding.superseded and following is not None
    assert summary.tasks == Counter({"completed": 1, "claimed": 1}) and summary.findings == 1
    assert events(raw)["task.claimed"] == 2  # the woken claim, and one behind the report
    lossy.renew(following.id, following.token)  # the token the retry returned holds it


def test_a_claim_whose_reply_is_lost_comes_back_when_its_lease_ends(
    lossy: Any, proxy: DropProxy, raw: redis.Redis
) -> None:
    """The one operation that is not idempotent, by design: a claim is at least once. The
    lost claim's lease holds the task for nobody until it expires; then it is claimable."""
    posted = lossy.post_task("q", "work")
    lose_one(proxy, "task_claim")
    assert lossy.claim("q", worker="w1", lease_s=0.3) is None  # the retry found it leased
    assert proxy.dropped == 1
    assert lossy.get_task(posted.id).status is TaskStatus.CLAIMED
    time.sleep(0.4)
    again = lossy.claim("q", worker="w1", lease_s=5)
    assert again is not None and again.id == posted.id and again.attempts == 2
    lossy.report(again.id, again.token, {"summary": "done once"})
    summary = check_swarm(raw, "test")
    assert summary.tasks == Counter({"completed": 1}) and summary.findings == 1


def test_a_woken_claim_whose_reply_is_lost_comes_back_when_its_lease_ends(
    lossy: Any, proxy: DropProxy, raw: redis.Redis, redis_url: str
) -> None:
    """A waiting claim sends its wait and its script in one pipeline: a lost reply is the
    claim's, as above. The pipeline is sent again: its wait times out (the token is gone)
    and its script finds the task leased; once that lease ends the task is claimable."""
    assert lossy.claim("q", worker="w1") is None  # so the waiting claim starts with the wait
    # (the pipeline's first reply, its LPUSH of the queue's waiters list, is written as the
    # wait blocks: it passes, and what comes once the task woke the wait is lost)
    proxy.drop_reply(sha("task_claim"), skip=1)
    with Swarm(redis_url, swarm="test") as poster:
        timer = threading.Timer(0.2, lambda: poster.post_task("q", "work"))
        timer.start()
        assert lossy.claim("q", worker="w1", lease_s=2, wait_s=0.6) is None
        timer.join()
    assert proxy.dropped == 1 and proxy.seen[sha("task_claim")] >= 2
    (posted,) = lossy.list_tasks(queue="q").items
    assert posted.status is TaskStatus.CLAIMED and posted.attempts == 1  # the lost lease
    assert posted.lease_deadline is not None
    time.sleep(max(0.0, posted.lease_deadline / 1000 - time.time()) + 0.1)
    again = lossy.claim("q", worker="w1", lease_s=5)
    assert again is not None and again.id == posted.id and again.attempts == 2
    lossy.report(again.id, again.token, {"summary": "done once"})
    summary = check_swarm(raw, "test")
    assert summary.tasks == Counter({"completed": 1}) and summary.findings == 1


def test_a_message_retried_after_a_lost_reply_is_delivered_once(
    lossy: Any, proxy: DropProxy, raw: redis.Redis
) -> None:
    lossy.register("shard", name="s1")
    lose_one(proxy, "message_send")
    sent = lossy.send("s1", "hello", sender="w1")
    check_retried(proxy, "message_send", raw)
    assert lossy.inbox("s1") == [sent]
    assert events(raw)["message.sent"] == 1


def test_an_inbox_read_retried_after_a_lost_reply_loses_no_message(
    lossy: Any, proxy: DropProxy, raw: redis.Redis
) -> None:
    lossy.register("shard", name="s1")
    sent = [lossy.send("s1", f"m{i}") for i in range(3)]
    lose_one(proxy, "inbox_read")
    assert lossy.inbox("s1") == sent  # the retry returns the same batch
    check_retried(proxy, "inbox_read", raw)
    later = lossy.send("s1", "later")
    assert lossy.inbox("s1") == [later]  # the first batch was acknowledged once
    assert lossy.inbox("s1") == []


@pytest.mark.parametrize("script", ["chunk_put", "context_publish"])
def test_a_publish_retried_after_a_lost_reply_keeps_one_version(
    lossy: Any, proxy: DropProxy, raw: redis.Redis, script: str
) -> None:
    first = lossy.publish_context("s1", "v1\n" * 1000, source="a")
    lose_one(proxy, script)
    second = lossy.publish_context("s1", "v2\n" * 1000, source="b")
    check_retried(proxy, script, raw)
    assert [v.version for v in lossy.context_versions("s1")] == [second.version, first.version]
    assert lossy.get_context("s1") == "v2\n" * 1000
    assert events(raw)["context.published"] == 2


def test_a_synthesis_retried_after_a_lost_reply_is_stored_once(
    lossy: Any, proxy: DropProxy, raw: redis.Redis
) -> None:
    lossy.post_task("q", "work", pass_name="p", parent="s1")
    task = lossy.claim("q", worker="w1")
    finding = lossy.report(task.id, task.token, {"summary": "x"})
    lose_one(proxy, "synthesis_create")
    synthesis = lossy.synthesize("s1", "p", "all of it", [finding.id])
    check_retried(proxy, "synthesis_create", raw)
    assert [s.id for s in lossy.syntheses()] == [synthesis.id]
    assert events(raw)["synthesis.created"] == 1


def test_a_late_report_retried_after_a_lost_reply_is_one_superseded_finding(
    lossy: Any, proxy: DropProxy, raw: redis.Redis
) -> None:
    lossy.post_task("q", "work")
    first = lossy.claim("q", worker="w1", lease_s=0.05)
    time.sleep(0.1)
    second = lossy.claim("q", worker="w2", lease_s=60)
    lossy.report(second.id, second.token, {"summary": "second wins"})
    lose_one(proxy, "task_report")
    with pytest.raises(AlreadyCompleted) as info:
        lossy.report(first.id, first.token, {"summary": "first, late"})
    summary = check_retried(proxy, "task_report", raw)
    assert summary.findings == 2 and summary.superseded == 1
    assert lossy.get_finding(info.value.finding_id).superseded
    assert events(raw)["finding.superseded"] == 1


def test_a_publish_that_pruned_retried_after_a_lost_reply_leaks_never_loses(
    lossy: Any, proxy: DropProxy, raw: redis.Redis
) -> None:
    """The flip of a fourth version prunes the first; its reply (which hands out the pruned
    version's chunks for release) is lost, and the retry does not hand them out again: the
    first version's chunks stay stored (a leak, bounded by one version, journaled), nothing
    kept is lost; gc frees them."""
    texts = [f"version {n}\n" * 2000 for n in range(4)]
    for text in texts[:3]:
        lossy.publish_context("s1", text, source="a")
    lose_one(proxy, "context_publish")
    lossy.publish_context("s1", texts[3], source="a")
    assert proxy.dropped == 1
    kept = [lossy.get_context("s1", version=v.version) for v in lossy.context_versions("s1")]
    assert kept == texts[:0:-1]
    with pytest.raises(AssertionError, match="no kept version's token"):
        check_swarm(raw, "test")
    check_swarm(raw, "test", chunk_leaks_ok=True)
    assert events(raw)["context.published"] == 4
    report = lossy.gc(grace_s=0)
    assert report.holds_released == 1 and report.bytes_freed >= len(texts[0])
    check_swarm(raw, "test")


def test_agent_calls_retried_after_a_lost_reply(
    lossy: Any, proxy: DropProxy, raw: redis.Redis
) -> None:
    """A retried register finds its registration token and changes nothing (one
    agent.joined); a heartbeat is an overwrite; a retried deregister finds its departure and
    returns as the first call did (no NotFound, one agent.left)."""
    lose_one(proxy, "agent_register")
    agent = lossy.register("worker", name="w1", model="m")
    check_retried(proxy, "agent_register", raw)
    assert [a.id for a in lossy.agents()] == ["w1"] and agent.model == "m"
    assert events(raw)["agent.joined"] == 1
    assert lossy.get_agent("w1").registered_at == agent.registered_at
    lossy.post_task("q", "work", task_id="t-1")  # (a heartbeat names a task that exists)
    lose_one(proxy, "agent_heartbeat")
    assert lossy.heartbeat("w1", current_task="t-1").current_task == "t-1"
    check_swarm(raw, "test")
    lose_one(proxy, "agent_deregister")
    assert lossy.deregister("w1") is None
    assert proxy.seen[sha("agent_deregister")] >= 2
    assert lossy.agents() == []
    assert events(raw)["agent.left"] == 1
    check_swarm(raw, "test")
    with pytest.raises(NotFound, match="not registered"):
        lossy.deregister("w1")  # a new call, not a retry
