"""A retired pass is said to be retired, by every face that refuses a pass it does not know
(swarm task wait, swarm status --pass, MCP wait_for_pass): it was told "no task has ever
been posted", which a pass retired on purpose contradicts."""

from __future__ import annotations

import anyio

from redis_swarm import Swarm
from redis_swarm.mcp_server import build_server

from .._cli import Cli
from ._helpers import connect

RETIRED = 'pass "day-5" was retired on '


def test_every_face_says_a_pass_was_retired(core: Swarm, redis_url: str) -> None:
    core.cancel(core.post_task("work", "one", pass_name="day-5").id)
    core.post_task("work", "two", pass_name="day-6")
    assert core.retire_pass("day-5").tasks == 1
    cli = Cli(redis_url)
    waited = cli("task", "wait", "--pass", "day-5", "--timeout", "1", expect=1)
    said = " ".join(waited.stderr.split())
    assert RETIRED in said and "its 1 settled task and 0 findings were removed" in said
    assert "no task has ever been posted" not in said
    assert RETIRED in " ".join(cli("status", "--pass", "day-5").stderr.split())
    typo = cli("task", "wait", "--pass", "day-7", "--timeout", "1", expect=1)
    assert "no task has ever been posted" in typo.stderr  # an unknown one stays unknown

    async def body() -> None:
        async with connect(build_server(core, role="shard")) as shard:
            message = await shard.error("wait_for_pass", pass_name="day-5", timeout_s=1)
            assert RETIRED in message and "were removed" in message

    anyio.run(body)
