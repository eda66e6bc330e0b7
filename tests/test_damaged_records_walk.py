"""Records damaged around redis-swarm (redis-cli SET, HSET, XADD with junk), met by every
face: refused with one CorruptRecord that says what to do, never a raw JSONDecodeError,
KeyError or TypeError; never shown wrong; one bad record never blocks the others; swarm
doctor counts them. Every test writes the bad data for real, with the raw client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import CorruptRecord, Swarm, TaskStatus
from redis_swarm._errors import TaskDeadLettered
from redis_swarm._keys import Keys

from ._cli import Cli
from ._handles import must
from ._raw import raw_client

KEYS = Keys("test")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _elsewhere(url: str, *args: str) -> Any:
    """``swarm ARGS --json`` run in another process, as another terminal's: this process
    never met the task, so its commands read its route from Redis."""
    env = {**os.environ, "SWARM_URL": url, "SWARM_NAME": "test", "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-m", "redis_swarm", *args, "--json"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.parametrize("junk", ["junk", "{}", "[1]", '{"queue": 5, "status": "claimed"}'])
def test_task_commands_on_a_damaged_record_say_corrupt(redis_url: str, junk: str) -> None:
    task_id = _elsewhere(redis_url, "task", "post", "q", "work")["id"]
    token = _elsewhere(redis_url, "task", "claim", "q", "--worker", "w")["token"]
    with raw_client(redis_url) as r:
        r.hset(KEYS.tasks, task_id, junk)
    calls: dict[str, Callable[[Swarm], object]] = {
        "report": lambda s: s.report(task_id, token, {"summary": "s"}),
        "renew": lambda s: s.renew(task_id, token),
        "release": lambda s: s.release(task_id, token),
        "fail": lambda s: s.fail(task_id, token, "no"),
        "requeue": lambda s: s.requeue_dead(task_id),
    }
    with Swarm(redis_url, swarm="test") as swarm:
        for name, call in calls.items():
            with pytest.raises(CorruptRecord, match=f"task {task_id} is stored corrupt") as info:
                call(swarm)
            assert "swarm doctor" in str(info.value), name
            assert info.value.record_id == task_id
            # (deleting it, as the advice once said, left its pass counting it for good)
            assert "deleting it leaves its pass and queue counting it" in str(info.value)


def test_a_claim_of_a_task_with_damaged_data_buries_it_and_takes_the_next(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        bad = swarm.post_task("q", "bad", data={"x": 1}, priority=5)
        good = swarm.post_task("q", "good", data={"x": 2})
        with raw_client(redis_url) as r:
            r.hset(KEYS.task_data, bad.id, "{not json")
        # No lease on it is handed out: it is dead-lettered at once, its error naming the
        # repair, and the claim takes the next task (tests/test_claim_damaged_batch.py).
        with pytest.warns(TaskDeadLettered, match=f"^task {bad.id} was dead-lettered: "):
            assert must(swarm.claim("q", worker="w")).id == good.id
        assert swarm.queue_stats()["q"]["dead"] == 1
        with pytest.raises(CorruptRecord, match="data is stored corrupt"):
            swarm.get_task(bad.id)
        assert swarm.corrupt_records()["task"] == [bad.id]
        # repaired, it runs again
        with raw_client(redis_url) as r:
            r.hset(KEYS.task_data, bad.id, json.dumps({"x": 1}))
        swarm.requeue_dead(bad.id)
        again = must(swarm.claim("q", worker="w"))
        assert again.id == bad.id and again.data == {"x": 1}
        assert again.status is TaskStatus.CLAIMED


def test_one_agent_record_of_wrong_types_is_left_out_and_counted(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.register("worker", name="w0")
        with raw_client(redis_url) as r:
            r.hset(KEYS.agents, "w1", json.dumps({"id": "w1", "role": 7}))
            r.hset(KEYS.agents, "w2", json.dumps({"id": "w2", "registered_at": "x"}))
        assert [a.id for a in swarm.agents()] == ["w0"]
        status = swarm.status()
        assert [a.id for a in status.roster] == ["w0"] and status.agents.total == 1
        with pytest.raises(CorruptRecord, match="agent w1 is stored corrupt"):
            swarm.get_agent("w1")
        assert swarm.corrupt_records()["agent"] == ["w1", "w2"]
    cli = Cli(redis_url)
    assert "w0" in cli("agents").stdout
    assert cli("status").code == 0 and cli("watch", "--once").code == 0


def test_one_bad_inbox_entry_does_not_block_the_inbox(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.register("worker", name="a")
        swarm.send("a", "first", data={"n": 1})
        with raw_client(redis_url) as r:
            ((_, fields),) = r.xrange(KEYS.inbox("a"))
            r.xadd(KEYS.inbox("a"), {**fields, b"data": b"{bad", b"body": b"second"})
        swarm.send("a", "third")
        cli = Cli(redis_url)
        peeked = cli.json("msg", "inbox", "a", "--peek")
        assert "stored corrupt" in json.dumps(peeked) and "third" in json.dumps(peeked)
        for ack in (False, True):
            inbox = swarm.inbox("a", ack=ack)
            assert [m.body for m in inbox] == ["first", "second", "third"]
            assert inbox[0].data == {"n": 1} and inbox[2].data is None
            assert "stored corrupt" in must(inbox[1].data)["unreadable"]
        assert list(swarm.inbox("a")) == []


def test_records_of_wrong_field_types_are_corrupt(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        tasks = [swarm.post_task("q", f"t{i}") for i in range(3)]
        claimed = must(swarm.claim("q", worker="w"))
        finding = swarm.report(claimed.id, claimed.token, {"summary": "s"})
        synthesis = swarm.synthesize("shard", "P", "so", [], cites_none=True)
        with raw_client(redis_url) as r:
            record = json.loads(r.hget(KEYS.syntheses, synthesis.id))
            r.hset(KEYS.syntheses, synthesis.id, json.dumps({**record, "created_at": "x"}))
            record = json.loads(r.hget(KEYS.findings, finding.id))
            r.hset(KEYS.findings, finding.id, json.dumps({**record, "task_id": 5}))
            changes: tuple[dict[str, Any], ...] = ({"description": 5}, {"created_at": "x"})
            for task, change in zip(tasks[1:], changes, strict=True):
                record = json.loads(r.hget(KEYS.tasks, task.id))
                r.hset(KEYS.tasks, task.id, json.dumps({**record, **change}))
        listed = swarm.list_tasks()
        assert [t.id for t in listed] == [tasks[0].id]
        assert set(listed.corrupt) == {tasks[1].id, tasks[2].id}
        found = swarm.findings()
        assert list(found) == [] and found.corrupt == (finding.id,)
        with pytest.raises(CorruptRecord, match=f"finding {finding.id} is stored corrupt"):
            swarm.get_finding(finding.id)
        with pytest.raises(CorruptRecord, match=f"task {tasks[1].id} is stored corrupt"):
            swarm.get_task(tasks[1].id)
        with pytest.raises(CorruptRecord, match=f"synthesis {synthesis.id} is stored corrupt"):
            swarm.get_synthesis(synthesis.id)
        assert swarm.syntheses().corrupt == (synthesis.id,)
        corrupt = swarm.corrupt_records()
        assert corrupt["finding"] == [finding.id] and corrupt["synthesis"] == [synthesis.id]
        assert corrupt["task"] == sorted(t.id for t in tasks[1:])
    cli = Cli(redis_url)
    assert cli("status").code == 0 and cli("findings").code == 0


def test_a_counter_holding_no_integer_is_said_with_its_repair(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.post_task("q1", "a", pass_name="P")
        with raw_client(redis_url) as r:
            r.hset(KEYS.counts, "#seq", "hello")
        with pytest.raises(CorruptRecord, match="swarm doctor --recount"):
            swarm.post_task("q1", "b")
        check = swarm.check_counters()
        assert not check.ok and any("#seq" in w for w in check.warnings)
        with raw_client(redis_url) as r:
            r.hset(KEYS.counts, "#seq", "1")
            r.hset(KEYS.counts, "q1|pending", "abc")
        with pytest.raises(CorruptRecord, match="swarm doctor --recount"):
            swarm.claim("q1", worker="w")
        # The views that read it name it (a raw ValueError of int() before).
        for view in (swarm.queue_stats, swarm.status):
            with pytest.raises(CorruptRecord, match=r"counter .*pending.*--recount"):
                view()
        with raw_client(redis_url) as r:
            r.hset(KEYS.counts, "q1|pending", "1")
            (field,) = [f for f in r.hkeys(KEYS.pass_counts) if f.endswith(b"|pending")]
            r.hset(KEYS.pass_counts, field, "zz")
        with pytest.raises(CorruptRecord, match=r"counter pass 'P' pending .*--recount"):
            swarm.status()
