"""A claim registers the worker it leases to (implicitly, in its script), so the rule for a new
agent's name holds there too: a worker named '-x' that no agent is registered under is refused
(a hint naming it, ``swarm agents deregister -x``, would read it as an option), by the core, so
every face alike; one stored under such a name before the rule claims as it did. An ordinary
name's claim sends nothing more for it (the claim is the hot path: docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import AsyncSwarm, Swarm, ValidationError

from ._cli import Cli

REFUSED = "worker '-x' begins with '-'"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    handle = Swarm(redis_url, swarm="test")
    yield handle
    handle.close()


def _hexists_calls(raw: Any) -> int:
    return int(raw.info("commandstats").get("cmdstat_hexists", {}).get("calls", 0))


def test_a_claim_refuses_a_new_worker_beginning_with_a_dash(
    swarm: Swarm, raw: Any, redis_url: str
) -> None:
    task = swarm.post_task("q", "do it")
    for claim in (
        lambda: swarm.claim("q", worker="-x"),
        lambda: swarm.claim("q", worker="-x", n=2),
        lambda: swarm.claim("q", worker="-x", wait_s=0.01),
    ):
        with pytest.raises(ValidationError) as caught:
            claim()
        assert str(caught.value).startswith(REFUSED), caught.value
        assert "begin it with an ASCII letter" in str(caught.value)

    async def claim_async() -> None:
        async with AsyncSwarm(redis_url, swarm="test") as handle:
            with pytest.raises(ValidationError, match=REFUSED):
                await handle.claim("q", worker="-x")

    asyncio.run(claim_async())
    # Nothing stored: no agent, the task still pending for another worker.
    assert swarm.agents() == []
    assert swarm.get_task(task.id).status == "pending"
    # An ordinary name's claim asks nothing more: the claim script alone (no HEXISTS).
    raw.config_resetstat()
    claimed = swarm.claim("q", worker="w1")
    assert claimed is not None and claimed.id == task.id
    assert _hexists_calls(raw) == 0
    assert [agent.id for agent in swarm.agents()] == ["w1"]
    # An agent an older version stored as '-x' keeps its name and claims (as ``register``).
    record = json.loads(raw.hget(swarm.keys.agents, "w1"))
    raw.hset(swarm.keys.agents, "-x", json.dumps(record | {"id": "-x"}))
    again = swarm.post_task("q", "do it again")
    claimed = swarm.claim("q", worker="-x")
    assert claimed is not None and claimed.id == again.id and claimed.worker == "-x"


def test_a_report_claiming_next_refuses_a_new_worker_beginning_with_a_dash(
    swarm: Swarm,
) -> None:
    """A report's ``claim_next`` leases (and registers) the worker it names: the same rule."""
    first = swarm.post_task("q", "one")
    second = swarm.post_task("q", "two")
    held = swarm.claim("q", worker="w1")
    assert held is not None and held.id == first.id and held.token is not None
    with pytest.raises(ValidationError, match=REFUSED):
        swarm.report(first.id, held.token, {"summary": "done"}, worker="-x", claim_next="q")
    assert swarm.get_task(first.id).status == "claimed"  # the report ran nothing
    assert swarm.get_task(second.id).status == "pending"
    assert [agent.id for agent in swarm.agents()] == ["w1"]


def test_the_cli_refuses_claim_worker_beginning_with_a_dash(cli: Cli, swarm: Swarm) -> None:
    task = swarm.post_task("q", "do it")
    out = cli("task", "claim", "q", "--worker=-x", expect=2)
    assert REFUSED in out.stderr, out
    assert swarm.agents() == [] and swarm.get_task(task.id).status == "pending"
