"""An agent ``swarm run`` starts finds this install's ``swarm`` on its PATH, as its prompt
(prompts/task.md) assumes, even when the runner's own PATH lacks the install's bin/ (a venv's
``swarm`` run by its path, a service's bare PATH)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._executable import swarm_command
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions

from ._servers import RedisServer

AGENT = """
import json, shutil, subprocess, sys
sys.stdin.read()
found = shutil.which("swarm")
ran = subprocess.run([found, "--version"], capture_output=True, text=True) if found else None
about = {"found": found, "version": ran.stdout.strip() if ran else None}
print(json.dumps({"summary": "swarm at " + str(found), "details": json.dumps(about)}))
"""


def test_an_agent_finds_this_installs_swarm_on_a_bare_path(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = swarm_command()[0]
    if Path(program).name != "swarm":
        pytest.skip("this install has no swarm program (python -m redis_swarm)")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # a service's PATH: no venv bin/
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    with Swarm(redis_server.url, swarm="agentpath") as swarm:
        swarm.post_task("work", "where is swarm?")
        options = RunOptions(
            queues=("work",), command=f"{sys.executable} {script}", until_done=True, poll_s=0.2
        )
        pool = Runner(swarm, options)
        pool.run()
        assert [o.status for o in pool.outcomes] == [OutcomeStatus.COMPLETED], pool.errors
        finding = swarm.findings(limit=1).items[0]
    data = json.loads(finding.details or "{}")
    assert data["found"] == program
    assert data["version"], "the swarm found did not run"
