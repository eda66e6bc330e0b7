"""``wait(pass_name=P)`` of a pass no task was ever posted to (a typo, or data lost in a
server restart) returned all zeros at once, "settled", and a service went on to synthesise
nothing; every face refused it with a check of its own after the call. The core now raises
NotFound naming the passes there are (or saying the pass was retired), one more round trip on
that path only, so the rule lives once and every caller of the API has it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from redis_swarm import NotFound, Settings, Swarm, Timeout, apply_role
from redis_swarm._hints import LIST_PASSES
from redis_swarm._ops import claiming
from redis_swarm._ops.tasks import status_counts

from ._proxy import LatencyProxy
from ._servers import RedisServer

TYPO = "Pass 1 typo"
NEVER_POSTED = (
    f'no task has ever been posted to pass "{TYPO}": nothing to wait for and no findings to '
    f'read. Check its name (the passes: "Pass 1", "Pass 2"; {LIST_PASSES}), or post its tasks '
    "first"
)


def _two_passes(swarm: Swarm) -> None:
    swarm.post_task("q", "one", pass_name="Pass 1")
    swarm.post_task("q", "two", pass_name="Pass 2")


def test_a_pass_never_posted_to_is_refused_naming_the_passes(swarm: Swarm) -> None:
    _two_passes(swarm)
    start = time.monotonic()
    with pytest.raises(NotFound) as info:
        swarm.wait(pass_name=TYPO, timeout_s=5)
    assert str(info.value) == NEVER_POSTED
    assert time.monotonic() - start < 2  # at once, not at the timeout
    # The counters stay plain reads (the pipeline asks pass_stats whether a pass was begun).
    assert not any(swarm.pass_stats(TYPO).values())
    assert list(swarm.findings(pass_name=TYPO)) == []
    # A queue with no task, and the swarm, are still settled at once.
    assert not any(swarm.wait(queue="typo", timeout_s=5).values())


def test_an_empty_swarm_names_no_pass(swarm: Swarm) -> None:
    listed = r"\(the passes: none holds tasks now; swarm status --all lists them\)"
    with pytest.raises(NotFound, match=listed):
        swarm.wait(pass_name=TYPO, timeout_s=5)


def test_a_retired_pass_is_said_to_be_retired(swarm: Swarm) -> None:
    swarm.cancel(swarm.post_task("q", "one", pass_name="day-5").id)
    swarm.post_task("q", "two", pass_name="day-6")
    assert swarm.retire_pass("day-5").tasks == 1
    with pytest.raises(NotFound) as info:
        swarm.wait(pass_name="day-5", timeout_s=5)
    said = str(info.value)
    assert said.startswith('pass "day-5" was retired on ')
    assert "its 1 settled task and 0 findings were removed" in said
    assert "no task has ever been posted" not in said


def test_a_pass_posted_to_between_the_two_reads_is_waited_for(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pass's counters read zero, then its first task is posted before the passes are
    read: the wait goes on (and times out on the pending task), it does not refuse a pass
    that now exists."""
    with Swarm(redis_url, swarm="test") as waiter, Swarm(redis_url, swarm="test") as poster:
        poster.post_task("q", "elsewhere", pass_name="Pass 1")
        posted: list[str] = []

        def post_after_the_counts(values: Any) -> dict[str, int]:
            counts = status_counts(values)
            if not posted:  # (the first read of the counters: zeros)
                posted.append(poster.post_task("q", "late", pass_name="Late").id)
            return counts

        monkeypatch.setattr(claiming, "status_counts", post_after_the_counts)
        with pytest.raises(Timeout, match="1 pending"):
            waiter.wait(pass_name="Late", timeout_s=0.5)
        assert posted


# --- what it costs


def test_one_more_round_trip_on_the_refusal_only(redis_server: RedisServer, redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as near:
        near.load_functions()  # (as a live swarm has them: no FUNCTION LOAD counted)
        near.cancel(near.post_task("q", "one", pass_name="Pass 1").id)
        near.post_task("q2", "two", pass_name="Pass 2")
        near.cancel(near.list_tasks(queue="q2").items[0].id)
    with (
        LatencyProxy(redis_server.port or 0, delay_s=0.01) as proxy,
        Swarm(proxy.url, swarm="test") as far,
    ):
        far.ping()
        proxy.reset_stats()
        assert far.wait(pass_name="Pass 1", timeout_s=5)["cancelled"] == 1
        # the queues' names, their reaping, then the event id and the pass's counters
        settled = proxy.reset_stats().exchanges
        with pytest.raises(NotFound):
            far.wait(pass_name=TYPO, timeout_s=5)
        refused = proxy.reset_stats().exchanges
    assert settled == 3
    assert refused == settled + 1  # the passes and the retirement record, in one batch


# --- a worker may be told


def test_a_worker_is_told_too(acl_server: RedisServer) -> None:
    """``wait`` is a worker's operation: the extra read (the pass counters, one field of the
    retirement record) is one its ACL user may run, so a worker is told NotFound, not
    refused by Redis."""
    admin = Settings.from_url(acl_server.url, swarm="acl")
    users = {role: apply_role(admin, role, f"{role}-w").user for role in ("shard", "worker")}

    def connect(role: str) -> Swarm:
        spec = users[role]
        return Swarm(
            f"redis://{spec.user}:{spec.password}@127.0.0.1:{acl_server.port}", swarm="acl"
        )

    with connect("shard") as shard, connect("worker") as worker:
        shard.cancel(shard.post_task("q", "one", pass_name="day-5").id)
        shard.post_task("q", "two", pass_name="Pass 1")
        shard.retire_pass("day-5")
        with pytest.raises(
            NotFound, match=r'\(the passes: "Pass 1"; swarm status --all lists them\)'
        ):
            worker.wait(pass_name="Pass 2", timeout_s=5)
        with pytest.raises(NotFound, match='pass "day-5" was retired on '):
            worker.wait(pass_name="day-5", timeout_s=5)
