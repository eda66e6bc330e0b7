"""A report refuses a blank source at the edge (it was stored as ``""``, a citation of
nothing), nothing stored, the task still claimed."""

from __future__ import annotations

import pytest

from redis_swarm import Swarm, ValidationError


def test_a_blank_source_is_refused_and_the_task_stays_claimed(swarm: Swarm) -> None:
    swarm.post_task("q", "t")
    task = swarm.claim("q", worker="w1")
    assert task is not None
    with pytest.raises(ValidationError, match="a source is blank"):
        swarm.report(task.id, task.token, {"summary": "s", "sources": ["a.py:1", " "]})
    assert swarm.get_task(task.id).status.value == "claimed"
