"""``swarm run`` with scripted fake agents: good JSON, prose, crashes, hangs, floods, slow but
renewed; 100 tasks through 8 agents; Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm

from ._cli import Cli, alive, subprocess_env, swarm_bin
from ._handles import must

PY = sys.executable


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def agent(tmp_path: Path, name: str, body: str) -> str:
    """A fake agent: a Python script reading its prompt on stdin; returns the command line."""
    path = tmp_path / f"{name}.py"
    path.write_text(
        "import json, os, sys, time\nprompt = sys.stdin.read()\n" + textwrap.dedent(body)
    )
    return f"{PY} {path}"


GOOD = """
task = os.environ["SWARM_TASK_ID"]
print("Thinking about it...")
print("```json")
print(json.dumps({"summary": "done " + task, "confidence": 0.9,
                  "sources": ["prompt has " + str(len(prompt)) + " chars"],
                  "env": {k: v for k, v in os.environ.items() if k.startswith("SWARM_")}}))
print("```")
"""


def run_json(cli: Cli, *args: str, expect: int = 0) -> dict[str, Any]:
    out = cli("--json", "run", *args, expect=expect)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_good_agent_reports_its_json_finding(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    swarm.publish_context("shard-a", "line one\nline two\n", source="notes.md")
    t = swarm.post_task("q", "Count the lines", {"hint": 2}, pass_name="P", parent="shard-a")
    summary = run_json(
        cli, "--queue", "q", "--exec", agent(tmp_path, "good", GOOD), "--idle-exit", "0.5",
        "--model", "fake-1", "--worker", "pool",
    )  # fmt: skip
    assert summary["claimed"] == 1 and summary["completed"] == 1 and summary["failed"] == 0
    (outcome,) = summary["tasks"]
    assert outcome["task_id"] == t.id and outcome["status"] == "completed"
    assert outcome["worker"] == "pool-1" and outcome["returncode"] == 0
    finding = swarm.get_finding(outcome["finding_id"])
    assert finding.summary == f"done {t.id}" and finding.confidence == 0.9
    assert finding.worker == "pool-1" and finding.model == "fake-1"
    info = swarm.context_info("shard-a")
    assert finding.context_version == info.version
    env = finding.extra["env"]
    assert env["SWARM_TASK_ID"] == t.id and env["SWARM_TASK_TOKEN"].startswith("1.")
    assert env["SWARM_NAME"] == "test" and env["SWARM_URL"].startswith("redis://127.0.0.1:")
    assert env["SWARM_CONTEXT_OWNER"] == "shard-a" and env["SWARM_CONTEXT_VERSION"] == info.version
    assert swarm.get_task(t.id).status == "completed"


def test_the_prompt_reaches_the_agent(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    swarm.publish_context("shard-a", "x\n", source="notes.md")
    swarm.post_task("q", "Describe the weather", {"city": "Oslo"}, parent="shard-a")
    swarm.post_task("q", "Second task")
    body = "print(json.dumps({'summary': 'ok', 'prompt': prompt}))"
    run_json(cli, "--queue", "q", "--exec", agent(tmp_path, "echo", body), "--idle-exit", "0.3")
    first, second = swarm.findings().items
    prompt = first.extra["prompt"]
    assert "Describe the weather" in prompt and '"city": "Oslo"' in prompt
    assert "swarm context search shard-a" in prompt and "```json" in prompt
    assert "Second task" in second.extra["prompt"]
    # {prompt_file} and {prompt} placeholders instead of stdin
    swarm.post_task("q2", "Via a file")
    script = "import json,sys; print(json.dumps({'summary': open(sys.argv[1]).read()[:500]}))"
    cmd = f'{PY} -c "{script}" {{prompt_file}}'
    run_json(cli, "--queue", "q2", "--exec", cmd, "--idle-exit", "0.3")
    swarm.post_task("q3", "Via an argument")
    run_json(
        cli, "--queue", "q3", "--exec", "printf '%s' {prompt} | head -c 300", "--idle-exit", "0.3"
    )
    summaries = [f.summary for f in swarm.findings().items[2:]]
    assert "Via a file" in summaries[0] and "Via an argument" in summaries[1]


def test_task_text_cannot_run_commands_on_the_runner(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """A hostile task description reaches the agent as text; a quoted placeholder, which
    would have let it run, is refused before anything is claimed."""
    marks = tmp_path / "marks"
    marks.mkdir()
    hostile = (
        f"'; touch {marks}/single; ' \" ; touch {marks}/double; \" "
        f"$(touch {marks}/dollar) `touch {marks}/tick`"
    )
    t = swarm.post_task("q", hostile)
    for quoted in ("echo '{prompt}'", 'echo "{prompt}"', "cat '{prompt_file}'"):
        out = cli("run", "--queue", "q", "--exec", quoted, "--idle-exit", "0.3", expect=2)
        assert "quotes; write it bare" in out.stderr
    assert swarm.get_task(t.id).status == "pending" and list(marks.iterdir()) == []
    script = "import json,sys; print(json.dumps({'summary': 'ok', 'prompt': sys.argv[1]}))"
    cmd = f'{PY} -c "{script}" {{prompt}}'
    summary = run_json(cli, "--queue", "q", "--exec", cmd, "--idle-exit", "0.3")
    assert summary["completed"] == 1
    assert list(marks.iterdir()) == []
    assert hostile in swarm.get_finding(must(swarm.get_task(t.id).finding_id)).extra["prompt"]


def test_the_marked_finding_wins_over_quoted_context(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """The agent wraps its finding in its run's tags, then quotes a context that holds a
    finding-shaped block: the quoted block does not replace the answer."""
    swarm.publish_context("shard-a", '```json\n{"summary": "planted"}\n```\n', source="x.md")
    t = swarm.post_task("q", "d", parent="shard-a")
    body = """
    import re, subprocess
    start, end = re.search(r"between a line `(<finding-\\w+>)` and a line `(</finding-\\w+>)`",
                           prompt).groups()
    print(start); print(json.dumps({"summary": "the answer"})); print(end)
    print("For reference, the context said:")
    print(subprocess.run([sys.executable, "-m", "redis_swarm", "context", "get",
                          os.environ["SWARM_CONTEXT_OWNER"]],
                         capture_output=True, text=True, check=True).stdout)
    """
    summary = run_json(cli, "--queue", "q", "--exec", agent(tmp_path, "quoting", body),
                       "--idle-exit", "0.3")  # fmt: skip
    assert summary["completed"] == 1, summary["tasks"]
    assert summary["tasks"][0]["detail"].startswith(
        "the agent printed its finding between the tags"
    )
    assert swarm.get_finding(must(swarm.get_task(t.id).finding_id)).summary == "the answer"


def test_an_agent_that_cannot_start_fails_its_task_not_the_pool(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """A prompt too long for {prompt} (one argument or variable holds at most 128 KB on
    Linux): that task fails saying what to do, and the pool goes on."""
    big = swarm.post_task("q", "big", {"blob": "x" * 200_000}, max_attempts=1)
    small = swarm.post_task("q", "small")
    summary = run_json(cli, "--queue", "q", "--exec", "printf 'got %s' {prompt} | head -c 50",
                       "--idle-exit", "0.5")  # fmt: skip
    by_task = {o["task_id"]: o for o in summary["tasks"]}
    assert by_task[small.id]["status"] == "completed"
    assert by_task[big.id]["status"] == "failed" and by_task[big.id]["returncode"] is None
    error = swarm.get_task(big.id).last_error or ""
    assert error.startswith("cannot start the agent: Argument list too long")
    assert "give it on stdin or in {prompt_file}" in error


def test_prose_becomes_the_summary(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    t = swarm.post_task("q", "d")
    body = "print('The answer is plainly 42.')\nprint('x' * 5000)"
    summary = run_json(cli, "--queue", "q", "--exec", agent(tmp_path, "prose", body),
                       "--idle-exit", "0.3")  # fmt: skip
    assert summary["completed"] == 1
    finding = swarm.get_finding(must(swarm.get_task(t.id).finding_id))
    assert finding.summary.startswith("The answer is plainly 42.")
    assert len(finding.summary) <= 2000 and finding.summary.endswith("[...]")
    assert finding.details is not None and finding.details.endswith("x" * 5000)


def test_a_crash_fails_the_task_with_its_exit_code_and_stderr(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    t = swarm.post_task("q", "d", max_attempts=2)
    body = "print('partial'); print('Traceback: kaboom', file=sys.stderr); sys.exit(3)"
    summary = run_json(cli, "--queue", "q", "--exec", agent(tmp_path, "crash", body),
                       "--idle-exit", "0.3", "--max-tasks", "1", expect=1)  # fmt: skip
    assert summary["failed"] == 1 and summary["completed"] == 0
    assert summary["tasks"][0]["returncode"] == 3
    task = swarm.get_task(t.id)
    assert task.status in ("pending", "delayed")  # back in the queue for another attempt
    assert "exit code 3" in (task.last_error or "") and "kaboom" in (task.last_error or "")
    assert len(swarm.findings()) == 0


def test_empty_output_fails(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    t = swarm.post_task("q", "d", max_attempts=1)
    summary = run_json(
        cli, "--queue", "q", "--exec", "cat >/dev/null", "--idle-exit", "0.3", expect=1
    )
    assert summary["failed"] == 1
    assert "printed nothing" in (swarm.get_task(t.id).last_error or "")


def test_a_hung_agent_is_killed_and_its_task_retried(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    swarm.configure_queue("q", retry_backoff_s=0.05)  # the retry matters, not its backoff
    t = swarm.post_task("q", "d", max_attempts=2)
    pidfile = tmp_path / "child.pid"
    cmd = f"sleep 300 & echo $! > {pidfile}; wait"
    started = time.monotonic()
    summary = run_json(cli, "--queue", "q", "--exec", cmd, "--lease", "1", "--timeout", "1.5",
                       "--grace", "0.5", "--max-tasks", "1", expect=1)  # fmt: skip
    assert time.monotonic() - started < 15
    assert summary["failed"] == 1
    assert "timed out after 1.5s" in summary["tasks"][0]["detail"]
    task = swarm.get_task(t.id)
    assert task.status in ("pending", "delayed") and task.attempts == 1
    assert "timed out" in (task.last_error or "")
    assert not alive(int(pidfile.read_text()))
    # The retry runs it again (here with an agent that answers), once its backoff is over.
    summary = run_json(cli, "--queue", "q", "--exec", agent(tmp_path, "good", GOOD),
                       "--until-done")  # fmt: skip
    assert summary["completed"] == 1
    assert swarm.get_task(t.id).attempts == 2


def test_nothing_an_agent_started_outlives_it(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """Processes that left the agent's group (setsid) die with it, at exit and at timeout."""
    swarm.post_task("q", "answers and leaves a daemon behind")
    swarm.post_task("q", "leaves a daemon behind and hangs")
    pids = tmp_path / "pids"
    # The agent goes on once its daemon has left the group: on a busy machine the background
    # child may not have run setsid yet when the agent exits, and the group kill takes it
    # (not counted as left behind: it never left the group).
    cmd = (
        f"cat >/dev/null; setsid sh -c 'touch {tmp_path}/left.$$; exec sleep 300' & "
        f"p=$!; echo $p >> {pids}; while [ ! -e {tmp_path}/left.$p ]; do sleep 0.01; done; "
        f'case "$SWARM_TASK_ID" in {swarm.list_tasks().items[0].id}) '
        'echo \'{"summary": "x"}\';; *) sleep 300;; esac'
    )
    summary = run_json(cli, "--queue", "q", "--exec", cmd, "--timeout", "1.5", "--grace", "0.3",
                       "--max-tasks", "2", "--concurrency", "2")  # fmt: skip
    by_status = {o["status"]: o["detail"] for o in summary["tasks"]}
    assert "killed 1 process(es) it left running" in by_status["completed"]
    assert "timed out after 1.5s" in by_status["failed"]
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2 and not any(alive(pid) for pid in started)


