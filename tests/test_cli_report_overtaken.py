"""``swarm task report`` under a lease that ran out, the task leased again since: the report
completes it (the first report of an open task wins) and says that the other worker's report
will be kept superseded (the core's ``Finding.overtaken_by``, from the report's own reply)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import Swarm

from ._cli import Cli
from ._handles import must


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _overtaken(swarm: Swarm) -> tuple[str, str]:
    """A task whose first lease ended (released here, as one run out would) and which
    worker w2 leased again: its id and the first lease's token."""
    first = must(swarm.claim(swarm.post_task("q", "d").queue, worker="w1"))
    assert first.token is not None
    swarm.release(first.id, first.token)
    again = must(swarm.claim("q", worker="w2"))
    assert again.id == first.id and again.attempts == 2
    return first.id, first.token


def test_a_report_after_its_lease_was_taken_says_who_holds_it(cli: Cli, swarm: Swarm) -> None:
    task_id, token = _overtaken(swarm)
    out = cli("task", "report", task_id, "--token", token, "--finding", '{"summary": "s"}')
    assert out.stdout.startswith("reported f-"), out
    said = " ".join(out.stderr.split())
    assert f"warning: the lease of task {task_id} ended before this report" in said, said
    assert "w2 leased it again" in said and "w2's will be kept superseded" in said, said
    assert swarm.get_task(task_id).status == "completed"


def test_its_json_names_the_other_worker_and_a_current_lease_says_nothing(
    cli: Cli, swarm: Swarm
) -> None:
    task_id, token = _overtaken(swarm)
    found = cli.json("task", "report", task_id, "--token", token, "--finding", '{"summary": "s"}')
    assert found["overtaken_by"] == "w2" and found["superseded"] is False
    current = must(swarm.claim(swarm.post_task("q", "d").queue, worker="w3"))
    assert current.token is not None
    out = cli(
        "task", "report", current.id, "--token", current.token, "--finding", '{"summary": "t"}'
    )
    assert "warning" not in out.stderr, out.stderr
    stored = cli.json("findings", cli.json("task", "show", current.id)["finding_id"])
    assert stored["overtaken_by"] is None


def test_a_stored_record_never_says_it(swarm: Swarm, raw: Any) -> None:
    """Only a report's own reply says it: a finding record written around redis-swarm that
    holds the field reads without it."""
    task_id, token = _overtaken(swarm)
    found = swarm.report(task_id, token, {"summary": "s"})
    assert found.overtaken_by == "w2"
    record = json.loads(raw.hget(swarm.keys.findings, found.id))
    assert "overtaken_by" not in record  # (never stored)
    forged = {**record, "overtaken_by": "forged", "overtaken_attempt": 7}
    raw.hset(swarm.keys.findings, found.id, json.dumps(forged))
    read = swarm.get_finding(found.id)
    assert read.overtaken_by is None and read.overtaken_attempt is None
