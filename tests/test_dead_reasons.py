"""A dead task's reason counts in words a person reads: "abandoned 1 time", not "1 times"."""

from __future__ import annotations

from typing import Any

from redis_swarm import TaskStatus

from . import _clock
from ._clock import FakeClock

clock = _clock.clock
clocked = _clock.clocked


def test_one_abandon_is_said_in_the_singular(clocked: Any, clock: FakeClock) -> None:
    posted = clocked.post_task("q", "d", lease_s=10, max_abandons=1)
    clocked.claim("q", worker="w1")
    clock.advance(10)
    assert clocked.reap() == 1
    dead = clocked.get_task(posted.id)
    assert dead.status is TaskStatus.DEAD
    assert dead.dead_reason == (
        "max_abandons reached: abandoned 1 time (the lease of attempt 1, worker w1, expired "
        "with no report)"
    )
