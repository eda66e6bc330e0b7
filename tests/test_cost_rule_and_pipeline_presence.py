"""A pass's cost is given alike by every face (``swarm status --pass --json`` with the MCP
``swarm_status``'s caveats); a cost reads the same in every view (one rule of decimals,
``usd``'s); a pipeline's planner and synthesizer are present while they run, as a ``swarm
run`` slot is (``SlotPresence``): a run of minutes does not read stale in ``swarm agents``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from redis_swarm import Swarm
from redis_swarm._pipeline import load_plan
from redis_swarm._pipeline.names import planning_task_id
from redis_swarm._usage import Usage
from redis_swarm.mcp_server import build_server

from ._cli import Cli
from .mcp_server._helpers import connect
from .test_pipeline_run import PY, run_plan, three_passes


@pytest.fixture
def handle(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as swarm:
        yield swarm


# --- status --pass --json: the caveats the MCP tool gives


def test_status_pass_json_gives_the_caveats_the_mcp_tool_gives(
    handle: Swarm, redis_url: str
) -> None:
    handle.post_task("q", "a", pass_name="day-1")
    task = handle.claim(["q"], worker="w")
    assert task is not None and task.token is not None
    handle.report(task.id, task.token, {"summary": "a"}, usage=Usage("x", cost_usd=0.1))
    handle.retire_pass("day-1")
    shown = Cli(redis_url).json("status", "--pass", "day-1")["pass"]["costs"]

    async def body() -> dict[str, Any]:
        async with connect(build_server(handle, role="worker")) as worker:
            asked, _ = await worker("swarm_status", pass_name="day-1")
            return dict(asked["pass_costs"])

    assert shown["caveats"] == anyio.run(body)["caveats"] == handle.pass_costs("day-1").caveats()
    assert any("the pass was retired on " in caveat for caveat in shown["caveats"])


# --- the pipeline's own agents are present while they run

# Runs the real agent (argv[2]) after looking, a second and a half into its run, at what the
# swarm says of the agents (written as a JSON line to argv[1]).
SPY = r"""
import json, os, subprocess, sys, time
from redis_swarm import Swarm
prompt = sys.stdin.read()
time.sleep(1.5)
with Swarm(os.environ["SWARM_URL"], swarm=os.environ["SWARM_NAME"]) as swarm:
    agents = [a.to_dict() for a in swarm.agents()]
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"agents": agents}) + "\n")
done = subprocess.run([sys.executable, sys.argv[2]], input=prompt, capture_output=True, text=True)
sys.stdout.write(done.stdout)
"""


def _spied(tmp_path: Path) -> Path:
    path = three_passes(tmp_path)
    (tmp_path / "spy.py").write_text(SPY)
    text = path.read_text()
    for role, script in (("synthesizer", "synth.py"), ("planner", "planner.py")):
        real = f'exec = "{PY} {tmp_path}/{script}"'
        spied = f'exec = "{PY} {tmp_path}/spy.py {tmp_path}/{role}.seen {tmp_path}/{script}"'
        assert real in text
        text = text.replace(real, spied)
    path.write_text(text)
    return path


def _seen(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_pipelines_planner_and_synthesizer_are_alive_while_they_run(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    path = _spied(tmp_path)
    assert run_plan(cli, path, "--worker", "pl")["done"]
    plan = load_plan(path)
    # every synthesizer run: its agent present and alive (no claim registers it)
    for look in _seen(tmp_path / "synthesizer.seen"):
        (me,) = [a for a in look["agents"] if a["id"] == "pl-synthesizer"]
        assert me["alive"] and me["role"] == "synthesizer"  # (registered by its beat: not a worker)
    # every planner run: alive, beaten for since its claim (its first beat a second into
    # its run, which began after that claim), naming the planning task it holds
    looks = _seen(tmp_path / "planner.seen")
    assert len(looks) == 2  # passes 2 and 3
    for index, look in zip((1, 2), looks, strict=True):
        (me,) = [a for a in look["agents"] if a["id"] == "pl-planner"]
        claimed_at = handle.get_task(planning_task_id(plan, index)).claimed_at
        assert claimed_at is not None
        assert me["alive"] and me["last_seen"] >= claimed_at + 500
        assert me["current_task"] == planning_task_id(plan, index)
    # and once done, neither is left registered (stale for good)
    assert not [a.id for a in handle.agents() if a.id in ("pl-planner", "pl-synthesizer")]
