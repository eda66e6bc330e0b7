"""What a second walk through docs/security.md found, on a real Redis >= 7 with the per-role
users `swarm acl` makes: no way to revoke a user (`swarm acl --revoke USER`: deleted on every
server, saved, its connections closed, `default` and the URL's own user refused), a worker's
`swarm retire` of a pass with open tasks told to wait before being refused the operation,
and an MCP server whose user's password was rotated told its user "may not do this"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import redis

from redis_swarm import PermissionDenied, Settings, Swarm, apply_role
from redis_swarm._acl import AclUser
from redis_swarm.mcp_server import build_server

from ._cli import Cli
from ._servers import RedisServer, ServerFactory, role_users, system_redis, user_url
from .mcp_server._helpers import connect

SWARM = "walk-r"


@pytest.fixture(scope="module")
def users(acl_server: RedisServer) -> dict[str, AclUser]:
    return role_users(acl_server, SWARM, "walk2")


def _as(server: RedisServer, user: AclUser) -> Swarm:
    return Swarm(user_url(server, user), swarm=SWARM)


def _logged_in(server: RedisServer, user: AclUser) -> redis.Redis:
    client = redis.Redis(
        host="127.0.0.1", port=server.port or 0, username=user.user, password=user.password
    )
    assert client.ping()
    return client


@pytest.fixture
def aclfile_server(servers: ServerFactory, tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis >= 7 with an aclfile (its admin: the default user, no password)."""
    aclfile = tmp_path / "users.acl"
    aclfile.write_text("user default on nopass ~* &* +@all\n")
    server = servers.start(binary=system_redis(), extra=["--aclfile", str(aclfile)])
    yield server
    server.stop()


def test_revoke_deletes_the_user_saves_it_and_closes_its_connections(
    aclfile_server: RedisServer,
) -> None:
    """docs/security.md: 'swarm acl --revoke USER' deletes the user (ACL DELUSER, which also
    closes the connections a disabled user keeps), saves it to the aclfile, so that a
    restart does not bring it back, and says so per server."""
    made = apply_role(Settings.from_url(aclfile_server.url, swarm=SWARM), "worker", "walk2-gone")
    connected = _logged_in(aclfile_server, made.user)
    cli = Cli(aclfile_server.url, SWARM)
    out = cli("acl", "--revoke", "walk2-gone")
    node = f"{aclfile_server.url}/0"
    assert f"# user 'walk2-gone' deleted on {node}: saved to the aclfile" in out.stdout, out
    assert f"# closed 1 connection(s) of user 'walk2-gone' on {node}" in out.stdout, out
    with pytest.raises(redis.ConnectionError):
        connected.ping()  # (cut off: a disabled user's connection would still answer)
    connected.close()
    aclfile_server.restart()
    admin = aclfile_server.client()
    try:
        assert admin.acl_getuser("walk2-gone") is None  # not back after a restart
    finally:
        admin.close()
    with pytest.raises(redis.AuthenticationError):
        _logged_in(aclfile_server, made.user)
    # again: no server has it any more, said (a typo is not a success)
    again = cli("acl", "--revoke", "walk2-gone", expect=1)
    assert "no server has user 'walk2-gone'" in again.stderr, again


def test_revoke_without_an_aclfile_says_how_the_deletion_is_kept(
    acl_server: RedisServer,
) -> None:
    """A server with neither an aclfile nor a config file restarts without a user made at
    run time: the deletion is kept, and --json says it per server."""
    made = apply_role(Settings.from_url(acl_server.url, swarm=SWARM), "shard", "walk2-nofile")
    out = Cli(acl_server.url, SWARM).json("acl", "--revoke", made.user.user)
    assert out["revoked"] == "walk2-nofile"
    [deleted] = out["deleted"]
    assert deleted["node"] == f"{acl_server.url}/0"
    assert "no aclfile or config file: it restarts without it" in deleted["persisted"], out
    assert out["skipped"] == [] and out["absent"] == []


