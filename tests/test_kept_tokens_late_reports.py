"""The lease tokens kept on this machine (``_lease_tokens``) serve the late report the core
takes and a lost lease's refusal invites ("a finding you already have can still be
reported"): a report through the CLI forgot every kept token of its task, another worker's
too, so that worker's own report then had no token to prove its lease with; and the hooks
forgot the token of a task no longer held at the turn's end, so a late report worked only
within the turn. One rule now (``tokens.outlived``): a token is kept while its task is open,
and forgotten, by a CLI claim and by the hooks alike, once the task is settled or deleted;
a report, fail or release forgets the token it used, and only that one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Settings, Swarm, TaskStatus
from redis_swarm import _lease_tokens as tokens

from ._cli import Cli


@pytest.fixture
def swarm(redis_url: str, swarm_home: Path) -> Any:
    with Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home)) as handle:
        yield handle


@pytest.fixture
def cli(redis_url: str, swarm_home: Path) -> Cli:
    return Cli(redis_url, env={"SWARM_AGENT": "", "SWARM_HOME": str(swarm_home)})


def _kept(swarm: Swarm, worker: str) -> dict[str, str]:
    return tokens.known(swarm.settings, worker)


def _lost_to(cli: Cli, queue: str, first: str, second: str) -> tuple[dict[str, Any], ...]:
    """A task of ``queue`` claimed through the CLI by ``first``, its lease run out, then
    claimed by ``second`` (attempt 2): both tokens kept on this machine."""
    cli("task", "post", queue, "x", "--lease", "1")
    a = cli.json("task", "claim", queue, "--worker", first)
    time.sleep(1.2)
    b = cli.json("task", "claim", queue, "--worker", second)
    assert a["id"] == b["id"] and b["token"].startswith("2.")
    return a, b


def _hook(cli: Cli, event: str, agent: str, **payload: Any) -> dict[str, Any]:
    body = {"session_id": "late-1", "hook_event_name": event, **payload}
    out = cli("hook", event, input=json.dumps(body), env={"SWARM_AGENT": agent})
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


# --- 1. a report forgets the token it used, never another worker's token of the task


def test_a_late_report_leaves_the_new_holders_token_for_its_own_report(
    cli: Cli, swarm: Swarm
) -> None:
    a, b = _lost_to(cli, "lq1", "wa", "wb")
    # wa's late report, with its kept token: taken (the task was open: it completes it)
    cli("task", "report", a["id"], "--worker", "wa", "--summary", "late")
    assert _kept(swarm, "wa") == {}  # (its own: forgotten)
    assert _kept(swarm, "wb") == {b["id"]: b["token"]}  # wb's: its own to report with
    # wb's report proves its lease with the token kept: stored superseded, not a usage error
    out = cli("task", "report", b["id"], "--worker", "wb", "--summary", "mine", expect=None)
    assert out.code != 2 and "no --token given" not in out.stderr, out
    found = {f.summary: f for f in swarm.findings(queue="lq1").items}
    assert found["mine"].superseded and not found["late"].superseded


@pytest.mark.parametrize(
    "gives_up",
    [["release"], ["fail", "--error", "cannot"]],
    ids=["release", "fail"],
)
def test_a_task_given_back_leaves_the_lost_leases_token_for_its_late_report(
    cli: Cli, swarm: Swarm, gives_up: list[str]
) -> None:
    a, b = _lost_to(cli, "lq2", "wa", "wb")
    cli("task", gives_up[0], b["id"], *gives_up[1:], env={"SWARM_AGENT": "wb"})
    assert _kept(swarm, "wb") == {}
    assert _kept(swarm, "wa") == {a["id"]: a["token"]}  # the task is open again: kept
    cli("task", "report", a["id"], "--worker", "wa", "--summary", "done after all")
    assert swarm.get_task(a["id"]).status is TaskStatus.COMPLETED


# --- 2. a lost lease's token outlives the turn and the next claim while its task is open


def test_the_hooks_keep_a_lost_leases_token_until_its_task_is_settled(
    cli: Cli, swarm: Swarm
) -> None:
    a, b = _lost_to(cli, "lq3", "kate", "other")
    # kate's turn ends: she no longer holds the task, so her stop is not refused...
    assert "decision" not in _hook(cli, "Stop", "kate", stop_hook_active=False)
    _hook(cli, "PreCompact", "kate")
    _hook(cli, "SessionStart", "kate", source="resume")
    # ...and her token stays for the finding she already has, reported in a later turn
    assert _kept(swarm, "kate") == {a["id"]: a["token"]}
    out = cli("task", "report", a["id"], "--worker", "kate", "--summary", "kate's")
    assert out.stdout.startswith("reported f-"), out
    assert swarm.get_task(a["id"]).status is TaskStatus.COMPLETED
    assert _kept(swarm, "other") == {b["id"]: b["token"]}  # (the holder's, untouched)
    # the task settled: the holder's next hook forgets its token (the same rule)
    _hook(cli, "Stop", "other", stop_hook_active=False)
    assert _kept(swarm, "other") == {}


def test_a_claim_keeps_a_lost_leases_token_while_its_task_is_open(cli: Cli, swarm: Swarm) -> None:
    a, b = _lost_to(cli, "lq4", "wa", "wb")
    cli("task", "claim", "lq4", "--worker", "wa", expect=3)  # prunes wa's tokens
    assert _kept(swarm, "wa") == {a["id"]: a["token"]}  # the task is open (wb holds it)
    swarm.report(b["id"], b["token"], {"summary": "wb's"})  # (settled where no CLI saw)
    cli("task", "claim", "lq4", "--worker", "wa", expect=3)
    assert _kept(swarm, "wa") == {}  # settled: nothing left to report


def test_the_rule_keeps_open_tasks_tokens_only() -> None:
    assert [s.value for s in TaskStatus if not tokens.outlived(s)] == [
        "pending",
        "delayed",
        "claimed",
    ]
    assert tokens.outlived(None)  # (the task deleted)


def test_the_hooks_read_the_kept_tokens_tasks_in_one_round_trip(
    swarm: Swarm, redis_url: str
) -> None:
    """Twenty kept tokens whose leases moved to another worker: a hook reads their tasks'
    statuses in one HMGET (it read each task, with its data, one round trip apiece, on every
    Stop and prompt until the tasks settled), keeps them while the tasks are open, and drops
    them all, in one read again, once they are settled."""
    from redis_swarm._hooks.events import held_tasks

    from ._raw import command_calls, raw_client, reset_stats

    for n in range(20):
        swarm.post_task("many", f"task {n}", {"pad": "x" * 5_000}, lease_s=0.05)
    mine = [swarm.claim("many", worker="me") for _ in range(20)]
    for t in mine:
        assert t is not None
        tokens.remember(swarm.settings, "me", t.id, t.token or "")
    time.sleep(0.1)
    theirs = [swarm.claim("many", worker="other", lease_s=60) for _ in range(20)]
    assert all(t is not None for t in theirs)
    with raw_client(redis_url) as raw:
        reset_stats(raw)
        assert held_tasks(swarm, "me") == []
        calls = command_calls(raw)
        assert calls.get("hmget", 0) <= 4 and calls.get("hget", 0) == 0, calls  # (leases_of: 3)
        assert len(_kept(swarm, "me")) == 20  # open: kept for a late report
        for t in theirs:
            assert t is not None
            swarm.report(t.id, t.token, {"summary": "done"})
        reset_stats(raw)
        held_tasks(swarm, "me")
        calls = command_calls(raw)
        assert calls.get("hget", 0) == 0, calls
    assert _kept(swarm, "me") == {}


def test_a_kept_id_that_is_no_task_id_stops_no_pruning(swarm: Swarm) -> None:
    """A token file holding an id that is no task id (written by hand, or by another
    program): asked of Redis with the others, it had every hook refused (ValidationError), and
    no token of a settled task was ever dropped. It is left as it is; the others are judged."""
    from redis_swarm._hooks.events import held_tasks

    task = swarm.post_task("odd", "x")
    claimed = swarm.claim("odd", worker="me")
    assert claimed is not None and claimed.token is not None
    swarm.report(claimed.id, claimed.token, {"summary": "done"})
    tokens.remember(swarm.settings, "me", claimed.id, claimed.token)
    tokens.remember(swarm.settings, "me", "no id at all!", "1.x")
    assert held_tasks(swarm, "me") == []
    assert _kept(swarm, "me") == {"no id at all!": "1.x"}, task.id
