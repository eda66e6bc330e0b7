"""Peer assist (issue 18): a worker under ``swarm run`` that is blocked asks the queue
``assist``; an idle worker of the same pool (``--queue main --queue assist``) answers."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from redis_swarm import NotFound, Swarm

from ._cli import Cli, run_swarm, subprocess_env, swarm_bin

AGENT = """
import json, os, subprocess, sys, time
prompt = sys.stdin.read()
if os.environ["SWARM_TASK_QUEUE"] == "main":
    # Blocked: ask the peers (SWARM_TASK_ID links the answer to this task).
    asked = subprocess.run(["swarm", "ask", "assist", "Q9: which port does staging use?",
                            "--timeout", "60"], capture_output=True, text=True)
    assert asked.returncode == 0, asked.stderr
    print(json.dumps({"summary": "staging listens on " + asked.stdout.strip()}))
else:
    time.sleep(2.5)  # longer than the asker's lease (2 s): it is renewed meanwhile
    assert "Q9: which port does staging use?" in prompt
    print(json.dumps({"summary": "port 6380"}))
"""


def test_an_idle_worker_answers_a_blocked_one(redis_url: str, tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text(textwrap.dedent(AGENT))
    env = subprocess_env(redis_url, "test", tmp_path / "bin")
    swarm_bin(tmp_path / "bin")
    with Swarm(redis_url, swarm="test") as swarm:
        main = swarm.post_task("main", "write the deployment notes")
        args = ["run", "--queue", "main", "--queue", "assist", "--concurrency", "2",
                "--lease", "2", "--until-done", "--exec", f"{sys.executable} {script}",
                "--json"]  # fmt: skip
        proc = run_swarm(args, env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        assert summary["completed"] == 2, summary
        done = swarm.get_task(main.id)
        assert swarm.get_finding(str(done.finding_id)).summary == "staging listens on port 6380"
        assert (done.attempts, done.abandons) == (1, 0)  # its lease held while it waited
        (answer,) = swarm.findings(queue="assist").items
        assert answer.extra == {"kind": "answer", "asker_task": main.id}
        question = swarm.get_task(answer.task_id)
        assert question.data["asker_task"] == main.id
        # the lineage of the worker's finding shows the answer it used
        tree = Cli(redis_url).json("lineage", str(done.finding_id))
        (used,) = tree["answers"]
        assert (used["id"], used["queue"], used["text"]) == (answer.id, "assist", "port 6380")
        assert used["question"] == "Q9: which port does staging use?"
        text = Cli(redis_url)("lineage", str(done.finding_id)).stdout
        assert f"asked assist: Q9: which port does staging use? -> answer {answer.id}" in text


def test_assist_is_a_target_before_anyone_posted_to_it(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        with pytest.raises(Exception, match="no answerer claimed it"):
            swarm.ask("assist", "anyone?", timeout_s=0.1)
        with pytest.raises(NotFound):
            swarm.ask("assist2", "anyone?", timeout_s=0.1)
