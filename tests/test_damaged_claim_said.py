"""A claim that meets a task whose data cannot be read (written around redis-swarm)
dead-letters it and hands out the others: the caller is told so, not only the event stream.
The Python API warns (``TaskDeadLettered``: its id and why, naming the repair; the claim's
return shapes unchanged), ``swarm task claim`` and ``task report --claim-next`` say it on
stderr (their exit status as before), the MCP ``claim_task`` in its result, all in the one
wording. ``get_task`` of such a task still refuses its data, but carries its record
(``TaskDataDamaged``), and ``swarm task show`` shows the record (status, dead reason) with
the repair instead of refusing the whole show."""

from __future__ import annotations

import json
import warnings
from typing import Any

import anyio
import pytest

from redis_swarm import CorruptRecord, Swarm, Task, TaskStatus
from redis_swarm._errors import TaskDataDamaged, TaskDeadLettered
from redis_swarm._keys import Keys
from redis_swarm.mcp_server import build_server

from ._cli import Cli
from ._handles import must
from .mcp_server._helpers import connect

KEYS = Keys("test")
Q = "said"
JUNK = "{not json"


def _repair(task: Task) -> str:
    return f"redis-cli HSET '{KEYS.task_data}' {task.id} 'JSON' with its data"


def _damaged(swarm: Swarm, raw: Any, **kw: Any) -> Task:
    task = swarm.post_task(Q, "bad", data={"n": 1}, **kw)
    raw.hset(KEYS.task_data, task.id, JUNK)
    return task


def _says(text: str, task: Task) -> None:
    """``text`` says, in the one wording, that ``task`` was dead-lettered and how to repair
    it."""
    flat = " ".join(text.split())
    assert f"task {task.id} was dead-lettered: task {task.id}'s data is stored corrupt" in flat
    assert _repair(task) in flat, flat
    assert f"swarm task requeue {task.id}" in flat


def test_the_python_claim_warns_of_what_it_dead_lettered(redis_url: str, raw: Any) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        bad = _damaged(swarm, raw, priority=5)
        good = swarm.post_task(Q, "good", data={"n": 2})
        with pytest.warns(TaskDeadLettered) as said:
            got = must(swarm.claim(Q, worker="w"))  # (the good task, as before)
        assert got.id == good.id and got.data == {"n": 2}
        [warning] = said.list
        dead = warning.message
        assert isinstance(dead, TaskDeadLettered)
        assert dead.task_id == bad.id and dead.reason.startswith(f"task {bad.id}'s data")
        _says(str(dead), bad)
        assert warning.filename == __file__  # (said at the caller's line)
        # only the damaged one: None, as an empty queue's, and said all the same
        worse = _damaged(swarm, raw)
        with pytest.warns(TaskDeadLettered, match=f"^task {worse.id} was dead-lettered: "):
            assert swarm.claim(Q, worker="w", n=2) == []
        assert swarm.get_task(got.id).status is TaskStatus.CLAIMED


def test_a_claim_whose_warning_is_made_an_error_keeps_no_lease(redis_url: str, raw: Any) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        bad = _damaged(swarm, raw, priority=5)
        good = swarm.post_task(Q, "good")
        with warnings.catch_warnings():
            warnings.simplefilter("error", TaskDeadLettered)
            with pytest.raises(TaskDeadLettered) as raised:
                swarm.claim(Q, worker="w", n=2)
        assert raised.value.task_id == bad.id
        # the good task went back to its queue: nobody holds it unseen
        assert swarm.get_task(good.id).status is TaskStatus.PENDING
        assert swarm.queue_stats()[Q]["claimed"] == 0
        assert must(swarm.claim(Q, worker="w")).id == good.id


def test_a_face_collects_them_instead_of_a_warning(redis_url: str, raw: Any) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        bad = _damaged(swarm, raw)
        with TaskDeadLettered.collected() as dead:  # (a warning here fails: the suite's filter)
            assert swarm.claim(Q, worker="w") is None
        assert [d.task_id for d in dead] == [bad.id]
        assert TaskDeadLettered.collector() is None


def test_swarm_task_claim_says_it_on_stderr(redis_url: str, raw: Any) -> None:
    cli = Cli(redis_url)
    with Swarm(redis_url, swarm="test") as swarm:
        bad = _damaged(swarm, raw, priority=5)
        good = swarm.post_task(Q, "good")
        out = cli("task", "claim", Q, "--worker", "w")  # (exit 0: a good task claimed)
        assert good.id in out.stdout and bad.id not in out.stdout
        _says(out.stderr, bad)
        assert "warning: task" in out.stderr
        # the only task met was damaged: nothing to claim (exit 3), and why
        worse = _damaged(swarm, raw)
        out = cli("task", "claim", Q, "--worker", "w", expect=3)
        _says(out.stderr, worse)
        assert f"nothing to claim in {Q}" in out.stderr
        # --json: the stdout as before, a JSON line a warning on stderr
        third = _damaged(swarm, raw)
        out = cli("task", "claim", Q, "--worker", "w", "--count", "2", "--json", expect=3)
        lines = [json.loads(line) for line in out.stderr.splitlines() if '"warning"' in line]
        assert lines[0]["warning"] == "TaskDeadLettered" and lines[0]["task_id"] == third.id
        _says(lines[0]["message"], third)
        assert json.loads(out.stderr.splitlines()[-1])["error"] == "Empty"


