"""``swarm run`` through a write outage longer than the client's own retries, on real servers:
a full server (maxmemory reached, noeviction: every write refused) and a paused one (SIGSTOP)
for 6 s while four slots work on 2-second leases with 100 KB findings. The finished
runs' reports wait for the server (their leases run out meanwhile), the pool claims nothing
while they wait, and afterwards every task is completed by the one agent run it had: none
lost, none run twice, every finding stored once."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from redis_swarm import Answer, Settings, Swarm
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions, ServeOptions, Server

from ._invariants import check_swarm
from ._servers import RedisServer

PY = sys.executable
SWARM = "outage"
QUEUE = "work"
TASKS = 16
LEASE_S = 2
# Three leases long, and longer than the client's own retries: against a full server, the
# default URL's (their window: 5.1 s; the refusal it answers is not even retried); against a
# paused one, PAUSED_QUERY's.
OUTAGE_S = 6.0
# Short client timeouts against the paused server: a request it never answers fails after
# 2 s (no second attempt fits in the window), within OUTAGE_S as its reports' first tries.
PAUSED_QUERY = "?socket_timeout=2&connect_timeout=1&retries=1"

# One agent run: logs its task (a run paid for), works a second, prints a 100 KB finding.
AGENT = """
import json, os, sys, time
sys.stdin.read()
task = os.environ["SWARM_TASK_ID"]
with open(sys.argv[1], "a") as log:
    log.write(task + "\\n")
time.sleep(1.0)
print(json.dumps({"summary": "done " + task, "details": "x" * 100_000}))
"""


@pytest.fixture
def server(pausable_server: RedisServer) -> RedisServer:
    """A server of the test's own: it is made full or paused."""
    return pausable_server


def _used_memory(server: RedisServer) -> int:
    client = server.client()
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def _set_maxmemory(server: RedisServer, value: int) -> None:
    client = server.client()
    try:
        client.config_set("maxmemory", str(value))
    finally:
        client.close()


def _through_an_outage(
    server: RedisServer,
    tmp_path: Path,
    begin: Callable[[], None],
    end: Callable[[], None],
    *,
    replayed: bool = False,
    query: str = "",
) -> list[str]:
    """Run the pool over TASKS tasks, with an outage (``begin`` .. ``end``, OUTAGE_S long)
    once a few are done; check that each task was run once and completed by that run.
    ``replayed``: the requests sent meanwhile reach Redis afterwards (a paused server reads
    them when it wakes up), so a claim whose reply was lost may have leased a task again
    (its ``attempts`` count it) while its agent ran once. ``query``: the client's options,
    added to the server's URL. Returns the pool's progress lines."""
    assert OUTAGE_S > LEASE_S
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    runs = tmp_path / "runs.log"
    runs.touch()
    notes: list[str] = []
    with Swarm(server.url + query, swarm=SWARM) as swarm:
        posted = swarm.post_tasks([{"queue": QUEUE, "description": f"t{i}"} for i in range(TASKS)])
        options = RunOptions(
            queues=(QUEUE,),
            command=f"{PY} {script} {runs}",
            concurrency=4,
            lease_s=LEASE_S,
            until_done=True,
            poll_s=0.5,
        )
        pool = Runner(swarm, options, on_progress=notes.append)
        thread = threading.Thread(target=pool.run)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while pool.counts()["completed"] < 3:
                assert time.monotonic() < deadline, (pool.outcomes, pool.errors)
                time.sleep(0.05)
            begin()
            try:
                time.sleep(OUTAGE_S)
            finally:
                end()
            thread.join(40)
        finally:
            pool.abort()
            thread.join(30)
        assert not thread.is_alive()
        tasks = [swarm.get_task(t.id) for t in posted]
        findings = swarm.findings(limit=100).items
    ran = Counter(runs.read_text().split())
    assert {o.status for o in pool.outcomes} == {OutcomeStatus.COMPLETED}, (
        [o.to_dict() for o in pool.outcomes if o.status is not OutcomeStatus.COMPLETED],
        pool.errors,
    )
    assert len(pool.outcomes) == TASKS, pool.outcomes
    assert ran == Counter({t.id: 1 for t in posted}), ran  # every task run once, no more
    assert all(t.status == "completed" for t in tasks)
    if not replayed:  # a refused write is not applied: each task was claimed once
        assert all(t.attempts == 1 for t in tasks), [(t.id, t.attempts) for t in tasks]
    assert len(findings) == TASKS and not any(f.superseded for f in findings)
    assert {f.task_id for f in findings} == {t.id for t in posted}
    check_swarm(server.client(), SWARM)
    return notes


