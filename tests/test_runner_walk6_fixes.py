"""``swarm run`` as a sixth walk found it: the grace an agent's process group gets whatever its
command starts with, the answer between the run's tags taken whatever JSON is quoted after
it, an agent's own fail or release that stands, a stop during a Redis stall within its
documented bound, and a ``{word}`` that is no placeholder refused. Real servers, scripted
agents."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm._errors import ConnectionFailed, ValidationError
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions, ServeOptions, Server

from ._cli import subprocess_env, swarm_bin
from ._servers import ServerFactory

PY = sys.executable
QUEUE = "work"


def _name(what: str) -> str:
    return f"{what}-{time.monotonic_ns()}"


def _run_one(redis_url: str, command: str, **options: Any) -> tuple[Runner, Swarm, str]:
    """Post one task and run the pool on it until done; returns the pool, a handle on its
    swarm (closed by the caller's ``with``) and the task's id."""
    swarm = Swarm(redis_url, swarm=_name("walk6"))
    (posted,) = swarm.post_tasks([{"queue": QUEUE, "description": "one", "max_attempts": 2}])
    pool = Runner(swarm, RunOptions(queues=(QUEUE,), command=command, until_done=True, **options))
    pool.run()
    return pool, swarm, posted.id


# --- 1. the grace between SIGTERM and SIGKILL, whatever the command starts with

# An agent that catches SIGTERM and takes a second to end in order: it says it was told,
# then, a second later, that it ended in order. It never ends on its own.
GRACEFUL_AGENT = """
import os, signal, sys, time
folder = sys.argv[1]
def ending(*_):
    open(os.path.join(folder, "told"), "w").close()
    time.sleep(1.0)
    open(os.path.join(folder, "ended"), "w").close()
    sys.exit(0)
signal.signal(signal.SIGTERM, ending)
sys.stdin.read()
open(os.path.join(folder, "started"), "w").close()
while True:
    time.sleep(0.05)
"""


def test_the_grace_holds_for_a_command_the_shell_does_not_exec(
    redis_url: str, tmp_path: Path
) -> None:
    """At the timeout, an agent that catches SIGTERM gets its ``--grace`` to end in order,
    though its command does not start with ``exec``: ``/bin/sh -c CMD`` leads the group and
    dies at once on SIGTERM, which the runner took for the group's end, sending SIGKILL
    about 0.1 s later, cutting the agent's cleanup short. The grace is the longest wait,
    not a wait: once the agent has ended, the run ends, though the zombies of the shell and
    of the agent (an orphan of the runner, a subreaper) are still in the group."""
    script = tmp_path / "agent.py"
    script.write_text(GRACEFUL_AGENT)
    pool, swarm, _ = _run_one(redis_url, f"{PY} {script} {tmp_path}", timeout_s=1.5, grace_s=6.0)
    swarm.close()
    (outcome,) = pool.outcomes[:1]
    assert (tmp_path / "told").exists(), pool.outcomes
    assert (tmp_path / "ended").exists(), "SIGKILLed within the grace"
    assert outcome.status is OutcomeStatus.FAILED and "timed out" in outcome.detail, outcome
    assert outcome.duration_s < 1.5 + 4.5, outcome  # (not the whole grace: 7.5 s)


# --- 2. the answer between the run's tags is the finding

# An agent that answers between the tags its prompt gives (read from the prompt), then quotes
# JSON with a summary after it. ``ANSWER`` and ``QUOTE`` are filled in by the test.
TAGGED_AGENT = """
import re, sys
prompt = sys.stdin.read()
mark = re.search(r"<finding-([0-9a-f]+)>", prompt).group(1)
print("<finding-" + mark + ">" + ANSWER + "</finding-" + mark + ">")
print("Here is the config file I read:")
print(QUOTE)
"""


@pytest.mark.parametrize(
    ("answer", "quote", "summary"),
    [
        ("{summary: 'the real answer'}", '{"summary": "QUOTED from config.json"}',
         "{summary: 'the real answer'}"),
        ("the real answer, in prose", '```json\n{"summary": "QUOTED fenced"}\n```',
         "the real answer, in prose"),
        ('{"answer": "no summary"}', '{"summary": "QUOTED from config.json"}',
         '{"answer": "no summary"}'),
    ],
)  # fmt: skip
def test_the_text_between_the_tags_is_the_finding_not_a_later_quote(
    redis_url: str, tmp_path: Path, answer: str, quote: str, summary: str
) -> None:
    """Between the run's tags, an answer that is not a JSON object with a summary (JSON
    that does not parse, prose, an object without one) is the finding's summary, read as a
    text answer and said so on its line: JSON the agent quotes after it (bare or fenced)
    took its place."""
    script = tmp_path / "agent.py"
    script.write_text(TAGGED_AGENT.replace("ANSWER", repr(answer)).replace("QUOTE", repr(quote)))
    pool, swarm, _ = _run_one(redis_url, f"{PY} {script}")
    with swarm:
        (outcome,) = pool.outcomes
        assert outcome.status is OutcomeStatus.COMPLETED, outcome
        assert outcome.finding_id is not None
        assert swarm.get_finding(outcome.finding_id).summary == summary
    assert "not a JSON finding with a summary, between the tags" in outcome.detail, outcome


# --- 3. an agent's own fail or release stands


@pytest.mark.parametrize("verb", ["fail", "release"])
def test_an_agent_that_failed_or_released_its_task_is_not_overridden(
    redis_url: str, tmp_path: Path, verb: str
) -> None:
    """The agent fails (or releases) its own task with the run's token, then prints a
    finding: its act stands. The runner reported that finding all the same, completing the
    task at the attempt the agent had just failed (events: task.failed, task.retried, then
    task.completed by the same worker)."""
    swarm_name = _name("self")
    with Swarm(redis_url, swarm=swarm_name) as swarm:
        (posted,) = swarm.post_tasks([{"queue": QUEUE, "description": "one"}])
    extra = " --error boom" if verb == "fail" else ""
    agent = (
        f'cat >/dev/null; swarm task {verb} "$SWARM_TASK_ID" --token "$SWARM_TASK_TOKEN"{extra}'
        ' >/dev/null && echo \'{"summary": "found all the same"}\''
    )
    env = subprocess_env(redis_url, swarm_name, swarm_bin(tmp_path / "bin").parent)
    done = subprocess.run(
        [PY, "-m", "redis_swarm", "run", "--queue", QUEUE, "--exec", agent, "--max-tasks", "1"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    with Swarm(redis_url, swarm=swarm_name) as swarm:
        task = swarm.get_task(posted.id)
    assert task.status != "completed", (task, done.stdout, done.stderr)
    assert task.finding_id is None
    if verb == "fail":
        assert task.last_error is not None and "boom" in task.last_error
        assert "the agent failed its task itself: boom" in done.stdout, done.stdout
    else:
        assert task.status == "pending", task
        assert "the agent released its task itself" in done.stdout, done.stdout


# --- 4. a stop during a Redis stall ends within about the documented 2 seconds


def test_a_stop_during_a_stall_ends_within_one_stop_budget(
    servers: ServerFactory, tmp_path: Path
) -> None:
    """Redis stalls (``CLIENT PAUSE ... ALL``) while the only agent runs; SIGTERM: the
    runner gives up what Redis does not answer within one stop budget, not one per
    request (the outcome's release, the workers' deregistration, the count of open tasks,
    each waited its own 2 s: about 10 s)."""
    server = servers.start()
    swarm_name = _name("stall")
    try:
        with Swarm(server.url, swarm=swarm_name) as swarm:
            swarm.post_tasks([{"queue": QUEUE, "description": "one"}])
        started = tmp_path / "started"
        env = subprocess_env(server.url, swarm_name, swarm_bin(tmp_path / "bin").parent)
        proc = subprocess.Popen(
            [PY, "-m", "redis_swarm", "run", "--queue", QUEUE, "--until-done", "--lease", "60",
             "--grace", "0.5", "--exec", f"cat >/dev/null; touch {started}; sleep 60"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not started.exists():
            assert time.monotonic() < deadline, "the agent did not start in time"
            time.sleep(0.05)
        subprocess.run(
            ["redis-cli", "-u", server.url, "client", "pause", "20000", "all"],
            check=True, capture_output=True,
        )  # fmt: skip
        time.sleep(3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        subprocess.run(
            ["redis-cli", "-u", server.url, "client", "unpause"], check=False, capture_output=True
        )
        server.stop()
    said = stderr.decode()
    assert proc.returncode == 1, said
    assert took < 5.5, (took, said)


# --- 5. a {word} that is no placeholder is refused


@pytest.mark.parametrize("word", ["{session}", "{PROMPT}", "{task_id}"])
def test_run_refuses_a_word_in_braces_that_is_no_placeholder(
    redis_url: str, tmp_path: Path, word: str
) -> None:
    """``swarm run`` passed an unknown ``{word}`` to the agent as its literal text (the
    prompt on stdin): a typo of ``{prompt}`` was never flagged, and ``{session}``, which only
    ``swarm serve --session`` fills, was taken. A usage error now (exit 2), nothing claimed,
    naming the placeholders ``run`` knows and how to pass such text on."""
    swarm_name = _name("words")
    with Swarm(redis_url, swarm=swarm_name) as swarm:
        (posted,) = swarm.post_tasks([{"queue": QUEUE, "description": "one"}])
    env = subprocess_env(redis_url, swarm_name, swarm_bin(tmp_path / "bin").parent)
    done = subprocess.run(
        [PY, "-m", "redis_swarm", "run", "--queue", QUEUE, "--exec", f"cat {word}",
         "--max-tasks", "1"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"--exec has {word}, which is no placeholder" in done.stderr, done.stderr
    assert "{prompt} and {prompt_file}" in done.stderr, done.stderr
    assert f"'{word}'" in done.stderr, done.stderr  # (how to pass it on as text)
    with Swarm(redis_url, swarm=swarm_name) as swarm:
        assert swarm.get_task(posted.id).status == "pending"


def test_a_word_in_braces_the_shell_owns_is_not_refused(redis_url: str) -> None:
    """Text for the shell, not a placeholder: ``${HOME}``, a word in single quotes, a brace
    escaped. And ``swarm serve --session`` knows ``{session}``, which ``swarm run`` does
    not: one check, the placeholders each face fills."""
    with Swarm(redis_url, swarm=_name("shell")) as swarm:
        for command in ("echo ${HOME} '{name}' \\{name}", "cat '{summary}'"):
            Runner(swarm, RunOptions(queues=(QUEUE,), command=command))
        Server(swarm, ServeOptions(owner="owner", command="cat --resume {session}", session=True))
        with pytest.raises(ValidationError, match="which is no placeholder"):
            Server(
                swarm,
                ServeOptions(
                    owner="owner", command="cat {sesion} --resume {session}", session=True
                ),
            )
        with pytest.raises(ValidationError, match="inside double quotes"):  # (as before)
            Runner(swarm, RunOptions(queues=(QUEUE,), command='agent "{prompt}"'))
        with pytest.raises(ValidationError, match=r"\{prompt\}, \{prompt_file\} and \{session\}"):
            Server(
                swarm, ServeOptions(owner="owner", command="cat {PROMPT} {session}", session=True)
            )


def test_the_stop_budget_is_one_silence_not_one_wait_per_request() -> None:
    """Once stopped, a request is given up when Redis has answered nothing for the budget's
    grace: one wait for all the requests of a stall (each waited a grace of its own), none
    for a Redis that answers, however long after the stop the request is made."""
    from redis_swarm._outage import StopBudget, until_stopped  # (not on HEAD: fails there)

    stop = threading.Event()
    stop.set()
    budget = StopBudget(grace_s=0.5)
    until_stopped(lambda: time.sleep(0.1), stop, what="answer", budget=budget)
    time.sleep(0.8)  # (a quiet time, longer than the grace: the agents' own grace, say)
    until_stopped(lambda: time.sleep(0.3), stop, what="answer", budget=budget)  # answered
    started = time.monotonic()
    for _ in range(3):  # a stall: the first waits the grace, the others what is left of it
        with pytest.raises(ConnectionFailed, match=r"within 0\.5s of the stop"):
            until_stopped(lambda: time.sleep(3), stop, what="answer", budget=budget)
    assert time.monotonic() - started < 0.5 + 0.4