def test_revoke_refuses_default_the_callers_own_user_and_apply_options(
    acl_server: RedisServer, users: dict[str, AclUser]
) -> None:
    admin = apply_role(Settings.from_url(acl_server.url, swarm=SWARM), "admin", "walk2-admin")
    as_admin = Cli(user_url(acl_server, admin.user), SWARM)
    said = as_admin("acl", "--revoke", "walk2-admin", expect=2).stderr
    assert "refusing to revoke user 'walk2-admin': it is the one the URL" in said, said
    said = as_admin("acl", "--revoke", "default", expect=2).stderr
    assert "refusing to delete user 'default'" in said, said
    said = as_admin("acl", "--revoke", users["worker"].user, "--role", "worker", expect=2).stderr
    assert "--revoke USER goes alone: leave out --role" in said, said
    # a worker may not revoke: refused by Redis, nothing deleted
    said = Cli(user_url(acl_server, users["worker"]), SWARM)(
        "acl", "--revoke", users["shard"].user, expect=1
    ).stderr
    assert "may not" in said, said
    probe = acl_server.client()
    try:
        assert probe.acl_getuser(users["shard"].user) is not None
        assert probe.acl_getuser("walk2-admin") is not None
    finally:
        probe.close()


def test_a_worker_retiring_a_pass_with_open_tasks_is_refused_the_operation_first(
    acl_server: RedisServer, users: dict[str, AclUser]
) -> None:
    """A worker's `swarm retire P` of a pass with open tasks was told to wait for it, then,
    once settled, refused: the refusal comes first. A shard is still told to wait."""
    with _as(acl_server, users["shard"]) as shard:
        shard.post_task("walk2-q", "open", pass_name="walk2-p1")
    worker_cli = Cli(user_url(acl_server, users["worker"]), SWARM)
    said = worker_cli("retire", "walk2-p1", expect=1).stderr
    assert "'retire_pass' is a shard's or coordinator's operation" in said, said
    assert "still has open tasks" not in said, said
    with _as(acl_server, users["worker"]) as worker, pytest.raises(PermissionDenied):
        worker.retire_pass("walk2-p1")
    shard_said = Cli(user_url(acl_server, users["shard"]), SWARM)("retire", "walk2-p1", expect=1)
    assert "still has open tasks" in shard_said.stderr, shard_said


def test_an_mcp_server_whose_password_was_rotated_says_so_not_a_missing_right(
    acl_server: RedisServer,
) -> None:
    """After 'swarm acl --apply --kill-connections' rotated its user's password, every tool
    call of a running MCP server failed 'authentication failed ... (this MCP server's Redis
    user may not do this: ask the swarm's operator)': a login refused reads as one, and says
    to restart the server with the new SWARM_URL."""
    admin = Settings.from_url(acl_server.url, swarm=SWARM)
    made = apply_role(admin, "worker", "walk2-mcp")
    core = _as(acl_server, made.user)

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as tools:
            await tools("swarm_status")
            await anyio.to_thread.run_sync(
                lambda: apply_role(admin, "worker", "walk2-mcp", kill_connections=True)
            )
            said = await tools.error("swarm_status")
            assert "PermissionDenied: authentication failed on" in said, said
            assert "may not do this" not in said, said
            assert (
                "this server's Redis password or user was refused: it was rotated or revoked; "
                "restart this MCP server with the new SWARM_URL"
            ) in said, said

    try:
        anyio.run(body)
    finally:
        core.close()


def test_an_a2a_server_whose_password_was_rotated_says_so_not_a_missing_right(
    acl_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """As the MCP server's: a login refused told an A2A client that the server's user lacked
    a right, and its operator to grant a role, where a restart with the new password mends
    it."""
    from a2a.utils.errors import InternalError

    from redis_swarm.a2a_server._handler import swarm_errors

    admin = Settings.from_url(acl_server.url, swarm=SWARM)
    made = apply_role(admin, "worker", "walk2-a2a")
    core = _as(acl_server, made.user)
    try:
        core.status()
        apply_role(admin, "worker", "walk2-a2a", kill_connections=True)
        with pytest.raises(InternalError) as refused, swarm_errors(SWARM):
            core.status()
    finally:
        core.close()
    said = str(refused.value.message)
    assert "login to its swarm's Redis was refused" in said, said
    assert "lacks a right" not in said, said
    assert "restart this A2A server with the user's new password" in caplog.text, caplog.text
