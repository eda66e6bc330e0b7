"""Worker processes for the multi-process tests (importable by a spawned interpreter)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis_swarm import AsyncSwarm, Swarm


def claim_and_report(
    url: str, swarm: str, queue: str, worker: str, mode: str, start: Any, results: Any
) -> None:
    """Claim and report until the queue is empty; send back every (task id, token) claimed."""
    claims: list[tuple[str, int]] = []
    if mode == "sync":
        with Swarm(url, swarm=swarm) as handle:
            handle.ping()
            start.wait()
            while (task := handle.claim(queue, worker=worker)) is not None:
                claims.append((task.id, task.attempts))
                handle.report(task.id, task.token, {"summary": f"done by {worker}"})
    else:

        async def run() -> None:
            async with AsyncSwarm(url, swarm=swarm) as handle:
                await handle.ping()
                start.wait()
                while (task := await handle.claim(queue, worker=worker)) is not None:
                    claims.append((task.id, task.attempts))
                    await handle.report(task.id, task.token, {"summary": f"done by {worker}"})

        asyncio.run(run())
    results.put((worker, claims))