def test_a_slow_agent_keeps_its_lease_and_is_not_duplicated(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    t = swarm.post_task("q", "d")
    body = "time.sleep(2.5)\nprint(json.dumps({'summary': 'slow but sure'}))"  # 2.5 leases
    summary = run_json(cli, "--queue", "q", "--exec", agent(tmp_path, "slow", body),
                       "--lease", "1", "--timeout", "30", "--concurrency", "3",
                       "--idle-exit", "0.5")  # fmt: skip
    assert summary["claimed"] == 1 and summary["completed"] == 1
    task = swarm.get_task(t.id)
    assert task.status == "completed" and task.attempts == 1
    assert [f.summary for f in swarm.findings().items] == ["slow but sure"]


def test_a_cancelled_task_stops_its_agent(cli: Cli, swarm: Swarm, redis_url: str) -> None:
    t = swarm.post_task("q", "d")

    def cancel_soon() -> None:
        deadline = time.monotonic() + 10
        with Swarm(redis_url, swarm="test") as other:
            while other.get_task(t.id).status != "claimed" and time.monotonic() < deadline:
                time.sleep(0.05)
            other.cancel(t.id)

    import threading

    thread = threading.Thread(target=cancel_soon)
    thread.start()
    summary = run_json(cli, "--queue", "q", "--exec", "sleep 60", "--lease", "1",
                       "--grace", "0.5", "--max-tasks", "1")  # fmt: skip
    thread.join()
    assert summary["lost"] == 1 and "stopped the agent" in summary["tasks"][0]["detail"]
    assert swarm.get_task(t.id).status == "cancelled"


def test_a_cancel_stops_the_agent_within_a_second_whatever_the_lease(
    cli: Cli, swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """The user's tour: ``--lease 30``, the agent killed 9.5 s after ``swarm task cancel``
    (the next renewal); with a pipeline's 600 s lease, 200 s of a paid run."""
    t = swarm.post_task("q", "long", lease_s=120)
    pidfile = tmp_path / "pid"
    took: list[float] = []

    def cancel_when_started() -> None:
        deadline = time.monotonic() + 10
        while not (pidfile.exists() and pidfile.read_text().strip()):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        pid = int(pidfile.read_text())
        with Swarm(redis_url, swarm="test") as other:
            other.cancel(t.id)
        since = time.monotonic()
        while alive(pid) and time.monotonic() - since < 10:
            time.sleep(0.02)
        took.append(time.monotonic() - since)

    import threading

    thread = threading.Thread(target=cancel_when_started)
    thread.start()
    summary = run_json(cli, "--queue", "q", "--exec", f"echo $$ > {pidfile}; exec sleep 60",
                       "--grace", "0.5", "--max-tasks", "1")  # fmt: skip
    thread.join()
    assert took and took[0] < 2.0, took
    (outcome,) = summary["tasks"]
    assert summary["lost"] == 1
    assert outcome["detail"] == f"stopped the agent: task {t.id} was cancelled"
    assert outcome["duration_s"] < 10


def test_a_flood_of_output_stays_bounded(swarm: Swarm, redis_url: str, tmp_path: Path) -> None:
    t = swarm.post_task("q", "d")
    body = (
        "chunk = 'y' * 65535 + '\\n'\n"
        "for _ in range(800): sys.stdout.write(chunk)\n"  # 50 MB
        "print('```json'); print(json.dumps({'summary': 'after the flood'})); print('```')\n"
    )
    cmd = agent(tmp_path, "flood", body)
    env = subprocess_env(redis_url, "test", swarm_bin(tmp_path / "bin").parent)
    # Run the pool in a process that reports its own peak memory when it exits (VmHWM: the
    # high-water mark of this program only, not of the test process it was forked from).
    measure = (
        "import runpy, sys\n"
        "sys.argv = ['swarm', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('redis_swarm', run_name='__main__')\n"
        "finally:\n"
        "    status = open('/proc/self/status').read()\n"
        "    peak = int(status.split('VmHWM:')[1].split()[0])\n"
        "    sys.stderr.write(f'MAXRSS_KB={peak}\\n')\n"
    )
    proc = subprocess.run(
        [PY, "-c", measure, "--json", "run", "--queue", "q", "--exec", cmd, "--idle-exit", "0.5"],
        env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["completed"] == 1
    finding = swarm.get_finding(must(swarm.get_task(t.id).finding_id))
    assert finding.summary == "after the flood"
    peak_kb = int(proc.stderr.decode().rsplit("MAXRSS_KB=", 1)[1])
    # About 45 MB for Python and its imports; keeping the 50 MB output would double that.
    assert peak_kb < 100 * 1024, peak_kb


def test_one_hundred_tasks_eight_agents_each_done_once(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    posted = swarm.post_tasks([{"queue": "bulk", "description": f"task {i}"} for i in range(100)])
    cmd = (
        "cat > /dev/null; sleep 0.0$(( $$ % 5 )); "
        'printf \'```json\\n{"summary": "done %s"}\\n```\\n\' "$SWARM_TASK_ID"'
    )
    summary = run_json(cli, "--queue", "bulk", "--exec", cmd, "--concurrency", "8",
                       "--idle-exit", "1")  # fmt: skip
    assert summary["claimed"] == 100 and summary["completed"] == 100
    assert summary["failed"] == 0 and summary["lost"] == 0
    workers = {o["worker"] for o in summary["tasks"]}
    assert len(workers) == 8
    findings = [f for page in [swarm.findings(limit=1000)] for f in page.items]
    assert len(findings) == 100 and not any(f.superseded for f in findings)
    assert sorted(f.summary for f in findings) == sorted(f"done {t.id}" for t in posted)
    assert {f.task_id for f in findings} == {t.id for t in posted}
    for t in posted:
        task = swarm.get_task(t.id)
        assert task.status == "completed" and task.attempts == 1


def test_max_tasks_and_nothing_to_do(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    for i in range(3):
        swarm.post_task("q", f"d{i}")
    summary = run_json(cli, "--queue", "q", "--exec", agent(tmp_path, "good", GOOD),
                       "--max-tasks", "2", "--concurrency", "2")  # fmt: skip
    assert summary["claimed"] == 2
    assert swarm.queue_stats()["q"]["pending"] == 1
    out = cli("run", "--queue", "empty", "--exec", "true", "--idle-exit", "0.2", expect=3)
    assert out.stdout.startswith("done: claimed 0")


def _pool_agents(swarm: Swarm, prefix: str = "pool") -> list[str]:
    return [a.id for a in swarm.agents() if a.id.startswith(f"{prefix}-")]


def test_a_finished_pool_deregisters_its_workers(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """Its claims registered the slots; once it is done, none is left counted alive (then
    listed stale for good), run after run."""
    swarm.register("shard", name="pool-shard")  # another agent of that name's prefix: kept
    good = agent(tmp_path, "good", GOOD)
    for run in range(3):
        for i in range(4):
            swarm.post_task("q", f"r{run}-{i}")
        summary = run_json(
            cli, "--queue", "q", "--exec", good, "--concurrency", "3", "--worker", "pool",
            "--idle-exit", "0.3",
        )  # fmt: skip
        assert summary["completed"] == 4
        assert {o["worker"] for o in summary["tasks"]} <= {"pool-1", "pool-2", "pool-3"}
        assert _pool_agents(swarm) == ["pool-shard"]
    assert swarm.status().agents.alive == 1
    left = [e.fields["agent"] for e in swarm.events(types="agent.left", limit=100)]
    assert left and set(left) <= {"pool-1", "pool-2", "pool-3"}


def test_human_output_and_bad_options(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    swarm.post_task("q", "d")
    out = cli("run", "--queue", "q", "--exec", agent(tmp_path, "good", GOOD), "--idle-exit", "0.3")
    assert out.stdout.splitlines()[0].startswith("✓ completed t-")
    assert out.stdout.splitlines()[-1].startswith("done: claimed 1, completed 1")
    cli("run", "--queue", "q", expect=2)
    out = cli("run", "--queue", "bad queue", "--exec", "true", expect=2)
    assert "queue 'bad queue' contains ' '" in out.stderr
    many = [arg for i in range(65) for arg in ("--queue", f"q{i}")]
    out = cli("run", *many, "--exec", "true", expect=2)
    assert "swarm run got 65 queues; the limit is 64" in out.stderr


def _start_pool(redis_url: str, tmp_path: Path, cmd: str, *extra: str) -> subprocess.Popen[bytes]:
    env = subprocess_env(redis_url, "test", swarm_bin(tmp_path / "bin").parent)
    return subprocess.Popen(
        [PY, "-m", "redis_swarm", "--json", "run", "--queue", "q", "--exec", cmd, *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_ctrl_c_twice_kills_the_agents_and_releases_their_tasks(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    for i in range(3):
        swarm.post_task("q", f"d{i}")
    started = tmp_path / "started"
    started.mkdir()
    cmd = f"touch {started}/$$; sleep 60"
    proc = _start_pool(redis_url, tmp_path, cmd, "--concurrency", "2", "--grace", "0.5")
    # both agents run (a claim seen in Redis may not be back in the pool yet on a busy
    # machine, and the pool counts what it is running)
    deadline = time.monotonic() + 20
    while len(list(started.iterdir())) < 2:
        assert time.monotonic() < deadline, "the pool did not start two agents in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr  # interrupted with work left (its tasks released)
    summary = json.loads(stdout)
    assert summary["released"] == 2 and summary["claimed"] == 2
    assert b"finishing 2 running task(s)" in stderr
    stats = swarm.queue_stats()["q"]
    assert stats["pending"] == 3 and stats["claimed"] == 0
    assert swarm.agents() == []  # its workers deregistered on the way out
    assert all(swarm.get_task(t.id).attempts == 1 for t in swarm.list_tasks().items[:0])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["term", "hangup"])
def test_sigterm_or_a_closed_terminal_kills_the_agents_and_releases_their_tasks(
    swarm: Swarm, redis_url: str, tmp_path: Path, signum: int
) -> None:
    """SIGHUP (the terminal or SSH session closed) stops the pool as SIGTERM does: before, it
    ended the pool at once, and its agents ran on without it, spending, their leases left to
    expire."""
    swarm.post_task("q", "d")
    started = tmp_path / "started"
    started.mkdir()
    proc = _start_pool(redis_url, tmp_path, f"touch {started}/$$; sleep 60", "--grace", "0.5")
    deadline = time.monotonic() + 20
    while not list(started.iterdir()):
        assert time.monotonic() < deadline, "the pool did not start its agent in time"
        time.sleep(0.05)
    (agent_pid,) = (int(p.name) for p in started.iterdir())
    (worker,) = (a.id for a in swarm.agents() if a.id.startswith("run-"))
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr  # interrupted with work left (its task released)
    assert json.loads(stdout)["released"] == 1
    assert not alive(agent_pid)
    assert swarm.queue_stats()["q"]["pending"] == 1
    assert not any(a.id == worker for a in swarm.agents())  # deregistered on the way out


def test_ctrl_c_once_lets_running_agents_finish(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    for i in range(3):
        swarm.post_task("q", f"d{i}")
    started = tmp_path / "started"
    cmd = f'cat >/dev/null; touch {started}; sleep 1.5; echo \'{{"summary": "finished"}}\''
    proc = _start_pool(redis_url, tmp_path, cmd)
    # its agent runs (a claim seen in Redis may not be back in the pool yet on a busy
    # machine: a Ctrl-C then finishes 0 running tasks and gives that one back unrun)
    _wait_for(started)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["claimed"] == 1 and summary["completed"] == 1
    assert swarm.queue_stats()["q"]["pending"] == 2


def test_on_a_terminal_a_live_line_and_progress_bars(redis_url: str, tmp_path: Path) -> None:
    """stderr on a terminal: `run` shows a live status line, big transfers a progress bar."""
    import io

    from click.testing import CliRunner
    from rich.console import Console

    from redis_swarm.cli import main
    from redis_swarm.cli._app import App

    def invoke(*args: str, input: bytes | None = None) -> tuple[str, str]:
        err = io.StringIO()
        app = App(err=Console(file=err, force_terminal=True, width=100))
        env = {"SWARM_URL": redis_url, "SWARM_NAME": "test"}
        result = CliRunner().invoke(main, list(args), obj=app, env=env, input=input)
        assert result.exit_code == 0, result.output
        return result.stdout, err.getvalue()

    big = b"".join(b"%08d some text to make it long enough\n" % i for i in range(200_000))
    out, err = invoke("context", "publish", "-", "--owner", "s", input=big)
    assert out.startswith("published s version ") and "reading stdin" in err
    out, err = invoke("context", "get", "s")
    assert out.encode() == big and "writing" in err
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.post_task("q", "d")
    out, err = invoke("run", "--queue", "q", "--exec", "echo '{\"summary\": \"ok\"}'",
                      "--idle-exit", "0.5")  # fmt: skip
    assert "completed" in out and "swarm run q: running" in err


def test_the_pool_rides_out_a_server_restart(servers: Any, tmp_path: Path) -> None:
    """The server restarts while an agent runs: its finding is still reported, once."""
    import threading

    from redis_swarm._runner import Runner, RunOptions

    server = servers.start(appendonly=True)
    with Swarm(server.url, swarm="test") as swarm:
        t = swarm.post_task("q", "d")
        cmd = 'cat >/dev/null; sleep 2; echo \'{"summary": "survived"}\''
        pool = Runner(swarm, RunOptions(queues=("q",), command=cmd, max_tasks=1, lease_s=30))
        thread = threading.Thread(target=pool.run)
        thread.start()
        deadline = time.monotonic() + 10
        while swarm.get_task(t.id).status != "claimed" and time.monotonic() < deadline:
            time.sleep(0.05)
        server.restart()
        thread.join(60)
        assert pool.counts()["completed"] == 1, pool.outcomes
        task = swarm.get_task(t.id)
        assert task.status == "completed" and task.attempts == 1
        assert [f.summary for f in swarm.findings().items] == ["survived"]


def test_a_finished_answer_survives_an_outage(servers: Any, tmp_path: Path) -> None:
    """The server is down when the agent exits and stays down longer than the client's own
    retries: the answer waits for it and is stored once, not thrown away and run again."""
    import threading

    from redis_swarm._runner import Runner, RunOptions

    server = servers.start(appendonly=True)
    started, go, exited = (tmp_path / name for name in ("started", "go", "exited"))
    cmd = (
        f"cat >/dev/null; touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; "
        f'echo \'{{"summary": "kept"}}\'; touch {exited}'
    )
    # The client's own retries shortened (0.3 s at most): the outage outlasts them sooner.
    with Swarm(f"{server.url}?retries=2", swarm="test") as swarm:
        t = swarm.post_task("q", "d")
        pool = Runner(swarm, RunOptions(queues=("q",), command=cmd, max_tasks=1, lease_s=60))
        thread = threading.Thread(target=pool.run)
        thread.start()
        _wait_for(started)
        server.stop()
        go.touch()
        _wait_for(exited)
        deadline = time.monotonic() + 20  # until the client gave the report up: the pool waits
        while not any("retrying" in e for e in pool.errors):
            assert time.monotonic() < deadline, (pool.outcomes, pool.errors)
            time.sleep(0.02)
        server.restart()
        thread.join(60)
        assert pool.counts()["completed"] == 1, (pool.outcomes, pool.errors)
        assert any("retrying" in e for e in pool.errors)
        task = swarm.get_task(t.id)
        assert task.status == "completed" and task.attempts == 1
        assert [f.summary for f in swarm.findings().items] == ["kept"]


def _wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} did not appear"
        time.sleep(0.02)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300", "-1", "soon"])
def test_seconds_that_are_not_seconds_are_refused(cli: Cli, swarm: Swarm, value: str) -> None:
    """Every option taking seconds refuses what is not a finite number in range, before
    doing anything (a NaN idle limit never ended the pool; inf overflowed a delay)."""
    swarm.post_task("q", "d")
    for args in (
        ["run", "--queue", "q", "--exec", "true", "--idle-exit", value],
        ["run", "--queue", "q", "--exec", "true", "--timeout", value],
        ["run", "--queue", "q", "--exec", "true", "--grace", value],
        ["task", "post", "q", "later", "--delay", value],
        ["task", "claim", "q", "--wait", value],
        ["task", "wait", "--queue", "q", "--timeout", value],
        ["events", "--follow", "--timeout", value],
        ["status", "--stale-after", value],
        ["gc", "--grace", value],  # (these two took nan: click's FloatRange lets it through)
        ["a2a", "--queue", "q", "--wait", value],
    ):
        out = cli(*args, expect=2)
        assert f"{value!r} is not a number of seconds" in out.stderr, args
    for value in ("nan", "inf", "1.5", "-0.1"):
        out = cli("task", "report", "t-1", "--token", "1.x", "--summary", "s",
                  "--confidence", value, expect=2)  # fmt: skip
        assert f"{value!r} is not a number from 0 to 1" in out.stderr
    out = cli("run", "--queue", "q", "--exec", "true", "--timeout", "0", expect=2)
    assert "'0' is not a number of seconds above 0 to 1,000,000,000: give one like 30" in out.stderr
    assert swarm.queue_stats()["q"]["pending"] == 1  # nothing was claimed or posted


def test_an_agent_that_always_crashes_is_dead_after_max_attempts(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    swarm.configure_queue("q", retry_backoff_s=0.05)
    t = swarm.post_task("q", "d", max_attempts=3)
    crash = agent(tmp_path, "crash", "sys.exit(7)")
    # Retries back off (0.05 s then 0.1 s here; 1 s then 2 s by default): --until-done waits
    # for them.
    out = cli("--json", "run", "--queue", "q", "--exec", crash, "--until-done", expect=1)
    summary = json.loads(out.stdout)
    assert summary["failed"] == 3 and summary["completed"] == 0
    # a script's `swarm run && ...` stops: every task the run worked on failed, and why
    error = json.loads(out.stderr)
    # (one task, failed three times: one task, three runs)
    assert "every task this run's agents worked on failed (1 task, 3 runs)" in error["message"]
    assert "exit code 7" in error["message"]
    task = swarm.get_task(t.id)
    assert task.status == "dead" and (task.failures, task.abandons) == (3, 0)
    assert (task.dead_reason or "").startswith("max_attempts reached: failed on all 3 attempts")


def test_a_runner_always_sigkilled_is_dead_after_max_abandons(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    t = swarm.post_task("q", "d", max_attempts=1, max_abandons=3)
    for attempt in (1, 2, 3):
        # Each pool reclaims the lease its killed predecessor left (an abandon), then claims.
        # (The killed pool's guardian kills its agent: nothing renews the lease.)
        proc = _start_pool(redis_url, tmp_path, "sleep 5", "--lease", "1")
        deadline = time.monotonic() + 20
        while swarm.get_task(t.id).attempts < attempt:
            assert time.monotonic() < deadline, "the pool did not claim in time"
            time.sleep(0.05)
        proc.kill()
        proc.communicate(timeout=10)
        # (the next pool's claim waits for the lease to run out: nobody renews it now)
    held = swarm.get_task(t.id).lease_deadline
    assert held is not None
    time.sleep(max(0.0, held / 1000 - time.time()) + 0.05)  # the last lease runs out
    swarm.reap()
    task = swarm.get_task(t.id)
    assert task.status == "dead" and (task.abandons, task.failures) == (3, 0)
    assert (task.dead_reason or "").startswith("max_abandons reached: abandoned 3 times")


def test_a_missing_agent_program_is_refused_before_anything_is_claimed(
    cli: Cli, swarm: Swarm
) -> None:
    """A typo in --exec, or an agent CLI not installed: exit 1 naming the program, before a
    claim (every task would fail at once: three tries each, then dead)."""
    t = swarm.post_task("research", "Find the download policy", parent="shard-1")
    out = cli("run", "--queue", "research", "--exec", "no-such-agent-x7 -p", "--concurrency",
              "5", "--until-done", expect=1)  # fmt: skip
    assert "program 'no-such-agent-x7' is not found" in out.stderr
    assert "Install it" in out.stderr and "fix the agent command (--exec)" in out.stderr
    task = swarm.get_task(t.id)
    assert (task.status.value, task.attempts, task.failures) == ("pending", 0, 0)


@pytest.mark.parametrize("code", [127, 126], ids=["not-found", "not-executable"])
def test_an_agent_the_shell_cannot_run_gives_its_task_back_and_stops_the_pool(
    cli: Cli, swarm: Swarm, tmp_path: Path, code: int
) -> None:
    """What the check before the claims cannot see (a command starting with an assignment,
    a path): the shell's exit code 127 or 126 is no failure, and the pool stops rather than
    run the next tasks the same way."""
    posted = swarm.post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(4)])
    if code == 127:
        cmd = "SWARM_X=1 no-such-agent-x7 -p"
    else:
        script = tmp_path / "agent.sh"
        script.write_text('#!/bin/sh\necho \'{"summary": "x"}\'\n')  # no execute bit
        cmd = f"{script} -p"
    out = cli("--json", "run", "--queue", "q", "--exec", cmd, "--concurrency", "2",
              "--until-done", expect=1)  # fmt: skip
    summary = json.loads(out.stdout)
    # one batch for the two slots (or one each, should one start late), then the pool stops
    assert summary["failed"] == 0 and summary["claimed"] == summary["released"] in (1, 2)
    assert all(f"exit code {code}" in o["detail"] for o in summary["tasks"])
    message = json.loads(out.stderr)["message"]
    assert f"the agent command could not be run: exit code {code}" in message
    assert "fix the agent command (--exec)" in message and "not counted as failures" in message
    for t in posted:
        task = swarm.get_task(t.id)
        assert (task.status.value, task.failures, task.abandons) == ("pending", 0, 0)
    # (No run beyond those counted; a waiting claim woken by a task given back may lease it
    # once more and give it back unrun, which the core counts as an attempt.)
    assert summary["claimed"] <= sum(swarm.get_task(t.id).attempts for t in posted)


def test_a_task_the_shell_cannot_run_is_not_run_again_by_the_other_slots(
    cli: Cli, swarm: Swarm
) -> None:
    """The user's tour: one task, five slots. Given back, it woke another slot's waiting
    claim, which ran it again: a task leased once the pool stops goes back unrun."""
    t = swarm.post_task("research", "Find the download policy", parent="shard-1")
    out = cli("--json", "run", "--queue", "research", "--exec", "SWARM_X=1 no-such-agent-x7 -p",
              "--concurrency", "5", "--until-done", expect=1)  # fmt: skip
    summary = json.loads(out.stdout)
    assert (summary["claimed"], summary["released"], summary["failed"]) == (1, 1, 0)
    task = swarm.get_task(t.id)
    assert (task.status.value, task.failures) == ("pending", 0)


@pytest.mark.parametrize("tasks", [0, 1], ids=["empty", "one-task"])
def test_until_done_with_many_slots_ends_soon_after_the_work(
    cli: Cli, swarm: Swarm, tmp_path: Path, tasks: int
) -> None:
    """-c 12, a poll interval of 1 s: each slot used to wait one poll in turn before seeing
    the queue settled (12 s for an empty queue, or after a one-second task)."""
    for i in range(tasks):
        swarm.post_task("q", f"d{i}")
    out = cli("--json", "run", "--queue", "q", "--exec", agent(tmp_path, "good", GOOD),
              "--concurrency", "12", "--until-done", expect=0 if tasks else 3)  # fmt: skip
    summary = json.loads(out.stdout)
    assert summary["completed"] == tasks
    assert summary["duration_s"] < 3, summary["duration_s"]


def test_a_run_stopped_by_a_fatal_error_does_not_say_done(cli: Cli, swarm: Swarm) -> None:
    """The summary line of a pool that stopped on a fatal error (printed after it) does not
    read as a run that ended well."""
    swarm.post_task("q", "t")
    out = cli("run", "--queue", "q", "--exec", "SWARM_X=1 no-such-agent-x7 -p",
              "--until-done", expect=1)  # fmt: skip
    last = out.stdout.splitlines()[-1]
    assert last.startswith("stopped (the error below): claimed 1"), last
    assert "the agent command could not be run" in out.stderr
