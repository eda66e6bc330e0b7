"""Every core operation of the Swarm API, run once on a prepared swarm through a LatencyProxy,
with the round trips (proxy exchanges) and the wall time of each.

Shared by tests/test_slow_links.py (which asserts the counts) and benchmarks/slow_links.py
(which reports them). ``prepare`` fills the swarm through a direct handle (``near``), so that
a big swarm costs no far round trips to build; ``every_operation`` then runs each operation
once through the far handle, in an order where each finds what it needs (a claimed task to
renew, a dead one to requeue, ...); set-up steps between them go through ``near``, uncounted.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis_swarm import Conflict, ContextCache

from ._proxy import LatencyProxy

T = TypeVar("T")

QUEUE = "q"
WAITED = "waited"  # empty until a waiting claim blocks on it
PASS = "p"
A2A_OWNER = "a2a-owner"
SHARD = "shard"  # owner of the context, parent of the tasks, and the agent asked to synthesise


@dataclass(frozen=True)
class Scale:
    """How much the swarm holds when the operations run."""

    tasks: int  # pending in the claimed queue
    queues: int  # other queues, one pending task each (reap visits every queue)
    agents: int
    findings: int
    context_bytes: int

    def describe(self) -> str:
        size = self.context_bytes
        shown = f"{size / 1e6:.1f} MB" if size >= 1_000_000 else f"{size // 1000} KB"
        counts = [
            (self.tasks, "task"),
            (self.queues + 1, "queue"),
            (self.agents + 1, "agent"),  # the shard registers too
            (self.findings, "finding"),
        ]
        listed = ", ".join(f"{n} {noun}{'' if n == 1 else 's'}" for n, noun in counts)
        return f"{listed}, a {shown} context"


SMALL = Scale(tasks=10, queues=1, agents=1, findings=2, context_bytes=10_000)
BIG = Scale(tasks=500, queues=100, agents=50, findings=100, context_bytes=3_200_000)

# The most round trips each operation may take once the server has its scripts loaded (the
# design: one script call or one pipelined batch each; a cold read of a whole context is the
# pointer and the copy of the current version in one batch, a slice the pointer, then the
# chunks it needs in one batch). The test asserts these, and that the count does not move
# between SMALL and BIG.
BOUNDS: dict[str, int] = {
    "ping": 1,
    "post_task": 1,
    "post_tasks, 1 task": 1,
    "post_tasks, 100 tasks": 1,
    "claim (tasks pending)": 1,
    "claim (queue empty)": 1,
    "claim, a batch of 3": 1,
    # the script finds nothing; the wait and the claim it wakes for go in one pipeline
    "claim, waiting until a task is posted": 2,
    "claim, waiting, right after a claim found none": 1,  # it starts with that pipeline
    "renew": 1,
    "report": 1,
    "report, claim_next": 1,  # the report and the next claim in one script
    # an idle swarm's worker loop: woken for its task, it reports and waits for the next
    # task, the wait and the claim pipelined behind the report
    "report, waiting for the next task after a woken claim": 1,
    "answer (the claimed question)": 1,  # its data read from the claimed task, not again
    "answer, claim_next": 1,  # swarm serve's: the answer and the next question in one script
    "fail": 1,
    "release": 1,
    "cancel": 1,
    "requeue_dead": 2,  # its data read first: a task whose data is damaged is not requeued
    "reap": 2,  # the set of queues, then every queue's reaping in one batch
    "get_task": 1,
    "task_statuses": 1,
    "list_tasks (a page of 100)": 1,
    # by a status few tasks hold: the counters, then their queues' sets (and the page's data)
    "list_tasks, claimed": 2,
    "list_tasks, claimed, with data": 3,
    "list_tasks, none match": 1,  # the counters say 0: an empty last page
    "queue_stats": 1,
    "pass_stats": 1,
    "shard_stats": 1,
    "findings (a page)": 1,
    "findings of a pass": 1,
    "synthesize": 1,
    "get_synthesis": 1,
    # the pointer and the kept version, which chunks the server lacks, the chunks, the flip
    "publish_context, new version": 4,
    "publish_context, unchanged": 1,
    "get_context, cold": 1,  # the pointer and the copy of the current version together
    "get_context, warm (unchanged)": 1,  # the pointer only
    "read_context, cold (10 lines)": 2,
    "search_context, cold": 1,  # as get_context
    "search_context, warm": 1,
    "context_info": 1,
    "register": 1,
    "heartbeat": 1,
    "agents": 3,  # the agents with the queue names, the newest leases, their tasks
    "sweep (nothing stale)": 2,  # the server's TIME, then the stale agents (none)
    "send": 1,
    "broadcast": 1,
    "inbox": 1,
    "mark_read": 1,
    "give_back_inbox": 1,
    "mark_read (by message id: its seq looked up first)": 2,
    "message_status": 1,
    "get_message": 1,
    "request_synthesis": 1,
    "events (up to 1,000)": 1,
    "events_trimmed": 1,  # XINFO STREAM: its first entry and counts
    "last_event_id": 1,
    "set_webhook": 2,  # the task and newest event, then the webhook and its cursor
    "webhooks": 1,
    "claim_webhook_event": 1,
    "delete_webhook": 1,
    # the event id, queue and pass counts, agents and contexts in one batch; then the
    # newest leases and their tasks (the task an agent that only claims works on)
    "status": 3,
    # the a2a-sdk stores (redis_swarm.a2a): one script or one command each, a page included
    "a2a_save (version check, event)": 1,
    "a2a_get": 1,
    "a2a_list (a filtered page)": 1,
    "a2a_list (the next page)": 1,
    "a2a_publish": 1,
    "a2a_events": 1,
    "a2a_delete": 1,
    "a2a_destroy": 1,
    # the newest ids, then their records and the dead letters' ids (a third, the dead tasks,
    # when there are dead letters: none here, requeue_dead took the one); no leases, which
    # are status's (its roster's tasks): the dashboard reads both, the leases once
    "recent": 2,
    "task_costs (a completed task)": 2,  # the task, then its finding and superseded ones
    # the pass's counters, the queues, the syntheses (a thousand a round trip) and the first
    # findings, then one step of the script per 500 of its findings, then per 500 of its
    # tasks (each with the keys of their own: webhooks, questions asked), then the record's
    # time of its last step (``at``), read when it removed anything
    "retire_pass (a settled pass)": 4,
    "retired_passes": 1,
    # the record, presence and TIME read together, then the compare-and-set (agent_swap)
    "mark_stale": 2,
    "tally": 2,
    # the record and presence read together, then the registration as a compare-and-set
    "join": 2,
    "retired_questions": 1,
    # a pipeline's bookkeeping while a run holds its lease: refused by the first reads
    "retire_queues (held off: refused at once)": 1,
    "retired_asked (none retired, none listed)": 1,  # a second only for listed questions
    # the pass's counters and the first page of its findings, tasks and syntheses, together
    "pass_costs (a pass of one task)": 1,
    # a pipeline's pass: the runs its pipeline run kept as no other record's (an HGETALL
    # of the owner its label names) read in that same round trip
    "pass_costs (a pipeline's pass of one task)": 1,
    # a pipeline's agent runs that no other record holds: one HSETNX, one HGETALL; the
    # owners' counts, then their deletion
    "record_unrecorded_run": 1,
    "unrecorded_runs": 1,
    "drop_unrecorded_runs": 2,
}


@dataclass(frozen=True)
class Cost:
    op: str
    round_trips: int
    seconds: float


class Meter:
    """Runs a call through the proxy and records what it cost."""

    def __init__(self, proxy: LatencyProxy) -> None:
        self.proxy = proxy
        self.costs: list[Cost] = []

    def __call__(self, op: str, fn: Callable[[], T]) -> T:
        self.proxy.reset_stats()
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        self.costs.append(Cost(op, self.proxy.stats.exchanges, elapsed))
        return result

    def by_op(self) -> dict[str, int]:
        return {c.op: c.round_trips for c in self.costs}


def text_of(size: int, seed: int = 0) -> str:
    """Deterministic markdown-like text of ``size`` bytes; ``seed`` makes another version."""
    from benchmarks._common import context_text

    return context_text(size, seed=7 + seed)


def prepare(near: Any, scale: Scale) -> None:
    """Fill the swarm (through the direct handle): tasks, queues, agents, findings, context."""
    near.post_tasks([{"queue": QUEUE, "description": f"t{i}"} for i in range(scale.tasks)])
    near.post_tasks(
        [{"queue": f"other-{i}", "description": "elsewhere"} for i in range(scale.queues)]
    )
    for i in range(scale.agents):
        near.register("worker", name=f"agent-{i}")
    near.register("shard", name=SHARD)
    work = [
        {"queue": "reported", "description": f"f{i}", "pass_name": PASS, "parent": SHARD}
        for i in range(scale.findings)
    ]
    near.post_tasks(work)
    for _ in work:
        task = near.claim("reported", worker="near")
        near.report(task.id, task.token, {"summary": "found"})
    near.publish_context(SHARD, text_of(scale.context_bytes), source="prepared.md")
    for i in range(scale.tasks):  # an A2A server's tasks, in two contexts
        near.a2a_save(
            A2A_OWNER, f"a2a-{i}", b"task", context_id=f"ctx-{i % 2}", state=2, timestamp_ns=i
        )


def post_once_waited_for(near: Any) -> None:
    """Post a task to WAITED once a client is blocked waiting for one (the far claim)."""
    deadline = time.monotonic() + 30
    while int(near.redis.info("clients")["blocked_clients"]) < 1:
        assert time.monotonic() < deadline, "the waiting claim never blocked"
        time.sleep(0.005)
    near.post_task(WAITED, "posted while a claim waits")


def every_operation(far: Any, near: Any, cache: ContextCache, meter: Meter, scale: Scale) -> None:
    """Run each core operation once through ``far`` (whose context cache is ``cache``)."""
    meter("ping", far.ping)
    # --- the work queue
    meter("post_task", lambda: far.post_task("posted", "one task"))
    meter("post_tasks, 1 task", lambda: far.post_tasks([{"queue": "posted", "description": "a"}]))
    many = [{"queue": "posted", "description": f"b{i}"} for i in range(100)]
    meter("post_tasks, 100 tasks", lambda: far.post_tasks(many))
    task = meter("claim (tasks pending)", lambda: far.claim(QUEUE, worker="far"))
    assert task is not None
    assert meter("claim (queue empty)", lambda: far.claim("empty", worker="far")) is None
    batch = meter("claim, a batch of 3", lambda: far.claim(QUEUE, worker="far", n=3))
    assert len(batch) == 3
    for op in (
        "claim, waiting until a task is posted",
        "claim, waiting, right after a claim found none",
    ):
        if "after" in op:
            assert far.claim(WAITED, worker="far") is None
        poster = threading.Thread(target=post_once_waited_for, args=(near,))
        poster.start()
        woken = meter(op, lambda: far.claim(WAITED, worker="far", wait_s=30))
        poster.join()
        assert woken is not None and woken.queue == WAITED
    poster = threading.Thread(target=post_once_waited_for, args=(near,))
    poster.start()
    reported, following = meter(
        "report, waiting for the next task after a woken claim",
        lambda: far.report(
            woken.id, woken.token, {"summary": "woken"}, worker="far", claim_next=WAITED,
            wait_s=30,
        ),
    )  # fmt: skip
    poster.join()
    assert following is not None and following.queue == WAITED and not reported.superseded
    meter("renew", lambda: far.renew(task.id, task.token))
    meter("report", lambda: far.report(task.id, task.token, {"summary": "done far away"}))
    found, following = meter(
        "report, claim_next",
        lambda: far.report(batch[0].id, batch[0].token, {"summary": "next"}, claim_next=QUEUE),
    )
    assert following is not None and not found.superseded
    question = far.claim(QUEUE, worker="far")
    meter("answer (the claimed question)", lambda: far.answer(question, question.token, "a"))
    asked = far.claim(QUEUE, worker="far")
    answered, following = meter(
        "answer, claim_next",
        lambda: far.answer(asked, asked.token, "b", worker="far", claim_next=QUEUE),
    )
    assert following is not None and not answered.superseded
    failing = near.claim(QUEUE, worker="near")
    meter("fail", lambda: far.fail(failing.id, failing.token, "broke"))
    released = near.claim(QUEUE, worker="near")
    meter("release", lambda: far.release(released.id, released.token))
    unwanted = near.post_task("cancelled", "not needed")
    meter("cancel", lambda: far.cancel(unwanted.id))
    doomed = near.post_task("dead", "fails for good", max_attempts=1)
    doomed = near.claim("dead", worker="near")
    near.fail(doomed.id, doomed.token, "fatal", retry=False)
    meter("requeue_dead", lambda: far.requeue_dead(doomed.id))
    meter("reap", far.reap)
    meter("get_task", lambda: far.get_task(task.id))
    meter("task_statuses", lambda: far.task_statuses([task.id, "t-gone"]))
    meter("list_tasks (a page of 100)", lambda: far.list_tasks(limit=100))
    held = meter("list_tasks, claimed", lambda: far.list_tasks(status="claimed"))
    assert len(held.items) >= 2 and held.cursor is None  # batch[1:] at least
    with_data = functools.partial(far.list_tasks, status="claimed", with_data=True)
    meter("list_tasks, claimed, with data", with_data)
    none = meter("list_tasks, none match", lambda: far.list_tasks(QUEUE, status="cancelled"))
    assert none.items == () and none.cursor is None
    meter("queue_stats", far.queue_stats)
    meter("pass_stats", lambda: far.pass_stats(PASS))
    meter("shard_stats", lambda: far.shard_stats([SHARD, "nobody"]))
    page = meter("findings (a page)", lambda: far.findings(limit=100))
    meter("findings of a pass", lambda: far.findings(pass_name=PASS, limit=100))
    cited = [f.id for f in page.items[:10]]
    synthesis = meter(
        "synthesize", lambda: far.synthesize(SHARD, PASS, "what the pass found", cited)
    )
    meter("get_synthesis", lambda: far.get_synthesis(synthesis.id))
    # --- contexts: a new version of the scale's size, then reads by a reader that lacks it
    content = text_of(scale.context_bytes, seed=1)
    meter("publish_context, new version", lambda: far.publish_context(SHARD, content, source="b"))
    meter("publish_context, unchanged", lambda: far.publish_context(SHARD, content, source="b"))
    cache.clear()
    meter("get_context, cold", lambda: far.get_context(SHARD))
    meter("get_context, warm (unchanged)", lambda: far.get_context(SHARD))
    cache.clear()
    meter("read_context, cold (10 lines)", lambda: far.read_context(SHARD, lines=(1, 10)))
    cache.clear()
    meter("search_context, cold", lambda: far.search_context(SHARD, "evidence", max_hits=5))
    meter("search_context, warm", lambda: far.search_context(SHARD, "evidence", max_hits=5))
    meter("context_info", lambda: far.context_info(SHARD))
    # --- agents, messages, events
    meter("register", lambda: far.register("worker", name="far-agent"))
    meter("heartbeat", lambda: far.heartbeat("far-agent", current_task=task.id))
    meter("agents", far.agents)
    meter("sweep (nothing stale)", far.sweep)
    meter("send", lambda: far.send("agent-0", "hello", sender="far-agent"))
    meter("broadcast", lambda: far.broadcast("hello all", sender="far-agent"))
    sent = far.send("agent-0", "shown", sender="far-agent")
    meter("inbox", lambda: far.inbox("agent-0"))
    far.send("agent-0", "taken, then given back", sender="far-agent")
    taken = far.inbox("agent-0", limit=1)
    assert taken.read_id is not None  # (a give-back of a read that took nothing: Conflict)
    meter("give_back_inbox", lambda: far.give_back_inbox("agent-0", taken.read_id or ""))
    meter("mark_read", lambda: far.mark_read("agent-0", sent.seq))
    meter(
        "mark_read (by message id: its seq looked up first)",
        lambda: far.mark_read("agent-0", sent.id),
    )
    meter("message_status", lambda: far.message_status(sent.id))
    meter("get_message", lambda: far.get_message("agent-0", sent.id))
    meter("request_synthesis", lambda: far.request_synthesis(SHARD, PASS, "cite everything"))
    meter("events (up to 1,000)", far.events)
    meter("events_trimmed", lambda: far.events_trimmed(0))
    meter("last_event_id", far.last_event_id)
    hook = meter("set_webhook", lambda: far.set_webhook(task.id, "https://example.com/h"))
    meter("webhooks", lambda: far.webhooks(task.id))
    meter("claim_webhook_event", lambda: far.claim_webhook_event(task.id, hook.id, "9-0"))
    meter("delete_webhook", lambda: far.delete_webhook(task.id, hook.id))
    meter("status", far.status)
    meter("recent", far.recent)
    meter("task_costs (a completed task)", lambda: far.task_costs(task.id))
    # --- the a2a-sdk stores
    save = functools.partial(
        far.a2a_save, A2A_OWNER, "a2a-far", b"t", context_id="ctx-0", state=2, timestamp_ns=1
    )
    version = meter("a2a_save (version check, event)", lambda: save(event=b"e", write_id="w"))
    assert version == 1
    meter("a2a_get", lambda: far.a2a_get(A2A_OWNER, "a2a-far"))
    listing = functools.partial(far.a2a_list, A2A_OWNER, page_size=5, context_id="ctx-0", state=2)
    first = meter("a2a_list (a filtered page)", listing)
    assert first.total == 1 + (scale.tasks + 1) // 2 and first.next is not None
    meter("a2a_list (the next page)", lambda: listing(after=first.next))
    meter("a2a_publish", lambda: far.a2a_publish("a2a-far", 2, b"e2"))
    assert len(meter("a2a_events", lambda: far.a2a_events("a2a-far", 0, 0))) == 2
    meter("a2a_delete", lambda: far.a2a_delete(A2A_OWNER, "a2a-far"))
    meter("a2a_destroy", lambda: far.a2a_destroy("a2a-far"))
    # --- last: retiring the pass whose tasks every operation above found
    done = meter("retire_pass (a settled pass)", lambda: far.retire_pass(PASS))
    assert done.tasks == scale.findings and done.findings >= scale.findings
    meter("retired_passes", far.retired_passes)
    # --- what this session's operations cost (retire_questions walks the task index by
    # creation time, a step per 500 tasks of any queue: it grows with the swarm, as a walk)
    meter("mark_stale", lambda: far.mark_stale("far-agent"))
    meter("tally", lambda: far.tally("far-agent", "loop_claims", "s1"))
    meter("join", lambda: far.join("far-agent", lambda stored: {"role": "worker"}))
    meter("retired_questions", far.retired_questions)
    meter("retired_asked (none retired, none listed)", lambda: far.retired_asked(task.id))
    far.post_task("held-lease", "a lease a run holds")

    def held_off() -> None:
        with contextlib.suppress(Conflict):
            far.retire_queues(["posted"], older_than_s=0, unless_open="held-lease")
            raise AssertionError("retire_queues was not held off by an open task")

    meter("retire_queues (held off: refused at once)", held_off)
    far.post_task("costed", "a task of a pass of its own", pass_name="P-costs")
    costed = far.claim("costed", worker="far")
    assert costed is not None
    far.report(costed.id, costed.token, {"summary": "costed"})
    meter("pass_costs (a pass of one task)", lambda: far.pass_costs("P-costs"))
    far.post_task("costed", "a task of a pipeline's pass", pass_name="p: costs")
    meter("pass_costs (a pipeline's pass of one task)", lambda: far.pass_costs("p: costs"))
    meter("record_unrecorded_run", lambda: far.record_unrecorded_run("run-1", "k1", PASS, "a run"))
    meter("unrecorded_runs", lambda: far.unrecorded_runs("run-1"))
    meter("drop_unrecorded_runs", lambda: far.drop_unrecorded_runs(["run-1"]))
