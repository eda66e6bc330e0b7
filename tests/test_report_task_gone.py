"""A report of a task the server no longer holds (its data lost: a restart without
persistence, a FLUSHALL) says the finding was not stored, so the worker knows its work is not
kept anywhere (it said only that the task does not exist)."""

from __future__ import annotations

import pytest

from redis_swarm import NotFound, Swarm

from ._raw import raw_client


def test_a_report_of_a_task_gone_from_the_server_says_the_finding_was_not_stored(
    swarm: Swarm, redis_url: str
) -> None:
    swarm.post_task("q", "t")
    task = swarm.claim("q", worker="w1")
    assert task is not None
    with raw_client(redis_url) as raw:
        raw.flushall()  # (the server lost its data)
    with pytest.raises(NotFound, match=r"does not exist \(the finding was not stored\)"):
        swarm.report(task.id, task.token, {"summary": "work that is now nowhere"})
    assert list(swarm.findings().items) == []
