"""``swarm acl --apply`` without ``--kill-connections`` names the replication links and the
sentinels logged in as the user it rotates, with what to update: they were named only with
``--kill-connections``, so rotating the password of the user a replica (masteruser) or a
sentinel (auth-user) logs in as broke replication, or the sentinels' watch, at their next
reconnection, silently. Real servers: a master and its replica logging in as an ACL user,
and a master, replica and sentinel as docs/security.md sets them up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import redis

from redis_swarm import Settings, apply_role

from ._cli import Cli
from ._sentinel import SERVICE, start_sentinel
from ._servers import RedisServer, ServerFactory
from ._waiting import until

SWARM = "acl-spared"
OLD = "the-replication-password-0123456789"
NEW = "the-rotated-password-0123456789"
NEWER = "the-rotated-again-password-0123456789"
ADMIN_PASSWORD = "ops-password-0123456789"


def _raw(server: RedisServer) -> Any:
    return redis.Redis(host="127.0.0.1", port=server.port or 0, decode_responses=True)


def _replica_users(master: RedisServer) -> list[str]:
    with _raw(master) as client:
        return [entry["user"] for entry in client.client_list(_type="replica")]


def _link_up(replica: RedisServer) -> bool:
    with _raw(replica) as client:
        return str(client.info("replication").get("master_link_status")) == "up"


@contextlib.contextmanager
def _replica_of_user_repl(
    servers: ServerFactory,
) -> Iterator[tuple[RedisServer, Settings, RedisServer]]:
    """A master whose user 'repl' (an admin, password OLD) its replica logs in as
    (masteruser), the link up: the master, its settings (the default user) and the replica."""
    master = servers.start()
    settings = Settings.from_url(master.url, swarm=SWARM)  # (the default user: an admin)
    apply_role(settings, "admin", "repl", OLD)
    replica = servers.start(
        extra=["--replicaof", "127.0.0.1", str(master.port), "--masteruser", "repl",
               "--masterauth", OLD],
    )  # fmt: skip
    try:
        until(lambda: _replica_users(master) == ["repl"], "the replica logged in as repl")
        until(lambda: _link_up(replica), "the replica's link up")
        yield master, settings, replica
    finally:
        replica.stop()
        master.stop()


def test_a_rotation_names_the_replication_link_that_logs_in_as_the_user(
    servers: ServerFactory,
) -> None:
    """The replica logs in to its master as user 'repl' (masteruser): rotating that user's
    password, without --kill-connections, leaves the link up (it logged in already), and says
    so, with what to update (masterauth) before the link's next reconnection."""
    with _replica_of_user_repl(servers) as (master, settings, replica):
        made = apply_role(settings, "admin", "repl", NEW)
        (node,) = made.persisted  # (a server of its own: named by its URL)
        assert made.closed == {}
        said = made.spared[node]
        assert said.startswith("open, logged in before the new password was set: the "
                               "replication link(s) from 127.0.0.1:")  # fmt: skip
        assert "user 'repl' (masteruser)" in said and "set masterauth" in said
        assert "sentinel" not in said and "CLIENT KILL" not in said  # (nothing was closed)
        assert _replica_users(master) == ["repl"] and _link_up(replica)  # left as it was

        # (rotated again each time: applying the password the user has names nothing)
        cli = Cli(master.url, swarm=SWARM)
        args = ("acl", "--role", "admin", "--user", "repl", "--password-stdin", "--apply")
        out = cli(*args, input=NEWER + "\n")
        assert f"warning: on {node}: open, logged in before the new password was set: the " \
            "replication link(s)" in out.stderr  # fmt: skip
        data = cli.json(*args, input=NEW + "\n")
        assert [entry["node"] for entry in data["spared"]] == [node]
        assert "masterauth" in data["spared"][0]["reason"] and data["closed"] == []

        # what it says to do: masterauth updated, the link logs in again with the new password
        with _raw(replica) as client:
            client.config_set("masterauth", NEW)
        with _raw(master) as client:
            client.execute_command("CLIENT", "KILL", "TYPE", "replica")
        until(lambda: _replica_users(master) == ["repl"] and _link_up(replica),
               "the replica's link up with the new password")  # fmt: skip

        # a user no link logs in as: nothing to say
        other = apply_role(settings, "worker", "plain-worker")
        assert other.spared == {}