@pytest.mark.slow
def test_a_full_server_holds_the_reports_and_nothing_is_run_twice(
    server: RedisServer, tmp_path: Path
) -> None:
    """maxmemory reached mid-run for 6 s (CONFIG SET maxmemory used+150000), then lifted."""
    assert Settings.from_url(server.url).retry_window_s < OUTAGE_S
    notes = _through_an_outage(
        server,
        tmp_path,
        begin=lambda: _set_maxmemory(server, _used_memory(server) + 150_000),
        end=lambda: _set_maxmemory(server, 0),
    )
    waiting = [n for n in notes if n.startswith("waiting for Redis to take the report of")]
    assert waiting and all("out of memory" in n and n.endswith("retrying") for n in waiting)
    assert len(waiting) == len({n.split(":")[0] for n in waiting}), waiting  # one per report


@pytest.mark.slow
def test_a_paused_server_holds_the_reports_and_nothing_is_run_twice(
    server: RedisServer, tmp_path: Path
) -> None:
    """The server SIGSTOPped mid-run for 6 s, then SIGCONTed."""
    assert Settings.from_url(server.url + PAUSED_QUERY).longest_request_s < OUTAGE_S
    pid = server.proc.pid
    notes = _through_an_outage(
        server,
        tmp_path,
        begin=lambda: os.kill(pid, signal.SIGSTOP),
        end=lambda: os.kill(pid, signal.SIGCONT),
        replayed=True,
        query=PAUSED_QUERY,
    )
    # (a paused server may stall the report, or the read of the task before it)
    said = ("waiting for Redis to take the report of", "waiting for Redis to read the task of")
    assert any(n.startswith(said) for n in notes), notes


# A run that waits for the test: it leaves its lease's token where the test reads it.
WAITING_AGENT = """
import json, os, sys, time
sys.stdin.read()
task, folder = os.environ["SWARM_TASK_ID"], sys.argv[1]
with open(os.path.join(folder, "runs.log"), "a") as log:
    log.write(task + "\\n")
with open(os.path.join(folder, "token"), "w") as out:
    out.write(os.environ["SWARM_TASK_TOKEN"])
while not os.path.exists(os.path.join(folder, "go")):
    time.sleep(0.05)
print(json.dumps({"summary": "done " + task}))
"""


