"""Filtered task listings after a user tour: ``swarm task list --status claimed`` printed an
empty table and a cursor while 4 tasks were claimed among 20,000 (one call filters at most
5,000 tasks); the table now asks again until it has its rows. And what made filtered
listings answer ``{"items": [], "cursor": null}`` at once: the listing script reads its
arguments by position, and an argument list of another layout (a process whose Python and
Lua came from two versions, as in a tree being edited) matches nothing, silently."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_swarm import Swarm, TaskSpec
from redis_swarm._keys import Keys
from redis_swarm._ops import tasks as task_ops
from redis_swarm._scripts import library
from redis_swarm.cli import _task_views

from ._cli import Cli

BULK = 5_100  # more than one listing call looks at


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _claimed_after_bulk(swarm: Swarm, claimed: int = 3) -> list[str]:
    """``BULK`` pending tasks, then ``claimed`` claimed ones: the ids of those."""
    for start in range(0, BULK, 1000):
        size = min(1000, BULK - start)
        swarm.post_tasks([TaskSpec(queue="bulk", description=f"b{start + i}") for i in range(size)])
    ids = []
    for i in range(claimed):
        swarm.post_task("rare", f"rare {i}")
        task = swarm.claim("rare", worker="w-1")
        assert task is not None
        ids.append(task.id)
    return ids


def test_the_table_asks_again_until_it_has_its_rows(
    cli: Cli, swarm: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the scan, as a status many tasks hold is listed (a few are read from their sets)
    monkeypatch.setattr(task_ops, "LIVE_READ_MAX", 0)
    ids = _claimed_after_bulk(swarm)
    page = cli.json("task", "list", "--status", "claimed")  # one call: short, with a cursor
    assert page["items"] == [] and page["cursor"]
    out = cli("task", "list", "--status", "claimed")
    for task_id in ids:
        assert task_id in out.stdout, out
    assert "more:" not in out.stderr and "no task matched" not in out.stderr, out
    two = cli("task", "list", "--status", "claimed", "--limit", "2")
    assert [i in two.stdout for i in ids] == [True, True, False], two
    assert "more: --cursor " in two.stderr  # the third is after it


def test_a_table_that_found_nothing_in_its_calls_says_so(
    cli: Cli, swarm: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its calls used up (one here) with no match: it says so, and the cursor it gives goes
    on to the rows after them."""
    ids = _claimed_after_bulk(swarm, claimed=1)
    monkeypatch.setattr(task_ops, "LIVE_READ_MAX", 0)  # the scan (see above)
    monkeypatch.setattr(_task_views, "TABLE_CALLS", 1)
    out = cli("task", "list", "--status", "claimed")
    assert "no task matched among those the 1 calls looked at; the listing goes on" in out.stderr
    cursor = out.stderr.split("more: --cursor ")[1].split()[0]
    assert ids[0] in cli("task", "list", "--status", "claimed", "--cursor", cursor).stdout


def _index_page(raw: Any, *args: Any) -> Any:
    k = Keys("test")
    return raw.execute_command(
        "FCALL_RO", "rs_index_page", 2, k.task_index, k.tasks, library().version, *args
    )


def test_the_listing_script_refuses_an_argument_list_of_another_layout(
    swarm: Swarm, raw: Any
) -> None:
    swarm.post_task("pipeline.tour-pipe", "x")
    assert len(swarm.list_tasks(queue="pipeline.tour-pipe").items) == 1  # (the library loaded)
    with pytest.raises(redis.ResponseError):  # the layout before 964f4c2: no newest flag
        _index_page(raw, "", 100, "", 5000, "0", "queue", "pipeline.tour-pipe")
    with pytest.raises(redis.ResponseError):  # a field without its value
        _index_page(raw, "", 100, "", 5000, "0", "0", "queue")
