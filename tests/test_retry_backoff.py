"""The wait before a failed task runs again: its queue's ``retry_backoff_s`` (configure_queue,
``swarm task configure --retry-backoff``), doubled at each further failure up to the cap, and
a fail's own ``retry_after_s`` (``swarm task fail --retry-after``, the MCP ``fail_task``), for
that failure only. Times are read from the records, on a fake clock: nothing sleeps."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from redis_swarm import MAX_PAGE, Swarm, TaskStatus, ValidationError
from redis_swarm._validate import MAX_RETRY_AFTER_S, MAX_RETRY_BACKOFF_S
from redis_swarm.mcp_server import build_server

from . import _clock
from ._cli import Cli
from ._clock import FakeClock
from .mcp_server._helpers import connect

clock = _clock.clock
clocked = _clock.clocked


def _wait_after_failing(swarm: Swarm, clock: FakeClock, queue: str = "q", **how: Any) -> int:
    """Claim a task of ``queue`` and fail it (``how``: fail's options); the ms its record
    says it waits before it may run again (then the clock is moved to that time)."""
    task = swarm.claim(queue, worker="w")
    assert task is not None and task.token is not None
    failed = swarm.fail(task.id, task.token, "flaky", **how)
    assert failed.not_before is not None
    waits = failed.not_before - clock.now
    clock.advance(waits / 1000)
    return waits


def test_a_queue_s_backoff_is_the_first_wait_then_doubles_up_to_the_cap(
    clocked: Swarm, clock: FakeClock
) -> None:
    settings = clocked.configure_queue("q", retry_backoff_s=0.25)
    assert settings == {"max_abandons": 10, "retry_backoff_s": 0.25}
    clocked.post_task("q", "d", max_attempts=20)
    clocked.post_task("other", "d", max_attempts=20)
    assert [_wait_after_failing(clocked, clock) for _ in range(3)] == [250, 500, 1000]
    # another queue keeps the default: 1 s, 2 s, ...
    assert [_wait_after_failing(clocked, clock, "other") for _ in range(2)] == [1000, 2000]
    # set again: from the next failure on (the 4th: 8 x the first wait), capped at 5 min
    clocked.configure_queue("q", retry_backoff_s=MAX_RETRY_BACKOFF_S)
    assert [_wait_after_failing(clocked, clock) for _ in range(2)] == [300_000, 300_000]
    clocked.configure_queue("q", retry_backoff_s=30)
    assert _wait_after_failing(clocked, clock) == 300_000  # 30 s x 2**5, capped


def test_a_backoff_of_zero_makes_a_failed_task_claimable_at_once(
    clocked: Swarm, clock: FakeClock
) -> None:
    clocked.configure_queue("q", retry_backoff_s=0)
    posted = clocked.post_task("q", "d", max_attempts=3)
    first = clocked.claim("q", worker="w")
    assert first is not None and first.token is not None
    failed = clocked.fail(first.id, first.token, "flaky")
    assert failed.status is TaskStatus.PENDING and failed.not_before == clock.now
    again = clocked.claim("q", worker="w")  # the clock has not moved
    assert again is not None and again.id == posted.id and again.attempts == 2
    assert clocked.queue_stats()["q"]["claimed"] == 1


def test_retry_after_overrides_the_backoff_for_that_failure_only(
    clocked: Swarm, clock: FakeClock
) -> None:
    clocked.configure_queue("q", retry_backoff_s=2)
    clocked.post_task("q", "d", max_attempts=5)
    assert _wait_after_failing(clocked, clock, retry_after_s=42.5) == 42_500
    # the next failure backs off as the queue says: its second failure, twice the first wait
    assert _wait_after_failing(clocked, clock) == 4_000
    # longer than the backoff's cap: a rate limit's Retry-After is taken as said
    assert _wait_after_failing(clocked, clock, retry_after_s=3_600) == 3_600_000
    task = clocked.claim("q", worker="w")
    assert task is not None and task.token is not None
    failed = clocked.fail(task.id, task.token, "rate limited", retry_after_s=0)
    assert failed.status is TaskStatus.PENDING and failed.not_before == clock.now
    # the event says when the retry may run
    retried = clocked.events(types="task.retried")
    assert retried[0].fields["not_before"] == str(_clock.START_MS + 42_500)


def test_dead_lettering_is_unchanged_by_retry_after(clocked: Swarm) -> None:
    clocked.post_task("q", "no retry", max_attempts=5)
    clocked.post_task("last", "its last attempt", max_attempts=1)
    for queue, retry in (("q", False), ("last", True)):
        task = clocked.claim(queue, worker="w")
        assert task is not None and task.token is not None
        dead = clocked.fail(task.id, task.token, "gone", retry=retry, retry_after_s=10)
        assert dead.status is TaskStatus.DEAD and dead.failures == 1


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (-1, "retry_backoff_s is -1; it must be between 0 and 300"),
        (MAX_RETRY_BACKOFF_S + 1, "retry_backoff_s is 301; it must be between 0 and 300"),
        (float("nan"), "retry_backoff_s is nan"),
        ("1", "retry_backoff_s must be a number, got str"),
        (True, "retry_backoff_s must be a number, got bool"),
    ],
)
def test_a_bad_backoff_is_refused_and_nothing_is_stored(
    clocked: Swarm, value: Any, says: str
) -> None:
    clocked.configure_queue("q", retry_backoff_s=3)
    with pytest.raises(ValidationError, match=says.replace("(", r"\(")):
        clocked.configure_queue("q", retry_backoff_s=value, max_abandons=4)
    assert clocked.configure_queue("q") == {"max_abandons": 10, "retry_backoff_s": 3.0}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (-0.5, "retry_after_s is -0.5; it must be between 0 and 86,400"),
        (MAX_RETRY_AFTER_S + 1, "retry_after_s is 86,401; it must be between 0 and 86,400"),
        (float("inf"), "retry_after_s is inf"),
        ("30", "retry_after_s must be a number, got str"),
    ],
)
def test_a_bad_retry_after_is_refused_and_the_lease_still_holds(
    clocked: Swarm, value: Any, says: str
) -> None:
    clocked.post_task("q", "d")
    task = clocked.claim("q", worker="w")
    assert task is not None and task.token is not None
    with pytest.raises(ValidationError, match=says):
        clocked.fail(task.id, task.token, "e", retry_after_s=value)
    held = clocked.get_task(task.id)
    assert held.status is TaskStatus.CLAIMED and held.failures == 0


def test_the_setting_is_stored_apart_from_the_others(clocked: Swarm, redis_url: str) -> None:
    clocked.configure_queue("q", max_abandons=3, description="what q is for")
    both = {"max_abandons": 3, "description": "what q is for", "retry_backoff_s": 0.125}
    assert clocked.configure_queue("q", retry_backoff_s=0.125) == both
    assert clocked.configure_queue("q", max_abandons=7) == {**both, "max_abandons": 7}
    assert clocked.configure_queue("r") == {"max_abandons": 10}  # one queue's alone
    with Swarm(redis_url, swarm="test") as another:  # stored: another handle reads it
        assert another.configure_queue("q") == {**both, "max_abandons": 7}
    # a task posted now takes the queue's max_abandons, as before
    assert clocked.post_task("q", "d").max_abandons == 7


# --- the faces


def test_the_cli_sets_the_backoff_and_a_fail_s_retry_after(cli: Cli, redis_url: str) -> None:
    shown = cli.json("task", "configure", "q", "--retry-backoff", "0.5")
    assert shown == {"queue": "q", "max_abandons": 10, "retry_backoff_s": 0.5}
    assert cli("task", "configure", "q").stdout == "q: max_abandons 10\nq: retry_backoff 0.5 s\n"
    cli.json("task", "post", "q", "d", "--max-attempts", "3")
    cli.json("task", "post", "q", "rate limited", "--max-attempts", "3")
    first = cli.json("task", "claim", "q", "--worker", "w")
    failed = cli.json("task", "fail", first["id"], "--token", first["token"], "--error", "e")
    assert failed["status"] == "delayed"
    assert failed["not_before"] - failed["status_at"] == 500  # the server's clock, both
    again = cli.json("task", "claim", "q", "--worker", "w")
    lease = ("--token", again["token"])
    out = cli("task", "fail", again["id"], *lease, "--error", "429", "--retry-after", "120")
    assert out.stdout.startswith(f"failed {again['id']}: now delayed until ")
    assert out.stdout.rstrip().endswith("(in 2m)")
    with Swarm(redis_url, swarm="test") as swarm:
        stored = swarm.get_task(again["id"])
    assert stored.not_before is not None and stored.status_at is not None
    assert stored.not_before - stored.status_at == 120_000


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("task", "configure", "q", "--retry-backoff", "-1"), "'-1' is not a number of seconds"),
        (("task", "configure", "q", "--retry-backoff", "301"), "from 0 to 300"),
        (("task", "fail", "t-1", "--token", "1.x", "--error", "e", "--retry-after", "-2"),
         "'-2' is not a number of seconds from 0 to 86,400"),
        (("task", "fail", "t-1", "--token", "1.x", "--error", "e", "--retry-after", "soon"),
         "'soon' is not a number of seconds"),
        (("task", "list", "--limit", str(MAX_PAGE + 1)), f"1<=x<={MAX_PAGE}"),
        (("findings", "--limit", str(MAX_PAGE + 1)), f"1<=x<={MAX_PAGE}"),
    ],
)  # fmt: skip
def test_the_cli_refuses_out_of_range_options(cli: Cli, args: tuple[str, ...], says: str) -> None:
    out = cli(*args, expect=2)
    assert says in out.stderr, out.stderr


def test_the_mcp_fail_task_takes_retry_after(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as core:
        posted = core.post_task("work", "one", max_attempts=3)

        async def body() -> None:
            async with connect(build_server(core, role="worker", name="w")) as agent:
                task_id = (await agent("claim_task", queue="work"))[0]["task"]["id"]
                message = await agent.error(
                    "fail_task", task_id=task_id, error="429", retry_after_s=-1
                )
                assert "retry_after_s: must be at least 0 (got -1)" in message
                message = await agent.error(
                    "fail_task", task_id=task_id, error="429", retry_after_s=MAX_RETRY_AFTER_S + 1
                )
                assert "retry_after_s: must be at most 86400" in message
                assert core.get_task(task_id).status is TaskStatus.CLAIMED  # nothing happened
                failed, _ = await agent(
                    "fail_task", task_id=task_id, error="429", retry_after_s=120
                )
                assert failed["status"] == "delayed" and "not_before" in failed

        anyio.run(body)
        task = core.get_task(posted.id)
        assert task.not_before is not None and task.status_at is not None
        assert task.not_before - task.status_at == 120_000
