"""Sync or async swarm handles with non-default options, driven through the same calls as
the ``swarm`` fixture (for tests that need a clock, limits or a cache of their own)."""

from __future__ import annotations

from typing import Any

from redis_swarm import AsyncSwarm, Swarm

from .conftest import AsyncAsSync


def make_swarm(kind: str, url: str, **options: Any) -> Any:
    """``kind``: one of conftest.SWARM_KINDS (the cluster ones take the cluster's ``url``)."""
    if kind.removeprefix("cluster-") == "sync":
        return Swarm(url, swarm="test", **options)
    return AsyncAsSync(lambda: AsyncSwarm(url, swarm="test", **options))


class FakeClock:
    """Milliseconds that only move when told to."""

    def __init__(self, start: int = 1_800_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)
