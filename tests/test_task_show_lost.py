"""``swarm task show`` of a completed task whose finding is no longer stored (deleted by hand:
its result is lost, the doctor's ``findings_lost``), on a real server: it says so, with what
to do in the doctor's words; not when a late report of the task holds its result."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from redis_swarm import AlreadyCompleted, Swarm

from ._cli import Cli
from ._handles import must


def _completed(swarm: Swarm) -> tuple[str, str, str]:
    """A task completed with a finding: its id, its finding's id, its lease's token."""
    swarm.post_task("q", "work", {"n": 1}, pass_name="P1")
    leased = must(swarm.claim("q", worker="w"))
    finding = swarm.report(leased.id, leased.token, {"summary": "the result"}, worker="w")
    return leased.id, finding.id, must(leased.token)


def test_a_lost_result_is_said_with_what_to_do(cli: Cli, raw: Any) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        task_id, finding_id, _ = _completed(swarm)
        k = swarm.keys
    shown = cli("task", "show", task_id)
    assert "no longer stored" not in shown.stdout + shown.stderr  # (stored: nothing said)
    assert "finding_lost" not in cli.json("task", "show", task_id)

    raw.hdel(k.findings, finding_id)  # deleted by hand: the task's result is lost
    assert cli.json("doctor", expect=1)["findings_lost"]["count"] == 1

    shown = cli("task", "show", task_id)
    assert f"{finding_id} (no longer stored: its result is lost" in shown.stdout, shown
    warning = " ".join(shown.stderr.split())
    assert warning.startswith(f"warning: task {task_id} completed with finding {finding_id}")
    assert "its result is lost (swarm doctor names it: findings_lost)" in warning
    # what to do: the doctor's own words (redo it, or restore it; how the old one goes)
    assert "post each task again to redo its work" in warning
    assert "restore the finding under its id from a backup" in warning
    assert "A task posted again is a new task" in warning
    # (its role not known here: as an admin or shard user, said so; two whole commands)
    admin = "redis-cli -u URL --user ADMIN --askpass HDEL"
    assert (
        "delete the old task as an admin or shard user (its name for ADMIN): "
        f"{admin} {shlex.quote(k.tasks)} ID, then {admin} {shlex.quote(k.task_data)} ID, then"
    ) in warning, warning

    record = cli.json("task", "show", task_id)
    assert record["id"] == task_id and record["finding_id"] == finding_id
    assert " ".join(record["finding_lost"].split()) == warning.removeprefix("warning: ")


def test_a_late_report_holding_the_result_is_no_loss(cli: Cli, raw: Any) -> None:
    with Swarm(cli.url, swarm="test") as swarm:
        task_id, finding_id, token = _completed(swarm)
        raw.hdel(swarm.keys.findings, finding_id)
        with pytest.raises(AlreadyCompleted):  # its worker's late report, kept superseded
            swarm.report(task_id, token, {"summary": "again"}, worker="w")
    assert "findings_lost" not in cli.json("doctor", "--repair")  # (as the doctor counts)
    shown = cli("task", "show", task_id)
    assert "warning:" not in shown.stderr and "result is lost" not in shown.stdout
    assert "finding_lost" not in cli.json("task", "show", task_id)


def test_the_core_says_which_result_is_lost_by_the_doctors_rule(cli: Cli, raw: Any) -> None:
    """``Swarm.finding_lost``: the doctor's findings_lost rule for one task, from the task
    (its finding looked for) or from its costs read already; the face words it."""
    with Swarm(cli.url, swarm="test") as swarm:
        task_id, finding_id, _ = _completed(swarm)
        kept_id, kept_finding, kept_token = _completed(swarm)
        open_task = swarm.post_task("q", "not done yet")
        assert swarm.finding_lost(swarm.get_task(task_id)) is None  # (stored)
        assert swarm.finding_lost(swarm.task_costs(task_id)) is None
        assert swarm.finding_lost(swarm.get_task(open_task.id)) is None  # (not completed)
        raw.hdel(swarm.keys.findings, finding_id, kept_finding)
        with pytest.raises(AlreadyCompleted):  # a late report of the second holds its result
            swarm.report(kept_id, kept_token, {"summary": "again"}, worker="w")
        assert swarm.finding_lost(swarm.get_task(task_id)) == finding_id
        assert swarm.finding_lost(swarm.task_costs(task_id)) == finding_id
        assert swarm.finding_lost(swarm.get_task(kept_id)) is None
        assert swarm.finding_lost(swarm.task_costs(kept_id)) is None
        assert swarm.record_damage().lost_findings == {task_id: finding_id}  # (the same rule)