def test_applying_the_password_the_user_has_names_nothing(servers: ServerFactory) -> None:
    """Applying a role again with the password its user already logs in with changes no
    login: the replication link that logs in as it has nothing to update, and nothing is
    named; a user with another password too is named, for what logs in with that one is
    refused from now on. (--kill-connections names what it kept open, whatever the password:
    tests/test_acl_apply_operator.py.)"""
    with _replica_of_user_repl(servers) as (master, settings, replica):
        same = apply_role(settings, "admin", "repl", OLD)
        assert same.persisted and same.spared == {}
        cli = Cli(master.url, swarm=SWARM)
        args = ("acl", "--role", "admin", "--user", "repl", "--password-stdin", "--apply")
        out = cli(*args, input=OLD + "\n")
        # (the plain URL's replica is named as not reached: no spared connection)
        assert "warning: on " not in out.stderr and "masterauth" not in out.stderr, out
        assert _replica_users(master) == ["repl"] and _link_up(replica)

        # Two passwords, the one applied among them: the other's logins are refused from
        # now on, and the link logged in with it (as far as anyone can tell) is named.
        with _raw(master) as client:
            client.execute_command("ACL", "SETUSER", "repl", f">{NEW}")
        (node,) = same.persisted
        assert "set masterauth" in apply_role(settings, "admin", "repl", OLD).spared[node]


def test_a_rotation_names_the_sentinels_that_log_in_as_the_user(servers: ServerFactory) -> None:
    """The sentinel logs in as the admin 'ops' (sentinel auth-user), on the master and the
    replica: rotating it through the sentinel's URL, without --kill-connections, names the
    sentinel's connections on each server, with what to update (auth-pass)."""
    setup = start_sentinel(servers, sentinels=1)
    try:
        setup.wait_ready()
        master = setup.node(setup.master_port())
        replica = next(node for node in setup.data_nodes() if node is not master)
        here, there = f"127.0.0.1:{master.port}", f"127.0.0.1:{replica.port}"
        for node in (master, replica):
            with _raw(node) as client:
                client.execute_command(
                    "ACL", "SETUSER", "ops", "on", f">{ADMIN_PASSWORD}", "~*", "&*", "+@all"
                )
        with _raw(setup.sentinels[0]) as client:
            client.execute_command("SENTINEL", "SET", SERVICE, "auth-user", "ops")
            client.execute_command("SENTINEL", "SET", SERVICE, "auth-pass", ADMIN_PASSWORD)
        for node in (master, replica):  # the sentinel logs in again, as ops
            with _raw(node) as client:
                for entry in client.client_list():
                    if entry["name"].startswith("sentinel-"):
                        client.client_kill_filter(_id=entry["id"])

        def sentinel_as_ops(node: RedisServer) -> bool:
            with _raw(node) as client:
                named = [e for e in client.client_list() if e["name"].startswith("sentinel-")]
                return len(named) == 2 and all(e["user"] == "ops" for e in named)

        until(
            lambda: sentinel_as_ops(master) and sentinel_as_ops(replica),
            "the sentinel logged in as ops",
        )

        url = setup.url.replace("://", f"://ops:{ADMIN_PASSWORD}@", 1)
        made = apply_role(Settings.from_url(url, swarm=SWARM), "admin", "ops", NEW)
        assert made.url_user and set(made.persisted) == {here, there} and made.closed == {}
        for name in (here, there):
            said = made.spared[name]
            assert said.startswith("open, logged in before the new password was set: ")
            assert "the sentinel connection(s) sentinel-" in said and "auth-pass" in said
        for node in (master, replica):
            assert sentinel_as_ops(node)  # left open
    finally:
        for server in (*setup.sentinels, *setup.data_nodes()):
            server.stop()


def test_a_rotation_on_a_server_without_client_commands_goes_on(servers: ServerFactory) -> None:
    """A hardened server with CLIENT renamed away: the warning cannot look, and says nothing;
    the rotation, which asked to close nothing, is applied as it was before the warning."""
    master = servers.start(extra=["--rename-command", "CLIENT", ""])
    try:
        settings = Settings.from_url(master.url, swarm=SWARM)
        apply_role(settings, "admin", "repl", OLD)
        made = apply_role(settings, "admin", "repl", NEW)
        assert made.spared == {} and made.closed == {}
        with redis.Redis(
            host="127.0.0.1", port=master.port or 0, username="repl", password=NEW
        ) as client:
            assert client.ping()
    finally:
        master.stop()
