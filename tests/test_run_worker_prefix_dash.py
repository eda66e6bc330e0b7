"""``swarm run --worker=-x`` (and ``swarm serve``'s): the core refuses a new agent a name
beginning with '-' at its claim (a hint naming it would read it as an option), so a pool whose
slots (``-x-1``, ...) no agent is registered under is refused before it claims anything, as a
bad option (exit 2) in the core's words, not started to stop at its first claim (exit 1).
Slots registered under such names before the rule claim on, as the core lets them."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm._validate import option_like

from ._cli import Cli

PY = sys.executable

AGENT = """
import json, sys
sys.stdin.read()
print(json.dumps({"summary": "found"}))
"""


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _agent(tmp_path: Path) -> str:
    path = tmp_path / "agent.py"
    path.write_text(AGENT)
    return f"{PY} {path}"


def _stored_before_the_rule(swarm: Swarm, raw: Any, *names: str) -> None:
    """Agents an older version registered under ``names`` (the rule refuses them new)."""
    swarm.register("worker", name="w1")
    record = json.loads(raw.hget(swarm.keys.agents, "w1"))
    for name in names:
        raw.hset(swarm.keys.agents, name, json.dumps(record | {"id": name}))
    swarm.deregister("w1")


def test_swarm_run_refuses_a_new_worker_prefix_beginning_with_a_dash(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    task = swarm.post_task("q", "do it")
    out = cli("run", "--queue", "q", "--exec", _agent(tmp_path), "--worker=-x", expect=2)
    assert str(option_like("worker", "-x-1")) in out.stderr, out
    assert swarm.agents() == [] and swarm.get_task(task.id).status == "pending"


def test_a_pool_claims_as_its_slots_registered_before_the_rule_and_only_so(
    cli: Cli, swarm: Swarm, raw: Any, tmp_path: Path
) -> None:
    """-x-1 was registered before the rule, -x-2 was not: a pool of two is refused (its
    second slot's claim would be), a pool of one claims as -x-1 and reports."""
    _stored_before_the_rule(swarm, raw, "-x-1")
    task = swarm.post_task("q", "do it")
    args = ("run", "--queue", "q", "--exec", _agent(tmp_path), "--worker=-x")
    out = cli(*args, "-c", "2", expect=2)
    assert str(option_like("worker", "-x-2")) in out.stderr, out
    assert swarm.get_task(task.id).status == "pending"
    data = json.loads(cli("--json", *args, "--max-tasks", "1").stdout)
    assert data["completed"] == 1, data
    stored = swarm.get_task(task.id)
    assert stored.status == "completed" and stored.finding_id is not None, stored
    assert swarm.get_finding(stored.finding_id).worker == "-x-1"


def test_swarm_serve_refuses_a_new_worker_prefix_beginning_with_a_dash(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    out = cli("serve", "owner", "--exec", _agent(tmp_path), "--worker=-x", expect=2)
    assert str(option_like("worker", "-x-1")) in out.stderr, out
    assert swarm.agents() == []
