"""A claim that meets a task whose data cannot be read (written around redis-swarm)
dead-letters it and hands out the others: the caller is told so, not only the event stream.
The Python API warns (``TaskDeadLettered``: its id and why, naming the repair; the claim's
return shapes unchanged), ``swarm task claim`` and ``task report --claim-next`` say it on
stderr (their exit status as before), the MCP ``claim_task`` in its result, all in the one
wording. ``get_task`` of such a task still refuses its data, but carries its record
(``TaskDataDamaged``), and ``swarm task show`` shows the record (status, dead reason) with
the repair instead of refusing the whole show."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest

from redis_swarm import CorruptRecord, Swarm, Task, TaskStatus
from redis_swarm._errors import TaskDataDamaged, TaskDeadLettered
from redis_swarm._keys import Keys
from redis_swarm.mcp_server import build_server

from ._cli import Cli
from ._handles import must
from ._raw import raw_client
from ._servers import RedisServer, ServerFactory
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


# --- the operation stays I/O-free: its shell says what it dead-lettered, at the caller's line


def test_the_claim_operation_yields_a_notice_and_warns_nothing_itself(
    redis_url: str, raw: Any
) -> None:
    """The operation hands its shell a Notice (one TaskDeadLettered per task) and reads no
    warnings filter nor collector: driven by hand, it warns nothing, however the caller is
    set up."""
    from redis_swarm._ops import claiming
    from redis_swarm._protocol import Notice

    with Swarm(redis_url, swarm="test") as swarm:
        bad = _damaged(swarm, raw)
        op = claiming.claim(swarm._ctx, Q, worker="w")
        notices: list[Notice] = []

        def by_hand() -> Any:
            step: Any = next(op)
            while True:
                if isinstance(step, Notice):
                    notices.append(step)
                    reply = None  # (said: what a shell answers)
                else:
                    reply = swarm._attempt(step)
                try:
                    step = op.send(reply)
                except StopIteration as stop:
                    return stop.value

        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            assert by_hand() is None
        assert not seen, [str(w.message) for w in seen]
        [notice] = notices
        [dead] = notice.said
        assert isinstance(dead, TaskDeadLettered) and dead.task_id == bad.id


def _attributed(said: list[warnings.WarningMessage]) -> list[str]:
    return [w.filename for w in said if issubclass(w.category, TaskDeadLettered)]


def _line_of(text: str) -> int:
    """The number of the one line of this file that ends with ``text``."""
    [number] = [
        i for i, line in enumerate(Path(__file__).read_text().splitlines(), 1)
        if line.endswith(text)
    ]  # fmt: skip
    return number


def _lines(said: list[warnings.WarningMessage]) -> list[tuple[str, int]]:
    return [(w.filename, w.lineno) for w in said if issubclass(w.category, TaskDeadLettered)]


def test_the_warning_names_the_callers_line_however_the_claim_is_run(
    redis_url: str, raw: Any
) -> None:
    """Said at the line that called the claim: a plain call, an awaited one, two claims an
    ``asyncio.gather`` runs (never a line of redis-swarm or of the event loop); one a thread
    pool runs is said past redis-swarm and the pool (its caller is on no stack of that
    thread), never at a line of redis-swarm. Worked out only when a warning is said: the
    claims that meet no damaged task pay nothing for it."""
    from redis_swarm import AsyncSwarm

    with Swarm(redis_url, swarm="test") as swarm, warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _damaged(swarm, raw)
        assert swarm.claim(Q, worker="w") is None
        assert _attributed(said) == [__file__]
        said.clear()
        _damaged(swarm, raw)
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(swarm.claim, Q, worker="w").result() is None
        [where] = _attributed(said)
        assert "redis_swarm" not in where and "concurrent" not in where, where
        said.clear()

        async def body() -> None:
            async with AsyncSwarm(redis_url, swarm="test") as handle:
                _damaged(swarm, raw)
                assert await handle.claim(Q, worker="w") is None
                assert _attributed(said) == [__file__]
                said.clear()
                _damaged(swarm, raw)
                _damaged(swarm, raw)
                got = await asyncio.gather(
                    handle.claim(Q, worker="a", n=1), handle.claim(Q, worker="b", n=1)
                )
                assert [len(tasks) for tasks in got] == [0, 0]
                # (at the line that ran the loop: asyncio.run's, below)
                ran_the_loop = _line_of("asyncio.run(body())  # (the gather's warnings' line)")
                assert _lines(said) == [(__file__, ran_the_loop)] * 2

        asyncio.run(body())  # (the gather's warnings' line)


def test_an_async_claim_whose_warning_is_an_error_keeps_no_lease(redis_url: str, raw: Any) -> None:
    from redis_swarm import AsyncSwarm

    with Swarm(redis_url, swarm="test") as swarm:
        bad = _damaged(swarm, raw, priority=5)
        good = swarm.post_task(Q, "good")

        async def body() -> None:
            async with AsyncSwarm(redis_url, swarm="test") as handle:
                with pytest.raises(TaskDeadLettered) as raised:
                    await handle.claim(Q, worker="w", n=2)
                assert raised.value.task_id == bad.id

        with warnings.catch_warnings():
            warnings.simplefilter("error", TaskDeadLettered)
            asyncio.run(body())
        assert swarm.get_task(good.id).status is TaskStatus.PENDING


# --- every face says it


def test_the_loop_hook_tells_the_session_what_its_claim_dead_lettered(
    redis_url: str, raw: Any, tmp_path: Path
) -> None:
    cli = Cli(redis_url, env={"SWARM_AGENT": "", "SWARM_HOME": str(tmp_path)})
    payload = {"session_id": "s-1", "hook_event_name": "Stop", "cwd": str(tmp_path),
               "transcript_path": str(tmp_path / "t.jsonl"), "stop_hook_active": False,
               "last_assistant_message": "done"}  # fmt: skip
    with Swarm(redis_url, swarm="test") as swarm:
        bad = _damaged(swarm, raw, priority=5)
        good = swarm.post_task(Q, "the good one")
        args = ("hook", "Stop", "--client", "claude", "--loop", "--queue", Q)
        answer = json.loads(cli(*args, input=json.dumps(payload)).stdout)
        assert "Next task for you" in answer["reason"] and good.id in answer["reason"]
        _says(answer["reason"], bad)
        # the only task met was damaged: the session stops, told why it got none
        worse = _damaged(swarm, raw, priority=9)
        payload["session_id"] = "s-2"
        answer = json.loads(cli(*args, input=json.dumps(payload)).stdout)
        assert "reason" not in answer
        _says(answer["systemMessage"], worse)


def test_next_question_says_what_it_dead_lettered(redis_url: str, raw: Any) -> None:
    from redis_swarm._keys import ask_queue

    with Swarm(redis_url, swarm="test") as core:
        queue = ask_queue("shard-t")
        bad = core.post_task(queue, "Who?", data={"asker": "w"})
        raw.hset(KEYS.task_data, bad.id, JUNK)

        async def body() -> None:
            async with connect(build_server(core, role="shard", name="shard-t")) as shard:
                none, _ = await shard("next_question")
                assert none["question"] is None
                [said] = none["dead_lettered"]
                _says(said, bad)

        anyio.run(body)


def test_swarm_run_says_it_as_the_cli_does(redis_url: str, raw: Any, tmp_path: Path) -> None:
    cli = Cli(redis_url)
    with Swarm(redis_url, swarm="test") as swarm:
        bad = _damaged(swarm, raw, priority=5)
        swarm.post_task(Q, "good")
        args = ("run", "--queue", Q, "--exec", "echo done", "--max-tasks", "1", "--idle-exit", "1")
        out = cli(*args, expect=None)
        assert f"warning: task {bad.id} was dead-lettered: " in out.stderr, out
        _says(out.stderr, bad)
        assert "TaskDeadLettered" not in out.stderr  # (no Python warning)


def test_the_pipeline_lease_claim_says_it_as_the_cli_does(
    redis_url: str, raw: Any, tmp_path: Path
) -> None:
    from redis_swarm._pipeline import load_plan
    from redis_swarm._pipeline.lease import RunLease
    from redis_swarm._pipeline.names import lease_queue

    from .test_pipeline_run import plan_text

    plan = load_plan(plan_text(tmp_path))
    lines: list[str] = []
    with Swarm(redis_url, swarm="test") as swarm:
        stray = swarm.post_task(lease_queue("audit"), "stray", data={"n": 1}, priority=9)
        raw.hset(KEYS.task_data, stray.id, JUNK)
        lease = RunLease(swarm, plan, holder="run-a", say=lines.append)
        try:
            assert lease.acquire()
        finally:
            lease.release()
    [line] = [x for x in lines if stray.id in x]
    assert line.startswith(f"warning: task {stray.id} was dead-lettered: task {stray.id}'s data")


# --- said when the claim fails afterwards


def _dead_soon(raw: Any, task: Task) -> None:
    deadline = time.monotonic() + 20
    while json.loads(raw.hget(KEYS.tasks, task.id))["status"] != "dead":
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _kill_once_dead(server: RedisServer, raw: Any, task: Task) -> threading.Thread:
    """Kill ``server`` once ``task`` is dead-lettered: the claim that did it, waiting on for
    another task, loses its connection mid-wait."""

    def kill() -> None:
        _dead_soon(raw, task)
        server.kill()

    killer = threading.Thread(target=kill)
    killer.start()
    return killer


@pytest.mark.parametrize("face", ["cli", "mcp"])
def test_a_claim_that_fails_after_dead_lettering_still_says_it(
    servers: ServerFactory, face: str
) -> None:
    """swarm task claim (on stderr, before its error) and the MCP claim_task (in its error)
    say what the claim dead-lettered before its connection was lost mid-wait."""
    server = servers.start()
    url = f"{server.url}?retries=0"
    raw = raw_client(server.url, decode_responses=True)
    with Swarm(url, swarm="test") as swarm:
        bad = _damaged(swarm, raw)
        killer = _kill_once_dead(server, raw, bad)
        if face == "cli":
            out = Cli(url)("task", "claim", Q, "--worker", "w", "--wait", "30", expect=None)
            assert out.code not in (0, 3), out
            _says(out.stderr, bad)
        else:
            error: list[str] = []

            async def body() -> None:
                async with connect(build_server(swarm, role="worker")) as worker:
                    error.append(await worker.error("claim_task", queue=Q, wait_s=30))

            anyio.run(body)
            assert "ConnectionFailed" in error[0] and "dead_lettered" in error[0]
            _says(error[0].replace('\\"', '"'), bad)
        killer.join(30)
    raw.close()


# --- one wording of data stored corrupt


def test_data_stored_corrupt_is_said_in_one_wording(redis_url: str, raw: Any) -> None:
    from redis_swarm._ops._work import data_corrupt, task_from

    with Swarm(redis_url, swarm="test") as swarm:
        bad = _damaged(swarm, raw)
        record = raw.hget(KEYS.tasks, bad.id)
        with pytest.raises(CorruptRecord) as read:
            task_from(record, JUNK)
        why = str(read.value).split("(", 1)[1].split("): ", 1)[0]
        assert str(read.value) == data_corrupt(bad.id, why, None, TaskStatus.PENDING)
        with pytest.raises(TaskDataDamaged) as shown:
            swarm.get_task(bad.id)
        assert str(shown.value) == data_corrupt(bad.id, why, KEYS.task_data, TaskStatus.PENDING)
        with pytest.warns(TaskDeadLettered) as said:
            swarm.claim(Q, worker="w")
        dead = said.list[0].message
        assert isinstance(dead, TaskDeadLettered)
        assert dead.reason == data_corrupt(bad.id, why, KEYS.task_data, TaskStatus.DEAD)
        with pytest.raises(TaskDataDamaged) as after:
            swarm.get_task(bad.id)
        assert str(after.value) == dead.reason  # (dead now: the same words, the same step)


# --- an interrupt while it is said, the pipeline's take-back, the hook's failed claim


def test_an_interrupt_while_the_warning_is_said_keeps_no_lease(
    redis_url: str, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or a ``showwarning`` that raises) while the shell says the warning: the good
    tasks the claim leased go back, as at an interrupted claim, and the interrupt goes on."""

    def interrupted(*_args: Any, **_kw: Any) -> None:
        raise KeyboardInterrupt

    with Swarm(redis_url, swarm="test") as swarm:
        bad = _damaged(swarm, raw, priority=5)
        good = swarm.post_task(Q, "good")
        with warnings.catch_warnings():
            warnings.simplefilter("always", TaskDeadLettered)
            monkeypatch.setattr(warnings, "showwarning", interrupted)
            with pytest.raises(KeyboardInterrupt):
                swarm.claim(Q, worker="w", n=2)
        assert swarm.get_task(good.id).status is TaskStatus.PENDING
        assert swarm.queue_stats()[Q]["claimed"] == 0
        with pytest.raises(TaskDataDamaged):  # (dead-lettered all the same)
            swarm.get_task(bad.id)
        assert must(swarm.claim(Q, worker="w")).id == good.id


