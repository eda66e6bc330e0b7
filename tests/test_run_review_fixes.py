"""An adversarial run of ``swarm run`` and ``swarm serve``: a NUL byte in a prompt given in
``{prompt}`` fails that task's run with what to do (it crashed the pool); runs failing alike
stop the pool after 3 in a row whatever the queue's size (retries count)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import Swarm, SwarmError
from redis_swarm._runner import ServeOptions, Server
from redis_swarm._runner.pool_state import ALIKE_FAILURES_STOP

from ._cli import Cli

PY = sys.executable
# An agent given its prompt in {prompt} (argv): prints a finding holding the prompt's length.
ARGV_AGENT = (
    f"{PY} -c \"import json,sys; print(json.dumps({{'summary': str(len(sys.argv[1]))}}))\" "
    "{prompt}"
)


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def run_json(cli: Cli, *args: str, expect: int = 0) -> dict[str, Any]:
    out = cli("--json", "run", *args, expect=expect)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_a_nul_byte_in_a_prompt_fails_its_task_not_the_pool(cli: Cli, swarm: Swarm) -> None:
    """{prompt} goes in an environment variable, which no NUL byte can be in: that task's
    run fails saying to use stdin or {prompt_file}; the pool goes on with the others, and
    the task is not left claimed."""
    good = swarm.post_task("q", "fine", priority=9)
    bad = swarm.post_task("q", "a\x00b", max_attempts=1)
    summary = run_json(cli, "--queue", "q", "--exec", ARGV_AGENT, "--idle-exit", "0.5")
    by_task = {o["task_id"]: o for o in summary["tasks"]}
    assert by_task[good.id]["status"] == "completed", summary
    assert by_task[bad.id]["status"] == "failed" and by_task[bad.id]["returncode"] is None
    task = swarm.get_task(bad.id)
    assert task.status == "dead"  # failed (its one attempt), not left claimed
    assert (task.last_error or "").startswith("cannot start the agent: the prompt holds a NUL")
    assert "give it on stdin or in {prompt_file} rather than {prompt}" in (task.last_error or "")
    # the same prompt on stdin or in {prompt_file} runs
    again = swarm.post_task("q2", "c\x00d")
    file_agent = f'{PY} -c "import sys; print(open(sys.argv[1]).read().count(chr(0)))" '
    summary = run_json(cli, "--queue", "q2", "--exec", file_agent + "{prompt_file}",
                       "--idle-exit", "0.5")  # fmt: skip
    assert summary["completed"] == 1 and swarm.get_task(again.id).status == "completed"


def test_a_question_holding_a_nul_byte_does_not_stop_swarm_serve(swarm: Swarm) -> None:
    """``swarm.ask(owner, "a\\x00b")`` killed the ``swarm serve`` answering with {prompt}:
    the question's run fails, the server goes on and answers the next one."""
    swarm.publish_context("docs1", "some text\n", source="d.md")
    server = Server(swarm, ServeOptions(owner="docs1", command=ARGV_AGENT, poll_s=0.2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with pytest.raises(SwarmError):  # (its runs fail: not answered)
            swarm.ask("docs1", "a\x00b", timeout_s=4)
        assert thread.is_alive() and server.crash is None and server.fatal is None
        failed = [o for o in server.outcomes if o.status == "failed"]
        assert failed and failed[0].detail.startswith("cannot start the agent: the prompt holds")
        assert swarm.ask("docs1", "plain", timeout_s=20).text.strip()
    finally:
        server.drain()
        thread.join(30)
    assert server.crash is None


def test_runs_failing_alike_stop_a_small_queue(cli: Cli, swarm: Swarm) -> None:
    """2 tasks, 3 attempts each, every run failing alike: the pool stops after 3 runs in a
    row (a retry counts), not after all 6; the rest keep their attempts."""
    swarm.configure_queue("q", retry_backoff_s=0.05)
    tasks = [swarm.post_task("q", f"d{i}") for i in range(2)]
    agent = f"{PY} -c \"import sys; print('Not logged in'); sys.exit(1)\""
    summary = run_json(cli, "--queue", "q", "--exec", agent, "--until-done", expect=1)
    assert summary["failed"] == ALIKE_FAILURES_STOP, summary
    fatal = summary["fatal"]
    assert fatal.startswith("every run fails with: exit code 1; stdout: Not logged in (3 runs")
    assert "Fix the agent command (--exec)" in fatal
    assert sum(swarm.get_task(t.id).failures for t in tasks) == ALIKE_FAILURES_STOP
    assert all(swarm.get_task(t.id).status != "dead" for t in tasks)


def test_runs_failing_alike_stop_four_tasks_at_concurrency_two(cli: Cli, swarm: Swarm) -> None:
    swarm.configure_queue("q", retry_backoff_s=0.05)
    tasks = [swarm.post_task("q", f"d{i}") for i in range(4)]
    agent = f'{PY} -c "import sys; sys.exit(5)"'
    summary = run_json(cli, "--queue", "q", "--exec", agent, "--until-done", "--concurrency",
                       "2", expect=1)  # fmt: skip
    # (a run already started when the third failed finishes: at most one more)
    assert ALIKE_FAILURES_STOP <= summary["failed"] <= ALIKE_FAILURES_STOP + 1, summary
    assert summary["fatal"].startswith("every run fails with: exit code 5")
    assert sum(swarm.get_task(t.id).failures for t in tasks) == summary["failed"]


def test_swarm_task_report_inside_swarm_run_takes_its_token(cli: Cli, swarm: Swarm) -> None:
    """An agent of ``swarm run`` reporting its task with ``swarm task report
    "$SWARM_TASK_ID"`` (no --token) is taken with swarm run's SWARM_TASK_TOKEN, as ``swarm
    ask --task`` takes it (it was a usage error: no token kept on this machine)."""
    t = swarm.post_task("q", "Find A", max_attempts=1)
    agent = (
        f"{PY} -m redis_swarm task report \"$SWARM_TASK_ID\" --summary 'reported by the agent' "
        "&& echo done"
    )
    summary = run_json(cli, "--queue", "q", "--exec", agent, "--until-done")
    (outcome,) = summary["tasks"]
    assert outcome["status"] == "completed", outcome
    assert outcome["detail"].startswith("the agent reported it itself"), outcome
    finding = swarm.get_finding(swarm.get_task(t.id).finding_id or "")
    assert finding.summary == "reported by the agent" and finding.attempt == 1
