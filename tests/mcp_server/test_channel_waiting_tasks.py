"""A channel session started on a backlog: the tasks already waiting in its watched queues
were told of nowhere (only the unread messages waiting were pushed), so the session sat idle
until someone posted. Now it starts with one notice per watched queue holding pending tasks
(the delayed ones due by then among them), saying how many, and does not tell them again."""

from __future__ import annotations

import time

import anyio

from redis_swarm import Swarm
from redis_swarm.mcp_server._channel import waiting_tasks

from .test_channel import AGENT, Heard, _client, _next, _registered


def test_waiting_tasks_are_one_notice_per_queue_saying_how_many() -> None:
    told = waiting_tasks({"work": 3, "empty": 0, "one": 1}, role="worker")
    assert [n.meta for n in told] == [
        {"kind": "task", "queue": "work", "count": "3", "waiting": "true"},
        {"kind": "task", "queue": "one", "count": "1", "waiting": "true"},
    ]
    assert told[0].content == '3 tasks are waiting in queue work: claim_task(queue="work").'
    assert told[1].content.startswith("1 task is waiting in queue one")
    # A role that claims nothing is told who does.
    assert "claims no tasks" in waiting_tasks({"work": 2}, role="coordinator")[0].content


def test_a_session_started_on_a_backlog_is_told_of_the_tasks_waiting(
    core: Swarm, redis_url: str
) -> None:
    core.post_tasks([{"queue": "work", "description": f"t{i}"} for i in range(3)])
    now_ms = int(time.time() * 1000)
    core.post_task("work", "due by the start", not_before=now_ms + 200)
    core.post_task("work", "not due for an hour", not_before=now_ms + 3_600_000)
    core.post_task("elsewhere", "not watched")
    time.sleep(0.3)  # the delayed one falls due, with nobody claiming
    heard = Heard()

    async def body() -> None:
        t = time.monotonic()
        async with _client(redis_url, "legacy", heard):
            await _registered(core, AGENT)
            event = await _next(heard, 1, t + 2)  # (the server's start takes a second or two)
            assert event.meta == {"kind": "task", "queue": "work", "count": "4",
                                  "waiting": "true"}  # fmt: skip
            assert event.content == '4 tasks are waiting in queue work: claim_task(queue="work").'
            await anyio.sleep(0.5)
            assert len(heard.events) == 1, [e for _, e in heard.events]  # not told again

            t = time.monotonic()
            task = core.post_task("work", "posted after the start")
            event = await _next(heard, 2, t)  # the live ones are told as ever
            assert event.meta == {"kind": "task", "task_id": task.id, "queue": "work"}

    anyio.run(body)