def test_a_task_whose_lease_came_back_to_the_pool_is_not_run_again(
    server: RedisServer, tmp_path: Path
) -> None:
    """The lease of a task an agent runs runs out (as when its renewals fail through an
    outage) and another slot of the same pool claims the task: that slot hands the new
    lease to the one running it instead of running the agent a second time."""
    script = tmp_path / "agent.py"
    script.write_text(WAITING_AGENT)
    notes: list[str] = []
    with Swarm(server.url, swarm=SWARM) as swarm:
        task = swarm.post_task(QUEUE, "the one task")
        options = RunOptions(
            queues=(QUEUE,),
            command=f"{PY} {script} {tmp_path}",
            concurrency=2,
            lease_s=30,  # renewed every 10 s: not within this test
            until_done=True,
            poll_s=0.2,
        )
        pool = Runner(swarm, options, on_progress=notes.append)
        thread = threading.Thread(target=pool.run)
        thread.start()
        try:
            token = tmp_path / "token"
            deadline = time.monotonic() + 20
            while not token.exists() or not token.read_text():
                assert time.monotonic() < deadline, (pool.outcomes, pool.errors)
                time.sleep(0.02)
            swarm.renew(task.id, token.read_text(), lease_s=1)  # runs out in a second
            while swarm.get_task(task.id).attempts < 2:  # the idle slot leased it again
                assert time.monotonic() < deadline, (pool.outcomes, pool.errors)
                time.sleep(0.05)
            time.sleep(0.5)  # (time for a second run to start, if the pool started one)
            (tmp_path / "go").touch()
            thread.join(20)
        finally:
            pool.abort()
            thread.join(20)
        stored = swarm.get_task(task.id)
        findings = swarm.findings().items
    assert (tmp_path / "runs.log").read_text().split() == [task.id]  # one run
    assert [o.status for o in pool.outcomes] == [OutcomeStatus.COMPLETED], pool.outcomes
    assert stored.status == "completed" and stored.attempts == 2 and stored.abandons == 1
    assert [(f.task_id, f.superseded) for f in findings] == [(task.id, False)]
    assert [n for n in notes if "came back to this pool" in n], notes
    check_swarm(server.client(), SWARM)


# An answerer that waits for the test, then prints its answer as text.
ANSWERER = """
import os, sys, time
sys.stdin.read()
folder = sys.argv[1]
with open(os.path.join(folder, "runs.log"), "a") as log:
    log.write(os.environ["SWARM_TASK_ID"] + "\\n")
while not os.path.exists(os.path.join(folder, "go")):
    time.sleep(0.05)
print("A1: the butler")
"""


@pytest.mark.slow
def test_swarm_serve_holds_its_answer_through_a_full_server(
    server: RedisServer, tmp_path: Path
) -> None:
    """``swarm serve`` shares the pool's reports: an answer ready while the server refuses
    writes for longer than its lease and the client's retries waits for it, and is given
    once, by the one run (before, it was given up after 15 s and the question run again)."""
    script = tmp_path / "answerer.py"
    script.write_text(ANSWERER)
    notes: list[str] = []
    with Swarm(server.url, swarm=SWARM) as swarm:
        swarm.publish_context("lib", "line 1: the butler\n", source="book.md")
        options = ServeOptions(
            owner="lib", command=f"{PY} {script} {tmp_path}", lease_s=3, poll_s=0.2
        )
        serving = Server(swarm, options, on_progress=notes.append)
        thread = threading.Thread(target=serving.run)
        thread.start()
        answers: list[Answer] = []
        asker = threading.Thread(
            target=lambda: answers.append(swarm.ask("lib", "Q1: who?", timeout_s=60))
        )
        asker.start()
        try:
            runs = tmp_path / "runs.log"
            deadline = time.monotonic() + 20
            while not runs.exists():
                assert time.monotonic() < deadline, (serving.outcomes, serving.errors)
                time.sleep(0.02)
            _set_maxmemory(server, 1)  # every write refused
            try:
                (tmp_path / "go").touch()
                # Past the lease (3 s) and the 15 s the pool once waited (its tries at 0, 1, 3,
                # 7 and 15 s), and lifted before the report's try 17 s after its first.
                time.sleep(16)
                assert not answers and not serving.outcomes, serving.outcomes
            finally:
                _set_maxmemory(server, 0)
            asker.join(30)
        finally:
            serving.drain()
            thread.join(30)
        question = swarm.get_task(runs.read_text().split()[0])
    assert [a.text for a in answers] == ["A1: the butler"]
    assert [o.status for o in serving.outcomes] == [OutcomeStatus.COMPLETED], serving.outcomes
    assert runs.read_text().split() == [question.id]  # one run
    assert question.status == "completed" and question.attempts == 1
    assert any(
        n.startswith(f"waiting for Redis to take the report of {question.id}") for n in notes
    )
    check_swarm(server.client(), SWARM)
