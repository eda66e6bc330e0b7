"""Review fixes: an inbox limit of True; mark_read's answers for an agent not registered and
for a broadcast sent before the agent registered."""

from __future__ import annotations

import pytest

from redis_swarm import NotFound, Swarm, ValidationError


def test_inbox_limit_bool_refused(swarm: Swarm) -> None:
    swarm.register("worker", name="q1")
    with pytest.raises(ValidationError, match="limit"):
        swarm.inbox("q1", limit=True)


def test_mark_read_agent_not_registered(swarm: Swarm) -> None:
    swarm.register("worker", name="k1")
    m = swarm.send("k1", "hi", sender="k1")
    with pytest.raises(NotFound, match="agent nobody is not registered"):
        swarm.mark_read("nobody", m.id)


def test_mark_read_broadcast_before_registering(swarm: Swarm) -> None:
    swarm.register("worker", name="early")
    b = swarm.broadcast("before", sender="early")
    swarm.register("worker", name="late")
    assert list(swarm.inbox("late", ack=False)) == []
    with pytest.raises(NotFound, match="sent before late registered"):
        swarm.mark_read("late", b.id)
    after = swarm.broadcast("after", sender="early")
    assert swarm.mark_read("late", after.id) is True
