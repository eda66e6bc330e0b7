"""The worker's report_finding and fail_task take what the run cost (``usage``), read as the
CLI's --usage is; a "usage" key in a finding's extra is refused, pointing at the argument."""

from __future__ import annotations

import anyio

from redis_swarm import Swarm, Usage
from redis_swarm.mcp_server import build_server

from ._helpers import connect


def test_report_and_fail_record_what_the_run_cost(core: Swarm) -> None:
    core.configure_queue("work", retry_backoff_s=0.01)  # the retry matters, not its backoff
    core.post_task("work", "one", max_attempts=3)

    async def body() -> None:
        async with connect(build_server(core, role="worker", name="w")) as agent:
            claimed, _ = await agent("claim_task", queue="work")
            task_id = claimed["task"]["id"]
            spent = {"cost_usd": 0.02, "tokens_in": 900, "tokens_out": 40}
            await agent("fail_task", task_id=task_id, error="it broke", usage=spent)
            assert core.get_task(task_id).failed_usage == Usage("reported", 0.02, 900, 40)
            await agent("claim_task", queue="work", wait_s=5)
            done, _ = await agent(
                "report_finding", task_id=task_id, summary="s", usage={"cost_usd": 0.5}
            )
            usage = core.get_finding(done["finding_id"]).usage
            assert usage == Usage("reported", cost_usd=0.5)

    anyio.run(body)


def test_a_usage_that_is_not_one_is_refused_and_nothing_is_written(core: Swarm) -> None:
    core.post_task("work", "one")

    async def body() -> None:
        async with connect(build_server(core, role="worker", name="w")) as agent:
            task_id = (await agent("claim_task", queue="work"))[0]["task"]["id"]
            message = await agent.error(
                "report_finding", task_id=task_id, summary="s", usage={"tokens_in": -5}
            )
            assert "ValidationError: usage tokens_in is -5: give a whole number" in message
            message = await agent.error(
                "fail_task", task_id=task_id, error="e", usage={"tokens": 5}
            )
            assert "usage has no field tokens" in message
            message = await agent.error(
                "report_finding", task_id=task_id, summary="s", extra={"usage": {"cost_usd": 1}}
            )
            assert 'extra holds "usage"' in message
            assert "pass it as report_finding's usage argument" in message
            task = core.get_task(task_id)  # (the session releases its leases as it ends)
            assert task.status == "claimed" and task.failures == 0
            assert not core.findings().items

    anyio.run(body)
