"""What the agents' task column of the dashboard and ``swarm watch`` shows, as
docs/dashboard.md says it: the task an agent says it works on (``swarm agents heartbeat
--task``), else, for a worker that only claims, the task it holds a lease on (among the
newest leases, read in the round trips ``agents()`` and ``status()`` take), and none once
it reported; who holds a claimed task is also that task's ``worker``, in ``swarm task list
--status claimed``.

(The core decides it, in ``agents()`` and so in ``status().roster``: every face shows the
same task; the leases cost two more round trips there.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_swarm import Swarm

from ._cli import Cli


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _watched(cli: Cli) -> dict[str, str | None]:
    """Each agent's task as ``swarm watch --once --json`` shows it."""
    snap = cli.json("watch", "--once")
    return {a["id"]: a["current_task"] for a in snap["agents"]}


def test_the_task_an_agent_says_it_works_on_is_shown_until_cleared(cli: Cli, swarm: Swarm) -> None:
    swarm.register("shard", name="shard-1")
    swarm.post_task("synth", "synthesise", task_id="t-synthesis")
    cli("agents", "heartbeat", "shard-1", "--task", "t-synthesis")
    assert _watched(cli) == {"shard-1": "t-synthesis"}
    (agent,) = swarm.status().roster
    assert agent.current_task == "t-synthesis"
    assert "t-synthesis" in cli("watch", "--once").stdout
    cli("agents", "heartbeat", "shard-1", "--task", "")
    assert _watched(cli) == {"shard-1": None}


def test_a_worker_that_only_claims_shows_the_task_it_holds_until_it_reports(
    cli: Cli, swarm: Swarm
) -> None:
    posted = swarm.post_task("q", "look")
    claimed = swarm.claim("q", worker="w-1")
    assert claimed is not None and claimed.id == posted.id
    assert _watched(cli) == {"w-1": posted.id}
    assert posted.id in cli("watch", "--once").stdout
    held = cli.json("task", "list", "--status", "claimed")["items"]
    assert [(t["id"], t["worker"]) for t in held] == [(posted.id, "w-1")]
    swarm.report(claimed.id, claimed.token, {"summary": "seen"})
    assert _watched(cli) == {"w-1": None}


def test_the_task_an_agent_says_wins_over_the_one_it_holds(cli: Cli, swarm: Swarm) -> None:
    swarm.post_task("q", "look")
    claimed = swarm.claim("q", worker="w-1")
    assert claimed is not None
    swarm.post_task("own", "its own", task_id="t-own")
    cli("agents", "heartbeat", "w-1", "--task", "t-own")
    assert _watched(cli) == {"w-1": "t-own"}
    cli("agents", "heartbeat", "w-1", "--task", "")  # cleared: the lease shows again
    assert _watched(cli) == {"w-1": claimed.id}
