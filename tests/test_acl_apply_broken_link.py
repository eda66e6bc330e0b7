"""``swarm acl --apply`` behind Sentinel counted a replica that does not follow its master
(its link down: most often it cannot log in there) as up, as a server that got the user: it
has no fresh copy of the master's data (the swarm's library included), and swarm doctor counts
it out of the replicas up. Now it is left out (``skipped``) saying why, in the doctor's words;
its link fixed, the command run again gives it the user. Real servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_swarm import Settings, apply_role

from ._sentinel import LocalSentinel, start_sentinel
from ._servers import ServerFactory
from ._waiting import until
from .test_doctor_sentinel_links import SEEN_S, _link_status, _refuse_its_login

pytestmark = pytest.mark.slow

SWARM = "broken-link"


@pytest.fixture
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    """One sentinel (no failover: its quorum is 2), no min-replicas-to-write: the master
    takes the library's load with its replica's link down."""
    made = start_sentinel(servers, sentinels=1)
    yield made
    for server in (*made.sentinels, *made.data_nodes()):
        server.stop()


def test_a_replica_that_does_not_follow_its_master_does_not_get_the_user(
    sentinel: LocalSentinel,
) -> None:
    master = f"127.0.0.1:{sentinel.master.port}"
    replica = f"127.0.0.1:{sentinel.replica.port}"
    settings = Settings.from_url(sentinel.url, swarm=SWARM)
    with sentinel.replica.client() as client:
        _refuse_its_login(client, broken=True)
        try:
            until(lambda: _link_status(sentinel) == {"err"}, "link seen down", SEEN_S)
            made = apply_role(settings, "worker", "bl-worker")
            assert list(made.persisted) == [master], made.persisted
            assert list(made.skipped) == [replica], made.skipped
            why = made.skipped[replica]
            assert why.startswith(
                f"it does not follow its master {master} (master_link_status:down on {replica}, "
            ), why
            # (swarm doctor's words, from one place: the cause and what to do)
            assert "Most often the replica cannot log in to its master" in why, why
            assert "masteruser and masterauth for the replication user" in why, why
            assert client.execute_command("ACL", "GETUSER", "bl-worker") is None
        finally:
            _refuse_its_login(client, broken=False)
        # Its link back, the command run again gives it the user.
        until(lambda: _link_status(sentinel) == {"ok"}, "link seen up", SEEN_S)
        again = apply_role(settings, "worker", "bl-worker", made.user.password)
        assert sorted(again.persisted) == sorted([master, replica]) and not again.skipped
        assert client.execute_command("ACL", "GETUSER", "bl-worker") is not None
