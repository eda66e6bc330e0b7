"""A NOPERM names the roles that may do what was refused, read from the ACL roles themselves
(``_acl``): the users ``swarm acl`` makes, on a real Redis >= 7."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redis_swarm import PermissionDenied, Settings, Swarm, apply_role
from redis_swarm._acl import ROLES, AclUser
from redis_swarm._keys import Keys
from redis_swarm._protocol import Cmd, Operation

from ._servers import RedisServer

SWARM = "noperm-a"
K = Keys(SWARM)


@pytest.fixture(scope="module")
def as_user(acl_server: RedisServer) -> Iterator[Callable[[str], Swarm]]:
    admin = Settings.from_url(acl_server.url, swarm=SWARM)
    users: dict[str, AclUser] = {role: apply_role(admin, role, f"{role}-n").user for role in ROLES}
    opened: list[Swarm] = []

    def connect(role: str) -> Swarm:
        spec = users[role]
        url = f"redis://{spec.user}:{spec.password}@127.0.0.1:{acl_server.port}"
        opened.append(Swarm(url, swarm=SWARM))
        return opened[-1]

    yield connect
    for swarm in opened:
        swarm.close()


def _one(request: Cmd) -> Operation[Any]:
    reply = yield request
    return reply


def _denied(call: Callable[[], object]) -> str:
    with pytest.raises(PermissionDenied) as info:
        call()
    return str(info.value)


def test_a_refused_command_names_the_roles_that_may_run_it(
    as_user: Callable[[str], Swarm],
) -> None:
    worker = as_user("worker")
    message = _denied(lambda: worker._run(_one(Cmd("INFO"))))
    assert "the Redis user 'worker-n' may not run 'info'" in message, message
    assert "a shard or coordinator user may" in message, message
    assert "'swarm acl --role shard --user NAME' makes one" in message
    assert "no permissions to run the 'info' command" in message  # Redis's own words kept


def test_a_command_no_role_but_admin_has_says_admin(as_user: Callable[[str], Swarm]) -> None:
    shard = as_user("shard")
    for args in (("CONFIG", "GET", "maxmemory"), ("FLUSHALL",)):
        message = _denied(lambda args=args: shard._run(_one(Cmd(*args))))  # type: ignore[misc]
        assert "the Redis user 'shard-n' may not run" in message, message
        assert "only an admin user may: run it again with an admin user's URL" in message


def test_an_operation_of_another_role_names_the_roles_that_call_every_function(
    as_user: Callable[[str], Swarm],
) -> None:
    """Redis names FCALL, not the function: the roles that may call every function may."""
    worker = as_user("worker")
    message = _denied(worker.gc)
    assert "may not run this operation's function" in message, message
    assert "a shard or coordinator user may" in message and "docs/security.md" in message


def test_a_refused_key_points_to_what_each_role_may_do(as_user: Callable[[str], Swarm]) -> None:
    worker = as_user("worker")
    message = _denied(lambda: worker._run(_one(Cmd("HGET", Keys("noperm-b").tasks, "t"))))
    assert "a key it names is outside what the user's role may touch" in message, message
    assert "docs/security.md" in message and "swarm acl --role ROLE --user NAME" in message
