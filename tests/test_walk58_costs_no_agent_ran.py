"""``swarm run`` whose agent command the shell could not start (exit 126: not executable; 127:
not found) gives its task back and stops: no agent ran, and its last line says so (``no
agent ran``, docs/agents.md), not ``agent runs: cost unknown (1 of 1 runs reported no
cost)`` as it did, counting the release as an agent run. Real server, real shell."""

from __future__ import annotations

from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions

from ._cli import Cli

QUEUE = "work"


def _not_executable(tmp_path: Path) -> Path:
    script = tmp_path / "nonexec.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    return script


@pytest.mark.parametrize("code", [126, 127])
def test_a_run_the_shell_could_not_start_is_no_agent_run(
    redis_url: str, tmp_path: Path, code: int
) -> None:
    command = (
        str(_not_executable(tmp_path)) if code == 126 else "cat >/dev/null; no-such-program-walk58"
    )
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.post_task(QUEUE, "one")
        pool = Runner(swarm, RunOptions(queues=(QUEUE,), command=command, max_tasks=1))
        pool.run()
        (outcome,) = pool.outcomes
        spent = pool.spent()
    assert outcome.status is OutcomeStatus.RELEASED and outcome.returncode == code, outcome
    assert not outcome.agent_ran
    assert spent["runs"] == 0 and spent["runs_without_cost"] == 0, spent


def test_its_last_line_says_no_agent_ran(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _not_executable(tmp_path)
    cli = Cli(redis_url)
    cli("task", "post", QUEUE, "one")
    monkeypatch.chdir(tmp_path)
    out = cli("run", "--queue", QUEUE, "--exec", "./nonexec.sh", expect=None)
    assert "released 1" in out.stdout + out.stderr, out
    assert "no agent ran" in out.stdout + out.stderr, out
    assert "runs reported no cost" not in out.stdout + out.stderr, out
    data = cli.json("run", "--queue", QUEUE, "--exec", "./nonexec.sh", expect=None)
    assert data["released"] == 1 and data["usage"]["runs"] == 0, data
