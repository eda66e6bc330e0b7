"""A dict key that is not a string, at any depth, is refused by the core for every face (the
JSON encoder writes 1, True or None as "1", "true", "null" without a word: a value lost
where that string is a key of the same dict too), with where it is; nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from redis_swarm import Swarm, ValidationError


def test_task_data_with_a_key_that_is_no_string_is_refused_and_nothing_posted(
    swarm: Swarm, raw: redis.Redis
) -> None:
    data: Any = {"rows": [{"ok": 1}, {1: "one", "1": "the other"}]}
    with pytest.raises(ValidationError, match=r"task data at \['rows'\]\[1\] has the key 1"):
        swarm.post_task("q", "t", data)
    assert swarm.list_tasks(queue="q").items == ()


def test_a_finding_with_a_nested_key_that_is_no_string_is_refused(swarm: Swarm) -> None:
    swarm.post_task("q", "t")
    task = swarm.claim("q", worker="w1")
    assert task is not None
    finding: Any = {"summary": "s", "by_row": {True: "yes"}}
    with pytest.raises(ValidationError, match=r"the finding at \['by_row'\] has the key True"):
        swarm.report(task.id, task.token, finding)
    swarm.report(task.id, task.token, {"summary": "s", "by_row": {"true": "yes"}})  # kept


def test_a_message_whose_data_has_a_key_that_is_no_string_is_refused(swarm: Swarm) -> None:
    swarm.register("shard", name="s1")
    with pytest.raises(ValidationError, match=r"has the key None"):
        swarm.send("s1", "hello", data={"nested": {None: 1}})
    assert swarm.inbox("s1") == []


def test_shard_stats_of_a_lone_name_is_refused_not_split(swarm: Swarm) -> None:
    with pytest.raises(ValidationError, match=r"\['memory_x'\] for one"):
        swarm.shard_stats("memory_x")  # (a str is a Sequence[str] to the type checker)