def test_task_report_claim_next_says_it(redis_url: str, raw: Any) -> None:
    cli = Cli(redis_url)
    with Swarm(redis_url, swarm="test") as swarm:
        first = swarm.post_task(Q, "first", priority=9)
        token = cli.json("task", "claim", Q, "--worker", "w")["token"]
        bad = _damaged(swarm, raw)
        out = cli(
            "task", "report", first.id, "--token", token, "--summary", "ok", "--claim-next", Q
        )
        assert f"nothing to claim in {Q}" in out.stdout
        _says(out.stderr, bad)


def test_the_mcp_claim_task_says_it_in_its_result(redis_url: str, raw: Any) -> None:
    with Swarm(redis_url, swarm="test") as core:
        bad = _damaged(core, raw, priority=5)
        good = core.post_task(Q, "good")
        worse: list[Task] = []

        async def body() -> None:
            async with connect(build_server(core, role="worker")) as worker:
                claimed, _ = await worker("claim_task", queue=Q)
                assert claimed["task"]["id"] == good.id
                [said] = claimed["dead_lettered"]
                _says(said, bad)
                worse.append(_damaged(core, raw))
                none, _ = await worker("claim_task", queue=Q)
                assert none["task"] is None
                [said] = none["dead_lettered"]
                _says(said, worse[0])
                # a claim that met nothing damaged says nothing of it
                again, _ = await worker("claim_task", queue=Q)
                assert "dead_lettered" not in again
                # report_finding's claim_next says it so too
                worse.append(_damaged(core, raw))
                done, _ = await worker(
                    "report_finding", task_id=good.id, summary="ok", claim_next=Q
                )
                assert done["completed"] is True and done["next_task"] is None
                [said] = done["dead_lettered"]
                _says(said, worse[1])

        anyio.run(body)


def test_get_task_refuses_damaged_data_but_carries_the_record(redis_url: str, raw: Any) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        bad = _damaged(swarm, raw)
        with pytest.raises(TaskDataDamaged) as open_one:
            swarm.get_task(bad.id)
        assert isinstance(open_one.value, CorruptRecord)  # (as before, for who catches that)
        assert open_one.value.task.status is TaskStatus.PENDING
        assert open_one.value.task.data is None  # (not its data: the error says so)
        assert open_one.value.repair == _repair(bad)
        assert f"swarm task cancel {bad.id}" in str(open_one.value)
        with pytest.warns(TaskDeadLettered):
            assert swarm.claim(Q, worker="w") is None
        with pytest.raises(TaskDataDamaged, match="data is stored corrupt") as dead:
            swarm.get_task(bad.id)
        record = dead.value.task
        assert record.id == bad.id and record.status is TaskStatus.DEAD
        assert record.attempts == 1 and record.description == "bad"
        assert record.dead_reason is not None and "stored corrupt" in record.dead_reason
        said = str(dead.value)
        assert _repair(bad) in said and f"swarm task requeue {bad.id}" in said
        # a record that cannot be read itself is refused as before: nothing to show
        raw.hset(KEYS.tasks, bad.id, JUNK)
        with pytest.raises(CorruptRecord) as unreadable:
            swarm.get_task(bad.id)
        assert not isinstance(unreadable.value, TaskDataDamaged)


def test_task_show_shows_the_record_of_a_task_whose_data_is_damaged(
    redis_url: str, raw: Any
) -> None:
    cli = Cli(redis_url)
    with Swarm(redis_url, swarm="test") as swarm:
        bad = _damaged(swarm, raw)
        with pytest.warns(TaskDeadLettered):
            assert swarm.claim(Q, worker="w") is None
        reason = must(json.loads(raw.hget(KEYS.tasks, bad.id))["dead_reason"])
    out = cli("task", "show", bad.id)
    shown = " ".join(out.stdout.split())
    assert bad.id in shown and "dead" in shown and "dead reason" in shown
    assert " ".join(reason.split())[:60] in shown
    assert "data is stored corrupt" in out.stderr
    assert _repair(bad) in " ".join(out.stderr.split())
    assert f"swarm task requeue {bad.id}" in " ".join(out.stderr.split())
    got = cli.json("task", "show", bad.id)
    assert got["status"] == "dead" and got["dead_reason"] == reason and got["attempts"] == 1
    assert "data" not in got  # (not handed out, as none or as good)
    assert _repair(bad) in got["data_damaged"]
