"""A fake clock for the work-queue tests: leases expire when the test says so, not after a
sleep. Both shells take it (``Swarm(clock=...)``); scripts then use it instead of TIME."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_swarm import AsyncSwarm, Swarm

from .conftest import SWARM_KINDS, AsyncAsSync, as_swarm

START_MS = 1_800_000_000_000


class FakeClock:
    def __init__(self, start: int = START_MS) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> int:
        self.now += round(seconds * 1000)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=SWARM_KINDS)
def clocked(request: pytest.FixtureRequest, redis_url: str, clock: FakeClock) -> Iterator[Swarm]:
    """The ``swarm`` fixture's twin, on the fake clock: every test runs on both shells, on
    the standalone server and on the cluster."""
    if request.param.removeprefix("cluster-") == "sync":
        handle = Swarm(redis_url, swarm="test", clock=clock)
        yield handle
        handle.close()
    else:
        adapter = AsyncAsSync(lambda: AsyncSwarm(redis_url, swarm="test", clock=clock))
        yield as_swarm(adapter)
        adapter.close()
