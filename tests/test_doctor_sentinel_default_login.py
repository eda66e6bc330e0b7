"""``swarm doctor`` behind Sentinel warns of a replica that follows its master logged in as
the default user (no ``masteruser``, or ``masteruser default``) while that user is off on the
master: its link is up now, but its next login there (a restart of either, a link lost) is
refused and it stops following. The cluster check said it; the Sentinel check did not. Now it
does, in the cluster check's words, and a user that may not read what the check needs (ACL
GETUSER on the master, CONFIG GET on the replicas: every role but an admin) is told it was not
checked, in its JSON and its row. Real servers: one Sentinel set for the module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_swarm import Settings, _topology, apply_role, topology

from ._sentinel import SERVICE, LocalSentinel, guarded_sentinel
from ._servers import ServerFactory, free_port

pytestmark = pytest.mark.slow

SWARM = "default-login"
ADMIN, PASSWORD = "ops", "ops-secret-123456"


@pytest.fixture(scope="module")
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    """The set with an admin on both servers, which the sentinels log in as: the default
    user can then be turned off on the master without the sentinels losing it."""
    with guarded_sentinel(servers) as setup:
        for node in setup.data_nodes():
            with node.client() as client:
                client.acl_setuser(
                    ADMIN, enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"],
                    channels=["*"], commands=["+@all"],
                )  # fmt: skip
        for watcher in setup.sentinels:
            with watcher.client() as client:
                client.execute_command("SENTINEL", "SET", SERVICE, "auth-user", ADMIN)
                client.execute_command("SENTINEL", "SET", SERVICE, "auth-pass", PASSWORD)
        setup.wait_ready()
        yield setup


def _url(setup: LocalSentinel, user: str = ADMIN, password: str = PASSWORD) -> str:
    return setup.url.replace("://", f"://{user}:{password}@")


def _logins(warnings: Any) -> list[str]:
    return [w for w in warnings if "logged in as the default user" in w]


def test_a_replica_logged_in_as_a_default_user_that_is_off_is_warned_of(
    sentinel: LocalSentinel,
) -> None:
    from redis_swarm.cli._server import _topology_line

    settings = Settings.from_url(_url(sentinel), swarm=SWARM)
    healthy = topology(settings)
    assert healthy.sentinel is not None and _logins(healthy.warnings) == []
    master = f"127.0.0.1:{sentinel.master_port()}"
    replica = f"127.0.0.1:{sentinel.replica.port}"
    with sentinel.node(sentinel.master_port()).client() as client:
        client.execute_command("ACL", "SETUSER", "default", "off", "resetpass")
    # Its link still up (logged in before): said now, before it breaks.
    found = topology(settings)
    assert found.sentinel is not None
    (warning,) = _logins(found.warnings)
    assert warning.startswith(
        f"replica {replica} follows its master {master} logged in as the default user (it has "
        f"no masteruser), which is off on {master} now: its next login there"
    ), warning
    assert "masteruser and masterauth for the replication user" in warning
    said = found.sentinel.to_dict()
    assert healthy.sentinel.to_dict()["replica_default_logins"] == []
    assert said["replica_default_logins"] == [replica], said
    assert said["replica_links_down"] == [] and said["replicas_up"] == 1, said
    assert "replica logins" not in _topology_line(found.sentinel)  # (checked: the warning)
    # A masteruser that names the default user logs in as it all the same.
    with sentinel.replica.client() as client:
        client.config_set("masteruser", "default")
        try:
            again = topology(settings)
        finally:
            client.config_set("masteruser", "")
    (warning,) = _logins(again.warnings)
    assert "(its masteruser is default), which is off" in warning, warning


def test_a_user_that_may_not_check_is_told_it_was_not_checked(sentinel: LocalSentinel) -> None:
    from redis_swarm.cli._server import _topology_line

    password = "dl-shard-secret-123456"
    made = apply_role(Settings.from_url(_url(sentinel), swarm=SWARM), "shard", "dl-shard", password)
    assert len(made.persisted) == 2 and not made.skipped, made
    shard = Settings.from_url(_url(sentinel, "dl-shard", password), swarm=SWARM)
    found = topology(shard)
    assert found.sentinel is not None and _logins(found.warnings) == []
    said = found.sentinel.to_dict().get("replica_default_logins")
    assert said == _topology.REPLICA_LOGINS_NOT_VISIBLE, said
    row = _topology_line(found.sentinel)
    assert f"1 replica, up; replica logins {said}; failover:" in row, row


def test_a_replica_that_does_not_answer_is_named_the_others_checked(
    sentinel: LocalSentinel,
) -> None:
    """Each replica is asked on its own: one that does not answer is named as not checked,
    and the others are said beside it (it turned the whole check into "not checked")."""
    settings = Settings.from_url(_url(sentinel), swarm=SWARM)
    master = f"127.0.0.1:{sentinel.master_port()}"
    replica = f"127.0.0.1:{sentinel.replica.port}"
    gone = f"127.0.0.1:{free_port()}"
    port = sentinel.master_port()
    with redis.Redis(port=port, username=ADMIN, password=PASSWORD) as client:  # (as an admin:
        client.execute_command("ACL", "SETUSER", "default", "off", "resetpass")  # it may be off)
    view = {"master": master, "linked": [gone, replica], "down": []}
    said, warnings = _topology._default_logins(settings, view)
    assert isinstance(said, str) and said.startswith(
        f"not checked on {gone} (asking it failed: "
    ), said
    assert said.endswith(
        f"; of the others, logged in as the default user: {replica} (see the warnings)"
    ), said
    (warning,) = warnings
    assert warning.startswith(f"replica {replica} follows its master {master}"), warning
