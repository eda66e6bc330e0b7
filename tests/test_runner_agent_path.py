"""An agent ``swarm run`` starts finds this install's ``swarm`` on its PATH, as its prompt
(prompts/task.md) assumes, even when the runner's own PATH lacks the install's bin/ (a venv's
``swarm`` run by its path, a service's bare PATH)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from redis_swarm import Settings, Swarm
from redis_swarm._executable import reach_env, swarm_command
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
    # (a folder of its own holds a link to it: the install's bin/ would shadow the agent's
    # python and pip)
    assert data["found"] and os.path.samefile(data["found"], program)
    assert os.listdir(os.path.dirname(data["found"])) == ["swarm"]
    assert data["version"], "the swarm found did not run"


def test_every_agent_environment_finds_this_installs_swarm(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # reach_env is what the runner's and the pipeline's agents get (planner, synthesizer).
    program = swarm_command()[0]
    if Path(program).name != "swarm":
        pytest.skip("this install has no swarm program (python -m redis_swarm)")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    env = reach_env(Settings.from_url("embedded", swarm="s", home=tmp_path))
    first, *rest = env["PATH"].split(os.pathsep)
    assert rest == ["/usr/bin", "/bin"] and os.listdir(first) == ["swarm"]
    assert os.path.samefile(os.path.join(first, "swarm"), program)
    assert env["SWARM_HOME"] == str(tmp_path) and env["SWARM_NAME"] == "s"
    monkeypatch.setenv("PATH", f"{Path(program).parent}:/usr/bin")
    assert "PATH" not in reach_env(Settings.from_url("embedded", home=tmp_path))


def test_a_swarm_found_through_a_link_is_this_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # pipx and uv tool installs put a link to the venv's swarm on PATH: nothing to add then.
    program = swarm_command()[0]
    if Path(program).name != "swarm":
        pytest.skip("this install has no swarm program (python -m redis_swarm)")
    linked = tmp_path / "bin"
    linked.mkdir()
    (linked / "swarm").symlink_to(program)
    monkeypatch.setenv("PATH", f"{linked}:/usr/bin")
    assert "PATH" not in reach_env(Settings.from_url("embedded", home=tmp_path))
