"""A name given to something made now (an agent registered, a task posted under an id, a
context published) may not begin with '-': a hint naming it (swarm agents deregister -x),
copied as is, would have the CLI read it as an option. A name read may still begin with one:
a record already stored under such a name stays reachable (the CLI names it after '--')."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from redis_swarm import Swarm, ValidationError
from redis_swarm._validate import check_agent, check_id, check_name

from ._cli import Cli


@pytest.mark.parametrize(
    ("check", "kind"),
    [
        (lambda value, new: check_agent("agent name", value, new=new), "agent name"),
        (lambda value, new: check_id("task", value, new=new), "task id"),
        (lambda value, new: check_name("owner", value, new=new), "owner"),
    ],
)
def test_a_new_name_beginning_with_a_dash_is_refused_a_read_one_is_not(
    check: Callable[[str, bool], str], kind: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        check("-x", True)
    said = str(caught.value)
    assert said.startswith(f"{kind} '-x' begins with '-'"), said
    assert "read as an option" in said and "begin it with" in said, said
    assert check("-x", False) == "-x"  # (a lookup, a removal: stored records stay reachable)
    assert check("x-1", True) == "x-1" and check(".x", True) == ".x"


def test_the_core_refuses_new_names_with_a_dash_and_reaches_a_stored_one(
    redis_url: str, raw: Any, cli: Cli
) -> None:
    """A new agent (registered or joined) and a task posted under a given id are refused a
    name with the dash, nothing stored; an agent an older version stored under such a name
    registers and joins again, and is shown and removed, the CLI naming it after '--'."""
    swarm = Swarm(redis_url, swarm="test")
    try:
        refusals: list[Callable[[], object]] = [
            lambda: swarm.register("worker", name="-x"),
            lambda: swarm.join("-x", lambda _stored: {"role": "worker"}),
            lambda: swarm.post_task("q", "do it", task_id="-t1"),
        ]
        for refused in refusals:
            with pytest.raises(ValidationError, match="begins with '-'"):
                refused()
        assert swarm.agents() == [] and swarm.queue_stats() == {}
        # An agent stored under "-x" (as before this rule): its record copied under the name.
        swarm.register("worker", name="old")
        record = json.loads(raw.hget(swarm.keys.agents, "old"))
        raw.hset(swarm.keys.agents, "-x", json.dumps(record | {"id": "-x"}))
        raw.zadd(swarm.keys.presence, {"-x": raw.zscore(swarm.keys.presence, "old")})
        assert swarm.register("worker", name="-x", model="m2").model == "m2"
        assert swarm.join("-x", lambda _stored: {"role": "worker", "model": "m3"}).model == "m3"
        assert swarm.get_agent("-x").id == "-x"
        cli("agents", "deregister", "--", "-x")
        assert [agent.id for agent in swarm.agents()] == ["old"]
        # Queues and owners are named as before: they hold work already, and a rule for new
        # ones only would cost every post a look (a command names one after '--').
        assert swarm.post_task("-q", "do it").queue == "-q"
    finally:
        swarm.close()
