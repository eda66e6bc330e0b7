"""Sync or async swarm handles with non-default options, driven through the same calls as
the ``swarm`` fixture (for tests that need a clock, limits or a cache of their own)."""

from __future__ import annotations

from typing import Any, TypeVar

from redis_swarm import AsyncSwarm, Swarm

from .conftest import AsyncAsSync, as_swarm

T = TypeVar("T")


def make_swarm(kind: str, url: str, **options: Any) -> Swarm:
    """``kind``: one of conftest.SWARM_KINDS (the cluster ones take the cluster's ``url``)."""
    if kind.removeprefix("cluster-") == "sync":
        return Swarm(url, swarm="test", **options)
    return as_swarm(AsyncAsSync(lambda: AsyncSwarm(url, swarm="test", **options)))


def untyped(swarm: Swarm) -> Any:
    """The handle with its types turned off, for calls that pass wrong types on purpose
    (the refusals of bad input)."""
    return swarm


def must(value: T | None) -> T:
    """A value the test needs (a claim that must find a task, a field that must be set)."""
    assert value is not None
    return value


class FakeClock:
    """Milliseconds that only move when told to."""

    def __init__(self, start: int = 1_800_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)