def test_the_pipeline_lease_taken_back_says_it_as_the_cli_does(
    redis_url: str, raw: Any, tmp_path: Path
) -> None:
    """The claim that takes an expired pipeline lease back says what it dead-lettered on
    the pipeline's stderr too, never as a Python warning."""
    from redis_swarm._pipeline import load_plan
    from redis_swarm._pipeline.lease import RunLease
    from redis_swarm._pipeline.names import lease_queue

    from .test_pipeline_run import plan_text

    plan = load_plan(plan_text(tmp_path))
    lines: list[str] = []
    with Swarm(redis_url, swarm="test") as swarm:
        lease = RunLease(swarm, plan, holder="run-a", say=lines.append)
        expired = lease._open_task()  # (the lease task back in its queue: pending)
        stray = swarm.post_task(lease_queue("audit"), "stray", data={"n": 1}, priority=9)
        raw.hset(KEYS.task_data, stray.id, JUNK)
        try:
            assert lease._take_back(expired)
            assert must(lease.task).id == expired.id
        finally:
            lease.release()
    [line] = [x for x in lines if stray.id in x]
    assert line.startswith(f"warning: task {stray.id} was dead-lettered: task {stray.id}'s data")


def test_the_loop_hook_whose_claim_fails_after_dead_lettering_says_it(
    servers: ServerFactory, tmp_path: Path
) -> None:
    """The loop hook's claim dead-letters a damaged task, then loses its server as it claims
    again: the hook's error says what it dead-lettered, as its answer would have."""
    from redis_swarm import ConnectionFailed, Settings
    from redis_swarm._hooks.events import handle
    from redis_swarm._hooks.reach import hook_swarm

    from ._proxy import LatencyProxy
    from .test_hooks_review_fixes import LOOP, STOP

    server = servers.start()
    raw = raw_client(server.url, decode_responses=True)
    # (far away: the claim's next round reaches the server after it was killed)
    with LatencyProxy(server.port or 0, delay_s=0.2) as proxy:
        settings = Settings.from_url(proxy.url, swarm="test", home=tmp_path)
        with Swarm(settings) as swarm:
            bad = swarm.post_task("q", "bad", data={"n": 1})
        raw.hset(KEYS.task_data, bad.id, JUNK)
        with hook_swarm(settings) as hooks:
            killer = _kill_once_dead(server, raw, bad)
            with pytest.raises(ConnectionFailed) as caught:
                handle(hooks, "Stop", STOP, LOOP)
            killer.join(30)
    raw.close()
    said = str(caught.value)
    _says(said, bad)
    assert "the claim may still run" in said, said  # (the hook's words for its claim kept)
