"""``swarm run``'s waiting line, while the embedded server is down, says how to start it but
not "then run this command again": the pool tries again by itself (docs/agents.md,
docs/reliability.md). A one-shot command keeps the advice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from redis_swarm import ConnectionFailed, Swarm

from .test_embedded import swarm_cli

SWARM = "walk-outage"


def test_the_pools_waiting_line_does_not_say_to_run_the_command_again(
    swarm_home: Path, tmp_path: Path
) -> None:
    assert swarm_cli(swarm_home, "up").returncode == 0
    # The agent stops the embedded server under the pool, then finishes: its report waits.
    agent = tmp_path / "agent.py"
    agent.write_text(
        "import subprocess, sys\n"
        "sys.stdin.read()\n"
        f"subprocess.run([sys.executable, '-m', 'redis_swarm', '--home', {str(swarm_home)!r}, "
        "'down'], check=True, capture_output=True)\n"
        'print(\'{"summary": "done"}\')\n'
    )
    with Swarm(f"embedded://{swarm_home}", swarm=SWARM) as swarm:
        swarm.post_task("q", "stop the server, then finish")
    run = subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", "--home", str(swarm_home), "--swarm", SWARM,
         "run", "--queue", "q", "--exec", f"{sys.executable} {agent}", "--until-done"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    said: list[str] = []
    try:
        assert run.stderr is not None
        for line in run.stderr:  # (the pool's progress)
            said.append(line.rstrip("\n"))
            if "waiting for Redis" in line:
                assert swarm_cli(swarm_home, "up").returncode == 0
                break
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
    said += err.splitlines()
    waiting = [n for n in said if "waiting for Redis" in n]
    assert run.returncode == 0, said
    assert waiting and all(n.endswith("; retrying") for n in waiting), said
    assert all("the embedded server is not running" in n for n in waiting), waiting
    assert all(f"start it with 'swarm --home {swarm_home} up'" in n for n in waiting), waiting
    assert not any("run this command again" in n for n in said), said


def test_a_one_shot_command_still_says_to_run_it_again(swarm_home: Path) -> None:
    assert swarm_cli(swarm_home, "up").returncode == 0
    with Swarm(f"embedded://{swarm_home}", swarm=SWARM) as swarm:
        swarm.ping()
        assert swarm_cli(swarm_home, "down").returncode == 0
        with pytest.raises(ConnectionFailed, match="then run this command again"):
            swarm.ping()
