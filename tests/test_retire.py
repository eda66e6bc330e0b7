"""Retiring a settled pass (``retire_pass``, ``swarm retire``): its settled tasks, their data
and every finding of them removed, every counter brought down by exactly that, the swarm's
invariants true after every step; refused while the pass has open tasks; a dry run changes
nothing; lineage says a cited finding was retired; a worker may not retire."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Generator
from typing import Any

import pytest
import redis

from redis_swarm import (
    AlreadyCompleted,
    Conflict,
    NotFound,
    PermissionDenied,
    Settings,
    Swarm,
    apply_role,
)
from redis_swarm._keys import Keys, label_id
from redis_swarm._ops import retire
from redis_swarm._pipeline.lineage import lineage, lineage_text
from redis_swarm._protocol import Call

from ._cli import Cli
from ._handles import must
from ._invariants import check_swarm
from ._servers import RedisServer
from .test_script_keys import ran  # noqa: F401 (the fixture that checks a script's keys)

K = Keys("test")
PASS = "P 1: the pass to retire"  # any text is a pass name


def _settled_pass(swarm: Swarm, name: str = PASS, n: int = 3) -> dict[str, Any]:
    """A settled pass over two queues and a shard: ``n`` completed tasks (one with data, one
    with a dedupe key, one with two superseded findings and a webhook), a dead task and a
    cancelled one. Returns what it made."""
    made: dict[str, Any] = {"tasks": [], "findings": []}
    for i in range(n):
        queue = "q" if i % 2 == 0 else "q2"
        task = swarm.post_task(
            queue, f"work {i}", {"i": i}, pass_name=name, parent="s1",
            dedupe_key=f"d{i}" if i == 1 else None,
        )  # fmt: skip
        claimed = must(swarm.claim(queue, worker="w1"))
        assert claimed.id == task.id
        found = swarm.report(claimed.id, claimed.token, {"summary": f"found {i}"})
        made["tasks"].append(task.id)
        made["findings"].append(found.id)
        if i == 0:
            for late in ("late one", "late two"):  # kept, superseded
                with pytest.raises(AlreadyCompleted) as refused:
                    swarm.report(claimed.id, claimed.token, {"summary": late})
                made["findings"].append(refused.value.finding_id)
            swarm.set_webhook(task.id, "https://example.com/hook")
            made["hooked"] = task.id
    doomed = swarm.post_task("q", "fails for good", pass_name=name, parent="s1", max_attempts=1)
    lease = must(swarm.claim("q", worker="w1"))
    swarm.fail(lease.id, lease.token, "fatal", retry=False)
    unwanted = swarm.post_task("q2", "not needed", pass_name=name)
    swarm.cancel(unwanted.id)
    made["tasks"] += [doomed.id, unwanted.id]
    return made


def _other_work(swarm: Swarm) -> None:
    """Work the retirement must not touch: another pass (settled and open), and no pass."""
    swarm.post_task("q", "other", pass_name="other", parent="s1")
    lease = must(swarm.claim("q", worker="w2"))
    swarm.report(lease.id, lease.token, {"summary": "other found"})
    swarm.post_task("q", "other, still open", pass_name="other", parent="s1")
    swarm.post_task("q2", "no pass at all")


def _shard_findings(swarm: Swarm) -> int:
    return swarm.shard_stats(["s1"])["s1"]["findings"]


def test_retiring_a_settled_pass_leaves_nothing_of_it(swarm: Swarm, raw: redis.Redis) -> None:
    made = _settled_pass(swarm)
    _other_work(swarm)
    queues_before = swarm.queue_stats()
    other_before = swarm.pass_stats("other")
    shard_before = _shard_findings(swarm)
    assert raw.exists(K.webhooks(made["hooked"]))

    done = swarm.retire_pass(PASS)

    assert (done.pass_name, done.tasks, done.findings, done.kept, done.dry_run) == (
        PASS, 5, 5, 0, False,
    )  # fmt: skip
    check_swarm(raw, "test")
    # nothing of the pass is left: no task, finding, index entry or key of it
    stored = " ".join(str(v) for v in raw.hgetall(K.tasks).values())
    assert not any(tid in stored for tid in made["tasks"])
    assert not set(made["findings"]) & set(raw.hkeys(K.findings))
    assert not set(made["findings"]) & set(raw.zrange(K.finding_index, 0, -1))
    assert not set(made["tasks"]) & set(raw.zrange(K.task_index, 0, -1))
    assert not set(made["tasks"]) & set(raw.hkeys(K.task_data))
    assert not raw.hgetall(K.dedupe)
    assert not raw.exists(K.pass_tasks(PASS), K.findings_by("pass", PASS), K.dead("q"))
    assert not raw.exists(K.webhooks(made["hooked"]))
    assert not [f for f in raw.hkeys(K.pass_counts) if str(f).startswith(label_id(PASS))]
    # the counters went down by exactly what went; the other pass is untouched
    after = swarm.queue_stats()
    assert after["q"] == {**queues_before["q"], "completed": 1, "dead": 0}
    assert after["q2"] == {**queues_before["q2"], "completed": 0, "cancelled": 0}
    assert swarm.pass_stats("other") == other_before
    assert _shard_findings(swarm) == shard_before - 5
    assert [p.name for p in swarm.status().passes] == ["other"]
    # one event per step, and the record lineage reads
    retired = [e for e in swarm.events() if e.type == "pass.retired"]
    assert {e.fields["pass"] for e in retired} == {PASS}
    assert sum(int(e.fields["tasks"]) for e in retired) == 5
    assert sum(int(e.fields["findings"]) for e in retired) == 5
    record = swarm.retired_passes()[PASS]
    assert (record.tasks, record.findings) == (5, 5) and record.at
    # again: nothing left to remove, and not an unknown pass
    assert swarm.retire_pass(PASS).tasks == 0
    check_swarm(raw, "test")


def test_a_pass_with_open_tasks_is_refused(swarm: Swarm, raw: redis.Redis) -> None:
    _settled_pass(swarm)
    swarm.post_task("q", "still to do", pass_name=PASS)
    before = raw.hlen(K.tasks), raw.hlen(K.findings)
    with pytest.raises(Conflict, match=re.escape(f'swarm task wait --pass "{PASS}"')) as refusal:
        swarm.retire_pass(PASS)
    assert "1 pending" in str(refusal.value) and "cancel" in str(refusal.value)
    with pytest.raises(Conflict):
        swarm.retire_pass(PASS, dry_run=True)
    assert (raw.hlen(K.tasks), raw.hlen(K.findings)) == before
    with pytest.raises(NotFound, match="no task has ever been posted to pass"):
        swarm.retire_pass("no such pass")
    check_swarm(raw, "test")


def _contents(raw: redis.Redis) -> dict[str, Any]:
    """Every key of the swarm with what it holds (DUMP's bytes follow a hash table's order,
    which reads may change)."""
    read: dict[str, Callable[[str], Any]] = {
        "hash": raw.hgetall, "zset": lambda key: raw.zrange(key, 0, -1, withscores=True),
        "list": lambda key: raw.lrange(key, 0, -1), "string": raw.get, "stream": raw.xrange,
    }  # fmt: skip
    return {str(key): read[str(raw.type(key))](key) for key in raw.scan_iter()}


def test_a_dry_run_counts_and_removes_nothing(swarm: Swarm, raw: redis.Redis) -> None:
    _settled_pass(swarm)
    _other_work(swarm)
    before = _contents(raw)
    seen = swarm.retire_pass(PASS, dry_run=True)
    assert (seen.tasks, seen.findings, seen.kept, seen.dry_run) == (5, 5, 0, True)
    assert _contents(raw) == before
    assert not [e for e in swarm.events() if e.type == "pass.retired"]
    done = swarm.retire_pass(PASS)
    assert (done.tasks, done.findings) == (seen.tasks, seen.findings)


def _first_steps(op: Generator[Any, Any, Any], steps: int) -> Generator[Any, Any, bool]:
    """Drive ``op`` through its first ``steps`` script calls, then stop it (as a process that
    dies mid-way would); returns whether it had finished by then."""
    request, made = op.send(None), 0
    while True:
        calls = [r for r in getattr(request, "items", (request,)) if isinstance(r, Call)]
        if calls and made == steps:
            op.close()
            return False
        made += len(calls)
        try:
            request = op.send((yield request))
        except StopIteration:
            return True


def test_a_big_pass_is_retired_in_steps_each_leaving_the_swarm_whole(
    raw: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retire, "RETIRE_CHUNK", 4)
    with Swarm(redis_url, swarm="test") as swarm:
        _settled_pass(swarm, n=13)  # 15 tasks, 15 findings
        _other_work(swarm)
        runs = 0
        # five steps at a time, stopped between: the swarm is whole after each, and the next
        # run goes on with what is left (it walks the findings left first)
        while not swarm._run(_first_steps(retire.retire_pass(swarm._ctx, PASS), 5)):
            runs += 1
            check_swarm(raw, "test")
            assert runs < 10
        assert runs >= 2, runs
        check_swarm(raw, "test")
        record = swarm.retired_passes()[PASS]
        assert (record.tasks, record.findings) == (15, 15)
        assert len([e for e in swarm.events() if e.type == "pass.retired"]) > 3
        assert not raw.exists(K.pass_tasks(PASS))
        assert swarm.retire_pass(PASS).tasks == 0


def _posting_midway(
    op: Generator[Any, Any, Any], post: Callable[[], Any]
) -> Generator[Any, Any, Any]:
    """Drive ``op`` to its end, calling ``post`` once after its first script call."""
    request, posted = op.send(None), False
    while True:
        reply = yield request
        if not posted and any(isinstance(r, Call) for r in getattr(request, "items", (request,))):
            post()
            posted = True
        try:
            request = op.send(reply)
        except StopIteration as stop:
            return stop.value


def test_a_task_posted_while_it_runs_is_kept(
    raw: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retire, "RETIRE_CHUNK", 4)
    with Swarm(redis_url, swarm="test") as swarm:
        _settled_pass(swarm, n=9)
        late = functools.partial(swarm.post_task, "q", "posted meanwhile", pass_name=PASS)
        done = swarm._run(_posting_midway(retire.retire_pass(swarm._ctx, PASS), late))
        assert (done.tasks, done.findings, done.kept) == (11, 11, 1)
        check_swarm(raw, "test")
        assert swarm.pass_stats(PASS)["pending"] == 1
        assert [p.name for p in swarm.status().passes] == [PASS]


def test_lineage_says_a_cited_finding_was_retired(swarm: Swarm, raw: redis.Redis) -> None:
    made = _settled_pass(swarm)
    synthesis = swarm.synthesize("s1", PASS, "what the pass found", made["findings"][:2])
    swarm.retire_pass(PASS)
    check_swarm(raw, "test")  # a synthesis of a retired pass may cite what went
    tree = lineage(swarm, synthesis.id)
    assert [f["retired"]["pass"] for f in tree["findings"]] == [PASS, PASS]
    text = "\n".join(lineage_text(tree))
    assert f"(retired with pass {PASS} on " in text and "(missing)" not in text


def test_the_cli_retires_and_says_what_went(cli: Cli, redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        _settled_pass(swarm)
    assert cli("retire", PASS, "--dry-run").stdout == (
        f"would retire pass {PASS}: 5 tasks, 5 findings (0 open tasks kept)\n"
    )
    assert cli.json("retire", PASS)["tasks"] == 5
    assert cli("retire", "nope", expect=None).code != 0


def test_a_worker_may_not_retire(redis_server: RedisServer, redis_url: str) -> None:
    settings = Settings.from_url(redis_url, swarm="test")
    users = {
        role: apply_role(settings, role, f"retire-{role}").user for role in ("worker", "shard")
    }

    def handle(role: str) -> Swarm:
        user = users[role]
        return Swarm(
            f"redis://{user.user}:{user.password}@127.0.0.1:{redis_server.port}", swarm="test"
        )

    try:
        with Swarm(redis_url, swarm="test") as admin:
            admin.load_functions()
            _settled_pass(admin)
        with handle("worker") as worker, pytest.raises(PermissionDenied):
            worker.retire_pass(PASS)
        with handle("worker") as worker:
            assert worker.pass_stats(PASS)["completed"] == 3  # nothing went
            assert worker.retired_passes() == {}  # (a worker may read the records)
        with handle("shard") as shard:
            assert shard.retire_pass(PASS).tasks == 5
    finally:
        client = redis_server.client()
        client.acl_deluser(*(user.user for user in users.values()))
        client.close()


def test_the_script_touches_only_the_keys_it_is_given(
    ran: set[str],  # noqa: F811 (the fixture)
    server_url: str,
) -> None:
    with Swarm(server_url, swarm="test") as swarm:
        _settled_pass(swarm)
        _other_work(swarm)
        assert swarm.retire_pass(PASS, dry_run=True).tasks == 5
        assert swarm.retire_pass(PASS).tasks == 5
    assert "pass_retire" in ran
