"""``swarm run``'s pool, as an adversarial walk found it: what its outcomes claim of a task
another worker completed, what it does with a run that finished while Redis was paused, how
fast it stops through an outage, and what its summary says. Real servers, scripted agents."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions

from ._cli import subprocess_env, swarm_bin
from ._servers import RedisServer, ServerFactory

PY = sys.executable
SWARM = "walk"
QUEUE = "work"

# A run that waits for the test: it says it started, then waits for the file "go" to print
# its finding (a JSON object) and exit 0.
WAITING_AGENT = """
import json, os, sys, time
sys.stdin.read()
folder = sys.argv[1]
open(os.path.join(folder, "started"), "w").close()
while not os.path.exists(os.path.join(folder, "go")):
    time.sleep(0.02)
print(json.dumps({"summary": "the pool's agent found it"}))
"""


@pytest.fixture
def server(pausable_server: RedisServer) -> RedisServer:
    """A server of the test's own: it is paused."""
    return pausable_server


def _wait_for(path: Path, pool: Runner, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, (pool.outcomes, pool.errors)
        time.sleep(0.02)


def _start(pool: Runner) -> threading.Thread:
    thread = threading.Thread(target=pool.run)
    thread.start()
    return thread


def test_another_workers_late_report_is_not_taken_as_the_agents_own(
    server: RedisServer, tmp_path: Path
) -> None:
    """A worker whose lease ran out reports the task (its late report, which the core takes)
    while the pool's agent, which leased it again, runs: the pool does not say its agent
    reported it itself. It reports its agent's finding, which the core keeps superseded,
    and counts the task lost to the other worker, not completed by this run."""
    script = tmp_path / "agent.py"
    script.write_text(WAITING_AGENT)
    with Swarm(server.url, swarm=SWARM) as swarm:
        (posted,) = swarm.post_tasks([{"queue": QUEUE, "description": "one"}])
        intruder = swarm.claim([QUEUE], worker="intruder", lease_s=0.5)
        assert intruder is not None and intruder.token is not None
        time.sleep(0.7)  # its lease runs out: the pool's claim takes the task again
        options = RunOptions(
            queues=(QUEUE,),
            command=f"{PY} {script} {tmp_path}",
            lease_s=30,
            until_done=True,
            poll_s=0.5,
        )
        pool = Runner(swarm, options)
        thread = _start(pool)
        try:
            _wait_for(tmp_path / "started", pool)
            late = swarm.report(posted.id, intruder.token, {"summary": "late"}, worker="intruder")
            (tmp_path / "go").touch()
            thread.join(30)
        finally:
            pool.abort()
            thread.join(30)
        assert not thread.is_alive()
        (outcome,) = pool.outcomes
        findings = swarm.findings(limit=10).items
    assert outcome.status is OutcomeStatus.LOST, outcome
    assert "reported it itself" not in outcome.detail, outcome.detail
    assert "completed elsewhere first" in outcome.detail, outcome.detail
    assert pool.counts()["completed"] == 0
    by_id = {f.id: f for f in findings}
    assert len(by_id) == 2, findings  # the agent's finding kept, not dropped
    assert not by_id[late.id].superseded
    (own,) = [f for f in findings if f.id != late.id]
    assert own.superseded and own.summary == "the pool's agent found it"
    assert own.worker == outcome.worker


def test_a_run_that_finished_during_a_pause_is_reported_not_thrown_away(
    server: RedisServer, tmp_path: Path
) -> None:
    """Redis paused (SIGSTOP) while the agent runs: the pool's lease renewal waits in its
    request, the lease runs out and another worker's claim (sent during the pause, ahead of
    the renewal) leases the task; the agent exits before Redis wakes up. The renewal, then
    refused, finds the task lost, but the agent had exited: it is not said to be stopped,
    and its finished run is reported (the core takes the first report of an open task
    whatever the age of its token), not thrown away to be paid for again."""
    script = tmp_path / "agent.py"
    script.write_text(WAITING_AGENT)
    lease_s = 3  # renewed every second
    url = server.url + "?socket_timeout=30"  # a request waits through the whole pause
    with Swarm(url, swarm=SWARM) as swarm, Swarm(url, swarm=SWARM) as other:
        (posted,) = swarm.post_tasks([{"queue": QUEUE, "description": "one"}])
        other.get_task(posted.id)  # (connected before the pause)
        options = RunOptions(
            queues=(QUEUE,),
            command=f"{PY} {script} {tmp_path}",
            lease_s=lease_s,
            until_done=True,
            poll_s=0.5,
        )
        pool = Runner(swarm, options)
        thread = _start(pool)
        claims: list[object] = []
        try:
            _wait_for(tmp_path / "started", pool)
            # Pause right after a renewal: the next one is a second away, behind the claim.
            renewed = other.get_task(posted.id).lease_deadline
            while other.get_task(posted.id).lease_deadline == renewed:
                time.sleep(0.01)
            os.kill(server.proc.pid, signal.SIGSTOP)
            claimer = threading.Thread(
                target=lambda: claims.append(other.claim([QUEUE], worker="intruder"))
            )
            claimer.start()
            time.sleep(1.6)  # the pool's next renewal waits in its request
            (tmp_path / "go").touch()  # the agent exits during the pause
            time.sleep(lease_s + 0.5 - 1.6)  # the lease runs out meanwhile
            os.kill(server.proc.pid, signal.SIGCONT)
            claimer.join(30)
            thread.join(30)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
            pool.abort()
            thread.join(30)
        assert not thread.is_alive()
        assert claims and claims[0] is not None, claims  # the intruder leased it again
        (outcome,) = pool.outcomes
        task = swarm.get_task(posted.id)
        findings = swarm.findings(limit=10).items
    assert outcome.status is OutcomeStatus.COMPLETED, outcome
    assert "stopped the agent" not in outcome.detail, outcome.detail
    # (Redis wakes with the renewal, the intruder's claim and the report all queued, and
    # serves its clients in no set order: when the refused renewal came before the report,
    # the detail says the agent had exited first; when the report came first, the run simply
    # completed. Either way it is reported, not thrown away: a CI run met the second order.)
    if "found lost" in outcome.detail:
        assert "had exited before its task was found lost" in outcome.detail, outcome.detail
    assert task.status == "completed" and task.finding_id == outcome.finding_id
    (finding,) = findings
    assert finding.summary == "the pool's agent found it" and not finding.superseded


def _swarm_run(url: str, tmp_path: Path, cmd: str, *extra: str) -> subprocess.Popen[bytes]:
    env = subprocess_env(url, SWARM, swarm_bin(tmp_path / "bin").parent)
    return subprocess.Popen(
        [PY, "-m", "redis_swarm", "run", "--queue", QUEUE, "--exec", cmd, *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.mark.parametrize("outage", ["paused", "refused"])
def test_sigterm_through_an_outage_exits_within_seconds(
    servers: ServerFactory, tmp_path: Path, outage: str
) -> None:
    """SIGTERM reaches ``swarm run`` while Redis is paused (SIGSTOP), or gone (connections
    refused), its agents running: it kills them and gives up at once what would wait for
    Redis (their tasks' releases, the count of what is left), saying so, and exits 1
    within a few seconds, well inside a Kubernetes grace period (30 s). Each of those waited
    its client's whole timeout before (45 s paused, 14 s refused). The URL stretches those
    timeouts (a 40 s socket timeout, a 23 s retry window), so that the bound can leave a
    loaded machine's slow process room (11.8 s under CI's load) and still fail a wait for
    either."""
    server = servers.start()
    url = f"{server.url}?socket_timeout=40&retries=15"
    try:
        with Swarm(server.url, swarm=SWARM) as swarm:
            swarm.post_tasks([{"queue": QUEUE, "description": f"t{i}"} for i in range(3)])
        started = tmp_path / "started"
        started.mkdir()
        proc = _swarm_run(
            url, tmp_path, f"touch {started}/$$; sleep 60",
            "--concurrency", "2", "--until-done", "--grace", "0.5",
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while len(list(started.iterdir())) < 2:
            assert time.monotonic() < deadline, "the pool did not start two agents in time"
            time.sleep(0.05)
        time.sleep(0.3)
        if outage == "paused":
            os.kill(server.proc.pid, signal.SIGSTOP)
        else:
            server.stop()
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=90)
        took = time.monotonic() - sent
    finally:
        if server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()
    said = stderr.decode()
    assert took < 15, (took, said)
    assert proc.returncode == 1, said
    assert "swarm status" in said, said  # what to run to see what was left
    # (their releases given up: not said to be back in their queue yet)
    assert "2 running task(s) stopped whose release Redis did not take" in said, said


def test_serve_stopped_by_sigterm_mid_answer_says_interrupted_as_run_does(
    servers: ServerFactory, tmp_path: Path
) -> None:
    """SIGTERM stops ``swarm serve`` while an answer runs: its question goes back, and the
    server ends as ``swarm run`` does in the same case (one rule: ``finish_pool``), said
    interrupted with work left, exit 1; it said ``done`` and exited 0."""
    server = servers.start()
    try:
        with Swarm(server.url, swarm=SWARM) as swarm:
            swarm.publish_context("lib", "The book.", source="book.md")
            started = tmp_path / "started"
            started.mkdir()
            env = subprocess_env(server.url, SWARM, swarm_bin(tmp_path / "bin").parent)
            proc = subprocess.Popen(
                [PY, "-m", "redis_swarm", "serve", "lib", "--exec",
                 f"touch {started}/$$; sleep 60"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            asked: list[object] = []

            def ask() -> None:
                try:
                    asked.append(swarm.ask("lib", "What does it say?", timeout_s=8))
                except Exception as exc:  # (its timeout: the question was given back)
                    asked.append(exc)

            asker = threading.Thread(target=ask)
            asker.start()
            deadline = time.monotonic() + 20
            while not any(started.iterdir()):
                assert time.monotonic() < deadline, "the server did not start the agent"
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=60)
            asker.join(30)
    finally:
        server.stop()
    out, said = stdout.decode(), stderr.decode()
    assert proc.returncode == 1, (out, said)
    assert "interrupted (the error below): claimed 1" in out, out
    assert "done:" not in out, out
    assert "interrupted by SIGTERM with work left: 1 running task(s) stopped" in said, said


def test_a_task_gone_from_the_server_is_said_so_and_fails_an_until_done_run(
    servers: ServerFactory, tmp_path: Path
) -> None:
    """The server loses its data while an agent runs (FLUSHALL, as a restart without
    persistence does): the report finds the task gone. The pool says so (not the core's
    "check the id", a typo's advice: its own claim leased that id), its summary counts it,
    and ``--until-done``, whose queues then read as settled, exits 1: the work was lost."""
    server = servers.start()
    try:
        with Swarm(server.url, swarm=SWARM) as swarm:
            (posted,) = swarm.post_tasks([{"queue": QUEUE, "description": "one"}])
        script = tmp_path / "agent.py"
        script.write_text(WAITING_AGENT)
        proc = _swarm_run(
            server.url, tmp_path, f"{PY} {script} {tmp_path}", "--until-done", "--lease", "30"
        )
        deadline = time.monotonic() + 20
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline, "the pool did not start the agent"
            time.sleep(0.05)
        client = server.client()
        try:
            client.flushall()
        finally:
            client.close()
        (tmp_path / "go").touch()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        server.stop()
    out, said = stdout.decode(), stderr.decode()
    assert f"{posted.id} is gone from the server: deleted, or the server lost its data" in out
    assert "check the id" not in out, out
    assert "lost 1 (1 gone from the server)" in out, out
    assert proc.returncode == 1, (out, said)
    assert "1 task(s) this run worked on are gone from the server" in said, said


FAILING_AGENT = "echo 'fatal: no key' >&2; exit 1"


def test_the_summary_counts_the_tasks_its_failures_dead_lettered(
    redis_url: str, tmp_path: Path
) -> None:
    """A task out of attempts after a failed run is dead: that run's line says so, with the
    requeue that runs it again, and the last line counts the dead tasks (it said only
    ``failed 2``, though the task would never run again). Runs that reported no cost are
    counted on it too, as docs/cli.md says (it said only ``cost unknown``)."""
    swarm_name = f"dead-{time.monotonic_ns()}"
    with Swarm(redis_url, swarm=swarm_name) as swarm:
        (posted,) = swarm.post_tasks([{"queue": QUEUE, "description": "one", "max_attempts": 2}])
    env = subprocess_env(redis_url, swarm_name, swarm_bin(tmp_path / "bin").parent)
    done = subprocess.run(
        [PY, "-m", "redis_swarm", "run", "--queue", QUEUE, "--exec", FAILING_AGENT,
         "--until-done"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("✗ failed")]
    assert len(lines) == 2, done.stdout
    assert "dead now" not in lines[0], lines  # (retried)
    requeue = f"(swarm task requeue {posted.id}, as a shard or coordinator: a worker may not)"
    assert f"out of attempts, it is dead now {requeue}" in lines[1]
    summary = done.stdout.splitlines()[-1]
    assert f"failed 2, 1 of their tasks dead now {requeue}" in summary
    assert "cost unknown (2 of 2 runs reported no cost)" in summary, summary


# An agent that prints its prompt back, then a finding of its own, untagged.
ECHOING_AGENT = """
import json, sys
print(sys.stdin.read())
print("My answer:")
print(json.dumps({"summary": "what the agent found"}))
"""


def test_an_answer_that_echoes_the_prompt_says_what_to_do(redis_url: str, tmp_path: Path) -> None:
    """The prompt's fenced example is read before a bare JSON object: an agent that prints
    its prompt back, then its finding untagged, fails with the example repeated, and the
    failure says what to do (the tags its prompt gives), not only what went wrong."""
    script = tmp_path / "agent.py"
    script.write_text(ECHOING_AGENT)
    with Swarm(redis_url, swarm=f"echo-{time.monotonic_ns()}") as swarm:
        swarm.post_tasks([{"queue": QUEUE, "description": "one", "max_attempts": 1}])
        pool = Runner(swarm, RunOptions(queues=(QUEUE,), command=f"{PY} {script}", until_done=True))
        pool.run()
    (outcome,) = pool.outcomes
    assert outcome.status is OutcomeStatus.FAILED, outcome
    assert "the answer repeats the prompt's example" in outcome.detail
    assert "between the <finding-...> tags its prompt gives" in outcome.detail, outcome.detail


def test_a_request_given_up_at_a_stop_says_what_became_of_it() -> None:
    """A request Redis does not answer once the pool is told to stop is given up within the
    grace, and says Redis may have done it all the same, and what happens if not."""
    import threading

    from redis_swarm._errors import ConnectionFailed
    from redis_swarm._outage import STOP_GRACE_S, until_stopped

    stop, release = threading.Event(), threading.Event()
    stop.set()
    began = time.monotonic()
    with pytest.raises(ConnectionFailed) as given_up:
        until_stopped(lambda: release.wait(30), stop, what="take the report of t-1")
    release.set()
    assert time.monotonic() - began < STOP_GRACE_S + 2
    said = str(given_up.value)
    assert "Redis did not take the report of t-1 within" in said, said
    assert "Redis may have done it all the same (swarm task show says)" in said, said
    assert "goes back to its queue when its lease runs out" in said, said
    assert given_up.value.sent
