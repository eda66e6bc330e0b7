"""Walk 58 of the MCP server at scale: ``swarm_status`` lists the open queues and passes and
the last few settled ones, as ``swarm status`` and ``/api/status`` do (``bounded``), with
``not_shown`` counting the rest and ``all=true`` listing them; it listed every one before,
1,503 queues and 1,302 passes coming in 7 pages with the agents and contexts on the last."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from redis_swarm import Swarm
from redis_swarm._printable import SETTLED_SHOWN
from redis_swarm.mcp_server import build_server

from .mcp_server._helpers import Tools, connect, texts

QUEUES, PASSES = 600, 400
# Names as a daily pipeline's (q-1, p-1 made the whole list fit one page already).
Q, P = "review-shard-", "nightly-run-"
BUDGET_TOKENS = 8_000


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    """A Swarm on the flushed test server: what the MCP server under test talks to."""
    with Swarm(redis_url, swarm="walk58") as swarm:
        yield swarm


def _swarm(core: Swarm) -> tuple[set[str], set[str]]:
    """600 queues and 400 passes, a task in each queue: every 20th pending, one delayed,
    the others cancelled. The names of the queues and of the passes with open work."""
    specs: list[dict[str, Any]] = []
    for i in range(QUEUES):
        spec: dict[str, Any] = {
            "queue": f"{Q}{i}",
            "description": "d",
            "pass_name": f"{P}{i % PASSES}",
        }
        if i == 7:
            spec["delay_s"] = 3600
        specs.append(spec)
    tasks = core.post_tasks(specs)
    open_ = {i for i in range(QUEUES) if i % 20 == 0 or i == 7}
    for i, task in enumerate(tasks):
        if i not in open_:
            core.cancel(task.id)
    return {f"{Q}{i}" for i in open_}, {f"{P}{i % PASSES}" for i in open_}


async def _whole(tools: Tools, **args: Any) -> dict[str, Any]:
    """swarm_status's result, its pages (next_page) put together."""
    result = await tools.raw("swarm_status", **args)
    blocks = texts(result)
    head = json.loads(blocks[0])
    if "next_cursor" not in head and len(blocks) == 1:
        assert isinstance(head, dict)
        return head
    document = blocks[1]
    while "next_cursor" in head:
        head, page = await tools("next_page", cursor=head["next_cursor"])
        assert page is not None
        document += page
    whole = json.loads(document)
    assert isinstance(whole, dict)
    return whole


def test_swarm_status_at_scale_lists_open_work_and_counts_the_rest(core: Swarm) -> None:
    open_queues, open_passes = _swarm(core)

    async def body() -> None:
        server = build_server(core, role="worker", budget_tokens=BUDGET_TOKENS)
        async with connect(server, budget_tokens=BUDGET_TOKENS) as worker:
            claimed, _ = await worker("claim_task", queue=Q + "40")
            held = claimed["task"]["id"]
            # One page (Tools checks it is under the budget), compact, whole.
            result = await worker.raw("swarm_status")
            blocks = texts(result)
            assert len(blocks) == 1 and "\n" not in blocks[0]
            status = json.loads(blocks[0])
            assert "next_cursor" not in status and "page" not in status
            # The short lists first, before the queues.
            keys = list(status)
            assert keys.index("agents") < keys.index("queues")
            assert keys.index("contexts") < keys.index("queues")
            assert status["holding"] == [held]
            assert status["agents"]["by_role"] == {"worker": 1}
            # Every open queue and pass, and the last SETTLED_SHOWN settled ones.
            queues, passes = status["queues"], {p["name"]: p for p in status["passes"]}
            assert open_queues <= set(queues) and open_passes <= set(passes)
            assert queues[Q + "40"] == {"claimed": 1} and queues[Q + "7"] == {"delayed": 1}
            assert queues[Q + "20"] == {"pending": 1}
            settled_queues = set(queues) - open_queues
            settled_passes = set(passes) - open_passes
            assert settled_queues == {f"{Q}{i}" for i in range(590, 600)}
            assert settled_passes == {f"{P}{i}" for i in range(390, 400)}
            assert queues[Q + "599"] == {"cancelled": 1}
            assert passes[P + "399"] == {"name": P + "399", "settled": 1, "total": 1}
            assert status["settled_shown"] == SETTLED_SHOWN
            hidden_queues = QUEUES - len(open_queues) - SETTLED_SHOWN
            hidden_passes = PASSES - len(open_passes) - SETTLED_SHOWN
            assert status["not_shown"] == {
                "queues": hidden_queues,
                "passes": hidden_passes,
                "contexts": 0,
            }
            assert status["more"] == (
                f"not shown: {hidden_queues} settled queues and {hidden_passes} settled passes "
                "(swarm_status with all=true lists them)"
            )
            assert status["totals"] == {"pending": 29, "delayed": 1, "claimed": 1, "cancelled": 569}

            # all=true: every one (in pages), nothing left out.
            every = await _whole(worker, all=True)
            assert set(every["queues"]) == {f"{Q}{i}" for i in range(QUEUES)}
            assert {p["name"] for p in every["passes"]} == {f"{P}{i}" for i in range(PASSES)}
            assert every["not_shown"] == {"queues": 0, "passes": 0, "contexts": 0}
            assert every["settled_shown"] is None and "more" not in every

    anyio.run(body)


def test_swarm_status_of_a_small_swarm_lists_everything(core: Swarm) -> None:
    """Nothing left out, nothing said of it: a swarm of a few settled queues and passes."""
    tasks = core.post_tasks(
        [{"queue": f"s-{i}", "description": "d", "pass_name": "one"} for i in range(3)]
    )
    for task in tasks:
        core.cancel(task.id)

    async def body() -> None:
        async with connect(build_server(core, role="shard")) as shard:
            status, _ = await shard("swarm_status")
            assert status["queues"] == {f"s-{i}": {"cancelled": 1} for i in range(3)}
            assert status["passes"] == [{"name": "one", "settled": 3, "total": 3}]
            assert status["not_shown"] == {"queues": 0, "passes": 0, "contexts": 0}
            assert "more" not in status

    anyio.run(body)
