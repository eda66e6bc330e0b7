"""What an operator's tour of ``swarm acl --apply`` behind Sentinel found, on real servers.

A replica without the URL's admin user failed the apply blaming the URL's password
(``authentication failed on redis+sentinel://ops:***@...: check the user name and password in
the URL``) while the master had let that user in: the error names the replica now, and says to
create the user there. And with ``min-replicas-to-write 1`` and the one replica down, every
apply waited out the URL's retries and failed with NOREPLICAS: it loaded the Functions library
(a write) even when the master held this version already; it loads nothing then (FUNCTION
LIST, a read, says so), and the ACL SETUSER, no write, goes through with the down replica
skipped, as docs/security.md promises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_swarm import AsyncSwarm, PermissionDenied, Settings, Swarm, apply_role

from ._cli import Cli
from ._sentinel import SERVICE, LocalSentinel, running_sentinel, start_sentinel
from ._servers import RedisServer, ServerFactory
from ._waiting import until

SWARM = "acl-operator"
ADMIN_PASSWORD = "ops-password-0123456789"


@pytest.fixture(scope="module")
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    """A master, its replica and one sentinel (down-after-milliseconds 1 s)."""
    with running_sentinel(servers, sentinels=1) as made:
        yield made


def _raw(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port or 0, decode_responses=True)


def _master_and_replica(setup: LocalSentinel) -> tuple[RedisServer, RedisServer]:
    setup.wait_ready()
    master = setup.node(setup.master_port())
    replica = next(node for node in setup.data_nodes() if node is not master)
    return master, replica


def _admin_url(setup: LocalSentinel) -> str:
    return setup.url.replace("://", f"://ops:{ADMIN_PASSWORD}@", 1)


ADMIN = ("ACL", "SETUSER", "ops", "on", f">{ADMIN_PASSWORD}", "~*", "&*", "+@all")


def test_a_replica_without_the_admin_user_is_named(sentinel: LocalSentinel) -> None:
    """Rotating the URL's own user is refused, naming the replica (one left with the old
    password would lock the new one out); so is another user (a leaked worker password):
    the replica is up, and a copy of the aclfile fixes it (it was skipped, with a warning,
    the user made on the master, exit 0)."""
    master, replica = _master_and_replica(sentinel)
    with _raw(master) as client:
        client.execute_command(*ADMIN)  # (ACLs are not replicated: the master alone has it)
    settings = Settings.from_url(_admin_url(sentinel), swarm=SWARM)
    here, there = f"127.0.0.1:{master.port}", f"127.0.0.1:{replica.port}"
    try:
        with pytest.raises(PermissionDenied) as refused:
            apply_role(settings, "admin", "ops", "ops-rotated-0123456789")
        said = str(refused.value)
        assert said.startswith(f"authentication failed on replica {there} of ")
        assert f"{here} let that user in with it" in said
        assert f"user 'ops' is most likely missing on {there}" in said
        assert f"Create user 'ops' on {there}" in said and "aclfile" in said
        assert "check the user name and password in the URL" not in said
        assert said.endswith("Nothing was applied")
        with _raw(master) as client:  # the old password still logs in
            client.execute_command("AUTH", "ops", ADMIN_PASSWORD)

        # another user too (docs/deployment.md, "Adding a replica"): nothing applied
        with pytest.raises(PermissionDenied) as refused:
            apply_role(settings, "worker", "op-worker")
        said = str(refused.value)
        assert said.startswith(f"authentication failed on replica {there} of ")
        assert f"Create user 'ops' on {there}" in said and "ACL LOAD" in said
        with _raw(master) as client:
            assert client.acl_getuser("op-worker") is None

        out = Cli(_admin_url(sentinel), swarm=SWARM)(
            "acl", "--role", "worker", "--user", "op-worker", "--apply", expect=None
        )
        assert out.code == 1
        assert out.stderr.startswith(f"error: authentication failed on replica {there}")

        with _raw(replica) as client:  # what the error says to do
            client.execute_command(*ADMIN)
        made = apply_role(settings, "worker", "op-worker")
        assert set(made.persisted) == {here, there} and made.skipped == {}
    finally:
        for node in (master, replica):
            with _raw(node) as client:
                client.execute_command("ACL", "DELUSER", "ops", "op-worker")


def test_a_replica_down_with_min_replicas_to_write_skips_it(sentinel: LocalSentinel) -> None:
    master, replica = _master_and_replica(sentinel)
    # retries=1: the load refused with NOREPLICAS failed after the URL's retries (53 s with a
    # Sentinel URL's default): one retry fails as surely, sooner
    url = f"{sentinel.url}?retries=1"
    settings = Settings.from_url(url, swarm=SWARM)
    apply_role(settings, "worker", "before-down")  # (loads this version of the library)
    there = f"127.0.0.1:{replica.port}"
    with _raw(master) as client:
        client.config_set("min-replicas-to-write", 1)
    try:
        replica.stop()
        with _raw(master) as client:
            until(lambda: _refuses_writes(client), "the master refuses writes (NOREPLICAS)")
        until(lambda: _reported_down(sentinel), "the sentinel reports the replica down")

        made = apply_role(settings, "worker", "rotated", password="a-new-password-0123456789")
        assert list(made.persisted) == [f"127.0.0.1:{master.port}"]
        assert made.skipped == {there: "the sentinels report it down (s_down)"}
        with _raw(master) as client:  # the new password logs in (every write is refused)
            client.execute_command("AUTH", "rotated", "a-new-password-0123456789")

        out = Cli(url, swarm=SWARM)("acl", "--role", "worker", "--user", "rotated2", "--apply")
        assert f"warning: not applied on replica {there}" in out.stderr

        # the handles' own load_functions (swarm up) as well, sync and async: nothing to load
        with Swarm(url, swarm=SWARM) as admin:
            assert admin.load_functions() is True
        assert asyncio.run(_async_load(url)) is True
    finally:
        with _raw(master) as client:
            client.config_set("min-replicas-to-write", 0)
        replica.restart()
        sentinel.wait_ready()


async def _async_load(url: str) -> bool:
    async with AsyncSwarm(url, swarm=SWARM) as admin:
        return await admin.load_functions()


def _refuses_writes(client: redis.Redis) -> bool:
    try:
        client.set("rs-test-probe", "1")
    except redis.ResponseError as exc:
        return str(exc).startswith("NOREPLICAS")
    return False


def _reported_down(setup: LocalSentinel) -> bool:
    with _raw(setup.sentinels[0]) as client:
        listed = client.execute_command("SENTINEL", "REPLICAS", SERVICE)
    return any("s_down" in str(entry.get("flags", "")) for entry in listed)


OLD = "the-leaked-password-0123456789"
NEW = "the-rotated-password-0123456789"


def _connections(client: Any, user: str) -> int:
    listed = str(client.execute_command("CLIENT", "LIST"))
    return sum(f" user={user} " in f" {line} " for line in listed.splitlines())


def test_kill_connections_cuts_a_connection_logged_in_with_the_old_password(
    servers: ServerFactory,
) -> None:
    """A rotation left the connections opened with the leaked password logged in (Redis
    checks it at login only): --kill-connections closes them once the new one is set."""
    server = servers.start()
    settings = Settings.from_url(server.url, swarm=SWARM)
    apply_role(settings, "worker", "leaky", OLD)
    leaked: Any = redis.Redis(
        host="127.0.0.1", port=server.port or 0, username="leaky", password=OLD
    )
    leaked.execute_command("HELLO")  # logged in with the old password
    with _raw(server) as admin:
        assert _connections(admin, "leaky") == 1
        rotated = apply_role(settings, "worker", "leaky", NEW)  # without: it stays in
        assert rotated.closed == {} and _connections(admin, "leaky") == 1

        made = apply_role(settings, "worker", "leaky", NEW, kill_connections=True)
        (node,) = made.persisted  # (a server of its own: named by its URL)
        assert made.closed == {node: 1}
        assert _connections(admin, "leaky") == 0
    with pytest.raises(redis.ConnectionError):  # closed; logging in again is refused
        leaked.execute_command("HELLO")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=server.port or 0, username="leaky", password=OLD).ping()
    leaked.close()

    again: Any = redis.Redis(
        host="127.0.0.1", port=server.port or 0, username="leaky", password=NEW
    )
    again.execute_command("HELLO")
    cli = Cli(server.url, swarm=SWARM)
    data = cli.json("acl", "--role", "worker", "--user", "leaky", "--password-stdin",
                    "--apply", "--kill-connections", input=NEW + "\n")  # fmt: skip
    assert data["closed"] == [{"node": node, "connections": 1}]
    again.close()
    out = cli("acl", "--role", "worker", "--user", "leaky", "--kill-connections", expect=None)
    assert out.code != 0 and "add --apply" in out.stderr
    server.stop()


@pytest.mark.parametrize("role", ["worker", "admin"])
def test_a_connection_named_like_a_sentinels_is_closed(servers: ServerFactory, role: str) -> None:
    """A name is its client's to choose: one holding a leaked password that names its
    connection like a sentinel's dodged --kill-connections (two reviews' catch: a worker's,
    then an admin's). Only an admin's connection from a sentinel of a redis+sentinel URL is
    spared; this URL names no sentinel."""
    server = servers.start()
    settings = Settings.from_url(server.url, swarm=SWARM)
    apply_role(settings, role, "leaky", OLD)
    leaked: list[Any] = []
    for name in ("sentinel-deadbeef-cmd", "sentinel-0badc0de-pubsub"):
        client: Any = redis.Redis(
            host="127.0.0.1", port=server.port or 0, username="leaky", password=OLD,
            client_name=name,
        )  # fmt: skip
        client.ping()
        leaked.append(client)
    made = apply_role(settings, role, "leaky", NEW, kill_connections=True)
    (node,) = made.persisted
    assert made.closed == {node: 2} and made.spared == {}, (made.closed, made.spared)
    with _raw(server) as admin:
        assert _connections(admin, "leaky") == 0
    for client in leaked:
        client.close()
    server.stop()


def _sentinel_connections(client: Any, user: str) -> list[str]:
    return [
        entry["name"]
        for entry in client.client_list()
        if entry["user"] == user and entry["name"].startswith("sentinel-")
    ]


def _link_up(replica: RedisServer) -> bool:
    with _raw(replica) as client:
        return str(client.info("replication").get("master_link_status")) == "up"


def test_kill_connections_spares_replication_and_the_sentinels(servers: ServerFactory) -> None:
    """The admin is the user the replica (masteruser) and the sentinel (auth-user) log in
    as, as docs/security.md sets it up: rotating it with --kill-connections closed the
    replication link, and the replica's next login was refused (WRONGPASS) for good. Only
    the clients' own connections are closed now; the links are named, with what to update."""
    setup = start_sentinel(servers, sentinels=1)
    master, replica = _master_and_replica(setup)
    here, there = f"127.0.0.1:{master.port}", f"127.0.0.1:{replica.port}"
    for node in (master, replica):
        with _raw(node) as client:
            client.execute_command(*ADMIN)
    with _raw(replica) as client:
        client.config_set("masteruser", "ops")
        client.config_set("masterauth", ADMIN_PASSWORD)
    with _raw(setup.sentinels[0]) as client:
        client.execute_command("SENTINEL", "SET", SERVICE, "auth-user", "ops")
        client.execute_command("SENTINEL", "SET", SERVICE, "auth-pass", ADMIN_PASSWORD)
    with _raw(master) as client:
        client.execute_command("CLIENT", "KILL", "TYPE", "replica")  # (logs in as ops now)
    for node in (master, replica):  # the sentinel logs in again, as ops
        with _raw(node) as client:
            for entry in client.client_list():
                if entry["name"].startswith("sentinel-"):
                    client.client_kill_filter(_id=entry["id"])
    for node in (master, replica):
        with _raw(node) as client:
            until(lambda: len(_sentinel_connections(client, "ops")) == 2, "sentinel as ops")
    with _raw(master) as client:
        until(lambda: any(e["user"] == "ops" for e in client.client_list(_type="replica")),
               "the replica logged in as ops")  # fmt: skip
    until(lambda: _link_up(replica), "the replica's link up")

    leaked: Any = redis.Redis(
        host="127.0.0.1", port=master.port or 0, username="ops", password=ADMIN_PASSWORD
    )
    leaked.execute_command("HELLO")
    listening = redis.Redis(
        host="127.0.0.1", port=master.port or 0, username="ops", password=ADMIN_PASSWORD
    ).pubsub()  # (a client of its own: the pool would hand it the connection above)
    listening.subscribe("rs-test-channel")  # (TYPE pubsub: RESP2)
    listening.get_message(timeout=1.0)
    with _raw(master) as client:
        assert _connections(client, "ops") >= 5  # sentinel x2, replica, leaked x2

    settings = Settings.from_url(_admin_url(setup), swarm=SWARM)
    made = apply_role(settings, "admin", "ops", NEW, kill_connections=True)
    assert made.url_user and set(made.persisted) == {here, there}
    assert made.closed == {here: 2, there: 0}
    with pytest.raises(redis.ConnectionError):
        leaked.execute_command("HELLO")
    leaked.close()
    listening.close()
    with _raw(master) as client:
        assert len(_sentinel_connections(client, "ops")) == 2  # left open
        replicas = client.client_list(_type="replica")
        assert [entry["user"] for entry in replicas] == ["ops"]
    assert _link_up(replica)
    kept = made.spared[here]
    assert "replication link(s)" in kept and "masterauth" in kept
    assert "sentinel-" in kept and "auth-pass" in kept
    assert "replication link" not in made.spared[there] and "auth-pass" in made.spared[there]

    # what the warning says: masterauth updated, the link logs in again with the new password
    with _raw(replica) as client:
        client.config_set("masterauth", NEW)
    with _raw(master) as client:
        client.execute_command("CLIENT", "KILL", "TYPE", "replica")
    until(lambda: _link_up(replica), "the replica's link up with the new password")

    new_url = _admin_url(setup).replace(ADMIN_PASSWORD, NEW)
    out = Cli(new_url, swarm=SWARM)(
        "acl", "--role", "admin", "--user", "ops", "--password-stdin", "--apply",
        "--kill-connections", input=NEW + "\n",
    )  # fmt: skip
    assert f"warning: on {here}: kept open the replication link(s)" in out.stderr
    assert f"# closed 0 connection(s) of user 'ops' on {here}" in out.stdout
    for server in (*setup.sentinels, *setup.data_nodes()):
        server.stop()
