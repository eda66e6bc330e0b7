"""The planners' post_task and post_tasks tools: a delay on the server's clock, checked as
every argument is, and the hint to wait for the pass."""

from __future__ import annotations

import anyio

from redis_swarm import Swarm
from redis_swarm.mcp_server import build_server

from ._helpers import connect


def test_tasks_posted_with_a_delay_wait_for_it(core: Swarm) -> None:
    async def body() -> None:
        async with connect(build_server(core, role="all", name="planner")) as agent:
            one, _ = await agent(
                "post_task", queue="work", description="later", pass_name="P", delay_s=30
            )
            assert one["task"]["status"] == "delayed" and "not_before" in one["task"]
            assert one["next"] == 'wait for the pass with wait_for_pass(pass_name="P")'
            many, _ = await agent(
                "post_tasks",
                tasks=[
                    {"queue": "work", "description": "later too", "delay_s": 1.5},
                    {"queue": "work", "description": "now", "pass_name": "Q"},
                ],
            )
            assert many["next"] == 'wait for the pass with wait_for_pass(pass_name="Q")'
            nothing, _ = await agent("post_task", queue="work", description="no pass")
            assert "next" not in nothing
            claimed, _ = await agent("claim_task", queue="work")
            assert claimed["task"]["description"] == "now"  # the delayed ones wait
            assert (await agent("claim_task", queue="work"))[0]["task"]["description"] == "no pass"
            assert (await agent("claim_task", queue="work"))[0]["task"] is None
        # Counted by the server from its own now: exactly the delay after the task's creation.
        for task_id, delay_ms in ((one["task"]["id"], 30_000), (many["ids"][0], 1_500)):
            task = core.get_task(task_id)
            assert task.not_before is not None
            assert task.not_before - task.created_at == delay_ms

    anyio.run(body)


def test_a_bad_delay_is_one_plain_line(core: Swarm) -> None:
    async def body() -> None:
        async with connect(build_server(core, role="all", name="planner")) as agent:
            message = await agent.error("post_task", queue="q", description="d", delay_s=-1)
            assert message == (
                "Error executing tool post_task: ValidationError: delay_s: must be at least 0 "
                "(got -1) (fix that argument and call again)"
            )
            message = await agent.error(
                "post_tasks", tasks=[{"queue": "q", "description": "d", "delay_s": "soon"}]
            )
            assert 'tasks[0].delay_s: must be a number (got "soon")' in message, message
            assert "\n" not in message
            # The bound (a century, the core's own) is in the schema and said in one line too.
            message = await agent.error("post_task", queue="q", description="d", delay_s=1e12)
            assert "delay_s: must be at most" in message and "\n" not in message
            # The same bounds for one task as for many (max_attempts was unchecked in a list).
            message = await agent.error(
                "post_tasks", tasks=[{"queue": "q", "description": "d", "max_attempts": 0}]
            )
            assert "tasks[0].max_attempts: must be at least 1 (got 0)" in message
        assert core.queue_stats() == {}  # nothing posted

    anyio.run(body)
