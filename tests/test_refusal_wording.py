"""What a refused key says, on a real Redis >= 7 with per-role users (docs/security.md): the
cause it has and what to do, never the Lua internals Redis names. A worker's requeue or
cancel of a dead task is the role's (a shard or coordinator user may), though a worker's rules
hold the script it runs (rs_task_update, renew's); a shard on another swarm's keys is told
the swarm, not that a shard may."""

from __future__ import annotations

import pytest

from redis_swarm import Swarm
from redis_swarm._acl import AclUser

from ._cli import Cli
from ._servers import RedisServer, role_users, user_url

SWARM = "words-a"
OTHER = "words-b"
SHARD_MAY = "a shard or coordinator user may ('swarm acl --role shard --user NAME' makes one"
DEAD_LETTERS = (
    "only a shard, a coordinator or an admin takes a task out of the dead-letter set, but for "
    "a report, which completes it"
)


@pytest.fixture(scope="module")
def users(acl_server: RedisServer) -> dict[str, AclUser]:
    return role_users(acl_server, SWARM, "words")


@pytest.fixture
def dead_task(acl_server: RedisServer, users: dict[str, AclUser]) -> str:
    """A task of SWARM that failed its one attempt: dead."""
    with Swarm(user_url(acl_server, users["shard"]), swarm=SWARM) as shard:
        task = shard.post_task("words-q", "fail me", max_attempts=1)
        with Swarm(user_url(acl_server, users["worker"]), swarm=SWARM) as worker:
            claimed = worker.claim("words-q", worker="w-1")
            assert claimed is not None and claimed.token is not None
            worker.fail(claimed.id, claimed.token, "broken")
        assert shard.get_task(task.id).status.value == "dead"
    return task.id


def _refused(cli: Cli, *args: str) -> str:
    out = cli(*args, expect=1)
    return out.stderr


def _no_internals(said: str) -> None:
    assert "@user_function" not in said and "rs_task_update" not in said, said
    assert "script:" not in said, said


@pytest.mark.parametrize(
    ("command", "cause"),
    [
        ("requeue", "a worker may not requeue a dead task"),
        ("cancel", "a worker may cancel an open task but not a dead one"),
    ],
)
def test_a_worker_refused_a_dead_task_is_told_a_shard_or_coordinator_may(
    acl_server: RedisServer,
    users: dict[str, AclUser],
    dead_task: str,
    command: str,
    cause: str,
) -> None:
    cli = Cli(user_url(acl_server, users["worker"]), SWARM)
    said = _refused(cli, "task", command, dead_task)
    assert f"{cause} ({DEAD_LETTERS}): {SHARD_MAY}" in said, said
    assert "may only read" not in said and "another role" not in said, said
    _no_internals(said)
    # (the script's own refusal, its keys passed by Redis: the role, not the swarm)
    assert "another swarm" not in said and "check --swarm" not in said, said


@pytest.mark.parametrize("args", [("status",), ("task", "list"), ("task", "post", "q", "hi")])
def test_a_shard_on_another_swarm_is_told_the_swarm_not_that_a_shard_may(
    acl_server: RedisServer, users: dict[str, AclUser], args: tuple[str, ...]
) -> None:
    cli = Cli(user_url(acl_server, users["shard"]), SWARM)
    said = _refused(cli, "--swarm", OTHER, *args)
    assert f"refused every key of swarm {OTHER!r}, the swarm in use: check --swarm" in said, said
    assert "the user was made for another swarm" in said, said
    assert "shard or coordinator" not in said and "--role" not in said, said
    assert "may only read" not in said and "may not even read" not in said, said
    _no_internals(said)
    cli("status")  # (on the swarm it was made for, it may)
